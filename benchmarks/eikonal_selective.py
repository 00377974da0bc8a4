"""The eikonal grid refined only where the conduction metric needs it, against the uniform
refinement, on a finished patient (prints a table; not a test).

    nice -n 19 env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/eikonal_selective.py \\
        results/patients/train-0000 [--config config/config.yaml] [--thresholds 0 4 6 8 10] [--reference-refinements 2 --reference-cache red2.npz] \\
        [--template-cache results/cache/action_potential]

Every map of the config's scenarios (the library's own
:func:`ecgcohort.conduction.jobs.activation_map`, on one thread) is computed on the myocardium
refined uniformly ``--reference-refinements`` times (the reference) and once (the default), unrefined, and with only its edges longer than each
threshold in the conduction metric bisected (:meth:`ecgcohort.conduction.eikonal.EikonalGrid.metric_refined`;
``6x2``: the grid's edges then measured and bisected again, up to two passes).
Printed per grid: nodes, tetrahedra, the time to build the grid and prepare its solver, the
compiled solver's time per map (mean over the maps; a map engaging Purkinje trees solves twice),
the activation differences from the reference at the mesh nodes (all maps pooled: mean, 95th
percentile, max |dtau| ms, and the mean signed difference: first-order fronts run late, so
a negative one is closer to the converged map) and the sinus and LBBB 12-lead ECG's relative L2 error against the
reference's (over leads and time; with a finer reference also against the grid refined once; the patient's own lead matrix, action-potential template and
repolarisation, as the workflow's ECG job builds it).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patient", type=Path, help="a finished patient folder (results/patients/<id>)")
    parser.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--thresholds", nargs="+", default=["4", "6", "8", "10"],
                        help="metric edge lengths (ms) above which edges are bisected; THRESHOLDxPASSES measures "
                             "and bisects the grid's edges again, up to PASSES times")
    parser.add_argument("--reference-refinements", type=int, default=1,
                        help="the reference grid: the myocardium refined uniformly this many times (2: 8x the cells "
                             "of the default's grid, several GB)")
    parser.add_argument("--reference-cache", type=Path,
                        help="an .npz keeping the reference's maps and ECGs: read when it exists (the reference "
                             "grid is then not solved), written otherwise")
    parser.add_argument("--timing-rounds", type=int, default=3,
                        help="then the sinus map is solved again on every grid but a finer reference, the grids in turn, "
                             "this many rounds (the median solve time is printed: a loaded machine slows all alike)")
    parser.add_argument("--template-cache", type=Path, default=REPO / "results/cache/action_potential")
    args = parser.parse_args()

    import pandas as pd

    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.conduction import eikonal
    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.eikonal import EikonalGrid
    from ecgcohort.conduction.jobs import (MapSettings, PatientConduction, activation_map, conduction_velocities,
                                           load_junctions)
    from ecgcohort.conduction.scenarios import scenarios_from_config
    from ecgcohort.config import load_config_files
    from ecgcohort.ecg import electrode_potentials, read_lead_field_chunks, standard_leads, time_grid_ms
    from ecgcohort.fibers import load_fibres

    config = load_config_files([args.config], REPO / "workflow/schemas/config.schema.yaml")
    ep = config["electrophysiology"]
    velocities = conduction_velocities(ep["velocity_m_per_s"])
    radius = float(ep["source_radius_edges"])
    settings = MapSettings(velocities=ep["velocity_m_per_s"], action_potential=ep["action_potential"],
                           seed=config["cohort"]["seed"], device="cpu", template_cache_dir=args.template_cache)
    fibres = load_fibres(args.patient / "fibres/fibres.npz")
    heart = read_surface(args.patient / "anatomy/heart.vtp")
    junctions = load_junctions(args.patient / "purkinje/junctions.npz")
    template = action_potential_template(float(ep["action_potential"]["cycle_length_ms"]),
                                         cache_dir=args.template_cache)
    chunks = read_lead_field_chunks(sorted((args.patient / "leadfield").glob("chunk-*.npz"),
                                           key=lambda path: int(path.stem.split("-")[1])), ("lead_matrix",))
    names = [str(name) for name in chunks["electrode_names"]]
    times_ms = time_grid_ms(config["ecg"]["duration_ms"], config["ecg"]["dt_ms"])
    scenarios = {name: dataclasses.asdict(scenario) for name, scenario in scenarios_from_config(ep["scenarios"]).items()}

    solve_seconds = []
    solve = eikonal._solve_compiled

    def timed_solve(*solve_args, **solve_kwargs):
        started = time.perf_counter()
        result = solve(*solve_args, **solve_kwargs)
        solve_seconds.append(time.perf_counter() - started)
        return result

    eikonal._solve_compiled = timed_solve
    structure, normals = fibres.cell_structure, fibres.normal_structure
    grids = [(f"refined {count}x" + " (reference)" * (count == args.reference_refinements),
              lambda count=count: EikonalGrid.refined(fibres.points_mm, fibres.tetrahedra, structure, count, radius,
                                                      normals))
             for count in sorted({args.reference_refinements, 1}, reverse=True)]
    grids += [("unrefined", lambda: EikonalGrid.refined(fibres.points_mm, fibres.tetrahedra, structure, 0, radius,
                                                       normals))]
    for spec in args.thresholds:
        threshold, _, passes = spec.partition("x")
        passes = int(passes or 1)
        grids.append((f"metric > {float(threshold):g} ms" + f", {passes} passes" * (passes > 1),
                      lambda threshold=float(threshold), passes=passes: EikonalGrid.metric_refined(
                          fibres.points_mm, fibres.tetrahedra, structure, velocities, threshold, radius, normals,
                          passes)))
    reference: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if args.reference_cache is not None and args.reference_cache.exists():
        with np.load(args.reference_cache) as stored:
            reference = {name: (stored[f"{name}_activation_ms"],
                                stored[f"{name}_leads"] if f"{name}_leads" in stored.files else None)
                         for name in scenarios}
        grids = grids[1:]
        print(f"the reference (refined {args.reference_refinements}x) read from {args.reference_cache}", flush=True)
    once: dict[str, np.ndarray] = {}
    richardson: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    kept = []
    rows = []
    for label, build in grids:
        started = time.perf_counter()
        grid = build()
        grid.prepare(*velocities, device="cpu")
        prepare_s = time.perf_counter() - started
        conduction = PatientConduction(fibres, heart, junctions, template, grid)
        solve_seconds.clear()
        started = time.perf_counter()
        maps = {name: activation_map(args.patient.name, name, entry, conduction, settings)
                for name, entry in scenarios.items()}
        maps_s = time.perf_counter() - started
        ecgs = {name: standard_leads(electrode_potentials(chunks["lead_matrix"], maps[name], times_ms, template), names)
                for name in ("sinus", "lbbb") if name in maps}
        if not reference:
            reference = {name: (activation.activation_ms, ecgs.get(name)) for name, activation in maps.items()}
            if args.reference_cache is not None:
                np.savez(args.reference_cache, **{f"{name}_activation_ms": tau for name, (tau, _) in reference.items()},
                         **{f"{name}_leads": leads for name, (_, leads) in reference.items() if leads is not None})
        if label.startswith("refined 1x"):
            once = ecgs
            if args.reference_refinements == 2:
                # first order: the error halves with the cells' size, so 2 tau_2x - tau_1x estimates the limit
                for name in ecgs:
                    tau = 2.0 * reference[name][0] - maps[name].activation_ms
                    limit = _map_of_times(maps[name], tau, fibres, ep["action_potential"], template)
                    richardson[name] = tau, standard_leads(electrode_potentials(chunks["lead_matrix"], limit, times_ms,
                                                                                template), names)
        signed = np.concatenate([maps[name].activation_ms - reference[name][0] for name in maps])
        difference = np.abs(signed)
        row = {"grid": label, "nodes": len(grid.points_mm), "tets": len(grid.tetrahedra),
               "build + prepare (s)": prepare_s, "solve per map (s)": sum(solve_seconds) / len(maps),
               "5 maps (s)": maps_s, "mean |dtau| (ms)": difference.mean(),
               "p95 |dtau|": np.percentile(difference, 95), "max |dtau|": difference.max(),
               "mean dtau": signed.mean()}
        for name, leads in ecgs.items():
            truth = reference[name][1]
            row[f"{name} ECG rel. error"] = float(np.linalg.norm(leads - truth) / np.linalg.norm(truth))
        if once and args.reference_refinements != 1:
            for name, leads in ecgs.items():
                row[f"{name} ECG vs refined 1x"] = float(np.linalg.norm(leads - once[name]) / np.linalg.norm(once[name]))
        for name, (tau, leads) in richardson.items():
            row[f"{name} mean dtau vs extrapolated"] = float(np.mean(maps[name].activation_ms - tau))
            row[f"{name} ECG vs extrapolated"] = float(np.linalg.norm(ecgs[name] - leads) / np.linalg.norm(leads))
        rows.append(row)
        print(" | ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                         for key, value in row.items()), flush=True)
        if args.timing_rounds > 0 and not (label.endswith("(reference)") and args.reference_refinements > 1):
            kept.append((label, conduction))
        del grid, maps
    timing = {label: [] for label, _ in kept}
    for _ in range(args.timing_rounds):
        for label, conduction in kept:
            solve_seconds.clear()
            activation_map(args.patient.name, "sinus", scenarios["sinus"], conduction, settings)
            timing[label].append(sum(solve_seconds))
    for row in rows:
        if row["grid"] in timing:
            row["sinus solve, alternated (s)"] = float(np.median(timing[row["grid"]]))

    print(f"\n{args.patient.name}: {fibres.n_nodes:,} myocardial nodes, {fibres.n_cells:,} tetrahedra; velocities "
          f"{velocities} m/s, source balls {radius:g} edges; {len(scenarios)} maps ({', '.join(scenarios)}), one "
          f"thread; differences against the grid refined {args.reference_refinements}x at the mesh nodes\n")
    print(pd.DataFrame(rows).set_index("grid").to_markdown(floatfmt=".4g"))
    if richardson:
        print("\nextrapolated: 2 tau_2x - tau_1x per mesh node (first-order Richardson), its ECG built as the others")


def _map_of_times(like, tau: np.ndarray, fibres, action_potential: dict, template):
    """An activation map of times ``tau`` (ms) with its repolarisation and upstrokes computed as
    :func:`ecgcohort.conduction.jobs.activation_map` computes them."""
    from ecgcohort.conduction.action_potential import upstroke_spread_ms
    from ecgcohort.conduction.repolarisation import Repolarisation, repolarisation_scale

    spread = float(action_potential.get("upstroke_spread", 0.0))
    return dataclasses.replace(
        like, activation_ms=tau,
        apd_scale=repolarisation_scale(fibres, tau, Repolarisation.from_config(action_potential), template),
        upstroke_ms=spread * upstroke_spread_ms(fibres.tetrahedra, tau))


if __name__ == "__main__":
    main()
