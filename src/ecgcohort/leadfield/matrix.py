"""The lead matrix (paper eq. 3 with P1 V_m): φ(e_j, t) = L[j] @ V_m(t)."""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse


@numba.njit(cache=True)
def _barycentric_gradients(points: np.ndarray, tetrahedra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grads = np.empty((tetrahedra.shape[0], 4, 3))
    determinants = np.empty(tetrahedra.shape[0])
    e = np.empty((3, 3))
    for cell in range(tetrahedra.shape[0]):
        origin = tetrahedra[cell, 0]
        for k in range(3):
            for axis in range(3):
                e[k, axis] = points[tetrahedra[cell, k + 1], axis] - points[origin, axis]
        # ∇λ_1 = e2 × e3 / det, ∇λ_2 = e3 × e1 / det, ∇λ_3 = e1 × e2 / det
        for k in range(3):
            a, b = e[(k + 1) % 3], e[(k + 2) % 3]
            grads[cell, k + 1, 0] = a[1] * b[2] - a[2] * b[1]
            grads[cell, k + 1, 1] = a[2] * b[0] - a[0] * b[2]
            grads[cell, k + 1, 2] = a[0] * b[1] - a[1] * b[0]
        det = e[0, 0] * grads[cell, 1, 0] + e[0, 1] * grads[cell, 1, 1] + e[0, 2] * grads[cell, 1, 2]
        determinants[cell] = det
        for axis in range(3):
            total = 0.0
            for k in range(1, 4):
                grads[cell, k, axis] /= det
                total += grads[cell, k, axis]
            grads[cell, 0, axis] = -total
    return grads, determinants


def p1_gradients(points: np.ndarray, tetrahedra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the four P1 basis functions per tetrahedron (n_cells, 4, 3), in 1/(unit of
    ``points``), and the cell volumes (n_cells,) in unit³. Closed-form inverse: the gradients of
    the barycentric coordinates are the faces' cross products over the determinant."""
    grads, det = _barycentric_gradients(np.ascontiguousarray(points, dtype=np.float64),
                                        np.ascontiguousarray(tetrahedra, dtype=np.int64))
    degenerate = np.abs(det) <= 1e-300
    if np.any(degenerate):
        raise ValueError(f"{int(degenerate.sum())} degenerate tetrahedra")
    return grads, np.abs(det) / 6.0


def lead_matrix(points_m: np.ndarray, tetrahedra: np.ndarray, intracellular: np.ndarray,
                grad_lead_field: np.ndarray) -> np.ndarray:
    """(n_electrodes, n_nodes) L with L[j, a] = −∫ G_i ∇φ_a · ∇Z_j over the myocardium.

    ``points_m`` (n_nodes, 3) in m, ``tetrahedra`` (n_cells, 4), ``intracellular`` G_i per cell
    (n_cells, 3, 3) in S/m, ``grad_lead_field`` ∇Z_j per cell (n_electrodes, n_cells, 3) in Ω/m
    (constant per cell for P1 Z). Dimensionless: electrode potentials = L @ V_m in V's units.
    """
    tets = np.asarray(tetrahedra)
    grads, volumes = p1_gradients(points_m, tets)
    gz = np.asarray(grad_lead_field, dtype=np.float64)
    if gz.ndim == 2:
        gz = gz[None]
    if gz.shape[1:] != (tets.shape[0], 3):
        raise ValueError(f"grad_lead_field must be (n_electrodes, {tets.shape[0]}, 3), got {gz.shape}")
    flux = np.einsum("cij,ecj->eci", np.asarray(intracellular, dtype=np.float64), gz)  # G_i ∇Z_j
    # B[(c, i), a] = vol_c ∂_i φ_a on cell c, so that L = −flux · B: one sparse product
    n_cells, n_nodes = tets.shape[0], int(np.asarray(points_m).shape[0])
    rows = (3 * np.arange(n_cells)[:, None, None] + np.arange(3)[None, None, :]).repeat(4, axis=1)
    columns = np.broadcast_to(tets[:, :, None], (n_cells, 4, 3))
    values = grads * volumes[:, None, None]
    weights = scipy.sparse.csr_matrix((values.ravel(), (rows.ravel(), columns.ravel())), shape=(3 * n_cells, n_nodes))
    return -np.asarray((weights.T @ flux.reshape(gz.shape[0], 3 * n_cells).T).T)
