"""The surrogate stage around the network: code tables and their refusal, the QRS measures
against a closed form, Table 1 with the pseudo lead field and the paper's rows, and the
per-rule timings of the report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecgcohort.surrogate.jobs import qrs_differences, qrs_window
from ecgcohort.surrogate.model import TrainedSurrogate, read_code_table
from ecgcohort.surrogate.report import error_table, table1, table1_markdown, timing_table
from ecgcohort.timings import rule_of, stage_timings


def _write_codes(tmp_path):
    pca = tmp_path / "pca.csv"
    pca.write_text("patient,split,heart_mode_01,torso_mode_01\ntrain-0000,train,0.5,-1.0\ntest-0000,test,2.0,0.25\n")
    deepsdf = tmp_path / "deepsdf.csv"
    deepsdf.write_text("patient,role,source,mahalanobis,outlier,z_00,z_01,z_02\n"
                       "train-0000,train,training,,False,0.1,0.2,0.3\n"
                       "test-0000,test,map_inference,7.5,True,-0.1,0.0,0.4\n")
    return pca, deepsdf


def test_code_tables_of_both_encodings_read_their_codes_and_flags(tmp_path):
    pca_path, deepsdf_path = _write_codes(tmp_path)
    pca = read_code_table(pca_path, "pca")
    assert pca.columns == ("heart_mode_01", "torso_mode_01")
    np.testing.assert_array_equal(pca.code("test-0000"), [2.0, 0.25])
    assert not pca.is_outlier("test-0000") and np.isnan(pca.mahalanobis).all()
    deepsdf = read_code_table(deepsdf_path, "deepsdf")
    assert deepsdf.columns == ("z_00", "z_01", "z_02")
    assert deepsdf.is_outlier("test-0000") and not deepsdf.is_outlier("train-0000")
    assert deepsdf.mahalanobis[1] == 7.5
    with pytest.raises(KeyError, match="test-0009 has no deepsdf code"):
        deepsdf.code("test-0009")
    with pytest.raises(ValueError, match="unknown encoding 'sdf'"):
        read_code_table(pca_path, "sdf")


def test_a_surrogate_refuses_codes_of_another_encoding_or_dimension(tmp_path):
    pca_path, deepsdf_path = _write_codes(tmp_path)
    surrogate = TrainedSurrogate(network=None, box=None, encoding="deepsdf", code_columns=("z_00", "z_01", "z_02"),
                                 metadata={})
    surrogate.check_code_table(read_code_table(deepsdf_path, "deepsdf"))
    with pytest.raises(ValueError, match="takes deepsdf codes with 3 entries.*got pca codes with 2"):
        surrogate.check_code_table(read_code_table(pca_path, "pca"))


def test_qrs_duration_of_a_gaussian_complex_is_its_closed_form_width():
    """A QRS exp(−(t − t0)²/(2s²)) in every lead: the RMS crosses f·max at t0 ± s·√(2 ln 1/f)."""
    times = np.arange(0.0, 500.0, 0.25)
    width, centre, threshold = 12.0, 60.0, 0.05
    complex_ = np.exp(-0.5 * ((times - centre) / width) ** 2)
    leads = np.outer(np.linspace(0.5, 2.0, 12), complex_) * 1e-3
    onset, offset = qrs_window(leads, times, last_activation_ms=90.0, margin_ms=10.0, threshold=threshold)
    half = width * math.sqrt(2 * math.log(1 / threshold))
    assert onset == pytest.approx(centre - half, abs=0.25) and offset == pytest.approx(centre + half, abs=0.25)
    # twice the amplitude and twice the width: amplitude differences of 100 %, duration doubled
    wider = 2 * np.outer(np.linspace(0.5, 2.0, 12), np.exp(-0.5 * ((times - centre) / (2 * width)) ** 2)) * 1e-3
    differences = qrs_differences(leads, wider, times, 200.0, 10.0, threshold)
    assert differences["qrs_amplitude_relative_difference"] == pytest.approx(1.0, rel=1e-3)
    assert differences["qrs_duration_difference_ms"] == pytest.approx(2 * half, abs=0.5)


def _summary(patient: str, encoding: str, target: str, heart: float, outlier: bool = False) -> dict:
    # half the leads at heart / 100, half at twice that: the squared error is not the mean's square
    per_lead = {f"lead-{i}": heart / 100 * (1 if i < 6 else 2) for i in range(12)}
    ecg = {"sinus": {"relative_l2_mean": heart / 100, "relative_l2_per_lead": per_lead,
                     "qrs_amplitude_relative_difference": 0.1,
                     "qrs_amplitude_difference_mv": 0.2, "qrs_duration_difference_ms": 1.0}}
    metrics = {"angular_error_heart_deg": heart, "angular_error_precordial_heart_deg": heart + 1,
               "angular_error_torso_deg": heart + 2, "magnitude_error_heart": 0.1, "magnitude_error_torso": 0.2,
               "ecg_relative_l2_mean": heart / 100, "ecg": ecg, "per_electrode": {}}
    pseudo = {**metrics, "angular_error_heart_deg": 18.0, "angular_error_precordial_heart_deg": 17.0,
              "ecg_relative_l2_mean": 0.6}
    timing = {"device": "cpu", "threads": 2, "timing_points": 65536, "surrogate_one_lead_s": 0.5,
              "surrogate_all_leads_sample_points_s": 1.0, "electrodes": 25, "sample_points": 4096,
              "surrogate_lead_matrix_s": 2.0, "myocardial_cells": 13000, "fem_total_s_per_lead": 0.05,
              "fem_marginal_s_per_lead": 0.002}
    return {"patient": patient, "encoding": encoding, "target": target, "outlier": outlier, "surrogate": metrics,
            "pseudo": pseudo, "timing": timing}


def test_table1_has_our_rows_the_pseudo_lead_field_and_the_papers_values():
    summaries = [_summary("test-0000", "deepsdf", "pseudo_residual", 9.0),
                 _summary("test-0001", "deepsdf", "pseudo_residual", 11.0, outlier=True),
                 _summary("test-0000", "pca", "pseudo_residual", 12.0),
                 _summary("test-0001", "pca", "pseudo_residual", 14.0)]
    errors = error_table(summaries)
    assert (errors["model"] == "pseudo lead field").sum() == 2  # once per patient, not per model
    table = table1(errors).set_index("model")
    ours = table.loc["DeepSDF, pseudo_residual"]
    assert ours["angular_error_heart_deg_mean"] == pytest.approx(10.0)
    assert ours["angular_error_heart_deg_sd"] == pytest.approx(math.sqrt(2))  # sample sd of 9 and 11
    assert ours["angular_error_precordial_heart_deg_mean"] == pytest.approx(11.0)
    assert ours["ecg_relative_l2_mean_mean"] == pytest.approx(0.10)
    # per patient the mean of (h/100)² and (2h/100)² over the leads: 2.5 (h/100)², h = 9 and 11
    assert ours["ecg_relative_l2_squared_mean_mean"] == pytest.approx(2.5 * (0.09 ** 2 + 0.11 ** 2) / 2)
    assert ours["outliers"] == "test-0001"
    assert table.loc["pseudo lead field", "angular_error_heart_deg_mean"] == pytest.approx(18.0)
    paper = table.loc["DeepSDF-based (paper)"]
    assert paper["source"] == "paper" and paper["angular_error_heart_deg_mean"] == 3.89
    assert table.loc["PCA-based (paper)", "ecg_relative_l2_mean_sd"] == 0.013
    assert math.isnan(paper["ecg_relative_l2_squared_mean_mean"])  # the paper gives one ECG figure
    markdown = table1_markdown(table.reset_index())
    assert "| 0.018 ± 0.010 | – |" in markdown
    assert "| 0.100 ± 0.014 | 0.0252 ± 0.0071 |" in markdown
    assert "| DeepSDF, pseudo_residual (outliers: test-0001) | ours | 2 | 10.00° ± 1.41° |" in markdown
    assert "3.89° ± 0.51°" in markdown and "5.93° ± 1.26°" in markdown
    timing = timing_table(summaries).set_index("model")
    assert timing.loc["PCA, pseudo_residual", "fem_over_surrogate"] == pytest.approx(0.1)
    # all 25 leads at 4096 points in 1 s: 16 × 1/25 s per lead at 65,536 points
    assert timing.loc["PCA, pseudo_residual", "surrogate_per_lead_batched_s"] == pytest.approx(16 / 25)


def test_stage_timings_sum_the_benchmark_files_of_each_rule(tmp_path):
    root = tmp_path / "benchmarks"
    files = {"patients/train-0000/compute_ecg/sinus.tsv": 2.0, "patients/test-0000/compute_ecg/lbbb.tsv": 3.0,
             "patients/train-0000/compute_lead_fields-0.tsv": 5.0, "encoding/evaluate_shape_code-test-0000.tsv": 7.0,
             "surrogate/train_surrogate-pca-full.tsv": 11.0, "shapes/torso.tsv": 13.0}
    for name, seconds in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{seconds}\t0:00:0{int(seconds) % 10}\t{seconds * 10}\t1.0\n")
    assert rule_of(root / "patients/train-0000/compute_ecg/sinus.tsv", root) == "compute_ecg"
    assert rule_of(root / "surrogate/train_surrogate-pca-full.tsv", root) == "train_surrogate"
    # a stage folder is not a rule: the file's name is
    for path, rule in (("ecg2act/simulation_bank-test-0000.tsv", "simulation_bank"),
                       ("inverse/test-0000/reconstruct-sinus-stre.tsv", "reconstruct"),
                       ("convergence/train-0000/convergence_level-1.tsv", "convergence_level"),
                       ("dataset/dataset_part-train-0000.tsv", "dataset_part"),
                       ("release/release_cohort.tsv", "release_cohort")):
        assert rule_of(root / path, root) == rule, path
    table = stage_timings(root).set_index("rule")
    assert table.loc["compute_ecg", "jobs"] == 2 and table.loc["compute_ecg", "total_s"] == 5.0
    assert table.loc["compute_ecg", "max_rss_mb"] == 30.0
    assert set(table.index) == {"compute_ecg", "compute_lead_fields", "evaluate_shape_code", "train_surrogate",
                                "build_shape_model (torso)"}
    assert table.index[0] == "build_shape_model (torso)"  # sorted by total time
    assert table["total_s"].sum() == pytest.approx(41.0)


def test_no_test_patients_is_a_clear_error(tmp_path):
    from ecgcohort.surrogate.report import summarize_surrogate_job

    with pytest.raises(ValueError, match="no test patients"):
        summarize_surrogate_job([], [], {"ecg_scenarios": ["sinus"]}, {})
