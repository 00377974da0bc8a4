"""The inversion's own model of a patient: the benchmark without the inverse crime.

The ground truth is made on the patient's heart–torso mesh by the extracellular solve
(:mod:`ecgcohort.inverse.extracellular`). Every method inverts a transfer matrix R built on a
separate discretisation — the heart surface remeshed to ``heart_nodes`` and a body surface
remeshed to its own node count, the volume between them meshed again by gmsh at its own element
size (:func:`inversion_volume`) — with one of these mismatches (:class:`Mismatch`), each an axis
of the benchmark:

* ``crime`` — the data are made by the inversion's own R (y = R u): the textbook inverse crime,
  kept only as the labelled contrast row ``matched``;
* ``shift_mm`` / ``rotation_deg`` — the heart surface moved rigidly (about its centroid, along
  and around a direction drawn per patient) before R is built: a heart position error;
* ``electrode_jitter_mm`` — every measurement point moved by that distance along the body
  surface (a direction drawn per point) before R reads it: electrode positions misplaced.

The reconstructed value of heart node i is compared with the truth at node i's true position.

Conductivity mismatches are not an axis here: in the potential-based formulation R maps heart-
surface potentials to the body surface through the source-free torso only; with a homogeneous
torso (the cohort's meshes have no lungs) σ0 cancels from R, and the blood pools lie inside the
heart surface, outside R's domain (:func:`ecgcohort.inverse.transfer.transfer_matrix`).

Lengths in mm.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from ecgcohort.inverse.problem import InverseError, named_entry, SurfaceMesh

log = logging.getLogger(__name__)

#: the name of the contrast row whose data the inversion's own R makes (the report labels it)
MATCHED = "matched"
#: the least distance (mm) between the moved heart surface and the body surface
MIN_CLEARANCE_MM = 1.0


@dataclass(frozen=True)
class Mismatch:
    """How the inversion's model differs from the truth (one ``inverse.mismatches`` entry)."""

    name: str
    crime: bool = False
    shift_mm: float = 0.0
    rotation_deg: float = 0.0
    electrode_jitter_mm: float = 0.0

    def __post_init__(self) -> None:
        for key in ("shift_mm", "rotation_deg", "electrode_jitter_mm"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value >= 0):
                raise InverseError(f"inverse.mismatches.{self.name}.{key} must be finite and >= 0, got {value!r}")
        if self.crime and (self.shift_mm or self.rotation_deg or self.electrode_jitter_mm):
            raise InverseError(f"inverse.mismatches.{self.name}: the matched (crime) row moves nothing; "
                               "set crime: false to combine it with a shift, rotation or jitter")

    @classmethod
    def from_config(cls, name: str, section: Mapping[str, Any] | None) -> "Mismatch":
        return named_entry(cls, "mismatches", name, section)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def unit_vector(rng: np.random.Generator) -> np.ndarray:
    """A direction drawn uniformly on the sphere."""
    vector = rng.normal(size=3)
    return vector / np.linalg.norm(vector)


