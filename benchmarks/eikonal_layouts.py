"""The eikonal grid's layout against the converged reference: how much of the default's
activation share is the eikonal grid's, and how much the reference's own grid decides
(prints figures; not a test).

    .venv/bin/python benchmarks/eikonal_layouts.py results out/levers \
        [--level 1.2-30-r1] [--reference 0.7-4.5-r1] [--layouts r0 r1 r2 b0] \
        [--reference-layouts r1 b0] [--scenarios sinus lbbb] [--patient train-0000] \
        [--config config/config.yaml ...]

``out/levers`` holds the level files of :mod:`benchmarks.resolution_levers` (``{patient}-level-
{heart}-{torso}-r{refinements}.npz``: each level's myocardium, fibre and sheet structure, lead
matrix and maps). Each scenario's map (``--scenarios``; the convergence scenario, sinus, by
default) is solved again on the
level's myocardium and on the reference's, each on grids of several layouts:

* ``rK``: Bey's uniform refinement K times (:meth:`EikonalGrid.refined`, the workflow's grid);
* ``bT``: every edge longer than T ms in the conduction metric bisected once
  (:meth:`EikonalGrid.metric_refined`; ``b0``: every edge, the nodes of ``r1`` in other cells).

Each candidate's activation share is the convergence summary's
(:mod:`ecgcohort.convergence.summary`): its map interpolated onto the reference's nodes, through
the reference's lead matrix, against the reference layout's own ECG. The APD scales are the
reference level's for every map, so the figure is the activation's alone (the summary's
also moves the APD scales with the map). Prints, per candidate, the grid's size, the solve
time, the activation span, the mean node difference to the first candidate listed last (the
finest) and the share against each reference layout, and the reference layouts' share against
each other: the reference's own grid uncertainty. The table is also written as
``out/levers/eikonal_layouts/layouts.{csv,md}``, for ``python -m ecgcohort.readme_results record``
(label ``eikonal-layouts``).
"""

from __future__ import annotations

import argparse
import math
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd

from ecgcohort.anatomy.outputs import read_surface
from ecgcohort.config import load_config_files
from ecgcohort.conduction.action_potential import action_potential_template
from ecgcohort.conduction.eikonal import EikonalGrid
from ecgcohort.conduction.jobs import conduction_velocities, load_junctions, scenario_activation
from ecgcohort.conduction.scenarios import scenarios_from_config
from ecgcohort.convergence.summary import _ecg, interpolate_nodal, layouts_markdown, load_level, relative_errors

ROOT = Path(__file__).resolve().parents[1]


