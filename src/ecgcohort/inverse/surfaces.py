"""The heart and body surfaces of the inverse problem, taken from a patient's tagged mesh.

Heart surface. Paper 2 reconstructs on the closed surface that encloses the heart. In our
meshes the epicardium and the base facets (the basal ring of the myocardium) leave the valve
openings open — the blood pools reach the torso through them — so the closed heart surface is
epicardium + base + one cap per opening: each boundary loop is closed by a fan of triangles
from the loop's centroid. That surface is remeshed with pyacvd (Voronoi clustering) to the
configured node count (paper: 1094 nodes, 2184 triangles).

Body surface. Either the body-surface facets remeshed with pyacvd to the configured count
(paper: 352 nodes) or the patient's electrodes (12-lead + anterior array) as the measurement
points. Lengths in mm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgcohort.inverse.problem import InverseError, SurfaceMesh
from ecgcohort.io import atomic_path
from ecgcohort.meshing.tetra import FACET_TAGS, TaggedMesh

log = logging.getLogger(__name__)

HEART_FACETS: tuple[str, ...] = ("epicardium", "base")
BODY_CHOICES: tuple[str, ...] = ("remesh", "electrodes")


def edge_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique undirected edges (E, 2), number of triangles at each)."""
    faces = np.asarray(faces, dtype=np.int64)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique(edges, axis=0, return_counts=True)


def check_closed(surface: SurfaceMesh, what: str) -> None:
    """Raise :class:`InverseError` unless every edge of ``surface`` has exactly two triangles."""
    edges, counts = edge_counts(surface.faces)
    open_edges, crowded = int(np.sum(counts == 1)), int(np.sum(counts > 2))
    if open_edges or crowded:
        raise InverseError(f"{what} is not a closed surface: {open_edges} edges with one triangle, "
                           f"{crowded} with more than two ({len(edges)} edges)")


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """The boundary loops of a triangle mesh as node sequences, each ordered along the
    direction its edges have in their triangles."""
    faces = np.asarray(faces, dtype=np.int64)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges, counts = edge_counts(faces)
    boundary = {tuple(e) for e in edges[counts == 1]}
    following: dict[int, int] = {}
    for a, b in directed:
        if (min(a, b), max(a, b)) in boundary:
            if a in following:
                raise InverseError(f"the boundary passes node {a} twice: the holes are not simple loops")
            following[int(a)] = int(b)
    loops = []
    while following:
        start = next(iter(following))
        loop = [start]
        node = following.pop(start)
        while node != start:
            if node not in following:
                raise InverseError(f"the boundary loop through node {start} does not close")
            loop.append(node)
            node = following.pop(node)
        loops.append(np.array(loop))
    return loops


def _triangulate_planar_loop(points: np.ndarray, loop: np.ndarray) -> np.ndarray | None:
    """Triangles (len(loop) − 2, 3) of node indices that fill a planar loop without new nodes
    (a constrained Delaunay triangulation of the polygon in its plane), or None where the loop is
    not planar or the triangulation does not fill it exactly."""
    import pyvista

    corners = points[loop]
    centre = corners.mean(axis=0)
    _, singular, axes = np.linalg.svd(corners - centre, full_matrices=False)
    if singular[2] > 1e-6 * singular[0]:
        return None
    plane = (corners - centre) @ axes[:2].T
    area = 0.5 * np.sum(plane[:, 0] * np.roll(plane[:, 1], -1) - np.roll(plane[:, 0], -1) * plane[:, 1])
    order = np.arange(len(loop)) if area > 0 else np.arange(len(loop))[::-1]
    polygon = pyvista.PolyData(np.column_stack([plane, np.zeros(len(loop))]), faces=np.r_[len(loop), order])
    filled = polygon.delaunay_2d(edge_source=polygon)
    triangles = np.asarray(filled.faces).reshape(-1, 4)[:, 1:]
    if filled.n_points != len(loop) or len(triangles) != len(loop) - 2:
        return None
    return loop[triangles]


