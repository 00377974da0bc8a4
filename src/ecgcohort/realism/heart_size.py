"""The QRS duration against the heart's size.

Per scenario kind (sinus, LBBB) and sex, and for both sexes together: the least-squares line of
each delineated beat's QRS duration (ms) on its patient's myocardial volume (mL, both ventricles:
``anatomy.json``'s ``measures.myocardial_volume_ml``) and their correlation. For LBBB also the
beats of the smaller and of the larger half of the hearts (split at the median volume) whose QRS
reaches Strauss's duration for the patient's sex, and the volume at which the rising line reaches
it (where that lies among the sex's volumes: no extrapolation). Beside each, the correlation
measured in patients (``population_norms.yaml``, section ``heart_size``): a cohort whose
conduction is the same in every patient lets the heart's size set its QRS far more than people's
differing conduction does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from ecgcohort.realism.criteria import SEXES
from ecgcohort.realism.population import ALL_SEXES, NORMS_PATH, PopulationNorms

#: The scenario kinds the table has rows for.
KINDS: tuple[str, ...] = ("sinus", "lbbb")
#: The fewest beats a line is fitted to.
MIN_BEATS = 3
#: Columns of the table, in order.
COLUMNS = ("kind", "sex", "beats", "volume_min_ml", "volume_median_ml", "volume_max_ml", "slope_ms_per_10ml",
           "intercept_ms", "correlation", "qrs_min_ms", "threshold_volume_ml", "smaller_beats", "smaller_reaching",
           "larger_beats", "larger_reaching", "population_correlation", "population_measure", "source")
_ROW_KEYS = {"kind", "measure", "correlation", "source"}


def read_myocardial_volumes(anatomy_jsons: Sequence[str | Path]) -> dict[str, float]:
    """Patient -> myocardial volume (mL) from each ``anatomy.json``; ValueError naming the patient
    and the file where it has none or it is not a positive number."""
    volumes: dict[str, float] = {}
    for path in anatomy_jsons:
        summary = json.loads(Path(path).read_text())
        patient = str(summary["patient"])
        volume = summary.get("measures", {}).get("myocardial_volume_ml")
        if isinstance(volume, bool) or not isinstance(volume, (int, float)) or not np.isfinite(volume) or volume <= 0:
            raise ValueError(f"patient {patient}: {path} has measures.myocardial_volume_ml {volume!r}, not a "
                             "positive volume in mL (the QRS against the heart's size needs it)")
        volumes[patient] = float(volume)
    return volumes


def load_clinical_correlations(norms: PopulationNorms, path: str | Path = NORMS_PATH) -> list[dict[str, Any]]:
    """The ``heart_size`` rows of the reference table (kind, measure, correlation, source: a key
    of its sources); ValueError naming the row and key where one does not fit."""
    rows = yaml.safe_load(Path(path).read_text()).get("heart_size", [])
    for number, row in enumerate(rows):
        where = f"{path}: heart_size[{number}]"
        if set(row) != _ROW_KEYS:
            raise ValueError(f"{where}: has keys {', '.join(sorted(row))}, not {', '.join(sorted(_ROW_KEYS))}")
        if row["kind"] not in KINDS:
            raise ValueError(f"{where}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
        if row["source"] not in norms.sources:
            raise ValueError(f"{where}: source {row['source']!r} is not one of {', '.join(norms.sources)}")
        if not -1.0 <= float(row["correlation"]) <= 1.0:
            raise ValueError(f"{where}: correlation {row['correlation']!r} is not in [-1, 1]")
    return list(rows)


def beats_by_kind(rows: Sequence[Mapping[str, Any]], volumes_ml: Mapping[str, float],
                  kind: str) -> list[tuple[str, float, float]]:
    """(sex, volume mL, QRS ms) of the delineated beats of ``kind``."""
    beats = []
    for row in rows:
        if row.get("kind") != kind or row.get("status") != "ok":
            continue
        qrs = float(row["qrs_duration_ms"]) if row.get("qrs_duration_ms") is not None else np.nan
        if not np.isfinite(qrs):
            continue
        patient = str(row["patient"])
        if patient not in volumes_ml:
            raise ValueError(f"patient {patient}: no myocardial volume (no anatomy.json of it among the inputs)")
        beats.append((str(row["sex"]), volumes_ml[patient], qrs))
    return beats


def qrs_against_heart_size(rows: Sequence[Mapping[str, Any]], volumes_ml: Mapping[str, float],
                           qrs_min_ms: Mapping[str, float], clinical: Sequence[Mapping[str, Any]] = (),
                           norms: PopulationNorms | None = None) -> list[dict[str, Any]]:
    """The table (:data:`COLUMNS`), a row per kind of :data:`KINDS` and sex (female, male, all).
    ``rows``: the feature rows (patient, sex, kind, status, qrs_duration_ms); ``volumes_ml``:
    patient -> myocardial volume; ``qrs_min_ms``: Strauss's QRS duration by sex (ms). The line,
    its correlation and the threshold volume are None below :data:`MIN_BEATS` beats or where
    every volume is equal, the threshold volume also where the line does not rise or reaches the
    threshold outside the sex's volumes; the clinical correlation is the first ``clinical`` row of
    the kind."""
    table: list[dict[str, Any]] = []
    for kind in KINDS:
        beats = beats_by_kind(rows, volumes_ml, kind)
        reference = next((row for row in clinical if row["kind"] == kind), None)
        for sex in (*SEXES, ALL_SEXES):
            mine = [beat for beat in beats if sex == ALL_SEXES or beat[0] == sex]
            entry: dict[str, Any] = {column: None for column in COLUMNS}
            entry.update(kind=kind, sex=sex, beats=len(mine))
            if reference is not None and norms is not None:
                entry.update(population_correlation=float(reference["correlation"]),
                             population_measure=reference["measure"],
                             source=norms.sources[reference["source"]]["label"])
            if not mine:
                table.append(entry)
                continue
            volume = np.array([beat[1] for beat in mine])
            qrs = np.array([beat[2] for beat in mine])
            median = float(np.median(volume))
            entry.update(volume_min_ml=float(volume.min()), volume_median_ml=median, volume_max_ml=float(volume.max()))
            if len(mine) >= MIN_BEATS and np.ptp(volume) > 0:
                slope, intercept = np.polyfit(volume, qrs, 1)
                entry.update(slope_ms_per_10ml=10.0 * float(slope), intercept_ms=float(intercept),
                             correlation=float(np.corrcoef(volume, qrs)[0, 1]) if np.ptp(qrs) > 0 else None)
            if kind == "lbbb":
                reaching = np.array([beat[2] >= float(qrs_min_ms[beat[0]]) for beat in mine])
                smaller = volume < median
                entry.update(smaller_beats=int(smaller.sum()), smaller_reaching=int(reaching[smaller].sum()),
                             larger_beats=int((~smaller).sum()), larger_reaching=int(reaching[~smaller].sum()))
                if sex != ALL_SEXES:
                    entry["qrs_min_ms"] = float(qrs_min_ms[sex])
                    if entry["slope_ms_per_10ml"] is not None and entry["slope_ms_per_10ml"] > 0:
                        crossing = (entry["qrs_min_ms"] - entry["intercept_ms"]) / (entry["slope_ms_per_10ml"] / 10.0)
                        if volume.min() <= crossing <= volume.max():
                            entry["threshold_volume_ml"] = crossing
            table.append(entry)
    return table


def _number(value: Any, digits: int) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def heart_size_markdown(table: Sequence[Mapping[str, Any]], norms: PopulationNorms) -> str:
    """The section of ``realism.md`` that :func:`qrs_against_heart_size`'s table renders to."""
    from ecgcohort.realism.population import sources_markdown

    lines = ["## The QRS duration against the heart's size", "",
             "Each delineated beat's QRS duration against its heart's myocardial volume (both ventricles): the "
             "least-squares line and the correlation r by sex; for LBBB, the beats of the smaller and of the "
             "larger half of the hearts (split at the median volume) whose QRS reaches Strauss's duration for "
             "the patient's sex, and the volume where the rising line reaches it among the sex's volumes. "
             "Beside them the correlation measured in patients, whose conduction differs from person to "
             "person.", "",
             "| scenario kind | sex | beats | myocardial volume (mL), median (range) | QRS per 10 mL (ms) | r | "
             "Strauss's QRS reached: smaller / larger half | the line reaches Strauss's QRS at (mL) | "
             "r in patients | source |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        volume = "" if row["volume_median_ml"] is None else (
            f"{row['volume_median_ml']:.0f} ({row['volume_min_ml']:.0f} to {row['volume_max_ml']:.0f})")
        reached = "" if row["smaller_beats"] is None else (
            f"{row['smaller_reaching']}/{row['smaller_beats']} / {row['larger_reaching']}/{row['larger_beats']}")
        threshold = "" if row["threshold_volume_ml"] is None else (
            f"{row['threshold_volume_ml']:.0f} ({row['qrs_min_ms']:.0f} ms)")
        clinical = "" if row["population_correlation"] is None else (
            f"{row['population_correlation']:.2f} ({row['population_measure']})")
        lines.append(f"| {row['kind']} | {row['sex']} | {row['beats']} | {volume} | "
                     f"{_number(row['slope_ms_per_10ml'], 1)} | {_number(row['correlation'], 2)} | {reached} | "
                     f"{threshold} | {clinical} | {row['source'] or ''} |")
    labels = {row["source"] for row in table if row["source"]}
    return "\n".join([*lines, "", *(sources_markdown(norms, labels) if labels else [])]) + "\n"
