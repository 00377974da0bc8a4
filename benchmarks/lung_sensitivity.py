"""How much lungs would move the 12-lead: a run's patients' 12-lead lead matrices computed again
with crude lungs in the torso, for ``benchmarks/physiology_sweep.py --leadfields-from OUT`` (a
sensitivity measurement for issue 63, not a model: no open lung shape installs here, see
docs/limitations.md; prints each patient's lung volume; not a test).

    nice -n 5 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lung_sensitivity.py RESULTS OUT \\
        [--sigma 0.05] [--patients train-0000 ...]
    .venv/bin/python benchmarks/physiology_sweep.py RESULTS --run-maps --leadfields-from OUT

The lungs are the torso cells of the thoracic cavity by rules (:func:`lung_cells`): from 30 mm above
the jugular notch (the apices rise above the clavicles) to 20 mm below the xiphoid, at least 20 mm
inside the body surface (the chest wall), 5 mm or more from the heart's cells (the pericardium), 20 mm
or more from the mid-sagittal plane (the mediastinum), and not in the cardiac notch (in front of the
heart's centre, from the midline to the apex, below V1's level), where the pericardium lies against
the chest wall. On the study cohort that is 3.7-11.3 L (median 7.4 L) for torsos of 21-43 L: more
than a real adult's lungs (a total lung capacity of about 5-6.5 L) in the large torsos, whose chest
wall is thicker than 20 mm — an upper bound on their effect. ``--sigma`` is the lungs' conductivity,
S/m (0.05: inflated lung's resistivity of about 20 ohm m, a quarter of the torso's 0.2 S/m). The
fibres and the rest of the conductivities are the run's (``config/config.yaml``'s), so the saved
lead fields carry the key physiology_sweep.py checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import physiology_sweep as sweep  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHEST_WALL_MM, PERICARDIUM_MM, MEDIASTINUM_HALF_WIDTH_MM = 20.0, 5.0, 20.0
ABOVE_JUGULAR_NOTCH_MM, BELOW_XIPHOID_MM = 30.0, 20.0


def lung_cells(patient_dir: Path) -> tuple[np.ndarray, dict[str, float]]:
    """(indices of the mesh's lung cells, {lung_l, left_lung_l, torso_l}) of a patient by the
    module's rules; the mesh's axes: x to the patient's left, y anterior, z inferior (mm)."""
    from scipy.spatial import cKDTree

    from ecgcohort.meshing import read_tagged_mesh
    from ecgcohort.meshing.tetra import FACET_TAGS, VOLUME_TAGS

    mesh = read_tagged_mesh(patient_dir / "mesh/mesh.msh")
    anatomy = json.loads((patient_dir / "anatomy/anatomy.json").read_text())
    marks = {name: np.asarray(value) for name, value in anatomy["landmarks_mm"].items()}
    centre, apex = (np.asarray(anatomy["measures"][key]) for key in ("centre_mm", "apex_mm"))
    corners = mesh.points_mm[mesh.tetrahedra]
    centres = corners.mean(axis=1)
    volumes = np.abs(np.linalg.det(corners[:, 1:] - corners[:, :1])) / 6.0
    torso = mesh.cell_tags == VOLUME_TAGS["torso"]
    body_nodes = np.unique(mesh.facets[FACET_TAGS["body_surface"]])
    heart_nodes = np.unique(mesh.tetrahedra[~torso])
    depth = cKDTree(mesh.points_mm[body_nodes]).query(centres)[0]
    gap = cKDTree(mesh.points_mm[heart_nodes]).query(centres)[0]
    names, positions_m = sweep.standard_electrodes(patient_dir)
    v1_level = positions_m[names.index("V1")][2] * 1e3
    x, y, z = centres.T
    thorax = (z >= marks["jugular_notch"][2] - ABOVE_JUGULAR_NOTCH_MM) & (z <= marks["xiphoid"][2] + BELOW_XIPHOID_MM)
    cardiac_notch = (y > centre[1]) & (x >= 0.0) & (x <= apex[0]) & (z >= v1_level)
    lung = (torso & thorax & (depth >= CHEST_WALL_MM) & (gap >= PERICARDIUM_MM)
            & (np.abs(x) >= MEDIASTINUM_HALF_WIDTH_MM) & ~cardiac_notch)
    return np.flatnonzero(lung), {"lung_l": float(volumes[lung].sum() * 1e-6),
                                  "left_lung_l": float(volumes[lung & (x > 0)].sum() * 1e-6),
                                  "torso_l": float(volumes[torso].sum() * 1e-6)}


def lead_fields_with_lungs(patient_dir: Path, config: dict, sigma_lung: float, out: Path) -> dict[str, float]:
    """Write ``out/fibres.npz`` (a link to the run's) and the 12-lead chunk physiology_sweep.py reads,
    its lead matrix solved with the lung cells at ``sigma_lung`` S/m; returns the volumes."""
    import ecgcohort.leadfield.solver as solver_module
    from ecgcohort.fibers import load_fibres

    lung, volumes = lung_cells(patient_dir)
    run_tensors = solver_module.cell_conductivities

    def with_lungs(cell_tags, sigma, fibres_per_cell=None, myocardial_cells=None):
        tensors = run_tensors(cell_tags, sigma, fibres_per_cell, myocardial_cells)
        tensors[lung] = sigma_lung * np.eye(3)
        return tensors

    # the solver has no per-cell conductivity hook: its one function that sets each cell's tensor
    # is swapped while the 12-lead's solver is built
    solver_module.cell_conductivities = with_lungs
    try:
        chunk = sweep.standard_lead_matrix(patient_dir, config, load_fibres(patient_dir / "fibres/fibres.npz"))
    finally:
        solver_module.cell_conductivities = run_tensors
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "fibres.npz").exists():
        (out / "fibres.npz").hardlink_to(patient_dir / "fibres/fibres.npz")
    np.savez(out / sweep.SAVED_LEAD_FIELDS, **chunk, candidate=sweep.lead_field_key(config))
    return volumes


def main() -> None:
    import mpi4py.MPI  # noqa: F401  (dolfinx's PETSc before anything else)

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a run's results/ folder")
    parser.add_argument("out", type=Path, help="folder for physiology_sweep.py --leadfields-from")
    parser.add_argument("--sigma", type=float, default=0.05, help="the lungs' conductivity, S/m")
    parser.add_argument("--patients", nargs="+", help="default: every patient of the run")
    args = parser.parse_args()
    config = sweep.candidate_config([REPO / "config/config.yaml"], [])
    patients = args.patients or sorted(p.name for p in (args.results / "patients").iterdir()
                                       if (p / "leadfield/chunk-0.npz").exists())
    for patient in patients:
        start = time.perf_counter()
        volumes = lead_fields_with_lungs(args.results / "patients" / patient, config, args.sigma, args.out / patient)
        print(f"{patient}: lungs {volumes['lung_l']:.2f} L (left {volumes['left_lung_l']:.2f} L), torso "
              f"{volumes['torso_l']:.2f} L, {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