def cap_holes(surface: SurfaceMesh) -> tuple[SurfaceMesh, int]:
    """``surface`` with each boundary loop closed (oriented like the triangles next to it), and
    the number of caps. A planar loop (the valve openings of a basal cut) is filled by a
    constrained triangulation of its polygon: a fan from the centroid would overhang a
    non-convex opening (the crescent of the RV) and overlap the surface around it. Other loops
    get a fan of triangles from their centroid."""
    points, faces = surface.points, surface.faces
    loops = boundary_loops(faces)
    new_points, new_faces = [points], [faces]
    for loop in loops:
        # the loop runs a→b as in its triangles; the cap must run b→a to be consistent
        fan_normal = np.cross(points[np.roll(loop, -1)] - points[loop].mean(axis=0),
                              points[loop] - points[loop].mean(axis=0)).sum(axis=0)
        filled = _triangulate_planar_loop(points, loop)
        if filled is not None:
            corners = points[filled]
            normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            flip = normals @ fan_normal < 0
            filled[flip] = filled[flip][:, ::-1]
            new_faces.append(filled)
            continue
        centre = len(points) + len(new_points) - 1
        new_points.append(points[loop].mean(axis=0, keepdims=True))
        new_faces.append(np.column_stack([np.roll(loop, -1), loop, np.full(len(loop), centre)]))
    return SurfaceMesh(np.vstack(new_points), np.vstack(new_faces)), len(loops)


def compact(points: np.ndarray, faces: np.ndarray) -> SurfaceMesh:
    """The triangles ``faces`` of the node set ``points`` with unused nodes dropped."""
    used, local = np.unique(faces, return_inverse=True)
    return SurfaceMesh(points[used], local.reshape(-1, 3))


def heart_surface(mesh: TaggedMesh) -> tuple[SurfaceMesh, int]:
    """The closed heart surface (mm) of a tagged mesh: epicardium + base + a cap per valve
    opening, and the number of caps."""
    missing = [name for name in HEART_FACETS if len(mesh.facets.get(FACET_TAGS[name], ())) == 0]
    if missing:
        raise InverseError(f"the mesh has no {', '.join(missing)} facets")
    faces = np.vstack([mesh.facets[FACET_TAGS[name]] for name in HEART_FACETS])
    capped, caps = cap_holes(compact(mesh.points_mm, faces))
    check_closed(capped, "the heart surface (epicardium + base + valve caps)")
    return capped, caps


def body_surface(mesh: TaggedMesh) -> SurfaceMesh:
    """The body surface (mm) of a tagged mesh."""
    faces = mesh.facets.get(FACET_TAGS["body_surface"])
    if faces is None or len(faces) == 0:
        raise InverseError("the mesh has no body-surface facets")
    return compact(mesh.points_mm, faces)


REMESH_ATTEMPTS = 9


def remesh_to_nodes(surface: SurfaceMesh, nodes: int, what: str) -> SurfaceMesh:
    """``surface`` remeshed by pyacvd Voronoi clustering to about ``nodes`` nodes; the result
    must be closed and manifold (checked).

    pyacvd now and then joins clusters into a non-manifold edge or leaves a hole; the
    clustering is then repeated with ``nodes`` ± 1, ± 2, … clusters (at most
    ``REMESH_ATTEMPTS`` tries), so the node count may differ from ``nodes`` by a few."""
    import pyacvd
    import pyvista

    if nodes < 20:
        raise InverseError(f"{what}: {nodes} nodes are too few to remesh to (need at least 20)")
    surface = compact(surface.points, surface.faces)  # pyacvd cannot cluster isolated nodes
    mesh = pyvista.PolyData(surface.points, np.column_stack([np.full(len(surface.faces), 3),
                                                             surface.faces]).ravel())
    clustering = pyacvd.Clustering(mesh)
    while clustering.mesh.n_points < 3 * (nodes + REMESH_ATTEMPTS):
        clustering.subdivide(2)
    failures = []
    for attempt in range(REMESH_ATTEMPTS):
        clusters = nodes + (attempt + 1) // 2 * (1 if attempt % 2 else -1)
        clustering.cluster(clusters)
        remeshed = clustering.create_mesh()
        result = SurfaceMesh(np.asarray(remeshed.points, dtype=np.float64),
                             np.asarray(remeshed.faces).reshape(-1, 4)[:, 1:].astype(np.int64))
        try:
            check_closed(result, f"{what} remeshed to {clusters} nodes")
        except InverseError as error:
            failures.append(str(error))
            continue
        if failures:
            log.info("%s: pyacvd gave a closed surface at the %d. try (%d clusters); before: %s", what,
                        attempt + 1, clusters, "; ".join(failures))
        return result
    raise InverseError(f"{what}: no closed remeshing in {REMESH_ATTEMPTS} tries around {nodes} nodes "
                       f"({failures[-1]}); try another node count")


