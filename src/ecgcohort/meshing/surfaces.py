"""A patient's surfaces at the mesh's element sizes, and the checks that they are still the
same patient.

The anatomy stage writes each patient's heart and body surface on the shape models' own
(fine, fixed) templates: that is the patient. Here they are resampled to the meshing
sizes (:mod:`ecgcohort.shapes.resample`: every new vertex lies on the patient's surface),
so changing ``meshing.*`` refines one and the same patient. A setting so coarse that the
resampled surface is no longer that patient — its enclosed volume moved by more than
``max_volume_change`` or its surface by more than ``max_surface_distance_mm`` on average —
fails the job naming the patient, the setting and the measured value. Lengths in mm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgcohort.geometry import inspect_surface, signed_distance, surface_volume
from ecgcohort.shapes import ShapeModel
from ecgcohort.shapes.resample import can_resample, resampling

log = logging.getLogger(__name__)


class SurfaceResolutionError(ValueError):
    """A resampled surface that is not the patient's any more (or not a valid surface)."""


@dataclass(frozen=True)
class ResampledSurface:
    """``points`` (n, 3) mm, ``faces`` (m, 3), ``labels`` (m,) at the mesh's size, and how far
    they are from the patient's own surface: enclosed volumes (mL) and the mean and largest
    distance (mm) from the patient's vertices to the resampled surface."""

    points: np.ndarray
    faces: np.ndarray
    labels: np.ndarray
    volume_ml: float
    patient_volume_ml: float
    mean_distance_mm: float
    max_distance_mm: float

    @property
    def volume_change(self) -> float:
        """Relative change of the enclosed volume (resampled / patient - 1)."""
        return self.volume_ml / self.patient_volume_ml - 1.0

    def measures(self) -> dict[str, float]:
        return {"points": int(len(self.points)), "faces": int(len(self.faces)), "volume_ml": self.volume_ml,
                "patient_volume_ml": self.patient_volume_ml, "volume_change": self.volume_change,
                "mean_distance_mm": self.mean_distance_mm, "max_distance_mm": self.max_distance_mm}


def resample_surface(patient: str, organ: str, model: ShapeModel, points: np.ndarray, faces: np.ndarray,
                     labels: np.ndarray, edge_length_mm: float, setting: str, max_volume_change: float,
                     max_surface_distance_mm: float, cache_dir: str | Path | None = None) -> ResampledSurface:
    """The patient's ``organ`` surface (``points`` on ``model``'s template, mm) resampled to
    ``edge_length_mm``; a model without a parametric template (a loaded atlas) is used as it
    is. ``setting`` names the config key in errors; ``cache_dir`` keeps the model's resampling
    plan for the next patient (:func:`ecgcohort.shapes.resample.resampling`)."""
    import igl

    points = np.asarray(points, dtype=float)
    if not can_resample(model):
        log.info("patient %s: the %s model '%s' is an atlas without a parametric template: its own "
                 "triangulation is meshed (%s does not resample it)", patient, organ, model.name, setting)
        new_points, new_faces, new_labels = points, np.asarray(faces), np.asarray(labels)
    else:
        if len(points) != len(model.mean):
            raise SurfaceResolutionError(f"patient {patient}: the {organ} surface has {len(points)} points, its "
                                         f"shape model {len(model.mean)}")
        plan = resampling(model, edge_length_mm, cache_dir)
        new_points, new_faces, new_labels = plan.apply(points), plan.faces, plan.labels
    report = inspect_surface(new_points, new_faces)
    if not report.watertight or report.misplaced_probe_fraction > 0:
        raise SurfaceResolutionError(
            f"patient {patient}: the {organ} surface at {setting} = {edge_length_mm:g} mm is not a closed, "
            f"non-intersecting surface ({report.boundary_edges} boundary and {report.nonmanifold_edges} "
            f"non-manifold edges, {report.misplaced_probe_fraction:.2%} of faces folded)")
    distance = np.sqrt(igl.point_mesh_squared_distance(points, np.ascontiguousarray(new_points),
                                                       np.ascontiguousarray(new_faces, dtype=np.int64))[0])
    surface = ResampledSurface(new_points, np.asarray(new_faces, dtype=np.int64), np.asarray(new_labels, np.int32),
                               surface_volume(new_points, new_faces) / 1e3, surface_volume(points, faces) / 1e3,
                               float(distance.mean()), float(distance.max()))
    if abs(surface.volume_change) > max_volume_change:
        raise SurfaceResolutionError(
            f"patient {patient}: {setting} = {edge_length_mm:g} mm changes the {organ}'s enclosed volume by "
            f"{surface.volume_change:+.2%} ({surface.patient_volume_ml:.1f} -> {surface.volume_ml:.1f} mL; allowed "
            f"{max_volume_change:.1%}, meshing.max_volume_change): a different patient, choose smaller elements")
    if surface.mean_distance_mm > max_surface_distance_mm:
        raise SurfaceResolutionError(
            f"patient {patient}: {setting} = {edge_length_mm:g} mm moves the {organ} surface by "
            f"{surface.mean_distance_mm:.2f} mm on average (allowed {max_surface_distance_mm:g} mm, "
            "meshing.max_surface_distance_mm): a different patient, choose smaller elements")
    log.info("patient %s: %s surface at %g mm: %d points, volume %+.3f%%, mean distance %.3f mm (max %.2f)",
             patient, organ, edge_length_mm, len(new_points), 100 * surface.volume_change, surface.mean_distance_mm,
             surface.max_distance_mm)
    return surface


