"""Figures of the ECG → activation stage: the recording sites on the heart (paper 3 Fig. 2),
per-site activation-time errors (Fig. 3c), predicted against true activation (Fig. 3b/d) and
V_m overlays (Fig. 4a–c)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ecgcohort.conduction.jobs import BACK_VIEW, FRONT_VIEW, _myocardium_grid
from ecgcohort.ecg2act.sites import RecordingSites
from ecgcohort.fibers.rule_based import MyocardialFibres
from ecgcohort.io import atomic_path, save_png
from ecgcohort.rendering import offscreen_plotter

LAYER_COLOURS = {"endo": "red", "epi": "royalblue", "mid": "gold"}


def plot_sites(fibres: MyocardialFibres, sites: RecordingSites, path: str | Path, title: str = "") -> None:
    """Anterior and posterior views of the translucent myocardium with the sites coloured by
    layer (endocardial red, epicardial blue, mid-wall yellow)."""
    import pyvista

    surface = _myocardium_grid(fibres).extract_surface(algorithm="dataset_surface")
    layers = np.array(sites.layer)
    plotter = offscreen_plotter(shape=(1, 2), window_size=(1400, 700))
    for column, (view, label) in enumerate(((FRONT_VIEW, "anterior"), (BACK_VIEW, "posterior"))):
        plotter.subplot(0, column)
        plotter.add_mesh(surface, color="lightgrey", opacity=0.35)
        for layer, colour in LAYER_COLOURS.items():
            chosen = layers == layer
            plotter.add_points(sites.positions_mm[chosen], color=colour, point_size=12, render_points_as_spheres=True,
                               label=f"{layer} ({int(chosen.sum())})")
        plotter.camera_position = view
        plotter.reset_camera()
        plotter.add_text(f"{title} ({label})", font_size=9)
        if column == 1:
            plotter.add_legend(bcolor="white", size=(0.2, 0.15))
    with atomic_path(path) as temporary:
        plotter.screenshot(str(temporary))
    plotter.close()


def site_error_boxes(errors_ms: Mapping[str, np.ndarray], labels: Sequence[str], path: str | Path,
                     every: int = 5) -> None:
    """Box plots of |predicted − true| activation time (ms) per site, every ``every``-th site,
    one panel per split (paper Fig. 3c shows 15 sites)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = np.arange(0, len(labels), every)
    figure, axes = plt.subplots(len(errors_ms), 1, figsize=(12, 3.2 * len(errors_ms)), squeeze=False)
    for axis, (split, errors) in zip(axes[:, 0], errors_ms.items()):
        axis.boxplot([np.abs(errors[:, k]) for k in chosen], showfliers=False)
        axis.set_xticks(np.arange(1, len(chosen) + 1), [f"{k + 1}" for k in chosen], fontsize=7)
        axis.set_ylabel("|error| (ms)")
        axis.set_title(f"Network I, {split}: activation-time error per site ({len(errors)} ECGs)", fontsize=9)
    axes[-1, 0].set_xlabel("site")
    figure.tight_layout()
    save_png(figure, path)


def activation_map_comparison(positions_mm: np.ndarray, true_ms: np.ndarray, predicted_ms: np.ndarray,
                              path: str | Path, title: str) -> None:
    """True and predicted activation times at the 75 sites, seen from the front (x–z) — paper
    Fig. 3b/d — and predicted against true."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    low, high = float(np.nanmin(true_ms)), float(np.nanmax(true_ms))
    for axis, values, name in ((axes[0], true_ms, "true"), (axes[1], predicted_ms, "predicted")):
        scatter = axis.scatter(positions_mm[:, 0], positions_mm[:, 2], c=values, cmap="jet_r", vmin=low, vmax=high,
                               s=40, edgecolors="k", linewidths=0.3)
        axis.set_title(f"{name} activation (ms)", fontsize=9)
        axis.set_xlabel("x (mm)")
        axis.set_ylabel("z (mm)")
        axis.invert_yaxis()
        axis.set_aspect("equal")
    figure.colorbar(scatter, ax=axes[:2], shrink=0.8)
    axes[2].scatter(true_ms, predicted_ms, s=10)
    axes[2].plot([low, high], [low, high], "k--", linewidth=0.8)
    axes[2].set_xlabel("true (ms)")
    axes[2].set_ylabel("predicted (ms)")
    axes[2].set_title(f"MAE {np.nanmean(np.abs(predicted_ms - true_ms)):.2f} ms", fontsize=9)
    figure.suptitle(title, fontsize=10)
    save_png(figure, path)


def vm_overlays(time_ms: np.ndarray, true_mv: np.ndarray, predicted_mv: np.ndarray, sites: Sequence[int],
                labels: Sequence[str], path: str | Path, title: str) -> None:
    """V_m (mV) true and predicted by Network II at a few sites (paper Fig. 4a–c)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(sites), figsize=(4.5 * len(sites), 3.4), squeeze=False)
    for axis, site in zip(axes[0], sites):
        axis.plot(time_ms, true_mv[site], "k", label="simulated")
        axis.plot(time_ms, predicted_mv[site], "r--", label="Network II")
        axis.set_title(f"site {site + 1}: {labels[site]}", fontsize=8)
        axis.set_xlabel("t (ms)")
    axes[0, 0].set_ylabel("V_m (mV)")
    axes[0, 0].legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save_png(figure, path)
