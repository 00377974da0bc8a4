"""Benchmark of the FEM lead-field solver on one patient mesh (prints figures; not a test).

    .venv/bin/python benchmarks/leadfield.py                       # results/patients/train-0000
    .venv/bin/python benchmarks/leadfield.py --mesh M.msh --fibres F.npz --electrodes E.csv \
        --electrode-count 109 --points 65536

Times: mesh read; per MUMPS ordering, exact and block low-rank (BLR), assembly and Cholesky
factorisation (analysis and numeric phases, MUMPS's own flop count RINFOG(3) (full rank), factor entries
before and after BLR compression, and how much BLR changes Z); one block solve of all
electrodes with the shared factorisation; a few electrodes solved from scratch (assemble +
factor + solve per electrode, as one lead at a time); gradients at the sample points and per
myocardial cell, the lead matrix, and writing them (float32, as the chunk job stores them);
the ECG of every electrode over 500 time steps from the lead matrix.
With ``--electrode-count`` above the table's size, extra electrodes are drawn uniformly on the
body surface (seeded); ``--fibres synthetic`` times a mesh that has no LDRB fibres.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgcohort.conduction.action_potential import action_potential_template
from ecgcohort.conduction.eikonal import activation_times
from ecgcohort.conduction.maps import ActivationMap
from ecgcohort.ecg.forward import electrode_potentials
from ecgcohort.fibers import load_fibres
from ecgcohort.leadfield import Conductivities, LeadFieldSolver, intracellular_tensors, sample_points
from ecgcohort.leadfield.solver import (DEFAULT_LOW_RANK_TOLERANCE, MM, ORDERINGS, body_mesh,
                                        lead_matrix_from_potentials)
from ecgcohort.meshing import FACET_TAGS, VOLUME_TAGS

PATIENT = Path("results/patients/train-0000")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass(frozen=True)
class _Fibres:
    """The fields of :class:`ecgcohort.fibers.MyocardialFibres` the benchmark uses."""

    points_mm: np.ndarray
    tetrahedra: np.ndarray
    fibre_cell: np.ndarray
    parent_cells: np.ndarray
    parent_nodes: np.ndarray


def _synthetic_fibres(arrays) -> _Fibres:
    """Timing stand-in for LDRB on a mesh without fibres: circumferential fibres about the
    myocardium's principal axis (the cost of every step is independent of the directions)."""
    cells = np.flatnonzero(arrays.cell_tags == VOLUME_TAGS["myocardium"])
    nodes, local = np.unique(arrays.tetrahedra[cells], return_inverse=True)
    centres = arrays.points_m[arrays.tetrahedra[cells]].mean(axis=1)
    offsets = centres - centres.mean(axis=0)
    axis = np.linalg.svd(offsets, full_matrices=False)[2][0]
    fibres = np.cross(axis, offsets) + 1e-6 * np.cross(axis, [1.0, 0.0, 0.0])
    return _Fibres(arrays.points_m[nodes] / MM, local.reshape(-1, 4), fibres, cells, nodes)


