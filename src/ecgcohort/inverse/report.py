"""The fan-in of the inverse benchmark (rule ``inverse_benchmark``): every repeat's metrics in
one table, mean ± sd over repeats and patients per source, method and setting (mismatch and
noise), paper 2's published values beside them (labelled as the paper's: its own simulation,
with the inverse crime, and absolute noise σ), the timing table and the figures."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ecgcohort.inverse.models import MATCHED, Mismatch
from ecgcohort.inverse.noise import NoiseModel
from ecgcohort.io import atomic_path

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: paper 2, section IV-C (σ = 0.01 and 0.1; the paper gives no σ = 0.05 values in its text)
PAPER: dict[str, dict[float, dict[str, float]]] = {
    "tikhonov_2nd": {0.01: {"re": 0.2666, "mse": 0.0225, "cc": 0.9413}, 0.1: {"re": 0.4625, "mse": 0.0681, "cc": 0.8401}},
    "stre": {0.01: {"re": 0.2185, "cc": 0.9606}, 0.1: {"re": 0.2481, "cc": 0.9486}},
    "ep_dl": {0.01: {"re": 0.1435, "mse": 0.0066, "cc": 0.9816}, 0.1: {"re": 0.1585, "mse": 0.0080, "cc": 0.9793}},
    "eand_arn": {0.01: {"re": 0.0992, "mse": 0.0031, "cc": 0.9919}, 0.1: {"re": 0.1303, "mse": 0.0055, "cc": 0.9859}},
}
METRICS = ("re", "mse", "cc", "re_depolarisation", "spatial_cc", "temporal_cc", "activation_mae_ms", "activation_cc",
           "localisation_mm", "seconds")
#: measured-data ranges the crime-free rows are read against (docs/methods/inverse.md cites them)
LITERATURE = ("Tikhonov on measured data: potential correlation 0.60-0.64 (Bear et al. 2018, pig hearts, "
              "FEM/BEM/MFS); pacing sites localised to 7.7-10.8 mm in patients (Revishvili et al. 2015)")


def failed_runs(metrics) -> "pd.Series":
    """Boolean per row of a metrics table: the repeats the zero-map detector failed (``status``
    other than ``ok``; a table recorded before the column existed has none)."""
    if "status" not in metrics.columns:
        return metrics["method"].map(lambda _: False)
    return metrics["status"].fillna("ok").astype(str) != "ok"


def summarize(metrics):
    """Mean and sd over the scored repeats and patients per (source, method, setting) of a
    metrics table, in the order the settings were run; ``runs`` counts every repeat, ``failed``
    those the zero-map detector failed (their metrics are empty and enter no mean), ``quantity``
    what the method reconstructs (potential or excitation)."""
    metrics = metrics.assign(failed=failed_runs(metrics))
    if "quantity" not in metrics.columns:
        metrics = metrics.assign(quantity="potential")
    grouped = metrics.groupby(["source", "method", "setting"], sort=False)
    summary = grouped[list(METRICS)].agg(["mean", "std"])
    summary.columns = [f"{name}_{'sd' if stat == 'std' else 'mean'}" for name, stat in summary.columns]
    summary["mismatch"] = grouped["mismatch"].first()
    summary["noise"] = grouped["noise"].first()
    summary["quantity"] = grouped["quantity"].first()
    summary["runs"] = grouped.size()
    summary["failed"] = grouped["failed"].sum().astype(int)
    summary["patients"] = grouped["patient"].nunique()
    return summary.reset_index().fillna({f"{m}_sd": 0.0 for m in METRICS})


#: the benchmark's axes: a field of a mismatch or noise model, and how a figure labels it
AXES = (("shift_mm", "heart shift (mm)"), ("rotation_deg", "heart rotation (°)"),
        ("electrode_jitter_mm", "electrode jitter (mm)"), ("snr_db", "SNR (dB)"))


#: the mismatch and noise fields every summary row carries (the axes' values)
SETTING_FIELDS = ("crime", "shift_mm", "rotation_deg", "electrode_jitter_mm", "snr_db", "correlated",
                  "correlation_length_mm", "baseline_wander")


def with_setting_fields(summary, mismatches: Mapping[str, Mismatch], noise_models: Mapping[str, NoiseModel]):
    """The summary with each row's mismatch and noise fields (:data:`SETTING_FIELDS`) as columns."""
    rows = [{**asdict(noise_models[noise]), **asdict(mismatches[mismatch])}
            for mismatch, noise in zip(summary["mismatch"], summary["noise"])]
    summary = summary.copy()
    for field in SETTING_FIELDS:
        summary[field] = [row[field] for row in rows]
    return summary


