"""P1 finite elements on tetrahedra, shared by the stages that solve on a mesh: basis-function
gradients, cell volumes, the stiffness and mass matrices (units those of the points), and
uniform refinement."""

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


def tetrahedron_volumes(points: np.ndarray, tetrahedra: np.ndarray) -> np.ndarray:
    """Cell volumes (n_cells,) in unit³ of ``points``: :func:`p1_gradients`' |e1 · (e2 × e3)| / 6
    with the same arithmetic in the same order (the same numbers), without the gradients (a
    third of the work, and no compiled code to load)."""
    points = np.asarray(points, dtype=np.float64)
    tetrahedra = np.asarray(tetrahedra, dtype=np.int64)
    origin = points[tetrahedra[:, 0]]
    e1, e2, e3 = (points[tetrahedra[:, k]] - origin for k in (1, 2, 3))
    determinant = (e1[:, 0] * (e2[:, 1] * e3[:, 2] - e2[:, 2] * e3[:, 1])
                   + e1[:, 1] * (e2[:, 2] * e3[:, 0] - e2[:, 0] * e3[:, 2])
                   + e1[:, 2] * (e2[:, 0] * e3[:, 1] - e2[:, 1] * e3[:, 0]))
    degenerate = np.abs(determinant) <= 1e-300
    if np.any(degenerate):
        raise ValueError(f"{int(degenerate.sum())} degenerate tetrahedra")
    return np.abs(determinant) / 6.0


