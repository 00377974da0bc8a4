"""Point stimuli (Purkinje–muscle junctions, pacing sites) coupled to a tetrahedral myocardium.

A stimulus is a position (mm) and a time (ms), found on the patient's own surfaces and so the
same whatever mesh is made of the patient. On a mesh it becomes the four nodes of the
tetrahedron that holds it (the tetrahedron nearest to holding it, for a point on the
endocardium just outside a coarse mesh's chords), each at the stimulus time plus the exact
travel time of a straight front within that tetrahedron, sqrt(d · D⁻¹ d) with d the node's
offset and D = v_t² I + (v_f² − v_t²) f fᵀ the element's conduction tensor. Snapping a
stimulus to its nearest node instead shifts the activation by up to half an edge over the
cross-fibre velocity (3 ms on a 4 mm mesh) differently on every mesh.

A point source is also where the first-order eikonal scheme is least accurate: the front is
most curved there, and the local solves of the Fast Iterative Method, exact for plane fronts,
overestimate the time a curved front takes to cross an element, so a whole map runs late
(+0.85 ms on average at 4 mm, refined once, for ~300 Purkinje junctions). ``radius_edges``
widens each source to the nodes within that many edge lengths of the element holding it,
connected to it inside that ball, with the same straight-front times: the classical remedy of
initialising a point source's neighbourhood exactly, with a radius that shrinks with the grid,
so the converged activation is unchanged (docs/results/verification.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from scipy.spatial import cKDTree

from ecgcohort.conduction import eikonal_compiled
from ecgcohort.conduction.tensors import conduction_tensors
from ecgcohort.fem import centroid_tree, locate_points, point_tree


@dataclass(frozen=True)
class CoupledSources:
    """Stimuli on a mesh: for every (stimulus, corner) pair the mesh ``nodes``, the ``source``
    index, the ``cells`` (tetrahedron) and the ``offsets_mm`` (node − stimulus, mm)."""

    nodes: np.ndarray
    source: np.ndarray
    cells: np.ndarray
    offsets_mm: np.ndarray
    #: each node's barycentric weight at its stimulus (clamped to the element)
    weights: np.ndarray

    def interpolate(self, nodal_values: np.ndarray) -> np.ndarray:
        """A P1 field (per mesh node) read at every stimulus position, (k,)."""
        values = np.asarray(nodal_values, dtype=float)[self.nodes] * self.weights
        return np.bincount(self.source, weights=values, minlength=int(self.source.max(initial=-1)) + 1)

    def node_times(self, source_times_ms: np.ndarray, fibre_cell: np.ndarray | None, v_fibre: float,
                   v_cross: float, normal_cell: np.ndarray | None = None,
                   v_normal: float | None = None) -> np.ndarray:
        """Activation time (ms) of every coupled node: its stimulus's time plus the travel time
        within the tetrahedron, √(dᵀ D⁻¹ d) with D the cell's conduction tensor (velocities m/s =
        mm/ms; fibres per cell as vectors or structure tensors, None: isotropic at ``v_fibre``;
        sheet normals per cell and ``v_normal`` make it orthotropic, see
        :func:`ecgcohort.conduction.tensors.conduction_tensors`)."""
        times = np.asarray(source_times_ms, dtype=float)[self.source]
        d = self.offsets_mm
        if fibre_cell is None:
            return times + np.linalg.norm(d, axis=1) / v_fibre
        normals = None if normal_cell is None else np.asarray(normal_cell, dtype=float)[self.cells]
        tensors = conduction_tensors(np.asarray(fibre_cell, dtype=float)[self.cells], v_fibre, v_cross, normals,
                                     v_normal)
        return times + np.sqrt(np.einsum("ij,ij->i", d, np.linalg.solve(tensors, d[:, :, None])[:, :, 0]))


@dataclass(frozen=True)
class MeshSearch:
    """What coupling searches a mesh with, built once per grid: k-d trees of its cell centroids
    and nodes (scipy cKDTree) and each node's cells (CSR ``cell_offsets`` (n+1,), ``node_cells``),
    along whose corners a source's ball grows."""

    centroids: cKDTree
    nodes: cKDTree
    cell_offsets: np.ndarray
    node_cells: np.ndarray

    @classmethod
    def of(cls, points_mm: np.ndarray, tetrahedra: np.ndarray) -> MeshSearch:
        tets = np.ascontiguousarray(tetrahedra, dtype=np.int64)
        cell_offsets, node_cells, _ = eikonal_compiled.node_cells(len(points_mm), tets)
        return cls(centroid_tree(points_mm, tets), point_tree(points_mm), cell_offsets, node_cells)