def setting_axes(summary) -> dict:
    """The summary's rows along each axis of :data:`AXES`: for each axis, the largest set of
    crime-free settings that differ in that field alone (every other field of
    :data:`SETTING_FIELDS` equal), with the field's value as a column ``value`` (sorted). Axes
    with fewer than two values are left out, so a one-setting run, or a summary recorded before
    the fields were stored, has none."""
    if not set(SETTING_FIELDS) <= set(summary.columns):
        return {}
    rows = summary[~summary["crime"].astype(bool)]
    fields = {setting: dict(zip(SETTING_FIELDS[1:], values)) for setting, *values in
              rows[["setting", *SETTING_FIELDS[1:]]].drop_duplicates("setting").itertuples(index=False)}
    axes = {}
    for field, label in AXES:
        groups: dict[tuple, dict[str, float]] = {}
        for setting, values in fields.items():
            rest = tuple(sorted((k, v) for k, v in values.items() if k != field))
            groups.setdefault(rest, {})[setting] = values[field]
        best = max(groups.values(), key=lambda group: len(set(group.values())), default={})
        if len(set(best.values())) >= 2:
            chosen = rows[rows["setting"].isin(best)].copy()
            chosen["value"] = chosen["setting"].map(best)
            axes[label] = chosen.sort_values("value", kind="stable")
    return axes


def axes_markdown(axes: Mapping[str, "pd.DataFrame"]) -> str:
    """Per axis, RE / CC / activation error (mean ± sd) per method against the axis value."""
    lines: list[str] = []
    for label, rows in axes.items():
        for source, by_source in rows.groupby("source", sort=False):
            values = list(dict.fromkeys(by_source["value"]))
            lines += [f"**{label}, {source}**", "", "| method | " + " | ".join(f"{v:g}" for v in values) + " |",
                      "|---|" + "---|" * len(values)]
            for method, by_method in by_source.groupby("method", sort=False):
                cells = []
                for value in values:
                    row = by_method[by_method["value"] == value].iloc[0]
                    cells.append(f"{_cell(row.re_mean, row.re_sd, 2)} / {_cell(row.cc_mean, row.cc_sd, 2)} / "
                                 f"{_cell(row.activation_mae_ms_mean, row.activation_mae_ms_sd, 0)}")
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
            lines.append("")
    if lines:
        lines = ["Per axis (RE / CC / activation MAE in ms, mean ± sd; settings that differ in that "
                 "field alone, the setting's other fields fixed):", ""] + lines
    return "\n".join(lines)


