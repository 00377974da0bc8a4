"""V_m carried on the eikonal grid rather than on the mesh's nodes.

The activation job solves the eikonal equation on the myocardium refined K times
(:class:`ecgcohort.conduction.eikonal.EikonalGrid`: the mesh's nodes, then the edge midpoints)
and keeps the times of every grid node. A front is as sharp on the mesh as on the grid, but a
V_m sampled at the mesh's nodes only sees it at the coarser spacing: at the converged default
(1.2 mm) that is most of what the lead field's share of the ECG error measured
(docs/results/verification.md).

The lead field Z lives on the mesh (P1); the lead-field job stores its lead matrix
L = −(K Z)ᵀ, with K the intracellular stiffness matrix ∫ G_i ∇φ_a·∇φ_b of the myocardium. On
the grid the same Z weighs a V_m linear on each grid cell: L_g = −(K_g P Z)ᵀ, with P the
prolongation of mesh fields onto the grid and K_g the grid's stiffness (every grid cell keeps
its mesh cell's tensor, so K = Pᵀ K_g P). Since Lᵀ = −K Z, L_g = L K⁺ Pᵀ K_g, where K⁺ y is
any solution of K x = y (L's rows sum to zero on each connected part): exact for the P1 lead
matrix, and for the recovered one (``leadfield.cell_gradient``) the P1 potential whose current
tests on the mesh's basis as the recovered gradient's does. In words: the ECG of a grid V_m is
the mesh's lead matrix applied to the Ritz projection of that V_m onto the mesh (the P1 field
whose intracellular current tests like V_m's), which is V_m itself when V_m is linear on the
mesh's cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from ecgcohort.conduction.maps import ActivationMap
from ecgcohort.fem import p1_gradients, refine_tetrahedra, refinement_prolongation, stiffness_matrix


#: V_m values (nodes × time steps) sampled at once: 2 MB, a block of nodes that the lead-matrix
#: product reads back from the cache rather than from memory
VM_BLOCK_VALUES = 262_144


class ColumnBlocks(Protocol):
    """A (rows, nodes) matrix read by blocks of columns (nodes)."""

    shape: tuple[int, int]

    def columns(self, start: int, stop: int) -> np.ndarray:
        """Columns ``start:stop`` as a dense (rows, stop − start) float64 array."""


@dataclass(frozen=True)
class SourceGrid:
    """The nodes V_m is carried on: a mesh (``points_mm`` of its ``mesh_nodes`` first, then
    every refinement's edge midpoints) refined ``refinements`` times by
    :func:`ecgcohort.fem.refine_tetrahedra`, as the eikonal grid is; ``parent_cells`` (C_g,) the
    mesh cell of each grid cell (cells in the order of their mesh cells), ``prolongation`` (G, N)
    the P1 interpolation of mesh fields."""

    points_mm: np.ndarray
    tetrahedra: np.ndarray
    parent_cells: np.ndarray
    prolongation: scipy.sparse.csr_matrix
    refinements: int

    @classmethod
    def refined(cls, points_mm: np.ndarray, tetrahedra: np.ndarray, refinements: int) -> SourceGrid:
        """The grid of a mesh (``points_mm`` (N, 3), ``tetrahedra`` (C, 4)) refined
        ``refinements`` (≥ 0) times."""
        if int(refinements) != refinements or refinements < 0:
            raise ValueError(f"source grid refinements must be a non-negative integer, got {refinements!r}")
        points = np.asarray(points_mm, dtype=np.float64)
        tets = np.asarray(tetrahedra, dtype=np.int64)
        parent = np.arange(tets.shape[0])
        prolongation = scipy.sparse.identity(points.shape[0], format="csr")
        for _ in range(int(refinements)):
            prolongation = (refinement_prolongation(tets, points.shape[0]) @ prolongation).tocsr()
            points, tets, children_parent = refine_tetrahedra(points, tets)
            parent = parent[children_parent]
        # a mesh cell's children side by side: assembling on them reads nearby nodes (3.0 -> 1.9 s
        # for the default's 2.6 M cells); the node order, which the eikonal's times follow, is kept
        order = np.argsort(parent, kind="stable")
        return cls(points, np.ascontiguousarray(tets[order]), parent[order], prolongation, int(refinements))

    @property
    def mesh_nodes(self) -> int:
        return int(self.prolongation.shape[1])

    @property
    def n_nodes(self) -> int:
        return int(self.points_mm.shape[0])

    def activation(self, activation: ActivationMap) -> ActivationMap:
        """A mesh's activation map (with its grid times, :attr:`ActivationMap.refined_activation_ms`)
        on this grid's nodes: the grid's times, the APD scales interpolated (P1) from the mesh's
        nodes, and upstroke spreads of the map's factor over the grid's cells
        (:func:`ecgcohort.conduction.action_potential.upstroke_spread_ms`)."""
        from ecgcohort.conduction.action_potential import upstroke_spread_ms

        if activation.activation_ms.size != self.mesh_nodes:
            raise ValueError(f"the activation map has {activation.activation_ms.size} nodes, the grid's mesh "
                             f"{self.mesh_nodes}")
        if activation.refinements != self.refinements:
            raise ValueError(f"the activation map '{activation.scenario}' holds the times of a grid refined "
                             f"{activation.refinements} times, this grid is refined {self.refinements} times")
        tau = activation.grid_activation_ms
        if tau.size != self.n_nodes:
            raise ValueError(f"the activation map '{activation.scenario}' has {tau.size} grid times, the grid "
                             f"{self.n_nodes} nodes")
        upstroke = (activation.upstroke_spread * upstroke_spread_ms(self.tetrahedra, tau)
                    if activation.upstroke_spread > 0 else None)
        return ActivationMap(activation.scenario, activation.kind, tau, self.prolongation @ activation.apd_scale,
                             activation.sites_mm, activation.site_times_ms, upstroke)


class GridLeadMatrix:
    """The lead matrix on a :class:`SourceGrid`'s nodes, L_g = L K⁺ Pᵀ K_g (module notes), of
    mesh lead-matrix rows ``lead_matrix`` (R, N) with the myocardium's intracellular tensors
    ``intracellular`` (C, 3, 3) per mesh cell (S/m). Its columns are formed a block at a time
    (:meth:`columns`): the whole (R, G) is 0.9 GB for the study's 109 electrodes and their
    pseudo lead fields."""

    def __init__(self, lead_matrix: np.ndarray, grid: SourceGrid, intracellular: np.ndarray) -> None:
        matrix = np.atleast_2d(np.asarray(lead_matrix, dtype=np.float64))
        if matrix.shape[1] != grid.mesh_nodes:
            raise ValueError(f"the lead matrix has {matrix.shape[1]} nodes, the grid's mesh {grid.mesh_nodes}")
        tensors = np.asarray(intracellular, dtype=np.float64)
        if tensors.shape[0] != grid.parent_cells.max(initial=-1) + 1:
            raise ValueError(f"{tensors.shape[0]} intracellular tensors for a mesh of "
                             f"{grid.parent_cells.max(initial=-1) + 1} cells")
        grads, volumes = p1_gradients(grid.points_mm, grid.tetrahedra)
        grid_stiffness = stiffness_matrix(grid.tetrahedra, grads, volumes, tensors[grid.parent_cells], grid.n_nodes)
        #: K_g P (G, N); Pᵀ K_g P is the mesh's own stiffness matrix (the same cells and tensors)
        self._coupling = (grid_stiffness @ grid.prolongation).tocsr()
        self._potentials = _semidefinite_solve((grid.prolongation.T @ self._coupling).tocsr(), matrix.T)
        self.shape = (matrix.shape[0], grid.n_nodes)

    def columns(self, start: int, stop: int) -> np.ndarray:
        return np.ascontiguousarray((self._coupling[start:stop] @ self._potentials).T)


class _DenseColumns:
    """An array as :class:`ColumnBlocks`."""

    def __init__(self, matrix: np.ndarray) -> None:
        if matrix.ndim != 2:
            raise ValueError(f"a lead matrix must be (rows, nodes), got shape {matrix.shape}")
        self.matrix, self.shape = matrix, matrix.shape

    def columns(self, start: int, stop: int) -> np.ndarray:
        return self.matrix[:, start:stop]


def _semidefinite_solve(stiffness: scipy.sparse.csr_matrix, rhs: np.ndarray) -> np.ndarray:
    """A solution x (N, K) of K x = ``rhs`` for a stiffness matrix whose null space is the
    constants on each connected part of its mesh and right-hand sides orthogonal to it: one
    node of each part is tied (its diagonal doubled), which leaves the solution of the singular
    system with that node's value 0, and MUMPS factors the now definite matrix (Cholesky)."""
    from ecgcohort.leadfield.solver import CholeskyFactor

    parts, label = scipy.sparse.csgraph.connected_components(stiffness, directed=False)
    tied = np.unique(label, return_index=True)[1]
    diagonal = stiffness.diagonal()
    shift = np.zeros(stiffness.shape[0])
    shift[tied] = np.where(diagonal[tied] > 0, diagonal[tied], 1.0)
    definite = (stiffness + scipy.sparse.diags(shift)).tocsr()
    return CholeskyFactor(scipy.sparse.triu(definite, format="csr"), low_rank_tolerance=0.0).solve(rhs)


def many_electrode_potentials(lead_matrix: np.ndarray | ColumnBlocks, activations: Sequence[ActivationMap],
                              times_ms: np.ndarray, template, block_values: int = VM_BLOCK_VALUES,
                              columns_per_read: int = 16_384) -> list[np.ndarray]:
    """Electrode potentials (R, T) in V of each map in ``activations`` (all on the matrix's
    nodes) through ``lead_matrix`` (R, nodes; an array or :class:`ColumnBlocks`): columns are
    read ``columns_per_read`` at a time (an array's all at once: the sums of
    :func:`ecgcohort.ecg.forward.electrode_potentials`, in its order) and applied to every map's
    V_m (mV, sampled ``block_values`` values at a time) while they are in memory."""
    if isinstance(lead_matrix, np.ndarray):
        lead_matrix, columns_per_read = _DenseColumns(np.asarray(lead_matrix, dtype=np.float64)), max(1, lead_matrix.shape[1])
    rows, n_nodes = lead_matrix.shape
    for activation in activations:
        if activation.activation_ms.size != n_nodes:
            raise ValueError(f"the activation map '{activation.scenario}' has {activation.activation_ms.size} "
                             f"nodes, the lead matrix {n_nodes}")
    times = np.asarray(times_ms, dtype=np.float64).reshape(-1)
    samplers = [activation.potential_sampler(template) for activation in activations]
    out = [np.zeros((rows, times.size)) for _ in activations]
    block = max(1, block_values // max(times.size, 1))
    buffer = np.empty(min(block, max(n_nodes, 1)) * times.size)
    for start in range(0, n_nodes, columns_per_read):
        stop = min(start + columns_per_read, n_nodes)
        columns = lead_matrix.columns(start, stop)
        for a in range(start, stop, block):
            b = min(a + block, stop)
            for potentials, sampler in zip(out, samplers):
                potentials += columns[:, a - start:b - start] @ sampler.sample(times, buffer, a, b)
    return [potentials * 1e-3 for potentials in out]  # mV -> V: the lead matrix is dimensionless