@dataclass(frozen=True)
class InverseSurfaces:
    """One patient's surfaces of the inverse problem, in mm: the heart surface (n nodes, the
    unknowns), the measurement points (m, 3) with their names, and the body surface they lie on
    (remeshed triangles when ``body == "remesh"``; empty faces for electrodes)."""

    heart: SurfaceMesh
    measurement_points: np.ndarray
    measurement_names: np.ndarray
    body_faces: np.ndarray
    body: str
    valve_caps: int

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as temporary, open(temporary, "wb") as stream:
            np.savez(stream, heart_points_mm=self.heart.points, heart_faces=self.heart.faces,
                     measurement_points_mm=self.measurement_points, measurement_names=self.measurement_names,
                     body_faces=self.body_faces, body=self.body, valve_caps=self.valve_caps)


def load_surfaces(path: str | Path) -> InverseSurfaces:
    with np.load(path) as data:
        return InverseSurfaces(heart=SurfaceMesh(data["heart_points_mm"], data["heart_faces"]),
                               measurement_points=data["measurement_points_mm"],
                               measurement_names=data["measurement_names"], body_faces=data["body_faces"],
                               body=str(data["body"]), valve_caps=int(data["valve_caps"]))


def offset_surface(surface: SurfaceMesh, distance_mm: float) -> SurfaceMesh:
    """``surface`` with every node moved ``distance_mm`` along its area-weighted normal
    (outwards for a positive distance on an outward-oriented closed surface)."""
    if distance_mm == 0:
        return surface
    points, faces = surface.points, surface.faces
    face_normals = np.cross(points[faces[:, 1]] - points[faces[:, 0]], points[faces[:, 2]] - points[faces[:, 0]])
    normals = np.zeros_like(points)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    enclosed = np.einsum("fi,fi->f", points[faces[:, 0]], face_normals).sum() / 6
    return SurfaceMesh(points + np.sign(enclosed) * distance_mm * normals, faces)


def reconstruction_surface(mesh: TaggedMesh, offset_mm: float) -> tuple[SurfaceMesh, int]:
    """The closed heart surface (:func:`heart_surface`) moved ``offset_mm`` outwards, and the
    number of valve caps: the surface the potentials are reconstructed on must enclose every
    source, and a coarse remeshing of the epicardium itself cuts through the thin RV wall."""
    capped, caps = heart_surface(mesh)
    return offset_surface(capped, offset_mm), caps


def inverse_surfaces(mesh: TaggedMesh, heart_nodes: int, body: str, body_nodes: int,
                     electrode_names: np.ndarray | None = None,
                     electrode_positions_mm: np.ndarray | None = None,
                     heart_offset_mm: float = 0.0) -> InverseSurfaces:
    """The heart surface (moved ``heart_offset_mm`` outwards) remeshed to ``heart_nodes`` and
    the measurement points: the body surface remeshed to ``body_nodes`` (``body="remesh"``) or
    the electrodes (``"electrodes"``, names and positions in mm required)."""
    if body not in BODY_CHOICES:
        raise InverseError(f"inverse.body.source must be one of {', '.join(BODY_CHOICES)}, got {body!r}")
    capped, caps = reconstruction_surface(mesh, heart_offset_mm)
    heart = remesh_to_nodes(capped, heart_nodes, "the heart surface")
    if body == "remesh":
        remeshed = remesh_to_nodes(body_surface(mesh), body_nodes, "the body surface")
        points, faces = remeshed.points, remeshed.faces
        names = np.array([f"B{i:04d}" for i in range(len(points))])
    else:
        if electrode_positions_mm is None or electrode_names is None:
            raise InverseError("inverse.body.source 'electrodes' needs the patient's electrodes")
        points = np.asarray(electrode_positions_mm, dtype=np.float64).reshape(-1, 3)
        names, faces = np.asarray(electrode_names).astype(str), np.zeros((0, 3), dtype=np.int64)
    log.info("inverse surfaces: heart %d nodes / %d triangles (%d valve caps), %d measurement points (%s)",
             len(heart.points), len(heart.faces), caps, len(points), body)
    return InverseSurfaces(heart=heart, measurement_points=points, measurement_names=names, body_faces=faces,
                           body=body, valve_caps=caps)
