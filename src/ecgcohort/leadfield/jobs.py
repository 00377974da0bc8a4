"""The lead-field stage's jobs, free of Snakemake: sample points per patient, then lead
fields, their gradients and the lead matrix per (patient, chunk of electrodes), any number of a
patient's chunks from one factorisation."""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.io import atomic_path

# the solver, the FEM and numba are imported by the jobs that use them: the Snakefile reads
# electrode_tolerance_mm at parse time

log = logging.getLogger(__name__)

POINT_UNITS = {"points_m": "m", "region": "1 myocardium, 2 torso, 3 blood pool", "distance_to_heart_m": "m",
               "cell": "index of the containing mesh cell (.msh order)"}
CHUNK_UNITS = {"electrode_positions_m": "m", "grad_points": "ohm/m", "grad_cells": "ohm/m",
               "lead_matrix": "1 (electrode potential = lead_matrix @ V_m, in V_m's units)"}


def electrode_tolerance_mm(torso_element_size_mm: float) -> float:
    """How far (mm) an electrode may lie from a mesh's body surface: electrodes sit on the
    patient's own (fine) body surface, which the mesh's triangles of ``torso_element_size_mm``
    cut by their chordal error (1.6 mm at V6 and 3.2 mm on the upper chest with 30 mm
    triangles); 20 % of the element size, at least 1 mm, still refuses an electrode placed on
    another surface (tens of mm away)."""
    return max(1.0, 0.2 * float(torso_element_size_mm))


# the 12-lead's electrodes lead a patient's table (ecgcohort.anatomy.electrodes.STANDARD_ELECTRODES;
# not imported: the Snakefile counts the chunks at parse time)
STANDARD_ELECTRODE_COUNT = 9
#: leadfield.cell_gradient_electrodes: every electrode's ∇Z per myocardial cell, or the 12-lead's (chunk 0) alone
CELL_GRADIENT_ELECTRODES = ("all", "standard")


def electrode_chunks(n_electrodes: int, electrodes_per_job: int) -> list[range]:
    """The electrode index ranges of the chunks: the standard 12-lead's nine electrodes (the
    table's first rows) are chunk 0, read from their own table, so what uses the 12 leads only
    does not change with the other electrodes; the others follow, ``electrodes_per_job`` each
    (0: one chunk)."""
    if n_electrodes < 1 or electrodes_per_job < 0:
        raise ValueError(f"need n_electrodes >= 1 and electrodes_per_job >= 0, got {n_electrodes}, "
                         f"{electrodes_per_job}")
    first = min(STANDARD_ELECTRODE_COUNT, n_electrodes)
    size = electrodes_per_job or max(n_electrodes - first, 1)
    return [range(0, first)] + [range(start, min(start + size, n_electrodes))
                                for start in range(first, n_electrodes, size)]


def _save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def write_sample_points(patient: str, mesh: str | Path, count: int, near_fraction: float, near_mm: float,
                        seed: int, out_npz: str | Path) -> None:
    """The patient's lead-field sample points (:func:`sample_points`; randomness from
    (seed, patient)) as ``.npz``: ``points_m``, ``region``, ``distance_to_heart_m``, ``cell``,
    ``units_json``."""
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.leadfield.sampling import sample_points
    from ecgcohort.leadfield.solver import MM

    start = time.perf_counter()
    samples = sample_points(mesh, count, near_fraction, near_mm, patient_rng(seed, patient, "leadfield-points"))
    _save_npz(out_npz, {"points_m": samples.points_m, "region": samples.region,
                        "distance_to_heart_m": samples.distance_to_heart_m, "cell": samples.cell,
                        "units_json": np.array(json.dumps(POINT_UNITS))})
    log.info("patient %s: %d lead-field sample points (%d in the myocardium, %.0f%% within %g mm of the heart) "
             "in %.1f s", patient, count, int((samples.region == 1).sum()),
             100 * float((samples.distance_to_heart_m <= near_mm * MM).mean()), near_mm, time.perf_counter() - start)


