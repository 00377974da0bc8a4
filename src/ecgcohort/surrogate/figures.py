"""Figures of the surrogate evaluation (paper 1, Figs. 6–9), from the per-patient arrays of
``evaluate_surrogate`` keyed by (encoding, target, patient). Every figure shows the pseudo lead
field beside the surrogates."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ecgcohort.io import agg_pyplot, save_png
from ecgcohort.surrogate.labels import PSEUDO, model_label

Arrays = Mapping[tuple[str, str, str], Mapping[str, np.ndarray]]
PSEUDO_COLOUR = "0.45"


def _curves(arrays: Arrays, models: Sequence[tuple[str, str]], patients: Sequence[str]):
    """(label, colour, style, per-patient arrays of the kind) for each model, then the pseudo lead field."""

    for k, (encoding, target) in enumerate(models):
        yield (model_label(encoding, target), f"C{k}", "-", "surrogate",
               [arrays[(encoding, target, p)] for p in patients])
    yield PSEUDO, PSEUDO_COLOUR, "--", "pseudo", [arrays[(*models[0], p)] for p in patients]


def error_cdfs(arrays: Arrays, models: Sequence[tuple[str, str]], patients: Sequence[str], path: str | Path) -> None:
    """Fig. 6: CDFs of the angular and relative magnitude errors over the torso and over the
    heart + margin; per curve the mean CDF over test patients, the min–max band, and dashed
    marks at the pooled median and 95th percentile."""
    plt = agg_pyplot()
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    grids = {"angle": np.linspace(0, 90, 361), "magnitude": np.linspace(0, 2, 401)}
    for row, (quantity, unit) in enumerate((("angle", "angular error (°)"), ("magnitude", "relative magnitude error"))):
        for column, region in enumerate(("torso", "heart")):
            axis = axes[row, column]
            for label, colour, style, kind, per_patient in _curves(arrays, models, patients):
                samples = [a[f"{quantity}_{kind}"][:, a["heart"]] if region == "heart" else a[f"{quantity}_{kind}"]
                           for a in per_patient]
                samples = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
                cdfs = np.array([np.searchsorted(np.sort(s), grids[quantity], side="right") / s.size for s in samples])
                axis.plot(grids[quantity], cdfs.mean(axis=0), color=colour, ls=style, label=label)
                axis.fill_between(grids[quantity], cdfs.min(axis=0), cdfs.max(axis=0), color=colour, alpha=0.15)
                pooled = np.concatenate(samples)
                for q in np.percentile(pooled, [50, 95]):
                    axis.axvline(q, color=colour, ls=":", lw=0.8)
            axis.set_xlabel(unit)
            axis.set_ylabel("fraction of (electrode, point) pairs")
            axis.set_title(f"{'whole torso' if region == 'torso' else 'heart + margin'}")
            axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="lower right")
    figure.suptitle(f"Errors of ∇Z against FEM over {len(patients)} test patients "
                    "(mean CDF, min–max band; dotted: median and 95th percentile)")
    figure.tight_layout()
    save_png(figure, path)


def _per_electrode(per_patient, kind: str) -> tuple[list[str], np.ndarray]:
    """Electrode names of the first patient and each one's angular error in the heart region,
    averaged over patients (electrodes matched by name)."""
    names = [str(n) for n in per_patient[0]["electrode_names"]]
    values = np.array([[a[f"angle_{kind}"][list(a["electrode_names"]).index(n)][a["heart"]].mean() for n in names]
                       for a in per_patient])
    return names, values.mean(axis=0)


def electrode_errors(arrays: Arrays, models: Sequence[tuple[str, str]], patients: Sequence[str],
                     path: str | Path) -> None:
    """Fig. 7: mean angular error in the heart region per electrode (standard electrodes and the
    anterior array), averaged over test patients."""
    plt = agg_pyplot()
    curves = list(_curves(arrays, models, patients))
    kinds = [str(k) for k in curves[0][4][0]["electrode_kinds"]]
    figure, axes = plt.subplots(2, 1, figsize=(12, 7))
    for axis, wanted in zip(axes, ("standard", "anterior")):
        width = 0.8 / len(curves)
        for k, (label, colour, _, kind, per_patient) in enumerate(curves):
            names, values = _per_electrode(per_patient, kind)
            chosen = [j for j, c in enumerate(kinds) if c == wanted]
            axis.bar(np.arange(len(chosen)) + (k - (len(curves) - 1) / 2) * width, values[chosen], width,
                     color=colour, label=label, hatch="//" if kind == "pseudo" else None)
        axis.set_xticks(np.arange(len(chosen)), [names[j] for j in chosen], rotation=0 if wanted == "standard" else 60)
        axis.set_ylabel("angular error (°)")
        axis.set_title(f"{wanted} electrodes")
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Mean angular error of ∇Z in the heart region per electrode ({len(patients)} test patients)")
    figure.tight_layout()
    save_png(figure, path)


def torso_maps(arrays: Arrays, models: Sequence[tuple[str, str]], patients: Sequence[str],
               scenarios: Sequence[str], path: str | Path) -> None:
    """Fig. 8: on the anterior torso (normalised coordinates x, z; every test patient's
    electrodes), (A) the mean angular error in the heart region per electrode and (B, C …) the
    RMSE of the unipolar ECG against FEM per electrode for the given scenarios; one row per
    model and one for the pseudo lead field."""
    plt = agg_pyplot()
    curves = list(_curves(arrays, models, patients))
    available = [str(s) for s in curves[0][4][0]["scenarios"]]
    shown = [s for s in scenarios if s in available] or available[:1]
    figure, axes = plt.subplots(len(curves), 1 + len(shown), figsize=(4 * (1 + len(shown)), 3.6 * len(curves)),
                                squeeze=False)
    angle_max = max(np.percentile(np.concatenate([a[f"angle_{kind}"][:, a["heart"]].mean(axis=1) for a in pp]), 95)
                    for _, _, _, kind, pp in curves)
    for row, (label, _, _, kind, per_patient) in enumerate(curves):
        x = np.concatenate([a["electrode_normalised"][:, 0] for a in per_patient])
        z = np.concatenate([a["electrode_normalised"][:, 2] for a in per_patient])
        panels = [("angular error in the heart (°)",
                   np.concatenate([a[f"angle_{kind}"][:, a["heart"]].mean(axis=1) for a in per_patient]), angle_max)]
        for scenario in shown:
            rmse = np.concatenate([np.sqrt(np.mean(np.square(
                a[f"unipolar_{kind}"][available.index(scenario)] - a["unipolar_fem"][available.index(scenario)]),
                axis=1)) * 1e3 for a in per_patient])
            panels.append((f"ECG RMSE, {scenario} (mV)", rmse, None))
        for column, (title, values, vmax) in enumerate(panels):
            axis = axes[row, column]
            points = axis.scatter(x, z, c=values, cmap="inferno_r", s=40, vmin=0,
                                  vmax=vmax if vmax else max(float(np.max(values)), 1e-12), edgecolors="0.3",
                                  linewidths=0.3)
            figure.colorbar(points, ax=axis, shrink=0.85)
            axis.set_title(f"{label}\n{title}", fontsize=9)
            axis.set_xlabel("x (normalised, right → left)")
            axis.set_ylabel("z (normalised)")
            axis.set_xlim(-1.05, 1.05)
            axis.set_ylim(-0.05, 1.05)
    figure.suptitle(f"Errors on the torso surface at the electrodes of {len(patients)} test patients")
    figure.tight_layout()
    save_png(figure, path)


def ecg_overlays(arrays: Arrays, models: Sequence[tuple[str, str]], patient: str, scenarios: Sequence[str],
                 path: str | Path) -> None:
    """Fig. 9: the 12-lead ECG of one test patient per scenario: FEM, every surrogate and the
    pseudo lead field."""
    from ecgcohort.ecg.leads import LEAD_NAMES

    plt = agg_pyplot()
    first = arrays[(*models[0], patient)]
    available = [str(s) for s in first["scenarios"]]
    shown = [s for s in scenarios if s in available] or available[:1]
    t_ms = first["time_s"] * 1e3
    figure, axes = plt.subplots(6, 2 * len(shown), figsize=(6 * len(shown), 12), sharex=True, squeeze=False)
    for c, scenario in enumerate(shown):
        index = available.index(scenario)
        for k, name in enumerate(LEAD_NAMES):
            axis = axes[k % 6, 2 * c + k // 6]
            axis.plot(t_ms, first["leads_fem"][index, k] * 1e3, color="k", lw=1.4, label="FEM")
            for m, (encoding, target) in enumerate(models):
                axis.plot(t_ms, arrays[(encoding, target, patient)]["leads_surrogate"][index, k] * 1e3, color=f"C{m}",
                          lw=1.0, label=model_label(encoding, target))
            axis.plot(t_ms, first["leads_pseudo"][index, k] * 1e3, color=PSEUDO_COLOUR, lw=1.0, ls="--", label=PSEUDO)
            axis.set_title(f"{scenario}: {name}", fontsize=9)
            axis.grid(alpha=0.3)
            if (2 * c + k // 6) == 0:
                axis.set_ylabel("mV")
    for axis in axes[-1]:
        axis.set_xlabel("time (ms)")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    figure.suptitle(f"{patient}: 12-lead ECGs from FEM, surrogate and pseudo lead fields")
    figure.tight_layout()
    save_png(figure, path)


#: The budget's ∇Z angle terms (degrees), as bars per model: column, label.
BUDGET_ANGLES: tuple[tuple[str, str], ...] = (
    ("fem_vs_reference_angle_deg", "FEM vs converged reference (myocardium)"),
    ("fitting_heart_angle_deg", "surrogate, fitting patients, heart + margin"),
    ("validation_heart_angle_deg", "surrogate, validation patients, heart + margin"),
    ("test_angle_deg", "surrogate, test patients, heart + margin (Table 1)"),
    ("fitting_points_angle_deg", "surrogate, fitting patients, all sample points"),
    ("test_points_angle_deg", "surrogate, test patients, all sample points"),
    ("cell_angle_deg", "surrogate per myocardial cell (test)"),
    ("surrogate_vs_reference_angle_deg", "surrogate vs converged reference (myocardium)"),
)
#: The budget's relative errors, as bars per model: column, label.
BUDGET_RELATIVE: tuple[tuple[str, str], ...] = (
    ("cell_magnitude_error", "|∇Z| per myocardial cell"),
    ("weighted_field_error", "leads' source-weighted field error"),
    ("ecg_error", "ECG relative ℓ2"),
)


def samples_seen(losses) -> np.ndarray:
    """Cumulative training samples ((electrode, point) rows) at the end of each epoch of a
    surrogate's ``losses.csv`` (rows per second × seconds per epoch)."""
    return np.cumsum(losses["samples_per_second"].to_numpy(dtype=float) * losses["seconds"].to_numpy(dtype=float))