def check_heart_inside_torso(patient: str, heart: ResampledSurface, torso: ResampledSurface,
                             torso_setting: str, torso_size_mm: float) -> float:
    """The resampled heart's smallest depth inside the resampled body surface (mm; ``torso`` as
    :func:`resample_surface` returns it, checked closed and unfolded); a heart the coarser body
    surface cuts through fails naming the patient and the setting."""
    # the body surface passed resample_surface's checks (closed, oriented, not folded): the
    # pseudonormal's sign is exact there and 5 times faster than the winding number's
    depth = -signed_distance(torso.points, torso.faces, heart.points, closed_surface=True)
    clearance = float(depth.min())
    if clearance <= 0:
        raise SurfaceResolutionError(
            f"patient {patient}: at {torso_setting} = {torso_size_mm:g} mm the body surface cuts the heart "
            f"({-clearance:.1f} mm outside at {heart.points[int(depth.argmin())].round(1).tolist()} mm): "
            "choose smaller torso elements")
    return clearance


@dataclass(frozen=True)
class CavityCap:
    """A flat surface across one ventricle's opening in the base plane, closing its blood pool:
    ``points`` (k, 3) mm of the cap's interior vertices, and ``faces`` (f, 3) indexing the heart
    surface's points (the opening's rim) followed by these interior points."""

    name: str
    points: np.ndarray
    faces: np.ndarray


def rim_loop(faces: np.ndarray) -> np.ndarray:
    """The boundary of an open, disc-like triangle patch as one ordered loop of vertex indices."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(edges, axis=1)
    unique, counts = np.unique(key, axis=0, return_counts=True)
    boundary = unique[counts == 1]
    following: dict[int, list[int]] = {}
    for a, b in boundary:
        following.setdefault(int(a), []).append(int(b))
        following.setdefault(int(b), []).append(int(a))
    if any(len(n) != 2 for n in following.values()):
        raise SurfaceResolutionError("a ventricle's endocardium does not open onto one simple rim")
    loop = [int(boundary[0, 0]), int(boundary[0, 1])]
    while len(loop) < len(following):
        a, b = following[loop[-1]]
        nxt = a if a != loop[-2] else b
        if nxt == loop[0]:
            break
        loop.append(nxt)
    if len(loop) != len(following):
        raise SurfaceResolutionError("a ventricle's endocardium opens onto more than one rim")
    return np.asarray(loop)


def cavity_caps(points: np.ndarray, faces: np.ndarray, labels: np.ndarray, region_names: dict[int, str],
                size_mm: float) -> list[CavityCap]:
    """Flat caps across the LV and RV openings (the rims of ``lv_endocardium`` and
    ``rv_endocardium``, which lie in the base plane), triangulated at ``size_mm`` in that plane:
    with the endocardium each closes a blood pool."""
    from ecgcohort.shapes.heart import triangulate_planar

    caps = []
    for name in ("lv_endocardium", "rv_endocardium"):
        label = next(k for k, v in region_names.items() if v == name)
        loop = rim_loop(np.asarray(faces)[np.asarray(labels) == label])
        rim = points[loop]
        centre = rim.mean(axis=0)
        _, singular, axes = np.linalg.svd(rim - centre)
        if singular[2] > 1e-6 * singular[0] * np.sqrt(len(rim)):
            raise SurfaceResolutionError(f"the {name} rim is not planar (off-plane spread {singular[2]:.3g})")
        planar = (rim - centre) @ axes[:2].T
        if 0.5 * np.sum(planar[:, 0] * np.roll(planar[:, 1], -1) - np.roll(planar[:, 0], -1) * planar[:, 1]) < 0:
            planar, loop = planar[::-1], loop[::-1]
        interior, triangles = triangulate_planar([planar], lambda x, y: size_mm)
        lifted = centre + interior @ axes[:2]
        index = np.concatenate([loop, len(points) + np.arange(len(interior))])
        cap_faces = index[triangles]
        if _runs_along(np.asarray(faces)[np.asarray(labels) == label], loop[0], loop[1]) == _runs_along(
                cap_faces, loop[0], loop[1]):
            cap_faces = cap_faces[:, ::-1]  # oriented like the endocardium: into the cavity
        caps.append(CavityCap(name.split("_")[0], lifted, cap_faces))
    return caps


def _runs_along(faces: np.ndarray, a: int, b: int) -> bool:
    """Whether the face holding the edge (a, b) lists it as a -> b."""
    for face in faces[(faces == a).any(axis=1) & (faces == b).any(axis=1)]:
        i = int(np.flatnonzero(face == a)[0])
        return bool(face[(i + 1) % 3] == b)
    raise SurfaceResolutionError("a rim edge belongs to no face")
