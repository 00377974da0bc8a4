"""The healthy criteria's failures against the findings' prevalence in adults: a hand-made cohort
with known failing beats, the exact interval and tail probabilities against closed forms and
scipy's binomial, the expected healthy pass rate (independent findings and any dependence), the
lowest prevalence per sex, and the reference rows' validation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import binom

from ecgcohort.realism.criteria import criteria_of
from ecgcohort.realism.population import load_norms
from ecgcohort.realism.prevalence import (EVERY_CRITERION, clopper_pearson, compare_with_prevalence,
                                          count_distribution, load_prevalence, prevalence_for, prevalence_markdown)

HEALTHY = [criterion.name for criterion in criteria_of("healthy")]


def write_reference(path: Path, prevalence: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({
        "features": {"qrs_duration_ms": {"label": "QRS duration", "unit": "ms"}},
        "sources": {"a": {"label": "Source A", "cite": "a2020", "population": "people A", "read": "abstract"},
                    "b": {"label": "Source B", "cite": "b2021", "population": "people B", "read": "table 2"}},
        "norms": [{"feature": "qrs_duration_ms", "sex": "all", "source": "a", "median": 90}],
        "prevalence": prevalence}, allow_unicode=True))
    return path


def reference_row(criterion: str, sex: str, source: str, prevalence: float, bound: str = "estimate") -> dict:
    return {"criterion": criterion, "sex": sex, "source": source, "prevalence": prevalence, "bound": bound,
            "definition": f"{criterion} as the source has it"}


@pytest.fixture
def reference(tmp_path):
    path = write_reference(tmp_path / "norms.yaml", [
        reference_row("qrs_not_fragmented", "all", "a", 0.10),
        # a second, higher figure for the same finding: the expected pass rate takes the lower
        reference_row("qrs_not_fragmented", "all", "b", 0.30, "at most"),
        reference_row("r_wave_progression", "female", "b", 0.20, "at least"),
    ])
    norms = load_norms(path)
    return norms, load_prevalence(norms, path)


def cohort(failures: dict[str, list[str]], sexes: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Every healthy criterion of each patient's sinus beat, failing those listed; and the
    feature rows (sex only)."""
    results = [{"patient": patient, "scenario": "sinus", "criteria_set": "healthy", "criterion": name,
                "passed": name not in failures.get(patient, [])} for patient in sexes for name in HEALTHY]
    # a beat judged by another set never counts
    results.append({"patient": "w0", "scenario": "lbbb", "criteria_set": "lbbb", "criterion": "strauss_qrs_duration",
                    "passed": False})
    return results, [{"patient": patient, "sex": sex} for patient, sex in sexes.items()]


SEXES = {**{f"w{k}": "female" for k in range(10)}, **{f"m{k}": "male" for k in range(6)}}
FAILURES = {"w0": ["qrs_not_fragmented"], "w1": ["qrs_not_fragmented", "r_wave_progression"],
            "w2": ["r_wave_progression"], "m0": ["qrs_not_fragmented"], "m1": ["septal_activation"]}


def test_the_cohort_counts_and_tail_probabilities_are_the_known_ones(reference):
    norms, prevalence = reference
    table = compare_with_prevalence(*cohort(FAILURES, SEXES), prevalence, norms)
    rows = {(r["criterion"], r["sex"], r["source"]): r for r in table}
    fragmented = rows[("qrs_not_fragmented", "all", "Source A")]
    assert (fragmented["cohort_beats"], fragmented["cohort_failing"]) == (16, 3)
    assert fragmented["p_at_least"] == pytest.approx(binom.sf(2, 16, 0.10), rel=1e-5)
    assert rows[("qrs_not_fragmented", "all", "Source B")]["p_at_least"] == pytest.approx(binom.sf(2, 16, 0.30))
    progression = rows[("r_wave_progression", "female", "Source B")]
    assert (progression["cohort_beats"], progression["cohort_failing"]) == (10, 2)
    assert progression["bound"] == "at least" and progression["inside_ci"] == "yes"
    # a criterion without a source: the cohort's count over every beat, and a note
    septal = rows[("septal_activation", "all", None)]
    assert (septal["cohort_failing"], septal["note"]) == (1, "no prevalence in the sources read")
    assert [r["criterion"] for r in table if r["criterion"] != EVERY_CRITERION] == [
        name for name in HEALTHY for _ in range(2 if name == "qrs_not_fragmented" else 1)]


