"""One patient at any resolution: the built-in families' templates resampled onto a patient's
surface (ecgcohort.shapes.resample) stay on that surface, closed, with its volume."""

from __future__ import annotations

import igl
import numpy as np
import pytest

from ecgcohort.geometry import inspect_surface, surface_volume
from ecgcohort.shapes import ShapeModel, ShapeModelError
from ecgcohort.shapes.heart import build_heart_model
from ecgcohort.shapes.resample import can_resample, resampling
from ecgcohort.shapes.torso import trunk_template

MODEL_EDGE_MM = 2.0


@pytest.fixture(scope="module")
def heart_model() -> ShapeModel:
    return build_heart_model(n_modes=4, population=30, seed=0, edge_length_mm=MODEL_EDGE_MM)


def distance_to(points: np.ndarray, surface_points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return np.sqrt(igl.point_mesh_squared_distance(np.ascontiguousarray(points), np.ascontiguousarray(surface_points),
                                                   np.ascontiguousarray(faces, dtype=np.int64))[0])


def test_a_heart_resampled_at_three_sizes_is_one_patient(heart_model):
    patient = heart_model.instance([1.5, -1.0, 0.8, -1.2])
    volume = surface_volume(patient, heart_model.faces)
    assert can_resample(heart_model)
    same = resampling(heart_model, MODEL_EDGE_MM).apply(patient)
    np.testing.assert_allclose(same, patient, atol=1e-9)  # its own size: the model's own vertices
    for edge in (4.0, 3.0, 1.5):
        plan = resampling(heart_model, edge)
        points = plan.apply(patient)
        report = inspect_surface(points, plan.faces)
        assert report.watertight and report.misplaced_probe_fraction == 0, edge
        # every new vertex lies on the patient's surface, the patient's regions keep their labels
        assert distance_to(points, patient, heart_model.faces).max() < 1e-6, edge
        assert set(np.unique(plan.labels)) == set(np.unique(heart_model.face_labels))
        # what is lost is the chordal error of the coarser triangles: a fraction of a mm
        assert distance_to(patient, points, plan.faces).mean() < 0.02 * edge**2, edge
        assert surface_volume(points, plan.faces) == pytest.approx(volume, rel=2e-3), edge
    coarse, fine = resampling(heart_model, 4.0), resampling(heart_model, 1.5)
    assert fine.n_points > 4 * coarse.n_points


def test_a_cached_plan_is_the_computed_one_and_another_model_or_size_is_computed_anew(heart_model, tmp_path,
                                                                                       monkeypatch):
    import ecgcohort.shapes.resample as resample

    computed = resampling(heart_model, 3.0)
    first = resampling(heart_model, 3.0, tmp_path)
    assert len(list(tmp_path.glob("biventricular_*.npz"))) == 1
    # the second patient's job reads the plan: nothing is computed
    monkeypatch.setattr(resample, "_heart_resampling", lambda *args: pytest.fail("the cached plan was recomputed"))
    cached = resampling(heart_model, 3.0, tmp_path)
    for plan in (first, cached):
        for name in ("vertices", "weights", "faces", "labels"):
            np.testing.assert_array_equal(getattr(plan, name), getattr(computed, name), err_msg=name)
    monkeypatch.undo()
    # another element size, or a model with other reference triangles, is never read from it
    other = ShapeModel(**{**heart_model.__dict__, "reference": heart_model.reference + 0.5})
    keys = {resample.resampling_cache_key(heart_model, 3.0), resample.resampling_cache_key(heart_model, 4.0),
            resample.resampling_cache_key(other, 3.0)}
    assert len(keys) == 3
    resampling(other, 3.0, tmp_path)
    assert len(list(tmp_path.glob("biventricular_*.npz"))) == 2


def capsule_trunk(template) -> np.ndarray:
    """An elliptic trunk on the ray template (mm): rings on an ellipse whose axes change with
    the level, hemispheres closing it; the template's own rays, so a closed radial graph."""
    length = 500.0
    points = np.zeros((template.n_points, 3))
    rings = template.kind == 1
    level = template.levels[template.ring[rings]]
    d = template.directions[rings]
    a, b = 160.0 + 30.0 * np.sin(np.pi * level), 110.0 + 10.0 * level
    radius = 1.0 / np.sqrt((d[:, 0] / a) ** 2 + (d[:, 1] / b) ** 2)
    points[rings] = np.column_stack([radius * d[:, 0], radius * d[:, 1], level * length])
    for kind, z, a, b in ((0, 0.0, 160.0, 110.0), (2, template.levels[-1] * length, 160.0, 118.0)):
        cap = template.kind == kind
        d = template.directions[cap]
        radius = 1.0 / np.sqrt((d[:, 0] / a) ** 2 + (d[:, 1] / b) ** 2 + (d[:, 2] / 120.0) ** 2)
        points[cap] = np.array([0.0, 0.0, z]) + radius[:, None] * d
    return points


def test_a_trunk_resampled_in_its_ray_coordinates_stays_on_the_trunk():
    fine = trunk_template()
    patient = capsule_trunk(fine)
    model = ShapeModel("torso", patient, fine.faces.copy(), np.ones(len(fine.faces), dtype=np.int32),
                       {1: "body_surface"}, np.zeros((1, 3 * len(patient))), np.ones(1),
                       template={"kind": "trunk", "n_azimuth": fine.n_azimuth, "n_polar": fine.n_polar,
                                 "ring_spacing": fine.ring_spacing})
    assert inspect_surface(patient, fine.faces).watertight
    volume = surface_volume(patient, fine.faces)
    sizes = {}
    for edge in (30.0, 15.0, 8.0, 5.0):
        plan = resampling(model, edge)
        points = plan.apply(patient)
        report = inspect_surface(points, plan.faces)
        assert report.watertight and report.misplaced_probe_fraction == 0, edge
        assert distance_to(points, patient, fine.faces).max() < 1e-6, edge
        sizes[edge] = (plan.n_points, abs(surface_volume(points, plan.faces) / volume - 1))
    print("\npoints and volume change per edge length:", sizes)
    assert sizes[30.0][0] < sizes[15.0][0] < sizes[8.0][0] < sizes[5.0][0]
    assert sizes[30.0][1] > sizes[15.0][1] and sizes[15.0][1] < 0.01


def test_an_atlas_without_a_template_is_refused_by_name(heart_model):
    atlas = ShapeModel("atlas", heart_model.mean, heart_model.faces, heart_model.face_labels, heart_model.label_names,
                       heart_model.modes, heart_model.sd)
    assert not can_resample(atlas)
    with pytest.raises(ShapeModelError, match="'atlas' has no parametric template"):
        resampling(atlas, 3.0)