def compute_lead_field_chunks(patient: str, mesh: str | Path, fibres_npz: str | Path, electrodes_csv: str | Path,
                              points_npz: str | Path, *, chunks: Sequence[int], electrodes_per_job: int,
                              conductivities: Mapping[str, Any], out_npzs: Sequence[str | Path], threads: int = 1,
                              low_rank_tolerance: float = 1e-10, electrode_tolerance_mm: float = 1.0,
                              point_gradient: str = "recovered", cell_gradient: str = "recovered",
                              cell_gradient_electrodes: str = "all") -> None:
    """Lead fields of the ``chunks`` of a patient's electrodes (chunk ``k`` of
    :func:`electrode_chunks` of the table and ``electrodes_per_job``) from one factorisation of
    the patient's matrix, each chunk one block solve, each written to its ``out_npzs`` entry as
    ``.npz``: ``electrode_names`` (E,), ``electrode_positions_m``
    (E, 3), ``grad_points`` (E, P, 3) float32 Ω/m at the sample points, ``grad_cells``
    (E, C, 3) float32 Ω/m per myocardial cell in the fibres' cell order, ``lead_matrix``
    (E, N) float64 on the fibres' nodes (eq. 3: potentials = lead_matrix @ V_m; the same as
    :func:`ecgcohort.leadfield.matrix.lead_matrix` of the float64 gradients, computed as a
    sparse product), ``stats_json`` (timings in s, MUMPS flops, sizes, units; the
    factorisation's figures in every chunk that shared it, named in ``factorisation_chunks``).
    A chunk's arrays do not depend on which other chunks share its job. The files are
    written only once every chunk is computed, each atomically. ``threads``
    serve point location and gradients (the factorisation is sequential);
    ``low_rank_tolerance`` is MUMPS's block low-rank threshold (0: exact factors);
    ``electrode_tolerance_mm``: how far an electrode (on the patient's own body surface) may lie
    from the mesh's coarser body surface (see :func:`electrode_tolerance_mm`);
    ``point_gradient``: ∇Z at the sample points, ``recovered`` (volume-weighted nodal averages
    per region, interpolated; :meth:`LeadFieldSolver.recovered_gradients`) or ``p1`` (the
    containing cell's); ``cell_gradient``: ∇Z per myocardial cell, ``recovered`` (the
    recovered gradient at the cell) or ``p1`` (the cell's own; the lead matrix is then the
    Galerkin −B Z) — the lead matrix is built from it, so the two always agree (docs/results/verification.md: recovered gives ECGs closer to the converged ones on coarse meshes, the same on
    fine ones); ``cell_gradient_electrodes``: ``all``, or ``standard``: ``grad_cells`` only in
    chunk 0 (the 12-lead's), (E, 0, 3) in the others (their lead matrices are the same either way).

    Raises :class:`LeadFieldError` naming the patient for a chunk index out of range, a table
    whose first rows are not the 12-lead's electrodes, or an electrode more than 1 mm off the
    body surface."""
    from ecgcohort.anatomy.electrode_csv import read_electrode_table
    from ecgcohort.anatomy.electrodes import STANDARD_ELECTRODES
    from ecgcohort.fibers import load_fibres
    from ecgcohort.leadfield.solver import MM, LeadFieldError, LeadFieldSolver
    from ecgcohort.leadfield.tensors import Conductivities

    start = time.perf_counter()
    if point_gradient not in ("recovered", "p1"):
        raise LeadFieldError(f"leadfield.point_gradient must be 'recovered' or 'p1', got {point_gradient!r}")
    if cell_gradient not in ("recovered", "p1"):
        raise LeadFieldError(f"leadfield.cell_gradient must be 'recovered' or 'p1', got {cell_gradient!r}")
    if cell_gradient_electrodes not in CELL_GRADIENT_ELECTRODES:
        raise LeadFieldError(f"leadfield.cell_gradient_electrodes must be one of {CELL_GRADIENT_ELECTRODES}, got "
                             f"{cell_gradient_electrodes!r}")
    chunks = [int(chunk) for chunk in chunks]
    if len(chunks) != len(out_npzs) or not chunks:
        raise LeadFieldError(f"patient {patient}: {len(chunks)} chunk(s) {chunks} for {len(out_npzs)} output file(s)")
    try:
        table = read_electrode_table(electrodes_csv)
    except ValueError as error:
        raise LeadFieldError(f"patient {patient}: {error}") from error
    layout = electrode_chunks(len(table.names), electrodes_per_job)
    for chunk in chunks:
        if not 0 <= chunk < len(layout):
            raise LeadFieldError(f"patient {patient}: chunk {chunk} out of range: {len(table.names)} electrodes in "
                                 f"{len(layout)} chunk(s), the 12-lead's then {electrodes_per_job or 'all others'} each")
    leading = list(table.names[:STANDARD_ELECTRODE_COUNT])
    if 0 in chunks and len(table.names) >= STANDARD_ELECTRODE_COUNT and tuple(leading) != STANDARD_ELECTRODES:
        raise LeadFieldError(f"patient {patient}: {electrodes_csv} does not start with the 12-lead's electrodes "
                             f"{', '.join(STANDARD_ELECTRODES)} (it starts {', '.join(leading)})")
    fibres = load_fibres(fibres_npz)
    with np.load(points_npz) as archive:
        points_m = archive["points_m"]
        drawn_in = archive["cell"] if "cell" in archive.files else None

    sigma = Conductivities.from_config(conductivities)
    solver = LeadFieldSolver(mesh, sigma, fibres.cell_structure, fibres.parent_cells, threads=threads,
                             low_rank_tolerance=low_rank_tolerance, max_electrode_offset_mm=electrode_tolerance_mm)
    offset = np.abs(solver.mesh.points_m[fibres.parent_nodes] - fibres.points_mm * MM).max()
    if offset > 1e-9:
        raise LeadFieldError(f"patient {patient}: {fibres_npz} does not belong to {mesh} (its nodes are "
                             f"{offset / MM:.3g} mm off the mesh's)")
    try:
        point_cells = solver.locate(points_m, known_cells=drawn_in)
    except LeadFieldError as error:
        raise LeadFieldError(f"patient {patient}: {points_npz}: {error}") from error
    shared = {**solver.stats.as_dict(), "patient": patient, "factorisation_chunks": chunks,
              "point_gradient": point_gradient, "cell_gradient": cell_gradient,
              "cell_gradient_electrodes": cell_gradient_electrodes, "sample_points": len(points_m),
              "units": CHUNK_UNITS}
    flux = None
    if cell_gradient == "recovered":  # the lead matrix's tensors and cell interpolation, once for every chunk
        from ecgcohort.leadfield.matrix import recovered_flux_operators
        from ecgcohort.leadfield.tensors import intracellular_tensors

        flux = recovered_flux_operators(fibres.points_mm * MM, fibres.tetrahedra,
                                        intracellular_tensors(fibres.cell_structure, sigma),
                                        solver.cell_interpolation(fibres.parent_cells))
    setup_s = time.perf_counter() - start
    contents = []
    for chunk in chunks:
        chunk_start = time.perf_counter()
        names = [table.names[index] for index in layout[chunk]]
        electrodes_m = table.positions_mm[layout[chunk].start:layout[chunk].stop] * MM
        arrays, timings = _chunk_arrays(patient, solver, fibres, sigma, electrodes_m, names, points_m, point_cells,
                                        point_gradient=point_gradient, cell_gradient=cell_gradient, flux=flux,
                                        with_cells=cell_gradient_electrodes == "all" or chunk == 0)
        stats = {**shared, **timings, "chunk": chunk, "electrodes_solved": len(names),
                 "peak_rss_mb": solver.stats.peak_rss_mb, "total_s": setup_s + time.perf_counter() - chunk_start}
        contents.append({"electrode_names": np.array(names), "electrode_positions_m": electrodes_m, **arrays,
                         "stats_json": np.array(json.dumps(stats))})
        log.info("patient %s, chunk %d: %d lead fields solved as one block in %.2f s, gradients at %d points and "
                 "%d myocardial cells in %.2f s, lead matrix in %.2f s", patient, chunk, len(names),
                 timings["solve_s"], len(points_m), arrays["grad_cells"].shape[1], timings["gradients_s"],
                 timings["lead_matrix_s"])
    with ExitStack() as renames:  # every file renamed into place only after all are written
        for out_npz, arrays in zip(out_npzs, contents):
            with open(renames.enter_context(atomic_path(out_npz)), "wb") as handle:
                np.savez(handle, **arrays)
    log.info("patient %s: chunk(s) %s from one factorisation (%.2f s) in %.1f s", patient,
             ", ".join(map(str, chunks)), solver.stats.factorisation_s, time.perf_counter() - start)


