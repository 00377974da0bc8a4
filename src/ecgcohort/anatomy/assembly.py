"""Patient assembly: a heart instance placed, oriented and checked inside a torso instance.

Frame (mm): x from the patient's right to left, y posterior to anterior, z superior to
inferior. The heart is first put in a reference pose (apex pointing left, anterior and
inferior, the RV to the right-anterior of the LV, its centroid left of the midline behind
the sternum), then rotated about its centroid by the patient's three angles (about the LV-RV
axis, the heart's anterior-posterior axis and the LV long axis, applied in that order) and
translated by the patient's jitter.

The patient's sex and age choose its body: the torso's mode weights are the mean of the torso
model's population of that sex and age plus the sampled weights in residual standard deviations
(:func:`ecgcohort.shapes.model.phenotype_weights`), and the heart instance is given its sex's
size and wall thickness (:mod:`ecgcohort.anatomy.heart_norms`) before it is placed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.anatomy.heart_norms import HeartNorms, scale_heart
from ecgcohort.cohort.sampling import Person
from ecgcohort.geometry import (
    inspect_surface,
    ray_hits,
    rotation_about,
    signed_distance,
    surface_area,
    surface_centroid,
    surface_volume,
)
from ecgcohort.shapes import ShapeModel
from ecgcohort.shapes.model import ShapeModelError, phenotype_weights

log = logging.getLogger(__name__)


class AnatomyError(ValueError):
    """A patient whose anatomy fails a check; the message names the patient and the value."""


@dataclass(frozen=True)
class Surface:
    """A closed triangle surface in mm, with a label per face and names for the labels."""

    points: np.ndarray
    faces: np.ndarray
    labels: np.ndarray
    label_names: Mapping[int, str]

    def region(self, name: str) -> np.ndarray:
        """Indices of the points on faces of the named region."""
        label = next(k for k, v in self.label_names.items() if v == name)
        return np.unique(self.faces[self.labels == label])


@dataclass(frozen=True)
class HeartFrame:
    """Anatomical axes of a heart (unit vectors) and its landmarks (mm)."""

    centroid: np.ndarray
    apex: np.ndarray
    base_centre: np.ndarray
    long_axis: np.ndarray      # from the base towards the apex
    lv_rv_axis: np.ndarray     # from the LV towards the RV, orthogonal to the long axis
    ap_axis: np.ndarray        # long_axis x lv_rv_axis


@dataclass(frozen=True)
class PlacementSettings:
    """Where the reference heart sits in the torso, and the checks' limits."""

    apex_direction: Sequence[float] = (0.58, 0.58, 0.57)
    rv_direction: Sequence[float] = (-0.7, 0.7, 0.0)
    level_fraction: float = 0.65
    left_of_midline_mm: float = 35.0
    behind_sternum_mm: float = 32.0
    min_clearance_mm: float = 5.0
    myocardial_volume_ml: Sequence[float] = (90.0, 300.0)
    torso_volume_l: Sequence[float] = (15.0, 90.0)


@dataclass
class Anatomy:
    """One patient's assembled surfaces and the measures taken while checking them."""

    patient: str
    person: Person
    heart: Surface
    torso: Surface
    landmarks: dict[str, np.ndarray]
    frame: HeartFrame
    measures: dict[str, Any] = field(default_factory=dict)
    #: whether the torso model's sex-and-age regression chose the torso (a model without one,
    #: e.g. a user's ``.npz``, is instanced at the sampled weights alone)
    torso_follows_person: bool = True


def heart_frame(heart: Surface) -> HeartFrame:
    """Axes and landmarks of a heart from its labelled regions."""
    centroid = surface_centroid(heart.points, heart.faces)
    base_centre = heart.points[heart.region("base")].mean(axis=0)
    epicardium = heart.points[heart.region("epicardium")]
    apex = epicardium[np.argmax(np.linalg.norm(epicardium - base_centre, axis=1))]
    long_axis = (apex - base_centre) / np.linalg.norm(apex - base_centre)
    lv_to_rv = heart.points[heart.region("rv_endocardium")].mean(axis=0) - heart.points[heart.region("lv_endocardium")].mean(axis=0)
    lv_rv = lv_to_rv - (lv_to_rv @ long_axis) * long_axis
    lv_rv /= np.linalg.norm(lv_rv)
    return HeartFrame(centroid, apex, base_centre, long_axis, lv_rv, np.cross(long_axis, lv_rv))