@numba.njit(cache=True)
def _element_upper_triplets(tetrahedra: np.ndarray, grads: np.ndarray, volumes: np.ndarray,
                            tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    count = tetrahedra.shape[0]
    rows = np.empty(10 * count, dtype=np.int64)
    columns = np.empty(10 * count, dtype=np.int64)
    values = np.empty(10 * count)
    flux = np.empty((4, 3))
    for cell in range(count):
        for b in range(4):
            for i in range(3):
                flux[b, i] = (tensors[cell, i, 0] * grads[cell, b, 0] + tensors[cell, i, 1] * grads[cell, b, 1]
                              + tensors[cell, i, 2] * grads[cell, b, 2])
        k = 10 * cell
        for a in range(4):
            for b in range(a, 4):
                first, second = tetrahedra[cell, a], tetrahedra[cell, b]
                rows[k] = min(first, second)
                columns[k] = max(first, second)
                values[k] = volumes[cell] * (grads[cell, a, 0] * flux[b, 0] + grads[cell, a, 1] * flux[b, 1]
                                             + grads[cell, a, 2] * flux[b, 2])
                k += 1
    return rows, columns, values


def stiffness_upper_triplets(tetrahedra: np.ndarray, grads: np.ndarray, volumes: np.ndarray,
                             tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, values) of ∫ G∇φ_a·∇φ_b per cell for its 10 node pairs, oriented so
    that row <= column (the upper triangle of the symmetric matrix), S, unsummed."""
    return _element_upper_triplets(np.ascontiguousarray(tetrahedra, dtype=np.int64),
                                   np.ascontiguousarray(grads, dtype=np.float64),
                                   np.ascontiguousarray(volumes, dtype=np.float64),
                                   np.ascontiguousarray(tensors, dtype=np.float64))


def pinned_upper_csr(rows: np.ndarray, columns: np.ndarray, values: np.ndarray, n_nodes: int,
                     pinned: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (indptr, indices, data) of upper-triangle triplets (:func:`stiffness_upper_triplets`)
    with node ``pinned``'s row and column replaced by its summed diagonal alone: each row's
    entries in the triplets' order, duplicates not summed yet (scipy's ``sum_duplicates`` then
    gives what ``csr_matrix`` of the filtered triplets gives, bit for bit: the same entries
    reach its per-row sort in the same order). One pass to count and one to fill instead of
    boolean masks, concatenation and scipy's COO conversion of 6 M triplets (the lead-field
    matrix 0.42 -> 0.35 s at 1.2 mm)."""
    indptr, indices, data, diagonal = _rows_without_node(np.ascontiguousarray(rows, dtype=np.int64),
                                                         np.ascontiguousarray(columns, dtype=np.int64),
                                                         np.ascontiguousarray(values, dtype=np.float64),
                                                         int(n_nodes), int(pinned))
    # numpy's sum of the diagonal's contributions in their order, as the filtered sum was
    data[indptr[pinned]] = diagonal.sum()
    return indptr, indices, data


@numba.njit(cache=True)
def _rows_without_node(rows: np.ndarray, columns: np.ndarray, values: np.ndarray, n_rows: int,
                       node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    counts = np.zeros(n_rows + 1, dtype=np.int64)
    on_diagonal = 0
    for k in range(rows.shape[0]):
        if rows[k] != node and columns[k] != node:
            counts[rows[k] + 1] += 1
        elif rows[k] == node and columns[k] == node:
            on_diagonal += 1
    counts[node + 1] += 1  # the pinned row: its diagonal alone
    indptr = np.cumsum(counts)
    filled = indptr[:-1].copy()
    indices = np.empty(indptr[n_rows], dtype=np.int64)
    data = np.empty(indptr[n_rows])
    diagonal = np.empty(on_diagonal)
    d = 0
    for k in range(rows.shape[0]):
        row, column = rows[k], columns[k]
        if row != node and column != node:
            indices[filled[row]] = column
            data[filled[row]] = values[k]
            filled[row] += 1
        elif row == node and column == node:
            diagonal[d] = values[k]
            d += 1
    indices[filled[node]] = node
    data[filled[node]] = 0.0
    return indptr, indices, data, diagonal


def stiffness_matrix(tetrahedra: np.ndarray, grads: np.ndarray, volumes: np.ndarray, tensors: np.ndarray,
                     n_nodes: int):
    """The symmetric P1 matrix ∫ G∇φ_a·∇φ_b (scipy CSR, (n_nodes, n_nodes), sorted indices), S."""
    tets = np.ascontiguousarray(tetrahedra, dtype=np.int64)
    indptr, indices = _node_pattern(tets, int(n_nodes))
    data = _assemble_stiffness(tets, np.ascontiguousarray(grads, dtype=np.float64),
                               np.ascontiguousarray(volumes, dtype=np.float64),
                               np.ascontiguousarray(tensors, dtype=np.float64), indptr, indices)
    return _csr(data, indices, indptr, n_nodes)


def mass_matrix(tetrahedra: np.ndarray, volumes: np.ndarray, n_nodes: int):
    """The consistent P1 mass matrix ∫ φ_a φ_b (scipy CSR, (n_nodes, n_nodes), sorted indices):
    vol/10 on the diagonal and vol/20 off it, per cell."""
    tets = np.ascontiguousarray(tetrahedra, dtype=np.int64)
    indptr, indices = _node_pattern(tets, int(n_nodes))
    data = _assemble_mass(tets, np.ascontiguousarray(volumes, dtype=np.float64), indptr, indices)
    return _csr(data, indices, indptr, n_nodes)


def _csr(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_nodes: int):
    matrix = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n_nodes, n_nodes))
    matrix.has_sorted_indices = True
    return matrix


