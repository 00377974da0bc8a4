"""Triangle-surface checks and measures shared by the geometry stages (lengths in mm)."""

from __future__ import annotations

from dataclasses import dataclass

import igl
import numpy as np


@dataclass(frozen=True)
class SurfaceReport:
    """Topology and embedding of a triangle surface."""

    boundary_edges: int
    nonmanifold_edges: int
    inconsistently_oriented_edges: int
    volume_mm3: float
    misplaced_probe_fraction: float

    @property
    def watertight(self) -> bool:
        return self.boundary_edges == 0 and self.nonmanifold_edges == 0 and self.inconsistently_oriented_edges == 0


#: The four faces of a tetrahedron (node indices), each opposite one node.
TET_FACES = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def boundary_faces(tetrahedra: np.ndarray) -> np.ndarray:
    """The faces (F, 3) that belong to one tetrahedron only (the boundary of the cells)."""
    faces = np.sort(np.asarray(tetrahedra)[:, TET_FACES].reshape(-1, 3), axis=1)
    unique, counts = np.unique(faces, axis=0, return_counts=True)
    return unique[counts == 1]


def spatial_order(points: np.ndarray, bits: int = 8) -> np.ndarray:
    """Permutation of ``points`` (P, 3) into Morton (Z-curve) order on a grid of 2**bits cells per
    axis over their bounding box. Queries of a bounding-volume tree in this order revisit the
    same boxes one after another: libigl's closest-point queries run 1.5-2 times faster on the
    random SDF and lead-field samples, and each query's result does not depend on the order."""
    low = points.min(axis=0, initial=np.inf)
    span = max(float((points.max(axis=0, initial=-np.inf) - low).max(initial=0.0)), 1e-300)
    cells = ((points - low) * ((2 ** bits - 1) / span)).astype(np.uint64)
    code = np.zeros(len(points), dtype=np.uint64)
    for bit in range(bits):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def surface_volume(points: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume (mm^3) of a closed surface by the divergence theorem; positive when
    the faces are oriented outwards."""
    a, b, c = (points[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def surface_area(points: np.ndarray, faces: np.ndarray) -> float:
    """Total area (mm^2)."""
    a, b, c = (points[faces[:, i]] for i in range(3))
    return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())


def edge_counts(faces: np.ndarray) -> tuple[int, int, int]:
    """(boundary edges, non-manifold edges, edges whose two faces disagree in orientation)."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    undirected = np.sort(directed, axis=1)
    # one integer per edge: np.unique on a 1-D key, not on rows (10x faster)
    key = undirected[:, 0] * (int(undirected.max(initial=0)) + 1) + undirected[:, 1]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    boundary = int((counts == 1).sum())
    nonmanifold = int((counts > 2).sum())
    # on a consistently oriented manifold each undirected edge is traversed once each way
    forward = (directed[:, 0] < directed[:, 1]).astype(int)
    forward_per_edge = np.bincount(inverse.ravel(), weights=forward, minlength=len(counts))
    inconsistent = int(((counts == 2) & (forward_per_edge != 1)).sum())
    return boundary, nonmanifold, inconsistent


def vertex_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals."""
    a, b, c = (points[faces[:, i]] for i in range(3))
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(points)
    for i in range(3):
        np.add.at(normals, faces[:, i], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)


def winding_numbers(points: np.ndarray, faces: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Generalised winding number of the surface at ``queries`` (1 inside, 0 outside)."""
    return np.asarray(igl.fast_winding_number(np.ascontiguousarray(points, dtype=np.float64),
                                              np.ascontiguousarray(faces, dtype=np.int64),
                                              np.ascontiguousarray(queries, dtype=np.float64)))


def inspect_surface(points: np.ndarray, faces: np.ndarray, probe_offset_mm: float = 0.05) -> SurfaceReport:
    """Check a closed surface. Probes just inside and outside every face centre must have
    winding numbers 1 and 0; a self-intersection or fold puts probes at 2, -1 or the wrong
    side, which ``misplaced_probe_fraction`` counts."""
    boundary, nonmanifold, inconsistent = edge_counts(faces)
    a, b, c = (points[faces[:, i]] for i in range(3))
    centres = (a + b + c) / 3.0
    normals = np.cross(b - a, c - a)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)
    # one call: libigl builds its tree of the surface once for both probe sets
    inside, outside = np.split(winding_numbers(points, faces, np.concatenate([centres - probe_offset_mm * normals,
                                                                               centres + probe_offset_mm * normals])), 2)
    misplaced = (np.abs(inside - 1.0) > 0.5) | (np.abs(outside) > 0.5)
    return SurfaceReport(boundary, nonmanifold, inconsistent, surface_volume(points, faces),
                         float(misplaced.mean()))