def _electrodes(table_path: Path, count: int, arrays, rng: np.random.Generator) -> np.ndarray:
    """(count, 3) electrode positions in m: the table's, then uniform on the body surface."""
    import pandas as pd

    table = pd.read_csv(table_path)[["x_mm", "y_mm", "z_mm"]].to_numpy() * MM
    if count <= len(table):
        return table[:count]
    triangles = arrays.facets[FACET_TAGS["body_surface"]]
    corners = arrays.points_m[triangles]
    areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    chosen = rng.choice(len(triangles), size=count - len(table), p=areas / areas.sum())
    weights = rng.dirichlet(np.ones(3), size=len(chosen))
    return np.vstack([table, np.einsum("ek,eki->ei", weights, corners[chosen])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mesh", type=Path, default=PATIENT / "mesh/mesh.msh")
    parser.add_argument("--fibres", type=Path, default=PATIENT / "fibres/fibres.npz",
                        help="fibres.npz of the mesh, or 'synthetic' (for timing meshes without LDRB fibres)")
    parser.add_argument("--electrodes", type=Path, default=PATIENT / "anatomy/electrodes.csv")
    parser.add_argument("--electrode-count", type=int, default=0, help="0: the table's electrodes")
    parser.add_argument("--points", type=int, default=65536, help="sample points (paper: 2^16)")
    parser.add_argument("--orderings", default="metis,pord,amd,scotch", help=f"of {sorted(ORDERINGS)}")
    parser.add_argument("--threads", type=int, default=2, help="for point location and gradients")
    parser.add_argument("--low-rank-tolerance", type=float, default=DEFAULT_LOW_RANK_TOLERANCE,
                        help="MUMPS BLR threshold for the chunk job's sequence (0: exact factors)")
    parser.add_argument("--scratch", type=int, default=3, help="electrodes solved from scratch, one by one")
    args = parser.parse_args()
    sigma = Conductivities()
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    arrays = body_mesh(args.mesh)
    read_s = time.perf_counter() - start
    fibres = _synthetic_fibres(arrays) if str(args.fibres) == "synthetic" else load_fibres(args.fibres)
    electrodes = _electrodes(args.electrodes, args.electrode_count or _table_size(args.electrodes), arrays, rng)
    print(f"mesh {args.mesh}: {len(arrays.points_m)} nodes, {len(arrays.tetrahedra)} tetrahedra "
          f"({len(fibres.parent_cells)} myocardial), {len(electrodes)} electrodes; read (gmsh) {read_s:.2f} s")

    start = time.perf_counter()
    samples = sample_points(arrays, args.points, 0.8, 10.0, rng)
    print(f"{args.points} sample points in {time.perf_counter() - start:.2f} s (a job of its own)")

    print(f"\n{'ordering':8} {'BLR tol':>7} {'assembly s':>10} {'analysis s':>10} {'numeric s':>9} {'factor s':>8} "
          f"{'GFLOP':>7} {'entries M':>9} {'factor MB':>9} {'max |dZ|/max |Z|':>16}")
    setup, reference = {}, {}
    for ordering in args.orderings.split(","):
        for tolerance in (0.0, args.low_rank_tolerance) if args.low_rank_tolerance > 0 else (0.0,):
            solver = LeadFieldSolver(args.mesh, sigma, fibres.fibre_cell, fibres.parent_cells, ordering=ordering,
                                     low_rank_tolerance=tolerance)
            z = solver.solve(electrodes[:4])
            reference.setdefault(ordering, z)
            change = np.abs(z - reference[ordering]).max() / np.abs(reference[ordering]).max()
            s = solver.stats
            print(f"{ordering:8} {tolerance:7.0e} {s.assembly_s:10.2f} {s.analysis_s:10.2f} "
                  f"{s.numeric_factorisation_s:9.2f} {s.factorisation_s:8.2f} {s.factor_flops / 1e9:7.2f} "
                  f"{s.factor_entries_low_rank / 1e6:9.2f} {s.factor_memory_mb:9d} {change:16.1e}", flush=True)
            if tolerance == args.low_rank_tolerance:
                setup[ordering] = s.assembly_s + s.factorisation_s
            del solver
    best = min(setup, key=setup.get)

    # the chunk job's sequence
    count = len(electrodes)
    start = time.perf_counter()
    solver = LeadFieldSolver(args.mesh, sigma, fibres.fibre_cell, fibres.parent_cells, ordering=best,
                             threads=args.threads, low_rank_tolerance=args.low_rank_tolerance)
    point_cells = solver.locate(samples.points_m, known_cells=samples.cell)
    z = solver.solve(electrodes)
    grad_points = solver.cell_gradients(z, point_cells, dtype=np.float32)
    grad_cells = solver.cell_gradients(z, fibres.parent_cells, dtype=np.float32)
    matrix_start = time.perf_counter()
    matrix = lead_matrix_from_potentials(fibres.points_mm * MM, fibres.tetrahedra,
                                         intracellular_tensors(fibres.fibre_cell, sigma), z[:, fibres.parent_nodes])
    matrix_s = time.perf_counter() - matrix_start
    with tempfile.TemporaryDirectory() as folder:
        save_start = time.perf_counter()
        np.savez(Path(folder) / "chunk.npz", grad_points=grad_points, grad_cells=grad_cells, lead_matrix=matrix)
        save_s = time.perf_counter() - save_start
    total_s = time.perf_counter() - start - solver.stats.read_s
    s = solver.stats

    # ECG evaluation: all electrodes x 500 time steps from the lead matrix and a paced map
    tau = activation_times(fibres.points_mm, fibres.tetrahedra, fibres.fibre_cell, 0.6, 0.4, np.array([0]), 0.0,
                           device="cpu")
    activation = ActivationMap("benchmark", "random_pacing", tau, np.ones_like(tau), fibres.points_mm[:1],
                               np.zeros(1))
    template = action_potential_template(cache_dir=Path("results/cache"))
    ecg_start = time.perf_counter()
    electrode_potentials(matrix, activation, np.arange(500.0), template)
    ecg_s = time.perf_counter() - ecg_start
    del solver, z, grad_points, grad_cells, matrix

    scratch = []
    for electrode in electrodes[:args.scratch]:
        one = LeadFieldSolver(args.mesh, sigma, fibres.fibre_cell, fibres.parent_cells, ordering=best,
                              low_rank_tolerance=args.low_rank_tolerance)
        one.solve(electrode[None])
        # without the mesh read, like the paper's 6 s per lead (which excluded meshing)
        scratch.append(one.stats.assembly_s + one.stats.factorisation_s + one.stats.solve_s)
        del one

    print(f"\nwith the {best} ordering (fastest assembly + factorisation), the chunk job's sequence:")
    print(f"  assembly {s.assembly_s:.2f} s; factorisation {s.factorisation_s:.2f} s (analysis {s.analysis_s:.2f} s, "
          f"numeric {s.numeric_factorisation_s:.2f} s: {s.factor_flops / 1e9:.1f} GFLOP full-rank, "
          f"{s.factor_entries / 1e6:.1f} M factor entries, {s.factor_entries_low_rank / 1e6:.1f} M after BLR compression at {s.low_rank_tolerance:g}); "
          f"checking the {len(samples.points_m)} points' cells {s.locate_s:.2f} s")
    print(f"  block solve of {count} electrodes {s.solve_s:.2f} s ({s.solve_s / count * 1e3:.1f} ms per lead)")
    print(f"  gradients at the points and per {len(fibres.parent_cells)} myocardial cells {s.gradients_s:.2f} s, "
          f"lead matrix {matrix_s:.2f} s, writing {save_s:.2f} s")
    print(f"  assembly to stored gradients (wall, mesh read excluded): {total_s:.2f} s for {count} leads "
          f"({total_s / count:.3f} s per lead)")
    if scratch:
        per_lead = float(np.mean(scratch))
        print(f"  from scratch (assemble + factor + solve, one electrode at a time, mesh read excluded): "
              f"{per_lead:.2f} s per lead, {per_lead / (total_s / count):.0f}x the shared factorisation")
    print(f"  ECG of {count} electrodes x 500 time steps from the lead matrix ({len(tau)} nodes): {ecg_s:.3f} s")
    print(f"  peak resident memory {_peak_mb():.0f} MB")


def _table_size(path: Path) -> int:
    import pandas as pd

    return len(pd.read_csv(path))


if __name__ == "__main__":
    main()
