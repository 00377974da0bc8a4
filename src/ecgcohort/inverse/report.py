"""The fan-in of the inverse benchmark (rule ``inverse_benchmark``): every repeat's metrics in
one table, mean ± sd over repeats and patients per source, method and noise level beside
paper 2's published values, the timing table and Figs. 9–11."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)

#: paper 2, section IV-C (σ = 0.01 and 0.1; the paper gives no σ = 0.05 values in its text)
PAPER: dict[str, dict[float, dict[str, float]]] = {
    "tikhonov_2nd": {0.01: {"re": 0.2666, "mse": 0.0225, "cc": 0.9413}, 0.1: {"re": 0.4625, "mse": 0.0681, "cc": 0.8401}},
    "stre": {0.01: {"re": 0.2185, "cc": 0.9606}, 0.1: {"re": 0.2481, "cc": 0.9486}},
    "ep_dl": {0.01: {"re": 0.1435, "mse": 0.0066, "cc": 0.9816}, 0.1: {"re": 0.1585, "mse": 0.0080, "cc": 0.9793}},
    "eand_arn": {0.01: {"re": 0.0992, "mse": 0.0031, "cc": 0.9919}, 0.1: {"re": 0.1303, "mse": 0.0055, "cc": 0.9859}},
}
METRICS = ("re", "mse", "cc", "re_depolarisation", "seconds")


def summarize(metrics):
    """Mean and sd over repeats and patients per (source, method, noise) of a metrics table."""
    grouped = metrics.groupby(["source", "method", "noise"], sort=False)
    summary = grouped[list(METRICS)].agg(["mean", "std"])
    summary.columns = [f"{name}_{'sd' if stat == 'std' else 'mean'}" for name, stat in summary.columns]
    summary["runs"] = grouped.size()
    summary["patients"] = grouped["patient"].nunique()
    return summary.reset_index().fillna({f"{m}_sd": 0.0 for m in METRICS})


def markdown_table(summary) -> str:
    """The summary as a markdown table with the paper's rows beside ours."""
    lines = ["| source | method | σ | RE | MSE | CC | RE (depolarisation) | s per run | runs (patients) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in summary.itertuples():
        lines.append(f"| {row.source} | {row.method} | {row.noise:g} | {row.re_mean:.4f} ± {row.re_sd:.4f} | "
                     f"{row.mse_mean:.4g} ± {row.mse_sd:.2g} | {row.cc_mean:.4f} ± {row.cc_sd:.4f} | "
                     f"{row.re_depolarisation_mean:.4f} ± {row.re_depolarisation_sd:.4f} | {row.seconds_mean:.1f} | "
                     f"{row.runs} ({row.patients}) |")
    for method, levels in PAPER.items():
        for noise, values in levels.items():
            cells = [f"{values[m]:.4g}" if m in values else "–" for m in ("re", "mse", "cc")]
            lines.append(f"| paper 2 (its geometry) | {method} | {noise:g} | " + " | ".join(cells) + " | – | – | 10 (1) |")
    return "\n".join(lines) + "\n"


def inverse_benchmark_job(*, metrics_csvs: Sequence[str | Path], estimates_npzs: Sequence[str | Path],
                          keys: Sequence[tuple[str, str, str]], dynamics_npzs: dict[str, str | Path],
                          surfaces_npzs: dict[str, str | Path], transfer_npzs: dict[str, str | Path],
                          out_metrics: str | Path, out_summary: str | Path, out_markdown: str | Path,
                          out_timing: str | Path, out_fig9: str | Path, out_fig10: str | Path,
                          out_fig11: str | Path) -> None:
    """Combine every reconstruction job. ``keys`` are the (patient, source, method) of
    ``metrics_csvs`` / ``estimates_npzs``; ``dynamics_npzs`` maps ``patient/source`` to its
    ground truth, ``surfaces_npzs`` and ``transfer_npzs`` map patients to theirs."""
    import pandas as pd

    from ecgcohort.inverse.figures import plot_maps, plot_metrics, plot_series
    from ecgcohort.inverse.jobs import load_dynamics, load_transfer
    from ecgcohort.inverse.surfaces import load_surfaces

    metrics = pd.concat([pd.read_csv(path) for path in metrics_csvs], ignore_index=True)
    summary = summarize(metrics)
    for frame, path in ((metrics, out_metrics), (summary, out_summary)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False, float_format="%.6g")
    with atomic_path(out_markdown) as temporary:
        Path(temporary).write_text(markdown_table(summary))

    timing = []
    for patient, path in transfer_npzs.items():
        _, stats = load_transfer(path)
        timing.append({"patient": patient, "step": "transfer matrix", "seconds": stats["assembly_s"]
                       + stats["factorisation_s"] + stats["solve_s"] + stats["interpolation_s"],
                       "detail": json.dumps({k: stats[k] for k in ("assembly_s", "factorisation_s", "solve_s",
                                                                   "volume_nodes", "dirichlet_nodes", "block")})})
    for (patient, method), rows in metrics.groupby(["patient", "method"], sort=False):
        timing.append({"patient": patient, "step": method, "seconds": float(rows["seconds"].mean()),
                       "detail": f"mean over {len(rows)} runs"})
    with atomic_path(out_timing) as temporary:
        pd.DataFrame(timing).to_csv(temporary, index=False, float_format="%.4g")

    plot_metrics(summary[summary["source"] == summary["source"].iloc[0]], PAPER, out_fig9)
    patient, source = keys[0][0], keys[0][1]
    truth, _ = load_dynamics(dynamics_npzs[f"{patient}/{source}"])
    heart = load_surfaces(surfaces_npzs[patient]).heart
    estimates, noises = {}, None
    for (p, s, method), path in zip(keys, estimates_npzs):
        if (p, s) == (patient, source):
            with np.load(path) as data:
                estimates[method], noises = data["best_estimate"], data["noise"].tolist()
    title = f"{patient}, {source}, best repeat"
    plot_maps(heart, truth, estimates, noises, out_fig10, title)
    plot_series(truth, estimates, noises, out_fig11, title)
    log.info("inverse benchmark: %d runs of %d methods on %d patients\n%s", len(metrics), metrics["method"].nunique(),
             metrics["patient"].nunique(), markdown_table(summary))
