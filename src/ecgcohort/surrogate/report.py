"""Fan-in of the surrogate evaluations: Table 1 (CSV and Markdown, the paper's values beside
ours), a per-patient error table, the timing table and the figures of paper 1's Figs. 6–9."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.io import atomic_path
from ecgcohort.surrogate.labels import ENCODING_LABELS, PSEUDO, model_label  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

#: Paper 1, Table 1 (mean ± sd over 10 test geometries): angular error in the heart (degrees),
#: angular error for the precordial electrodes (degrees), ECG relative ℓ2 error (so labelled in its
#: Table 1 and Methods; its abstract calls the same figures a "relative mean squared error").
PAPER_TABLE1: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "pca": ((5.22, 0.61), (5.93, 1.26), (0.024, 0.013)),
    "deepsdf": ((3.89, 0.51), (4.64, 0.99), (0.018, 0.010)),
}
#: Table 1's columns; the last, the squared relative ℓ2 error per lead (the abstract's reading of
#: the paper's ECG figure), is ours only.
TABLE1_METRICS: tuple[str, ...] = ("angular_error_heart_deg", "angular_error_precordial_heart_deg",
                                   "ecg_relative_l2_mean", "ecg_relative_l2_squared_mean",
                                   # not printed in Table 1: the whole-torso angle of the error budget
                                   "angular_error_torso_deg")
def _models(summaries: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    models = []
    for s in summaries:
        if (s["encoding"], s["target"]) not in models:
            models.append((s["encoding"], s["target"]))
    return models


def squared_relative_error(ecg: Mapping[str, Mapping[str, Any]]) -> float:
    """Mean over scenarios and leads of the squared relative ℓ2 error, ‖V̂ − V‖² / ‖V‖² per lead
    (dimensionless): the ECG error as a relative mean squared error. ``ecg`` is an evaluation's
    per-scenario record with ``relative_l2_per_lead``."""
    return float(np.mean([np.mean(np.square(list(e["relative_l2_per_lead"].values()))) for e in ecg.values()]))


def error_table(summaries: Sequence[Mapping[str, Any]]):
    """One row per (model, test patient), plus the pseudo lead field's rows (model
    ``pseudo lead field``, once per patient): every scalar metric of the evaluations."""
    import pandas as pd

    rows, pseudo_seen = [], set()
    for s in summaries:
        for kind in ("surrogate", "pseudo"):
            if kind == "pseudo" and s["patient"] in pseudo_seen:
                continue
            metrics = s[kind]
            ecg = metrics["ecg"].values()
            rows.append({
                "model": model_label(s["encoding"], s["target"]) if kind == "surrogate" else PSEUDO,
                "encoding": s["encoding"] if kind == "surrogate" else "", "target": s["target"] if kind == "surrogate" else "",
                "patient": s["patient"], "outlier": bool(s["outlier"]) if kind == "surrogate" else False,
                **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                "ecg_relative_l2_squared_mean": squared_relative_error(metrics["ecg"]),
                "qrs_amplitude_relative_difference": float(np.mean([e["qrs_amplitude_relative_difference"] for e in ecg])),
                "qrs_amplitude_difference_mv": float(np.mean([e["qrs_amplitude_difference_mv"] for e in ecg])),
                "qrs_duration_difference_ms": float(np.mean([e["qrs_duration_difference_ms"] for e in ecg])),
            })
            if kind == "pseudo":
                pseudo_seen.add(s["patient"])
    return pd.DataFrame(rows)


def table1(errors) -> Any:
    """Table 1: per model (and the pseudo lead field) mean and sd over test patients of the
    angular error in the heart, for V1–V6, the ECG relative ℓ2 error and its square, with the
    paper's values as rows of their own (``source`` = paper, no squared column) for the encodings
    we trained."""
    import pandas as pd

    rows = []
    for model, group in errors.groupby("model", sort=False):
        first = group.iloc[0]
        row = {"model": model, "source": "ours", "encoding": first["encoding"], "target": first["target"],
               "test_patients": len(group),
               "outliers": " ".join(group.loc[group["outlier"], "patient"])}
        for metric in TABLE1_METRICS:
            row[f"{metric}_mean"] = float(group[metric].mean())
            row[f"{metric}_sd"] = float(group[metric].std(ddof=1)) if len(group) > 1 else float("nan")
        rows.append(row)
    for encoding in dict.fromkeys(e for e in errors["encoding"] if e):
        paper = PAPER_TABLE1[encoding]
        row = {"model": f"{ENCODING_LABELS[encoding]}-based (paper)", "source": "paper", "encoding": encoding,
               "target": "full", "test_patients": 10, "outliers": ""}
        for metric in TABLE1_METRICS:
            row[f"{metric}_mean"], row[f"{metric}_sd"] = float("nan"), float("nan")
        for metric, (mean, sd) in zip(TABLE1_METRICS, paper):
            row[f"{metric}_mean"], row[f"{metric}_sd"] = mean, sd
        rows.append(row)
    return pd.DataFrame(rows)


def table1_markdown(table) -> str:
    """Table 1 as Markdown: mean ± sd per cell; outlier test patients footnoted."""
    lines = ["| model | source | test patients | angular error, heart (°) | angular error, V1–V6 (°) | "
             "ECG relative ℓ2 | ECG relative ℓ2, squared |", "|---|---|---|---|---|---|---|"]
    for _, row in table.iterrows():
        def cell(metric: str, digits: int, unit: str = "") -> str:
            mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
            if np.isnan(mean):
                return "–"
            return f"{mean:.{digits}f}{unit}" + ("" if np.isnan(sd) else f" ± {sd:.{digits}f}{unit}")

        flagged = f" (outliers: {row['outliers']})" if row["outliers"] else ""
        lines.append(f"| {row['model']}{flagged} | {row['source']} | {row['test_patients']} | "
                     f"{cell(TABLE1_METRICS[0], 2, '°')} | {cell(TABLE1_METRICS[1], 2, '°')} | "
                     f"{cell(TABLE1_METRICS[2], 3)} | {cell(TABLE1_METRICS[3], 4)} |")
    return "\n".join(lines) + "\n"


def timing_table(summaries: Sequence[Mapping[str, Any]]):
    """Per model, means over test patients: surrogate seconds per lead (one lead at the timing
    points; all leads at the sample points, per lead; the lead matrix of all leads) and FEM
    seconds per lead (amortised total of the lead-field job; marginal solve + gradient)."""
    import pandas as pd

    rows = []
    for encoding, target in _models(summaries):
        timings = [s["timing"] for s in summaries if (s["encoding"], s["target"]) == (encoding, target)]

        def mean(key: str) -> float:
            return float(np.mean([t[key] for t in timings]))

        one_lead = mean("surrogate_one_lead_s")
        rows.append({
            "model": model_label(encoding, target), "device": timings[0]["device"], "threads": timings[0]["threads"],
            "timing_points": timings[0]["timing_points"], "surrogate_one_lead_s": one_lead,
            "surrogate_per_lead_batched_s": float(np.mean([t["surrogate_all_leads_sample_points_s"] / t["electrodes"]
                                                           * t["timing_points"] / t["sample_points"] for t in timings])),
            "surrogate_lead_matrix_all_leads_s": mean("surrogate_lead_matrix_s"),
            "myocardial_cells": mean("myocardial_cells"),
            "fem_total_s_per_lead": mean("fem_total_s_per_lead"), "fem_marginal_s_per_lead": mean("fem_marginal_s_per_lead"),
            "fem_over_surrogate": mean("fem_total_s_per_lead") / one_lead,
            "paper_surrogate_one_lead_s": 0.25, "paper_fem_s_per_lead": 6.0,
        })
    return pd.DataFrame(rows)


#: Columns of the ECG-transfer table, from :func:`ecgcohort.surrogate.transfer.ecg_transfer`.
TRANSFER_KEYS: tuple[str, ...] = ("ecg_error", "weighted_field_error", "electrode_error", "difference_gain",
                                  "magnitude_part", "direction_part")


def transfer_table(summaries: Sequence[Mapping[str, Any]]):
    """Which part of the ∇Z error becomes ECG error: per model (and the pseudo lead field), phase
    (qrs, t, beat) and lead (and ``all``, the mean over the 12), means over test patients and
    scenarios of the ECG transfer's measures, beside the unweighted angular and magnitude errors
    of ∇Z per myocardial cell and ``ecg_over_field`` (ECG error / the lead field's weighted
    error: below 1 the errors cancel in the sum over cells, above 1 they add up)."""
    import pandas as pd

    from ecgcohort.ecg.leads import LEAD_NAMES

    collected: dict[tuple[str, str], dict[str, list]] = {}
    pseudo_seen = set()
    for s in summaries:
        for kind in ("surrogate", "pseudo"):
            if kind == "pseudo" and s["patient"] in pseudo_seen:
                continue
            pseudo_seen.add(s["patient"]) if kind == "pseudo" else None
            transfer = s[kind]["ecg_transfer"]
            model = model_label(s["encoding"], s["target"]) if kind == "surrogate" else PSEUDO
            for scenario, phases in transfer.items():
                if scenario == "cells":
                    continue
                for phase, result in phases.items():
                    entry = collected.setdefault((model, phase), {key: [] for key in (*TRANSFER_KEYS, "cells")})
                    for key in TRANSFER_KEYS:
                        entry[key].append(result[key])
                    entry["cells"].append(transfer["cells"])
    rows = []
    for (model, phase), entry in collected.items():
        per_lead = {key: np.nanmean(np.asarray(entry[key], dtype=float), axis=0) for key in TRANSFER_KEYS}
        cells = {key: float(np.mean([c[key] for c in entry["cells"]])) for key in ("angular_error_deg", "magnitude_error")}
        for index, lead in enumerate((*LEAD_NAMES, "all")):
            values = {key: float(per_lead[key].mean() if lead == "all" else per_lead[key][index]) for key in TRANSFER_KEYS}
            rows.append({"model": model, "phase": phase, "lead": lead,
                         "cell_angular_error_deg": cells["angular_error_deg"],
                         "cell_magnitude_error": cells["magnitude_error"], **values,
                         "ecg_over_field": values["ecg_error"] / values["weighted_field_error"]})
    return pd.DataFrame(rows)


def transfer_markdown(transfer, table) -> str:
    """The ECG transfer as Markdown, one column per model (the pseudo lead field first): Table 1's
    heart angle (degrees), the unweighted angle (degrees) and relative magnitude error of ∇Z per
    myocardial cell, the electrodes' and the leads' source-weighted field errors, the ECG relative
    ℓ2 error per phase and the ECG error with only the magnitude or only the direction taken; each
    the mean over the 12 leads of the ``all`` rows of :func:`transfer_table` (whole beat unless
    named)."""
    overall = transfer[transfer["lead"] == "all"]
    models = list(dict.fromkeys([PSEUDO, *overall["model"]]))
    heart = dict(zip(table["model"], table["angular_error_heart_deg_mean"]))

    def value(model: str, phase: str, key: str) -> float:
        row = overall[(overall["model"] == model) & (overall["phase"] == phase)]
        if row.empty:
            raise ValueError(f"ECG transfer table has no {phase!r} row of model {model!r}")
        return float(row.iloc[0][key])

    rows = {
        "Table 1 angle, heart + 10 mm margin (sample points)": lambda m: f"{heart[m]:.1f}°",
        "angle per myocardial cell (unweighted)": lambda m: f"{value(m, 'beat', 'cell_angular_error_deg'):.1f}°",
        "magnitude error per myocardial cell": lambda m: f"{value(m, 'beat', 'cell_magnitude_error'):.2f}",
        "electrodes' field error, weighted by the source": lambda m: f"{value(m, 'beat', 'electrode_error'):.2f}",
        "leads' field error, weighted by the source": lambda m: f"{value(m, 'beat', 'weighted_field_error'):.2f}",
        "ECG error, QRS / T / beat": lambda m: " / ".join(f"{value(m, phase, 'ecg_error'):.2f}"
                                                          for phase in ("qrs", "t", "beat")),
        "ECG error with only the magnitude / only the direction taken":
            lambda m: f"{value(m, 'beat', 'magnitude_part'):.2f} / {value(m, 'beat', 'direction_part'):.2f}",
    }
    lines = ["| | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(m) for m in models) + " |" for name, cell in rows.items()]
    return "\n".join(lines) + "\n"


#: The ground-truth term's columns (from the ``surrogate_ground_truth`` summaries), means over patients.
GROUND_TRUTH_COLUMNS: tuple[str, ...] = tuple(f"{pair}_{kind}" for pair in ("fem_vs_reference", "surrogate_vs_fem",
                                                                            "surrogate_vs_reference")
                                              for kind in ("angle_deg", "magnitude"))


def ground_truth_means(summaries: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Model label → the mean of each :data:`GROUND_TRUTH_COLUMNS` over its patients, and their count."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for summary in summaries:
        grouped.setdefault(model_label(summary["encoding"], summary["target"]), []).append(summary)
    return {model: {**{column: float(np.mean([s[column] for s in rows])) for column in GROUND_TRUTH_COLUMNS},
                    "ground_truth_patients": len(rows)} for model, rows in grouped.items()}


def error_budget_table(table, transfer, trainings: Mapping[str, Mapping[str, Any]],
                       ground_truth: Mapping[str, Mapping[str, float]] | None = None):
    """The terms of the surrogate's error budget that every run measures, one row per trained model:
    generalisation (∇Z angle, degrees, of the fitting, validation and test patients on one point
    set, the heart + margin sample points that Table 1 scores, and the test − fitting gap there;
    the fitting and test patients at all sample points; the fitting and validation patients over
    every training row, myocardial cells included) and ECG transfer (unweighted angle and
    magnitude error per myocardial cell, the leads' source-weighted field error, the whole-beat ECG
    relative ℓ2 error and its ratio to the field error); optimisation: the best validation epoch of
    all (a best epoch at the end: still improving); ground truth (``ground_truth``, from
    :func:`ground_truth_means`; NaN where not measured): ∇Z in the myocardium of the dataset's FEM
    against the converged reference, of the surrogate against that FEM and against the reference.
    ``trainings``: model label → the model file's ``training`` (NaN for an angle a model file
    written before it was recorded lacks)."""
    import pandas as pd

    beat = transfer[(transfer["lead"] == "all") & (transfer["phase"] == "beat")].set_index("model")
    rows = []
    for model, training in trainings.items():
        tested = table.loc[table["model"] == model].iloc[0]
        test = float(tested["angular_error_heart_deg_mean"])

        def angle(key: str) -> float:
            return float(training.get(key, float("nan")))

        fitting_heart = angle("fitting_heart_angular_error_deg")
        rows.append({
            "model": model, "fitting_heart_angle_deg": fitting_heart,
            "validation_heart_angle_deg": angle("validation_heart_angular_error_deg"),
            "test_angle_deg": test, "generalisation_gap_deg": test - fitting_heart,
            "fitting_points_angle_deg": angle("fitting_points_angular_error_deg"),
            "test_points_angle_deg": float(tested.get("angular_error_torso_deg_mean", float("nan"))),
            "fitting_angle_deg": angle("training_angular_error_deg"),
            "validation_angle_deg": angle("validation_angular_error_deg"),
            "cell_angle_deg": float(beat.loc[model, "cell_angular_error_deg"]),
            "cell_magnitude_error": float(beat.loc[model, "cell_magnitude_error"]),
            "weighted_field_error": float(beat.loc[model, "weighted_field_error"]),
            "ecg_error": float(beat.loc[model, "ecg_error"]), "ecg_over_field": float(beat.loc[model, "ecg_over_field"]),
            "best_epoch": int(training["best_epoch"]), "epochs": int(training["epochs"]),
            "training_seconds": float(training["seconds"]), "device": training["device"],
            **{column: float((ground_truth or {}).get(model, {}).get(column, float("nan")))
               for column in (*GROUND_TRUTH_COLUMNS, "ground_truth_patients")},
        })
    return pd.DataFrame(rows)


def _write_csv(frame, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6g")


def _angle_or_dash(value: float, sign: str = "") -> str:
    """Degrees to two decimals, or a dash for a term the run did not measure (NaN; a column that
    budgets recorded before it do not have)."""
    return "–" if np.isnan(value) else f"{value:{sign}.2f}°"


#: The budget's Markdown columns before the ECG transfer: header, CSV column (budgets written
#: before a column existed read it as NaN and print a dash).
BUDGET_GENERALISATION: tuple[tuple[str, str], ...] = (
    ("fitting, heart + margin", "fitting_heart_angle_deg"),
    ("validation, heart + margin", "validation_heart_angle_deg"),
    ("test, heart + margin (Table 1)", "test_angle_deg"),
    ("test − fitting, heart + margin", "generalisation_gap_deg"),
    ("fitting, all sample points", "fitting_points_angle_deg"),
    ("test, all sample points", "test_points_angle_deg"),
)


def budget_markdown(budget) -> str:
    """The error budget's measured terms as Markdown, one row per trained model."""
    lines = ["| model | " + " | ".join(header for header, _ in BUDGET_GENERALISATION) + " | angle per "
             "myocardial cell | magnitude per cell | leads' weighted field error | ECG error | ECG / field | "
             "best epoch | training | FEM vs reference, myo | surrogate vs FEM, myo | surrogate vs reference, myo |",
             "|---" * (len(BUDGET_GENERALISATION) + 12) + "|"]
    # the gap again from its two terms: budgets written before the heart + margin fitting angle
    # subtracted the angle over every training row
    budget = budget.assign(generalisation_gap_deg=budget["test_angle_deg"]
                           - budget.get("fitting_heart_angle_deg", float("nan")))
    for _, row in budget.iterrows():
        generalisation = " | ".join(_angle_or_dash(float(row.get(column, np.nan)), "+" if "gap" in column else "")
                                    for _, column in BUDGET_GENERALISATION)
        lines.append(f"| {row['model']} | {generalisation} | {row['cell_angle_deg']:.1f}° | "
                     f"{row['cell_magnitude_error']:.2f} | {row['weighted_field_error']:.2f} | {row['ecg_error']:.3f} | "
                     f"{row['ecg_over_field']:.2f} | {row['best_epoch']} of {row['epochs']} | "
                     f"{row['training_seconds']:.0f} s, {row['device']} | "
                     + " | ".join(_angle_or_dash(row.get(f"{pair}_angle_deg", np.nan)) for pair in
                                  ("fem_vs_reference", "surrogate_vs_fem", "surrogate_vs_reference")) + " |")
    return "\n".join(lines) + "\n"


