"""Figures of the inverse benchmark: per-patient previews (surfaces and transfer matrix, the
ground-truth dynamics) and the benchmark's (after paper 2's Figs. 9–11: metrics per setting,
heart-surface maps at one instant, time series at one node; and the activation maps read from
the reconstructed electrograms beside the truth's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.io import agg_pyplot, save_png

METHOD_LABELS = {"tikhonov_0th": "Tikh 0th", "tikhonov_2nd": "Tikh 2nd", "stre": "STRE", "ep_dl": "EP-DL",
                 "eand_arn": "EAND-ARN"}


def _surface(ax, points: np.ndarray, faces: np.ndarray, values: np.ndarray, vmin: float, vmax: float,
             cmap: str = "viridis"):
    """A triangle surface coloured by nodal ``values`` (face means) on a 3-D axis."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    plt = agg_pyplot()
    colours = plt.get_cmap(cmap)((values[faces].mean(axis=1) - vmin) / max(vmax - vmin, 1e-12))
    collection = Poly3DCollection(points[faces], facecolors=colours, edgecolors="none")
    ax.add_collection3d(collection)
    centre, half = points.mean(axis=0), np.ptp(points, axis=0).max() / 2
    for axis, c in zip("xyz", centre):
        getattr(ax, f"set_{axis}lim")(c - half, c + half)
    ax.view_init(elev=15, azim=-70)
    ax.set_axis_off()


