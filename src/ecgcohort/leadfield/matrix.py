"""The lead matrix (paper eq. 3 with P1 V_m): φ(e_j, t) = L[j] @ V_m(t)."""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ecgcohort.fem import p1_gradients


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
