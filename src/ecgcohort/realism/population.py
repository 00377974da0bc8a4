"""The cohort's ECG features against published healthy populations, by sex.

For each feature of the reference table (``population_norms.yaml``: QRS duration, frontal QRS
axis, QTc, frontal QRS-T angle, Sokolow-Lyon and Cornell voltage, R in V1 and V6) and each of its
rows (a sex - or both sexes - and a source), the cohort's beats judged as healthy of that sex:
their median, interquartile range and count; the population's median or mean ± SD; its 2-98 %
range (the 2nd and 98th percentiles where the source gives them, else mean ± 2.054 SD, the
normal distribution's 2nd-98th percentiles) and the fraction of the cohort inside it; its
interquartile range (the 25th-75th percentiles, else mean ± 0.674 SD) and whether the cohort's
median lies inside it. A feature and sex the sources give no values for is a row that says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from ecgcohort.realism.criteria import SEXES

#: The reference values shipped with the library.
NORMS_PATH = Path(__file__).with_name("population_norms.yaml")
#: z of the normal distribution's 98th percentile and 75th percentile.
Z_98 = 2.054
Z_75 = 0.674
#: A reference row's sex: one of :data:`SEXES`, or ``all`` for both together.
ALL_SEXES = "all"
#: The statistics a reference row may give.
STATISTICS = ("median", "mean", "sd", "p2", "p98", "p25", "p75")
#: Columns of the comparison table, in order.
COLUMNS = ("feature", "label", "unit", "sex", "cohort_n", "cohort_median", "cohort_p25", "cohort_p75", "source",
           "population", "population_median", "population_mean", "population_sd", "range_low", "range_high",
           "range_from", "inside_range", "fraction_inside_range", "iqr_low", "iqr_high", "iqr_from",
           "median_inside_iqr", "note")


@dataclass(frozen=True)
class PopulationNorms:
    """The reference table: ``features`` (column -> label, unit), ``sources`` (key -> label,
    cite (its docs/refs.bib key), population, read: what of it was read) and ``rows`` (feature,
    sex, source and the statistics it gives)."""

    features: Mapping[str, Mapping[str, str]]
    sources: Mapping[str, Mapping[str, str]]
    rows: Sequence[Mapping[str, Any]]


def load_norms(path: str | Path = NORMS_PATH) -> PopulationNorms:
    """The reference table of ``path``; ValueError naming the row and key where a row names an
    unknown feature, sex or source, gives an unknown statistic, or none of median, mean, p2/p98."""
    data = yaml.safe_load(Path(path).read_text())
    features, sources = data["features"], data["sources"]
    for number, row in enumerate(data["norms"]):
        where = f"{path}: norms[{number}]"
        if row.get("feature") not in features:
            raise ValueError(f"{where}: feature {row.get('feature')!r} is not one of {', '.join(features)}")
        if row.get("sex") not in (*SEXES, ALL_SEXES):
            raise ValueError(f"{where}: sex {row.get('sex')!r} is not one of {', '.join((*SEXES, ALL_SEXES))}")
        if row.get("source") not in sources:
            raise ValueError(f"{where}: source {row.get('source')!r} is not one of {', '.join(sources)}")
        unknown = set(row) - {"feature", "sex", "source", *STATISTICS}
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        if not any(key in row for key in ("median", "mean", "p2")):
            raise ValueError(f"{where}: gives none of median, mean, p2/p98")
        for pair in (("p2", "p98"), ("p25", "p75"), ("mean", "sd")):
            if (pair[0] in row) != (pair[1] in row):
                raise ValueError(f"{where}: {pair[0]} and {pair[1]} come together")
    return PopulationNorms(features=features, sources=sources, rows=list(data["norms"]))


def reference_range(row: Mapping[str, Any], low: str, high: str, z: float) -> tuple[float, float, str] | None:
    """The interval between the percentiles ``low`` and ``high`` of a reference row where it gives
    them, else mean ± z SD; None where it gives neither. The third item says which."""
    if low in row:
        return float(row[low]), float(row[high]), "percentiles"
    if "mean" in row and "sd" in row:
        mean, sd = float(row["mean"]), float(row["sd"])
        return mean - z * sd, mean + z * sd, f"mean ± {z} SD"
    return None


def cohort_values(rows: Sequence[Mapping[str, Any]], feature: str, sex: str) -> np.ndarray:
    """The finite values of ``feature`` in the delineated beats judged as healthy of patients of
    ``sex`` (``all``: every patient)."""
    values = [float(row[feature]) for row in rows
              if row.get("criteria_set") == "healthy" and row.get("status") == "ok"
              and (sex == ALL_SEXES or row.get("sex") == sex)]
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def compare_with_population(rows: Sequence[Mapping[str, Any]], norms: PopulationNorms) -> list[dict[str, Any]]:
    """The comparison table (:data:`COLUMNS`): per feature, its reference rows in order, then a
    row per sex the references leave out (no population values). Cohort statistics are None
    where the cohort has no beat of that sex."""
    table: list[dict[str, Any]] = []
    for feature, meta in norms.features.items():
        references = [row for row in norms.rows if row["feature"] == feature]
        covered = {row["sex"] for row in references}
        missing = [] if ALL_SEXES in covered else [sex for sex in SEXES if sex not in covered]
        for reference in [*references, *({"feature": feature, "sex": sex} for sex in missing)]:
            values = cohort_values(rows, feature, reference["sex"])
            entry: dict[str, Any] = {column: None for column in COLUMNS}
            entry.update(feature=feature, label=meta["label"], unit=meta["unit"], sex=reference["sex"],
                         cohort_n=int(values.size), note="")
            if values.size:
                p25, median, p75 = np.percentile(values, [25.0, 50.0, 75.0])
                entry.update(cohort_median=float(median), cohort_p25=float(p25), cohort_p75=float(p75))
            if "source" not in reference:
                entry["note"] = f"no values for {reference['sex']} in the sources read"
                table.append(entry)
                continue
            source = norms.sources[reference["source"]]
            entry.update(source=source["label"], population=source["population"],
                         population_median=reference.get("median"), population_mean=reference.get("mean"),
                         population_sd=reference.get("sd"))
            if (found := reference_range(reference, "p2", "p98", Z_98)) is not None:
                low, high, how = found
                inside = int(np.count_nonzero((values >= low) & (values <= high)))
                entry.update(range_low=low, range_high=high, range_from=how, inside_range=inside,
                             fraction_inside_range=inside / values.size if values.size else None)
            if (found := reference_range(reference, "p25", "p75", Z_75)) is not None:
                low, high, how = found
                entry.update(iqr_low=low, iqr_high=high, iqr_from=how)
                if values.size:
                    entry["median_inside_iqr"] = "yes" if low <= entry["cohort_median"] <= high else "no"
            table.append(entry)
    return table


def _number(value: Any, digits: int) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def _digits(unit: str) -> int:
    return 2 if unit == "mV" else 0


def population_markdown(table: Sequence[Mapping[str, Any]], norms: PopulationNorms) -> str:
    """The comparison as a Markdown section with its sources."""
    lines = ["## The cohort against healthy populations", "",
             "Beats judged as healthy, by the patient's sex, beside published healthy adults "
             "(2-98 % range from the source's percentiles, or mean ± 2.054 SD where it gives only "
             "those; IQR likewise from its quartiles or mean ± 0.674 SD).", "",
             "| feature | sex | cohort n | cohort median (IQR) | population median / mean ± SD | 2-98 % range | "
             "cohort inside | population IQR | median inside IQR | source |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        digits, unit = _digits(str(row["unit"])), str(row["unit"])
        cohort = ("none" if not row["cohort_n"] else
                  f"{_number(row['cohort_median'], digits)} ({_number(row['cohort_p25'], digits)} to "
                  f"{_number(row['cohort_p75'], digits)})")
        if row["source"] is None:
            lines.append(f"| {row['label']} ({unit}) | {row['sex']} | {row['cohort_n']} | {cohort} | "
                         f"{row['note']} | | | | | |")
            continue
        centre = []
        if row["population_median"] is not None:
            centre.append(f"median {_number(row['population_median'], digits)}")
        if row["population_mean"] is not None:
            centre.append(f"{_number(row['population_mean'], digits)} ± {_number(row['population_sd'], digits + 1)}")
        spread = ("not given" if row["range_low"] is None else
                  f"{_number(row['range_low'], digits)} to {_number(row['range_high'], digits)}"
                  + ("" if row["range_from"] == "percentiles" else f" ({row['range_from']})"))
        inside = ("" if row["inside_range"] is None or not row["cohort_n"] else
                  f"{row['inside_range']}/{row['cohort_n']} ({100 * row['fraction_inside_range']:.0f} %)")
        iqr = ("not given" if row["iqr_low"] is None else
               f"{_number(row['iqr_low'], digits)} to {_number(row['iqr_high'], digits)}"
               + ("" if row["iqr_from"] == "percentiles" else f" ({row['iqr_from']})"))
        lines.append(f"| {row['label']} ({unit}) | {row['sex']} | {row['cohort_n']} | {cohort} | "
                     f"{' / '.join(centre) or 'none'} | {spread} | {inside} | {iqr} | "
                     f"{row['median_inside_iqr'] or ''} | {row['source']} |")
    # the sources the table compares with, so a recorded table renders the same after a source is added
    lines += ["", *sources_markdown(norms, {row["source"] for row in table})]
    return "\n".join(lines) + "\n"


def sources_markdown(norms: PopulationNorms, labels: set[Any]) -> list[str]:
    """The lines listing the populations of the sources whose labels are in ``labels``, in the
    reference table's order."""
    return ["Populations:", "", *(f"- {source['label']}: {source['population']}. Read: {source['read']}."
                                  for source in norms.sources.values() if source["label"] in labels)]
