"""Figures of the inverse benchmark: per-patient previews (surfaces and transfer matrix, the
ground-truth dynamics) and paper 2's Figs. 9–11 (metrics by noise level, heart-surface maps at
one instant, time series at one node)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ecgcohort.io import atomic_path

METHOD_LABELS = {"tikhonov_0th": "Tikh 0th", "tikhonov_2nd": "Tikh 2nd", "stre": "STRE", "ep_dl": "EP-DL",
                 "eand_arn": "EAND-ARN"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=110, format="png")
    _pyplot().close(fig)


def _surface(ax, points: np.ndarray, faces: np.ndarray, values: np.ndarray, vmin: float, vmax: float,
             cmap: str = "viridis"):
    """A triangle surface coloured by nodal ``values`` (face means) on a 3-D axis."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    plt = _pyplot()
    colours = plt.get_cmap(cmap)((values[faces].mean(axis=1) - vmin) / max(vmax - vmin, 1e-12))
    collection = Poly3DCollection(points[faces], facecolors=colours, edgecolors="none")
    ax.add_collection3d(collection)
    centre, half = points.mean(axis=0), np.ptp(points, axis=0).max() / 2
    for axis, c in zip("xyz", centre):
        getattr(ax, f"set_{axis}lim")(c - half, c + half)
    ax.view_init(elev=15, azim=-70)
    ax.set_axis_off()


def plot_surfaces(surfaces, transfer: np.ndarray, path: str | Path, title: str) -> None:
    """The remeshed heart surface, the measurement points, and the singular values of R."""
    plt = _pyplot()
    fig = plt.figure(figsize=(11, 4.2))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    heart = surfaces.heart
    _surface(ax, heart.points, heart.faces, heart.points[:, 2], heart.points[:, 2].min(), heart.points[:, 2].max(),
             cmap="Reds")
    body = surfaces.measurement_points
    ax.scatter(*body.T, s=3, c="k")
    centre, half = body.mean(axis=0), np.ptp(body, axis=0).max() / 2
    for axis, c in zip("xyz", centre):
        getattr(ax, f"set_{axis}lim")(c - half, c + half)
    ax.set_title("heart surface and measurement points", fontsize=9)
    ax = fig.add_subplot(1, 2, 2)
    singular = np.linalg.svd(transfer, compute_uv=False)
    ax.semilogy(singular / singular[0], ".", ms=3)
    ax.set_xlabel("index")
    ax.set_ylabel("singular value of R / largest")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"R: {transfer.shape[0]} × {transfer.shape[1]}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_dynamics(heart, truth, path: str | Path, title: str) -> None:
    """The activation map of the ground truth on the heart surface and u at a few nodes."""
    plt = _pyplot()
    fig = plt.figure(figsize=(11, 4.2))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    activation = np.nan_to_num(truth.activation, nan=np.nanmax(truth.activation))
    _surface(ax, heart.points, heart.faces, activation, activation.min(), activation.max(), cmap="jet_r")
    ax.set_title(f"activation: {activation.min():.1f}–{activation.max():.1f} time units", fontsize=9)
    ax = fig.add_subplot(1, 2, 2)
    order = np.argsort(activation)
    for node in order[np.linspace(0, len(order) - 1, 5).astype(int)]:
        ax.plot(truth.times, truth.u[node], lw=1, label=f"node {node} (τ = {activation[node]:.1f})")
    ax.set_xlabel("time (model units)")
    ax.set_ylabel("u")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_metrics(summary, paper: Mapping[str, Mapping[float, Mapping[str, float]]], path: str | Path) -> None:
    """Fig. 9: RE, MSE and CC (mean ± sd over repeats and patients) per method and noise
    level, the paper's values as black markers where published."""
    plt = _pyplot()
    methods = list(dict.fromkeys(summary["method"]))
    noises = sorted(set(summary["noise"]))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    width = 0.8 / max(len(methods), 1)
    for ax, metric in zip(axes, ("re", "mse", "cc")):
        for i, method in enumerate(methods):
            rows = summary[summary["method"] == method].set_index("noise").reindex(noises)
            x = np.arange(len(noises)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(x, rows[f"{metric}_mean"], width, yerr=rows[f"{metric}_sd"], label=METHOD_LABELS.get(method, method),
                   capsize=2)
            published = [paper.get(method, {}).get(noise, {}).get(metric, np.nan) for noise in noises]
            ax.plot(x, published, "k_", ms=12, mew=2, label="paper" if i == 0 and metric == "re" else None)
        ax.set_xticks(np.arange(len(noises)))
        ax.set_xticklabels([f"σ = {n:g}" for n in noises])
        ax.set_title(metric.upper())
        ax.grid(True, axis="y", alpha=0.3)
        if metric == "cc":
            ax.set_ylim(max(0.0, np.nanmin(summary["cc_mean"]) - 0.05), 1.0)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def snapshot_instant(truth) -> int:
    """The instant when about half the heart surface is activated (mid-depolarisation)."""
    target = np.nanmedian(truth.activation)
    return int(np.argmin(np.abs(truth.times - target)))


def plot_maps(heart, truth, estimates: Mapping[str, np.ndarray], noises: Sequence[float], path: str | Path,
              title: str) -> None:
    """Fig. 10: u at one instant on the heart surface — the reference and each method (columns)
    at each noise level (rows); ``estimates[method]`` is (noise, n, T), the best repeat."""
    plt = _pyplot()
    instant = snapshot_instant(truth)
    methods = list(estimates)
    fig = plt.figure(figsize=(2.2 * (len(methods) + 1), 2.0 * len(noises) + 0.5))
    for row, noise in enumerate(noises):
        ax = fig.add_subplot(len(noises), len(methods) + 1, row * (len(methods) + 1) + 1, projection="3d")
        _surface(ax, heart.points, heart.faces, truth.u[:, instant], 0.0, 1.0)
        ax.set_title("reference" if row == 0 else "", fontsize=8)
        ax.text2D(0.0, 0.5, f"σ = {noise:g}", transform=ax.transAxes, rotation=90, fontsize=8, va="center")
        for column, method in enumerate(methods):
            ax = fig.add_subplot(len(noises), len(methods) + 1, row * (len(methods) + 1) + column + 2, projection="3d")
            _surface(ax, heart.points, heart.faces, estimates[method][row][:, instant], 0.0, 1.0)
            if row == 0:
                ax.set_title(METHOD_LABELS.get(method, method), fontsize=8)
    fig.suptitle(f"{title}: u at t = {truth.times[instant]:.2f} time units (colour 0–1)", fontsize=9)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.88, bottom=0.02, wspace=0.0, hspace=0.0)
    _save(fig, path)


def plot_series(truth, estimates: Mapping[str, np.ndarray], noises: Sequence[float], path: str | Path,
                title: str) -> None:
    """Fig. 11: u(t) at one node (median activation time) — reference and each method, one
    panel per noise level."""
    plt = _pyplot()
    node = int(np.argmin(np.abs(truth.activation - np.nanmedian(truth.activation))))
    fig, axes = plt.subplots(1, len(noises), figsize=(4.5 * len(noises), 3.4), squeeze=False)
    for ax, (row, noise) in zip(axes[0], enumerate(noises)):
        ax.plot(truth.times, truth.u[node], "k", lw=2, label="reference")
        for method, estimate in estimates.items():
            ax.plot(truth.times, estimate[row][node], lw=1, label=METHOD_LABELS.get(method, method))
        ax.set_title(f"σ = {noise:g}", fontsize=9)
        ax.set_xlabel("time (model units)")
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel(f"u at node {node}")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
