"""The compiled eikonal solver of this checkout against the one of another git revision, on a
finished patient's maps (prints figures; not a test).

    .venv/bin/python benchmarks/eikonal_kernel_revisions.py results/patients/train-0000 --against 910aef9 \
        [--config config/config.yaml] [--repeats 3]

``ecgcohort.conduction.eikonal_compiled`` as it is at ``--against`` is loaded beside this
checkout's (a module of its own, compiled by numba in a scratch folder). Every map of the
config's scenarios (the paced maps and LBBB with their Purkinje trees in the solve) is solved on
the patient's eikonal grid with both, alternating, ``--repeats`` times from the same geometry
and sources; the script prints the seconds per solve of each (median), their ratio, the nodes
taken from the heap, and how far the two maps lie apart (ms, over all grid nodes; the solver
stops a node's changes below its tolerance, 1e-4 ms, so two correct solvers may differ by that).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODULE = "src/ecgcohort/conduction/eikonal_compiled.py"


def load_revision(revision: str, folder: Path):
    """The solver module as it is at ``revision``, imported from ``folder`` under its own name."""
    source = subprocess.run(["git", "show", f"{revision}:{MODULE}"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout
    path = folder / f"eikonal_compiled_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def solve(module, geometry, nodes: np.ndarray, times: np.ndarray, trees) -> tuple[np.ndarray, int, float]:
    """(times per grid node in the grid's own order, nodes taken, seconds) of one solve."""
    from ecgcohort.conduction.eikonal import _TOLERANCE_MS

    n = geometry.order.shape[0]
    phi = np.full(n, np.inf)
    arguments = (phi, geometry.tetrahedra, geometry.forms, geometry.offsets, geometry.cells, geometry.locals_,
                 geometry.position[nodes].astype(np.int64), times.astype(np.float64), _TOLERANCE_MS)
    start = time.perf_counter()
    if trees is None:
        taken = module.ordered_label_correcting(*arguments)
    else:
        taken = module.coupled_label_correcting(*arguments, *trees.compiled_arguments(geometry.position, n))
    return phi[geometry.position], int(taken), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patient", type=Path, help="a finished patient folder (results/patients/<id>)")
    parser.add_argument("--against", required=True, help="the git revision whose solver is compared")
    parser.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.conduction import eikonal, eikonal_compiled
    from ecgcohort.conduction.jobs import (MapSettings, PatientConduction, conduction_velocities,
                                           retrograde_coupling, scenario_sources)
    from ecgcohort.conduction.scenarios import scenarios_from_config
    from ecgcohort.config import load_config_files

    config = load_config_files([args.config], REPO / "workflow/schemas/config.schema.yaml")
    physiology = config["electrophysiology"]
    settings = MapSettings.from_config(config, template_cache_dir=None)
    conduction = PatientConduction.read(args.patient / "fibres/fibres.npz", args.patient / "anatomy/heart.vtp",
                                        args.patient / "purkinje/junctions.npz", settings)
    grid = conduction.grid
    velocities = conduction_velocities(settings.velocities)
    geometry = grid._compiled(*velocities)
    print(f"{args.patient.name}: grid {len(grid.points_mm):,} nodes, {len(grid.tetrahedra):,} tetrahedra; "
          f"this checkout against {args.against}, median of {args.repeats} alternating solves per map")
    with tempfile.TemporaryDirectory() as folder:
        solvers = {"this": eikonal_compiled, args.against: load_revision(args.against, Path(folder))}
        totals = dict.fromkeys(solvers, 0.0)
        for name, scenario in scenarios_from_config(physiology["scenarios"]).items():
            rng = patient_rng(settings.seed, args.patient.name, f"pacing:{name}") \
                if scenario.kind == "random_pacing" else None
            stimuli = scenario_sources(scenario, grid, conduction.heart, conduction.junctions, rng, settings.velocities)
            nodes, times = eikonal._unique_sources(stimuli.nodes, stimuli.node_times_ms, len(grid.points_mm))
            trees = (retrograde_coupling(scenario.retrograde_trees, grid, conduction.junctions, settings.velocities)
                     if scenario.retrograde_trees else None)
            for module in solvers.values():
                solve(module, geometry, nodes, times, trees)  # compile and warm the caches
            seconds = {label: [] for label in solvers}
            maps, taken = {}, {}
            for _ in range(args.repeats):
                for label, module in solvers.items():
                    maps[label], taken[label], elapsed = solve(module, geometry, nodes, times, trees)
                    seconds[label].append(elapsed)
            median = {label: float(np.median(values)) for label, values in seconds.items()}
            for label in solvers:
                totals[label] += median[label]
            difference = np.abs(maps["this"] - maps[args.against])
            print(f"{name:10s} this {median['this']:.2f} s ({taken['this']:,} taken), {args.against} "
                  f"{median[args.against]:.2f} s ({taken[args.against]:,}), ratio "
                  f"{median['this'] / median[args.against]:.2f}; |difference| mean {difference.mean():.1e} ms, "
                  f"largest {difference.max():.1e} ms")
    print(f"all maps: this {totals['this']:.2f} s, {args.against} {totals[args.against]:.2f} s, ratio "
          f"{totals['this'] / totals[args.against]:.2f}")


if __name__ == "__main__":
    main()