def long_axis_angles(long_axis: Sequence[float]) -> dict[str, float]:
    """Angles of a base-to-apex direction in this module's frame, degrees.

    ``frontal_deg``: in the frontal plane, from the patient's left towards inferior (the hexaxial
    convention of the QRS axis, so the two compare directly); ``transverse_deg``: in the transverse
    plane, from the patient's left towards anterior; ``inclination_deg``: below the horizontal plane.
    """
    x, y, z = np.asarray(long_axis, float) / np.linalg.norm(long_axis)
    return {"frontal_deg": float(np.degrees(np.arctan2(z, x))),
            "transverse_deg": float(np.degrees(np.arctan2(y, x))),
            "inclination_deg": float(np.degrees(np.arcsin(np.clip(z, -1.0, 1.0))))}


def _orthonormal_target(apex_direction: Sequence[float], rv_direction: Sequence[float]) -> np.ndarray:
    long_axis = np.asarray(apex_direction, float) / np.linalg.norm(apex_direction)
    rv = np.asarray(rv_direction, float) - (np.asarray(rv_direction, float) @ long_axis) * long_axis
    rv /= np.linalg.norm(rv)
    return np.column_stack([long_axis, rv, np.cross(long_axis, rv)])


def anterior_chest_wall(torso: Surface, x: float, z: float) -> np.ndarray:
    """The most anterior body-surface point at (x, z): a ray cast forwards from inside."""
    section = torso.points[np.abs(torso.points[:, 2] - z) < 25.0]
    origin = np.array([x, section[:, 1].mean() if len(section) else torso.points[:, 1].mean(), z])
    hits = ray_hits(torso.points, torso.faces, origin, np.array([0.0, 1.0, 0.0]))
    if len(hits) == 0:
        raise AnatomyError(f"no body surface in front of ({x:.0f}, {z:.0f}) mm")
    return hits[-1]


def place_heart(heart: Surface, torso: Surface, landmarks: Mapping[str, np.ndarray],
                rotation_deg: Sequence[float], translation_mm: Sequence[float],
                settings: PlacementSettings) -> tuple[Surface, dict[str, Any]]:
    """Move a heart instance into the torso: reference pose, patient rotation, jitter."""
    frame = heart_frame(heart)
    source = np.column_stack([frame.long_axis, frame.lv_rv_axis, frame.ap_axis])
    target = _orthonormal_target(settings.apex_direction, settings.rv_direction)
    reference = target @ source.T
    oriented = (heart.points - frame.centroid) @ reference.T

    top, bottom = landmarks["jugular_notch"], landmarks["xiphoid"]
    level = top[2] + settings.level_fraction * (bottom[2] - top[2])
    midline = 0.5 * (top[0] + bottom[0])
    wall = anterior_chest_wall(torso, midline, level)
    reference_centre = np.array([midline + settings.left_of_midline_mm,
                                 wall[1] - settings.behind_sternum_mm - oriented[:, 1].max(), level])

    lv_rv, ap, long_axis = target[:, 1], target[:, 2], target[:, 0]
    rotate = (rotation_about(long_axis, rotation_deg[2]) @ rotation_about(ap, rotation_deg[1])
              @ rotation_about(lv_rv, rotation_deg[0]))
    centre = reference_centre + np.asarray(translation_mm, float)
    placed = oriented @ rotate.T + centre
    pose = {"reference_centre_mm": reference_centre.tolist(), "centre_mm": centre.tolist(),
            "rotation_matrix": (rotate @ reference).tolist(), "anterior_chest_wall_mm": wall.tolist()}
    return Surface(placed, heart.faces, heart.labels, heart.label_names), pose


