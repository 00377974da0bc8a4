"""The built-in bi-ventricular heart SSM: PCA properties, correspondence, a valid closed
myocardial surface for the mean and for random instances, adult dimensions, plausible modes."""

from __future__ import annotations

import dataclasses

import igl
import numpy as np
import pytest

from ecgcohort.geometry import inspect_surface, surface_volume
from ecgcohort.shapes.heart import (
    HEART_LABELS,
    BiventricularParameters,
    biventricular_surface,
    build_heart_model,
    sample_parameters,
)

EDGE_MM = 3.0
SEED = 0


@pytest.fixture(scope="module")
def model():
    return build_heart_model(n_modes=12, population=200, seed=SEED, edge_length_mm=EDGE_MM)


def _distance(points: np.ndarray, faces: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Unsigned distance (mm) from queries to a (possibly open) triangle surface."""
    squared = igl.point_mesh_squared_distance(np.ascontiguousarray(queries, dtype=np.float64),
                                              np.ascontiguousarray(points, dtype=np.float64),
                                              np.ascontiguousarray(faces, dtype=np.int64))[0]
    return np.sqrt(squared)


def _vertices(faces: np.ndarray, labels: np.ndarray, label: int) -> np.ndarray:
    return np.unique(faces[labels == label])


def _min_angles_deg(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = [points[faces[:, i]] for i in range(3)]
    angles = []
    for i in range(3):
        u = corners[(i + 1) % 3] - corners[i]
        v = corners[(i + 2) % 3] - corners[i]
        cosine = np.einsum("ij,ij->i", u, v) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
        angles.append(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    return np.min(angles, axis=0)


def _edge_lengths(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.linalg.norm(points[edges[:, 0]] - points[edges[:, 1]], axis=1)


def test_modes_are_orthonormal_with_positive_decreasing_sd(model):
    assert model.name == "biv_heart"
    assert dict(model.label_names) == HEART_LABELS
    assert model.n_modes >= 10
    np.testing.assert_allclose(model.modes @ model.modes.T, np.eye(model.n_modes), atol=1e-10)
    assert np.all(model.sd > 0)
    assert np.all(np.diff(model.sd) <= 0)


def test_a_training_shape_is_reconstructed_from_its_projection(model, record_property):
    first = sample_parameters(np.random.default_rng(SEED))       # the first training heart
    shape, _, _ = biventricular_surface(first, EDGE_MM)
    reconstruction = model.instance(model.project(shape))
    size = np.sqrt(((shape - shape.mean(axis=0)) ** 2).sum(axis=1).mean())   # RMS radius, mm
    error = np.sqrt(((reconstruction - shape) ** 2).sum(axis=1).mean())
    mean_only = np.sqrt(((model.mean - shape) ** 2).sum(axis=1).mean())
    record_property("reconstruction_rms_mm", float(error))
    record_property("reconstruction_relative", float(error / size))
    print(f"reconstruction RMS {error:.3f} mm = {error / size:.2e} of the {size:.1f} mm RMS radius; "
          f"mean alone {mean_only:.3f} mm")
    assert error / size < 5e-3, f"reconstruction RMS {error:.3f} mm for a {size:.1f} mm heart"
    assert error < 0.1 * mean_only


def test_instances_share_the_template_and_the_frame(model):
    faces, labels = model.faces, model.face_labels
    assert set(np.unique(labels).tolist()) == set(HEART_LABELS)
    for parameters in (BiventricularParameters(), sample_parameters(np.random.default_rng(7))):
        points, other_faces, other_labels = biventricular_surface(parameters, EDGE_MM)
        assert points.shape == model.mean.shape
        np.testing.assert_array_equal(other_faces, faces)
        np.testing.assert_array_equal(other_labels, labels)
    mean = model.mean
    base = _vertices(faces, labels, 4)
    assert np.abs(mean[base, 2]).max() < 1e-9                       # flat base in z = 0
    assert mean[:, 2].max() < 1e-9                                  # everything below the base
    assert np.all(model.modes.reshape(model.n_modes, -1, 3)[:, base, 2] == 0.0)
    lv_rim = _vertices(faces, labels, 1)
    lv_rim = lv_rim[np.abs(mean[lv_rim, 2]) < 1e-9]
    assert np.linalg.norm(mean[lv_rim, :2].mean(axis=0)) < 1.0      # LV axis through x = y = 0
    apex = model.landmarks["lv_apex_epicardium"]
    assert mean[apex, 2] == mean[:, 2].min() and np.linalg.norm(mean[apex, :2]) < 1.0
    rv = _vertices(faces, labels, 2)
    assert mean[rv, 0].min() > 0.0                                  # the RV on the +x side
    assert mean[model.landmarks["rv_insertion_anterior"], 1] > 10.0
    assert mean[model.landmarks["rv_insertion_posterior"], 1] < -10.0


def test_mean_and_random_instances_are_closed_outward_and_unfolded(model):
    rng = np.random.default_rng(2024)
    weights = [np.zeros(10)] + [rng.uniform(-1.0, 1.0, 10) for _ in range(20)]
    for w in weights:
        report = inspect_surface(model.instance(w), model.faces)
        assert report.watertight, (w, report)
        assert report.volume_mm3 > 0, (w, report)
        assert report.misplaced_probe_fraction == 0.0, (w, report)


def test_mean_heart_has_adult_dimensions(model):
    mean, faces, labels = model.mean, model.faces, model.face_labels
    volume_ml = surface_volume(mean, faces) / 1000.0
    assert 100.0 <= volume_ml <= 250.0
    lv_length = -mean[model.landmarks["lv_apex_epicardium"], 2]
    assert 80.0 <= lv_length <= 100.0

    endo = _vertices(faces, labels, 1)
    mid = endo[(mean[endo, 2] > -0.6 * lv_length) & (mean[endo, 2] < -0.4 * lv_length)]
    outer = faces[(labels == 2) | (labels == 3)]                    # epicardium or septum's RV side
    lv_wall = _distance(mean, outer, mean[mid])
    assert len(mid) > 20
    assert 8.0 <= np.median(lv_wall) <= 12.0, np.median(lv_wall)
    assert np.percentile(lv_wall, 5) > 7.0 and np.percentile(lv_wall, 95) < 13.0

    rv = _vertices(faces, labels, 2)
    rv = rv[(mean[rv, 2] > -0.6 * lv_length) & (mean[rv, 2] < -0.1 * lv_length)]
    # free-wall points: well away from the LV endocardium (septal points are one LV wall away)
    free_wall = rv[_distance(mean, faces[labels == 1], mean[rv]) > np.median(lv_wall) + 5.0]
    rv_wall = _distance(mean, faces[labels == 3], mean[free_wall])
    assert len(free_wall) > 20
    assert 3.0 <= np.median(rv_wall) <= 5.0, np.median(rv_wall)
    assert rv_wall.min() > 2.0 and rv_wall.max() < 6.0


def test_first_mode_changes_the_size_most(model):
    def volume_change(k: int) -> float:
        step = np.eye(model.n_modes)[k]
        return abs(surface_volume(model.instance(step), model.faces)
                   - surface_volume(model.instance(-step), model.faces))

    changes = [volume_change(k) for k in range(3)]
    assert changes[0] == max(changes)
    assert changes[0] > 30_000.0                                    # > 30 mL between -1 and +1 sd
    # and it is mostly a scaling: its direction is close to that of the centred mean shape
    centred = (model.mean - model.mean.mean(axis=0)).ravel()
    assert abs(model.modes[0] @ centred) / np.linalg.norm(centred) > 0.6


def test_fine_template_has_fixed_connectivity_and_good_triangles():
    edge = 2.0
    rng = np.random.default_rng(11)
    reference_faces = None
    for parameters in (BiventricularParameters(), sample_parameters(rng), sample_parameters(rng)):
        points, faces, labels = biventricular_surface(parameters, edge)
        if reference_faces is None:
            reference_faces, reference_labels = faces, labels
        np.testing.assert_array_equal(faces, reference_faces)
        np.testing.assert_array_equal(labels, reference_labels)
        assert 0.7 * edge <= _edge_lengths(points, faces).mean() <= 1.3 * edge
        angles = _min_angles_deg(points, faces)
        assert np.mean(angles > 20.0) > 0.99 and angles.min() > 10.0
        report = inspect_surface(points, faces)
        assert report.watertight and report.volume_mm3 > 0 and report.misplaced_probe_fraction == 0.0
    coarse_points, coarse_faces, _ = biventricular_surface(BiventricularParameters(), 4.0)
    assert len(coarse_points) < len(points) / 3                     # resolution follows the edge length
    assert len(coarse_faces) == 2 * len(coarse_points) - 4           # one closed genus-0 surface


def test_population_is_reproducible_and_implausible_hearts_are_refused():
    first = [sample_parameters(np.random.default_rng(5)) for _ in range(2)]
    assert first[0] == first[1]
    draws = [sample_parameters(np.random.default_rng(seed)) for seed in range(30)]
    for field in ("lv_length_mm", "lv_radius_mm", "lv_wall_mm", "rv_depth", "rv_cavity_depth_mm", "rv_wall_mm"):
        assert np.std([getattr(d, field) for d in draws]) > 0, field
    with pytest.raises(ValueError):
        dataclasses.replace(BiventricularParameters(), lv_wall_mm=30.0)
    with pytest.raises(ValueError):
        dataclasses.replace(BiventricularParameters(), rv_depth=1.0)
