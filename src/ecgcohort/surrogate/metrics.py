"""Error measures of lead-field gradients and ECGs (paper 1, sec. 2.6), numpy only.

Every function reduces the last axis (the vector components, or time for
:func:`relative_l2` by default) and broadcasts over the leading ones.
"""

from __future__ import annotations

import numpy as np


def angular_error_deg(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """θ = arccos(p·r / (|p||r|)) in degrees, over the last axis (paper sec. 2.6).

    Evaluated as atan2(|p × r|, p·r), the same angle without arccos's loss of precision near
    0° and 180° (a cosine rounded by 1e-16 would read as 1e-6°). A zero vector has no direction:
    it counts as 90°, the value the paper's ε in the denominator gives (cosine 0)."""
    p = np.asarray(pred, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    if p.shape[-1] != 3 or r.shape[-1] != 3:
        raise ValueError(f"need vectors of 3 components on the last axis, got {p.shape} and {r.shape}")
    angle = np.degrees(np.arctan2(np.linalg.norm(np.cross(p, r), axis=-1), np.sum(p * r, axis=-1)))
    degenerate = (np.linalg.norm(p, axis=-1) == 0) | (np.linalg.norm(r, axis=-1) == 0)
    return np.where(degenerate, 90.0, angle)


def relative_magnitude_error(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """| |p| − |r| | / |r| over the last axis (dimensionless; inf where r = 0)."""
    p = np.linalg.norm(np.asarray(pred, dtype=np.float64), axis=-1)
    r = np.linalg.norm(np.asarray(ref, dtype=np.float64), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(p - r) / r


def relative_l2(signal: np.ndarray, reference: np.ndarray, axis: int = -1) -> np.ndarray:
    """‖s − r‖₂ / ‖r‖₂ along ``axis`` (time for ECGs, paper sec. 2.6; inf where r = 0). On a
    uniform time grid the discrete norms equal the L²(0, T) norms up to a common factor."""
    s = np.asarray(signal, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.linalg.norm(s - r, axis=axis) / np.linalg.norm(r, axis=axis)
