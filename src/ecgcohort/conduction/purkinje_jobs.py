"""The Purkinje stage's job: one patient's LV and RV trees grown on its endocardial surfaces,
their junctions stored for the activation maps, and the trees' preview. Apart from the
activation jobs (:mod:`ecgcohort.conduction.jobs`), whose eikonal and action-potential modules
(numba) this job does not load (0.2 s of its start-up); pyvista is imported only to draw."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ecgcohort.anatomy.assembly import Surface
from ecgcohort.cohort.sampling import patient_rng
from ecgcohort.conduction.purkinje import (
    LV_ENDOCARDIUM,
    RV_ENDOCARDIUM,
    PurkinjeError,
    PurkinjeTree,
    TreeSettings,
    extract_surface,
    grow_tree,
    join_trees,
    tree_activation,
    write_tree_vtk,
)
from ecgcohort.conduction.scenarios import his_roots, surface_frame, surface_site
from ecgcohort.io import atomic_path
from ecgcohort.rendering import BACK_VIEW, FRONT_VIEW, offscreen_plotter

log = logging.getLogger(__name__)


def tree_settings(section: Mapping[str, Any]) -> TreeSettings:
    """TreeSettings from an ``electrophysiology.purkinje.lv_tree`` / ``rv_tree`` config mapping."""
    values = dict(section)
    for key in ("fascicles_angles_deg", "fascicles_lengths_mm"):
        values[key] = tuple(float(v) for v in values.get(key, ()))
    return TreeSettings(**values)


def _tree_polydata(tree: PurkinjeTree):
    import pyvista

    poly = pyvista.PolyData(tree.nodes_mm, lines=np.hstack([np.full((len(tree.edges), 1), 2), tree.edges]).ravel())
    poly.point_data["activation_ms"] = tree.activation_ms
    return poly


def plot_purkinje(heart: Surface, trees: Mapping[str, PurkinjeTree], path: str | Path, title: str = "") -> None:
    """Front and back views: the translucent heart surface and the Purkinje trees coloured by
    activation time (PNG)."""
    import pyvista

    surface = pyvista.PolyData(heart.points, np.column_stack([np.full(len(heart.faces), 3), heart.faces]).ravel())
    times = np.concatenate([t.activation_ms for t in trees.values()])
    plotter = offscreen_plotter(shape=(1, 2), window_size=(1400, 700))
    for column, (view, label) in enumerate(((FRONT_VIEW, "anterior"), (BACK_VIEW, "posterior"))):
        plotter.subplot(0, column)
        plotter.add_mesh(surface, color="lightgrey", opacity=0.25)
        for name, tree in trees.items():
            plotter.add_mesh(_tree_polydata(tree), scalars="activation_ms", cmap="plasma", line_width=2,
                             clim=(float(times.min()), float(times.max())), show_scalar_bar=column == 1,
                             scalar_bar_args={"title": "Purkinje activation (ms)"})
        plotter.camera_position = view
        plotter.reset_camera()
        plotter.add_text(f"{title} Purkinje trees ({label})", font_size=9)
    with atomic_path(path) as temporary:
        plotter.screenshot(str(temporary))
    plotter.close()


def grow_purkinje(patient: str, heart_surface: str | Path, settings: Mapping[str, Any], seed: int,
                  lv_out: str | Path, rv_out: str | Path, junctions_out: str | Path,
                  preview_out: str | Path | None = None) -> None:
    """Grow the LV and RV Purkinje trees of one patient on its own endocardial surfaces (the
    anatomy's ``heart.vtp``) from its bundle-branch roots (the RV tree in two parts joined by
    the moderator band, ``rv_delay_ms`` behind the LV), keep the junctions below
    ``max_junction_long_axis_position``, each firing ``junction_delay_ms`` after the tree reaches
    it, add the endocardial ``breakthroughs`` (at their own times), and store the
    trees (.vtp), the junctions — positions (mm) and activation times (ms), coupled to a mesh
    only when a map is computed, so the network is the same whatever the mesh — and a preview
    where ``preview_out`` is given (the workflow draws it in ``draw_patient``)."""
    from ecgcohort.anatomy.outputs import read_surface

    started = time.perf_counter()
    heart = read_surface(heart_surface)
    frame = surface_frame(heart)
    roots = his_roots(heart, float(settings["his_long_axis_position"]), float(settings["moderator_band_position"]))
    velocity = float(settings["conduction_velocity_m_per_s"])
    delays = {"lv": 0.0, "rv": float(settings.get("rv_delay_ms", 0.0))}
    junction_delay = float(settings.get("junction_delay_ms", 0.0))
    basal_limit = float(settings.get("max_junction_long_axis_position", 1.0))
    trees: dict[str, PurkinjeTree] = {}
    junctions: dict[str, np.ndarray] = {}
    for name, label in (("lv", LV_ENDOCARDIUM), ("rv", RV_ENDOCARDIUM)):
        points, faces, _ = extract_surface(heart.points, heart.faces, heart.labels, label)
        rng = patient_rng(seed, patient, f"purkinje-{name}")
        settings_of_tree = tree_settings(settings[f"{name}_tree"])
        try:
            if name == "lv":
                tree = grow_tree(points, faces, roots.lv_mm, roots.direction, settings_of_tree,
                                 seed=int(rng.integers(2**31 - 1)))
            else:  # septal tree plus the moderator band's free-wall tree, grown towards the base
                septal = grow_tree(points, faces, roots.rv_mm, roots.direction, settings_of_tree,
                                   seed=int(rng.integers(2**31 - 1)))
                free_wall = grow_tree(points, faces, roots.rv_free_wall_mm, -roots.direction, settings_of_tree,
                                      seed=int(rng.integers(2**31 - 1)))
                tree = join_trees(septal, free_wall)
        except PurkinjeError as error:
            raise PurkinjeError(f"patient {patient}, {name.upper()} tree: {error}") from error
        tree.activation_ms = tree_activation(tree, velocity, root_time_ms=delays[name])
        ends = tree.nodes_mm[tree.junctions]
        kept = frame.longitudinal(ends) <= basal_limit
        sites = [entry for entry in settings.get("breakthroughs", []) if entry["ventricle"] == name]
        region = "lv_endocardium" if name == "lv" else "rv_endocardium"
        breakthroughs = np.array([surface_site(heart, frame, region, float(entry["long_axis_position"]),
                                               np.deg2rad(float(entry["rotation_deg"]))) for entry in sites]).reshape(-1, 3)
        junctions[f"{name}_positions_mm"] = np.vstack([ends[kept], breakthroughs])
        junctions[f"{name}_times_ms"] = np.concatenate([tree.activation_ms[tree.junctions][kept] + junction_delay,
                                                        [float(entry["time_ms"]) for entry in sites]])
        junctions[f"{name}_tree_nodes_mm"], junctions[f"{name}_tree_edges"] = tree.nodes_mm, tree.edges
        junctions[f"{name}_junction_tree_nodes"] = tree.junctions[kept]
        trees[name] = tree
        log.info("patient %s: %s tree %d nodes, %d junctions (%d basal ones dropped) and %d breakthroughs, first at "
                 "%.1f ms, latest %.1f ms", patient, name.upper(), tree.n_nodes, int(kept.sum()), int((~kept).sum()),
                 len(sites), float(junctions[f"{name}_times_ms"].min()), float(junctions[f"{name}_times_ms"].max()))
    write_tree_vtk(trees["lv"], lv_out)
    write_tree_vtk(trees["rv"], rv_out)
    with atomic_path(junctions_out) as temporary:
        with open(temporary, "wb") as stream:
            np.savez(stream, lv_root_mm=roots.lv_mm, rv_root_mm=roots.rv_mm,
                     rv_free_wall_root_mm=roots.rv_free_wall_mm, purkinje_velocity_m_per_s=np.array(velocity),
                     junction_delay_ms=np.array(junction_delay),
                     **junctions)
    if preview_out is not None:
        plot_purkinje(heart, trees, preview_out, title=patient)
    log.info("patient %s: Purkinje stage %.1f s", patient, time.perf_counter() - started)
