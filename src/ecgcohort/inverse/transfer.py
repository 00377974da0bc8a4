"""The transfer matrix R (m × n) from heart-surface potentials to body-surface potentials by
P1 finite elements in the volume conductor between the two surfaces.

Problem. In Ω — the torso cells outside the closed heart surface (the blood pools inside it and
the myocardium are not part of Ω) — div(σ0 ∇φ) = 0 with φ = u_H on the heart side of ∂Ω and
σ0 ∇φ·n = 0 on the body surface. σ0 is one constant in Ω, so it cancels: R does not depend on
it.

Discretisation. P1 on the tetrahedra of Ω: K the stiffness matrix, B the nodes of ∂Ω that are
not on the body surface (Dirichlet), I the rest (unknowns, body-surface nodes included — no
flux is the natural condition). φ_I = −K_II⁻¹ K_IB φ_B. Two P1 interpolations connect the
volume mesh with the remeshed surfaces:

* φ_B = P u: each Dirichlet node is projected on the nearest triangle of the remeshed heart
  surface and takes the barycentric combination of its three nodes (P is |B| × n, rows sum to 1);
* y = Q φ_I: each measurement point is projected on the nearest body-surface triangle of the
  volume mesh and reads φ there (Q is m × |I|, rows sum to 1).

So R = −Q K_II⁻¹ K_IB P. K_II is factored once (MUMPS Cholesky) and the solve is one block of
right-hand sides: m columns Qᵀ (``block="body"``, R = −(K_II⁻¹Qᵀ)ᵀ K_IB P, the reciprocal form
the lead fields use) or n columns K_IB P (``block="heart"``); both give the same R (tested), the
first with fewer columns when m < n. Because K·1 = 0 and P·1 = Q·1 = 1, a constant heart
potential gives the same constant everywhere: R·1 = 1 up to solver round-off, which is checked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse

from ecgcohort.geometry import boundary_faces
from ecgcohort.inverse.problem import InverseError, SurfaceMesh
from ecgcohort.leadfield.matrix import p1_gradients
from ecgcohort.leadfield.solver import CholeskyFactor, project_on_surface, stiffness_matrix
from ecgcohort.meshing.tetra import FACET_TAGS, VOLUME_TAGS, TaggedMesh

log = logging.getLogger(__name__)

BLOCKS: tuple[str, ...] = ("body", "heart")


@dataclass
class TransferStats:
    """Sizes, timings (s) and checks of one transfer matrix; distances in the points' unit."""

    volume_nodes: int = 0
    volume_cells: int = 0
    dirichlet_nodes: int = 0
    unknowns: int = 0
    heart_nodes: int = 0
    measurement_points: int = 0
    block: str = "body"
    assembly_s: float = 0.0
    factorisation_s: float = 0.0
    solve_s: float = 0.0
    interpolation_s: float = 0.0
    factor_memory_mb: int = 0
    max_heart_projection: float = 0.0
    max_measurement_projection: float = 0.0
    row_sum_error: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def outer_cells(points: np.ndarray, tetrahedra: np.ndarray, cell_tags: np.ndarray, heart: SurfaceMesh) -> np.ndarray:
    """Boolean mask of the torso cells whose centroid lies outside the closed ``heart``
    surface (generalised winding number < 1/2)."""
    import igl

    torso = np.asarray(cell_tags) == VOLUME_TAGS["torso"]
    centroids = np.asarray(points, dtype=np.float64)[np.asarray(tetrahedra)[torso]].mean(axis=1)
    winding = igl.winding_number(np.ascontiguousarray(heart.points), np.ascontiguousarray(heart.faces),
                                 np.ascontiguousarray(centroids))
    outside = np.zeros(len(torso), dtype=bool)
    outside[np.flatnonzero(torso)] = np.abs(winding) < 0.5
    return outside


def _interpolation(points: np.ndarray, triangles: np.ndarray, queries: np.ndarray,
                   columns: int) -> tuple[scipy.sparse.csr_matrix, float]:
    distance, nodes, weights = project_on_surface(points, triangles, queries)
    rows = np.repeat(np.arange(len(queries)), 3)
    matrix = scipy.sparse.csr_matrix((weights.ravel(), (rows, nodes.ravel())), shape=(len(queries), columns))
    return matrix, float(distance.max(initial=0.0))