def couple_points(points_mm: np.ndarray, tetrahedra: np.ndarray, positions_mm: np.ndarray, *,
                  candidates: int = 24, radius_edges: float = 0.0, trees: MeshSearch | None = None
                  ) -> CoupledSources:
    """Couple stimulus ``positions_mm`` (k, 3) to the mesh (``points_mm`` (n, 3), ``tetrahedra``
    (m, 4)): each to the tetrahedron holding it, or the one nearest to holding it (largest
    smallest barycentric coordinate among the ``candidates`` with the nearest centroids).
    With ``radius_edges`` > 0 each stimulus also takes the nodes of its ball (see the module
    notes), with barycentric weight 0: :meth:`CoupledSources.interpolate` is unchanged;
    ``trees`` is the mesh's :class:`MeshSearch` when the caller keeps it."""
    if not np.isfinite(radius_edges) or radius_edges < 0:
        raise ValueError(f"the source radius must be >= 0 edge lengths, got {radius_edges!r}")
    points = np.asarray(points_mm, dtype=float)
    tets = np.asarray(tetrahedra, dtype=np.int64)
    positions = np.atleast_2d(np.asarray(positions_mm, dtype=float))
    if trees is None:
        trees = MeshSearch.of(points, tets)
    chosen, weights = locate_points(points, tets, positions, candidates, centroids=trees.centroids)
    rows = np.arange(len(positions))
    nodes = tets[chosen].ravel()
    source = np.repeat(rows, 4)
    weights = weights.ravel()
    if radius_edges > 0:
        ball_nodes, ball_source = _source_balls(points, tets, positions, chosen, float(radius_edges), trees)
        nodes, source = np.concatenate([nodes, ball_nodes]), np.concatenate([source, ball_source])
        weights = np.concatenate([weights, np.zeros(len(ball_nodes))])
    return CoupledSources(nodes=nodes, source=source, cells=chosen[source],
                          offsets_mm=points[nodes] - positions[source], weights=weights)


@numba.njit(cache=True)
def _reached_inside(tetrahedra: np.ndarray, cell_offsets: np.ndarray, node_cells: np.ndarray, seeds: np.ndarray,
                    inside: np.ndarray, mark: np.ndarray, token: int) -> np.ndarray:
    """The nodes reached from ``seeds`` along mesh edges (two nodes of a tetrahedron) through
    ``inside`` nodes only, the seeds excluded, sorted. ``mark`` (n,) is scratch that holds no
    ``token`` or ``token + 1`` on entry."""
    for node in inside:
        mark[node] = token
    queue = np.empty(len(inside) + len(seeds), dtype=np.int64)
    size = 0
    for node in seeds:
        if mark[node] != token + 1:
            mark[node] = token + 1
            queue[size] = node
            size += 1
    first_reached = size
    head = 0
    while head < size:
        node = queue[head]
        head += 1
        for k in range(cell_offsets[node], cell_offsets[node + 1]):
            for local in range(4):
                other = tetrahedra[node_cells[k], local]
                if mark[other] == token:
                    mark[other] = token + 1
                    queue[size] = other
                    size += 1
    return np.sort(queue[first_reached:size])


def _source_balls(points: np.ndarray, tets: np.ndarray, positions: np.ndarray, cells: np.ndarray,
                  radius_edges: float, search: MeshSearch) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, stimulus index) of every stimulus's ball: the nodes within ``radius_edges`` mean
    edge lengths of its cell that the cell's corners reach along mesh edges without leaving the
    ball, so a ball never jumps across a blood pool or a thin wall to the facing myocardium."""
    corners = points[tets[cells]]
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    radius = radius_edges * np.mean([np.linalg.norm(corners[:, i] - corners[:, j], axis=1) for i, j in pairs], axis=0)
    found_nodes, found_source = [], []
    mark = np.zeros(len(points), dtype=np.int64)
    for k, near in enumerate(search.nodes.query_ball_point(positions, radius)):
        ball = _reached_inside(tets, search.cell_offsets, search.node_cells, tets[cells[k]],
                               np.asarray(near, dtype=np.int64), mark, 2 * k + 1)
        found_nodes.append(ball)
        found_source.append(np.full(len(ball), k, dtype=np.int64))
    if not found_nodes:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found_nodes), np.concatenate(found_source)