def signed_distance(points: np.ndarray, faces: np.ndarray, queries: np.ndarray,
                    closed_surface: bool = False) -> np.ndarray:
    """Signed distance (mm) from ``queries`` to the surface: negative inside. The sign is the
    winding number's, unless ``closed_surface`` promises a closed, consistently oriented surface
    (one that passed :func:`inspect_surface`): then libigl's angle-weighted pseudonormal, which is
    exact there and 5-6 times faster on a 100k-triangle heart. The queries are answered in
    :func:`spatial_order` (about twice as fast on scattered points; each value is the same)."""
    sign = igl.SIGNED_DISTANCE_TYPE_PSEUDONORMAL if closed_surface else igl.SIGNED_DISTANCE_TYPE_DEFAULT
    queries = np.asarray(queries, dtype=np.float64)
    order = spatial_order(queries)
    distance, _, _ = igl.signed_distance(np.ascontiguousarray(queries[order]),
                                         np.ascontiguousarray(points, dtype=np.float64),
                                         np.ascontiguousarray(faces, dtype=np.int64), sign_type=sign)[:3]
    result = np.empty(len(queries))
    result[order] = np.asarray(distance).reshape(-1)
    return result


def surface_centroid(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Centroid (mm) of the solid bounded by a closed, outward-oriented surface."""
    a, b, c = (points[faces[:, i]] for i in range(3))
    signed = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
    return (signed[:, None] * (a + b + c) / 4.0).sum(axis=0) / signed.sum()


def rotation_about(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotation matrix (3, 3) by ``angle_deg`` degrees about the unit vector ``axis`` (right hand)."""
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    angle = np.radians(angle_deg)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def ray_hits(points: np.ndarray, faces: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Points (k, 3) where the ray ``origin + t * direction`` (t > 0) crosses the surface,
    nearest first."""
    direction = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    hits = igl.ray_mesh_intersect(np.asarray(origin, dtype=np.float64), direction,
                                  np.ascontiguousarray(points, dtype=np.float64),
                                  np.ascontiguousarray(faces, dtype=np.int64))
    distances = np.unique(np.round([hit[1] for hit in hits if hit[1] > 0], 9))  # (face, t, u, v)
    return np.asarray(origin, dtype=float) + distances[:, None] * direction


def grid_inside(points: np.ndarray, faces: np.ndarray, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """Whether each point of the regular grid ``xs`` × ``ys`` × ``zs`` (ascending, mm) lies inside
    the closed, consistently oriented surface (``points`` (V, 3), ``faces`` (F, 3)): a bool array
    (len(xs), len(ys), len(zs)), C order as :func:`ecgcohort.encoding.chamfer.regular_grid`.

    The parity of the surface's crossings along each grid line parallel to x: each triangle
    visits only the lines its shadow on the (y, z) plane covers, so a 64³ grid costs about a
    hundredth of its winding numbers. A line through an edge or vertex is moved off it by a
    symbolic perturbation (y + ε, z + ε²), with every edge's test computed in one direction for
    both of its triangles, so each crossing counts once; a point on the surface itself may fall
    on either side, as its winding number's ½ may."""
    xs, ys, zs = (np.ascontiguousarray(axis, dtype=np.float64) for axis in (xs, ys, zs))
    for name, axis in (("xs", xs), ("ys", ys), ("zs", zs)):
        if axis.ndim != 1 or len(axis) == 0 or np.any(np.diff(axis) <= 0):
            raise ValueError(f"grid_inside: {name} must be a non-empty ascending 1-D array")
    # the compiled kernels in a module of their own: numba stays out of the jobs that only measure
    from ecgcohort.grid_crossings import fill_by_parity, line_crossings

    points = np.ascontiguousarray(points, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    offsets, crossings = line_crossings(points, faces, ys, zs)
    return fill_by_parity(offsets, crossings, xs, len(ys), len(zs))
