"""Figures of the realism stage: the clinical-style 12-lead ECG of a beat, the feature
distributions of the cohort against their healthy ranges, and its healthy beats by sex against
published populations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.ecg.leads import LEAD_NAMES
from ecgcohort.io import atomic_path
from ecgcohort.realism.criteria import CRITERIA_SETS, SEXES
from ecgcohort.realism.delineation import DelineationSettings, tiled_record
from ecgcohort.realism.features import LIMB_LEADS, PRECORDIAL_LEADS
from ecgcohort.realism.population import ALL_SEXES, PopulationNorms, cohort_values

#: Paper speed and gain of the clinical layout.
MM_PER_S = 25.0
MM_PER_MV = 10.0
#: The 3 × 4 layout (rows of simultaneous columns of 2.5 s) and the rhythm strip's lead.
CLINICAL_LAYOUT: tuple[tuple[str, ...], ...] = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"),
                                                ("III", "aVF", "V3", "V6"))
RHYTHM_LEAD = "II"
COLUMN_S = 2.5
#: Width reserved left of the traces for the 1 mV calibration pulse, mm.
CALIBRATION_MM = 10.0


def _grid(axis: Any, width_mm: float, height_mm: float) -> None:
    """ECG paper: 1 mm minor and 5 mm major lines."""
    for step, colour, width in ((1.0, "#f6c8c8", 0.3), (5.0, "#e48a8a", 0.7)):
        axis.vlines(np.arange(0.0, width_mm + 1e-9, step), 0.0, height_mm, colors=colour, lw=width, zorder=0)
        axis.hlines(np.arange(0.0, height_mm + 1e-9, step), 0.0, width_mm, colors=colour, lw=width, zorder=0)


def plot_clinical_ecg(leads_mv: np.ndarray, dt_ms: float, cycle_length_ms: float, path: str | Path, title: str,
                      settings: DelineationSettings = DelineationSettings()) -> None:
    """A clinical 12-lead printout (PNG): 10 s at 25 mm/s and 10 mm/mV on a 1 mm grid, the
    leads in 3 rows × 4 columns of 2.5 s (I/aVR/V1/V4, II/aVL/V2/V5, III/aVF/V3/V6) and a lead II
    rhythm strip, all on the same scale, a 1 mV calibration pulse at each row's start. The beat
    (12, T) in mV is repeated at the cycle length behind an isoelectric lead-in (no P wave is
    simulated). Rows are as tall as their largest excursions need, so no trace is clipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leads = np.asarray(leads_mv, dtype=np.float64)
    _, _, period = tiled_record(leads, dt_ms, cycle_length_ms, settings, beats=1)
    beats = math.ceil(4 * COLUMN_S * 1000.0 / (period * dt_ms))
    record, _, _ = tiled_record(leads, dt_ms, cycle_length_ms, settings, beats=beats)
    record = record - leads[:, :1]
    samples = int(round(4 * COLUMN_S * 1000.0 / dt_ms))
    record = record[:, :samples]
    t_mm = np.arange(samples) * dt_ms * 1e-3 * MM_PER_S
    column = int(round(COLUMN_S * 1000.0 / dt_ms))
    index = {name: k for k, name in enumerate(LEAD_NAMES)}

    rows = [[(name, slice(j * column, (j + 1) * column)) for j, name in enumerate(layout)]
            for layout in CLINICAL_LAYOUT]
    rows.append([(RHYTHM_LEAD, slice(0, samples))])
    extents = []
    for row in rows:
        up = max(1.0, max(record[index[name], part].max() for name, part in row)) * MM_PER_MV
        down = max(0.0, max(-record[index[name], part].min() for name, part in row)) * MM_PER_MV
        extents.append((5.0 * math.ceil((up + 3.0) / 5.0), 5.0 * math.ceil((down + 3.0) / 5.0)))
    width_mm = CALIBRATION_MM + t_mm[-1] + dt_ms * 1e-3 * MM_PER_S + 5.0
    height_mm = sum(up + down for up, down in extents)

    figure = plt.figure(figsize=(width_mm / 25.4, (height_mm + 12.0) / 25.4))
    axis = figure.add_axes((0.0, 0.0, 1.0, height_mm / (height_mm + 12.0)))
    axis.set_xlim(0.0, width_mm)
    axis.set_ylim(0.0, height_mm)
    axis.set_aspect("equal")
    axis.axis("off")
    _grid(axis, width_mm, height_mm)
    top = height_mm
    for row, (up, down) in zip(rows, extents):
        baseline = top - up
        pulse_x = np.array([1.0, 3.0, 3.0, 8.0, 8.0, 10.0])
        axis.plot(pulse_x, baseline + np.array([0.0, 0.0, MM_PER_MV, MM_PER_MV, 0.0, 0.0]), color="k", lw=0.8)
        for name, part in row:
            x = CALIBRATION_MM + t_mm[part]
            axis.plot(x, baseline + record[index[name], part] * MM_PER_MV, color="k", lw=0.7)
            axis.text(x[0] + 1.0, baseline + up - 4.0, name, fontsize=8, va="bottom")
            if part.start:
                axis.plot([x[0], x[0]], [baseline - 2.0, baseline + 2.0], color="k", lw=0.8)
        top = baseline - down
    figure.text(0.01, 1.0 - 6.0 / (height_mm + 12.0), f"{title}    25 mm/s, 10 mm/mV", fontsize=10, va="center")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=150, format="png")
    plt.close(figure)


