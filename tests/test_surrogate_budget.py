"""The surrogate's error budget: the ground-truth term (FEM of the dataset's mesh, surrogate and
converged reference at fixed points) on fields with known angles, its Markdown and figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ecgcohort.surrogate.jobs import ground_truth_errors
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
                          "angular_error_heart_deg_mean": [9.0, 17.0]})
    transfer = pd.DataFrame({"model": ["DeepSDF, pseudo_residual"], "lead": ["all"], "phase": ["beat"],
                             "cell_angular_error_deg": [15.0], "cell_magnitude_error": [0.2],
                             "weighted_field_error": [0.4], "ecg_error": [0.43], "ecg_over_field": [1.1]})
    trainings = {"DeepSDF, pseudo_residual": {"training_angular_error_deg": 8.0, "validation_angular_error_deg": 8.5,
                                              "best_epoch": 24, "epochs": 24, "seconds": 48.0, "device": "cpu"}}
    return table, transfer, trainings


def test_the_budget_averages_the_ground_truth_over_patients_and_shows_a_dash_where_unmeasured(tmp_path):
    summaries = [{"encoding": "deepsdf", "target": "pseudo_residual", **{c: value for c in GROUND_TRUTH_COLUMNS}}
                 for value in (4.0, 6.0)]
    means = ground_truth_means(summaries)
    assert means["DeepSDF, pseudo_residual"]["fem_vs_reference_angle_deg"] == 5.0
    assert means["DeepSDF, pseudo_residual"]["ground_truth_patients"] == 2
    budget = error_budget_table(*budget_inputs(), means)
    assert budget.loc[0, "surrogate_vs_reference_angle_deg"] == 5.0
    assert budget.loc[0, "generalisation_gap_deg"] == 1.0
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
