"""The lead matrix (paper eq. 3 with P1 V_m): φ(e_j, t) = L[j] @ V_m(t)."""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ecgcohort.fem import p1_gradients


def gradient_operator(points_m: np.ndarray, tetrahedra: np.ndarray) -> scipy.sparse.csr_matrix:
    """B (3 n_cells, n_nodes) with B[(c, i), a] = vol_c ∂_i φ_a on cell c (m² for points in m):
    the part of :func:`lead_matrix` that depends on the mesh alone, built once where several
    fields share a mesh."""
    tets = np.asarray(tetrahedra)
    grads, volumes = p1_gradients(points_m, tets)
    n_cells, n_nodes = tets.shape[0], int(np.asarray(points_m).shape[0])
    rows = (3 * np.arange(n_cells)[:, None, None] + np.arange(3)[None, None, :]).repeat(4, axis=1)
    columns = np.broadcast_to(tets[:, :, None], (n_cells, 4, 3))
    values = grads * volumes[:, None, None]
    return scipy.sparse.csr_matrix((values.ravel(), (rows.ravel(), columns.ravel())), shape=(3 * n_cells, n_nodes))


def lead_matrix(points_m: np.ndarray, tetrahedra: np.ndarray, intracellular: np.ndarray,
                grad_lead_field: np.ndarray, operator: scipy.sparse.csr_matrix | None = None) -> np.ndarray:
    """(n_electrodes, n_nodes) L with L[j, a] = −∫ G_i ∇φ_a · ∇Z_j over the myocardium.

    ``points_m`` (n_nodes, 3) in m, ``tetrahedra`` (n_cells, 4), ``intracellular`` G_i per cell
    (n_cells, 3, 3) in S/m, ``grad_lead_field`` ∇Z_j per cell (n_electrodes, n_cells, 3) in Ω/m
    (constant per cell for P1 Z); ``operator`` the mesh's :func:`gradient_operator` where it is
    already built. Dimensionless: electrode potentials = L @ V_m in V's units.
    """
    tets = np.asarray(tetrahedra)
    gz = np.asarray(grad_lead_field, dtype=np.float64)
    if gz.ndim == 2:
        gz = gz[None]
    if gz.shape[1:] != (tets.shape[0], 3):
        raise ValueError(f"grad_lead_field must be (n_electrodes, {tets.shape[0]}, 3), got {gz.shape}")
    weights = gradient_operator(points_m, tets) if operator is None else operator
    if weights.shape != (3 * tets.shape[0], int(np.asarray(points_m).shape[0])):
        raise ValueError(f"the operator is {weights.shape}, this mesh needs {(3 * tets.shape[0], len(points_m))}")
    flux = np.einsum("cij,ecj->eci", np.asarray(intracellular, dtype=np.float64), gz)  # G_i ∇Z_j
    # L = −flux · B: one sparse product
    return -np.asarray((weights.T @ flux.reshape(gz.shape[0], 3 * tets.shape[0]).T).T)


def recovered_flux_operators(points_m: np.ndarray, tetrahedra: np.ndarray, intracellular: np.ndarray,
                             interpolation: scipy.sparse.csr_matrix) -> list[scipy.sparse.csr_matrix]:
    """Per axis j, O_j = W_j P (n_nodes, N) in S·m: W_j (n_nodes, n_cells) with
    W_j[a, c] = vol_c (G_i ∇φ_a)_j on cell c (G_i folded into the gradient operator of
    :func:`lead_matrix`) and P (n_cells, N) the interpolation of a field on N nodes (another
    mesh's, e.g. the whole body's) at each cell's centroid, so that :func:`lead_matrix` of the
    interpolated nodal gradients G_j (N, E) is −Σ_j O_j G_j (:func:`lead_matrix_from_nodal`)
    without a per-cell array. Built once where several blocks of electrodes share a mesh."""
    tets = np.asarray(tetrahedra)
    grads, volumes = p1_gradients(points_m, tets)
    n_cells, n_nodes = tets.shape[0], int(np.asarray(points_m).shape[0])
    if interpolation.shape[0] != n_cells:
        raise ValueError(f"the interpolation has {interpolation.shape[0]} rows for {n_cells} cells")
    values = np.einsum("cij,caj->cai", np.asarray(intracellular, dtype=np.float64), grads) * volumes[:, None, None]
    columns = np.repeat(np.arange(n_cells), 4)
    return [(scipy.sparse.csr_matrix((values[:, :, axis].ravel(), (tets.ravel(), columns)), shape=(n_nodes, n_cells))
             @ interpolation).tocsr() for axis in range(3)]


def lead_matrix_from_nodal(operators: list[scipy.sparse.csr_matrix], nodal_gradients: list[np.ndarray]) -> np.ndarray:
    """:func:`lead_matrix` (n_electrodes, n_nodes) from :func:`recovered_flux_operators` and the
    nodal gradients G_j (N, E) in Ω/m they interpolate: L = −Σ_j O_j G_j."""
    if len(operators) != 3 or len(nodal_gradients) != 3:
        raise ValueError(f"{len(operators)} operators and {len(nodal_gradients)} gradient components for 3 axes")
    total = operators[0] @ nodal_gradients[0]
    for operator, gradient in zip(operators[1:], nodal_gradients[1:]):
        total += operator @ gradient
    return -np.ascontiguousarray(total.T)
