"""The cohort's realism summary: every beat's criteria, each criterion's pass rate per
criteria set, and the tables written from them."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from ecgcohort.io import atomic_path
from ecgcohort.realism.criteria import CRITERIA_SETS, Row, criteria_of, evaluate_row

#: The identifying columns that lead every feature-table row.
ID_COLUMNS: tuple[str, ...] = ("patient", "scenario", "kind", "criteria_set", "status")
#: Issue 20's goals per criteria set: the pass rate every criterion of the set should reach.
GOALS: dict[str, float] = {"healthy": 0.9, "lbbb": 0.9, "biv_pacing": 0.8}
#: Name of the summary row counting beats that pass every criterion of their set.
ALL_CRITERIA = "all criteria"


def evaluate_cohort(rows: Sequence[Row], settings: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every judged beat's criteria (rows whose ``criteria_set`` is ``none`` are skipped)."""
    by_patient: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_patient[str(row["patient"])][str(row["criteria_set"])].append(row)
    results: list[dict[str, Any]] = []
    for row in rows:
        if row["criteria_set"] in CRITERIA_SETS:
            results.extend(evaluate_row(row, settings, by_patient[str(row["patient"])]))
    return results


def pass_rates(results: Sequence[Mapping[str, Any]], settings: Mapping[str, Mapping[str, Any]]
               ) -> list[dict[str, Any]]:
    """Per criteria set and criterion: requirement, source, beats judged, measured, passed and
    the pass rate; then per set the beats that pass every criterion (:data:`ALL_CRITERIA`)."""
    table: list[dict[str, Any]] = []
    for criteria_set in CRITERIA_SETS:
        mine = [r for r in results if r["criteria_set"] == criteria_set]
        if not mine:
            continue
        for criterion in criteria_of(criteria_set):
            rows = [r for r in mine if r["criterion"] == criterion.name]
            passed = sum(r["passed"] for r in rows)
            table.append({"criteria_set": criteria_set, "criterion": criterion.name,
                          "requirement": criterion.describe(settings.get(criteria_set, {})),
                          "source": criterion.source, "beats": len(rows), "measured": sum(r["measured"] for r in rows),
                          "passed": passed, "pass_rate": passed / len(rows)})
        beats: dict[tuple[str, str], bool] = {}
        for r in mine:
            key = (r["patient"], r["scenario"])
            beats[key] = beats.get(key, True) and r["passed"]
        everything = sum(beats.values())
        table.append({"criteria_set": criteria_set, "criterion": ALL_CRITERIA, "requirement": "every criterion above",
                      "source": "", "beats": len(beats), "measured": len(beats), "passed": everything,
                      "pass_rate": everything / len(beats)})
    return table


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> None:
    """Rows as CSV (columns: ``columns``, else the union of the rows' keys in first-seen order),
    written atomically; floats with up to 6 significant digits."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(columns), restval="", extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: f"{value:.6g}" if isinstance(value, float) else value for key, value in row.items()})


def feature_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """:data:`ID_COLUMNS`, then the feature columns in the order the features are computed."""
    return list(dict.fromkeys([*ID_COLUMNS, *(key for row in rows for key in row)]))


def markdown_summary(rates: Sequence[Mapping[str, Any]], rows: Sequence[Row]) -> str:
    """The pass-rate tables per criteria set with the issue's goals, and the beats that could
    not be delineated."""
    lines = ["# ECG realism", ""]
    for criteria_set in CRITERIA_SETS:
        mine = [r for r in rates if r["criteria_set"] == criteria_set]
        if not mine:
            continue
        scenarios = sorted({str(r["scenario"]) for r in rows if r["criteria_set"] == criteria_set})
        goal = GOALS.get(criteria_set)
        lines += [f"## {criteria_set} ({', '.join(scenarios)})", ""]
        if goal is not None:
            lines += [f"Goal (issue 20): every criterion passed by ≥ {100 * goal:.0f} % of the beats.", ""]
        lines += ["| criterion | requirement | passed | pass rate | source |", "|---|---|---|---|---|"]
        for r in mine:
            mark = "" if goal is None or r["criterion"] == ALL_CRITERIA else (" ✓" if r["pass_rate"] >= goal else " ✗")
            measured = "" if r["measured"] == r["beats"] else f" ({r['beats'] - r['measured']} not measured)"
            lines.append(f"| {r['criterion']} | {r['requirement']} | {r['passed']}/{r['beats']}{measured} | "
                         f"{100 * r['pass_rate']:.0f} %{mark} | {r['source']} |")
        lines.append("")
    failed = [r for r in rows if r["status"] != "ok"]
    lines += ["## Not delineated", ""]
    lines += [f"- {r['patient']} {r['scenario']}: {r['status']}" for r in failed] or ["none"]
    return "\n".join(lines) + "\n"

