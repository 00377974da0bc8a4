"""When an EP-informed network's training stops and whether what it returns is a reconstruction
(issue 62): the discrepancy / plateau stopping rule on the per-case normalised data loss, and the
zero-map detector that fails a repeat which ended at the zero map — reported by name, never
scored. Pure numpy; the networks (:mod:`ecgcohort.inverse.neural`) call it.

Units: the data loss is normalised per case, mean (y − R û)² / mean y², dimensionless, 1 for the
zero map; estimates in the unknown's unit (dimensionless normalised V_m or u).
"""

from __future__ import annotations

import numpy as np

#: A repeat whose estimate's norm is below this fraction of the data's back-projection's ended
#: at the zero map (:func:`zero_map_failure`): a trained reconstruction of data the operator
#: sees is of the back-projection's order or larger (its null-space part only adds to it).
ZERO_MAP_FRACTION = 0.1
#: A repeat whose best normalised data loss stays above this (the zero map's is 1) explains less
#: than half of the data's mean square: the old formulation's collapse stopped at 0.90 with an
#: estimate 0.16 of the truth's norm (a crime-free planar front, issue 62), which the norm test
#: alone lets through; every scored reconstruction measured so far reached 0.05 or less.
ZERO_MAP_DATA_LOSS = 0.5


def stopping_reason(history, *, noise_level: float = 0.0, discrepancy: float = 1.0, patience: int = 50,
                    tolerance: float = 0.01) -> str | None:
    """Why training stops after the epochs of ``history`` (rows with ``data_loss``, normalised
    per case), or None to go on: the discrepancy principle — the data loss has reached
    ``discrepancy`` × ``noise_level`` (the noise's share of the data's mean square, known in the
    benchmark as the paper's σ is: fitting below it fits the noise) — or a plateau, the best
    data loss improved by less than ``tolerance`` (relative) over the last ``patience`` epochs
    (what is left above the noise is the model's error, which more epochs do not remove)."""
    losses = [row["data_loss"] for row in history if "data_loss" in row]
    if not losses:
        return None
    if noise_level > 0 and losses[-1] <= discrepancy * noise_level:
        return f"discrepancy: data loss {losses[-1]:.4g} <= {discrepancy:g} x noise level {noise_level:.4g}"
    if len(losses) > patience:
        before, now = min(losses[:-patience]), min(losses)
        if now > (1.0 - tolerance) * before:
            return f"plateau: data loss {now:.4g}, {before:.4g} {patience} epochs before"
    return None


def back_projection(transfer: np.ndarray, bspm: np.ndarray) -> np.ndarray:
    """The data's back-projection (n, T): c Rᵀ Y with the scalar c that fits R c Rᵀ Y to Y
    best in least squares — the simplest estimate the data alone give, in the unknown's unit."""
    transfer, bspm = np.asarray(transfer, dtype=np.float64), np.asarray(bspm, dtype=np.float64)
    back = transfer.T @ bspm
    forward = transfer @ back
    denominator = float(np.sum(forward * forward))
    return back * (float(np.sum(forward * bspm)) / denominator if denominator > 0 else 0.0)


def normalised_data_loss(transfer: np.ndarray, bspm: np.ndarray, estimate: np.ndarray) -> float:
    """mean (y − R û)² / mean y² (1 for the zero map)."""
    bspm = np.asarray(bspm, dtype=np.float64)
    return float(np.mean((bspm - np.asarray(transfer) @ estimate) ** 2) / np.mean(bspm ** 2))


def zero_map_failure(estimate: np.ndarray, transfer: np.ndarray, bspm: np.ndarray, best_data_loss: float,
                     fraction: float = ZERO_MAP_FRACTION, data_loss: float = ZERO_MAP_DATA_LOSS) -> str | None:
    """Why a trained repeat is no reconstruction, or None: its estimate Û (n, T) at the data's
    instants is nearer the zero map than ``fraction`` of the data's back-projection
    (‖Û‖ < fraction ‖c Rᵀ Y‖, Frobenius norms), or its best normalised data loss never fell
    below ``data_loss`` times the zero map's (1). A failed repeat is reported by name and never
    scored."""
    reference = float(np.linalg.norm(back_projection(transfer, bspm)))
    norm = float(np.linalg.norm(estimate))
    if norm < fraction * reference:
        return (f"zero map: |U| = {norm:.3g} is {norm / max(reference, 1e-300):.3g} of the back-projection's "
                f"{reference:.3g} (below {fraction:g})")
    if not best_data_loss < data_loss:
        return f"data loss {best_data_loss:.4g} never fell below {data_loss:g} of the zero map's (1)"
    return None
