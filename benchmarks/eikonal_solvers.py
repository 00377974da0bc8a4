"""Benchmark of the eikonal solvers on one patient's refined grid (prints figures; not a test).

    .venv/bin/python benchmarks/eikonal_solvers.py export results/patients/train-0000 grid.npz
    .venv/bin/python benchmarks/eikonal_solvers.py time grid.npz [--gpu] [--fim-python]

``export`` writes what a map's solve needs in a small file (the myocardium's nodes and
tetrahedra, each cell's fibre and sheet-normal structure in float32, the config's velocities,
refinements and the sinus and first pacing map's sources on the refined grid), so that ``time``
can run where the workflow's environment is not installed (a GPU machine: numpy, scipy, numba
and, for ``--gpu``, cupy and fim-python). ``time`` refines the grid as the workflow does, then
times each map's solve with the compiled CPU solver (and, when asked, fim-python's cupy or numpy
backend) and prints the largest difference between them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def export(patient: Path, out: Path) -> None:
    """Write ``out`` (.npz) from a finished patient folder, with config/config.yaml's settings."""
    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.conduction.jobs import eikonal_grid, load_junctions, scenario_sources
    from ecgcohort.conduction.scenarios import scenarios_from_config
    from ecgcohort.config import load_config_files
    from ecgcohort.fibers import load_fibres

    config = load_config_files([REPO / "config/config.yaml"], REPO / "workflow/schemas/config.schema.yaml")
    ep = config["electrophysiology"]
    fibres = load_fibres(patient / "fibres/fibres.npz")
    grid = eikonal_grid(fibres, ep["eikonal_refinements"], ep["source_radius_edges"])
    heart = read_surface(patient / "anatomy/heart.vtp")
    junctions = load_junctions(patient / "purkinje/junctions.npz")
    maps = scenarios_from_config(ep["scenarios"])
    sources = {}
    for name in ("sinus", "pacing-00"):
        rng = patient_rng(config["cohort"]["seed"], patient.name, f"pacing:{name}")
        stimuli = scenario_sources(maps[name], grid, heart, junctions, rng, ep["velocity_m_per_s"])
        sources[f"{name}_nodes"] = stimuli.nodes.astype(np.int32)
        sources[f"{name}_times_ms"] = stimuli.node_times_ms
    velocities = ep["velocity_m_per_s"]
    np.savez_compressed(
        out, points_mm=fibres.points_mm, tetrahedra=fibres.tetrahedra.astype(np.int32),
        structure=fibres.cell_structure.astype(np.float32), normal=fibres.normal_cell.astype(np.float32),
        refinements=ep["eikonal_refinements"], velocities=np.array([velocities["fibre"], velocities["cross"],
                                                                    velocities.get("normal", velocities["cross"])]),
        **sources)
    print(f"wrote {out}: {len(fibres.points_mm)} nodes, {len(fibres.tetrahedra)} tetrahedra, refined "
          f"{ep['eikonal_refinements']} times to {len(grid.points_mm)} nodes")


def time_solvers(path: Path, gpu: bool, fim_python: bool) -> None:
    """Time every exported map's solve on the refined grid with each asked-for solver."""
    from ecgcohort.conduction import eikonal

    with np.load(path) as archive:
        data = {name: archive[name] for name in archive.files}
    grid = eikonal.EikonalGrid.refined(data["points_mm"], data["tetrahedra"], data["structure"].astype(np.float64),
                                       int(data["refinements"]), normals=data["normal"].astype(np.float64))
    v_fibre, v_cross, v_normal = (float(v) for v in data["velocities"])
    print(f"grid: {len(grid.points_mm)} nodes, {len(grid.tetrahedra)} tetrahedra")
    start = time.perf_counter()
    grid.activation_times(v_fibre, v_cross, data["sinus_nodes"][:1], [0.0], device="cpu", v_normal=v_normal)
    print(f"compiled solver's geometry (once per grid) and a first solve: {time.perf_counter() - start:.1f} s")
    tensors = grid.conduction_tensors(v_fibre, v_cross, v_normal)
    for name in ("sinus", "pacing-00"):
        nodes, times = data[f"{name}_nodes"].astype(np.int64), data[f"{name}_times_ms"]
        start = time.perf_counter()
        cpu = grid.activation_times(v_fibre, v_cross, nodes, times, device="cpu", v_normal=v_normal)
        line = f"{name:10} {len(nodes):5d} sources: compiled CPU {time.perf_counter() - start:6.2f} s"
        sources, source_times = eikonal._unique_sources(nodes, times, len(grid.points_mm))
        for label, device, asked in (("fim-python cupy", "gpu", gpu), ("fim-python numpy", "cpu", fim_python)):
            if not asked:
                continue
            eikonal._fim_python_activation(grid.points_mm, grid.tetrahedra, tensors, sources, source_times, device)
            start = time.perf_counter()
            other = eikonal._fim_python_activation(grid.points_mm, grid.tetrahedra, tensors, sources, source_times,
                                                   device)
            line += (f", {label} {time.perf_counter() - start:6.2f} s (second call; max |difference| "
                     f"{np.abs(other - cpu).max():.3f} ms of {cpu.max():.0f})")
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export")
    exporting.add_argument("patient", type=Path)
    exporting.add_argument("out", type=Path)
    timing = commands.add_parser("time")
    timing.add_argument("grid", type=Path)
    timing.add_argument("--gpu", action="store_true", help="also fim-python's cupy backend")
    timing.add_argument("--fim-python", action="store_true", help="also fim-python's numpy backend (slow)")
    args = parser.parse_args()
    if args.command == "export":
        export(args.patient, args.out)
    else:
        time_solvers(args.grid, args.gpu, args.fim_python)


if __name__ == "__main__":
    main()