def rotation_matrix(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """The rotation (3, 3) by ``angle_deg`` about the unit ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    angle = np.deg2rad(angle_deg)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def moved_heart(heart: SurfaceMesh, mismatch: Mismatch, rng: np.random.Generator) -> SurfaceMesh:
    """The heart surface as the inversion places it: rotated by ``rotation_deg`` about an axis
    through its centroid and shifted by ``shift_mm``, both directions from ``rng``."""
    rotation_axis, shift_direction = unit_vector(rng), unit_vector(rng)
    if mismatch.rotation_deg == 0 and mismatch.shift_mm == 0:
        return heart
    centre = heart.points.mean(axis=0)
    rotated = (heart.points - centre) @ rotation_matrix(rotation_axis, mismatch.rotation_deg).T + centre
    return SurfaceMesh(rotated + mismatch.shift_mm * shift_direction, heart.faces)


def jittered_points(points_mm: np.ndarray, body: SurfaceMesh, distance_mm: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Each point moved ``distance_mm`` along the body surface in a direction of its own
    (tangent to the nearest triangle), then put back on the surface."""
    from ecgcohort.leadfield.solver import project_on_surface

    points = np.asarray(points_mm, dtype=np.float64)
    if distance_mm == 0:
        return points.copy()
    _, nodes, weights = project_on_surface(body.points, body.faces, points)
    corners = body.points[nodes]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    directions = rng.normal(size=points.shape)
    directions -= np.sum(directions * normals, axis=1, keepdims=True) * normals
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    moved = np.einsum("pk,pki->pi", weights, corners) + distance_mm * directions
    _, nodes, weights = project_on_surface(body.points, body.faces, moved)
    return np.einsum("pk,pki->pi", weights, body.points[nodes])


def check_inside(heart: SurfaceMesh, body: SurfaceMesh, margin_mm: float, what: str) -> float:
    """The smallest distance (mm) of the heart surface's nodes inside the body surface; raises
    :class:`InverseError` naming ``what`` when a node lies outside or closer than ``margin_mm``."""
    import igl

    from ecgcohort.leadfield.solver import project_on_surface

    winding = igl.winding_number(np.ascontiguousarray(body.points), np.ascontiguousarray(body.faces),
                                 np.ascontiguousarray(heart.points))
    distance = project_on_surface(body.points, body.faces, heart.points)[0]
    outside = np.abs(winding) < 0.5
    if outside.any():
        worst = float(distance[outside].max())
        raise InverseError(f"{what}: {int(outside.sum())} heart-surface nodes lie outside the body surface "
                           f"(up to {worst:.1f} mm)")
    closest = float(distance.min())
    if closest < margin_mm:
        raise InverseError(f"{what}: the heart surface comes within {closest:.2f} mm of the body surface "
                           f"(at least {margin_mm:g} mm needed to mesh the torso between them)")
    return closest


def inversion_volume(heart: SurfaceMesh, body: SurfaceMesh, element_size_mm: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The torso between the closed ``heart`` and ``body`` surfaces meshed by gmsh, the surfaces'
    own triangles as its boundary and at most ``element_size_mm`` inside: (points (N, 3),
    tetrahedra (C, 4), body triangles (B, 3), heart node index (n,) of each heart-surface
    node in ``points``)."""
    import gmsh

    from ecgcohort.meshing.tetra import MeshingError

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", 1)
        gmsh.option.setNumber("Mesh.MeshSizeMax", element_size_mm)
        gmsh.option.setNumber("Mesh.Algorithm3D", 1)
        gmsh.model.add("inversion")
        body_tags = np.arange(1, len(body.points) + 1)
        heart_tags = np.arange(len(body.points) + 1, len(body.points) + len(heart.points) + 1)
        for tag, tags, surface in ((1, body_tags, body), (2, heart_tags, heart)):
            gmsh.model.addDiscreteEntity(2, tag)
            gmsh.model.mesh.addNodes(2, tag, tags, surface.points.ravel())
            gmsh.model.mesh.addElementsByType(tag, 2, [], tags[surface.faces].ravel())
        gmsh.model.mesh.createTopology()
        outer, inner = gmsh.model.geo.addSurfaceLoop([1]), gmsh.model.geo.addSurfaceLoop([2])
        gmsh.model.geo.addVolume([outer, inner], 1)
        gmsh.model.geo.synchronize()
        try:
            gmsh.model.mesh.generate(3)
        except Exception as error:  # gmsh raises plain Exceptions with its last message
            raise MeshingError(f"gmsh could not mesh the torso between the heart and body surfaces: {error}") from error
        node_tags, coordinates, _ = gmsh.model.mesh.getNodes()
        index = np.full(int(node_tags.max()) + 1, -1, dtype=np.int64)
        index[node_tags.astype(np.int64)] = np.arange(len(node_tags))
        points = coordinates.reshape(-1, 3)
        tetrahedra = index[gmsh.model.mesh.getElementsByType(4, 1)[1].astype(np.int64).reshape(-1, 4)]
        body_faces = index[gmsh.model.mesh.getElementsByType(2, 1)[1].astype(np.int64).reshape(-1, 3)]
    finally:
        gmsh.finalize()
    return points, tetrahedra, body_faces, index[heart_tags]


@dataclass
class InversionModel:
    """The inversion's model of one patient under one mismatch: R (m, n), the heart surface
    where it puts the heart (mm), the measurement points where it puts them (mm), figures
    (sizes, seconds, the measured distance from the truth's geometry) and ``vm_transfer`` (m, n),
    the V_m-based operator of the EP-informed methods on the same geometry (mV per unit of the
    normalised transmembrane potential: :func:`ecgcohort.inverse.double_layer.double_layer_transfer`;
    None in a model saved before it existed)."""

    mismatch: Mismatch
    transfer: np.ndarray
    heart: SurfaceMesh
    measurement_points: np.ndarray
    figures: dict[str, Any]
    vm_transfer: np.ndarray | None = None


def inversion_model(heart: SurfaceMesh, body: SurfaceMesh, measurement_points_mm: np.ndarray, mismatch: Mismatch,
                    rng: np.random.Generator, *, body_nodes: int, element_size_mm: float,
                    max_projection_mm: float = 10.0, row_sum_tolerance: float = 1e-6,
                    double_layer_mv: float = 50.0) -> InversionModel:
    """R of the inversion's own discretisation: ``heart`` (the truth's heart-surface nodes)
    moved as ``mismatch`` says, ``body`` (the patient's body surface) remeshed to
    ``body_nodes``, the torso between them meshed at ``element_size_mm``, the measurement points
    jittered and read on the remeshed body surface; on the same moved heart, body surface and
    measurement points the equivalent double layer's operator of strength ``double_layer_mv``
    (mV per unit of normalised V_m). Raises :class:`InverseError` when the moved heart leaves
    the torso or R fails R·1 = 1 by more than ``row_sum_tolerance``."""
    from ecgcohort.inverse.double_layer import double_layer_transfer
    from ecgcohort.inverse.surfaces import remesh_to_nodes
    from ecgcohort.inverse.transfer import transfer_matrix

    start = time.perf_counter()
    try:
        placed = moved_heart(heart, mismatch, rng)
        inversion_body = remesh_to_nodes(body, body_nodes, "the inversion's body surface")
        clearance = check_inside(placed, inversion_body, MIN_CLEARANCE_MM,
                                 f"the heart shifted {mismatch.shift_mm:g} mm and rotated {mismatch.rotation_deg:g} deg")
        points = jittered_points(measurement_points_mm, inversion_body, mismatch.electrode_jitter_mm, rng)
        volume_points, tetrahedra, body_faces, _ = inversion_volume(placed, inversion_body, element_size_mm)
        meshed = time.perf_counter() - start
        matrix, stats = transfer_matrix(volume_points, tetrahedra, body_faces, placed, points,
                                        max_projection=max_projection_mm)
        if not stats.row_sum_error <= row_sum_tolerance:
            raise InverseError(f"the transfer matrix fails R·1 = 1: max |R·1 − 1| = {stats.row_sum_error:.3g} "
                               f"(inverse.transfer.row_sum_tolerance = {row_sum_tolerance:g})")
        layer_start = time.perf_counter()
        vm_transfer = double_layer_transfer(placed, inversion_body, points, double_layer_mv)
        layer_s = time.perf_counter() - layer_start
    except InverseError as error:
        raise InverseError(f"mismatch {mismatch.name}: {error}") from None
    figures = {**stats.as_dict(), "mesh_s": meshed, "total_s": time.perf_counter() - start, "double_layer_s": layer_s,
               "body_nodes": len(inversion_body.points), "clearance_mm": clearance,
               "heart_displacement_mm": float(np.linalg.norm(placed.points - heart.points, axis=1).mean()),
               "measurement_displacement_mm": float(np.linalg.norm(points - measurement_points_mm, axis=1).mean())}
    log.info("inversion model %s: R %d x %d on %d nodes / %d cells (body %d nodes), heart moved %.1f mm on "
             "average, measurement points %.1f mm, max |R·1 − 1| = %.2g, %.1f s", mismatch.name, *matrix.shape,
             stats.volume_nodes, stats.volume_cells, len(inversion_body.points), figures["heart_displacement_mm"],
             figures["measurement_displacement_mm"], stats.row_sum_error, figures["total_s"])
    return InversionModel(mismatch, matrix, placed, points, figures, vm_transfer)