def layout_grid(layout: str, arrays: dict[str, np.ndarray], velocities: tuple[float, float, float | None],
                source_radius_edges: float) -> EikonalGrid:
    """The eikonal grid of a level's myocardium in ``layout`` (``rK`` or ``bT``, see the module notes)."""
    kind, value = layout[0], layout[1:]
    points, tets = arrays["myocardial_points_mm"], arrays["myocardial_tetrahedra"]
    structure, normals = arrays["structure_cell"], arrays["normal_structure_cell"]
    if kind == "r":
        return EikonalGrid.refined(points, tets, structure, int(value), source_radius_edges, normals=normals)
    if kind == "b":
        return EikonalGrid.metric_refined(points, tets, structure, velocities, float(value), source_radius_edges,
                                          normals=normals)
    raise SystemExit(f"unknown layout {layout!r}: rK (refined K times) or bT (edges above T ms bisected)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("levels", type=Path)
    parser.add_argument("--patient", default="train-0000")
    parser.add_argument("--level", default="1.2-30-r1")
    parser.add_argument("--reference", default="0.7-4.5-r1")
    parser.add_argument("--layouts", nargs="+", default=["r0", "r1", "b0", "r2"])
    parser.add_argument("--reference-layouts", nargs="+", default=["r1", "b0"])
    parser.add_argument("--scenarios", nargs="+", help="scenarios of electrophysiology.scenarios "
                                                       "(default: the convergence one)")
    parser.add_argument("--config", nargs="+", default=[str(ROOT / "config/config.yaml")])
    args = parser.parse_args()

    config = load_config_files(args.config, ROOT / "workflow/schemas/config.schema.yaml")
    section = config["electrophysiology"]
    scenarios = scenarios_from_config(section["scenarios"])
    velocities = conduction_velocities(section["velocity_m_per_s"])
    radius = float(section["source_radius_edges"])
    patient_dir = args.results / "patients" / args.patient
    heart = read_surface(patient_dir / "anatomy/heart.vtp")
    junctions = load_junctions(patient_dir / "purkinje/junctions.npz")
    level = load_level(args.patient, args.levels / f"{args.patient}-level-{args.level}.npz").arrays
    reference = load_level(args.patient, args.levels / f"{args.patient}-level-{args.reference}.npz").arrays
    template = action_potential_template(float(section["action_potential"]["cycle_length_ms"]),
                                         cache_dir=args.results / "cache/action_potential")
    times_ms = reference["times_ms"]
    spread = float(reference["upstroke_spread"])

    def ecg(tau_on_reference: np.ndarray) -> np.ndarray:
        return _ecg(reference["lead_matrix_p1"], tau_on_reference, reference["apd_scale"], times_ms, template,
                    reference["myocardial_tetrahedra"], spread)

    rows = []
    for name in args.scenarios or [config["convergence"]["scenario"]]:
        if name not in scenarios:
            raise SystemExit(f"unknown scenario {name!r}: electrophysiology.scenarios has {sorted(scenarios)}")

        def solve(layout: str, arrays: dict[str, np.ndarray]) -> dict:
            grid = layout_grid(layout, arrays, velocities, radius)
            start = time.perf_counter()
            # scenario_activation reads only the node count from the fibres once given a grid
            tau, _ = scenario_activation(scenarios[name], types.SimpleNamespace(
                n_nodes=len(arrays["myocardial_points_mm"])), heart, junctions, None, section["velocity_m_per_s"],
                grid=grid)
            seconds = time.perf_counter() - start
            print(f"{name}: {layout} on {len(grid.points_mm):,} nodes solved in {seconds:.1f} s", flush=True)
            return {"patient": args.patient, "scenario": name, "layout": layout, "grid_nodes": len(grid.points_mm),
                    "grid_cells": len(grid.tetrahedra), "solve_s": seconds, "activation_span_ms": float(np.ptp(tau)),
                    "tau": tau}

        truths = {}
        for layout in args.reference_layouts:
            row = solve(layout, reference)
            truths[layout] = ecg(row.pop("tau"))
            rows.append({**row, "myocardium": args.reference, "to_finest_mean_ms": math.nan,
                         "to_finest_abs_ms": math.nan})
        for row in rows[-len(truths):]:
            truth = truths[row["layout"]]
            row.update({f"share_vs_{other}": relative_errors(truths[other], truth).mean() for other in truths})
        candidates = [solve(layout, level) for layout in args.layouts]
        finest = candidates[-1]["tau"]
        for row in candidates:
            tau = row.pop("tau")
            on_reference = interpolate_nodal(level["myocardial_points_mm"], level["myocardial_tetrahedra"], tau,
                                             reference["myocardial_points_mm"])
            candidate = ecg(on_reference)
            rows.append({**row, "myocardium": args.level, "to_finest_mean_ms": float(np.mean(tau - finest)),
                         "to_finest_abs_ms": float(np.mean(np.abs(tau - finest))),
                         **{f"share_vs_{other}": relative_errors(truth, candidate).mean()
                            for other, truth in truths.items()}})

    order = ["patient", "scenario", "myocardium", "layout", "grid_nodes", "grid_cells", "solve_s",
             "activation_span_ms", "to_finest_mean_ms", "to_finest_abs_ms"]
    table = pd.DataFrame(rows)
    table = table[order + [column for column in table.columns if column.startswith("share_vs_")]]
    out = args.levels / "eikonal_layouts"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "layouts.csv", index=False)
    markdown = layouts_markdown(table)
    (out / "layouts.md").write_text(markdown)
    print(f"\nactivation shares (APD scales the reference's) against the {args.reference} reference in each "
          f"layout; differences to the level's {args.layouts[-1]}\n")
    print(markdown)


if __name__ == "__main__":
    main()
