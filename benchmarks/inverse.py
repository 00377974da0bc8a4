"""Benchmark of the inverse-ECG methods in paper 2's own setting (prints figures; not a test):
its Aliev–Panfilov ground truth with the data made by the matrix every method inverts — the
inverse crime, as the paper; the workflow's benchmark is crime-free (docs/methods/inverse.md).

    .venv/bin/python benchmarks/inverse.py --mesh results/patients/test-0000/mesh/mesh.msh \
        --anatomy results/patients/test-0000/anatomy/anatomy.json [--heart-nodes 1094] [--samples 661] \
        [--save-problem problem.npz]
    python benchmarks/inverse.py --problem problem.npz --device cuda --methods ep_dl eand_arn

The second form reruns the methods on a saved problem (R, the ground truth, the heart surface)
without the FEM part, e.g. on a GPU machine without dolfinx.

Measures on one patient's mesh:

* the transfer matrix: remeshing, assembly, MUMPS factorisation and the block solve with m
  (body) and n (heart) right-hand sides, max |R·1 − 1|;
* the Aliev–Panfilov ground truth (integration time, activation range);
* each method's wall time per run (one noise level, one repeat) with its RE, MSE and CC at
  σ = ``--noise`` (default 0.01) — the neural methods for ``--epochs`` epochs on the CPU, and on CUDA when visible
  (``--device cuda``), with their collocation samples/s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ecgcohort.inverse.dynamics import DynamicsSpec, aliev_panfilov_dynamics, noisy_bspm
from ecgcohort.inverse.methods import METHODS, NEURAL_METHODS, reconstruct
from ecgcohort.inverse.metrics import correlation_coefficient, mean_squared_error, relative_error
from ecgcohort.inverse.problem import SurfaceMesh


def neural_section(epochs: int, learning_rate: float, device: str, layers: int, neurons: int, blocks: int) -> dict:
    return {"layers": layers, "neurons": neurons, "residual_blocks": blocks, "ep_weight": 0.1,
            "collocation_fraction": 0.25,
            "training": {"epochs": epochs, "learning_rate": learning_rate, "lr_milestones": [0.5, 0.75], "lr_decay": 0.3,
                         "checkpoint_every": 10 ** 6, "device": device, "precision": "32"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh")
    parser.add_argument("--anatomy")
    parser.add_argument("--problem", help="a problem saved by --save-problem (skips the FEM part)")
    parser.add_argument("--save-problem")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--noise", type=float, default=0.01, help="σ of the BSPM noise")
    parser.add_argument("--heart-nodes", type=int, default=1094)
    parser.add_argument("--body-nodes", type=int, default=352)
    parser.add_argument("--samples", type=int, default=661)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    args = parser.parse_args()
    if not args.problem and not (args.mesh and args.anatomy):
        parser.error("give --mesh and --anatomy, or --problem")
    print(f"torch threads {torch.get_num_threads()}, CUDA {torch.cuda.is_available()}")

    if args.problem:
        with np.load(args.problem) as saved:
            transfer, u, times = saved["transfer"], saved["u"], saved["times"]
            heart = SurfaceMesh(saved["points_mm"], saved["faces"])
            spec = DynamicsSpec(samples=len(times), length_unit_mm=float(saved["length_unit_mm"]))
        print(f"problem {args.problem}: heart {len(heart.points)} nodes, {transfer.shape[0]} measurement points, "
              f"{len(times)} instants")
    else:
        heart, transfer, spec, u, times = build_problem(args)
        if args.save_problem:
            np.savez(args.save_problem, transfer=transfer, u=u, times=times, points_mm=heart.points,
                     faces=heart.faces, length_unit_mm=spec.length_unit_mm)
    surface = heart.scaled(1.0 / spec.length_unit_mm)
    bspm = noisy_bspm(transfer, u, args.noise, np.random.default_rng(0))
    print(f"\nσ = {args.noise}\n| method | device | s per run | RE | MSE | CC | collocation samples/s |")
    print("|---|---|---|---|---|---|---|")
    sections = {"tikhonov_0th": {}, "tikhonov_2nd": {}, "stre": {"half_width": 5},
                "ep_dl": neural_section(args.epochs, args.learning_rate, args.device, 10, 10, 0),
                "eand_arn": neural_section(args.epochs, args.learning_rate, args.device, 10, 15, 3)}
    for method in args.methods:
        config = dict(sections[method])
        with tempfile.TemporaryDirectory() as workdir:
            if method in NEURAL_METHODS:
                config.update(seed=0, workdir=workdir, model=asdict(spec.model))
            start = time.perf_counter()
            result = reconstruct(method, transfer, bspm, surface, times, config)
            seconds = time.perf_counter() - start
        rate = result.info.get("samples_per_second", float("nan"))
        print(f"| {method} | {args.device if method in NEURAL_METHODS else 'cpu'} | {seconds:.2f} | "
              f"{relative_error(result.estimate, u):.4f} | {mean_squared_error(result.estimate, u):.4g} | "
              f"{correlation_coefficient(result.estimate, u):.4f} | {rate:.0f} |")


def build_problem(args: argparse.Namespace) -> tuple[SurfaceMesh, np.ndarray, DynamicsSpec, np.ndarray, np.ndarray]:
    """Remesh, assemble R both ways (timed) and integrate the Aliev–Panfilov ground truth."""
    from ecgcohort.inverse.surfaces import heart_surface, inverse_surfaces
    from ecgcohort.inverse.transfer import patient_transfer_matrix
    from ecgcohort.meshing.tetra import read_tagged_mesh

    mesh = read_tagged_mesh(args.mesh)
    start = time.perf_counter()
    surfaces = inverse_surfaces(mesh, args.heart_nodes, "remesh", args.body_nodes)
    capped, caps = heart_surface(mesh)
    print(f"surfaces: heart {len(surfaces.heart.points)} nodes ({caps} valve caps), body "
          f"{len(surfaces.measurement_points)} nodes, remeshing {time.perf_counter() - start:.2f} s")
    print("| block | volume nodes | Dirichlet nodes | assembly s | factorisation s | solve s | max abs(R·1 − 1) |")
    print("|---|---|---|---|---|---|---|")
    for block in ("body", "heart"):
        transfer, stats = patient_transfer_matrix(mesh, surfaces.heart, capped, surfaces.measurement_points,
                                                  block=block)
        print(f"| {block} ({transfer.shape[0] if block == 'body' else transfer.shape[1]} columns) | "
              f"{stats.volume_nodes} | {stats.dirichlet_nodes} | {stats.assembly_s:.3f} | {stats.factorisation_s:.3f} "
              f"| {stats.solve_s:.3f} | {stats.row_sum_error:.1e} |")

    spec = DynamicsSpec(samples=args.samples)
    start = time.perf_counter()
    frame = json.loads(Path(args.anatomy).read_text())["measures"]
    truth = aliev_panfilov_dynamics(surfaces.heart, spec, frame)
    print(f"Aliev–Panfilov ground truth: {time.perf_counter() - start:.2f} s, activation "
          f"{np.nanmin(truth.activation):.2f}–{np.nanmax(truth.activation):.2f} time units")
    return surfaces.heart, transfer, spec, truth.u, truth.times


if __name__ == "__main__":
    main()
