"""Reconstruction metrics of the inverse-ECG benchmark for heart-surface potentials û, u of
shape (nodes S, times T): RE, CC and MSE exactly as paper 2, section IV (eqs. 19–21); the
spatial (per instant) and temporal (per node) correlations; activation times from the
electrograms (steepest downstroke) with their error and correlation; the pacing site's
localisation error."""

from __future__ import annotations

import numpy as np


def _pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u_hat = np.asarray(estimate, dtype=np.float64)
    u = np.asarray(reference, dtype=np.float64)
    if u_hat.shape != u.shape or u.ndim != 2:
        raise ValueError(f"need two (nodes, times) arrays of one shape, got {u_hat.shape} and {u.shape}")
    return u_hat, u


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """RE = √(Σ_{s,t} (û − u)²) / √(Σ_{s,t} u²) (eq. 19)."""
    u_hat, u = _pair(estimate, reference)
    return float(np.linalg.norm(u_hat - u) / np.linalg.norm(u))


def correlation_coefficient(estimate: np.ndarray, reference: np.ndarray) -> float:
    """CC = Σ_s (û_s − mean_t û_s)ᵀ(u_s − mean_t u_s) / √(Σ_s ‖û_s − mean_t û_s‖² Σ_s ‖u_s − mean_t u_s‖²)
    (eq. 20): each node's time series centred on its own mean, then one correlation over all."""
    u_hat, u = _pair(estimate, reference)
    a = u_hat - u_hat.mean(axis=1, keepdims=True)
    b = u - u.mean(axis=1, keepdims=True)
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def mean_squared_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """MSE = (1/N) Σ_{s,t} (û − u)², N = nodes × times (eq. 21)."""
    u_hat, u = _pair(estimate, reference)
    return float(np.mean((u_hat - u) ** 2))


def spatial_correlation(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Pearson correlation over the nodes at each instant (T,) — the map's pattern; NaN at
    instants where either map is flat."""
    u_hat, u = _pair(estimate, reference)
    a = u_hat - u_hat.mean(axis=0, keepdims=True)
    b = u - u.mean(axis=0, keepdims=True)
    norm = np.sqrt(np.sum(a * a, axis=0) * np.sum(b * b, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, np.sum(a * b, axis=0) / np.where(norm > 0, norm, 1.0), np.nan)


def temporal_correlation(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Pearson correlation over time at each node (n,) — the electrogram's shape; NaN at
    nodes where either signal is constant."""
    return spatial_correlation(np.asarray(estimate).T, np.asarray(reference).T)


def activation_times(signals: np.ndarray, times: np.ndarray, polarity: str = "extracellular") -> np.ndarray:
    """Activation time (n,) of each node's signal (n, T) at ``times`` (T,): the instant of its
    steepest downstroke (``polarity="extracellular"``: the electrogram's intrinsic deflection)
    or steepest upstroke (``"transmembrane"``), refined between samples by a parabola through
    the extreme slope and its two neighbours; in the unit of ``times``."""
    if polarity not in ("extracellular", "transmembrane"):
        raise ValueError(f"polarity must be 'extracellular' or 'transmembrane', got {polarity!r}")
    signals = np.asarray(signals, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if signals.ndim != 2 or signals.shape[1] != times.size or times.size < 3:
        raise ValueError(f"need signals (n, T) with T = {times.size} >= 3 instants, got {signals.shape}")
    slope = np.gradient(signals, times, axis=1)
    if polarity == "transmembrane":
        slope = -slope
    k = np.clip(np.argmin(slope, axis=1), 1, times.size - 2)
    rows = np.arange(len(signals))
    before, at, after = slope[rows, k - 1], slope[rows, k], slope[rows, k + 1]
    curvature = before - 2 * at + after
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(curvature > 0, 0.5 * (before - after) / np.where(curvature > 0, curvature, 1.0), 0.0)
    offset = np.clip(offset, -0.5, 0.5)
    step = np.where(offset >= 0, times[k + 1] - times[k], times[k] - times[k - 1])
    return times[k] + offset * step


def activation_errors(estimate_ms: np.ndarray, reference_ms: np.ndarray) -> tuple[float, float]:
    """(mean absolute error in ms, Pearson correlation) of two activation maps (n,)."""
    a = np.asarray(estimate_ms, dtype=np.float64)
    b = np.asarray(reference_ms, dtype=np.float64)
    correlation = float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else float("nan")
    return float(np.mean(np.abs(a - b))), correlation


def localisation_error(activation: np.ndarray, points_mm: np.ndarray, site_mm: np.ndarray) -> float:
    """Distance (mm) from the pacing site ``site_mm`` (3,) to the node (of ``points_mm`` (n, 3))
    that activates first in ``activation`` (n,)."""
    first = int(np.argmin(np.asarray(activation, dtype=np.float64)))
    return float(np.linalg.norm(np.asarray(points_mm, dtype=np.float64)[first] - np.asarray(site_mm, dtype=np.float64)))