def epicardial_surface_shares(heart: Surface, min_facing: float = 0.5) -> dict[str, float]:
    """The RV's share (by area, 0-1) of the heart's diaphragmatic and sternocostal surfaces: the
    epicardial faces whose outward normal points within arccos(``min_facing``) of straight down
    (+z) and of straight forward (+y). An epicardial face belongs to the ventricle whose
    endocardium is nearer. The diaphragmatic surface is "formed by the ventricles" (Gray's Anatomy,
    20th ed., 1918), about two thirds LV and one third RV (GPnotebook, "Inferior surface (heart,
    anatomy)"); the sternocostal surface mainly RV."""
    from scipy.spatial import cKDTree

    label = {name: key for key, name in heart.label_names.items()}
    faces = heart.faces[heart.labels == label["epicardium"]]
    a, b, c = (heart.points[faces[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    areas = 0.5 * np.linalg.norm(normals, axis=1)
    normals /= np.maximum(2.0 * areas[:, None], 1e-300)
    centres = (a + b + c) / 3.0
    is_rv = (cKDTree(heart.points[heart.region("rv_endocardium")]).query(centres)[0]
             < cKDTree(heart.points[heart.region("lv_endocardium")]).query(centres)[0])
    shares = {}
    for name, axis in (("diaphragmatic", 2), ("sternocostal", 1)):
        facing = normals[:, axis] > min_facing
        total = float(areas[facing].sum())
        shares[f"rv_share_of_{name}_surface"] = float(areas[facing & is_rv].sum()) / total if total > 0 else float("nan")
    return shares


def check_anatomy(patient: str, heart: Surface, torso: Surface, settings: PlacementSettings) -> dict[str, Any]:
    """Every check of an assembled patient; raises :class:`AnatomyError` with the value."""
    measures: dict[str, Any] = {}
    for name, surface in (("torso", torso), ("heart", heart)):
        report = inspect_surface(surface.points, surface.faces)
        if not report.watertight:
            raise AnatomyError(f"patient {patient}: the {name} surface is not watertight "
                               f"({report.boundary_edges} boundary, {report.nonmanifold_edges} "
                               f"non-manifold, {report.inconsistently_oriented_edges} mis-oriented edges)")
        if report.misplaced_probe_fraction > 0:
            raise AnatomyError(f"patient {patient}: the {name} surface intersects itself "
                               f"({report.misplaced_probe_fraction:.2%} of faces fold over)")
        measures[f"{name}_area_mm2"] = surface_area(surface.points, surface.faces)
    myocardium_ml = surface_volume(heart.points, heart.faces) / 1e3
    torso_l = surface_volume(torso.points, torso.faces) / 1e6
    measures.update(myocardial_volume_ml=myocardium_ml, torso_volume_l=torso_l)
    low, high = settings.myocardial_volume_ml
    if not low <= myocardium_ml <= high:
        raise AnatomyError(f"patient {patient}: myocardial volume {myocardium_ml:.0f} mL is outside "
                           f"[{low:g}, {high:g}] mL")
    low, high = settings.torso_volume_l
    if not low <= torso_l <= high:
        raise AnatomyError(f"patient {patient}: torso volume {torso_l:.1f} L is outside [{low:g}, {high:g}] L")
    # the torso passed inspect_surface above: closed and consistently oriented
    depth = -signed_distance(torso.points, torso.faces, heart.points, closed_surface=True)
    clearance = float(depth.min())
    measures["heart_clearance_mm"] = clearance
    if clearance < settings.min_clearance_mm:
        where = heart.points[int(depth.argmin())].round(1).tolist()
        what = (f"pokes through the body surface by {-clearance:.1f} mm" if clearance < 0
                else f"comes within {clearance:.1f} mm of the body surface")
        raise AnatomyError(f"patient {patient}: the heart {what} at {where} mm (minimum clearance "
                           f"{settings.min_clearance_mm:g} mm); check its rotation and translation")
    return measures


def sex_sized_heart(heart: Surface, sex: str, norms: HeartNorms) -> tuple[Surface, dict[str, float]]:
    """The heart instance with the size and wall thickness of ``sex`` (see
    :mod:`ecgcohort.anatomy.heart_norms`), scaled about its centroid; and the two factors."""
    size, wall = norms.factors(sex)
    endocardial = np.isin(heart.labels, [label for label, name in heart.label_names.items()
                                         if name in ("lv_endocardium", "rv_endocardium")])
    points = scale_heart(heart.points, heart.faces, endocardial, surface_centroid(heart.points, heart.faces), size, wall)
    return (Surface(points, heart.faces, heart.labels, heart.label_names),
            {"heart_size_factor": size, "heart_wall_factor": wall})


def person_torso_weights(patient: str, person: Person, torso_model: ShapeModel,
                         sampled: np.ndarray) -> tuple[np.ndarray, bool]:
    """The torso's mode weights for ``person``: the model population's mean for the sex and age
    plus ``sampled`` in residual standard deviations, and True; the sampled weights and False for
    a model without a sex-and-age regression (logged)."""
    if not torso_model.phenotype_regression:
        log.warning("patient %s: the torso model '%s' has no sex-and-age regression; its torso is drawn at "
                    "the sampled mode weights, whatever the patient's sex (%s) and age", patient,
                    torso_model.name, person.sex)
        return sampled, False
    try:
        return phenotype_weights(torso_model, sampled, person.sex, person.age_years), True
    except ShapeModelError as error:
        raise AnatomyError(f"patient {patient}: {error}") from error


def assemble_patient(patient: str, heart_model: ShapeModel, torso_model: ShapeModel,
                     parameters: Mapping[str, float], settings: PlacementSettings, *, person: Person,
                     heart_norms: HeartNorms) -> Anatomy:
    """Build, place and check one patient from its row of the cohort table, its sex and age
    (``person``) and the cardiac norms by sex, on the shape models' own triangulations (the
    meshing stage resamples them to its element sizes)."""
    heart_weights = _weights(parameters, "heart_mode_", heart_model, patient)
    torso_weights, follows = person_torso_weights(patient, person, torso_model,
                                                  _weights(parameters, "torso_mode_", torso_model, patient))
    torso_points = torso_model.instance(torso_weights)
    landmarks = {name: torso_points[index].copy() for name, index in torso_model.landmarks.items()}
    torso_faces = torso_model.faces
    torso = Surface(torso_points, torso_faces, np.ones(len(torso_faces), dtype=np.int32), {1: "body_surface"})
    instance = Surface(heart_model.instance(heart_weights), heart_model.faces, heart_model.face_labels,
                       heart_model.label_names)
    heart, factors = sex_sized_heart(instance, person.sex, heart_norms)
    rotation = [parameters.get(f"rotation_{axis}_deg", 0.0) for axis in "xyz"]
    translation = [parameters.get(f"translation_{axis}_mm", 0.0) for axis in "xyz"]
    placed, pose = place_heart(heart, torso, landmarks, rotation, translation, settings)
    measures = check_anatomy(patient, placed, torso, settings)
    measures.update(factors)
    measures.update(pose)
    frame = heart_frame(placed)
    measures.update(long_axis=frame.long_axis.tolist(), lv_rv_axis=frame.lv_rv_axis.tolist(),
                    apex_mm=frame.apex.tolist(), base_centre_mm=frame.base_centre.tolist(),
                    lv_long_axis_length_mm=float(np.linalg.norm(frame.apex - frame.base_centre)))
    measures.update(epicardial_surface_shares(placed))
    log.info("patient %s (%s, %.0f years): myocardium %.0f mL, torso %.1f L, clearance %.1f mm", patient,
             person.sex, person.age_years, measures["myocardial_volume_ml"], measures["torso_volume_l"],
             measures["heart_clearance_mm"])
    return Anatomy(patient, person, placed, torso, landmarks, frame, measures, follows)


def _weights(parameters: Mapping[str, float], prefix: str, model: ShapeModel, patient: str) -> np.ndarray:
    names = sorted(name for name in parameters if name.startswith(prefix))
    if len(names) > model.n_modes:
        raise AnatomyError(f"patient {patient}: {len(names)} {prefix.rstrip('_')} weights but the "
                           f"{model.name} model has {model.n_modes} modes")
    return np.array([parameters[name] for name in names], dtype=float)
