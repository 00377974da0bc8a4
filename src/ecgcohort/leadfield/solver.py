"""The lead-field problem (paper eq. 4) by P1 finite elements, one factorisation per patient.

−div(G∇Z) = 0 in the body, G = G_i + G_e in the myocardium (cell tag 1, anisotropic from
per-cell fibres) and σ0·I in the torso (cell tag 2); G∇Z·n = δ_e − 1/|Σ| on the body
surface Σ (facet tag 1); ∫_Σ Z = 0. SI units throughout: the mesh's mm become m, Z is in
V/A = Ω and ∇Z in Ω/m.

The stiffness matrix does not depend on the electrode: it is assembled (numpy, from the
exact P1 gradients) and Cholesky-factored (MUMPS through PETSc) once, and every electrode
is a column of one dense right-hand-side block. The pure Neumann matrix is singular
(constants); one node is pinned to zero, which leaves the matrix SPD. With the compatible
right-hand side (the delta and the uniform sink both carry a unit current) the pinned
solution is the Neumann solution plus a constant, removed by subtracting the body-surface
mean.

The delta is discrete: its load vector is the P1 basis functions of the body-surface
triangle nearest the electrode evaluated at the electrode's projection, so reading Z or
any other P1 field "at the electrode" with the same weights is exactly reciprocal
(eq. 3 equals a direct solve of eq. 1).
"""

from __future__ import annotations

import logging
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ecgcohort.fem import p1_gradients, pinned_upper_csr, stiffness_matrix, stiffness_upper_triplets
from ecgcohort.leadfield.tensors import Conductivities, bulk_tensors
from ecgcohort.meshing.tetra import FACET_TAGS, VOLUME_TAGS, TaggedMesh, read_tagged_mesh

log = logging.getLogger(__name__)

MM = 1e-3
#: MUMPS ICNTL(7) values by name
#: MUMPS block low-rank tolerance CNTL(7) (0: exact factors)
DEFAULT_LOW_RANK_TOLERANCE = 1e-10
ORDERINGS: dict[str, int] = {"amd": 0, "amf": 2, "scotch": 3, "pord": 4, "metis": 5, "qamd": 6, "auto": 7}
#: the heart's outer surface: epicardium, base and, where blood pools are tagged, their caps
HEART_SURFACE_TAGS: tuple[int, ...] = (FACET_TAGS["epicardium"], FACET_TAGS["base"], FACET_TAGS["lv_cap"],
                                       FACET_TAGS["rv_cap"])


class LeadFieldError(ValueError):
    """Input the lead-field solver cannot use (an electrode off the body surface, a query
    point outside the mesh, fibres that do not match the myocardium...)."""


@dataclass
class SolverStats:
    """Sizes, timings (s) and MUMPS's own figures of one solver."""

    nodes: int
    cells: int
    myocardial_cells: int
    body_surface_facets: int
    ordering: str
    read_s: float = 0.0
    assembly_s: float = 0.0
    factorisation_s: float = 0.0
    analysis_s: float = 0.0
    numeric_factorisation_s: float = 0.0
    solve_s: float = 0.0
    gradients_s: float = 0.0
    locate_s: float = 0.0
    electrodes_solved: int = 0
    factor_flops: float = 0.0
    factor_entries_low_rank: int = 0
    low_rank_tolerance: float = 0.0
    factor_gflops_per_s: float = 0.0
    factor_entries: int = 0
    factor_memory_mb: int = 0
    peak_rss_mb: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BodyMesh:
    """A heart-in-torso mesh as arrays in SI units: ``points_m`` (N, 3) nodes in m,
    ``tetrahedra`` (C, 4) node indices, ``cell_tags`` (C,) volume tag per cell and
    ``facets`` {facet tag: (F, 3) node indices}; the order of the ``.msh`` file
    (:class:`ecgcohort.meshing.TaggedMesh`)."""

    points_m: np.ndarray
    tetrahedra: np.ndarray
    cell_tags: np.ndarray
    facets: dict[int, np.ndarray]


def body_mesh(mesh: str | Path | TaggedMesh) -> BodyMesh:
    """The :class:`BodyMesh` of a tagged ``.msh`` file (or of its :class:`TaggedMesh`)."""
    tagged = mesh if isinstance(mesh, TaggedMesh) else read_tagged_mesh(mesh)
    return BodyMesh(points_m=tagged.points_mm * MM, tetrahedra=tagged.tetrahedra, cell_tags=tagged.cell_tags,
                    facets=tagged.facets)