#: Features plotted against their healthy range: column (or derived name), label, and the key
#: of the ``healthy`` settings holding the range (an interval, or an upper or lower limit; per
#: sex where the setting is ``{"female": ..., "male": ...}``).
DISTRIBUTION_PANELS: tuple[tuple[str, str, str | None], ...] = (
    ("qrs_duration_ms", "QRS duration (ms)", "qrs_duration_ms"),
    ("qrs_axis_deg", "frontal QRS axis (°)", "qrs_axis_deg"),
    ("qtc_ms", "QTc, Fridericia (ms)", "qtc_ms"),
    ("transition_index", "R/S transition (1 = V1, 7 = beyond V6)", "transition_leads"),
    ("r_mv_V3", "R in V3 (mV)", "r_v3_min_mv"),
    ("septal_q_mv", "septal q, deeper of V5 and V6 (mV)", "septal_q_min_mv"),
    ("cornell_mv", "Cornell voltage (mV)", "cornell_max_mv"),
    ("sokolow_lyon_mv", "Sokolow-Lyon (mV)", "sokolow_lyon_max_mv"),
    ("t_limb_max_mv", "largest |T|, limb leads (mV)", "t_limb_max_mv"),
    ("t_precordial_max_mv", "largest |T|, V1-V6 (mV)", "t_precordial_max_mv"),
    ("qrs_t_angle_deg", "frontal QRS-T angle (°)", "qrs_t_angle_max_deg"),
    ("turning_points_max", "most QRS turning points in a lead", "max_turning_points"),
    ("hf_band_peak_uv", "150-250 Hz QRS band peak (µV)", "hf_band_peak_max_uv"),
    ("hf_fraction_above_cutoff", "QRS energy above the HF cutoff (fraction)", None),
    ("t_residual_fraction", "T left at the record's end (fraction)", None),
)
#: Colours of the per-sex ranges, limits and dots, and of the populations' bands (none of the sexes').
SEX_COLOURS = {"female": "tab:purple", "male": "tab:orange"}
POPULATION_COLOURS = ("tab:green", "tab:red", "tab:gray", "tab:blue", "tab:brown")


def _bounds(key: str, value: Any) -> tuple[float, float]:
    if key == "transition_leads":
        numbers = [PRECORDIAL_LEADS.index(lead) + 1 for lead in value]
        return float(min(numbers)), float(max(numbers))
    if isinstance(value, list):
        return float(value[0]), float(value[1])
    if key.endswith("_min_mv"):
        return float(value), math.inf
    return -math.inf, float(value)


