"""Heart-surface dynamics for the inverse-ECG benchmark (paper 2, eqs. 1–3): the P1 surface
Laplacian of a closed triangle mesh and the Aliev–Panfilov model integrated on it.

Discretisation. With P1 elements on the triangles, −∫ ∇u · ∇φ_i is the cotangent stiffness
matrix K (K_ij = −(cot α_ij + cot β_ij)/2 for an edge ij, K_ii = −Σ_j K_ij) and ∫ u φ_i is
replaced by the lumped mass M_ii = (area of the triangles at i)/3, so Δu ≈ −M⁻¹ K u. No-flux
(eq. 3) is the natural boundary condition of this weak form; on a closed surface there is no
boundary at all.

Time integration (IMEX Euler): the stiff, linear diffusion implicitly and the local kinetics
explicitly,

    (M + Δt D K) u^{n+1} = M (u^n + Δt f(u^n, v^n)),   v^{n+1} = v^n + Δt g(u^n, v^n),

with f = k u (u − a)(1 − u) − u v and g = ξ(u, v)(−v − k u (u − a − 1)), ξ = e0 + μ1 v/(u + μ2).
The implicit diffusion removes the explicit scheme's bound Δt < h²/(4D) (about 10⁻³ time units
for D = 10 on a 0.2-unit mesh), so the step is set by the kinetics alone; M + Δt D K is
symmetric positive definite and factored once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg


def _check_mesh(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if points.ndim != 2 or points.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"need points (N, 3) and triangles (F, 3), got {points.shape} and {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(points)):
        raise ValueError("a triangle refers to a point that does not exist")
    return points, faces


def cotangent_laplacian(points: np.ndarray, faces: np.ndarray) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """(K, m): the P1 stiffness matrix K (N, N), symmetric positive semi-definite with K·1 = 0,
    and the lumped mass m (N,) = a third of the area of the triangles at each node, in the
    units of ``points`` (K dimensionless, m in length²). Δu ≈ −(K u)/m."""
    points, faces = _check_mesh(points, faces)
    corners = points[faces]  # (F, 3, 3)
    twice_area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    degenerate = twice_area <= 1e-14 * max(float(np.ptp(points)), 1.0) ** 2
    if np.any(degenerate):
        raise ValueError(f"{int(np.sum(degenerate))} degenerate triangles")
    rows, columns, values = [], [], []
    for k in range(3):
        i, j, o = faces[:, (k + 1) % 3], faces[:, (k + 2) % 3], faces[:, k]
        # cot of the angle at o, opposite the edge ij: (a·b)/|a × b|
        a, b = points[i] - points[o], points[j] - points[o]
        cot = np.sum(a * b, axis=1) / twice_area
        for r, c in ((i, j), (j, i)):
            rows.append(r)
            columns.append(c)
            values.append(-0.5 * cot)
    n = len(points)
    off = scipy.sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
                                  shape=(n, n))
    stiffness = off - scipy.sparse.diags(np.asarray(off.sum(axis=1)).ravel())
    mass = np.bincount(faces.ravel(), weights=np.repeat(twice_area / 6.0, 3), minlength=n)
    if np.any(mass <= 0):
        raise ValueError(f"{int(np.sum(mass <= 0))} points belong to no triangle")
    return stiffness.tocsr(), mass


@dataclass(frozen=True)
class AlievPanfilov:
    """The Aliev–Panfilov model of paper 2 (eqs. 1–3; Aliev & Panfilov 1996), dimensionless
    u, v and t; ``diffusion`` D in (length unit of the mesh)² per time unit."""

    a: float = 0.1
    diffusion: float = 10.0
    k: float = 8.0
    e0: float = 0.002
    mu1: float = 0.3
    mu2: float = 0.3

    def __post_init__(self) -> None:
        if not (0 < self.a < 1 and self.diffusion > 0 and self.k > 0 and self.e0 > 0 and self.mu2 > 0
                and self.mu1 >= 0):
            raise ValueError(f"Aliev-Panfilov parameters out of range: {self}")

    def reaction(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(∂u/∂t, ∂v/∂t) of the kinetics without diffusion."""
        du = self.k * u * (u - self.a) * (1.0 - u) - u * v
        xi = self.e0 + self.mu1 * v / (u + self.mu2)
        return du, xi * (-v - self.k * u * (u - self.a - 1.0))


@dataclass(frozen=True)
class SurfaceSimulation:
    """u, v (T, N) at ``times`` (T,), and the activation time of each node (first time u
    reaches 0.5, linearly interpolated between steps; NaN where it never does)."""

    times: np.ndarray
    u: np.ndarray
    v: np.ndarray
    activation: np.ndarray


def simulate(points: np.ndarray, faces: np.ndarray, model: AlievPanfilov, stimulated: np.ndarray,
             duration: float, dt: float, samples: int) -> SurfaceSimulation:
    """Integrate the model on a triangle mesh from rest (u = v = 0) with u = 1 at the
    ``stimulated`` nodes (boolean (N,) or indices) at t = 0, up to ``duration`` (time units) in
    steps of at most ``dt``; u and v are returned at ``samples`` equally spaced times from 0 to
    ``duration`` (the step is shortened so that every sample interval holds a whole number of
    steps: the sample times are exactly uniform, as the fourth-order time stencils need)."""
    if not (duration > 0 and 0 < dt <= duration) or samples < 2:
        raise ValueError(f"need 0 < dt <= duration and samples >= 2, got dt={dt}, duration={duration}, "
                         f"samples={samples}")
    stiffness, mass = cotangent_laplacian(points, faces)
    n = len(mass)
    u, v = np.zeros(n), np.zeros(n)
    u[np.asarray(stimulated)] = 1.0
    if not np.any(u):
        raise ValueError("no node is stimulated")
    per_sample = int(np.ceil(duration / (samples - 1) / dt - 1e-9))
    steps = per_sample * (samples - 1)
    dt = duration / steps
    solve = scipy.sparse.linalg.factorized((scipy.sparse.diags(mass) + dt * model.diffusion * stiffness).tocsc())
    wanted = np.arange(samples) * per_sample
    out_u, out_v = np.empty((samples, n)), np.empty((samples, n))
    activation = np.where(u >= 0.5, 0.0, np.nan)
    sample = 0
    for step in range(steps + 1):
        while sample < samples and wanted[sample] == step:
            out_u[sample], out_v[sample] = u, v
            sample += 1
        if step == steps:
            break
        du, dv = model.reaction(u, v)
        new_u = solve(mass * (u + dt * du))
        v = v + dt * dv
        crossed = np.isnan(activation) & (new_u >= 0.5)
        activation[crossed] = (step + (0.5 - u[crossed]) / (new_u[crossed] - u[crossed])) * dt
        u = new_u
    return SurfaceSimulation(times=np.linspace(0.0, duration, samples), u=out_u, v=out_v, activation=activation)
