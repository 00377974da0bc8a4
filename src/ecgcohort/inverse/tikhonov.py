"""Tikhonov reconstruction of heart-surface potentials (paper 2, eq. 4's baseline): for each
time instant, û = argmin ‖R u − y‖² + λ² ‖Γ u‖², Γ = I (zeroth order) or a surface Laplacian
(second order), λ from the L-curve, generalised cross-validation (GCV) or robust GCV, per time
instant or one for all.

Robust GCV (Lukas 2006) multiplies GCV by γ + (1 − γ)·trace(H²)/m, H the influence matrix and
0 < γ ≤ 1 (γ = 1 is GCV). GCV assumes errors independent between measurement points; a model
error (the heart or the electrodes misplaced) is smooth over the body, GCV's leave-one-out
predicts it from the neighbours and picks λ far too small. The factor penalises the small λ
where H is near the identity (trace H² → m); Karoui et al. 2018 found it the best of six rules
for FEM-based zeroth-order Tikhonov in ECGI.

One decomposition serves every λ. With A = RᵀR and B = ΓᵀΓ (both positive semi-definite and
A + B definite when no non-zero u has R u = 0 and Γ u = 0 — true for Γ = I, and for the
Laplacian, whose null space (constants) R maps to constants), the generalised symmetric
eigenproblem B x = μ (A + B) x gives X with Xᵀ(A + B)X = I, XᵀBX = diag(μ), XᵀAX = I − diag(μ)
— the generalised SVD of (R, Γ) in symmetric form — so

    û(λ) = X diag(1 / (1 − μ + λ²μ)) Xᵀ Rᵀ y,

and the residual, ‖Γû‖ and the trace of the influence matrix R X diag(…) Xᵀ Rᵀ are sums over
the eigenpairs: a grid of λ costs a few matrix–vector products each, not a factorisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

LAMBDA_CHOICES: tuple[str, ...] = ("gcv", "rgcv", "lcurve")
#: robust GCV's γ where none is given (docs/methods/inverse.md: measured on the axes benchmark)
RGCV_GAMMA = 0.1


@dataclass(frozen=True)
class TikhonovResult:
    """Û (n, T), the λ used per time instant (T,), and the λ grid searched."""

    estimate: np.ndarray
    lambdas: np.ndarray
    grid: np.ndarray


class Tikhonov:
    """The decomposition of (R, Γ) for one transfer matrix R (m, n) and regulariser Γ (k, n)."""

    def __init__(self, transfer: np.ndarray, regulariser: np.ndarray):
        self.transfer = np.asarray(transfer, dtype=np.float64)
        gamma = np.asarray(regulariser, dtype=np.float64)
        if self.transfer.ndim != 2 or gamma.ndim != 2 or gamma.shape[1] != self.transfer.shape[1]:
            raise ValueError(f"need R (m, n) and Γ (k, n) of the same n, got {self.transfer.shape} and {gamma.shape}")
        a = self.transfer.T @ self.transfer
        b = gamma.T @ gamma
        # scale B to A so that neither dominates A + B numerically; λ is rescaled back below
        self.scale = float(np.trace(a) / max(np.trace(b), 1e-300))
        try:
            mu, x = scipy.linalg.eigh(self.scale * b, a + self.scale * b)
        except np.linalg.LinAlgError:
            raise ValueError("R and Γ share a null space: R u = 0 and Γ u = 0 for some u ≠ 0, so no λ "
                             "determines the solution") from None
        self.mu = np.clip(mu, 0.0, 1.0)
        #: eigenpairs R sees (XᵀAX = 1 − μ above round-off): rank(R) of them
        self.range = (1.0 - self.mu) > 1e-9
        self.x = x
        self.rx = self.transfer @ x  # R X, (m, n)

    def smallest_generalised_singular_value(self) -> float:
        """The smallest γ = √((1 − μ)·scale/μ) over R's range with μ > 0: below it every filter
        factor γ²/(γ² + λ²) is ≈ 1, and for m ≤ n GCV's limit as λ → 0 is a spurious minimum
        (residual and m − trace H vanish together), so λ grids start here."""
        usable = self.range & (self.mu > 1e-12)
        if not usable.any():
            return 0.0
        return float(np.sqrt(np.min((1.0 - self.mu[usable]) * self.scale / self.mu[usable])))

    def _denominator(self, lam: float) -> np.ndarray:
        return 1.0 - self.mu + (lam ** 2 / self.scale) * self.mu

    def solve(self, data: np.ndarray, lam: float) -> np.ndarray:
        """û (n,) or (n, T) for data y (m,) or (m, T) at one λ ≥ 0."""
        coefficients = self.rx.T @ np.asarray(data, dtype=np.float64)
        d = self._denominator(lam)
        return self.x @ (coefficients / (d if coefficients.ndim == 1 else d[:, None]))

    def curves(self, data: np.ndarray, grid: np.ndarray) -> dict[str, np.ndarray]:
        """For y (m, T) and each λ of ``grid`` (L,): residual norms ‖Rû − y‖ and solution
        semi-norms ‖Γû‖ (L, T), the GCV function ‖Rû − y‖² / (m − trace H)² (L, T) and
        trace H² (L,), robust GCV's term. In the eigenbasis H has the filter factors
        (1 − μ)/d as eigenvalues (R X's columns are orthogonal, of squared norms 1 − μ)."""
        y = np.asarray(data, dtype=np.float64).reshape(self.transfer.shape[0], -1)
        coefficients = self.rx.T @ y  # (n, T)
        m = self.transfer.shape[0]
        residual, seminorm, gcv, trace_squared = [], [], [], []
        for lam in grid:
            d = self._denominator(lam)[:, None]
            scaled = coefficients / d
            r = self.rx @ scaled - y
            residual.append(np.linalg.norm(r, axis=0))
            # ‖Γû‖² = (coefficients/d)ᵀ XᵀBX (coefficients/d) = Σ μ/scale (c/d)²
            seminorm.append(np.sqrt(np.sum(self.mu[:, None] / self.scale * scaled ** 2, axis=0)))
            # m − trace H with trace H = Σ (1 − μ)/d over R's range (1 − μ = 0 on its null space,
            # where the computed 1 − μ is round-off): (m − rank) + Σ_range (λ²μ/scale)/d, which
            # does not cancel at small λ
            seen = self.range
            free = (m - np.count_nonzero(seen)
                    + np.sum((lam ** 2 / self.scale) * self.mu[seen] / d[seen, 0]))
            gcv.append(residual[-1] ** 2 / max(free, 1e-300) ** 2)
            trace_squared.append(float(np.sum(((1.0 - self.mu[seen]) / d[seen, 0]) ** 2)))
        return {"residual": np.array(residual), "seminorm": np.array(seminorm), "gcv": np.array(gcv),
                "trace_squared": np.array(trace_squared)}


def lcurve_corner(residual: np.ndarray, seminorm: np.ndarray) -> int:
    """Index of the L-curve's corner: the point of largest curvature of (log ‖Rû − y‖,
    log ‖Γû‖) along the λ grid (finite differences in the grid index)."""
    x, y = np.log(residual), np.log(np.maximum(seminorm, 1e-300))
    dx, dy = np.gradient(x), np.gradient(y)
    ddx, ddy = np.gradient(dx), np.gradient(dy)
    curvature = (dx * ddy - dy * ddx) / np.maximum((dx ** 2 + dy ** 2) ** 1.5, 1e-300)
    return int(np.argmax(curvature[1:-1]) + 1)


def robust_gcv(gcv: np.ndarray, trace_squared: np.ndarray, measurements: int, gamma: float) -> np.ndarray:
    """Robust GCV (Lukas 2006) of GCV values (L, …) along a λ grid: GCV·(γ + (1 − γ)·trace(H²)/m),
    ``trace_squared`` trace H² (L,) and m = ``measurements``; dimensionless factor, GCV's units."""
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"robust GCV's gamma must be in (0, 1], got {gamma!r}")
    factor = gamma + (1.0 - gamma) * np.asarray(trace_squared, dtype=np.float64) / measurements
    return np.asarray(gcv) * factor.reshape((-1,) + (1,) * (np.ndim(gcv) - 1))


