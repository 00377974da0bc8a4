"""Tikhonov reconstruction: one generalised eigendecomposition against the normal equations
solved afresh per λ, its residual, semi-norm and GCV curves against direct computation, and λ
chosen by GCV and the L-curve doing better than λ far too small or too large."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.inverse.tikhonov import Tikhonov, robust_gcv, tikhonov


def _laplacian_1d(n: int) -> np.ndarray:
    """Second differences with no-flux ends: null space the constants, like a surface Laplacian."""
    lap = np.diag(np.full(n, 2.0)) - np.diag(np.ones(n - 1), 1) - np.diag(np.ones(n - 1), -1)
    lap[0, 0] = lap[-1, -1] = 1.0
    return lap


def _blur(m: int, n: int, width: float) -> np.ndarray:
    """A smoothing transfer (m sensors over n sources on [0, 1]) whose rows sum to one, so R·1 = 1."""
    sensors, sources = np.linspace(0, 1, m), np.linspace(0, 1, n)
    kernel = np.exp(-0.5 * ((sensors[:, None] - sources[None, :]) / width) ** 2)
    return kernel / kernel.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("order", ["zeroth", "second"])
def test_one_decomposition_gives_the_normal_equations_solution_for_every_lambda(order):
    rng = np.random.default_rng(2)
    transfer = rng.normal(size=(30, 40))
    gamma = np.eye(40) if order == "zeroth" else _laplacian_1d(40)
    y = rng.normal(size=(30, 3))
    solver = Tikhonov(transfer, gamma)
    grid = np.array([1e-3, 0.1, 1.0, 10.0])
    curves = solver.curves(y, grid)
    for k, lam in enumerate(grid):
        direct = np.linalg.solve(transfer.T @ transfer + lam ** 2 * gamma.T @ gamma, transfer.T @ y)
        estimate = solver.solve(y, lam)
        np.testing.assert_allclose(estimate, direct, rtol=1e-6, atol=1e-8 * np.abs(direct).max())
        np.testing.assert_allclose(curves["residual"][k], np.linalg.norm(transfer @ direct - y, axis=0), rtol=1e-6)
        np.testing.assert_allclose(curves["seminorm"][k], np.linalg.norm(gamma @ direct, axis=0), rtol=1e-5)
        if lam >= 0.1:  # at smaller λ, m − trace H is a difference of nearly equal numbers done directly
            influence = transfer @ np.linalg.solve(transfer.T @ transfer + lam ** 2 * gamma.T @ gamma, transfer.T)
            gcv = np.linalg.norm(transfer @ direct - y, axis=0) ** 2 / (30 - np.trace(influence)) ** 2
            np.testing.assert_allclose(curves["gcv"][k], gcv, rtol=1e-5)
        elif order == "zeroth":  # Γ = I: m − trace H = Σ λ²/(σ² + λ²) over R's singular values
            sigma = np.linalg.svd(transfer, compute_uv=False)
            free = np.sum(lam ** 2 / (sigma ** 2 + lam ** 2))
            np.testing.assert_allclose(curves["gcv"][k], curves["residual"][k] ** 2 / free ** 2, rtol=1e-4)


@pytest.mark.parametrize("choice", ["gcv", "rgcv", "lcurve"])
def test_the_chosen_lambda_beats_lambdas_far_too_small_and_too_large(choice):
    rng = np.random.default_rng(7)
    n = 80
    transfer = _blur(60, n, 0.05)
    s = np.linspace(0, 1, n)
    truth = np.column_stack([np.sin(2 * np.pi * (s + phase)) for phase in (0.0, 0.2, 0.4)])
    data = transfer @ truth + 0.01 * rng.normal(size=(60, 3))
    gamma = _laplacian_1d(n)
    result = tikhonov(transfer, data, gamma, choice=choice)
    chosen = np.linalg.norm(result.estimate - truth) / np.linalg.norm(truth)
    solver = Tikhonov(transfer, gamma)
    for factor in (1e-3, 1e3):
        other = np.column_stack([solver.solve(data[:, t], lam * factor) for t, lam in enumerate(result.lambdas)])
        assert chosen < np.linalg.norm(other - truth) / np.linalg.norm(truth), factor
    assert chosen < 0.2
    single = tikhonov(transfer, data, gamma, choice=choice, per_time=False)
    assert len(set(single.lambdas.tolist())) == 1


def test_a_shared_null_space_and_unknown_choices_are_refused():
    transfer = np.eye(4)[:, [0, 1, 2, 3]] @ np.diag([1.0, 1.0, 1.0, 0.0])  # column 3 unseen
    gamma = np.diag([1.0, 1.0, 1.0, 0.0])  # and unpenalised
    with pytest.raises(ValueError, match="share a null space"):
        Tikhonov(transfer, gamma)
    with pytest.raises(ValueError, match="unknown λ choice"):
        tikhonov(np.eye(3), np.ones((3, 2)), np.eye(3), choice="discrepancy")


def test_trace_of_the_squared_influence_matrix_matches_the_explicit_matrix():
    rng = np.random.default_rng(3)
    transfer, gamma = rng.normal(size=(20, 30)), _laplacian_1d(30)
    solver = Tikhonov(transfer, gamma)
    grid = np.array([0.05, 0.5, 5.0])
    curves = solver.curves(rng.normal(size=(20, 2)), grid)
    for k, lam in enumerate(grid):
        influence = transfer @ np.linalg.solve(transfer.T @ transfer + lam ** 2 * gamma.T @ gamma, transfer.T)
        np.testing.assert_allclose(curves["trace_squared"][k], np.trace(influence @ influence), rtol=1e-6)
        # H is a symmetric contraction: trace H² ≤ trace H ≤ m
        assert curves["trace_squared"][k] <= np.trace(influence) + 1e-9 <= 20 + 1e-9


def test_robust_gcv_at_gamma_one_is_gcv_and_below_it_penalises_small_lambdas():
    gcv = np.array([[1.0, 2.0], [0.5, 0.5], [0.8, 0.3]])
    trace_squared = np.array([9.5, 5.0, 1.0])  # falls with λ
    np.testing.assert_allclose(robust_gcv(gcv, trace_squared, 10, 1.0), gcv)
    factor = 0.1 + 0.9 * trace_squared / 10
    np.testing.assert_allclose(robust_gcv(gcv, trace_squared, 10, 0.1), gcv * factor[:, None])
    with pytest.raises(ValueError, match="gamma"):
        robust_gcv(gcv, trace_squared, 10, 0.0)


def _misplaced_problem(seed: int, snr_db: float):
    """Data of a transfer whose sensors sit up to 0.03 off where the inversion puts them, the
    offsets varying smoothly along the sensor line (a misplaced body geometry: a model error that
    neighbouring sensors share), plus white noise ``snr_db`` below the signal."""
    rng = np.random.default_rng(seed)
    n, m = 120, 60
    s = np.linspace(0, 1, n)
    truth = np.column_stack([np.exp(-0.5 * ((s - c) / 0.12) ** 2) - 0.3 for c in (0.3, 0.5, 0.7)])
    sensors = np.linspace(0, 1, m)
    offsets = 0.03 * np.sin(2 * np.pi * (sensors + rng.uniform()))

    def transfer(at):
        kernel = np.exp(-0.5 * ((at[:, None] - s[None, :]) / 0.08) ** 2)
        return kernel / kernel.sum(axis=1, keepdims=True)

    clean = transfer(sensors + offsets) @ truth
    data = clean + 10 ** (-snr_db / 20) * np.sqrt(np.mean(clean ** 2)) * rng.normal(size=clean.shape)
    return transfer(sensors), data, truth


def test_robust_gcv_regularises_a_shared_model_error_more_than_gcv_and_reconstructs_better():
    """At 40 dB robust GCV's λ is larger and its error smaller on every draw; at 60 dB (the
    model error dominating) GCV ends far off on one draw of eight (error 0.55), robust GCV on none."""
    for snr_db, seeds in ((40.0, range(8)), (60.0, range(8))):
        worst = 0.0
        for seed in seeds:
            transfer, data, truth = _misplaced_problem(seed, snr_db)
            gamma = _laplacian_1d(transfer.shape[1])
            errors, lambdas = {}, {}
            for choice in ("gcv", "rgcv"):
                result = tikhonov(transfer, data, gamma, choice=choice, per_time=False)
                errors[choice] = np.linalg.norm(result.estimate - truth) / np.linalg.norm(truth)
                lambdas[choice] = result.lambdas[0]
            assert lambdas["rgcv"] > lambdas["gcv"], (snr_db, seed)
            if snr_db == 40.0:
                assert errors["rgcv"] < errors["gcv"], (seed, errors)
            worst = max(worst, errors["rgcv"])
        assert worst < 0.24, (snr_db, worst)