def _cell(mean: float, sd: float, digits: int) -> str:
    return "–" if not np.isfinite(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(summary) -> str:
    """The summary as a Markdown table (the matched row labelled as the inverse crime), paper
    2's published rows, then the table per axis where the run varied one (:func:`setting_axes`)."""
    # a summary recorded before the zero-map detector has no failed column: rendered as it was
    detected = "failed" in summary.columns
    lines = ["| source | method | setting | RE | CC | spatial CC | temporal CC | activation MAE (ms) | "
             "activation r | pacing site (mm) | s per run | runs (patients) |" + (" failed |" if detected else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if detected else "")]
    for row in summary.itertuples():
        label = f"{row.setting} (inverse crime)" if row.mismatch == MATCHED else row.setting
        method = (f"{row.method} (V_m)" if getattr(row, "quantity", "potential") == "excitation" else row.method)
        lines.append(f"| {row.source} | {method} | {label} | {_cell(row.re_mean, row.re_sd, 3)} | "
                     f"{_cell(row.cc_mean, row.cc_sd, 3)} | {_cell(row.spatial_cc_mean, row.spatial_cc_sd, 3)} | "
                     f"{_cell(row.temporal_cc_mean, row.temporal_cc_sd, 3)} | "
                     f"{_cell(row.activation_mae_ms_mean, row.activation_mae_ms_sd, 1)} | "
                     f"{_cell(row.activation_cc_mean, row.activation_cc_sd, 2)} | "
                     f"{_cell(row.localisation_mm_mean, row.localisation_mm_sd, 1)} | {row.seconds_mean:.1f} | "
                     f"{row.runs} ({row.patients}) |" + (f" {int(row.failed)} |" if detected else ""))
    if detected:
        lines += ["", "(V_m): the method reconstructs the normalised transmembrane potential (its prior's u) through "
              "the equivalent double layer and is scored against the truth's normalised V_m, activation times "
              "from upstrokes; the others reconstruct the heart-surface potential. failed: repeats the zero-map "
              "detector rejected (never scored; named in metrics.csv's status and the job's log)."]
    lines += ["", "Paper 2's published values (its own Aliev–Panfilov simulation on one heart, data made with the "
              "matrix it inverts, absolute noise σ in units of u; not comparable one to one):", "",
              "| method | σ | RE | MSE | CC |", "|---|---|---|---|---|"]
    for method, levels in PAPER.items():
        for noise, values in levels.items():
            cells = [f"{values[m]:.4g}" if m in values else "–" for m in ("re", "mse", "cc")]
            lines.append(f"| {method} | {noise:g} | " + " | ".join(cells) + " |")
    lines += ["", f"Measured-data ranges for the crime-free rows: {LITERATURE}."]
    axes = axes_markdown(setting_axes(summary))
    return "\n".join(lines) + "\n" + ("\n" + axes if axes else "")


#: Columns of the paper-setting benchmark's table (benchmarks/inverse_paper_setting.py --out).
PAPER_SETTING_COLUMNS = ("sigma", "method", "repeat", "re", "mse", "cc", "activation_mae_ms", "seconds", "epochs",
                         "stopped", "status")


def paper_setting_markdown(table: "pd.DataFrame") -> str:
    """The paper-setting benchmark's rows (:data:`PAPER_SETTING_COLUMNS`: σ in units of u, RE,
    MSE, CC, activation MAE in ms, seconds, epochs and why training stopped) with paper 2's
    published RE / MSE / CC beside each, as Markdown."""
    missing = sorted(set(PAPER_SETTING_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(f"the paper-setting table lacks columns {missing}")
    lines = ["| σ | method | repeat | RE | MSE | CC | activation MAE (ms) | s | epochs | stopped | status | "
             "paper RE / MSE / CC |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        published = PAPER.get(row.method, {}).get(float(row.sigma), {})
        paper = " / ".join(f"{published[key]:.4g}" if key in published else "–" for key in ("re", "mse", "cc"))
        # None or NaN (read back from the CSV): a method without training
        epochs = "–" if row.epochs is None or row.epochs != row.epochs else f"{int(row.epochs)}"
        stopped = "–" if row.stopped is None or row.stopped != row.stopped else str(row.stopped)
        lines.append(f"| {row.sigma:g} | {row.method} | {int(row.repeat)} | {row.re:.4f} | {row.mse:.4g} | "
                     f"{row.cc:.4f} | {row.activation_mae_ms:.1f} | {row.seconds:.1f} | {epochs} | {stopped} | "
                     f"{row.status} | {paper} |")
    return "\n".join(lines) + "\n"


def inverse_benchmark_job(*, metrics_csvs: Sequence[str | Path], estimates_npzs: Sequence[str | Path],
                          keys: Sequence[tuple[str, str, str]], dynamics_npzs: dict[str, str | Path],
                          surfaces_npzs: dict[str, str | Path], model_npzs: dict[str, str | Path],
                          out_metrics: str | Path, out_summary: str | Path, out_markdown: str | Path,
                          out_timing: str | Path, out_fig9: str | Path, out_fig10: str | Path,
                          out_fig11: str | Path, out_activation: str | Path, out_axes: str | Path,
                          mismatches: Mapping[str, Mapping], noise_models: Mapping[str, Mapping],
                          time_unit_ms: float = 1.0) -> None:
    """Combine every reconstruction job. ``keys`` are the (patient, source, method) of
    ``metrics_csvs`` / ``estimates_npzs``; ``dynamics_npzs`` maps ``patient/source`` to its
    ground truth, ``surfaces_npzs`` patients to theirs and ``model_npzs`` ``patient/mismatch``
    to the inversion's models; ``mismatches`` and ``noise_models`` are the config's sections
    (the axes' values); ``time_unit_ms`` puts the activation figure in ms."""
    import pandas as pd

    from ecgcohort.inverse.figures import plot_activation, plot_axes, plot_maps, plot_metrics, plot_series
    from ecgcohort.inverse.jobs import load_dynamics, load_model, load_reciprocity
    from ecgcohort.inverse.surfaces import load_surfaces

    metrics = pd.concat([pd.read_csv(path) for path in metrics_csvs], ignore_index=True)
    summary = with_setting_fields(
        summarize(metrics), {name: Mismatch.from_config(name, section) for name, section in mismatches.items()},
        {name: NoiseModel.from_config(name, section) for name, section in noise_models.items()})
    axes = setting_axes(summary)
    for frame, path in ((metrics, out_metrics), (summary, out_summary)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False, float_format="%.6g")
    # the table from the CSV as written (6 digits), so the recorded table is its CSV rendered again
    with atomic_path(out_markdown) as temporary:
        Path(temporary).write_text(markdown_table(pd.read_csv(out_summary)))

    timing = []
    for key, path in model_npzs.items():
        figures = load_model(path).figures
        timing.append({"patient": key.split("/")[0], "step": f"inversion model {key.split('/')[1]}",
                       "seconds": figures["total_s"],
                       "detail": json.dumps({k: figures[k] for k in ("mesh_s", "factorisation_s", "solve_s",
                                                                     "volume_nodes", "body_nodes")})})
    for key, path in dynamics_npzs.items():
        reciprocity = load_reciprocity(path)
        if reciprocity:
            timing.append({"patient": key.split("/")[0], "step": f"truth {key.split('/')[1]}", "seconds": float("nan"),
                           "detail": json.dumps(reciprocity)})
    for (patient, method), rows in metrics.groupby(["patient", "method"], sort=False):
        timing.append({"patient": patient, "step": method, "seconds": float(rows["seconds"].mean()),
                       "detail": f"mean over {len(rows)} runs"})
    with atomic_path(out_timing) as temporary:
        pd.DataFrame(timing).to_csv(temporary, index=False, float_format="%.4g")

    first_source = summary["source"].iloc[0]
    plot_metrics(summary[summary["source"] == first_source], out_fig9)
    plot_axes({label: rows[rows["source"] == first_source] for label, rows in axes.items()}, out_axes, first_source)
    patient, source = keys[0][0], keys[0][1]
    truth, _ = load_dynamics(dynamics_npzs[f"{patient}/{source}"])
    heart = load_surfaces(surfaces_npzs[patient]).heart
    estimates, settings = {}, None
    for (p, s, method), path in zip(keys, estimates_npzs):
        if (p, s) == (patient, source):
            with np.load(path) as data:
                estimates[method], settings = data["best_estimate"], data["settings"].tolist()
    title = f"{patient}, {source}, best repeat"
    # the potentials' figures show the methods that reconstruct potentials; the activation map all
    shown = metrics[(metrics["patient"] == patient) & (metrics["source"] == source)]
    excitation = (set(shown.loc[shown["quantity"] == "excitation", "method"]) if "quantity" in shown.columns
                  else set())
    potentials = {method: estimate for method, estimate in estimates.items() if method not in excitation}
    plot_maps(heart, truth, potentials, settings, out_fig10, title)
    plot_series(truth, potentials, settings, out_fig11, title)
    plot_activation(heart, truth, estimates, settings, out_activation, title, time_unit_ms, sorted(excitation))
    failed = metrics[failed_runs(metrics)]
    for row in failed.itertuples():
        log.warning("inverse benchmark: %s %s %s %s repeat %d failed and is not scored: %s", row.patient, row.source,
                    row.method, row.setting, row.repeat, row.status)
    log.info("inverse benchmark: %d runs of %d methods on %d patients\n%s", len(metrics), metrics["method"].nunique(),
             metrics["patient"].nunique(), markdown_table(summary))
