"""Refinement of an eikonal grid only where the conduction metric needs it.

An edge's length in the metric of the eikonal equation, sqrt(d · D⁻¹ d) with D a cell's
conduction tensor (mm²/ms²) and d the edge (mm), is the time (ms) a straight front takes
to run along it; on a 1.2 mm heart at 0.6 / 0.3 / 0.17 m/s it is about 2 ms along the fibre
and 7 ms across the sheets. The first-order local updates are least accurate where a front
crosses a long edge, so :func:`bisect_marked_edges` splits only the edges marked by the
caller (for the eikonal grid: longer than a threshold, in the largest metric of the cells
around the edge) at their midpoints.

Conformity: every tetrahedron bisects its marked edges one at a time in one global order
of the edges (longest metric first, ties by node ids), each in the child that then holds
it (in both when the edge is opposite an edge already bisected). Bisecting an edge cuts
only the faces that contain it, so a face's triangles follow from its own marked edges in
that global order, and the two tetrahedra sharing a face split it the same way. A child
keeps its parent's index (and so its conduction tensor); the new nodes are the marked
edges' midpoints, after the given nodes.
"""

from __future__ import annotations

import numba
import numpy as np

#: a tetrahedron's six edges as pairs of local vertices
EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def mesh_edges(tetrahedra: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(edges (E, 2) node pairs, low index first, sorted; edge_of_cell (m, 6) each cell's edge
    numbers in :data:`EDGES` order)."""
    tets = np.asarray(tetrahedra, dtype=np.int64)
    pairs = np.sort(np.concatenate([tets[:, list(edge)] for edge in EDGES]), axis=1)
    n = np.int64(n_nodes)
    keys, inverse = np.unique(pairs[:, 0] * n + pairs[:, 1], return_inverse=True)
    return np.column_stack([keys // n, keys % n]), inverse.reshape(len(EDGES), -1).T.copy()


def edge_metric_lengths(points_mm: np.ndarray, tetrahedra: np.ndarray, tensors: np.ndarray,
                        tensor_of_cell: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges (E, 2), edge_of_cell (m, 6), lengths (E,) ms): every edge's travel time sqrt(d · D⁻¹ d),
    the largest over the cells around it, with cell c's conduction tensor
    ``tensors[tensor_of_cell[c]]`` ((mm/ms)², default ``tensors[c]``; points mm)."""
    points = np.asarray(points_mm, dtype=np.float64)
    tets = np.asarray(tetrahedra, dtype=np.int64)
    edges, edge_of_cell = mesh_edges(tets, len(points))
    inverse = np.linalg.inv(np.asarray(tensors, dtype=np.float64))
    index = np.arange(len(tets)) if tensor_of_cell is None else np.asarray(tensor_of_cell, dtype=np.int64)
    lengths = np.zeros(len(edges))
    for local, (a, b) in enumerate(EDGES):
        d = points[tets[:, b]] - points[tets[:, a]]
        along = np.sqrt(np.einsum("ci,cij,cj->c", d, inverse[index], d))
        np.maximum.at(lengths, edge_of_cell[:, local], along)
    return edges, edge_of_cell, lengths


def bisect_marked_edges(points_mm: np.ndarray, tetrahedra: np.ndarray, edges: np.ndarray,
                        edge_of_cell: np.ndarray, marked: np.ndarray, priority: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the ``marked`` (E,) edges of a conforming mesh (``edges``, ``edge_of_cell`` of
    :func:`mesh_edges`) at their midpoints, each tetrahedron bisecting its marked edges in
    increasing ``priority`` (E,; distinct values, one global order) — see the module notes.
    Returns (points (n + marked, 3): the given points first, then the midpoints in edge order;
    tetrahedra (m', 4), each child oriented as its parent; parent (m',) each child's cell). No
    marked edge: the mesh itself."""
    points = np.asarray(points_mm, dtype=np.float64)
    tets = np.ascontiguousarray(tetrahedra, dtype=np.int64)
    mark = np.asarray(marked, dtype=bool)
    rank = np.asarray(priority)
    if mark.shape != (len(edges),) or rank.shape != (len(edges),):
        raise ValueError(f"marked and priority must give one value per edge ({len(edges)}), got "
                         f"{mark.shape} and {rank.shape}")
    if len(np.unique(rank[mark])) != int(mark.sum()):
        raise ValueError("the marked edges' priorities must be distinct (one global order makes the mesh conform)")
    midpoint = np.full(len(edges), -1, dtype=np.int64)
    midpoint[mark] = len(points) + np.arange(int(mark.sum()))
    order = np.empty(len(edges), dtype=np.int64)
    order[np.argsort(rank, kind="stable")] = np.arange(len(edges))
    new_points = np.vstack([points, 0.5 * (points[edges[mark, 0]] + points[edges[mark, 1]])])
    args = (tets, np.ascontiguousarray(edges, dtype=np.int64), np.ascontiguousarray(edge_of_cell, dtype=np.int64),
            midpoint, order)
    counts = _bisect(*args, np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    starts = np.concatenate([[0], np.cumsum(counts)])
    children = np.empty((int(starts[-1]), 4), dtype=np.int64)
    parent = np.empty(int(starts[-1]), dtype=np.int64)
    _bisect(*args, children, parent, starts)
    return new_points, children, parent


#: a tetrahedron with all six edges marked has at most this many children (2^6)
_MAX_CHILDREN = 64


@numba.njit(cache=True)
def _bisect(tets: np.ndarray, edges: np.ndarray, edge_of_cell: np.ndarray, midpoint: np.ndarray,
            order: np.ndarray, children: np.ndarray, parent: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each cell's children; counts them only when ``starts`` is empty, writes them from
    ``starts[cell]`` into ``children`` / ``parent`` otherwise. Returns the counts (m,)."""
    counts = np.zeros(tets.shape[0], dtype=np.int64)
    local = np.empty((_MAX_CHILDREN, 4), dtype=np.int64)
    chosen = np.empty(6, dtype=np.int64)
    write = starts.shape[0] > 0
    for cell in range(tets.shape[0]):
        k = 0
        for e in range(6):
            edge = edge_of_cell[cell, e]
            if midpoint[edge] >= 0:
                chosen[k] = edge
                k += 1
        # the marked edges in the global order (insertion sort of at most six)
        for i in range(1, k):
            j = i
            while j > 0 and order[chosen[j - 1]] > order[chosen[j]]:
                chosen[j - 1], chosen[j] = chosen[j], chosen[j - 1]
                j -= 1
        for corner in range(4):
            local[0, corner] = tets[cell, corner]
        count = 1
        for i in range(k):
            a, b, m = edges[chosen[i], 0], edges[chosen[i], 1], midpoint[chosen[i]]
            for child in range(count):
                where_a, where_b = -1, -1
                for corner in range(4):
                    if local[child, corner] == a:
                        where_a = corner
                    elif local[child, corner] == b:
                        where_b = corner
                if where_a >= 0 and where_b >= 0:  # a child holding the edge: split it in two
                    for corner in range(4):
                        local[count, corner] = local[child, corner]
                    local[child, where_a] = m
                    local[count, where_b] = m
                    count += 1
        counts[cell] = count
        if write:
            for child in range(count):
                for corner in range(4):
                    children[starts[cell] + child, corner] = local[child, corner]
                parent[starts[cell] + child] = cell
    return counts


def metric_priority(edges: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The global bisection order (E,) of :func:`bisect_marked_edges`: longest metric first,
    ties by the edge's node ids."""
    order = np.lexsort((edges[:, 1], edges[:, 0], -np.asarray(lengths)))
    priority = np.empty(len(edges), dtype=np.int64)
    priority[order] = np.arange(len(edges))
    return priority