@numba.njit(cache=True)
def _node_pattern(tetrahedra: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, sorted indices) of the P1 matrix pattern: each node with itself and every
    node it shares a tetrahedron with. Assembling into it directly replaces scipy's COO sums
    (2-3 s for 380k cells) by one pass over the cells."""
    counts = np.zeros(n_nodes + 1, dtype=np.int64)
    for cell in range(tetrahedra.shape[0]):
        for local in range(4):
            counts[tetrahedra[cell, local] + 1] += 1
    cell_start = np.cumsum(counts)
    filled = cell_start[:-1].copy()
    node_cells = np.empty(cell_start[n_nodes], dtype=np.int64)
    for cell in range(tetrahedra.shape[0]):
        for local in range(4):
            v = tetrahedra[cell, local]
            node_cells[filled[v]] = cell
            filled[v] += 1
    seen = np.full(n_nodes, -1, dtype=np.int64)
    indptr = np.zeros(n_nodes + 1, dtype=np.int64)
    for sweep in range(2):
        if sweep == 1:
            for node in range(n_nodes):
                indptr[node + 1] += indptr[node]
            indices = np.empty(indptr[n_nodes], dtype=np.int64)
            seen[:] = -1
        for node in range(n_nodes):
            position = indptr[node]
            for k in range(cell_start[node], cell_start[node + 1]):
                for local in range(4):
                    other = tetrahedra[node_cells[k], local]
                    if seen[other] != node:
                        seen[other] = node
                        if sweep == 0:
                            indptr[node + 1] += 1
                        else:
                            indices[position] = other
                            position += 1
            if sweep == 1:
                indices[indptr[node]:indptr[node + 1]].sort()
    return indptr, indices


@numba.njit(cache=True, inline="always")
def _entry(indptr: np.ndarray, indices: np.ndarray, row: int, column: int) -> int:
    """Position of (row, column) in a CSR pattern with sorted indices (binary search)."""
    low, high = indptr[row], indptr[row + 1] - 1
    while low < high:
        middle = (low + high) >> 1
        if indices[middle] < column:
            low = middle + 1
        else:
            high = middle
    return low


@numba.njit(cache=True)
def _assemble_stiffness(tetrahedra: np.ndarray, grads: np.ndarray, volumes: np.ndarray, tensors: np.ndarray,
                        indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    data = np.zeros(indices.shape[0])
    flux = np.empty((4, 3))
    for cell in range(tetrahedra.shape[0]):
        for b in range(4):
            for i in range(3):
                flux[b, i] = (tensors[cell, i, 0] * grads[cell, b, 0] + tensors[cell, i, 1] * grads[cell, b, 1]
                              + tensors[cell, i, 2] * grads[cell, b, 2])
        for a in range(4):
            for b in range(a, 4):
                value = volumes[cell] * (grads[cell, a, 0] * flux[b, 0] + grads[cell, a, 1] * flux[b, 1]
                                         + grads[cell, a, 2] * flux[b, 2])
                first, second = tetrahedra[cell, a], tetrahedra[cell, b]
                data[_entry(indptr, indices, first, second)] += value
                if a != b:
                    data[_entry(indptr, indices, second, first)] += value
    return data


@numba.njit(cache=True)
def _assemble_mass(tetrahedra: np.ndarray, volumes: np.ndarray, indptr: np.ndarray,
                   indices: np.ndarray) -> np.ndarray:
    data = np.zeros(indices.shape[0])
    for cell in range(tetrahedra.shape[0]):
        for a in range(4):
            for b in range(4):
                data[_entry(indptr, indices, tetrahedra[cell, a], tetrahedra[cell, b])] += \
                    volumes[cell] * (0.1 if a == b else 0.05)
    return data


_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def _unique_edges(tets: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """(the mesh's edges (n_edges, 2), lower node first, in the order their midpoints take in
    :func:`refine_tetrahedra`; for each of the (6 m,) cell edges in ``_EDGES``-major order, its
    row)."""
    edges = np.sort(np.concatenate([tets[:, list(edge)] for edge in _EDGES]), axis=1)
    # one int64 key per edge: sorts like the rows, 10x faster than np.unique(axis=0)
    n = np.int64(n_points)
    keys, inverse = np.unique(edges[:, 0] * n + edges[:, 1], return_inverse=True)
    return np.column_stack([keys // n, keys % n]), inverse


def refinement_prolongation(tetrahedra: np.ndarray, n_points: int) -> scipy.sparse.csr_matrix:
    """(n + n_edges, n) sparse: a P1 field's values on the nodes of its mesh's
    :func:`refine_tetrahedra` (the given nodes, then the edge midpoints in its order) from its
    values on the mesh's ``n_points`` nodes — the same piecewise-linear function on the finer
    mesh."""
    edges, _ = _unique_edges(np.asarray(tetrahedra, dtype=np.int64), int(n_points))
    n, m = int(n_points), edges.shape[0]
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n, n + m), 2)])
    return scipy.sparse.csr_matrix((np.concatenate([np.ones(n), np.full(2 * m, 0.5)]),
                                    (rows, np.concatenate([np.arange(n), edges.ravel()]))), shape=(n + m, n))


def refine_tetrahedra(points: np.ndarray, tetrahedra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform (red) refinement: every tetrahedron into eight by its edge midpoints, the inner
    octahedron split along its shortest diagonal (Bey 1995: bounded shape degradation under
    repetition). Returns (points (n + n_edges, 3) — the given points first, in their order, then
    the edge midpoints —, tetrahedra (8 m, 4), parent (8 m,) the index of each child's cell).
    The refined mesh is conforming when the given one is, and fills the same volume."""
    points = np.asarray(points, dtype=np.float64)
    tets = np.asarray(tetrahedra, dtype=np.int64)
    unique, inverse = _unique_edges(tets, points.shape[0])
    mid = points.shape[0] + inverse.reshape(len(_EDGES), -1).T  # (m, 6) in _EDGES order
    refined_points = np.vstack([points, 0.5 * (points[unique[:, 0]] + points[unique[:, 1]])])
    children = _red_children(tets, np.ascontiguousarray(mid), refined_points)
    parent = np.tile(np.arange(tets.shape[0]), 8)
    return refined_points, children, parent