def healthy_ranges(key: str | None, healthy: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """A panel's healthy range: ``{"": range}`` when it holds for both sexes, else one per sex."""
    if key is None:
        return {}
    value = healthy[key]
    if isinstance(value, dict):
        return {sex: _bounds(key, limit) for sex, limit in value.items()}
    return {"": _bounds(key, value)}


def derived_columns(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the largest |T| over the limb and over the precordial leads and the deeper
    septal q of V5 and V6 added."""
    out = []
    for row in rows:
        extra = dict(row)
        if row["status"] == "ok":
            extra["t_limb_max_mv"] = max(abs(float(row[f"t_mv_{lead}"])) for lead in LIMB_LEADS)
            extra["t_precordial_max_mv"] = max(abs(float(row[f"t_mv_{lead}"])) for lead in PRECORDIAL_LEADS)
            extra["septal_q_mv"] = max(float(row["q_mv_V5"]), float(row["q_mv_V6"]))
        out.append(extra)
    return out


def plot_feature_distributions(rows: Sequence[Mapping[str, Any]], healthy: Mapping[str, Any],
                               lbbb_qrs_min_ms: Mapping[str, float], path: str | Path) -> None:
    """One panel per feature of :data:`DISTRIBUTION_PANELS`: every delineated beat as a dot per
    criteria set, the healthy range shaded (it applies to the ``healthy`` set; one shade per sex
    where the range depends on it), the LBBB QRS minimum of each sex dashed (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = [row for row in derived_columns(rows) if row["status"] == "ok"]
    sets = [s for s in CRITERIA_SETS if any(row["criteria_set"] == s for row in table)]
    n_cols = 4
    n_rows = math.ceil(len(DISTRIBUTION_PANELS) / n_cols)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(4.0 * n_cols, 3.0 * n_rows))
    rng = np.random.default_rng(0)
    for axis, (column, label, key) in zip(axes.flat, DISTRIBUTION_PANELS):
        for k, criteria_set in enumerate(sets):
            values = np.array([float(row[column]) for row in table if row["criteria_set"] == criteria_set])
            values = values[np.isfinite(values)]
            axis.plot(k + rng.uniform(-0.15, 0.15, values.size), values, "o", ms=4, alpha=0.8, color=f"C{k}")
        ranges = healthy_ranges(key, healthy)
        if ranges:
            finite = [b for bounds in ranges.values() for b in bounds if math.isfinite(b)]
            y0, y1 = min(axis.get_ylim()[0], *finite), max(axis.get_ylim()[1], *finite)
            margin = 0.05 * (y1 - y0)
            y0, y1 = y0 - margin, y1 + margin
            for sex, (low, high) in ranges.items():
                axis.axhspan(max(low, y0), min(high, y1), color=SEX_COLOURS.get(sex, "tab:green"),
                             alpha=0.15 if not sex else 0.12, label=f"healthy range{f' ({sex})' if sex else ''}")
            axis.set_ylim(y0, y1)
            if len(ranges) > 1:
                axis.legend(fontsize=7, loc="upper left")
        if column == "qrs_duration_ms":
            for sex, minimum in lbbb_qrs_min_ms.items():
                axis.axhline(minimum, color=SEX_COLOURS[sex], ls="--", lw=1, label=f"LBBB (Strauss) minimum, {sex}")
            axis.legend(fontsize=7, loc="upper left")
        axis.set_xticks(range(len(sets)), sets, fontsize=8)
        axis.set_xlim(-0.5, len(sets) - 0.5)
        axis.set_title(label, fontsize=9)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(DISTRIBUTION_PANELS):]:
        axis.axis("off")
    figure.suptitle("ECG features by criteria set; shaded: the healthy range (judged on the healthy set)")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)