def error_budget(budget, path: str | Path, losses: Mapping[str, object] | None = None) -> None:
    """The error budget (``error_budget.csv``) as grouped bars per model: the ∇Z angle terms, from
    the ground truth's own error to the test patients', and the relative errors from the field
    per myocardial cell to the ECG; terms not measured in the run (NaN) are left out. With
    ``losses`` (model label → its ``losses.csv`` frame), a third panel shows the optimisation term:
    the validation loss against samples seen, the best epoch marked."""
    plt = agg_pyplot()
    panels = 3 if losses else 2
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.2),
                                gridspec_kw={"width_ratios": [2, 1, 1.2][:panels]})
    for ax, terms, unit in ((axes[0], BUDGET_ANGLES, "∇Z angle (°)"), (axes[1], BUDGET_RELATIVE, "relative error")):
        present = [(column, label) for column, label in terms if column in budget and budget[column].notna().any()]
        width = 0.8 / max(len(present), 1)
        positions = np.arange(len(budget))
        for k, (column, label) in enumerate(present):
            values = budget[column].to_numpy(dtype=float)
            bars = ax.bar(positions + (k - (len(present) - 1) / 2) * width, values, width, label=label, color=f"C{k}")
            ax.bar_label(bars, fmt="%.2f" if unit == "relative error" else "%.1f", fontsize=6, padding=1)
        ax.set_xticks(positions, [model.replace(", ", "\n") for model in budget["model"]], fontsize=8)
        ax.set_ylabel(unit)
        tallest = np.nanmax([budget[column].max() for column, _ in present]) if present else 1.0
        ax.set_ylim(0, 1.6 * tallest)  # room for the legend above the bars
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title("∇Z angle: ground truth, fit, generalisation", fontsize=9)
    axes[1].set_title("from the field to the ECG (test patients)", fontsize=9)
    if losses:
        ax = axes[2]
        for k, (label, frame) in enumerate(losses.items()):
            seen = samples_seen(frame) / 1e6
            ax.plot(seen, frame["loss"], color=f"C{k}", alpha=0.5, lw=1, label=f"{label}, training")
            if "validation_loss" not in frame:
                continue  # no validation patients (a cohort of one training patient)
            validation = frame["validation_loss"].to_numpy(dtype=float)
            ax.plot(seen, validation, color=f"C{k}", marker=".", label=f"{label}, validation")
            if np.isfinite(validation).any():
                best = int(np.nanargmin(validation))
                ax.plot(seen[best], validation[best], "o", mfc="none", ms=10, color=f"C{k}")
        ax.set_yscale("log")
        ax.set_xlabel("samples seen (millions of (electrode, point) rows)")
        ax.set_ylabel("loss per row")
        ax.set_title("optimisation: loss against samples seen (circle: best epoch)", fontsize=9)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    figure.tight_layout()
    save_png(figure, path)
