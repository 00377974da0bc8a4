"""Spatiotemporal regularisation (STRE; paper 2 ref. 16, Yao & Yang 2016), in the form we
implement.

For each instant t, a window W_t of 2w + 1 consecutive instants centred on t (shifted inwards at
the ends of the record) is reconstructed at once by

    min_U  Σ_{τ∈W} ‖y_τ − R u_τ‖²  +  λ_s² Σ_{τ∈W} ‖Γ u_τ‖²  +  λ_t² Σ_{τ,τ+1∈W} ‖u_{τ+1} − u_τ‖²,

Γ the surface Laplacian (spatial smoothness, as second-order Tikhonov) and the last term the
temporal constraint (first differences inside the window); û_t is the window's solution at t.
Yao & Yang couple space and time through the same two ingredients; we fix the window's
temporal operator to first differences and choose the weights by GCV: λ_s as second-order
Tikhonov's global GCV choice, λ_t by GCV of the whole record solved as one window.

Solution. With A_s = RᵀR + λ_s² ΓᵀΓ = V diag(d) Vᵀ and the window's path-graph Laplacian
DᵀD = Q diag(e) Qᵀ (a cosine basis, e_j = 2 − 2 cos(πj/|W|)), the normal equations
A_s U + λ_t² U DᵀD = RᵀY_W decouple: U = V [(Vᵀ Rᵀ Y_W Q) / (d_i + λ_t² e_j)] Qᵀ. One
eigendecomposition of A_s serves every window.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def path_laplacian_basis(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(e (L,), Q (L, L)) with DᵀD = Q diag(e) Qᵀ for the first-difference operator D on a path
    of ``length`` instants (Neumann ends): the DCT-II basis."""
    j = np.arange(length)
    e = 2.0 - 2.0 * np.cos(np.pi * j / length)
    q = np.cos(np.pi * np.outer(j + 0.5, j) / length)
    q /= np.linalg.norm(q, axis=0)
    return e, q


def first_difference_gram(length: int) -> np.ndarray:
    """DᵀD (L, L) of the first differences of a path of ``length`` instants."""
    d = np.diff(np.eye(length), axis=0)
    return d.T @ d


class SpatioTemporal:
    """The spatial eigendecomposition of one (R, Γ, λ_s)."""

    def __init__(self, transfer: np.ndarray, regulariser: np.ndarray, spatial_lambda: float):
        self.transfer = np.asarray(transfer, dtype=np.float64)
        gamma = np.asarray(regulariser, dtype=np.float64)
        gram = self.transfer.T @ self.transfer
        self.d, self.v = scipy.linalg.eigh(gram + spatial_lambda ** 2 * (gamma.T @ gamma))
        # diagonal of Vᵀ RᵀR V: what each spatial mode contributes to the influence matrix
        self.seen = np.einsum("ij,ij->j", self.v, gram @ self.v)

    def solve_window(self, data: np.ndarray, temporal_lambda: float) -> np.ndarray:
        """U (n, L) minimising the window functional for data (m, L)."""
        e, q = path_laplacian_basis(data.shape[1])
        coefficients = self.v.T @ (self.transfer.T @ data) @ q
        return self.v @ (coefficients / (self.d[:, None] + temporal_lambda ** 2 * e[None, :])) @ q.T

    def gcv(self, data: np.ndarray, temporal_lambda: float) -> float:
        """GCV of the whole record as one window: ‖RU − Y‖² / (mT − trace H)², H the influence
        matrix, trace H = Σ_ij (VᵀRᵀRV)_ii / (d_i + λ_t² e_j)."""
        m, length = data.shape
        e, _ = path_laplacian_basis(length)
        residual = self.transfer @ self.solve_window(data, temporal_lambda) - data
        trace = float(np.sum(self.seen[:, None] / (self.d[:, None] + temporal_lambda ** 2 * e[None, :])))
        return float(np.sum(residual ** 2) / max(m * length - trace, 1e-300) ** 2)


def window_starts(samples: int, half_width: int) -> np.ndarray:
    """First instant of each instant's window of 2·half_width + 1 (shifted inwards at the ends)."""
    length = min(2 * half_width + 1, samples)
    return np.clip(np.arange(samples) - half_width, 0, samples - length)


def stre_estimate(transfer: np.ndarray, data: np.ndarray, regulariser: np.ndarray, *, spatial_lambda: float,
                  half_width: int, temporal_grid: np.ndarray) -> tuple[np.ndarray, float]:
    """(Û (n, T), the GCV-chosen λ_t) for data Y (m, T)."""
    solver = SpatioTemporal(transfer, regulariser, spatial_lambda)
    y = np.asarray(data, dtype=np.float64)
    scores = [solver.gcv(y, lam) for lam in temporal_grid]
    temporal_lambda = float(temporal_grid[int(np.argmin(scores))])
    samples = y.shape[1]
    length = min(2 * half_width + 1, samples)
    e, q = path_laplacian_basis(length)
    projected = solver.v.T @ (solver.transfer.T @ y)  # (n, T)
    denominator = solver.d[:, None] + temporal_lambda ** 2 * e[None, :]
    estimate = np.empty((solver.v.shape[0], samples))
    for t, start in enumerate(window_starts(samples, half_width)):
        coefficients = projected[:, start:start + length] @ q / denominator
        estimate[:, t] = solver.v @ (coefficients @ q[t - start])
    return estimate, temporal_lambda