def plot_surfaces(surfaces, transfer: np.ndarray | None, path: str | Path, title: str) -> None:
    """The remeshed heart surface and the measurement points, and the singular values of a
    transfer matrix R where one is given."""
    plt = agg_pyplot()
    fig = plt.figure(figsize=(11 if transfer is not None else 5.5, 4.2))
    ax = fig.add_subplot(1, 2 if transfer is not None else 1, 1, projection="3d")
    heart = surfaces.heart
    _surface(ax, heart.points, heart.faces, heart.points[:, 2], heart.points[:, 2].min(), heart.points[:, 2].max(),
             cmap="Reds")
    body = surfaces.measurement_points
    ax.scatter(*body.T, s=3, c="k")
    centre, half = body.mean(axis=0), np.ptp(body, axis=0).max() / 2
    for axis, c in zip("xyz", centre):
        getattr(ax, f"set_{axis}lim")(c - half, c + half)
    ax.set_title("heart surface and measurement points", fontsize=9)
    if transfer is not None:
        ax = fig.add_subplot(1, 2, 2)
        singular = np.linalg.svd(transfer, compute_uv=False)
        ax.semilogy(singular / singular[0], ".", ms=3)
        ax.set_xlabel("index")
        ax.set_ylabel("singular value of R / largest")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"R: {transfer.shape[0]} × {transfer.shape[1]}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def plot_dynamics(heart, truth, path: str | Path, title: str) -> None:
    """The activation map of the ground truth on the heart surface and u at a few nodes."""
    plt = agg_pyplot()
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
    ax.set_ylabel(f"u ({truth.units})")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def plot_metrics(summary, path: str | Path) -> None:
    """Metrics per setting (mean ± sd over repeats and patients), one bar per method: RE, CC,
    spatial CC and the activation-time error, settings in the order they were run (the
    matched, inverse-crime row first where present)."""
    plt = agg_pyplot()
    methods = list(dict.fromkeys(summary["method"]))
    settings = list(dict.fromkeys(summary["setting"]))
    fig, axes = plt.subplots(1, 4, figsize=(4.2 * 4, 4.2))
    width = 0.8 / max(len(methods), 1)
    for ax, (metric, label) in zip(axes, (("re", "RE"), ("cc", "CC"), ("spatial_cc", "spatial CC (depolarisation)"),
                                          ("activation_mae_ms", "activation MAE (ms)"))):
        for i, method in enumerate(methods):
            rows = summary[summary["method"] == method].set_index("setting").reindex(settings)
            x = np.arange(len(settings)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(x, rows[f"{metric}_mean"], width, yerr=rows[f"{metric}_sd"], label=METHOD_LABELS.get(method, method),
                   capsize=2)
        ax.set_xticks(np.arange(len(settings)))
        ax.set_xticklabels(settings, rotation=35, ha="right", fontsize=7)
        ax.set_title(label, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def plot_axes(axes: Mapping[str, Any], path: str | Path, source: str) -> None:
    """One column per benchmark axis (heart shift, rotation, electrode jitter, SNR), RE, CC and
    the activation-time error against the axis value, one line per method (mean ± sd over
    repeats and patients). A run that varies no axis gets a panel saying so."""
    plt = agg_pyplot()
    if not axes:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no axis varied: every crime-free setting differs in more than one field\n"
                "(config/inverse_axes.yaml runs every axis)", ha="center", va="center", fontsize=8)
        save_png(fig, path)
        return
    metrics = (("re", "RE"), ("cc", "CC"), ("activation_mae_ms", "activation MAE (ms)"))
    fig, grid = plt.subplots(len(metrics), len(axes), figsize=(3.6 * len(axes), 2.8 * len(metrics)), squeeze=False,
                             sharex="col")
    for column, (label, rows) in enumerate(axes.items()):
        for row, (metric, metric_label) in enumerate(metrics):
            ax = grid[row, column]
            for method, by_method in rows.groupby("method", sort=False):
                ax.errorbar(by_method["value"], by_method[f"{metric}_mean"], yerr=by_method[f"{metric}_sd"],
                            marker="o", capsize=2, label=METHOD_LABELS.get(method, method))
            ax.grid(True, alpha=0.3)
            if column == 0:
                ax.set_ylabel(metric_label)
        grid[-1, column].set_xlabel(label)
    grid[0, 0].legend(fontsize=7)
    fig.suptitle(f"Inverse benchmark per axis ({source}; crime-free settings that differ in one field)", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


def snapshot_instant(truth) -> int:
    """The instant when about half the heart surface is activated (mid-depolarisation)."""
    target = np.nanmedian(truth.activation)
    return int(np.argmin(np.abs(truth.times - target)))


def _range(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2, 98])
    return float(low), float(max(high, low + 1e-9))


def plot_maps(heart, truth, estimates: Mapping[str, np.ndarray], settings: Sequence[str], path: str | Path,
              title: str) -> None:
    """Heart-surface potentials at one instant: the truth and each method (columns) in each
    setting (rows), one colour scale (the truth's 2nd–98th percentile); ``estimates[method]``
    is (setting, n, T), the best repeat."""
    plt = agg_pyplot()
    instant = snapshot_instant(truth)
    vmin, vmax = _range(truth.u[:, instant])
    methods = list(estimates)
    fig = plt.figure(figsize=(2.2 * (len(methods) + 1), 2.0 * len(settings) + 0.5))
    for row, setting in enumerate(settings):
        ax = fig.add_subplot(len(settings), len(methods) + 1, row * (len(methods) + 1) + 1, projection="3d")
        _surface(ax, heart.points, heart.faces, truth.u[:, instant], vmin, vmax)
        ax.set_title("truth" if row == 0 else "", fontsize=8)
        ax.text2D(0.0, 0.5, setting, transform=ax.transAxes, rotation=90, fontsize=7, va="center")
        for column, method in enumerate(methods):
            ax = fig.add_subplot(len(settings), len(methods) + 1, row * (len(methods) + 1) + column + 2,
                                 projection="3d")
            _surface(ax, heart.points, heart.faces, estimates[method][row][:, instant], vmin, vmax)
            if row == 0:
                ax.set_title(METHOD_LABELS.get(method, method), fontsize=8)
    fig.suptitle(f"{title}: heart-surface potential at t = {truth.times[instant]:.2f} time units "
                 f"(colour {vmin:.3g} to {vmax:.3g} {truth.units})", fontsize=9)
    fig.subplots_adjust(left=0.03, right=0.99, top=0.88, bottom=0.02, wspace=0.0, hspace=0.0)
    save_png(fig, path)


def plot_series(truth, estimates: Mapping[str, np.ndarray], settings: Sequence[str], path: str | Path,
                title: str) -> None:
    """The electrogram at one node (median activation time): truth and each method, one panel
    per setting."""
    plt = agg_pyplot()
    node = int(np.argmin(np.abs(truth.activation - np.nanmedian(truth.activation))))
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 3.4), squeeze=False)
    for ax, (row, setting) in zip(axes[0], enumerate(settings)):
        ax.plot(truth.times, truth.u[node], "k", lw=2, label="truth")
        for method, estimate in estimates.items():
            ax.plot(truth.times, estimate[row][node], lw=1, label=METHOD_LABELS.get(method, method))
        ax.set_title(setting, fontsize=9)
        ax.set_xlabel("time (model units)")
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel(f"potential at node {node} ({truth.units})")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def plot_activation(heart, truth, estimates: Mapping[str, np.ndarray], settings: Sequence[str], path: str | Path,
                    title: str, time_unit_ms: float = 1.0, excitation_methods: Sequence[str] = ()) -> None:
    """Activation maps read from the electrograms (steepest downstroke of φ, upstroke of a
    transmembrane u — and of the ``excitation_methods``' normalised V_m), in ms (``time_unit_ms``
    per model time unit): the truth's and each method's in the last setting (the crime-free one
    where the matched row comes first), one colour scale, the pacing site starred."""
    from ecgcohort.inverse.metrics import activation_times

    plt = agg_pyplot()
    reference = truth.electrogram_activation * time_unit_ms
    vmin, vmax = _range(reference)
    methods = list(estimates)
    fig = plt.figure(figsize=(2.6 * (len(methods) + 1), 3.0))
    panels = [("truth", reference)] + [
        (METHOD_LABELS.get(m, m), activation_times(estimates[m][-1], truth.times, "transmembrane"
                                                   if m in excitation_methods else truth.polarity) * time_unit_ms)
        for m in methods]
    for column, (label, values) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), column + 1, projection="3d")
        ax.computed_zorder = False  # the star on top of the surface
        _surface(ax, heart.points, heart.faces, values, vmin, vmax, cmap="jet_r")
        for site in truth.sites_mm:
            ax.scatter(*site, c="k", s=60, marker="*", depthshade=False, zorder=10)
        ax.set_title(label, fontsize=8)
    fig.suptitle(f"{title}, {settings[-1]}: activation from the electrograms, {vmin:.0f} (red) to {vmax:.0f} ms "
                 "(blue); * pacing site", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.82, bottom=0.02, wspace=0.0)
    save_png(fig, path)
