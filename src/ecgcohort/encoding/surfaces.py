"""The four closed surfaces whose signed distances encode a patient's geometry (lengths in mm).

DeepSDF (paper 1, sec. 2.5) learns one signed distance per surface: the body surface, the LV
and RV endocardia and the epicardium. Each must bound a solid, so the open endocardia are
capped over their openings at the base.
"""

from __future__ import annotations

import numpy as np

from ecgcohort.anatomy.assembly import Surface
from ecgcohort.geometry import edge_counts, surface_volume

SURFACES: tuple[str, ...] = ("torso", "lv_endocardium", "rv_endocardium", "epicardium")

# A triangle surface: points (n, 3) mm and faces (m, 3) int64.
TriangleSurface = tuple[np.ndarray, np.ndarray]

_HEART_REGIONS = ("lv_endocardium", "rv_endocardium", "epicardium", "base")


class SurfaceError(ValueError):
    """A surface that is not closed, not outward oriented, or whose opening cannot be capped."""


def _name(patient: str, surface: str) -> str:
    return f"patient {patient}: surface {surface}" if patient else f"surface {surface}"


def _undirected(edges: np.ndarray) -> np.ndarray:
    """One int64 key per undirected edge (vertex ids below 2^31)."""
    ordered = np.sort(edges, axis=1).astype(np.int64)
    return ordered[:, 0] << 32 | ordered[:, 1]


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Vertex ids of each boundary loop of an oriented triangle surface, in the direction its
    faces traverse the boundary. Raises ValueError where the boundary is not a set of simple
    loops (a vertex on two openings)."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, inverse, counts = np.unique(_undirected(directed), return_inverse=True, return_counts=True)
    boundary = directed[counts[inverse] == 1]
    if len(np.unique(boundary[:, 0])) != len(boundary) or len(np.unique(boundary[:, 1])) != len(boundary):
        raise ValueError("the boundary passes more than once through a vertex")
    successor = dict(zip(boundary[:, 0].tolist(), boundary[:, 1].tolist()))
    loops = []
    while successor:
        start = min(successor)
        loop = [start]
        vertex = successor.pop(start)
        while vertex != start:
            loop.append(vertex)
            vertex = successor.pop(vertex)
        loops.append(np.array(loop, dtype=np.int64))
    return loops


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """z component of the cross product of 2-D vectors (broadcasting over leading axes)."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _ear_clip(polygon: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangles (index triples, counter-clockwise) of a simple counter-clockwise polygon (k, 2)
    by ear clipping; ValueError when no ear is left (the polygon self-intersects)."""
    remaining = list(range(len(polygon)))
    triangles = []
    position = 0
    while len(remaining) > 3:
        count = len(remaining)
        for attempt in range(count):
            i = (position + attempt) % count
            a, b, c = remaining[i - 1], remaining[i], remaining[(i + 1) % count]
            pa, pb, pc = polygon[a], polygon[b], polygon[c]
            if _cross(pb - pa, pc - pb) <= 0:
                continue  # reflex or degenerate corner
            others = polygon[[v for v in remaining if v not in (a, b, c)]]
            # another vertex inside (or on) the candidate ear would make its diagonal cross the rim
            sides = np.stack([_cross(q - p, others - p) for p, q in ((pa, pb), (pb, pc), (pc, pa))])
            if np.any(np.all(sides >= 0, axis=0)):
                continue
            triangles.append((a, b, c))
            del remaining[i]
            position = i
            break
        else:
            raise ValueError("no ear left: the opening does not project onto its plane as a simple polygon")
    triangles.append(tuple(remaining))
    return triangles