def tikhonov(transfer: np.ndarray, data: np.ndarray, regulariser: np.ndarray, choice: str = "gcv",
             per_time: bool = True, grid: np.ndarray | None = None, gamma: float = RGCV_GAMMA) -> TikhonovResult:
    """Tikhonov estimates Û (n, T) of data Y (m, T): λ by ``choice`` (gcv | rgcv | lcurve; rgcv with
    robustness ``gamma``) on ``grid`` (default 60 values log-spaced over 10⁻⁸…10² times the largest
    singular value of R), chosen per time instant (``per_time``) or once for the sum over all
    instants. λ weighs ‖Γu‖ against ‖Ru − y‖: units of R over those of Γ."""
    if choice not in LAMBDA_CHOICES:
        raise ValueError(f"unknown λ choice '{choice}'; known: {', '.join(LAMBDA_CHOICES)}")
    solver = Tikhonov(transfer, regulariser)
    y = np.asarray(data, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != solver.transfer.shape[0]:
        raise ValueError(f"data must be (m={solver.transfer.shape[0]}, T), got {y.shape}")
    if grid is None:
        top = np.linalg.norm(solver.transfer, 2)
        grid = top * np.logspace(-8, 2, 60)
    grid = np.asarray(grid, dtype=np.float64)
    floor = solver.smallest_generalised_singular_value()
    if np.count_nonzero(grid >= floor) >= 2:
        grid = grid[grid >= floor]
    curves = solver.curves(y, grid)
    if not per_time:
        curves = {"residual": np.sqrt(np.sum(curves["residual"] ** 2, axis=1, keepdims=True)),
                  "seminorm": np.sqrt(np.sum(curves["seminorm"] ** 2, axis=1, keepdims=True)),
                  "gcv": np.sum(curves["gcv"], axis=1, keepdims=True), "trace_squared": curves["trace_squared"]}
    if choice == "gcv":
        best = np.argmin(curves["gcv"], axis=0)
    elif choice == "rgcv":
        best = np.argmin(robust_gcv(curves["gcv"], curves["trace_squared"], y.shape[0], gamma), axis=0)
    else:
        best = np.array([lcurve_corner(curves["residual"][:, t], curves["seminorm"][:, t])
                         for t in range(curves["residual"].shape[1])])
    lambdas = grid[np.broadcast_to(best, (y.shape[1],))]
    estimate = np.empty((solver.transfer.shape[1], y.shape[1]))
    for lam in np.unique(lambdas):  # all instants of one λ in one product
        instants = lambdas == lam
        estimate[:, instants] = solver.solve(y[:, instants], lam)
    return TikhonovResult(estimate=estimate, lambdas=lambdas, grid=grid)
