"""The cohort's sinus findings against how often healthy adults show them.

A healthy criterion rejects a finding (a fragmented QRS, poor R-wave progression, an inverted T)
that some healthy adults have too. For each criterion with a published prevalence
(``population_norms.yaml``, section ``prevalence``) the table gives the cohort's failing beats by
sex with their 95 % Clopper-Pearson interval beside the population's prevalence, and the
probability of a cohort of healthy adults of the same size failing as often or more. Then, per
sex and pooled, the beats passing every criterion beside the fraction of healthy adults expected
to pass the criteria that have a prevalence: under independent findings 1 - prod(1 - p), and at
most 1 - max(p) whatever their dependence. Criteria without a prevalence only add failures, so
both are upper bounds on healthy adults passing every criterion.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import yaml

from ecgcohort.realism.criteria import SEXES, criteria_of
from ecgcohort.realism.population import ALL_SEXES, NORMS_PATH, PopulationNorms, sources_markdown

#: How a prevalence relates to the criterion's failures in healthy adults.
BOUNDS = ("estimate", "at least", "at most")
#: The row naming the beats that pass every healthy criterion.
EVERY_CRITERION = "every criterion"
#: The confidence of the cohort's intervals.
CONFIDENCE = 0.95
#: The realism goal the pooled row is also held against: every criterion in 90 % of sinus beats.
GOAL_PASS_RATE = 0.9
#: Columns of the prevalence table, in order.
COLUMNS = ("criterion", "sex", "cohort_beats", "cohort_failing", "cohort_rate", "cohort_ci_low", "cohort_ci_high",
           "prevalence", "bound", "definition", "source", "population", "p_at_least", "inside_ci",
           "expected_pass_independent", "expected_pass_at_most", "p_goal_at_least", "criteria_counted", "note")
_ROW_KEYS = {"criterion", "sex", "source", "prevalence", "bound", "definition"}


def load_prevalence(norms: PopulationNorms, path: str | Path = NORMS_PATH) -> list[dict[str, Any]]:
    """The ``prevalence`` rows of ``path``; ValueError naming the row, the key and the value where
    a row names a criterion outside the healthy set, an unknown sex, source or bound, or a
    prevalence outside (0, 1)."""
    data = yaml.safe_load(Path(path).read_text())
    healthy = {criterion.name for criterion in criteria_of("healthy")}
    rows = []
    for number, row in enumerate(data.get("prevalence", [])):
        where = f"{path}: prevalence[{number}]"
        if set(row) != _ROW_KEYS:
            raise ValueError(f"{where}: keys {', '.join(sorted(row))}; a row has exactly {', '.join(sorted(_ROW_KEYS))}")
        if row["criterion"] not in healthy:
            raise ValueError(f"{where}: criterion {row['criterion']!r} is not a healthy criterion "
                             f"({', '.join(sorted(healthy))})")
        if row["sex"] not in (*SEXES, ALL_SEXES):
            raise ValueError(f"{where}: sex {row['sex']!r} is not one of {', '.join((*SEXES, ALL_SEXES))}")
        if row["source"] not in norms.sources:
            raise ValueError(f"{where}: source {row['source']!r} is not one of {', '.join(norms.sources)}")
        if row["bound"] not in BOUNDS:
            raise ValueError(f"{where}: bound {row['bound']!r} is not one of {', '.join(BOUNDS)}")
        value = row["prevalence"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
            raise ValueError(f"{where}: prevalence {value!r} is not a fraction between 0 and 1")
        rows.append({**row, "prevalence": float(value)})
    return rows


def clopper_pearson(failing: int, beats: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial proportion ``failing / beats``."""
    from scipy.stats import beta

    tail = (1.0 - confidence) / 2.0
    low = 0.0 if failing == 0 else float(beta.ppf(tail, failing, beats - failing + 1))
    high = 1.0 if failing == beats else float(beta.ppf(1.0 - tail, failing + 1, beats - failing))
    return low, high


def count_distribution(probabilities: Iterable[float]) -> np.ndarray:
    """The distribution of the number of successes of independent trials with the given
    probabilities (Poisson-binomial; binomial where they are equal): entry k is P(k)."""
    distribution = np.ones(1)
    for p in probabilities:
        distribution = np.concatenate([distribution * (1.0 - p), [0.0]]) + np.concatenate([[0.0], distribution * p])
    return distribution


