"""The cohort's realism summary: every beat's criteria, each criterion's pass rate per
criteria set, and the tables written from them."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from ecgcohort.io import atomic_path
from ecgcohort.realism.criteria import CRITERIA_SETS, Row, criteria_of, evaluate_row

#: The patient's sex and age (anatomy.json's ``sex`` and ``age_years``), on every feature row.
PATIENT_COLUMNS: tuple[str, ...] = ("sex", "age_years")
#: The identifying columns that lead every feature-table row.
ID_COLUMNS: tuple[str, ...] = ("patient", *PATIENT_COLUMNS, "scenario", "kind", "criteria_set", "status")
#: Name of the summary row counting beats that pass every criterion of their set.
ALL_CRITERIA = "all criteria"
#: Summary rows counting beats that pass a group of criteria: criteria set -> (name, criteria).
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lbbb": ("strauss_lbbb", ("strauss_qrs_duration", "strauss_qs_or_rs_v1_v2", "strauss_mid_qrs_notch")),
}
#: The realism goals (issue 63's): criteria set -> (the pass rate to reach, the summary row it
#: applies to): sinus beats passing every criterion >= 90 %, LBBB Strauss (the patient's own sex
#: threshold) >= 80 %, CRT narrower than the patient's LBBB >= 90 %.
GOALS: dict[str, tuple[float, str]] = {
    "healthy": (0.9, ALL_CRITERIA),
    "lbbb": (0.8, "strauss_lbbb"),
    "biv_pacing": (0.9, "narrower_than_lbbb"),
}


def with_patient_columns(rows: Sequence[Row], patients: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The feature rows with their patient's :data:`PATIENT_COLUMNS` (``patients``: patient ->
    sex and age) after the patient id; ValueError naming the patient where it has none."""
    out = []
    for row in rows:
        patient = str(row["patient"])
        if patient not in patients:
            raise ValueError(f"patient {patient}: no sex and age (no anatomy.json of it among the summary's inputs)")
        out.append({"patient": row["patient"], **{key: patients[patient][key] for key in PATIENT_COLUMNS},
                    **{key: value for key, value in row.items() if key != "patient"}})
    return out


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
    """Per criteria set and criterion: requirement, source, beats judged, measured, passed, the
    pass rate and whether it reaches the realism goal ("yes", "no", "" where none applies); then
    per set the beats that pass a group of criteria (:data:`GROUPS`) and every criterion
    (:data:`ALL_CRITERIA`)."""
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
        groups = [GROUPS[criteria_set]] if criteria_set in GROUPS else []
        for name, members in [*groups, (ALL_CRITERIA, None)]:
            beats: dict[tuple[str, str], bool] = {}
            for r in mine:
                if members is None or r["criterion"] in members:
                    key = (r["patient"], r["scenario"])
                    beats[key] = beats.get(key, True) and r["passed"]
            passed = sum(beats.values())
            table.append({"criteria_set": criteria_set, "criterion": name,
                          "requirement": "every criterion above" if members is None else "all of " + ", ".join(members),
                          "source": "", "beats": len(beats), "measured": len(beats), "passed": passed,
                          "pass_rate": passed / len(beats)})
    for row in table:
        row["goal_reached"] = {None: "", True: "yes", False: "no"}[meets_goal(row)]
    return table


def meets_goal(rate: Mapping[str, Any]) -> bool | None:
    """Whether a pass-rate row reaches the realism goal; None where no goal applies to it."""
    goal = GOALS.get(rate["criteria_set"])
    if goal is None:
        return None
    target, row = goal
    return bool(rate["pass_rate"] >= target) if rate["criterion"] == row else None


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
    """The pass-rate tables per criteria set with their goals, and the beats that could
    not be delineated."""
    lines = ["# ECG realism", ""]
    for criteria_set in CRITERIA_SETS:
        mine = [r for r in rates if r["criteria_set"] == criteria_set]
        if not mine:
            continue
        scenarios = sorted({str(r["scenario"]) for r in rows if r["criteria_set"] == criteria_set})
        lines += [f"## {criteria_set} ({', '.join(scenarios)})", ""]
        if criteria_set in GOALS:
            target, row = GOALS[criteria_set]
            which = "every criterion" if row == ALL_CRITERIA else row
            lines += [f"Goal: ≥ {100 * target:.0f} % of the beats pass {which} (✓ reached, ✗ not).", ""]
        lines += ["| criterion | requirement | passed | pass rate | source |", "|---|---|---|---|---|"]
        for r in mine:
            mark = {None: "", True: " ✓", False: " ✗"}[meets_goal(r)]
            measured = "" if r["measured"] == r["beats"] else f" ({r['beats'] - r['measured']} not measured)"
            lines.append(f"| {r['criterion']} | {r['requirement']} | {r['passed']}/{r['beats']}{measured} | "
                         f"{100 * r['pass_rate']:.0f} %{mark} | {r['source']} |")
        lines.append("")
    failed = [r for r in rows if r["status"] != "ok"]
    lines += ["## Not delineated", ""]
    lines += [f"- {r['patient']} {r['scenario']}: {r['status']}" for r in failed] or ["none"]
    return "\n".join(lines) + "\n"