def cap_loop(points: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Faces (k, 3) closing the opening ``loop`` (vertex ids in the direction the open surface's
    faces traverse it) with triangles between its own vertices, oriented to continue the
    surface. The loop is projected onto its least-squares plane and ear-clipped, which handles
    the non-convex, non-star-shaped crescent of the RV opening; ValueError where the projection
    is not a simple polygon."""
    ring = loop[::-1]  # the cap traverses every rim edge against the open surface
    xyz = points[ring]
    _, _, axes = np.linalg.svd(xyz - xyz.mean(axis=0), full_matrices=False)
    planar = (xyz - xyz.mean(axis=0)) @ axes[:2].T
    x, y = planar.T
    if np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y) < 0:
        planar[:, 1] *= -1  # the clipper wants the ring counter-clockwise; triangles keep the ring's order
    return ring[np.array(_ear_clip(planar))]


def check_closed(points: np.ndarray, faces: np.ndarray, surface: str, patient: str = "") -> None:
    """Raise :class:`SurfaceError` unless the surface is closed, manifold, consistently and
    outward oriented (positive volume)."""
    boundary, nonmanifold, inconsistent = edge_counts(faces)
    if boundary:
        raise SurfaceError(f"{_name(patient, surface)} is not closed: {boundary} boundary edges")
    if nonmanifold:
        raise SurfaceError(f"{_name(patient, surface)} is not manifold: {nonmanifold} edges on more than two faces")
    if inconsistent:
        raise SurfaceError(f"{_name(patient, surface)} is not consistently oriented: "
                           f"{inconsistent} edges traversed twice the same way")
    volume = surface_volume(points, faces)
    if volume <= 0:
        raise SurfaceError(f"{_name(patient, surface)} encloses a volume of {volume:.1f} mm^3 "
                           "(faces oriented inwards?)")


def _compact(points: np.ndarray, faces: np.ndarray) -> TriangleSurface:
    """Drop the points no face uses."""
    used, renumbered = np.unique(faces, return_inverse=True)
    return np.ascontiguousarray(points[used], dtype=float), renumbered.reshape(faces.shape).astype(np.int64)


def closed_surfaces(heart: Surface, torso: Surface, *, patient: str = "") -> dict[str, TriangleSurface]:
    """The four closed, outward-oriented surfaces of :data:`SURFACES` (points mm, faces), in that order.

    Cavities: the endocardial faces (flipped: in the myocardium they face the cavity) plus a
    cap over each of their openings onto the base. Epicardium: the whole heart envelope,
    epicardium + base + the two cavity caps, i.e. the myocardium with its blood pools. Reusing
    the cavity caps makes the three heart surfaces share their triangles at the base, so the
    envelope's volume is exactly myocardium + LV cavity + RV cavity and the SDFs agree on where
    the base plane is. Only openings whose every edge borders the base are capped: a hole
    anywhere else stays open and is reported. Raises :class:`SurfaceError` naming the patient
    and the surface when a surface is not closed, not outward oriented, or cannot be capped.
    """
    label = {name: value for value, name in heart.label_names.items()}
    missing = [name for name in _HEART_REGIONS if name not in label]
    if missing:
        raise SurfaceError(f"{_name(patient, 'heart')} lacks regions {missing} "
                           f"(has {sorted(label)})")
    base_faces = heart.faces[heart.labels == label["base"]]
    base_edges = _undirected(np.concatenate([base_faces[:, [0, 1]], base_faces[:, [1, 2]], base_faces[:, [2, 0]]]))
    faces: dict[str, np.ndarray] = {}
    caps = []
    for cavity in ("lv_endocardium", "rv_endocardium"):
        endocardium = heart.faces[heart.labels == label[cavity]][:, ::-1]
        try:
            loops = boundary_loops(endocardium)
            openings = [loop for loop in loops
                        if np.isin(_undirected(np.column_stack([loop, np.roll(loop, -1)])), base_edges).all()]
            cap = np.concatenate([cap_loop(heart.points, loop) for loop in openings] or [np.empty((0, 3), np.int64)])
        except ValueError as error:
            raise SurfaceError(f"{_name(patient, cavity)} cannot be capped: {error}") from error
        caps.append(cap)
        faces[cavity] = np.concatenate([endocardium, cap])
    envelope = heart.faces[np.isin(heart.labels, [label["epicardium"], label["base"]])]
    faces["epicardium"] = np.concatenate([envelope, *caps])
    surfaces = {"torso": _compact(torso.points, torso.faces)}
    surfaces.update({name: _compact(heart.points, faces[name]) for name in SURFACES[1:]})
    for name, (points, triangles) in surfaces.items():
        check_closed(points, triangles, name, patient)
    return surfaces