def cell_conductivities(cell_tags: np.ndarray, sigma: Conductivities, fibres_per_cell: np.ndarray | None = None,
                        myocardial_cells: np.ndarray | None = None) -> np.ndarray:
    """(C, 3, 3) bulk conductivity per cell, S/m: σ0·I in the torso, σ_blood·I in blood pools; in the myocardium
    G_i + G_e from ``fibres_per_cell`` (rows for the cells ``myocardial_cells``, which must
    be exactly the myocardium), or without fibres the orientation average of G_i + G_e,
    ((σ_i,f + σ_e,f) + 2 (σ_i,t + σ_e,t)) / 3 · I (isotropic)."""
    tensors = np.broadcast_to(sigma.torso * np.eye(3), (len(cell_tags), 3, 3)).copy()
    tensors[cell_tags == VOLUME_TAGS["blood"]] = sigma.blood * np.eye(3)
    myocardium = np.flatnonzero(cell_tags == VOLUME_TAGS["myocardium"])
    if fibres_per_cell is None:
        along, across = sigma.intra_fibre + sigma.extra_fibre, sigma.intra_cross + sigma.extra_cross
        tensors[myocardium] = (along + 2 * across) / 3 * np.eye(3)
        return tensors
    if myocardial_cells is None:
        raise LeadFieldError("fibres_per_cell needs myocardial_cells (their full-mesh cell indices)")
    cells = np.asarray(myocardial_cells, dtype=np.int64)
    if len(cells) != len(fibres_per_cell):
        raise LeadFieldError(f"{len(fibres_per_cell)} fibres for {len(cells)} myocardial cells")
    if not np.array_equal(np.sort(cells), myocardium):
        raise LeadFieldError(f"the fibres' {len(cells)} cells are not the mesh's {len(myocardium)} myocardial cells")
    tensors[cells] = bulk_tensors(fibres_per_cell, sigma)
    return tensors


def lead_matrix_from_potentials(points_m: np.ndarray, tetrahedra: np.ndarray, intracellular: np.ndarray,
                                potentials: np.ndarray) -> np.ndarray:
    """:func:`ecgcohort.leadfield.matrix.lead_matrix` from nodal Z instead of ∇Z per cell:
    L[j, a] = −∫ G_i ∇φ_a·∇Z_j = −(B Z_j)[a] with B the G_i stiffness matrix of the cells.

    ``points_m`` (N, 3) in m, ``tetrahedra`` (C, 4), ``intracellular`` (C, 3, 3) S/m,
    ``potentials`` nodal Z (E, N) in Ω on the same nodes. One sparse product instead of
    per-electrode scatters: some 50 times faster for a paper-size heart and 109 electrodes.
    """
    grads, volumes = p1_gradients(points_m, tetrahedra)
    matrix = stiffness_matrix(np.asarray(tetrahedra), grads, volumes, np.asarray(intracellular, dtype=np.float64),
                              len(points_m))
    return -np.ascontiguousarray((matrix @ np.atleast_2d(potentials).T).T)


def surface_weights(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, float]:
    """(∫_Σ φ_a per node (N,), |Σ|) of a triangle surface, in the points' units squared."""
    a, b, c = (points[triangles[:, i]] for i in range(3))
    areas = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    weights = np.zeros(len(points))
    for corner in range(3):
        weights += np.bincount(triangles[:, corner], weights=areas / 3, minlength=len(points))
    return weights, float(areas.sum())