def transfer_matrix(points: np.ndarray, tetrahedra: np.ndarray, body_faces: np.ndarray, heart: SurfaceMesh,
                    measurement_points: np.ndarray, *, block: str = "body", ordering: str = "metis",
                    max_projection: float = np.inf) -> tuple[np.ndarray, TransferStats]:
    """R (m, n) of the volume ``tetrahedra`` (cells of Ω, node indices into ``points``):
    ``body_faces`` (triangles of ``points``) carry no flux, every other boundary face of the
    cells is Dirichlet, with data interpolated from the ``heart`` surface's n nodes;
    ``measurement_points`` (m, 3) read the solution on ``body_faces``. All lengths in one unit.
    Projections farther than ``max_projection`` are refused."""
    if block not in BLOCKS:
        raise InverseError(f"inverse.transfer.block must be one of {', '.join(BLOCKS)}, got {block!r}")
    stats = TransferStats(block=block, heart_nodes=len(heart.points), measurement_points=len(measurement_points))
    start = time.perf_counter()
    used, local = np.unique(np.asarray(tetrahedra), return_inverse=True)
    cells = local.reshape(-1, 4)
    nodes = np.asarray(points, dtype=np.float64)[used]
    index = np.full(len(points), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    body = index[np.asarray(body_faces)]
    if np.any(body < 0):
        raise InverseError("a body-surface triangle has a node outside the volume")
    body_keys = {tuple(f) for f in np.sort(body, axis=1)}
    outer = boundary_faces(cells)
    inner = outer[[tuple(f) not in body_keys for f in outer]]
    dirichlet = np.unique(inner)
    if dirichlet.size == 0:
        raise InverseError("the volume has no boundary besides the body surface: no heart surface to fix")
    touching = np.intersect1d(dirichlet, np.unique(body))
    if touching.size:
        raise InverseError(f"{touching.size} body-surface nodes lie on the heart side of the volume: the heart "
                           "touches the body surface")
    unknown = np.setdiff1d(np.arange(len(nodes)), dirichlet)
    stats.volume_nodes, stats.volume_cells = len(nodes), len(cells)
    stats.dirichlet_nodes, stats.unknowns = len(dirichlet), len(unknown)

    grads, volumes = p1_gradients(nodes, cells)
    stiffness = stiffness_matrix(cells, grads, volumes, np.broadcast_to(np.eye(3), (len(cells), 3, 3)).copy(),
                                 len(nodes))
    k_ii = stiffness[unknown][:, unknown]
    k_ib = stiffness[unknown][:, dirichlet]
    stats.assembly_s = time.perf_counter() - start

    start = time.perf_counter()
    heart_to_boundary, stats.max_heart_projection = _interpolation(heart.points, heart.faces, nodes[dirichlet],
                                                                   len(heart.points))
    position = np.full(len(nodes), -1, dtype=np.int64)
    position[unknown] = np.arange(len(unknown))
    measurement, stats.max_measurement_projection = _interpolation(
        nodes, body, np.asarray(measurement_points, dtype=np.float64), len(nodes))
    measurement = measurement[:, unknown]  # body nodes are all unknowns (checked above)
    for what, distance in (("heart-side volume node", stats.max_heart_projection),
                           ("measurement point", stats.max_measurement_projection)):
        if distance > max_projection:
            raise InverseError(f"a {what} lies {distance:.3g} from the surface it is interpolated on "
                               f"(allowed {max_projection:g}; inverse.transfer.max_projection_mm, in mm)")
    coupling = (k_ib @ heart_to_boundary).toarray()  # (|I|, n)
    stats.interpolation_s = time.perf_counter() - start

    factor = CholeskyFactor(k_ii, ordering=ordering, low_rank_tolerance=0.0)
    stats.factorisation_s = factor.figures["factorisation_s"]
    stats.factor_memory_mb = factor.figures["factor_memory_mb"]
    start = time.perf_counter()
    if block == "body":
        adjoint = factor.solve(measurement.T.toarray())  # (|I|, m)
        matrix = -(adjoint.T @ coupling)
    else:
        matrix = -(measurement @ factor.solve(coupling))
    stats.solve_s = time.perf_counter() - start
    stats.row_sum_error = float(np.max(np.abs(matrix.sum(axis=1) - 1.0)))
    return np.ascontiguousarray(matrix), stats


def patient_transfer_matrix(mesh: TaggedMesh, heart: SurfaceMesh, capped_heart: SurfaceMesh,
                            measurement_points_mm: np.ndarray, *, block: str = "body", ordering: str = "metis",
                            row_sum_tolerance: float = 1e-6,
                            max_projection_mm: float = 10.0) -> tuple[np.ndarray, TransferStats]:
    """R of a patient's mesh (mm): Ω = torso cells outside ``capped_heart`` (the closed
    epicardium + base + valve caps of the mesh), Dirichlet data from the remeshed ``heart``
    surface, measurement points on the body surface. Raises :class:`InverseError` when
    max |R·1 − 1| exceeds ``row_sum_tolerance``."""
    outside = outer_cells(mesh.points_mm, mesh.tetrahedra, mesh.cell_tags, capped_heart)
    if not outside.any():
        raise InverseError("no torso cell lies outside the heart surface")
    matrix, stats = transfer_matrix(mesh.points_mm, mesh.tetrahedra[outside], mesh.facets[FACET_TAGS["body_surface"]],
                                    heart, measurement_points_mm, block=block, ordering=ordering,
                                    max_projection=max_projection_mm)
    if not stats.row_sum_error <= row_sum_tolerance:
        raise InverseError(f"the transfer matrix fails R·1 = 1: max |R·1 − 1| = {stats.row_sum_error:.3g} "
                           f"(tolerance inverse.transfer.row_sum_tolerance = {row_sum_tolerance:g})")
    log.info("transfer matrix %d × %d: volume %d nodes / %d cells (%d Dirichlet), assembly %.2f s, factor %.2f s, "
             "solve (%s block) %.2f s, max |R·1 − 1| = %.2g, heart projection ≤ %.2f mm", *matrix.shape,
             stats.volume_nodes, stats.volume_cells, stats.dirichlet_nodes, stats.assembly_s, stats.factorisation_s,
             stats.block, stats.solve_s, stats.row_sum_error, stats.max_heart_projection)
    return matrix, stats