def prevalence_for(rows: Sequence[Mapping[str, Any]], criterion: str, sex: str) -> float | None:
    """The lowest prevalence of ``criterion`` for ``sex`` (its own rows and those for both sexes),
    None where no source gives one: the most favourable to healthy adults passing."""
    values = [row["prevalence"] for row in rows if row["criterion"] == criterion and row["sex"] in (sex, ALL_SEXES)]
    return min(values) if values else None


def _beats(results: Sequence[Mapping[str, Any]], sexes: Mapping[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each healthy beat: its patient's sex and the criteria it fails."""
    beats: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"failed": set()})
    for result in results:
        if result["criteria_set"] != "healthy":
            continue
        beat = beats[(str(result["patient"]), str(result["scenario"]))]
        beat["sex"] = sexes[str(result["patient"])]
        if not result["passed"]:
            beat["failed"].add(str(result["criterion"]))
    return dict(beats)


def _empty_row(criterion: str, sex: str) -> dict[str, Any]:
    return {column: None for column in COLUMNS} | {"criterion": criterion, "sex": sex, "note": ""}


def compare_with_prevalence(results: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                            prevalence: Sequence[Mapping[str, Any]], norms: PopulationNorms) -> list[dict[str, Any]]:
    """The table (:data:`COLUMNS`): per healthy criterion, a row per prevalence row (the cohort's
    beats of its sex) or one row saying none was read; then :data:`EVERY_CRITERION` per sex and
    for both. ``results``: every beat's criteria (:func:`~ecgcohort.realism.summary.evaluate_cohort`);
    ``rows``: the feature rows, for each patient's sex."""
    sexes = {str(row["patient"]): str(row["sex"]) for row in rows}
    beats = _beats(results, sexes)
    table: list[dict[str, Any]] = []
    for criterion in criteria_of("healthy"):
        references = [row for row in prevalence if row["criterion"] == criterion.name]
        for reference in references or [{"sex": ALL_SEXES}]:
            mine = [beat for beat in beats.values() if reference["sex"] in (ALL_SEXES, beat["sex"])]
            failing = sum(criterion.name in beat["failed"] for beat in mine)
            entry = _empty_row(criterion.name, reference["sex"])
            entry.update(cohort_beats=len(mine), cohort_failing=failing)
            if mine:
                low, high = clopper_pearson(failing, len(mine))
                entry.update(cohort_rate=failing / len(mine), cohort_ci_low=low, cohort_ci_high=high)
            if "source" not in reference:
                entry["note"] = "no prevalence in the sources read"
                table.append(entry)
                continue
            p = reference["prevalence"]
            source = norms.sources[reference["source"]]
            entry.update(prevalence=p, bound=reference["bound"], definition=reference["definition"],
                         source=source["label"], population=source["population"],
                         p_at_least=float(count_distribution([p] * len(mine))[failing:].sum()))
            if mine:
                entry["inside_ci"] = "yes" if entry["cohort_ci_low"] <= p <= entry["cohort_ci_high"] else "no"
            table.append(entry)
    names = [criterion.name for criterion in criteria_of("healthy")]
    for sex in (*SEXES, ALL_SEXES):
        mine = [beat for beat in beats.values() if sex in (ALL_SEXES, beat["sex"])]
        if not mine:
            continue
        per_beat = [[p for name in names if (p := prevalence_for(prevalence, name, beat["sex"])) is not None]
                    for beat in mine]
        independent = [float(np.prod([1.0 - p for p in ps])) for ps in per_beat]
        at_most = [1.0 - max(ps, default=0.0) for ps in per_beat]
        passing = sum(not beat["failed"] for beat in mine)
        low, high = clopper_pearson(passing, len(mine))
        counted = sorted({name for beat in mine for name in names
                          if prevalence_for(prevalence, name, beat["sex"]) is not None}, key=names.index)
        entry = _empty_row(EVERY_CRITERION, sex)
        entry.update(cohort_beats=len(mine), cohort_failing=len(mine) - passing, cohort_rate=passing / len(mine),
                     cohort_ci_low=low, cohort_ci_high=high, bound="at most",
                     expected_pass_independent=float(np.mean(independent)), expected_pass_at_most=float(np.mean(at_most)),
                     # a healthy cohort of these beats' sexes passing this few or fewer, findings independent
                     p_at_least=float(count_distribution(independent)[:passing + 1].sum()),
                     p_goal_at_least=float(count_distribution([GOAL_PASS_RATE] * len(mine))[:passing + 1].sum()),
                     criteria_counted=" ".join(counted),
                     note="cohort_rate passes; healthy adults pass every criterion at most as often as the criteria "
                          "counted")
        table.append(entry)
    # the figures as the CSV keeps them, so that a recorded table renders to the same page
    return [{key: float(f"{value:.6g}") if isinstance(value, float) else value for key, value in row.items()}
            for row in table]