def project_on_surface(points: np.ndarray, triangles: np.ndarray,
                       queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distance (Q,), triangle nodes (Q, 3), barycentric weights (Q, 3)) of the nearest
    point of the surface (exact point-triangle distance), in the points' units."""
    import igl

    used, local = np.unique(triangles, return_inverse=True)
    vertices = np.ascontiguousarray(points[used])
    faces = np.ascontiguousarray(local.reshape(-1, 3), dtype=np.int64)
    squared, face, closest = igl.point_mesh_squared_distance(np.ascontiguousarray(queries, dtype=np.float64),
                                                             vertices, faces)[:3]
    corners = vertices[faces[face]]
    weights = np.asarray(igl.barycentric_coordinates(np.ascontiguousarray(closest), *(
        np.ascontiguousarray(corners[:, i]) for i in range(3))))
    weights = np.clip(weights, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.sqrt(squared), used[faces[face]], weights


class CholeskyFactor:
    """A sparse symmetric positive-definite matrix factored once by MUMPS (Cholesky, through
    PETSc) for any number of dense right-hand-side blocks. ``upper``: the matrix or its upper
    triangle (scipy sparse; only the upper triangle is read). ``ordering``: MUMPS's
    fill-reducing ordering (:data:`ORDERINGS`); ``low_rank_tolerance``: block low-rank
    compression threshold (0: exact factors). ``figures``: timings (s), flops, factor sizes."""

    def __init__(self, upper, ordering: str = "metis", low_rank_tolerance: float = DEFAULT_LOW_RANK_TOLERANCE):
        import scipy.sparse

        PETSc = _petsc()
        if ordering not in ORDERINGS:
            raise LeadFieldError(f"unknown MUMPS ordering {ordering!r}; choose from {sorted(ORDERINGS)}")
        if not _canonical_upper(upper):  # the solver's own matrix is (triu's copy: 0.01-0.03 s at 1.2 mm)
            upper = scipy.sparse.triu(upper, format="csr")
            upper.sum_duplicates()
        self.size = upper.shape[0]
        # SBAIJ stores the upper triangle, which is what MUMPS's symmetric factorisation reads
        matrix = PETSc.Mat().createSBAIJ(size=upper.shape, bsize=1, csr=(upper.indptr.astype(PETSc.IntType),
                                                                         upper.indices.astype(PETSc.IntType),
                                                                         upper.data), comm=PETSc.COMM_SELF)
        matrix.setOption(PETSc.Mat.Option.SPD, True)
        matrix.assemble()
        PETSc.Log.begin()  # for the symbolic (ordering, analysis) / numeric split
        events = [PETSc.Log.Event(name) for name in ("MatCholFctrSym", "MatCholFctrNum")]
        before = [event.getPerfInfo()["time"] for event in events]
        start = time.perf_counter()
        ksp = PETSc.KSP().create(PETSc.COMM_SELF)
        ksp.setOperators(matrix)
        ksp.setType("preonly")
        pc = ksp.getPC()
        pc.setType("cholesky")
        pc.setFactorSolverType("mumps")
        pc.setFactorSetUpSolverType()
        factor = pc.getFactorMatrix()
        factor.setMumpsIcntl(7, ORDERINGS[ordering])
        factor.setMumpsIcntl(28, 1)  # sequential analysis: one process
        factor.setMumpsIcntl(27, 128)  # right-hand sides per block in the solve phase
        if low_rank_tolerance > 0:
            # block low-rank factors (MUMPS BLR, compressed after each front's factorisation):
            # 30% less time on a paper-size mesh, Z changed by 3e-9 relative at 1e-10
            factor.setMumpsIcntl(35, 2)
            factor.setMumpsCntl(7, low_rank_tolerance)
        pc.setUp()
        if factor.getMumpsInfog(1) < 0:
            raise LeadFieldError(f"MUMPS failed: INFOG(1) = {factor.getMumpsInfog(1)}, "
                                 f"INFOG(2) = {factor.getMumpsInfog(2)}")
        self.matrix, self.ksp, self.factor = matrix, ksp, factor
        analysis, numeric = (event.getPerfInfo()["time"] - t for event, t in zip(events, before))
        flops = float(factor.getMumpsRinfog(3))  # full-rank estimate
        self.figures = {"factorisation_s": time.perf_counter() - start, "analysis_s": analysis,
                        "numeric_factorisation_s": numeric, "factor_flops": flops,
                        "factor_entries_low_rank": int(factor.getMumpsInfog(35)),  # after compression
                        "factor_gflops_per_s": flops / 1e9 / max(numeric, 1e-9),
                        "factor_entries": int(factor.getMumpsInfog(29)),
                        "factor_memory_mb": int(factor.getMumpsInfog(22))}

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """X (N, K) with A X = ``rhs`` (N, K), all columns in one MUMPS solve."""
        PETSc = _petsc()

        rhs = np.asarray(rhs, dtype=np.float64)
        if rhs.ndim != 2 or rhs.shape[0] != self.size:
            raise LeadFieldError(f"right-hand sides must be ({self.size}, K), got {rhs.shape}")
        # PETSc's dense matrices are column-major: pass a Fortran-ordered block
        dense = PETSc.Mat().createDense(rhs.shape, array=np.asfortranarray(rhs), comm=PETSc.COMM_SELF)
        solution = PETSc.Mat().createDense(rhs.shape, comm=PETSc.COMM_SELF)
        solution.setUp()
        self.factor.matSolve(dense, solution)
        result = solution.getDenseArray().copy()
        dense.destroy()
        solution.destroy()
        return result


class LeadFieldSolver:
    """Lead fields Z_j of one patient's mesh: assemble and factor once, then solve any
    number of electrodes as one block.

    ``mesh_path``: a tagged ``.msh`` (mm) from :func:`ecgcohort.meshing.mesh_heart_in_torso`.
    ``fibres_per_cell`` (M, 3) or structure tensors (M, 3, 3) with ``myocardial_cells`` (M,)
    their cell indices in the mesh as read by :func:`ecgcohort.meshing.read_tagged_mesh`
    (``MyocardialFibres.cell_structure`` and
    ``.parent_cells``); without fibres the myocardium is isotropic (see
    :func:`cell_conductivities`). A homogeneous body: ``Conductivities`` with
    σ_i,f + σ_e,f = σ_i,t + σ_e,t = σ0 (and no fibres). ``ordering``: MUMPS's fill-reducing
    ordering (:data:`ORDERINGS`). ``max_electrode_offset_mm``: electrodes farther than this
    from the body surface are refused. ``low_rank_tolerance``: MUMPS's block low-rank
    compression threshold (0: exact factors; the default 1e-10 changes Z by about 3e-9 relative
    and saves 30% of the factorisation on a paper-size mesh).

    ``threads``: for point location and gradients (the PETSc wheel's MUMPS and OpenBLAS are
    sequential: the factorisation and the solves use one core whatever this says).
    """

    def __init__(self, mesh_path: str | Path, conductivities: Conductivities,
                 fibres_per_cell: np.ndarray | None = None, myocardial_cells: np.ndarray | None = None,
                 ordering: str = "metis", max_electrode_offset_mm: float = 1.0, threads: int = 1,
                 low_rank_tolerance: float = DEFAULT_LOW_RANK_TOLERANCE):
        if ordering not in ORDERINGS:
            raise LeadFieldError(f"unknown MUMPS ordering {ordering!r}; choose from {sorted(ORDERINGS)}")
        if not 0.0 <= low_rank_tolerance < 1.0:
            raise LeadFieldError(f"low_rank_tolerance must be in [0, 1), got {low_rank_tolerance}")
        self.low_rank_tolerance = float(low_rank_tolerance)
        start = time.perf_counter()
        self.mesh = body_mesh(mesh_path)
        read_s = time.perf_counter() - start
        body = self.mesh.facets.get(FACET_TAGS["body_surface"])
        if body is None or len(body) == 0:
            raise LeadFieldError(f"{mesh_path}: no body-surface facets (tag {FACET_TAGS['body_surface']})")
        self.body_triangles = body
        self.max_electrode_offset_m = max_electrode_offset_mm * MM
        self.threads = max(1, int(threads))
        self.stats = SolverStats(nodes=len(self.mesh.points_m), cells=len(self.mesh.tetrahedra),
                                 myocardial_cells=int((self.mesh.cell_tags == VOLUME_TAGS["myocardium"]).sum()),
                                 body_surface_facets=len(body), ordering=ordering, read_s=read_s,
                                 low_rank_tolerance=self.low_rank_tolerance)

        start = time.perf_counter()
        self.tensors = cell_conductivities(self.mesh.cell_tags, conductivities, fibres_per_cell, myocardial_cells)
        self.grads, self.volumes = p1_gradients(self.mesh.points_m, self.mesh.tetrahedra)
        self.surface_mass, self.surface_area = surface_weights(self.mesh.points_m, body)
        self.pinned = int(body[0, 0])
        self.matrix = self._pinned_matrix()
        self.stats.assembly_s = time.perf_counter() - start
        self._factor(ordering)
        self._centroid_tree = None
        self._boxes: tuple[np.ndarray, np.ndarray] | None = None
        # per cell tag, built on first use: every later block of electrodes reuses them
        self._nodal_operators: dict[int, list] = {}
        log.info("lead-field matrix: %d nodes, %d cells; assembled in %.2f s, factored (MUMPS Cholesky, %s) in "
                 "%.2f s: %.2f GFLOP at %.1f GFLOP/s, %d MB", self.stats.nodes, self.stats.cells,
                 self.stats.assembly_s, ordering, self.stats.factorisation_s, self.stats.factor_flops / 1e9,
                 self.stats.factor_gflops_per_s, self.stats.factor_memory_mb)

    def _pinned_matrix(self):
        import scipy.sparse

        rows, columns, values = stiffness_upper_triplets(self.mesh.tetrahedra, self.grads, self.volumes,
                                                         self.tensors)
        n = len(self.mesh.points_m)
        # pinning: the pinned row and column become the identity row/column scaled like the
        # diagonal, so the factor's pivots stay of one magnitude
        indptr, indices, data = pinned_upper_csr(rows, columns, values, n, self.pinned)
        upper = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n))
        upper.sum_duplicates()
        return upper

    def _factor(self, ordering: str) -> None:
        self.cholesky = CholeskyFactor(self.matrix, ordering, self.low_rank_tolerance)
        figures = self.cholesky.figures
        self.stats.factorisation_s = figures["factorisation_s"]
        self.stats.analysis_s = figures["analysis_s"]
        self.stats.numeric_factorisation_s = figures["numeric_factorisation_s"]
        self.stats.factor_flops = figures["factor_flops"]
        self.stats.factor_entries_low_rank = figures["factor_entries_low_rank"]
        self.stats.factor_gflops_per_s = figures["factor_gflops_per_s"]
        self.stats.factor_entries = figures["factor_entries"]
        self.stats.factor_memory_mb = figures["factor_memory_mb"]
        self.stats.peak_rss_mb = _peak_rss_mb()

    def electrode_loads(self, electrodes_m: np.ndarray,
                        names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(body-surface nodes (E, 3), P1 weights (E, 3)) of each electrode's discrete delta:
        the basis functions of the nearest body-surface triangle at the electrode's
        projection. Raises :class:`LeadFieldError` for an electrode farther than the allowed
        offset from the body surface."""
        electrodes = np.atleast_2d(np.asarray(electrodes_m, dtype=np.float64))
        if electrodes.ndim != 2 or electrodes.shape[1] != 3 or not np.isfinite(electrodes).all():
            raise LeadFieldError(f"electrodes must be finite (E, 3) positions in m, got shape {electrodes.shape}")
        distance, nodes, weights = project_on_surface(self.mesh.points_m, self.body_triangles, electrodes)
        far = np.flatnonzero(distance > self.max_electrode_offset_m)
        if far.size:
            labels = [f"#{i}" for i in range(len(electrodes))] if names is None else list(names)
            raise LeadFieldError("electrode(s) " + ", ".join(
                f"{labels[i]} at {np.round(electrodes[i] / MM, 1).tolist()} mm ({distance[i] / MM:.2f} mm off)" for i in far)
                + f" lie more than {self.max_electrode_offset_m / MM:g} mm from the body surface")
        return nodes, weights

    def solve(self, electrodes_m: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
        """Nodal Z (E, N) in Ω, zero mean over the body surface, for electrodes (E, 3) in m
        (``names`` label them in errors)."""
        nodes, weights = self.electrode_loads(electrodes_m, names)
        start = time.perf_counter()
        count = len(nodes)
        loads = np.tile(-self.surface_mass / self.surface_area, (count, 1))
        np.add.at(loads, (np.repeat(np.arange(count), 3), nodes.ravel()), weights.ravel())
        loads[:, self.pinned] = 0.0
        z = self.cholesky.solve(loads.T).T.copy()
        z -= (z @ self.surface_mass)[:, None] / self.surface_area
        self.stats.solve_s += time.perf_counter() - start
        self.stats.electrodes_solved += count
        self.stats.peak_rss_mb = _peak_rss_mb()
        return z

    def cell_gradients(self, z: np.ndarray, cells: np.ndarray | None = None, dtype=np.float64,
                       block: int = 16) -> np.ndarray:
        """∇Z per cell (E, C, 3) in Ω/m (constant on each P1 cell) for nodal ``z`` (E, N);
        ``cells``: full-mesh cell indices (default all); ``dtype`` of the result, computed in
        float64 ``block`` electrodes at a time."""
        import scipy.sparse

        start = time.perf_counter()
        selected = np.arange(len(self.mesh.tetrahedra)) if cells is None else np.asarray(cells, dtype=np.int64)
        count = len(selected)
        # the (3C, N) operator nodal values -> cell gradients: one sparse product per block
        rows = np.broadcast_to(3 * np.arange(count)[:, None, None] + np.arange(3), (count, 4, 3))
        columns = np.broadcast_to(self.mesh.tetrahedra[selected][:, :, None], (count, 4, 3))
        operator = scipy.sparse.csr_matrix((self.grads[selected].ravel(), (rows.ravel(), columns.ravel())),
                                           shape=(3 * count, len(self.mesh.points_m)))
        values = np.ascontiguousarray(np.atleast_2d(z).T)
        out = np.empty((values.shape[1], count, 3), dtype=dtype)

        def fill(first: int) -> None:  # scipy's sparse products release the GIL
            part = operator @ values[:, first:first + block]
            out[first:first + block] = part.reshape(count, 3, -1).transpose(2, 0, 1)

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(fill, range(0, values.shape[1], block)))
        self.stats.gradients_s += time.perf_counter() - start
        return out

    def recovered_gradients(self, z: np.ndarray, cells: np.ndarray, points_m: np.ndarray | None = None,
                            dtype=np.float64, nodal: Mapping[int, list[np.ndarray]] | None = None) -> np.ndarray:
        """Recovered ∇Z (E, K, 3) in Ω/m: the P1 cell gradients averaged at every node, weighted
        by cell volume, within each region separately (∇Z jumps across the heart–torso
        interface), then interpolated linearly — at ``points_m`` (K, 3) in m inside ``cells``
        (K,), or at the centroids of ``cells`` (a linear field's cell mean). Smoother than
        the piecewise-constant P1 gradient and, away from boundaries, closer to the exact one
        (Zienkiewicz–Zhu recovery). Computed in float64 and stored as ``dtype``. ``nodal``:
        :meth:`nodal_gradients` of these ``z`` already computed, by cell tag (the others are
        computed here)."""
        start = time.perf_counter()
        cells = np.asarray(cells, dtype=np.int64)
        values = np.ascontiguousarray(np.atleast_2d(z).T)
        count = values.shape[1]
        out = np.empty((count, len(cells), 3), dtype=dtype)
        interpolation = self.cell_interpolation(cells, points_m)
        tags = self.mesh.cell_tags[cells]
        # a few electrodes per product: each (K, block) result stays under 24 MB, so the allocator
        # reuses it instead of mapping (and faulting in) fresh pages for a (K, E) one per axis
        block = max(1, (24 << 20) // (8 * max(len(cells), 1)))
        for tag in np.unique(tags):
            selected = np.flatnonzero(tags == tag)
            whole = len(selected) == len(cells)
            rows = interpolation if whole else interpolation[selected]
            given = None if nodal is None else nodal.get(int(tag))
            for axis, gradient in enumerate(self.nodal_gradients(values, tag) if given is None else given):
                for first in range(0, count, block):
                    part = (rows @ gradient[:, first:first + block]).T
                    if whole:
                        out[first:first + block, :, axis] = part
                    else:
                        out[first:first + block, selected, axis] = part
        self.stats.gradients_s += time.perf_counter() - start
        return out

    def nodal_gradients(self, values: np.ndarray, tag: int) -> list[np.ndarray]:
        """Per axis, the recovered ∇Z (N, E) in Ω/m at the mesh's nodes from nodal ``values``
        (N, E) in Ω: the volume-weighted average of the P1 gradients of the cells tagged ``tag``
        around each node (zero at nodes of no such cell)."""
        return [operator @ values for operator in self._nodal_gradient_operator(tag)]

    def cell_interpolation(self, cells: np.ndarray, points_m: np.ndarray | None = None):
        """The sparse (K, N) map from nodal values to their P1 interpolant at ``points_m`` (K, 3)
        in m inside ``cells`` (K,), or at the centroids of ``cells``."""
        import scipy.sparse

        cells = np.asarray(cells, dtype=np.int64)
        corners = self.mesh.tetrahedra[cells]
        if points_m is None:
            weights = np.full((len(cells), 4), 0.25)
        else:
            offsets = np.asarray(points_m, dtype=np.float64) - self.mesh.points_m[corners[:, 0]]
            weights = np.einsum("kai,ki->ka", self.grads[cells], offsets)
            weights[:, 0] += 1.0
        rows = np.repeat(np.arange(len(cells)), 4)
        return scipy.sparse.csr_matrix((weights.ravel(), (rows, corners.ravel())),
                                       shape=(len(cells), len(self.mesh.points_m)))

    def _nodal_gradient_operator(self, tag: int) -> list:
        """Per component, the sparse map nodal Z -> volume-weighted nodal average of the P1
        gradients of the cells tagged ``tag`` (zero at nodes of no such cell); built once per
        tag (on 1.2 mm meshes building them costs more than applying them to 25 electrodes)."""
        import scipy.sparse

        if tag in self._nodal_operators:
            return self._nodal_operators[tag]
        cells = np.flatnonzero(self.mesh.cell_tags == tag)
        tets = self.mesh.tetrahedra[cells]
        n = len(self.mesh.points_m)
        weight = np.bincount(tets.ravel(), weights=np.repeat(self.volumes[cells], 4), minlength=n)
        share = np.repeat(self.volumes[cells], 4) / np.where(weight > 0, weight, 1.0)[tets.ravel()]
        average = scipy.sparse.csr_matrix((share, (tets.ravel(), np.repeat(np.arange(len(cells)), 4))),
                                          shape=(n, len(cells)))
        # the cell gradients' rows in CSR form directly, each row's four nodes in ascending order
        # (what scipy's COO conversion and sum_duplicates make of them; the three regions' operators
        # 0.44 -> 0.40 s at 1.2 mm)
        order = np.argsort(tets, axis=1)
        indices = np.take_along_axis(tets, order, axis=1).ravel()
        indptr = np.arange(0, 4 * len(cells) + 1, 4)
        grads = self.grads[cells]
        operators = []
        for axis in range(3):
            gradient = scipy.sparse.csr_matrix((np.take_along_axis(grads[:, :, axis], order, axis=1).ravel(), indices,
                                                indptr), shape=(len(cells), n))
            operators.append((average @ gradient).tocsr())
        self._nodal_operators[tag] = operators
        return operators

    def contains(self, points_m: np.ndarray, cells: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
        """Whether each cell (P,) contains its point (P, 3) in m (barycentric coordinates)."""
        offsets = points_m - self.mesh.points_m[self.mesh.tetrahedra[cells, 0]]
        barycentric = np.einsum("pai,pi->pa", self.grads[cells], offsets)
        barycentric[:, 0] += 1.0
        return barycentric.min(axis=1) >= -tolerance

    def locate(self, points_m: np.ndarray, candidates: int = 16, batch: int = 16384,
               known_cells: np.ndarray | None = None, outside: str = "raise") -> np.ndarray:
        """Index of a cell containing each point (P,) in m; a point outside the mesh raises
        :class:`LeadFieldError` (``outside="raise"``) or gets -1 (``outside="mark"``).
        ``known_cells`` (P,), e.g. the cells the points were drawn in, are
        checked and kept where they hold their point. The cells with the ``candidates``
        nearest centroids are tested by their barycentric coordinates; points none of them
        contains (rare: beside large or flat cells) are tested against every cell whose
        bounding box holds them."""
        start = time.perf_counter()
        points = np.asarray(points_m, dtype=np.float64).reshape(-1, 3)
        cells = np.full(len(points), -1, dtype=np.int64)
        if known_cells is not None:
            known = np.asarray(known_cells, dtype=np.int64).reshape(-1)
            if known.shape == (len(points),) and np.all((known >= 0) & (known < len(self.mesh.tetrahedra))):
                holds = self.contains(points, known)
                cells[holds] = known[holds]
        unknown = np.flatnonzero(cells < 0)
        if unknown.size:
            cells[unknown] = self._locate_by_centroids(points[unknown], candidates, batch)
        missing = np.flatnonzero(cells < 0)
        if missing.size:
            cells[missing] = self._locate_by_bounding_boxes(points[missing], raise_outside=outside == "raise")
        self.stats.locate_s += time.perf_counter() - start
        return cells

    def _locate_by_centroids(self, points: np.ndarray, candidates: int, batch: int) -> np.ndarray:
        """A cell containing each point among those with the nearest centroids (-1: none)."""
        from scipy.spatial import cKDTree

        tets = self.mesh.tetrahedra
        if self._centroid_tree is None:
            self._centroid_tree = cKDTree(self.mesh.points_m[tets].mean(axis=1))
        k = min(candidates, len(tets))
        cells = np.full(len(points), -1, dtype=np.int64)
        for first in range(0, len(points), batch):
            part = points[first:first + batch]
            near = self._centroid_tree.query(part, k=k, workers=self.threads)[1].reshape(len(part), k)
            # barycentric coordinates λ_a = δ_a0 + ∇λ_a·(x − x_0) in each candidate
            offsets = part[:, None, :] - self.mesh.points_m[tets[near, 0]]
            barycentric = np.einsum("pkai,pki->pka", self.grads[near], offsets)
            barycentric[..., 0] += 1.0
            inside = barycentric.min(axis=2) >= -1e-12
            found = inside.any(axis=1)
            cells[first:first + batch][found] = near[found, inside[found].argmax(axis=1)]
        return cells

    def _locate_by_bounding_boxes(self, points_m: np.ndarray, raise_outside: bool = True) -> np.ndarray:
        """Cells containing each point, testing every cell whose bounding box holds it."""
        tets = self.mesh.tetrahedra
        if self._boxes is None:
            corners = self.mesh.points_m[tets]
            self._boxes = corners.min(axis=1), corners.max(axis=1)
        low, high = self._boxes
        cells = np.full(len(points_m), -1, dtype=np.int64)
        for i, point in enumerate(points_m):
            boxed = np.flatnonzero(np.all((low <= point + 1e-12) & (high >= point - 1e-12), axis=1))
            offsets = point - self.mesh.points_m[tets[boxed, 0]]
            barycentric = np.einsum("kai,ki->ka", self.grads[boxed], offsets)
            barycentric[:, 0] += 1.0
            inside = np.flatnonzero(barycentric.min(axis=1) >= -1e-10)
            if inside.size:
                cells[i] = boxed[inside[0]]
        outside = np.flatnonzero(cells < 0)
        if outside.size and raise_outside:
            raise LeadFieldError(f"{outside.size} query point(s) lie outside the mesh, e.g. "
                                 f"{np.round(points_m[outside[0]] / MM, 2).tolist()} mm")
        return cells

    def point_gradients(self, z: np.ndarray, points_m: np.ndarray) -> np.ndarray:
        """∇Z (E, P, 3) in Ω/m at points (P, 3) in m: the P1 gradient of a containing cell."""
        return self.cell_gradients(z, self.locate(points_m))

    def surface_integral(self, z: np.ndarray) -> np.ndarray:
        """∫_Σ Z (E,) over the body surface, Ω·m², for nodal ``z`` (E, N)."""
        return np.atleast_2d(z) @ self.surface_mass

    def evaluate_at_electrodes(self, values: np.ndarray, electrodes_m: np.ndarray) -> np.ndarray:
        """A nodal P1 field (N,) or (K, N) read at electrodes (E, 3) in m, with the weights of
        the discrete delta (result (E,) or (K, E))."""
        nodes, weights = self.electrode_loads(electrodes_m)
        v = np.asarray(values)
        return np.einsum("...ek,ek->...e", v[..., nodes], weights)


@dataclass
class LeadFieldResult:
    """Lead fields of a set of electrodes: ``potentials`` nodal Z (E, N) in Ω, ``points_m``
    mesh nodes (N, 3), ``grad_points`` ∇Z (E, P, 3) in Ω/m at the query points, ``grad_cells``
    ∇Z (E, C, 3) in Ω/m per myocardial cell (the ``myocardial_cells`` order), ``stats``."""

    electrodes_m: np.ndarray
    points_m: np.ndarray
    potentials: np.ndarray
    myocardial_cells: np.ndarray
    grad_cells: np.ndarray
    grad_points: np.ndarray | None
    stats: SolverStats


def lead_field_gradients(mesh_path: str | Path, electrodes_mm: np.ndarray,
                         conductivities: Conductivities = Conductivities(), fibres=None,
                         query_points_mm: np.ndarray | None = None, ordering: str = "metis",
                         threads: int = 1, low_rank_tolerance: float = DEFAULT_LOW_RANK_TOLERANCE,
                         max_electrode_offset_mm: float | None = None) -> LeadFieldResult:
    """All lead fields of one mesh in one call.

    ``mesh_path``: tagged ``.msh`` (mm). ``electrodes_mm`` (E, 3) in mm, on the body surface
    within ``max_electrode_offset_mm`` (None: a fifth of the mesh's mean body-surface edge, at
    least 1 mm — electrodes on the patient's own body surface lie off a coarse mesh's chords,
    as in the workflow's :func:`ecgcohort.leadfield.jobs.electrode_tolerance_mm`). ``fibres``: a :class:`ecgcohort.fibers.MyocardialFibres` (or its ``.npz``
    path) of the same mesh, or None for an isotropic myocardium. ``query_points_mm`` (P, 3)
    in mm inside the mesh, optional. ``threads`` for point location and gradients;
    ``low_rank_tolerance`` as in :class:`LeadFieldSolver`. Returns Z
    in Ω and ∇Z in Ω/m (SI, positions in m).
    """
    if isinstance(fibres, (str, Path)):
        from ecgcohort.fibers import load_fibres

        fibres = load_fibres(fibres)
    solver = LeadFieldSolver(mesh_path, conductivities, None if fibres is None else fibres.cell_structure,
                             None if fibres is None else fibres.parent_cells, ordering=ordering, threads=threads,
                             low_rank_tolerance=low_rank_tolerance)
    if max_electrode_offset_mm is None:
        corners = solver.mesh.points_m[solver.body_triangles]
        edge_mm = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).mean() / MM
        max_electrode_offset_mm = max(1.0, 0.2 * edge_mm)
    solver.max_electrode_offset_m = float(max_electrode_offset_mm) * MM
    electrodes_m = np.asarray(electrodes_mm, dtype=np.float64).reshape(-1, 3) * MM
    query_cells = None if query_points_mm is None else solver.locate(np.asarray(query_points_mm, dtype=np.float64) * MM)
    z = solver.solve(electrodes_m)
    cells = (np.flatnonzero(solver.mesh.cell_tags == VOLUME_TAGS["myocardium"]) if fibres is None
             else np.asarray(fibres.parent_cells, dtype=np.int64))
    grad_points = None if query_cells is None else solver.cell_gradients(z, query_cells)
    return LeadFieldResult(electrodes_m=electrodes_m, points_m=solver.mesh.points_m, potentials=z,
                           myocardial_cells=cells, grad_cells=solver.cell_gradients(z, cells),
                           grad_points=grad_points, stats=solver.stats)


def _canonical_upper(matrix) -> bool:
    """Whether a scipy sparse matrix is CSR with sorted, summed indices and no entry below the
    diagonal: ``scipy.sparse.triu(matrix, format="csr")`` would give the same arrays."""
    import scipy.sparse

    if not scipy.sparse.issparse(matrix) or matrix.format != "csr" or not matrix.has_canonical_format:
        return False
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return bool(np.all(matrix.indices >= rows))


def _petsc():
    """petsc4py's PETSc module; the PETSc wheel needs libmpi from the mpich wheel loaded first."""
    from mpi4py import MPI  # noqa: F401
    from petsc4py import PETSc

    return PETSc


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
