"""Benchmark of the electrophysiology stage on one patient (prints figures; not a test).

    .venv/bin/python benchmarks/electrophysiology.py                      # results/patients/train-0000
    .venv/bin/python benchmarks/electrophysiology.py --patient DIR --configfile config/paper.yaml \
        --fim-python                                                      # also time fim-python's numpy FIM

Runs the stage's job functions in this process, in the workflow's order, on the patient's
mesh and heart surface (``DIR/mesh/mesh.msh``, ``DIR/anatomy/heart.vtp``), writing into a
temporary folder: LDRB fibres and coordinates (with the PNG; the .vtu where fibers.write_vtu asks), the Purkinje trees
(with the PNG), then every activation map of the config's scenarios (with its PNG, in one job as
the workflow does). Prints the time of each and the first eikonal solve of every map alone,
the compiled solver against fim-python when asked. Import
and interpreter start-up, which every Snakemake job pays on top (about 1 s), are not included.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from ecgcohort.anatomy.outputs import read_surface
from ecgcohort.cohort.sampling import patient_rng
from ecgcohort.conduction.eikonal import activation_times
from ecgcohort.conduction.jobs import (MapSettings, compute_activations, conduction_velocities, eikonal_grid,
                                      grow_purkinje, load_junctions, scenario_sources)
from ecgcohort.conduction.scenarios import scenarios_from_config
from ecgcohort.config import load_config_files
from ecgcohort.fibers import load_fibres
from ecgcohort.fibers.jobs import compute_fibres

REPO = Path(__file__).resolve().parents[1]


def _config(paths: list[Path]) -> dict:
    return load_config_files(paths, REPO / "workflow/schemas/config.schema.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patient", type=Path, default=REPO / "results/patients/train-0000")
    parser.add_argument("--configfile", type=Path, nargs="*", default=[],
                        help="config files over config/config.yaml (e.g. config/paper.yaml)")
    parser.add_argument("--fim-python", action="store_true", help="also time fim-python's numpy solver per map")
    args = parser.parse_args()
    config = _config([REPO / "config/config.yaml", *args.configfile])
    ep = config["electrophysiology"]
    patient = args.patient.name
    maps = scenarios_from_config(ep["scenarios"])
    rows: list[tuple[str, float]] = []

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        start = time.perf_counter()
        compute_fibres(patient, args.patient / "mesh/mesh.msh", config["fibers"], out / "fibres.npz",
                       out / "fibres.png", vtu=config["fibers"]["write_vtu"])
        rows.append(("fibres (LDRB, coordinates, .npz/.png)", time.perf_counter() - start))
        fibres = load_fibres(out / "fibres.npz")
        print(f"patient {patient}: myocardium {fibres.n_nodes} nodes, {fibres.n_cells} tetrahedra; "
              f"LDRB itself {fibres.seconds:.2f} s", flush=True)

        start = time.perf_counter()
        grow_purkinje(patient, args.patient / "anatomy/heart.vtp", ep["purkinje"], config["cohort"]["seed"],
                      out / "lv.vtp", out / "rv.vtp", out / "junctions.npz", out / "purkinje.png")
        rows.append(("Purkinje trees (.vtp, junctions, .png)", time.perf_counter() - start))
        junctions = load_junctions(out / "junctions.npz")
        heart = read_surface(args.patient / "anatomy/heart.vtp")

        start = time.perf_counter()
        compute_activations(patient, {name: dataclasses.asdict(scenario) for name, scenario in maps.items()},
                            out / "fibres.npz", args.patient / "anatomy/heart.vtp", out / "junctions.npz",
                            MapSettings.from_config(config, template_cache_dir=out / "cache"),
                            {name: (out / f"{name}.npz", out / f"{name}.png") for name in maps})
        rows.append((f"{len(maps)} activation maps (.npz, .png; one job)", time.perf_counter() - start))

        eikonal: list[tuple[str, int, float, float, float | None]] = []
        for name, scenario in maps.items():
            rng = patient_rng(config["cohort"]["seed"], patient, f"pacing:{name}") \
                if scenario.kind == "random_pacing" else None
            grid = eikonal_grid(fibres, ep["eikonal_refinements"], ep["source_radius_edges"])
            stimuli = scenario_sources(scenario, grid, heart, junctions, rng, ep["velocity_m_per_s"])
            v_fibre, v_cross, v_normal = conduction_velocities(ep["velocity_m_per_s"])
            solve = {}
            for method in ("compiled", "fim-python") if args.fim_python else ("compiled",):
                start = time.perf_counter()
                tau = activation_times(grid.points_mm, grid.tetrahedra, grid.structure, v_fibre, v_cross, stimuli.nodes,
                                       stimuli.node_times_ms, device="cpu", method=method,
                                       normals=grid.normal_structure, v_normal=v_normal)
                solve[method] = (time.perf_counter() - start, tau)
            reference = solve.get("fim-python")
            difference = (None if reference is None else
                          float(np.abs(reference[1] - solve["compiled"][1]).max()))
            eikonal.append((name, len(stimuli.nodes), float(np.ptp(solve["compiled"][1])), solve["compiled"][0],
                            None if reference is None else reference[0]))
            if difference is not None:
                print(f"  {name}: compiled and fim-python differ by at most {difference:.2e} ms", flush=True)

    total = sum(seconds for _, seconds in rows)
    print(f"\n{'step':46} {'s':>7}")
    for label, seconds in rows:
        print(f"{label:46} {seconds:7.2f}")
    print(f"{'all steps, one after the other':46} {total:7.2f}")
    print(f"\n{'map':12} {'sources':>7} {'total ms':>8} {'compiled s':>14} {'fim-python s':>12}")
    for name, sources, duration, compiled, reference in eikonal:
        ref = f"{reference:12.2f}" if reference is not None else f"{'-':>12}"
        print(f"{name:12} {sources:7d} {duration:8.1f} {compiled:14.2f} {ref}")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