def _percent(value: Any, digits: int = 0) -> str:
    return "" if value is None else f"{100 * float(value):.{digits}f} %"


def prevalence_markdown(table: Sequence[Mapping[str, Any]], norms: PopulationNorms) -> str:
    """The table as a Markdown section with its populations."""
    lines = ["## Findings against their prevalence in adults", "",
             "Each healthy criterion's failing sinus beats, by the patient's sex, beside how often adults "
             f"show the finding it rejects (the cohort's {100 * CONFIDENCE:.0f} % Clopper-Pearson interval; "
             "P: a healthy cohort of the same size failing as often or more). \"at least\": the source's "
             "finding is narrower than what the criterion rejects; \"at most\": its population is less healthy "
             "or its finding wider.", "",
             "| criterion | sex | cohort failing | cohort rate (95 % CI) | adults with the finding | source's finding "
             "| P | source |", "|---|---|---|---|---|---|---|---|"]
    every = [row for row in table if row["criterion"] == EVERY_CRITERION]
    for row in table:
        if row["criterion"] == EVERY_CRITERION:
            continue
        rate = (f"{_percent(row['cohort_rate'])} ({_percent(row['cohort_ci_low'])} to {_percent(row['cohort_ci_high'])})"
                if row["cohort_rate"] is not None else "")
        counts = f"{row['cohort_failing']}/{row['cohort_beats']}"
        if row["source"] is None:
            lines.append(f"| {row['criterion']} | {row['sex']} | {counts} | {rate} | {row['note']} | | | |")
            continue
        bound = "" if row["bound"] == "estimate" else f" ({row['bound']})"
        lines.append(f"| {row['criterion']} | {row['sex']} | {counts} | {rate} | {_percent(row['prevalence'], 1)}{bound} "
                     f"| {row['definition']} | {float(row['p_at_least']):.2f} | {row['source']} |")
    if every:
        lines += ["", "Beats passing every healthy criterion, beside the healthy adults expected to pass the criteria "
                  "that have a prevalence above (each at its lowest prevalence for the sex; criteria without one "
                  "only lower the healthy rate): with independent findings, and at most whatever their dependence. "
                  f"P: a healthy cohort of the same sexes passing this few or fewer (independent findings); "
                  f"P at {100 * GOAL_PASS_RATE:.0f} %: a population at the realism goal doing so.", "",
                  "| sex | cohort passing | cohort rate (95 % CI) | healthy adults, independent findings | "
                  f"healthy adults, at most | P | P at {100 * GOAL_PASS_RATE:.0f} % |", "|---|---|---|---|---|---|---|"]
        for row in every:
            passing = row["cohort_beats"] - row["cohort_failing"]
            lines.append(f"| {row['sex']} | {passing}/{row['cohort_beats']} | {_percent(row['cohort_rate'])} "
                         f"({_percent(row['cohort_ci_low'])} to {_percent(row['cohort_ci_high'])}) | "
                         f"{_percent(row['expected_pass_independent'])} | {_percent(row['expected_pass_at_most'])} | "
                         f"{float(row['p_at_least']):.2f} | {float(row['p_goal_at_least']):.2f} |")
        lines += ["", f"Criteria counted: {every[-1]['criteria_counted'].replace(' ', ', ')}."]
    lines += ["", *sources_markdown(norms, {row["source"] for row in table})]
    return "\n".join(lines) + "\n"
