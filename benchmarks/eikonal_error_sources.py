"""Where the unrefined eikonal differs from the refined one, on a finished patient (prints a
table; not a test).

    .venv/bin/python benchmarks/eikonal_error_sources.py results/patients/train-0000 [--config config/config.yaml]

The sinus map (the library's own :func:`ecgcohort.conduction.jobs.scenario_activation`) is
solved on the myocardium refined once (the default, the reference here) and unrefined with
point-source balls of several radii, at the config's velocities and, for comparison, with the
sheet-normal speed equal to the cross-fibre one (transversely isotropic). The node differences
(unrefined - refined, ms) are binned by the distance to the nearest Purkinje junction and by the
transmural coordinate: an error that comes from the point sources is largest near them and
shrinks with a wider exact ball; one that comes from the fronts themselves is spread over the
wall.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DISTANCE_BINS_MM = ((0, 2), (2, 4), (4, 8), (8, 16), (16, np.inf))
TRANSMURAL_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.01))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patient", type=Path, help="a finished patient folder (results/patients/<id>)")
    parser.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--radii", type=float, nargs="+", default=[2.5, 4.0, 6.0], help="source balls, edge lengths")
    args = parser.parse_args()

    from mpi4py import MPI  # noqa: F401  (libmpi before dolfinx)
    from scipy.spatial import cKDTree

    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.conduction.jobs import eikonal_grid, load_junctions, scenario_activation
    from ecgcohort.conduction.scenarios import Scenario
    from ecgcohort.config import load_config_files
    from ecgcohort.fibers import load_fibres

    config = load_config_files([args.config], REPO / "workflow/schemas/config.schema.yaml")
    electrophysiology = config["electrophysiology"]
    velocities = dict(electrophysiology["velocity_m_per_s"])
    radius = float(electrophysiology["source_radius_edges"])
    fibres = load_fibres(args.patient / "fibres/fibres.npz")
    heart = read_surface(args.patient / "anatomy/heart.vtp")
    junctions = load_junctions(args.patient / "purkinje/junctions.npz")
    sinus = Scenario(name="sinus", kind="sinus")
    sources = np.concatenate([junctions["lv_positions_mm"], junctions["rv_positions_mm"]])
    distance = cKDTree(sources).query(fibres.points_mm)[0]
    transmural = fibres.coordinates["transmural"]

    def solve(refinements: int, ball: float, speeds: dict) -> np.ndarray:
        start = time.perf_counter()
        grid = eikonal_grid(fibres, refinements, ball)
        tau, _ = scenario_activation(sinus, fibres, heart, junctions, None, speeds, "cpu", grid)
        print(f"solved: {refinements} refinement(s), ball {ball:g} edges, {speeds}: {len(grid.points_mm):,} grid nodes, "
              f"total activation {np.ptp(tau):.2f} ms, {time.perf_counter() - start:.1f} s", flush=True)
        return tau

    rows = []

    def compare(label: str, tau: np.ndarray, reference: np.ndarray) -> None:
        difference = tau - reference
        row = {"case": label, "mean |d| (ms)": np.abs(difference).mean(), "p95 |d|": np.percentile(np.abs(difference), 95),
               "max |d|": np.abs(difference).max(), "mean d": difference.mean()}
        for low, high in DISTANCE_BINS_MM:
            inside = (distance >= low) & (distance < high)
            row[f"|d| at {low}-{high:g} mm"] = np.abs(difference[inside]).mean() if inside.any() else np.nan
        for low, high in TRANSMURAL_BINS:
            inside = (transmural >= low) & (transmural < high)
            row[f"|d| transmural {low}-{min(high, 1.0):g}"] = np.abs(difference[inside]).mean()
        rows.append(row)

    reference = solve(1, radius, velocities)
    for ball in args.radii:
        compare(f"unrefined, ball {ball:g} edges", solve(0, ball, velocities), reference)
    isotropic_sheets = {key: value for key, value in velocities.items() if key != "normal"}
    if isotropic_sheets != velocities:
        compare("unrefined vs refined, v_normal = v_cross", solve(0, radius, isotropic_sheets),
                solve(1, radius, isotropic_sheets))

    import pandas as pd

    table = pd.DataFrame(rows)
    print(f"\n{args.patient.name}: {fibres.n_nodes:,} myocardial nodes, {len(sources)} junctions; differences "
          f"unrefined - refined once at the myocardium's nodes, ms; ball {radius:g} edges for the references\n")
    print(table.set_index("case").T.to_markdown(floatfmt=".2f"))


if __name__ == "__main__":
    main()