def test_the_expected_healthy_pass_rate_takes_each_criterions_lowest_prevalence_for_the_sex(reference):
    norms, prevalence = reference
    assert prevalence_for(prevalence, "qrs_not_fragmented", "male") == 0.10
    assert prevalence_for(prevalence, "r_wave_progression", "female") == 0.20
    assert prevalence_for(prevalence, "r_wave_progression", "male") is None
    table = compare_with_prevalence(*cohort(FAILURES, SEXES), prevalence, norms)
    every = {r["sex"]: r for r in table if r["criterion"] == EVERY_CRITERION}
    women, men, both = every["female"], every["male"], every["all"]
    assert (women["cohort_beats"], women["cohort_failing"], men["cohort_failing"], both["cohort_failing"]) == (10, 3, 2, 5)
    assert women["expected_pass_independent"] == pytest.approx(0.9 * 0.8)
    assert women["expected_pass_at_most"] == pytest.approx(0.8)
    assert men["expected_pass_independent"] == pytest.approx(0.9) == men["expected_pass_at_most"]
    assert both["expected_pass_independent"] == pytest.approx((10 * 0.72 + 6 * 0.9) / 16)
    assert women["criteria_counted"] == "r_wave_progression qrs_not_fragmented"
    assert men["criteria_counted"] == "qrs_not_fragmented"
    # 7 of 10 women pass: a healthy cohort of women passes 7 or fewer with the binomial's probability
    assert women["p_at_least"] == pytest.approx(binom.cdf(7, 10, 0.72), rel=1e-5)
    assert women["p_goal_at_least"] == pytest.approx(binom.cdf(7, 10, 0.9), rel=1e-5)
    # the pooled cohort mixes two pass probabilities: its count is a Poisson-binomial
    pooled = np.convolve(binom.pmf(np.arange(11), 10, 0.72), binom.pmf(np.arange(7), 6, 0.9))
    assert both["p_at_least"] == pytest.approx(pooled[:12].sum(), rel=1e-5)
    assert (women["cohort_rate"], both["cohort_rate"]) == (0.7, 11 / 16)
    markdown = prevalence_markdown(table, norms)
    assert "| female | 7/10 | 70 % (35 % to 93 %) | 72 % | 80 % | " in markdown
    assert "Criteria counted: r_wave_progression, qrs_not_fragmented." in markdown
    assert "- Source B: people B. Read: table 2." in markdown


@pytest.mark.parametrize("failing, beats", [(0, 28), (1, 28), (5, 28), (28, 28), (3, 10)])
def test_the_clopper_pearson_interval_matches_its_closed_forms_and_covers_the_rate(failing, beats):
    low, high = clopper_pearson(failing, beats)
    assert low <= failing / beats <= high
    if failing == 0:
        assert (low, high) == (0.0, pytest.approx(1.0 - 0.025 ** (1.0 / beats)))
    if failing == beats:
        assert (low, high) == (pytest.approx(0.025 ** (1.0 / beats)), 1.0)
    if 0 < failing < beats:
        # the exact interval's ends: the binomial tails at the ends are 2.5 % each
        assert binom.sf(failing - 1, beats, low) == pytest.approx(0.025, rel=1e-6)
        assert binom.cdf(failing, beats, high) == pytest.approx(0.025, rel=1e-6)


def test_the_count_distribution_is_the_binomial_for_equal_trials_and_keeps_the_mean():
    assert count_distribution([0.3] * 12) == pytest.approx(binom.pmf(np.arange(13), 12, 0.3), abs=1e-12)
    probabilities = np.linspace(0.05, 0.95, 9)
    distribution = count_distribution(probabilities)
    assert distribution.sum() == pytest.approx(1.0)
    assert distribution @ np.arange(10) == pytest.approx(probabilities.sum())


@pytest.mark.parametrize("change, message", [
    ({"criterion": "strauss_qrs_duration"}, "criterion 'strauss_qrs_duration' is not a healthy criterion"),
    ({"sex": "women"}, "sex 'women'"),
    ({"source": "c"}, "source 'c'"),
    ({"bound": "about"}, "bound 'about'"),
    ({"prevalence": 1.5}, "prevalence 1.5 is not a fraction"),
    ({"prevalence": 0}, "prevalence 0 is not a fraction"),
    ({"year": 2020}, "keys bound, criterion, definition, prevalence, sex, source, year"),
])
def test_a_bad_prevalence_row_is_refused_naming_it(tmp_path, change, message):
    path = write_reference(tmp_path / "norms.yaml", [reference_row("t_upright", "all", "a", 0.01) | change])
    with pytest.raises(ValueError, match=re.escape("prevalence[0]: " + message)):
        load_prevalence(load_norms(path), path)


def test_the_shipped_prevalences_load_and_each_source_is_in_the_bibliography(repo):
    norms = load_norms()
    prevalence = load_prevalence(norms)
    bibliography = (repo / "docs/refs.bib").read_text()
    assert {row["criterion"] for row in prevalence} >= {"qrs_not_fragmented", "r_wave_progression", "t_upright"}
    for row in prevalence:
        cite = norms.sources[row["source"]]["cite"]
        assert re.search(r"@\w+\{" + re.escape(cite) + ",", bibliography), cite
    # a healthy population's pass rate under the shipped figures: below 1 - the largest prevalence
    women = [p for name in HEALTHY if (p := prevalence_for(prevalence, name, "female")) is not None]
    assert np.prod([1 - p for p in women]) < 1 - max(women) < 1
