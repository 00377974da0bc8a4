"""The QRS duration against the heart's size: a hand-made cohort on known lines (slope,
correlation, the volume where the line reaches Strauss's QRS, the smaller and larger halves'
counts), too few beats for a line, a patient without a volume, the shipped clinical
correlations and their validation, the markdown and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ecgcohort.realism.heart_size import (MIN_BEATS, heart_size_markdown, load_clinical_correlations,
                                          qrs_against_heart_size, read_myocardial_volumes)
from ecgcohort.realism.population import NORMS_PATH, load_norms

STRAUSS_MS = {"female": 130.0, "male": 140.0}
#: LBBB QRS = intercept + slope * volume exactly, per sex (ms, ms per mL)
LINES = {"female": (80.0, 0.4), "male": (70.0, 0.5)}
VOLUMES_ML = {"female": [100.0, 110.0, 120.0, 130.0, 140.0, 150.0], "male": [120.0, 130.0, 140.0, 150.0, 160.0, 170.0]}


def beat(patient: str, sex: str, kind: str, qrs_ms: float, status: str = "ok") -> dict:
    return {"patient": patient, "sex": sex, "scenario": kind, "kind": kind, "status": status,
            "qrs_duration_ms": qrs_ms}


@pytest.fixture
def cohort() -> tuple[list[dict], dict[str, float]]:
    rows, volumes = [], {}
    rng = np.random.default_rng(3)
    for sex, sizes in VOLUMES_ML.items():
        intercept, slope = LINES[sex]
        for k, volume in enumerate(sizes):
            patient = f"{sex[0]}{k}"
            volumes[patient] = volume
            rows.append(beat(patient, sex, "lbbb", intercept + slope * volume))
            rows.append(beat(patient, sex, "sinus", 60.0 + 0.2 * volume + rng.normal(0.0, 3.0)))
    # an undelineated beat and a paced beat do not count
    rows += [beat("f0", "female", "lbbb", float("nan"), status="flat ECG"), beat("m0", "male", "random_pacing", 200.0)]
    return rows, volumes


def row_of(table: list[dict], kind: str, sex: str) -> dict:
    (row,) = [r for r in table if r["kind"] == kind and r["sex"] == sex]
    return row


def test_the_lines_counts_and_threshold_volumes_are_the_known_ones(cohort):
    rows, volumes = cohort
    table = qrs_against_heart_size(rows, volumes, STRAUSS_MS)
    assert [(r["kind"], r["sex"]) for r in table] == [(kind, sex) for kind in ("sinus", "lbbb")
                                                      for sex in ("female", "male", "all")]
    for sex, (intercept, slope) in LINES.items():
        lbbb = row_of(table, "lbbb", sex)
        assert lbbb["beats"] == 6
        assert lbbb["slope_ms_per_10ml"] == pytest.approx(10.0 * slope)
        assert lbbb["intercept_ms"] == pytest.approx(intercept)
        assert lbbb["correlation"] == pytest.approx(1.0)
        assert lbbb["threshold_volume_ml"] == pytest.approx((STRAUSS_MS[sex] - intercept) / slope)
        assert lbbb["volume_median_ml"] == pytest.approx(np.median(VOLUMES_ML[sex]))
    # women: 120, 124, 128 | 132, 136, 140 ms reach 130 in 0 of 3 smaller, 3 of 3 larger hearts;
    # men: 130, 135, 140 | 145, 150, 155 ms reach 140 in 1 of 3 smaller, 3 of 3 larger
    women, men = row_of(table, "lbbb", "female"), row_of(table, "lbbb", "male")
    halves = ("smaller_reaching", "smaller_beats", "larger_reaching", "larger_beats")
    assert tuple(women[key] for key in halves) == (0, 3, 3, 3)
    assert tuple(men[key] for key in halves) == (1, 3, 3, 3)
    # both sexes together: each beat against its own sex's threshold, split at the pooled median
    pooled = row_of(table, "lbbb", "all")
    assert pooled["beats"] == 12 and pooled["qrs_min_ms"] is None and pooled["threshold_volume_ml"] is None
    assert pooled["smaller_reaching"] + pooled["larger_reaching"] == 7
    sinus = row_of(table, "sinus", "all")
    assert 0.5 < sinus["correlation"] < 1.0 and sinus["smaller_beats"] is None and sinus["qrs_min_ms"] is None


def test_too_few_beats_give_no_line_and_equal_volumes_no_slope():
    volumes = {"a": 100.0, "b": 120.0, "c": 120.0, "d": 120.0, "e": 120.0}
    rows = [beat("a", "female", "lbbb", 130.0), beat("b", "female", "lbbb", 140.0)]
    rows += [beat(p, "male", "lbbb", 140.0 + k) for k, p in enumerate("cde")]
    table = qrs_against_heart_size(rows, volumes, STRAUSS_MS)
    assert MIN_BEATS == 3
    women, men = row_of(table, "lbbb", "female"), row_of(table, "lbbb", "male")
    assert women["beats"] == 2 and women["slope_ms_per_10ml"] is None and women["threshold_volume_ml"] is None
    assert women["smaller_reaching"] == 1 and women["larger_reaching"] == 1
    assert men["beats"] == 3 and men["slope_ms_per_10ml"] is None and men["correlation"] is None
    # a line reaching Strauss's QRS only beyond the sex's volumes gives no threshold volume
    volumes |= {"f": 130.0, "g": 140.0}
    rows = [beat(p, "female", "lbbb", 100.0 + 0.1 * volumes[p]) for p in "abfg"]
    women = row_of(qrs_against_heart_size(rows, volumes, STRAUSS_MS), "lbbb", "female")
    assert women["slope_ms_per_10ml"] == pytest.approx(1.0) and women["threshold_volume_ml"] is None
    empty = row_of(table, "sinus", "female")
    assert empty["beats"] == 0 and empty["volume_median_ml"] is None


def test_a_beat_of_a_patient_without_a_volume_names_the_patient(cohort):
    rows, volumes = cohort
    del volumes["m3"]
    with pytest.raises(ValueError, match="patient m3"):
        qrs_against_heart_size(rows, volumes, STRAUSS_MS)


@pytest.mark.parametrize("volume", [None, 0.0, "big", float("nan")])
def test_a_missing_or_bad_volume_names_the_patient_and_value(tmp_path, volume):
    measures = {} if volume is None else {"myocardial_volume_ml": volume}
    path = tmp_path / "anatomy.json"
    path.write_text(json.dumps({"patient": "p7", "measures": measures}))
    with pytest.raises(ValueError, match=r"patient p7: .*myocardial_volume_ml"):
        read_myocardial_volumes([path])
    path.write_text(json.dumps({"patient": "p7", "measures": {"myocardial_volume_ml": 151.5}}))
    assert read_myocardial_volumes([path]) == {"p7": 151.5}


def test_the_shipped_clinical_correlations_load_and_a_bad_row_is_refused(tmp_path):
    norms = load_norms()
    clinical = load_clinical_correlations(norms)
    assert {row["kind"] for row in clinical} == {"sinus", "lbbb"}
    assert all(0.0 < row["correlation"] < 1.0 for row in clinical)
    data = yaml.safe_load(Path(NORMS_PATH).read_text())
    for change, message in (({"kind": "crt"}, "kind 'crt'"), ({"source": "nobody"}, "source 'nobody'"),
                            ({"correlation": 1.5}, "correlation 1.5"), ({"extra": 1}, "has keys")):
        data["heart_size"] = [clinical[0] | change]
        path = tmp_path / "norms.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        with pytest.raises(ValueError, match=rf"heart_size\[0\]: {message}"):
            load_clinical_correlations(norms, path)


def test_the_markdown_and_figure_show_the_table(tmp_path, cohort):
    from ecgcohort.realism.figures import plot_heart_size

    rows, volumes = cohort
    norms = load_norms()
    table = qrs_against_heart_size(rows, volumes, STRAUSS_MS, load_clinical_correlations(norms), norms)
    page = heart_size_markdown(table, norms)
    assert "| lbbb | female | 6 | 125 (100 to 150) | 4.0 | 1.00 | 0/3 / 3/3 | 125 (130 ms) | 0.39 (LV mass) |" in page
    assert "Chan et al. 2014" in page
    plot_heart_size(rows, volumes, table, tmp_path / "heart_size.png")
    assert (tmp_path / "heart_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