def plot_population(rows: Sequence[Mapping[str, Any]], table: Sequence[Mapping[str, Any]],
                    norms: PopulationNorms, path: str | Path) -> None:
    """One panel per feature of the population comparison: the healthy beats' values of women
    and men as dots, each population's 2-98 % range (light) and interquartile range (dark) as
    bands behind the sex it describes (across both for a population of both sexes), its median
    or mean as a line; a feature without population values says so (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    features = list(norms.features)
    sources = list(dict.fromkeys(str(r["source"]) for r in table if r["source"] is not None))
    colours = {source: POPULATION_COLOURS[k % len(POPULATION_COLOURS)] for k, source in enumerate(sources)}
    n_cols = 4
    n_rows = math.ceil(len(features) / n_cols)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(4.0 * n_cols, 3.4 * n_rows))
    rng = np.random.default_rng(0)
    labelled: set[str] = set()
    for axis, feature in zip(axes.flat, features):
        meta = norms.features[feature]
        for k, sex in enumerate(SEXES):
            values = cohort_values(rows, feature, sex)
            axis.plot(k + rng.uniform(-0.12, 0.12, values.size), values, "o", ms=4, color=SEX_COLOURS[sex], zorder=3)
        references = [r for r in table if r["feature"] == feature and r["source"] is not None]
        for reference in references:
            k = None if reference["sex"] == ALL_SEXES else SEXES.index(str(reference["sex"]))
            x0, x1 = (-0.45, len(SEXES) - 0.55) if k is None else (k - 0.35, k + 0.35)
            colour = colours[str(reference["source"])]
            label = None if reference["source"] in labelled else str(reference["source"])
            labelled.add(str(reference["source"]))
            if reference["range_low"] is not None:
                axis.fill_between([x0, x1], reference["range_low"], reference["range_high"], color=colour, alpha=0.12,
                                  lw=0, label=label)
                label = None
            if reference["iqr_low"] is not None:
                axis.fill_between([x0, x1], reference["iqr_low"], reference["iqr_high"], color=colour, alpha=0.3, lw=0)
            centre = reference["population_median"] if reference["population_median"] is not None \
                else reference["population_mean"]
            if centre is not None:
                axis.plot([x0, x1], [centre, centre], color=colour, lw=2, label=label)
        if not references:
            axis.text(0.5, 0.95, "no population values\nby sex in the sources read", transform=axis.transAxes,
                      ha="center", va="top", fontsize=8, color="0.4")
        axis.set_xticks(range(len(SEXES)), [f"{sex} (n={cohort_values(rows, feature, sex).size})" for sex in SEXES],
                        fontsize=8)
        axis.set_xlim(-0.5, len(SEXES) - 0.5)
        axis.set_title(f"{meta['label']} ({meta['unit']})", fontsize=9)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(features):]:
        axis.axis("off")
    handles, labels = [], []
    for axis in axes.flat:
        for handle, text in zip(*axis.get_legend_handles_labels()):
            if text not in labels:
                handles.append(handle)
                labels.append(text)
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    figure.suptitle("Healthy beats by sex against published populations: 2-98 % range light, IQR dark, "
                    "median (or mean) a line")
    figure.tight_layout(rect=(0.0, 0.05, 1.0, 1.0))
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)


def plot_heart_size(rows: Sequence[Mapping[str, Any]], volumes_ml: Mapping[str, float],
                    table: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Sinus and LBBB QRS duration against the myocardial volume, women and men as dots with
    their least-squares lines (``table``: :func:`ecgcohort.realism.heart_size.qrs_against_heart_size`)
    and, on the LBBB panel, Strauss's QRS duration of each sex as a dashed line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ecgcohort.realism.heart_size import KINDS, beats_by_kind

    figure, axes = plt.subplots(1, len(KINDS), figsize=(5.5 * len(KINDS), 4.2))
    for axis, kind in zip(np.atleast_1d(axes), KINDS):
        beats = beats_by_kind(rows, volumes_ml, kind)
        for sex in SEXES:
            mine = np.array([(volume, qrs) for beat_sex, volume, qrs in beats if beat_sex == sex]).reshape(-1, 2)
            axis.plot(mine[:, 0], mine[:, 1], "o", ms=4, color=SEX_COLOURS[sex], label=f"{sex} (n={len(mine)})")
            line = next((r for r in table if r["kind"] == kind and r["sex"] == sex), None)
            if line is not None and line["slope_ms_per_10ml"] is not None:
                x = np.array([line["volume_min_ml"], line["volume_max_ml"]])
                axis.plot(x, line["intercept_ms"] + line["slope_ms_per_10ml"] / 10.0 * x, color=SEX_COLOURS[sex],
                          lw=1.5, label=f"{sex}: {line['slope_ms_per_10ml']:.1f} ms per 10 mL, r = "
                                        f"{line['correlation']:.2f}" if line["correlation"] is not None else None)
            if line is not None and line["qrs_min_ms"] is not None:
                axis.axhline(line["qrs_min_ms"], color=SEX_COLOURS[sex], ls="--", lw=1)
        axis.set_xlabel("myocardial volume (mL)")
        axis.set_ylabel("QRS duration (ms)")
        axis.set_title(f"{kind}" + (" (dashed: Strauss's QRS duration by sex)" if kind == "lbbb" else ""), fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
