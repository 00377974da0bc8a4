"""The fan-in of the inverse benchmark (rule ``inverse_benchmark``): every repeat's metrics in
one table, mean ± sd over repeats and patients per source, method and setting (mismatch and
noise), paper 2's published values beside them (labelled as the paper's: its own simulation,
with the inverse crime, and absolute noise σ), the timing table and the figures."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ecgcohort.inverse.models import MATCHED
from ecgcohort.io import atomic_path

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


def summarize(metrics):
    """Mean and sd over repeats and patients per (source, method, setting) of a metrics table,
    in the order the settings were run."""
    grouped = metrics.groupby(["source", "method", "setting"], sort=False)
    summary = grouped[list(METRICS)].agg(["mean", "std"])
    summary.columns = [f"{name}_{'sd' if stat == 'std' else 'mean'}" for name, stat in summary.columns]
    summary["mismatch"] = grouped["mismatch"].first()
    summary["noise"] = grouped["noise"].first()
    summary["runs"] = grouped.size()
    summary["patients"] = grouped["patient"].nunique()
    return summary.reset_index().fillna({f"{m}_sd": 0.0 for m in METRICS})


def _cell(mean: float, sd: float, digits: int) -> str:
    return "–" if not np.isfinite(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(summary) -> str:
    """The summary as a Markdown table (the matched row labelled as the inverse crime), then
    paper 2's published rows."""
    lines = ["| source | method | setting | RE | CC | spatial CC | temporal CC | activation MAE (ms) | "
             "activation r | pacing site (mm) | s per run | runs (patients) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary.itertuples():
        label = f"{row.setting} (inverse crime)" if row.mismatch == MATCHED else row.setting
        lines.append(f"| {row.source} | {row.method} | {label} | {_cell(row.re_mean, row.re_sd, 3)} | "
                     f"{_cell(row.cc_mean, row.cc_sd, 3)} | {_cell(row.spatial_cc_mean, row.spatial_cc_sd, 3)} | "
                     f"{_cell(row.temporal_cc_mean, row.temporal_cc_sd, 3)} | "
                     f"{_cell(row.activation_mae_ms_mean, row.activation_mae_ms_sd, 1)} | "
                     f"{_cell(row.activation_cc_mean, row.activation_cc_sd, 2)} | "
                     f"{_cell(row.localisation_mm_mean, row.localisation_mm_sd, 1)} | {row.seconds_mean:.1f} | "
                     f"{row.runs} ({row.patients}) |")
    lines += ["", "Paper 2's published values (its own Aliev–Panfilov simulation on one heart, data made with the "
              "matrix it inverts, absolute noise σ in units of u; not comparable one to one):", "",
              "| method | σ | RE | MSE | CC |", "|---|---|---|---|---|"]
    for method, levels in PAPER.items():
        for noise, values in levels.items():
            cells = [f"{values[m]:.4g}" if m in values else "–" for m in ("re", "mse", "cc")]
            lines.append(f"| {method} | {noise:g} | " + " | ".join(cells) + " |")
    lines += ["", f"Measured-data ranges for the crime-free rows: {LITERATURE}."]
    return "\n".join(lines) + "\n"


def inverse_benchmark_job(*, metrics_csvs: Sequence[str | Path], estimates_npzs: Sequence[str | Path],
                          keys: Sequence[tuple[str, str, str]], dynamics_npzs: dict[str, str | Path],
                          surfaces_npzs: dict[str, str | Path], model_npzs: dict[str, str | Path],
                          out_metrics: str | Path, out_summary: str | Path, out_markdown: str | Path,
                          out_timing: str | Path, out_fig9: str | Path, out_fig10: str | Path,
                          out_fig11: str | Path, out_activation: str | Path, time_unit_ms: float = 1.0) -> None:
    """Combine every reconstruction job. ``keys`` are the (patient, source, method) of
    ``metrics_csvs`` / ``estimates_npzs``; ``dynamics_npzs`` maps ``patient/source`` to its
    ground truth, ``surfaces_npzs`` patients to theirs and ``model_npzs`` ``patient/mismatch``
    to the inversion's models; ``time_unit_ms`` puts the activation figure in ms."""
    import pandas as pd

    from ecgcohort.inverse.figures import plot_activation, plot_maps, plot_metrics, plot_series
    from ecgcohort.inverse.jobs import load_dynamics, load_model, load_reciprocity
    from ecgcohort.inverse.surfaces import load_surfaces

    metrics = pd.concat([pd.read_csv(path) for path in metrics_csvs], ignore_index=True)
    summary = summarize(metrics)
    for frame, path in ((metrics, out_metrics), (summary, out_summary)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False, float_format="%.6g")
    with atomic_path(out_markdown) as temporary:
        Path(temporary).write_text(markdown_table(summary))

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

    plot_metrics(summary[summary["source"] == summary["source"].iloc[0]], out_fig9)
    patient, source = keys[0][0], keys[0][1]
    truth, _ = load_dynamics(dynamics_npzs[f"{patient}/{source}"])
    heart = load_surfaces(surfaces_npzs[patient]).heart
    estimates, settings = {}, None
    for (p, s, method), path in zip(keys, estimates_npzs):
        if (p, s) == (patient, source):
            with np.load(path) as data:
                estimates[method], settings = data["best_estimate"], data["settings"].tolist()
    title = f"{patient}, {source}, best repeat"
    plot_maps(heart, truth, estimates, settings, out_fig10, title)
    plot_series(truth, estimates, settings, out_fig11, title)
    plot_activation(heart, truth, estimates, settings, out_activation, title, time_unit_ms)
    log.info("inverse benchmark: %d runs of %d methods on %d patients\n%s", len(metrics), metrics["method"].nunique(),
             metrics["patient"].nunique(), markdown_table(summary))