@numba.njit(cache=True, nogil=True)
def _red_children(tets: np.ndarray, mid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The eight children of every tetrahedron (8 m, 4): the four corner tetrahedra of all cells,
    then the inner octahedron's four of all cells, split along its shortest diagonal (the
    first of equals). ``mid`` (m, 6): the node of each edge's midpoint, in ``_EDGES`` order."""
    m = tets.shape[0]
    children = np.empty((8 * m, 4), dtype=np.int64)
    # the octahedron's three diagonals join the midpoints of opposite edges (01-23, 02-13,
    # 03-12); around each, the other four midpoints form a cycle (as edge numbers in _EDGES)
    diagonals = ((0, 5), (1, 4), (2, 3))
    cycles = ((1, 2, 4, 3), (0, 2, 5, 3), (0, 1, 5, 4))
    corner_edges = ((0, 1, 2), (0, 3, 4), (1, 3, 5), (2, 4, 5))
    for cell in range(m):
        for corner in range(4):
            row = corner * m + cell
            children[row, 0] = tets[cell, corner]
            for k in range(3):
                children[row, k + 1] = mid[cell, corner_edges[corner][k]]
        choice = 0
        shortest = np.inf
        for k in range(3):
            a = mid[cell, diagonals[k][0]]
            b = mid[cell, diagonals[k][1]]
            total = 0.0
            for axis in range(3):
                d = points[a, axis] - points[b, axis]
                total += d * d
            length = np.sqrt(total)
            if length < shortest:
                shortest = length
                choice = k
        a = mid[cell, diagonals[choice][0]]
        b = mid[cell, diagonals[choice][1]]
        for j in range(4):
            row = (4 + j) * m + cell
            children[row, 0] = a
            children[row, 1] = b
            children[row, 2] = mid[cell, cycles[choice][j]]
            children[row, 3] = mid[cell, cycles[choice][(j + 1) % 4]]
    return children


