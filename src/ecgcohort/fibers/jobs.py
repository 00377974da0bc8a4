"""The fibre stage's job: a patient's mesh in, fibres and coordinates (.npz, optionally .vtu) and a PNG out."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ecgcohort.fibers.rule_based import FibreAngles, MyocardialFibres, myocardial_fibres, save_fibres
from ecgcohort.io import atomic_path
from ecgcohort.rendering import offscreen_plotter

log = logging.getLogger(__name__)


def plot_fibres(fibres: MyocardialFibres, path: str | Path, title: str = "", glyphs: int = 1500) -> None:
    """Epicardial fibre directions (arrows coloured by helix direction) over the myocardium
    coloured by the transmural coordinate; front view of the patient (PNG)."""
    import pyvista

    cells = np.hstack([np.full((len(fibres.tetrahedra), 1), 4), fibres.tetrahedra]).ravel()
    grid = pyvista.UnstructuredGrid(cells, np.full(len(fibres.tetrahedra), pyvista.CellType.TETRA), fibres.points_mm)
    grid.point_data["transmural"] = fibres.coordinates["transmural"]
    epicardial = np.flatnonzero(fibres.coordinates["transmural"] > 0.99)
    chosen = epicardial[np.linspace(0, len(epicardial) - 1, min(glyphs, len(epicardial))).astype(int)]
    arrows = pyvista.PolyData(fibres.points_mm[chosen])
    arrows.point_data["fibre"] = fibres.fibre[chosen]
    arrows.point_data["fibre_z"] = np.abs(fibres.fibre[chosen, 2])
    scale = 0.04 * float(np.ptp(fibres.points_mm, axis=0).max())
    plotter = offscreen_plotter(window_size=(900, 800))
    plotter.add_mesh(grid.extract_surface(algorithm="dataset_surface"), scalars="transmural", cmap="coolwarm", opacity=0.35,
                     scalar_bar_args={"title": "transmural"})
    plotter.add_mesh(arrows.glyph(orient="fibre", scale=False, factor=scale), scalars="fibre_z", cmap="viridis",
                     scalar_bar_args={"title": "fibre z-component (abs)"})
    plotter.camera_position = [(0, 1, 0), (0, 0, 0), (0, 0, -1)]
    plotter.reset_camera()
    plotter.add_text(f"{title} epicardial fibres", font_size=10)
    with atomic_path(path) as temporary:
        plotter.screenshot(str(temporary))
    plotter.close()


def compute_fibres(patient: str, mesh: str | Path, angles: Mapping[str, Any], fibres_out: str | Path,
                   preview_out: str | Path | None = None, vtu: bool = False) -> None:
    """Rule-based fibres and ventricular coordinates on one patient's myocardium, with their
    preview where ``preview_out`` is given (the workflow draws it in ``draw_patient``) and,
    with ``vtu``, a ParaView file beside ``fibres_out`` (:func:`save_fibres`)."""
    fibres = myocardial_fibres(mesh, FibreAngles(alpha_endo=angles["alpha_endo_deg"], alpha_epi=angles["alpha_epi_deg"],
                                                 beta_endo=angles["beta_endo_deg"], beta_epi=angles["beta_epi_deg"]))
    save_fibres(fibres, fibres_out, vtu=vtu)
    if preview_out is not None:
        plot_fibres(fibres, preview_out, title=patient)
    log.info("patient %s: fibres on %d nodes / %d tetrahedra in %.1f s", patient, len(fibres.points_mm),
             len(fibres.tetrahedra), fibres.seconds)
