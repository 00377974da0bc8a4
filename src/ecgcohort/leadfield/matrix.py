"""The lead matrix (paper eq. 3 with P1 V_m): φ(e_j, t) = L[j] @ V_m(t)."""

from __future__ import annotations

import numpy as np
import scipy.sparse


def p1_gradients(points: np.ndarray, tetrahedra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the four P1 basis functions per tetrahedron (n_cells, 4, 3), in 1/(unit of
    ``points``), and the cell volumes (n_cells,) in unit³. Closed-form inverse: the gradients of
    the barycentric coordinates are the faces' cross products over the determinant."""
    p = np.asarray(points, dtype=np.float64)[np.asarray(tetrahedra)]
    e1, e2, e3 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    grads = np.empty((len(p), 4, 3))
    grads[:, 1], grads[:, 2], grads[:, 3] = np.cross(e2, e3), np.cross(e3, e1), np.cross(e1, e2)
    det = np.einsum("ij,ij->i", e1, grads[:, 1])
    if np.any(np.abs(det) <= 1e-300):
        raise ValueError(f"{int(np.sum(np.abs(det) <= 1e-300))} degenerate tetrahedra")
    grads[:, 1:] /= det[:, None, None]
    grads[:, 0] = -grads[:, 1:].sum(axis=1)
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
