"""The cohort against published healthy populations: a hand-made cohort with a known fraction
outside each reference range (percentiles, and mean ± 2.054 SD where a source gives only those),
the interquartile check, features and sexes without published values, the reference table's
validation and sources, and the patients' sex and age read from anatomy.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from ecgcohort.realism.jobs import read_sex_and_age
from ecgcohort.realism.population import (Z_75, Z_98, compare_with_population, load_norms,
                                          population_markdown)

WOMEN_QRS_MS = [60.0, 65.0, 72.0, 80.0, 85.0, 90.0, 95.0, 100.0, 108.0, 115.0]
MEN_QRS_MS = [60.0, 70.0, 90.0, 110.0, 111.0]


def beat(patient: str, sex: str, qrs_ms: float, criteria_set: str = "healthy", status: str = "ok") -> dict:
    return {"patient": patient, "sex": sex, "scenario": "sinus", "criteria_set": criteria_set, "status": status,
            "qrs_duration_ms": qrs_ms, "qrs_axis_deg": 40.0}


@pytest.fixture
def cohort() -> list[dict]:
    rows = [beat(f"w{k}", "female", v) for k, v in enumerate(WOMEN_QRS_MS)]
    rows += [beat(f"m{k}", "male", v) for k, v in enumerate(MEN_QRS_MS)]
    # neither a beat judged by another set nor an undelineated one counts
    rows += [beat("w0", "female", 150.0, criteria_set="lbbb"), beat("m9", "male", float("nan"), status="flat ECG")]
    return rows


def write_norms(path: Path, norms: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({
        "features": {"qrs_duration_ms": {"label": "QRS duration", "unit": "ms"},
                     "qrs_axis_deg": {"label": "frontal QRS axis", "unit": "°"}},
        "sources": {"a": {"label": "Source A", "cite": "a2020", "population": "people A", "read": "table 1"},
                    "b": {"label": "Source B", "cite": "b2021", "population": "people B", "read": "abstract"}},
        "norms": norms}, allow_unicode=True))
    return path


@pytest.fixture
def norms(tmp_path):
    return load_norms(write_norms(tmp_path / "norms.yaml", [
        {"feature": "qrs_duration_ms", "sex": "female", "source": "a", "median": 86, "p2": 70, "p98": 104,
         "p25": 80, "p75": 90},
        {"feature": "qrs_duration_ms", "sex": "male", "source": "b", "mean": 90, "sd": 10},
        {"feature": "qrs_duration_ms", "sex": "all", "source": "b", "p2": 69, "p98": 109},
        # a population whose interquartile range misses the women's median (87.5 ms)
        {"feature": "qrs_duration_ms", "sex": "female", "source": "b", "median": 100, "p25": 95, "p75": 105},
    ]))


def test_the_fraction_inside_the_range_is_the_known_one(cohort, norms):
    table = compare_with_population(cohort, norms)
    qrs = [row for row in table if row["feature"] == "qrs_duration_ms"]
    women, men, both, narrow = qrs
    # women inside 70-104: 72, 80, 85, 90, 95, 100
    assert (women["cohort_n"], women["inside_range"], women["fraction_inside_range"]) == (10, 6, pytest.approx(0.6))
    assert (women["range_low"], women["range_high"], women["range_from"]) == (70.0, 104.0, "percentiles")
    assert women["cohort_median"] == pytest.approx(87.5)
    assert (women["cohort_p25"], women["cohort_p75"]) == (pytest.approx(74.0), pytest.approx(98.75))
    assert (women["iqr_low"], women["iqr_high"], women["median_inside_iqr"]) == (80.0, 90.0, "yes")
    # men against mean ± 2.054 SD = 69.46 … 110.54: 70, 90 and 110 inside, 60 and 111 outside
    assert (men["range_low"], men["range_high"]) == (pytest.approx(90 - Z_98 * 10), pytest.approx(90 + Z_98 * 10))
    assert men["range_from"] == "mean ± 2.054 SD"
    assert (men["cohort_n"], men["inside_range"], men["fraction_inside_range"]) == (5, 3, pytest.approx(0.6))
    assert (men["iqr_low"], men["iqr_high"]) == (pytest.approx(90 - Z_75 * 10), pytest.approx(90 + Z_75 * 10))
    assert men["median_inside_iqr"] == "yes"
    # both sexes against 69-109: recount independently
    values = WOMEN_QRS_MS + MEN_QRS_MS
    inside = sum(69.0 <= v <= 109.0 for v in values)
    assert (both["cohort_n"], both["inside_range"]) == (len(values), inside) == (15, 9)
    assert narrow["median_inside_iqr"] == "no" and narrow["range_low"] is None and narrow["inside_range"] is None


def test_features_and_sexes_without_published_values_say_so(cohort, norms):
    axis = [row for row in compare_with_population(cohort, norms) if row["feature"] == "qrs_axis_deg"]
    assert [row["sex"] for row in axis] == ["female", "male"]
    assert all(row["source"] is None and row["range_low"] is None and "no values" in row["note"] for row in axis)
    assert [row["cohort_n"] for row in axis] == [10, 5]
    markdown = population_markdown(compare_with_population(cohort, norms), norms)
    assert "| frontal QRS axis (°) | female | 10 | 40 (40 to 40) | no values for female in the sources read |" in markdown
    assert "| 6/10 (60 %) |" in markdown and "(mean ± 2.054 SD)" in markdown
    assert "- Source A: people A. Read: table 1." in markdown


def test_a_sex_without_patients_has_no_cohort_statistics(norms):
    table = compare_with_population([beat("w0", "female", 85.0)], norms)
    men = next(row for row in table if row["feature"] == "qrs_duration_ms" and row["sex"] == "male")
    assert men["cohort_n"] == 0 and men["cohort_median"] is None and men["fraction_inside_range"] is None
    assert men["median_inside_iqr"] is None


@pytest.mark.parametrize("row, message", [
    ({"feature": "qrs_width", "sex": "male", "source": "a", "median": 1}, "feature 'qrs_width'"),
    ({"feature": "qrs_duration_ms", "sex": "men", "source": "a", "median": 1}, "sex 'men'"),
    ({"feature": "qrs_duration_ms", "sex": "male", "source": "c", "median": 1}, "source 'c'"),
    ({"feature": "qrs_duration_ms", "sex": "male", "source": "a", "p2": 70}, "p2 and p98"),
    ({"feature": "qrs_duration_ms", "sex": "male", "source": "a", "mean": 90}, "mean and sd"),
    ({"feature": "qrs_duration_ms", "sex": "male", "source": "a", "sd": 9}, "none of median, mean"),
    ({"feature": "qrs_duration_ms", "sex": "male", "source": "a", "median": 1, "p90": 2}, "unknown keys p90"),
])
def test_a_bad_reference_row_is_refused_naming_it(tmp_path, row, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_norms(write_norms(tmp_path / "norms.yaml", [row]))


def test_the_shipped_references_load_cite_the_bibliography_and_cover_every_issue_feature(repo):
    norms = load_norms()
    assert set(norms.features) == {"qrs_duration_ms", "qrs_axis_deg", "qtc_ms", "qrs_t_angle_deg", "sokolow_lyon_mv",
                                   "cornell_mv", "r_mv_V1", "r_mv_V6"}
    bibliography = (repo / "docs/refs.bib").read_text()
    for source in norms.sources.values():
        assert re.search(r"@\w+\{" + re.escape(source["cite"]) + ",", bibliography), source["cite"]
    for row in norms.rows:
        if "p2" in row:
            assert row["p2"] < row["p98"]
        if "median" in row and "p2" in row:
            assert row["p2"] < row["median"] < row["p98"]
        if "p25" in row:
            assert row["p25"] < row["p75"]
        if "median" in row and "p25" in row:
            assert row["p25"] < row["median"] < row["p75"]
    # both sexes have a population interquartile range for QRS duration, axis and the voltages
    for feature in ("qrs_duration_ms", "qrs_axis_deg", "sokolow_lyon_mv", "cornell_mv"):
        sexes = {row["sex"] for row in norms.rows if row["feature"] == feature and ("p25" in row or "sd" in row)}
        assert {"female", "male"} <= sexes, feature


def write_anatomy(path: Path, **keys) -> Path:
    path.write_text(json.dumps({"patient": "train-0003", "measures": {}, **keys}))
    return path


def test_sex_and_age_come_from_anatomy_json(tmp_path):
    paths = [write_anatomy(tmp_path / "a.json", sex="female", age_years=61.25)]
    assert read_sex_and_age(paths) == {"train-0003": {"sex": "female", "age_years": 61.25}}


@pytest.mark.parametrize("keys, message", [
    ({"age_years": 50.0}, "no key 'sex'"),
    ({"sex": "male"}, "no key 'age_years'"),
    ({"sex": "F", "age_years": 50.0}, "sex 'F'"),
    ({"sex": "male", "age_years": -3.0}, "age_years -3.0"),
    ({"sex": "male", "age_years": "forty"}, "age_years 'forty'"),
    ({"sex": "male", "age_years": float("nan")}, "age_years nan"),
])
def test_missing_or_bad_sex_and_age_name_the_patient_key_and_value(tmp_path, keys, message):
    with pytest.raises(ValueError, match="patient train-0003.*" + re.escape(message)):
        read_sex_and_age([write_anatomy(tmp_path / "a.json", **keys)])


def test_the_population_figure_draws_every_feature(tmp_path, cohort, norms):
    from ecgcohort.realism.figures import plot_population

    plot_population(cohort, compare_with_population(cohort, norms), norms, tmp_path / "population.png")
    from PIL import Image

    with Image.open(tmp_path / "population.png") as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape[0] > 200 and pixels.std() > 10
