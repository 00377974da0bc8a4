"""Validation patients carved out of the training split (numpy only: the workflow's DAG uses it)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def validation_split(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training, validation) ids: ``round(fraction · n)`` ids (at least one when ``fraction`` > 0
    and n ≥ 2) drawn from ``seed``, held out for validation; both lists keep the input order."""
    ids = list(ids)
    count = int(round(fraction * len(ids)))
    if fraction > 0 and len(ids) >= 2:
        count = min(max(count, 1), len(ids) - 1)
    else:
        count = 0
    chosen = set(np.random.default_rng(np.random.SeedSequence([seed, 7919])).choice(len(ids), count, replace=False)
                 .tolist())
    return [p for i, p in enumerate(ids) if i not in chosen], [p for i, p in enumerate(ids) if i in chosen]
