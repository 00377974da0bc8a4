"""The pseudo lead field (paper eq. 11): the lead field of an electrode in an infinite,
homogeneous, isotropic conductor σ0, Z*(x) = 1 / (4π σ0 |e − x|) (Ω), which needs no torso.

Its gradient ∇Z*(x) = (e − x) / (4π σ0 |e − x|³) (Ω/m) plugs into the same lead matrix as the
FEM ∇Z, so FEM and pseudo-lead-field ECGs differ only in ∇Z. Lengths in m, σ0 in S/m.
"""

from __future__ import annotations

import numba
import numpy as np

from ecgcohort.fem import p1_gradients


#: Points per piece of :func:`pseudo_lead_field_gradient` (25 electrodes: 2.4 MB per temporary).
_POINTS_PER_PIECE = 4096


def _offsets(electrodes_m: np.ndarray, points_m: np.ndarray, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(E, P, 3) e − x and (E, P) |e − x|, m; a point on an electrode is an error (Z* is singular;
    the message counts the points from ``first``)."""
    e = np.asarray(electrodes_m, dtype=np.float64).reshape(-1, 3)
    x = np.asarray(points_m, dtype=np.float64).reshape(-1, 3)
    offset = e[:, None, :] - x[None, :, :]
    distance = np.linalg.norm(offset, axis=-1)
    if np.any(distance <= 0.0):
        j, p = np.argwhere(distance <= 0.0)[0]
        raise ValueError(f"point {first + p} coincides with electrode {j}: the pseudo lead field is singular there")
    return offset, distance


def _check_sigma(sigma0_s_per_m: float) -> float:
    sigma = float(sigma0_s_per_m)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"torso conductivity must be finite and > 0 S/m, got {sigma0_s_per_m!r}")
    return sigma


def pseudo_lead_field(electrodes_m: np.ndarray, points_m: np.ndarray, sigma0_s_per_m: float) -> np.ndarray:
    """Z* (E, P) in Ω of electrodes (E, 3) at points (P, 3), positions in m."""
    sigma = _check_sigma(sigma0_s_per_m)
    _, distance = _offsets(electrodes_m, points_m)
    return 1.0 / (4.0 * np.pi * sigma * distance)


def pseudo_lead_field_gradient(electrodes_m: np.ndarray, points_m: np.ndarray,
                               sigma0_s_per_m: float) -> np.ndarray:
    """∇_x Z* (E, P, 3) in Ω/m, exact: (e − x) / (4π σ0 |e − x|³). Computed
    :data:`_POINTS_PER_PIECE` points at a time, so that the temporaries stay in the cache (the
    same numbers: every entry is its own; 2x sooner at 400k points x 25 electrodes)."""
    sigma = _check_sigma(sigma0_s_per_m)
    points = np.asarray(points_m, dtype=np.float64).reshape(-1, 3)
    electrodes = np.asarray(electrodes_m, dtype=np.float64).reshape(-1, 3)
    gradient = np.empty((len(electrodes), len(points), 3))
    for start in range(0, len(points), _POINTS_PER_PIECE):
        offset, distance = _offsets(electrodes, points[start:start + _POINTS_PER_PIECE], first=start)
        gradient[:, start:start + _POINTS_PER_PIECE] = offset / (4.0 * np.pi * sigma * distance ** 3)[..., None]
    return gradient


def pseudo_lead_matrix(electrodes_m: np.ndarray, points_m: np.ndarray, tetrahedra: np.ndarray,
                       intracellular: np.ndarray, sigma0_s_per_m: float) -> np.ndarray:
    """(E, N) lead matrix of the pseudo lead field on a P1 myocardium (nodes in m, G_i per cell
    in S/m): electrode potentials (V) = result @ V_m (V). The same L[j, a] = −∫ G_i ∇φ_a · ∇Z*_j
    as :func:`ecgcohort.leadfield.matrix.lead_matrix`, with ∇Z* evaluated in the loop over the
    cells instead of stored for every electrode and cell (five times faster at 324k cells).

    ∇Z* is taken at each tetrahedron's centroid, i.e. constant per cell like the P1 FEM ∇Z it is
    compared with. The midpoint rule's error on the cell average is of relative order
    (h / |e − x|)², below 1 % for 4 mm elements 40 mm or more from the electrodes (and far
    below for the paper's 0.8 mm); the exact cell average would need Z*'s closed-form surface
    integrals over every face for a correction the FEM ∇Z itself does not resolve.
    """
    sigma = _check_sigma(sigma0_s_per_m)
    points = np.ascontiguousarray(points_m, dtype=np.float64)
    tets = np.ascontiguousarray(tetrahedra, dtype=np.int64)
    electrodes = np.ascontiguousarray(electrodes_m, dtype=np.float64).reshape(-1, 3)
    gi = np.asarray(intracellular, dtype=np.float64)
    if gi.shape != (tets.shape[0], 3, 3):
        raise ValueError(f"intracellular tensors must be ({tets.shape[0]}, 3, 3), got {gi.shape}")
    grads, volumes = p1_gradients(points, tets)
    # vol_c G_i ∇φ_a per cell and corner (S·m): the mesh's part, the same for every electrode
    flux = np.einsum("cij,caj->cai", gi, grads)
    flux *= volumes[:, None, None]
    transposed = np.zeros((points.shape[0], electrodes.shape[0]))
    singular = _accumulate_pseudo_lead_matrix(electrodes, points[tets].mean(axis=1), tets, flux,
                                              1.0 / (4.0 * np.pi * sigma), transposed)
    if singular >= 0:
        cell, electrode = divmod(int(singular), electrodes.shape[0])
        raise ValueError(f"the centroid of cell {cell} coincides with electrode {electrode}: the pseudo lead field is "
                         f"singular there")
    return transposed.T  # a view: the caller's stacking or product reads it without a transposing copy


@numba.njit(cache=True)
def _accumulate_pseudo_lead_matrix(electrodes: np.ndarray, centroids: np.ndarray, tetrahedra: np.ndarray,
                                   flux: np.ndarray, factor: float, out: np.ndarray) -> int:
    """out[a, j] −= flux[c, k] · ∇Z*_j(centroid c) over the cells c and their corners a =
    tetrahedra[c, k], with ∇Z* = factor (e − x) / |e − x|³ (``factor`` = 1/(4π σ0), Ω·m).
    Node-major ``out`` keeps one node's electrodes together, so the loops over the electrodes
    are contiguous and branch-free (vectorised). Returns −1, or c·E + j of the first centroid
    on an electrode (nothing more is added then)."""
    n_electrodes = electrodes.shape[0]
    gx, gy, gz = np.empty(n_electrodes), np.empty(n_electrodes), np.empty(n_electrodes)
    squared = np.empty(n_electrodes)
    ex, ey, ez = electrodes[:, 0].copy(), electrodes[:, 1].copy(), electrodes[:, 2].copy()
    for c in range(tetrahedra.shape[0]):
        cx, cy, cz = centroids[c, 0], centroids[c, 1], centroids[c, 2]
        for j in range(n_electrodes):
            squared[j] = (ex[j] - cx) ** 2 + (ey[j] - cy) ** 2 + (ez[j] - cz) ** 2
        if squared.min() <= 0.0:
            return c * n_electrodes + int(np.argmin(squared))
        for j in range(n_electrodes):
            scale = factor / (squared[j] * np.sqrt(squared[j]))
            gx[j] = (ex[j] - cx) * scale
            gy[j] = (ey[j] - cy) * scale
            gz[j] = (ez[j] - cz) * scale
        for k in range(4):
            row = out[tetrahedra[c, k]]
            fx, fy, fz = flux[c, k, 0], flux[c, k, 1], flux[c, k, 2]
            for j in range(n_electrodes):
                row[j] -= fx * gx[j] + fy * gy[j] + fz * gz[j]
    return -1
