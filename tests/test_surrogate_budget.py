"""The surrogate's error budget: the ground-truth term (FEM of the dataset's mesh, surrogate and
converged reference at fixed points) on fields with known angles, its Markdown and figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ecgcohort.surrogate.jobs import (ground_truth_errors, mean_angle_by_row_set, training_point_subset,
                                     training_row_sets)
from ecgcohort.surrogate.report import GROUND_TRUTH_COLUMNS, budget_markdown, error_budget_table, ground_truth_means


def rotated(field: np.ndarray, degrees: float) -> np.ndarray:
    """Each vector of ``field`` (..., 3) turned by ``degrees`` about an axis perpendicular to it."""
    axis = np.cross(field, [0.3, -0.5, 0.8])
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = math.radians(degrees)
    return field * math.cos(angle) + np.cross(axis, field) * math.sin(angle)


def test_the_ground_truth_term_recovers_known_angles_and_magnitudes_in_the_myocardium_only():
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(9, 50, 3))
    myocardium = np.arange(50) < 30
    fem = rotated(reference, 4.0) * 1.05
    fem[:, ~myocardium] = -reference[:, ~myocardium]  # the torso points must not count
    surrogate = fem.copy()
    errors = ground_truth_errors(surrogate=surrogate, fem=fem, reference=reference, myocardium=myocardium)
    assert errors["fem_vs_reference_angle_deg"] == pytest_approx(4.0)
    assert errors["fem_vs_reference_magnitude"] == pytest_approx(0.05)
    assert errors["surrogate_vs_fem_angle_deg"] == pytest_approx(0.0, abs=1e-5)
    assert errors["surrogate_vs_reference_angle_deg"] == pytest_approx(4.0)
    # a surrogate that is the reference itself is the FEM's error away from the FEM
    errors = ground_truth_errors(surrogate=reference, fem=fem, reference=reference, myocardium=myocardium)
    assert errors["surrogate_vs_reference_angle_deg"] == pytest_approx(0.0, abs=1e-5)
    assert errors["surrogate_vs_fem_angle_deg"] == pytest_approx(4.0)
    assert errors["surrogate_vs_fem_magnitude"] == pytest_approx(1 - 1 / 1.05)


def pytest_approx(value, **kwargs):
    return pytest.approx(value, **({"rel": 1e-6, "abs": 1e-9} | kwargs))


def budget_inputs():
    table = pd.DataFrame({"model": ["DeepSDF, pseudo_residual", "pseudo lead field"],
                          "angular_error_heart_deg_mean": [9.0, 17.0], "angular_error_torso_deg_mean": [6.5, 19.0]})
    transfer = pd.DataFrame({"model": ["DeepSDF, pseudo_residual"], "lead": ["all"], "phase": ["beat"],
                             "cell_angular_error_deg": [15.0], "cell_magnitude_error": [0.2],
                             "weighted_field_error": [0.4], "ecg_error": [0.43], "ecg_over_field": [1.1]})
    trainings = {"DeepSDF, pseudo_residual": {"training_angular_error_deg": 8.0, "validation_angular_error_deg": 8.5,
                                              "fitting_heart_angular_error_deg": 8.25,
                                              "validation_heart_angular_error_deg": 8.75,
                                              "fitting_points_angular_error_deg": 6.0, "best_epoch": 24, "epochs": 24, "seconds": 48.0, "device": "cpu"}}
    return table, transfer, trainings


def test_the_budget_averages_the_ground_truth_over_patients_and_shows_a_dash_where_unmeasured(tmp_path):
    summaries = [{"encoding": "deepsdf", "target": "pseudo_residual", **{c: value for c in GROUND_TRUTH_COLUMNS}}
                 for value in (4.0, 6.0)]
    means = ground_truth_means(summaries)
    assert means["DeepSDF, pseudo_residual"]["fem_vs_reference_angle_deg"] == 5.0
    assert means["DeepSDF, pseudo_residual"]["ground_truth_patients"] == 2
    budget = error_budget_table(*budget_inputs(), means)
    assert budget.loc[0, "surrogate_vs_reference_angle_deg"] == 5.0
    # the gap on one point set: the test patients' heart + margin angle less the fitting patients'
    assert budget.loc[0, "generalisation_gap_deg"] == 0.75
    assert budget.loc[0, "test_points_angle_deg"] == 6.5 and budget.loc[0, "fitting_angle_deg"] == 8.0
    assert "| DeepSDF, pseudo_residual | 8.25° | 8.75° | 9.00° | +0.75° | 6.00° | 6.50° | 15.0° |" in budget_markdown(budget)
    # a budget written before the heart + margin fitting angle: its gap (against every training row)
    # is not printed under the one-point-set header
    legacy = budget.drop(columns=["fitting_heart_angle_deg", "validation_heart_angle_deg", "fitting_points_angle_deg",
                                  "test_points_angle_deg"]).assign(generalisation_gap_deg=1.0)
    assert "| DeepSDF, pseudo_residual | – | – | 9.00° | – | – | – | 15.0° |" in budget_markdown(legacy)
    assert "| 24 of 24 | 48 s, cpu | 5.00° | 5.00° | 5.00° |" in budget_markdown(budget)
    unmeasured = error_budget_table(*budget_inputs())
    assert unmeasured[list(GROUND_TRUTH_COLUMNS)].isna().all().all()
    assert budget_markdown(unmeasured).splitlines()[2].endswith("| 48 s, cpu | – | – | – |")
    from ecgcohort.surrogate.figures import error_budget, samples_seen

    losses = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.4, 0.3, 0.2], "validation_loss": [0.5, 0.3, 0.35],
                           "samples_per_second": [1000.0, 2000.0, 1000.0], "seconds": [2.0, 1.0, 2.0]})
    np.testing.assert_array_equal(samples_seen(losses), [2000.0, 4000.0, 6000.0])
    error_budget(budget, tmp_path / "budget.png", {"DeepSDF, pseudo_residual": losses})
    # a cohort with one training patient has no validation patients and no validation loss
    training_only = losses.drop(columns="validation_loss")
    error_budget(budget, tmp_path / "no_validation.png", {"DeepSDF, pseudo_residual": training_only})
    assert (tmp_path / "budget.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_training_row_sets_are_the_evaluations_point_sets_of_the_kept_points(tmp_path):
    region = np.array([1, 2, 2, 2, 1, 2, 2, 2], dtype=np.int32)
    distance_m = np.array([0.0, 0.004, 0.0099, 0.0101, 0.0, 0.03, 0.01, 0.2])
    np.savez(tmp_path / "points.npz", points_m=np.zeros((8, 3)), region=region, distance_to_heart_m=distance_m)
    every = training_row_sets("train-0003", tmp_path / "points.npz", training_points=None, myocardial_count=0,
                              seed=1, heart_margin_mm=10.0)
    np.testing.assert_array_equal(every["heart"], [True, True, True, False, True, False, True, False])
    assert every["points"].all() and every["rows"].all()
    kept = training_point_subset("train-0003", 8, 5, 1)
    subset = training_row_sets("train-0003", tmp_path / "points.npz", training_points=5, myocardial_count=3, seed=1,
                               heart_margin_mm=10.0)
    # the kept points in the block's order, then three myocardial cells in neither point set
    np.testing.assert_array_equal(subset["heart"], np.concatenate([every["heart"][kept], [False] * 3]))
    np.testing.assert_array_equal(subset["points"], [True] * 5 + [False] * 3)
    assert subset["rows"].sum() == 8
    # the mean over every electrode and row of each set, pooled over patients
    errors = [np.arange(16, dtype=float).reshape(2, 8), np.full((2, 8), 100.0)]
    means = mean_angle_by_row_set(errors, [every, subset])
    heart_rows = np.concatenate([errors[0][:, every["heart"]].ravel(), errors[1][:, subset["heart"]].ravel()])
    assert means["heart"] == pytest_approx(heart_rows.mean())
    assert means["points"] == pytest_approx((errors[0].sum() + 100.0 * 10) / 26)
    assert means["rows"] == pytest_approx((errors[0].sum() + 100.0 * 16) / 32)
