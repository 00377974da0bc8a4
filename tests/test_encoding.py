"""Geometry encodings: PCA codes standardised on the training split only, the DeepSDF
auto-decoder trained by the backbone on an analytic family of shapes, MAP inference of a
held-out member, and model files refused for another configuration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ecgcohort.encoding.chamfer import interior_chamfer, regular_grid
from ecgcohort.encoding.deepsdf import AutoDecoder, DeepSdfSpec, MapSpec, NormalisationBox, latent_prior
from ecgcohort.encoding.model import ShapeModel, infer_code_from_samples, load_shape_model
from ecgcohort.encoding.pca import code_columns, pca_codes, read_pca_codes, write_pca_codes
from ecgcohort.learning import ModelFileError, TensorTable, TrainingSpec, fit, save_model


# ---------------------------------------------------------------- PCA codes
def _parameters(n_train=6, n_test=3, seed=0):
    names = ([f"heart_mode_{i:02d}" for i in range(1, 11)] + [f"torso_mode_{i:02d}" for i in range(1, 11)]
             + [f"rotation_{a}_deg" for a in "xyz"] + [f"translation_{a}_mm" for a in "xyz"])
    units = ["sd"] * 20 + ["degree"] * 3 + ["mm"] * 3
    rng = np.random.default_rng(seed)
    values = rng.uniform(-1, 1, (n_train + n_test, len(names))) * np.r_[np.ones(20), 10 * np.ones(3), 5 * np.ones(3)]
    patients = [f"train-{i:04d}" for i in range(n_train)] + [f"test-{i:04d}" for i in range(n_test)]
    return values, names, units, patients, ["train"] * n_train + ["test"] * n_test


def test_pca_codes_are_the_papers_23_columns_standardised_on_the_training_split_only(tmp_path):
    values, names, units, patients, splits = _parameters()
    codes = pca_codes(values, names, units, patients, splits)
    assert len(codes.columns) == 23 and codes.columns[:2] == ("heart_mode_01", "heart_mode_02")
    assert codes.columns[20:] == ("rotation_x_deg", "rotation_y_deg", "rotation_z_deg")
    train = codes.table[codes.table.split == "train"][list(codes.columns)]
    assert np.allclose(train.mean(), 0, atol=1e-12) and np.allclose(train.std(ddof=1), 1, atol=1e-12)
    # test rows use the training statistics: changing a test patient changes no other row
    moved = values.copy()
    moved[-1] += 100.0
    again = pca_codes(moved, names, units, patients, splits)
    pd.testing.assert_frame_equal(again.table.iloc[:-1], codes.table.iloc[:-1])
    column = names.index("rotation_y_deg")
    expected = (values[-1, column] - values[:6, column].mean()) / values[:6, column].std(ddof=1)
    assert codes.table.loc["test-0002", "rotation_y_deg"] == pytest.approx(expected)
    assert len(pca_codes(values, names, units, patients, splits, include_translation=True).columns) == 26

    write_pca_codes(codes, tmp_path / "codes.csv", tmp_path / "codes.json")
    table = read_pca_codes(tmp_path / "codes.csv")
    assert list(table.columns) == ["split", *codes.columns]
    assert np.allclose(table[list(codes.columns)].to_numpy(), codes.table[list(codes.columns)].to_numpy())


def test_the_pca_job_reads_each_patients_parameters_file(tmp_path):
    # the job reads parameters.json per patient (not the store): the same codes as from the arrays,
    # and a patient whose parameters are other names is refused, naming it
    import json

    from ecgcohort.encoding.jobs import pca_codes_job

    values, names, units, patients, splits = _parameters()
    sexes = ["female", "male"] * (len(patients) // 2) + ["female"] * (len(patients) % 2)
    ages = np.linspace(25.0, 75.0, len(patients))
    files = []
    for row, patient, split, sex, age in zip(values, patients, splits, sexes, ages):
        files.append(tmp_path / f"{patient}.json")
        files[-1].write_text(json.dumps({"patient": patient, "split": split, "sex": sex, "age_years": age,
                                         "parameters": dict(zip(names, row)), "units": dict(zip(names, units))}))
    pca_codes_job(files, False, tmp_path / "codes.csv", tmp_path / "codes.json")
    # the sex (1 female) and the age join the code after the paper's 23 columns
    person = np.column_stack([[float(sex == "female") for sex in sexes], ages])
    expected = pca_codes(np.hstack([values, person]), [*names, "female", "age_years"], [*units, "1", "year"],
                         patients, splits).table
    table = read_pca_codes(tmp_path / "codes.csv")
    assert list(table.columns[-2:]) == ["female", "age_years"] and len(table.columns) == 1 + 25
    assert list(table.index) == patients
    np.testing.assert_allclose(table[list(expected.columns[1:])].to_numpy(), expected.iloc[:, 1:].to_numpy(dtype=float),
                               rtol=1e-7, atol=1e-9)
    record = json.loads(files[4].read_text())
    files[4].write_text(json.dumps(dict(record, sex="unknown")))
    with pytest.raises(ValueError, match="patient train-0004: .* has sex 'unknown'"):
        pca_codes_job(files, False, tmp_path / "codes.csv", tmp_path / "codes.json")
    record["parameters"] = {f"other_{k}": v for k, v in record["parameters"].items()}
    files[4].write_text(json.dumps(record))
    with pytest.raises(ValueError, match="train-0004"):
        pca_codes_job(files, False, tmp_path / "codes.csv", tmp_path / "codes.json")


def test_pca_codes_refuse_what_cannot_be_standardised():
    values, names, units, patients, splits = _parameters(n_train=0)
    with pytest.raises(ValueError, match="at least one training patient"):
        pca_codes(values, names, units, patients, splits)
    values, names, units, patients, splits = _parameters(n_train=1)
    single = pca_codes(values, names, units, patients, splits)
    assert np.allclose(single.scale, 1.0) and np.allclose(single.table.iloc[0, 1:].astype(float), 0.0)
    values, names, units, patients, splits = _parameters()
    values[4, 3] = np.nan
    with pytest.raises(ValueError, match="patient train-0004: parameter heart_mode_04 is nan"):
        pca_codes(values, names, units, patients, splits)
    assert code_columns(["translation_x_mm", "rotation_x_deg", "torso_mode_01"], False) == ["torso_mode_01",
                                                                                              "rotation_x_deg"]


# ---------------------------------------------------------------- DeepSDF on an analytic family
SEMI_AXES = {  # normalised units; the held-out shape sits inside the family's range
    "sphere-0.30": (0.30, 0.30, 0.30), "sphere-0.50": (0.50, 0.50, 0.50), "ellipsoid-a": (0.50, 0.35, 0.30),
    "ellipsoid-b": (0.35, 0.50, 0.40), "ellipsoid-c": (0.30, 0.40, 0.55), "sphere-0.40": (0.40, 0.40, 0.40),
}
HELD_OUT = (0.45, 0.40, 0.35)


def ellipsoid_sdf(points: np.ndarray, axes) -> np.ndarray:
    """A signed distance of the ellipsoid with ``axes`` that is exact on the axes and its
    surface (|x/a| scaled by the smallest axis: the sign and zero set are exact, which is all
    the interior Chamfer distance uses)."""
    axes = np.asarray(axes)
    return (np.linalg.norm(points / axes, axis=1) - 1.0) * axes.min()


def family_samples(axes, count, rng) -> tuple[np.ndarray, np.ndarray]:
    """DeepSDF-style samples: near the surface (two scales) and uniform in the box."""
    direction = rng.normal(size=(count, 3))
    surface = direction / np.linalg.norm(direction / np.asarray(axes), axis=1, keepdims=True)
    near = surface + rng.normal(scale=np.where(np.arange(count)[:, None] % 2, 0.01, 0.05), size=(count, 3))
    points = np.vstack([near, rng.uniform(-0.8, 0.8, (count // 4, 3))])
    return points.astype(np.float32), ellipsoid_sdf(points, axes).astype(np.float32)[:, None]


@pytest.fixture(scope="module")
def trained_family(tmp_path_factory):
    rng = np.random.default_rng(0)
    spec = DeepSdfSpec(latent_dim=4, hidden=64, layers=4, skip_at=2, fourier_features=8, fourier_scale=1.0,
                       lambda_lipschitz=1e-6, clamp=0.2, surfaces=("shape",), seed=1)
    samples = [family_samples(axes, 3000, rng) for axes in SEMI_AXES.values()]
    table = TensorTable({
        "shape": torch.cat([torch.full((len(x),), i, dtype=torch.int64) for i, (x, _) in enumerate(samples)]),
        "x": torch.from_numpy(np.concatenate([x for x, _ in samples])),
        "sdf": torch.from_numpy(np.concatenate([s for _, s in samples])),
    })
    model = AutoDecoder(spec, len(SEMI_AXES))
    result = fit(model, table, TrainingSpec(epochs=60, batch_size=2048, learning_rate=3e-3, lr_milestones=(0.6, 0.85),
                                            seed=2), tmp_path_factory.mktemp("family"), name="family")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, result.state_dict, {
        "kind": "deepsdf", "config": {**spec.to_config(), "clamp_mm": 0.2}, "spec": spec.to_config(),
        "normalisation": NormalisationBox((0.0, 0.0, 0.0), 1.0).to_dict(), "training_patients": list(SEMI_AXES),
        "validation_patients": [], "sdf_sampling": {}})
    return load_shape_model(path, prior_shrinkage=0.1), path, result


def _grid_chamfer(model: ShapeModel, code, axes, resolution=40) -> float:
    grid = regular_grid(np.full(3, -0.7), np.full(3, 0.7), resolution)
    return interior_chamfer(model.predict_sdf_mm(code, grid)[:, 0], ellipsoid_sdf(grid, axes), grid)


def test_the_auto_decoder_fits_every_member_of_an_analytic_family(trained_family):
    """Bound: 0.02 normalised units, half the 0.036 grid spacing of the evaluation grid plus the
    fit's error — a shape confused with its nearest neighbour in the family (semi-axes 0.1
    apart) gives Chamfer distances of 0.04-0.1."""
    model, _, result = trained_family
    assert result.history[-1]["sdf"] < 0.05 * result.history[0]["sdf"]
    for index, axes in enumerate(SEMI_AXES.values()):
        assert _grid_chamfer(model, model.training_codes[index], axes) < 0.02, axes
    confused = _grid_chamfer(model, model.training_codes[0], SEMI_AXES["sphere-0.50"])
    assert confused > 0.05  # the bound separates shapes


def test_map_inference_recovers_a_held_out_shape_better_than_the_mean_code(trained_family):
    model, _, _ = trained_family
    points, sdf = family_samples(HELD_OUT, 3000, np.random.default_rng(5))
    inferred = infer_code_from_samples(model, points, sdf, MapSpec(iterations=300, learning_rate=0.05, gamma=1e-6,
                                                                   points_per_iteration=2048, seed=0),
                                       outlier_mahalanobis=50.0)
    mean_error = _grid_chamfer(model, model.prior_mean, HELD_OUT)
    map_error = _grid_chamfer(model, inferred.code, HELD_OUT)
    assert map_error < 0.6 * mean_error, (map_error, mean_error)
    assert map_error < 0.03 and not inferred.outlier
    assert inferred.mahalanobis == pytest.approx(model.mahalanobis(inferred.code))


def test_a_far_away_geometry_is_flagged_as_an_outlier(trained_family, caplog):
    model, _, _ = trained_family
    points, sdf = family_samples((0.05, 0.7, 0.05), 2000, np.random.default_rng(6))  # a needle, not an ellipsoid
    inferred = infer_code_from_samples(model, points, sdf, MapSpec(iterations=200, gamma=0.0, seed=0),
                                       outlier_mahalanobis=2.0, name="needle")
    assert inferred.outlier and inferred.mahalanobis > 2.0
    assert "needle: code at Mahalanobis distance" in caplog.text


def test_a_model_file_of_another_configuration_is_refused(trained_family):
    _, path, _ = trained_family
    with pytest.raises(ModelFileError, match="latent_dim: model has 4, this config asks for 16"):
        load_shape_model(path, expected={"latent_dim": 16, "hidden": 64})
    with pytest.raises(ModelFileError, match="hidden"):
        load_shape_model(path, expected={"latent_dim": 4, "hidden": 256})
    assert load_shape_model(path, expected={"latent_dim": 4, "hidden": 64}).surfaces == ("shape",)
    with pytest.raises(ModelFileError, match=r"decodes the surfaces \['shape'\], the data have \['torso'"):
        load_shape_model(path, surfaces=["torso", "lv_endocardium"])


def test_the_latent_prior_is_invertible_with_fewer_codes_than_dimensions():
    codes = np.random.default_rng(0).normal(size=(3, 16))
    mean, cov = latent_prior(codes, 0.1)
    assert np.allclose(mean, codes.mean(axis=0))
    assert np.linalg.eigvalsh(cov).min() > 0.05 * np.mean(np.diag(cov))


def test_the_encoding_summary_averages_per_role_and_shows_a_lost_surface():
    """chamfer.md: one row per role present (fitted, validation, test order), means over the
    role's patients, the decoded / true volume as the ratio of the means, "inf" for a surface
    that was not decoded."""
    from ecgcohort.encoding.jobs import encoding_markdown

    rows = []
    for patient, role, rv_chamfer, rv_error, rv_volume in (("train-0000", "train", 0.2, 1.0, 80.0),
                                                            ("test-0000", "test", 0.4, 2.0, 60.0),
                                                            ("test-0001", "test", np.inf, 40.0, 0.0)):
        for surface in ("torso", "lv_endocardium", "rv_endocardium", "epicardium"):
            rv = surface == "rv_endocardium"
            rows.append({"patient": patient, "role": role, "surface": surface,
                         "chamfer_mm": rv_chamfer if rv else 0.5, "surface_error_mm": rv_error if rv else 3.0,
                         "volume_ml": rv_volume if rv else 100.0, "true_volume_ml": 80.0 if rv else 100.0,
                         "grid_resolution": 64})
    lines = encoding_markdown(pd.DataFrame(rows)).splitlines()
    assert lines[0].startswith("| patients | surface error (mm): torso / LV / RV / epicardium | Chamfer (eq. 8, 64³")
    assert lines[2] == "| fitted (1) | 3.00 / 3.00 / 1.00 / 3.00 | 0.50 / 0.50 / 0.20 / 0.50 | 1.00 / 1.00 / 1.00 / 1.00 |"
    assert lines[3] == "| test (2) | 3.00 / 3.00 / 21.00 / 3.00 | 0.50 / 0.50 / inf / 0.50 | 1.00 / 1.00 / 0.38 / 1.00 |"
    assert len(lines) == 4  # no validation patients, no validation row