def point_tree(points: np.ndarray):
    """A k-d tree (scipy cKDTree) of ``points`` (n, 3) for nearest-neighbour queries. Built by
    sliding midpoints without shrinking nodes to their points: the same exact answers, built 3x
    faster than the balanced tree (2.2 -> 0.8 s for a 3.0M-cell grid's centroids)."""
    from scipy.spatial import cKDTree

    return cKDTree(points, balanced_tree=False, compact_nodes=False)


def centroid_tree(points: np.ndarray, tetrahedra: np.ndarray):
    """A k-d tree (:func:`point_tree`) of the tetrahedra's centroids, for :func:`locate_points`."""
    return point_tree(_centroids(np.asarray(points, dtype=np.float64), np.asarray(tetrahedra, dtype=np.int64)))


@numba.njit(cache=True, nogil=True)
def _centroids(points: np.ndarray, tetrahedra: np.ndarray) -> np.ndarray:
    """(m, 3) the tetrahedra's centroids, summed in corner order as ``points[tets].mean(axis=1)``
    (without its (m, 4, 3) temporary: 0.6 -> 0.03 s for 3M cells)."""
    centroids = np.empty((tetrahedra.shape[0], 3))
    for cell in range(tetrahedra.shape[0]):
        for axis in range(3):
            total = points[tetrahedra[cell, 0], axis]
            for local in range(1, 4):
                total += points[tetrahedra[cell, local], axis]
            centroids[cell, axis] = total / 4.0
    return centroids


def locate_points(points: np.ndarray, tetrahedra: np.ndarray, targets: np.ndarray,
                  candidates: int = 16, centroids=None) -> tuple[np.ndarray, np.ndarray]:
    """The tetrahedron holding each target (K, 3), or the one nearest to holding it for a target
    just outside the mesh, among the ``candidates`` with the nearest centroids, and the target's
    barycentric coordinates in it (clamped to the cell, summing to 1). Returns (cells (K,),
    weights (K, 4)); ``points`` and ``targets`` in the same units. ``centroids``: the mesh's
    :func:`centroid_tree` when the caller keeps it (2 s to build on a 3M-cell grid)."""
    if centroids is None:
        centroids = centroid_tree(points, tetrahedra)
    near = centroids.query(targets, k=min(candidates, len(tetrahedra)))[1]
    near = near.reshape(len(targets), -1)
    # the nearest centroid's cell first: a target inside it by more than INSIDE_MARGIN (of its
    # barycentric coordinates) is inside no other cell, so it is the best of all candidates
    # (the same cell and weights, bit for bit); the others test all their candidates
    barycentric = _barycentric_in(points, tetrahedra, near[:, :1], targets)[:, 0]
    cells = near[:, 0].copy()
    found = barycentric.min(axis=1) > INSIDE_MARGIN
    rest = np.flatnonzero(~found)
    if rest.size:
        every = _barycentric_in(points, tetrahedra, near[rest], targets[rest])
        best = every.min(axis=-1).argmax(axis=1)
        cells[rest] = near[rest, best]
        barycentric[rest] = every[np.arange(rest.size), best]
    weights = np.clip(barycentric, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return cells, weights


#: the barycentric margin by which :func:`locate_points` takes a target's nearest-centroid cell
#: without testing the others: rounding moves barycentric coordinates by about 1e-16 times a
#: cell's condition number, so no other cell of a conforming mesh can reach it
INSIDE_MARGIN = 1e-6


def _barycentric_in(points: np.ndarray, tetrahedra: np.ndarray, cells: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (K, C, 4) of targets (K, 3) in each of their cells (K, C)."""
    corners = points[tetrahedra[cells]]
    a = corners[:, :, 0]
    edges = np.stack([corners[:, :, 1] - a, corners[:, :, 2] - a, corners[:, :, 3] - a], axis=-1)
    local = np.linalg.solve(edges, (targets[:, None, :] - a)[..., None])[..., 0]
    return np.concatenate([1.0 - local.sum(axis=-1, keepdims=True), local], axis=-1)
