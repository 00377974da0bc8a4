"""Preview of a cohort design (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ecgcohort.cohort.sampling import SPLITS, CohortDesign  # noqa: E402
from ecgcohort.io import atomic_path  # noqa: E402

COLOURS = {"train": "tab:blue", "test": "tab:orange"}


def plot_design(table: pd.DataFrame, design: CohortDesign, path: str | Path) -> None:
    """Scatter projections of the design and every dimension's spread, to ``path`` (PNG)."""
    pairs = [(a, b) for a, b in (("heart_mode_01", "heart_mode_02"), ("torso_mode_01", "torso_mode_02"),
                                 ("rotation_x_deg", "rotation_y_deg"), ("rotation_z_deg", "translation_x_mm"),
                                 ("translation_y_mm", "translation_z_mm"))
             if a in table and b in table]
    figure, axes = plt.subplots(1, len(pairs) + 1, figsize=(3.2 * (len(pairs) + 1) + 3, 3.4),
                                gridspec_kw={"width_ratios": [1] * len(pairs) + [2]})
    units = {d.name: d for d in design.dimensions}
    for axis, (a, b) in zip(axes, pairs):
        for split in SPLITS:
            rows = table[table.split == split]
            axis.scatter(rows[a], rows[b], s=14, color=COLOURS[split], label=split)
        axis.set_xlabel(f"{a} [{units[a].unit}]", fontsize=8)
        axis.set_ylabel(f"{b} [{units[b].unit}]", fontsize=8)
        axis.set_xlim(units[a].low, units[a].high)
        axis.set_ylim(units[b].low, units[b].high)
    axes[0].legend(fontsize=7)
    spread = axes[-1]
    low_age, high_age = design.demographics.age_years
    # sex as 1 female / 0 male and age on its range, beside the Latin-hypercube dimensions
    scaled = {"female": (table.sex == "female").astype(float),
              "age_years": (table.age_years - low_age) / ((high_age - low_age) or 1.0)}
    for d in design.dimensions:
        scaled[d.name] = (table[d.name] - d.low) / ((d.high - d.low) or 1.0)
    for column, values in enumerate(scaled.values()):
        for split in SPLITS:
            jitter = 0.15 if split == "test" else -0.15
            chosen = values[table.split == split]
            spread.scatter(np.full(len(chosen), column + jitter), chosen, s=5, color=COLOURS[split])
    spread.set_xticks(range(len(scaled)))
    spread.set_xticklabels(list(scaled), rotation=90, fontsize=5)
    spread.set_ylabel("position in range", fontsize=8)
    spread.set_title("every dimension, scaled to [0, 1]", fontsize=8)
    figure.suptitle(f"cohort design: {len(table)} patients, seed {design.seed}", fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
