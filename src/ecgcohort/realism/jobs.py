"""Workflow jobs of the realism stage: one patient's beats delineated (with the clinical
12-lead figure of each beat judged as healthy), and the cohort's summary."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.ecg.leads import LEAD_NAMES
from ecgcohort.io import atomic_path
from ecgcohort.realism.delineation import DelineationError, DelineationSettings, delineate
from ecgcohort.realism.features import FeatureSettings, beat_features

log = logging.getLogger(__name__)


def read_beat(path: str | Path, patient: str, scenario: str) -> tuple[np.ndarray, np.ndarray]:
    """The 12 leads (12, T) in mV and the times (T,) in ms of an ECG written by
    ``ecgcohort.ecg.compute_ecgs``; ValueError naming the patient and scenario if the file holds
    another beat or other leads."""
    with np.load(path) as data:
        stored = (str(data["patient"]), str(data["scenario"]))
        names = tuple(str(name) for name in data["lead_names"])
        leads_mv = np.asarray(data["leads_v"], dtype=np.float64) * 1e3
        times_ms = np.asarray(data["time_s"], dtype=np.float64) * 1e3
    if stored != (patient, scenario):
        raise ValueError(f"{path} holds patient {stored[0]}, scenario {stored[1]}, not {patient}, {scenario}")
    if names != LEAD_NAMES:
        raise ValueError(f"patient {patient}, {scenario}: {path} has leads {names}, expected {LEAD_NAMES}")
    return leads_mv, times_ms


def beat_row(patient: str, scenario: str, kind: str, criteria_set: str, leads_mv: np.ndarray, times_ms: np.ndarray,
             cycle_length_ms: float, delineation: DelineationSettings, features: FeatureSettings) -> dict[str, Any]:
    """One feature-table row: the identifying columns and, when the beat can be delineated, its
    features with status "ok"; otherwise only the status, which says why."""
    row: dict[str, Any] = {"patient": patient, "scenario": scenario, "kind": kind, "criteria_set": criteria_set}
    try:
        fiducials = delineate(leads_mv, times_ms - times_ms[0], cycle_length_ms, delineation)
    except DelineationError as error:
        log.warning("patient %s, %s: not delineated: %s", patient, scenario, error)
        row["status"] = str(error)
        return row
    row["status"] = "ok"
    row.update(beat_features(leads_mv, float(times_ms[1] - times_ms[0]), fiducials, cycle_length_ms, features))
    return row


def delineate_patient_job(patient: str, ecgs: Mapping[str, str | Path], kinds: Mapping[str, str],
                          judged_as: Mapping[str, str], cycle_length_ms: float, delineation: Mapping[str, Any],
                          features: Mapping[str, Any], out_json: str | Path,
                          clinical_pngs: Mapping[str, str | Path]) -> None:
    """Delineate every scenario's beat of one patient (``ecgs``: scenario → ECG ``.npz``;
    ``kinds``: scenario → scenario kind; ``judged_as``: kind → criteria set) and write the rows
    as JSON (``{"patient", "rows"}``; NaN where a feature is not measured); draw the clinical
    12-lead figure of every scenario in ``clinical_pngs``."""
    delineation_settings = DelineationSettings.from_config(delineation)
    feature_settings = FeatureSettings.from_config(features)
    rows = []
    for scenario, path in ecgs.items():
        started = time.perf_counter()
        leads_mv, times_ms = read_beat(path, patient, scenario)
        kind = kinds[scenario]
        row = beat_row(patient, scenario, kind, judged_as[kind], leads_mv, times_ms, cycle_length_ms,
                       delineation_settings, feature_settings)
        rows.append(row)
        log.info("patient %s, %s: %s in %.2f s", patient, scenario,
                 f"QRS {row['qrs_duration_ms']:.0f} ms, QT {row['qt_ms']:.0f} ms" if row["status"] == "ok"
                 else row["status"], time.perf_counter() - started)
        if scenario in clinical_pngs:
            from ecgcohort.realism.figures import plot_clinical_ecg

            plot_clinical_ecg(leads_mv, float(times_ms[1] - times_ms[0]), cycle_length_ms, clinical_pngs[scenario],
                              f"{patient}, {scenario}", delineation_settings)
    with atomic_path(out_json) as temporary:
        temporary.write_text(json.dumps({"patient": patient, "rows": rows}, indent=1))


def read_patient_rows(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The rows of every patient's delineation JSON, in the order given."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows.extend(json.loads(Path(path).read_text())["rows"])
    return rows


def read_sex_and_age(anatomy_jsons: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    """Patient -> ``{"sex", "age_years"}`` from each patient's ``anatomy.json``; ValueError naming
    the patient, the file, the key and the value where a key is missing, the sex is not one of
    ``SEXES`` or the age is not a positive number of years."""
    from ecgcohort.realism.criteria import SEXES

    patients: dict[str, dict[str, Any]] = {}
    for path in anatomy_jsons:
        summary = json.loads(Path(path).read_text())
        patient = str(summary["patient"])
        for key in ("sex", "age_years"):
            if key not in summary:
                raise ValueError(f"patient {patient}: {path} has no key '{key}' (the sex-specific realism "
                                 "criteria and the population comparison need the patient's sex and age)")
        sex, age = summary["sex"], summary["age_years"]
        if sex not in SEXES:
            raise ValueError(f"patient {patient}: {path} has sex {sex!r}, not one of {', '.join(SEXES)}")
        if isinstance(age, bool) or not isinstance(age, (int, float)) or not np.isfinite(age) or age <= 0:
            raise ValueError(f"patient {patient}: {path} has age_years {age!r}, not a positive number of years")
        patients[patient] = {"sex": str(sex), "age_years": float(age)}
    return patients


def realism_summary_job(patient_jsons: Sequence[str | Path], anatomy_jsons: Sequence[str | Path],
                        criteria: Mapping[str, Mapping[str, Any]], outputs: Mapping[str, str | Path]) -> None:
    """The cohort's feature table (``outputs["features"]``, with each patient's sex and age from
    its ``anatomy.json``), every beat's criteria (``criteria``; sex-specific thresholds by the
    patient's sex), the pass rates (``table``, ``markdown``), the feature distributions
    (``distributions``), the heart pose against its anatomical reference (``pose``, and in
    ``markdown``) and the healthy beats against published populations by sex (``population``
    CSV, ``population_markdown``, ``population_figure``, and in ``markdown``) and the sinus and
    LBBB QRS against the heart's myocardial volume (``heart_size`` CSV, ``heart_size_figure``, and
    in ``markdown``); ``criteria`` holds the settings of each criteria set."""
    from ecgcohort.realism.figures import plot_feature_distributions, plot_heart_size, plot_population
    from ecgcohort.realism.heart_size import COLUMNS as HEART_SIZE_COLUMNS
    from ecgcohort.realism.heart_size import load_clinical_correlations, qrs_against_heart_size, read_myocardial_volumes
    from ecgcohort.realism.pose import POSE_COLUMNS, pose_rows
    from ecgcohort.realism.report import realism_markdown
    from ecgcohort.realism.population import COLUMNS, compare_with_population, load_norms, population_markdown
    from ecgcohort.realism.prevalence import COLUMNS as PREVALENCE_COLUMNS
    from ecgcohort.realism.prevalence import compare_with_prevalence, load_prevalence, prevalence_markdown
    from ecgcohort.realism.summary import evaluate_cohort, feature_columns, pass_rates, with_patient_columns, write_csv

    rows = with_patient_columns(read_patient_rows(patient_jsons), read_sex_and_age(anatomy_jsons))
    results = evaluate_cohort(rows, criteria)
    rates = pass_rates(results, criteria)
    pose = pose_rows(anatomy_jsons, rows, results)
    norms = load_norms()
    population = compare_with_population(rows, norms)
    prevalence = compare_with_prevalence(results, rows, load_prevalence(norms), norms)
    volumes = read_myocardial_volumes(anatomy_jsons)
    heart_size = qrs_against_heart_size(rows, volumes, criteria["lbbb"]["qrs_min_ms"],
                                        load_clinical_correlations(norms), norms)
    write_csv(rows, outputs["features"], feature_columns(rows))
    write_csv(results, outputs["criteria"])
    write_csv(rates, outputs["table"])
    write_csv(pose, outputs["pose"], POSE_COLUMNS)
    write_csv(population, outputs["population"], COLUMNS)
    write_csv(prevalence, outputs["prevalence"], PREVALENCE_COLUMNS)
    write_csv(heart_size, outputs["heart_size"], HEART_SIZE_COLUMNS)
    with atomic_path(outputs["population_markdown"]) as temporary:
        temporary.write_text(population_markdown(population, norms) + "\n" + prevalence_markdown(prevalence, norms))
    with atomic_path(outputs["markdown"]) as temporary:
        temporary.write_text(realism_markdown(rates, rows, pose, population, norms, prevalence, heart_size))
    plot_feature_distributions(rows, criteria["healthy"], criteria["lbbb"]["qrs_min_ms"], outputs["distributions"])
    plot_population(rows, population, norms, outputs["population_figure"])
    plot_heart_size(rows, volumes, heart_size, outputs["heart_size_figure"])
    for rate in rates:
        log.info("%s / %s: %d of %d (%.0f %%)", rate["criteria_set"], rate["criterion"], rate["passed"],
                 rate["beats"], 100 * rate["pass_rate"])
    for row in population:
        if row["fraction_inside_range"] is not None:
            log.info("%s, %s, %s: %d of %d inside the population's 2-98 %% range", row["feature"], row["sex"],
                     row["source"], row["inside_range"], row["cohort_n"])
    for row in prevalence:
        if row["expected_pass_independent"] is not None:
            log.info("every healthy criterion, %s: %d of %d beats; healthy adults about %.0f %% (at most %.0f %%)",
                     row["sex"], row["cohort_beats"] - row["cohort_failing"], row["cohort_beats"],
                     100 * row["expected_pass_independent"], 100 * row["expected_pass_at_most"])
    for row in heart_size:
        if row["correlation"] is not None:
            log.info("%s QRS against the myocardial volume, %s: %.1f ms per 10 mL, r = %.2f (%d beats)", row["kind"],
                     row["sex"], row["slope_ms_per_10ml"], row["correlation"], row["beats"])
