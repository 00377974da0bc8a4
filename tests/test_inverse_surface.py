"""Heart-surface dynamics of the inverse-ECG benchmark: the cotangent Laplacian against the
spherical harmonics' eigenvalues and linear functions, and the Aliev–Panfilov front against the
closed-form speed of its bistable (Nagumo) part, with convergence under refinement; the
reconstruction metrics of paper 2 (eqs. 19–21) on signals with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecgcohort.inverse.surface import AlievPanfilov, cotangent_laplacian, simulate


def _icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    t = (1 + 5 ** 0.5) / 2
    points = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
              (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    points = [np.array(p, dtype=float) / np.linalg.norm(p) for p in points]
    for _ in range(subdivisions):
        midpoint, refined = {}, []

        def middle(i: int, j: int) -> int:
            key = (min(i, j), max(i, j))
            if key not in midpoint:
                m = points[i] + points[j]
                points.append(m / np.linalg.norm(m))
                midpoint[key] = len(points) - 1
            return midpoint[key]

        for a, b, c in faces:
            ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
            refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = refined
    return np.array(points), np.array(faces)


def _strip(length: float, width: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    nx, ny = int(round(length / h)), max(2, int(round(width / h)))
    x, y = np.meshgrid(np.linspace(0, length, nx + 1), np.linspace(0, width, ny + 1), indexing="ij")
    points = np.column_stack([x.ravel(), y.ravel(), np.zeros(x.size)])
    index = np.arange(x.size).reshape(nx + 1, ny + 1)
    a, b, c, d = index[:-1, :-1].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel(), index[:-1, 1:].ravel()
    return points, np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])])


def test_the_cotangent_laplacian_has_the_spherical_harmonics_eigenvalues_on_a_sphere():
    radius = 2.0
    points, faces = _icosphere(3)
    stiffness, mass = cotangent_laplacian(radius * points, faces)
    dense = stiffness.toarray()
    np.testing.assert_allclose(dense, dense.T, atol=1e-12)
    np.testing.assert_allclose(dense.sum(axis=1), 0.0, atol=1e-12)
    assert mass.sum() == pytest.approx(4 * math.pi * radius ** 2, rel=0.01)
    scale = 1 / np.sqrt(mass)
    eigenvalues = np.linalg.eigvalsh(scale[:, None] * dense * scale[None, :])
    assert abs(eigenvalues[0]) < 1e-10 and eigenvalues[1] > 1e-6
    # -Δ Y_l^m = l(l+1)/r² Y_l^m: 2/r² three times, 6/r² five times
    np.testing.assert_allclose(eigenvalues[1:4], 2 / radius ** 2, rtol=0.01)
    np.testing.assert_allclose(eigenvalues[4:9], 6 / radius ** 2, rtol=0.02)


def test_a_linear_function_has_no_laplacian_inside_a_flat_mesh():
    points, faces = _strip(3.0, 2.0, 0.25)
    points[:, :2] += np.random.default_rng(3).uniform(-0.05, 0.05, size=(len(points), 2))  # irregular
    stiffness, _ = cotangent_laplacian(points, faces)
    linear = 0.7 * points[:, 0] - 1.3 * points[:, 1] + 2.0
    interior = (points[:, 0] > 0.2) & (points[:, 0] < 2.8) & (points[:, 1] > 0.2) & (points[:, 1] < 1.8)
    assert np.abs(stiffness @ linear)[interior].max() < 1e-12


def _front_speed(h: float, dt: float) -> tuple[float, float]:
    """Speed and R² of a planar front on a strip: activation time against x over its middle."""
    points, faces = _strip(24.0, 1.0, h)
    model = AlievPanfilov()
    run = simulate(points, faces, model, points[:, 0] <= 1.0, duration=8.0, dt=dt, samples=81)
    middle = (points[:, 0] > 6.0) & (points[:, 0] < 18.0)
    slope, intercept = np.polyfit(points[middle, 0], run.activation[middle], 1)
    fitted = slope * points[middle, 0] + intercept
    residual = run.activation[middle] - fitted
    r2 = 1 - residual.var() / run.activation[middle].var()
    return 1 / slope, r2


def test_the_aliev_panfilov_front_moves_at_the_bistable_speed_and_converges():
    """Ahead of the front v ≈ 0 (e0 is small), so the front is that of u_t = DΔu + k u (u − a)(1 − u),
    whose speed is √(Dk/2)(1 − 2a) (5.06 length units per time unit for D = 10, k = 8, a = 0.1)."""
    model = AlievPanfilov()
    closed_form = math.sqrt(model.diffusion * model.k / 2) * (1 - 2 * model.a)
    coarse, r2_coarse = _front_speed(h=0.2, dt=0.01)
    fine, r2_fine = _front_speed(h=0.1, dt=0.005)
    assert min(r2_coarse, r2_fine) > 0.999  # constant speed: a travelling front
    # measured: 5.036 (h 0.2, dt 0.01) and 5.058 (h 0.1, dt 0.005) against 5.060
    assert abs(fine - coarse) / fine < 0.02
    assert fine == pytest.approx(closed_form, rel=0.01)


def test_bad_meshes_and_settings_are_refused():
    points, faces = _strip(1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="degenerate"):
        cotangent_laplacian(np.vstack([points, points[:1]]), np.vstack([faces, [[0, 1, len(points)]]]))
    with pytest.raises(ValueError, match="no triangle"):
        cotangent_laplacian(np.vstack([points, [[5.0, 5.0, 0.0]]]), faces)
    with pytest.raises(ValueError, match="no node is stimulated"):
        simulate(points, faces, AlievPanfilov(), np.zeros(len(points), bool), 1.0, 0.1, 5)
    with pytest.raises(ValueError, match="out of range"):
        AlievPanfilov(a=1.5)


def test_reconstruction_metrics_of_scaled_shifted_and_inverted_signals():
    from ecgcohort.inverse import correlation_coefficient, mean_squared_error, relative_error

    rng = np.random.default_rng(5)
    u = rng.normal(size=(30, 40))
    assert relative_error(1.25 * u, u) == pytest.approx(0.25)
    assert mean_squared_error(u + 0.3, u) == pytest.approx(0.09)
    # eq. 20 centres each node's series on its own mean: a per-node offset and a common scale keep CC = 1
    assert correlation_coefficient(2.0 * u + rng.normal(size=(30, 1)), u) == pytest.approx(1.0)
    assert correlation_coefficient(-u, u) == pytest.approx(-1.0)
    assert abs(correlation_coefficient(rng.normal(size=u.shape), u)) < 0.1
    with pytest.raises(ValueError, match="one shape"):
        relative_error(u[:, :5], u)
