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
                     max_surface_distance_mm: float) -> ResampledSurface:
    """The patient's ``organ`` surface (``points`` on ``model``'s template, mm) resampled to
    ``edge_length_mm``; a model without a parametric template (a loaded atlas) is used as it
    is. ``setting`` names the config key in errors."""
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
        plan = resampling(model, edge_length_mm)
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
    """The resampled heart's smallest depth inside the resampled body surface (mm); a heart
    the coarser body surface cuts through fails naming the patient and the setting."""
    depth = -signed_distance(torso.points, torso.faces, heart.points)
    clearance = float(depth.min())
    if clearance <= 0:
        raise SurfaceResolutionError(
            f"patient {patient}: at {torso_setting} = {torso_size_mm:g} mm the body surface cuts the heart "
            f"({-clearance:.1f} mm outside at {heart.points[int(depth.argmin())].round(1).tolist()} mm): "
            "choose smaller torso elements")
    return clearance