def read_table1(path: str | Path):
    """Table 1 as written by :func:`summarize_surrogate_job` (no outliers: an empty string; a
    column a table written before it was added reads as NaN)."""
    import pandas as pd

    table = pd.read_csv(path, dtype={"outliers": str}).fillna({"outliers": ""})
    for metric in TABLE1_METRICS:
        for statistic in ("mean", "sd"):
            if f"{metric}_{statistic}" not in table:
                table[f"{metric}_{statistic}"] = float("nan")
    return table


def write_markdown_tables(table_csv: str | Path, transfer_csv: str | Path, table_md: str | Path,
                          transfer_md: str | Path) -> None:
    """Table 1 and the ECG transfer as Markdown, rendered from their written CSVs (so that the
    Markdown can be re-rendered from the CSV alone, digit for digit: the site's results tables are)."""
    import pandas as pd

    table, transfer = read_table1(table_csv), pd.read_csv(transfer_csv)
    for markdown, path in ((table1_markdown(table), table_md), (transfer_markdown(transfer, table), transfer_md)):
        with atomic_path(path) as temporary:
            Path(temporary).write_text(markdown)


def summarize_surrogate_job(summaries: Sequence[str | Path], errors: Sequence[str | Path],
                            evaluation: Mapping[str, Any], outputs: Mapping[str, str | Path],
                            models: Sequence[str | Path] = (), ground_truth: Sequence[str | Path] = (),
                            losses: Sequence[str | Path] = ()) -> None:
    """Read every (model, test patient) evaluation and write ``outputs``: ``table``,
    ``markdown``, ``errors``, ``timing``, ``transfer``, ``transfer_markdown``, ``budget`` and
    ``budget_markdown`` (from the trained ``models``' files and the ``ground_truth`` summaries) and the
    figures ``cdf``, ``electrodes``, ``torso_map``, ``ecg`` and ``budget_figure`` (with the validation
    loss against samples seen from the models' ``losses`` tables, in the order of ``models``)."""
    if not summaries:
        raise ValueError("no surrogate evaluations: the cohort has no test patients (cohort.test.count)")
    import pandas as pd

    loaded = [json.loads(Path(p).read_text()) for p in summaries]
    frame = error_table(loaded)
    table = table1(frame)
    _write_csv(table, outputs["table"])
    _write_csv(frame, outputs["errors"])
    _write_csv(timing_table(loaded), outputs["timing"])
    transfer = transfer_table(loaded)
    _write_csv(transfer, outputs["transfer"])
    write_markdown_tables(outputs["table"], outputs["transfer"], outputs["markdown"], outputs["transfer_markdown"])
    from ecgcohort.learning.modelfile import load_model

    trainings = {}
    for path in models:
        metadata = load_model(path, kind="leadfield-surrogate")[1]
        trainings[model_label(metadata["encoding"], metadata["target"])] = metadata["training"]
    budget = error_budget_table(table, transfer, trainings,
                                ground_truth_means([json.loads(Path(p).read_text()) for p in ground_truth]))
    _write_csv(budget, outputs["budget"])
    with atomic_path(outputs["budget_markdown"]) as temporary:
        Path(temporary).write_text(budget_markdown(pd.read_csv(outputs["budget"])))
    arrays = {}
    for summary, path in zip(loaded, errors):
        with np.load(path) as data:
            arrays[(summary["encoding"], summary["target"], summary["patient"])] = dict(data)
    models = _models(loaded)
    patients = list(dict.fromkeys(s["patient"] for s in loaded))
    from ecgcohort.surrogate import figures

    figures.error_cdfs(arrays, models, patients, outputs["cdf"])
    figures.electrode_errors(arrays, models, patients, outputs["electrodes"])
    figures.torso_maps(arrays, models, patients, evaluation["ecg_scenarios"], outputs["torso_map"])
    figures.ecg_overlays(arrays, models, patients[0], evaluation["ecg_scenarios"], outputs["ecg"])
    curves = {label: pd.read_csv(path) for label, path in zip(trainings, losses)}
    figures.error_budget(pd.read_csv(outputs["budget"]), outputs["budget_figure"], curves)
    log.info("Table 1 (%d models, %d test patients):\n%s", len(models), len(patients), table1_markdown(table))
    overall = transfer[(transfer["lead"] == "all") & (transfer["phase"] == "beat")]
    log.info("error budget:\n%s", budget.to_string(index=False))
    log.info("ECG transfer (beat, mean over leads):\n%s", overall.drop(columns=["phase", "lead"]).to_string(index=False))
