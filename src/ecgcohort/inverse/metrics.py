"""Reconstruction metrics of the inverse-ECG benchmark, exactly as paper 2, section IV
(eqs. 19–21), for heart-surface potentials û, u of shape (nodes S, times T)."""

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
