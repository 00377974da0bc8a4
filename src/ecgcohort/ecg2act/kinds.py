"""Network I's activation error by scenario kind: where a split's error comes from. The kinds
are the bank's (sinus, lbbb, rbbb) with pacing split by its number of sites (pacing-1 … pacing-3),
since sites drawn anywhere in the myocardium make a harder map than the Purkinje kinds."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def kind_labels(kinds: Sequence[str], pacing_sites: Sequence[float]) -> list[str]:
    """Each sample's kind, pacing with its site count (``pacing-2``)."""
    return [f"pacing-{int(sites)}" if kind == "pacing" else str(kind) for kind, sites in zip(kinds, pacing_sites)]


def errors_by_kind(labels: Sequence[str], predicted_ms: np.ndarray, true_ms: np.ndarray) -> list[dict[str, Any]]:
    """Per kind of ``labels`` (S,), in sorted order, then ``all``: the samples, the mean absolute
    activation error over their sites (ms; predicted and true times (S, sites), NaN sites left
    out) and its sd over samples, and the share of the split's summed error (its weight in the
    split's mean)."""
    error = np.nanmean(np.abs(np.asarray(predicted_ms, float) - np.asarray(true_ms, float)), axis=1)
    labels = np.asarray(labels)
    rows = []
    for kind in [*sorted(set(labels.tolist())), "all"]:
        chosen = error if kind == "all" else error[labels == kind]
        rows.append({"kind": kind, "samples": int(chosen.size), "activation_mae_ms": float(chosen.mean()),
                     "sample_mae_sd_ms": float(chosen.std()), "error_share": float(chosen.sum() / error.sum())})
    return rows