def _chunk_arrays(patient: str, solver, fibres, sigma, electrodes_m: np.ndarray, names: list[str],
                  points_m: np.ndarray, point_cells: np.ndarray, *, point_gradient: str,
                  cell_gradient: str, flux=None, with_cells: bool = True) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """One chunk's ``grad_points``, ``grad_cells`` and ``lead_matrix`` (see
    :func:`compute_lead_field_chunks`) from the patient's factored ``solver``, and the chunk's
    own solve, gradient and lead-matrix times (s). ``flux``: the fibres' mesh's
    :func:`ecgcohort.leadfield.matrix.recovered_flux_operators` (needed for
    ``cell_gradient="recovered"``). Without ``with_cells``, ``grad_cells`` is (E, 0, 3)."""
    from ecgcohort.leadfield.matrix import lead_matrix_from_nodal
    from ecgcohort.meshing.tetra import VOLUME_TAGS
    from ecgcohort.leadfield.solver import LeadFieldError, MM, lead_matrix_from_potentials
    from ecgcohort.leadfield.tensors import intracellular_tensors

    solve_before, gradients_before = solver.stats.solve_s, solver.stats.gradients_s
    try:
        z = solver.solve(electrodes_m, names)
    except LeadFieldError as error:
        raise LeadFieldError(f"patient {patient}: {error}") from error
    myocardium = VOLUME_TAGS["myocardium"]
    # the myocardium's recovered nodal gradients serve the points in it, the lead matrix and the
    # cells: computed once (for the paper's 100 electrodes on 147,455 nodes, three axes: 354 MB of float64)
    nodal = {}
    if "recovered" in (point_gradient, cell_gradient):
        gradients_start = time.perf_counter()
        nodal[myocardium] = solver.nodal_gradients(np.ascontiguousarray(z.T), myocardium)
        solver.stats.gradients_s += time.perf_counter() - gradients_start
    if point_gradient == "recovered":
        grad_points = solver.recovered_gradients(z, point_cells, points_m, dtype=np.float32, nodal=nodal)
    else:
        grad_points = solver.cell_gradients(z, point_cells, dtype=np.float32)
    matrix_start = time.perf_counter()
    if cell_gradient == "recovered":
        if flux is None:
            raise LeadFieldError(f"patient {patient}: the recovered cell gradients' lead matrix needs the flux operator")
        matrix = lead_matrix_from_nodal(flux, nodal[myocardium])
    else:
        intracellular = intracellular_tensors(fibres.cell_structure, sigma)
        matrix = lead_matrix_from_potentials(fibres.points_mm * MM, fibres.tetrahedra, intracellular,
                                             z[:, fibres.parent_nodes])
    matrix_s = time.perf_counter() - matrix_start
    if not with_cells:
        grad_cells = np.empty((len(names), 0, 3), dtype=np.float32)
    elif cell_gradient == "recovered":
        grad_cells = solver.recovered_gradients(z, fibres.parent_cells, dtype=np.float32, nodal=nodal)
    else:
        grad_cells = solver.cell_gradients(z, fibres.parent_cells, dtype=np.float32)
    timings = {"solve_s": solver.stats.solve_s - solve_before,
               "gradients_s": solver.stats.gradients_s - gradients_before, "lead_matrix_s": matrix_s}
    return {"grad_points": grad_points, "grad_cells": grad_cells, "lead_matrix": matrix}, timings
