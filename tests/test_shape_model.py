"""The shape-model type, its PCA builder and the loaders for atlases users already have."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgcohort.shapes import ShapeModelError, from_training_shapes, load_npz, load_uk_digital_heart
from synthetic import lv_cup

NAMES = {1: "lv_endocardium", 3: "epicardium", 4: "base"}


def cup_population(count: int = 40, seed: int = 1) -> np.ndarray:
    """Cups with random size, elongation and wall thickness on one template."""
    rng = np.random.default_rng(seed)
    template, faces, labels = lv_cup(rings=6, sectors=16)
    n = len(template) // 2
    shapes = []
    for _ in range(count):
        scale, stretch, wall = rng.normal(1, 0.08), rng.normal(1, 0.1), rng.normal(1, 0.15)
        shape = template * scale
        shape[:, 2] *= stretch
        shape[n:, :2] *= 1 + 0.05 * (wall - 1)
        shapes.append(shape)
    return np.array(shapes), faces, labels


def test_pca_modes_are_orthonormal_and_reconstruct_a_training_shape():
    shapes, faces, labels = cup_population()
    model = from_training_shapes("cups", shapes, faces, labels, NAMES, n_modes=10)
    assert model.modes @ model.modes.T == pytest.approx(np.eye(10), abs=1e-10)
    assert np.all(np.diff(model.sd) <= 1e-12) and model.sd[0] > 0
    target = shapes[7]
    full = model.instance(model.project(target))
    mean_error = np.linalg.norm(model.mean - target, axis=1).max()
    assert np.linalg.norm(full - target, axis=1).max() < 1e-6 * mean_error  # 3 factors span the family
    assert np.linalg.norm(model.instance(model.project(target, 1)) - target, axis=1).max() < mean_error
    assert model.instance(np.zeros(3)) == pytest.approx(model.mean)


def test_instances_keep_correspondence_and_weights_are_in_standard_deviations():
    shapes, faces, labels = cup_population()
    model = from_training_shapes("cups", shapes, faces, labels, NAMES, n_modes=3)  # the family's 3 factors
    # weights of the training set have zero mean and unit sample standard deviation per mode
    all_weights = np.array([model.project(s) for s in shapes])
    assert all_weights.mean(axis=0) == pytest.approx(np.zeros(3), abs=1e-9)
    assert all_weights.std(axis=0, ddof=1) == pytest.approx(np.ones(3), rel=1e-9)
    instance = model.instance(all_weights[3])
    assert instance.shape == model.mean.shape
    np.testing.assert_array_equal(model.faces, faces)
    with pytest.raises(ShapeModelError, match="4 weights for 3 modes"):
        model.instance(np.zeros(4))


def test_npz_round_trip(tmp_path):
    shapes, faces, labels = cup_population()
    model = from_training_shapes("cups", shapes, faces, labels, NAMES, n_modes=4, landmarks={"apex": 0})
    model.save(tmp_path / "cups.npz")
    loaded = load_npz(tmp_path / "cups.npz")
    assert loaded.name == "cups" and loaded.label_names == NAMES and loaded.landmarks == {"apex": 0}
    assert loaded.instance([1, -1, 0.5]) == pytest.approx(model.instance([1, -1, 0.5]))
    np.savez(tmp_path / "broken.npz", mean=model.mean, faces=model.faces)
    with pytest.raises(ShapeModelError, match=r"lacks arrays \['modes', 'sd'\]"):
        load_npz(tmp_path / "broken.npz")


def test_uk_digital_heart_layout(tmp_path):
    import pyvista

    shapes, faces, labels = cup_population()
    model = from_training_shapes("cups", shapes, faces, labels, NAMES, n_modes=6)
    surface = pyvista.PolyData(model.mean, np.column_stack([np.full(len(faces), 3), faces]).ravel())
    surface.cell_data["region"] = labels
    surface.save(tmp_path / "LV_ED_mean.vtk")
    with gzip.open(tmp_path / "LV_ED_pc_100_modes.csv.gz", "wt") as stream:
        np.savetxt(stream, model.modes.T, delimiter=",")      # (3 n_points, n_modes) columns
    with gzip.open(tmp_path / "LV_ED_var_100_modes.csv.gz", "wt") as stream:
        np.savetxt(stream, model.sd**2, delimiter=",")
    loaded = load_uk_digital_heart(tmp_path / "LV_ED_mean.vtk", tmp_path / "LV_ED_pc_100_modes.csv.gz",
                                   tmp_path / "LV_ED_var_100_modes.csv.gz", n_modes=4,
                                   label_array="region", label_names=NAMES)
    assert loaded.n_modes == 4 and loaded.label_names == NAMES
    np.testing.assert_array_equal(loaded.face_labels, labels)
    weights = [0.5, -1.0, 2.0, 0.0]
    assert loaded.instance(weights) == pytest.approx(model.instance(weights), abs=1e-4)

    with gzip.open(tmp_path / "short.csv.gz", "wt") as stream:
        np.savetxt(stream, model.modes.T[:-3], delimiter=",")
    with pytest.raises(ShapeModelError, match="do not match"):
        load_uk_digital_heart(tmp_path / "LV_ED_mean.vtk", tmp_path / "short.csv.gz",
                              tmp_path / "LV_ED_var_100_modes.csv.gz")


def test_the_config_selects_a_users_npz_model_and_names_what_it_lacks(tmp_path):
    from ecgcohort.shapes.catalog import shape_model_from_config

    shapes, faces, labels = cup_population()
    biv_names = {1: "lv_endocardium", 2: "rv_endocardium", 3: "epicardium", 4: "base"}
    with_rv = labels.copy()
    with_rv[:10] = 2  # a few faces relabelled so that every heart region exists
    from_training_shapes("mine", shapes, faces, with_rv, biv_names, n_modes=3).save(tmp_path / "mine.npz")
    spec = {"source": "npz", "npz": str(tmp_path / "mine.npz"), "n_modes": 3}
    model = shape_model_from_config("heart", spec)
    assert model.name == "mine" and model.n_modes == 3

    from_training_shapes("lv_only", shapes, faces, labels, NAMES, n_modes=3).save(tmp_path / "lv.npz")
    with pytest.raises(ShapeModelError, match=r"shapes.heart: model 'lv_only' lacks regions \['rv_endocardium'\]"):
        shape_model_from_config("heart", dict(spec, npz=str(tmp_path / "lv.npz")))
    body = np.ones(len(faces), dtype=np.int32)
    from_training_shapes("body", shapes, faces, body, {1: "body_surface"}, n_modes=3).save(tmp_path / "body.npz")
    with pytest.raises(ShapeModelError, match=r"lacks landmarks \['jugular_notch', 'left_hip'"):
        shape_model_from_config("torso", dict(spec, npz=str(tmp_path / "body.npz")))
    with pytest.raises(ShapeModelError, match="'npz' must name a file"):
        shape_model_from_config("heart", dict(spec, npz=None))


def test_mode_signs_follow_the_training_shapes_not_the_triangulation():
    """The same population of cups on a coarse and a fine triangulation: every mode points the
    same way (towards the same training shape). The modes themselves still differ a little
    (PCA weighs the shapes by vertex density), which is why a patient is made on one fixed
    template and resampled (tests/test_resample.py)."""
    coarse, faces_coarse, labels_coarse = cup_population(count=30, seed=3)
    rng = np.random.default_rng(3)
    params = [(rng.normal(1, 0.08), rng.normal(1, 0.1), rng.normal(1, 0.15)) for _ in range(30)]
    fine_template, faces_fine, labels_fine = lv_cup(rings=18, sectors=48)

    def cups(template: np.ndarray) -> np.ndarray:
        n = len(template) // 2
        out = []
        for scale, stretch, wall in params:
            shape = template * scale
            shape[:, 2] *= stretch
            shape[n:, :2] *= 1 + 0.05 * (wall - 1)
            out.append(shape)
        return np.array(out)

    from ecgcohort.geometry import surface_volume

    models = [from_training_shapes(name, cups(template), faces, labels, NAMES, n_modes=3)
              for name, template, faces, labels in (("coarse", lv_cup(rings=6, sectors=16)[0], faces_coarse,
                                                     labels_coarse),
                                                    ("fine", fine_template, faces_fine, labels_fine))]
    for weights in np.eye(3) * 2.0:
        volumes = [surface_volume(model.instance(weights), model.faces) for model in models]
        base = [surface_volume(model.mean, model.faces) for model in models]
        # the same direction of change (a flipped mode would change the volume the other way)
        assert np.sign(volumes[0] - base[0]) == np.sign(volumes[1] - base[1]), weights
    # the rule itself: each mode's most extreme training shape has a positive score
    for model in models:
        scores = np.array([model.project(shape) for shape in cups(lv_cup(rings=6, sectors=16)[0] if model.name == "coarse"
                                                                    else fine_template)])
        extreme = np.abs(scores).argmax(axis=0)
        assert np.all(scores[extreme, np.arange(3)] > 0)


def test_the_fast_pca_gives_the_thin_svds_leading_modes_and_falls_back_below_its_floor():
    from ecgcohort.shapes.model import GRAM_RELATIVE_FLOOR, _leading_singular_triplets

    rng = np.random.default_rng(3)
    # a wide population (30 shapes of 3,000 coordinates) with decaying variances, and one of rank 3
    wide = (rng.normal(size=(30, 30)) * np.geomspace(1, 1e-2, 30)) @ rng.normal(size=(30, 3000))
    rank_three = rng.normal(size=(30, 3)) @ rng.normal(size=(3, 3000))
    for matrix, count in ((wide - wide.mean(axis=0), 12), (rank_three - rank_three.mean(axis=0), 6)):
        left, singular, right = _leading_singular_triplets(matrix, count)
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        signs = np.sign(np.sum(right * vt[:count], axis=1))
        assert singular == pytest.approx(s[:count], rel=1e-10, abs=1e-12 * s[0])
        np.testing.assert_allclose(right * signs[:, None], vt[:count], atol=1e-9)
        np.testing.assert_allclose(left * signs, u[:, :count], atol=1e-9)
        assert right @ right.T == pytest.approx(np.eye(count), abs=1e-10)
    assert s[5] < GRAM_RELATIVE_FLOOR * s[0]  # the rank-3 case went through the fallback


def test_a_cached_builtin_model_is_loaded_and_one_from_other_code_or_libraries_rebuilt(tmp_path, monkeypatch):
    """The cache gives back the built model's arrays; a model cached by another version of a
    source module or of a library is not used (its key differs) and the model is built again."""
    from ecgcohort.shapes import catalog

    spec = {"source": "builtin", "n_modes": 3, "population": 8, "seed": 0, "template_edge_mm": 6.0}
    builds = []
    build = catalog.shape_model_from_config
    monkeypatch.setattr(catalog, "shape_model_from_config", lambda *args: builds.append(args) or build(*args))
    cache = tmp_path / "cache"
    catalog.write_shape_model("heart", spec, tmp_path / "built.npz", cache_dir=cache)
    catalog.write_shape_model("heart", spec, tmp_path / "copied.npz", cache_dir=cache)
    assert len(builds) == 1 and len(list(cache.glob("heart-*.npz"))) == 1
    built, copied = load_npz(tmp_path / "built.npz"), load_npz(tmp_path / "copied.npz")
    np.testing.assert_array_equal(built.modes, copied.modes)
    np.testing.assert_array_equal(built.mean, copied.mean)

    key = catalog.shape_model_cache_key("heart", spec)
    import importlib.metadata

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "0.0.1" if name == "libigl" else real_version(name))
    assert catalog.shape_model_cache_key("heart", spec) != key
    catalog.write_shape_model("heart", spec, tmp_path / "other_library.npz", cache_dir=cache)
    assert len(builds) == 2
    monkeypatch.undo()

    monkeypatch.setattr(catalog, "shape_model_from_config", lambda *args: builds.append(args) or build(*args))
    source = tmp_path / "shapes"
    shutil.copytree(Path(catalog.__file__).parent, source)
    (source / "heart.py").write_text((source / "heart.py").read_text() + "\n# an edit\n")
    monkeypatch.setattr(catalog, "__file__", str(source / "catalog.py"))
    assert catalog.shape_model_cache_key("heart", spec) != key
    catalog.write_shape_model("heart", spec, tmp_path / "other_code.npz", cache_dir=cache)
    assert len(builds) == 3 and len(list(cache.glob("heart-*.npz"))) == 3
    # another config section is another model
    assert catalog.shape_model_cache_key("heart", dict(spec, seed=1)) != catalog.shape_model_cache_key("heart", spec)


def test_a_cache_that_cannot_be_written_still_gives_the_model(tmp_path):
    """A read-only cache folder: the model is built and written, the job does not fail."""
    from ecgcohort.shapes import catalog

    spec = {"source": "builtin", "n_modes": 3, "population": 8, "seed": 0, "template_edge_mm": 6.0}
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    catalog.write_shape_model("heart", spec, tmp_path / "heart.npz", cache_dir=blocked / "shapes")
    assert load_npz(tmp_path / "heart.npz").n_modes == 3
