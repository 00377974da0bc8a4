"""Compiled (numba) anisotropic eikonal solver on tetrahedra: the discrete equations of the
Fast Iterative Method, solved in Dijkstra's order.

A node's value is the minimum over its tetrahedra of the local update

    min over lambda in the simplex of   sum_i lambda_i u_i + || x_v - sum_i lambda_i x_i ||_M,

with M = D^-1 the tetrahedron's inverse conduction tensor, over the opposite face (interior
stationary point), its three edges and its three vertices (Fu, Kirby & Whitaker 2013, the
update fim-python uses). The Fast Iterative Method finds the fixed point of these equations
by sweeping an active list until nothing changes. Here the earliest tentative node is taken
from a heap instead and updates only its own tetrahedra, for their three other nodes; an
anisotropic update can still lower a node already taken (the equations are not causal on
every mesh), which puts it back on the heap (label correcting, Bertsekas 1998 ch. 2), so the
result is the same fixed point, not an ordered-upwind approximation. On a converged heart
(575k nodes, 3.0M tetrahedra) that is 4-5x fewer operations than the active-list sweep. The
heap is indexed (a node's entry is lowered in place), so it holds the front only and pops no
stale entries.

Each tetrahedron stores the six squared M-lengths of its edges (every inner product a local
update needs follows by polarisation), their roots, and each vertex's M-distance to the
plane of its opposite face: no update from that tetrahedron can be below the smallest value
on the face plus that height, which skips most updates that cannot improve a node. The
remaining updates are most of the solve's time (on the default patient's refined grid, 19M
evaluated for 2M that improve a node): their tests are written without divisions. The
solver's grids store these forms in single precision (one 64-byte cache line per tetrahedron)
and the values it computes in double. Units:
whatever the caller uses consistently (here mm, mm/ms, ms).
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: the edge number (0-5) of a tetrahedron's local vertices i, j
_EDGE = np.array([[-1, 0, 1, 2], [0, -1, 3, 4], [1, 3, -1, 5], [2, 4, 5, -1]], dtype=np.int64)
#: columns of :func:`cell_forms`: squared M-lengths, their roots, the face heights
_LENGTHS, _ROOTS, _HEIGHTS = 0, 6, 12
#: heights are shrunk by this relative margin so that rounding never lets the bound skip an
#: update that would improve a node
_HEIGHT_MARGIN = 1e-12
#: the further margin the face heights are shrunk by before the forms are stored in single
#: precision (its rounding is 6e-8 relative)
SINGLE_PRECISION_HEIGHT_MARGIN = 1e-6


@numba.njit(cache=True, nogil=True)
def node_cells(n_nodes: int, tetrahedra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells around every node as CSR: offsets (n+1,), cells (4m,) and the node's local
    vertex number (0-3) in each."""
    offsets = np.zeros(n_nodes + 1, dtype=np.int64)
    for cell in range(tetrahedra.shape[0]):
        for local in range(4):
            offsets[tetrahedra[cell, local] + 1] += 1
    for node in range(n_nodes):
        offsets[node + 1] += offsets[node]
    filled = offsets[:-1].copy()
    cells = np.empty(offsets[n_nodes], dtype=np.int64)
    locals_ = np.empty(offsets[n_nodes], dtype=np.int8)
    for cell in range(tetrahedra.shape[0]):
        for local in range(4):
            v = tetrahedra[cell, local]
            cells[filled[v]] = cell
            locals_[filled[v]] = local
            filled[v] += 1
    return offsets, cells, locals_


@numba.njit(cache=True, inline="always")
def _others(target: int) -> tuple[int, int, int]:
    """The three local vertices other than ``target``, in increasing order."""
    if target == 0:
        return 1, 2, 3
    if target == 1:
        return 0, 2, 3
    if target == 2:
        return 0, 1, 3
    return 0, 1, 2


def cell_forms(points: np.ndarray, tetrahedra: np.ndarray, inverse_tensors: np.ndarray) -> np.ndarray:
    """Per tetrahedron (m, 16): the squared M-lengths of its six edges (ms^2 with points in mm
    and M = D^-1 in (ms/mm)^2, one per tetrahedron), their roots (ms), and each vertex's
    M-distance to the plane of its opposite face (ms, 0 for a flat tetrahedron)."""
    return shared_cell_forms(points, tetrahedra, inverse_tensors, np.arange(tetrahedra.shape[0]))


def shared_cell_forms(points: np.ndarray, tetrahedra: np.ndarray, inverse_tensors: np.ndarray,
                      tensor_of_cell: np.ndarray, single_precision: bool = False) -> np.ndarray:
    """:func:`cell_forms` with tetrahedron ``c``'s metric ``inverse_tensors[tensor_of_cell[c]]``:
    the children of a refined cell share their parent's tensor, inverted once. With
    ``single_precision`` the forms come in float32, the heights first shrunk by
    :data:`SINGLE_PRECISION_HEIGHT_MARGIN` (computed in float64, rounded once when stored)."""
    forms = np.zeros((tetrahedra.shape[0], 16), dtype=np.float32 if single_precision else np.float64)
    _fill_cell_forms(points, tetrahedra, inverse_tensors, tensor_of_cell, forms,
                     1.0 - SINGLE_PRECISION_HEIGHT_MARGIN if single_precision else 1.0)
    return forms


@numba.njit(cache=True, nogil=True)
def symmetric_inverses(tensors: np.ndarray) -> np.ndarray:
    """The inverses (n, 3, 3) of symmetric positive-definite 3 × 3 ``tensors`` (n, 3, 3), by
    their cofactors (read from the upper triangle); for conduction tensors in (mm/ms)² the
    metrics in (ms/mm)². Equal to ``np.linalg.inv`` to rounding (the conduction tensors'
    condition numbers are below 100, tested) without its LAPACK call per matrix: 0.07 against
    5.1 ms for the 12,472 cells of a paper patient's bank mesh (2026-11-29)."""
    out = np.empty((tensors.shape[0], 3, 3))
    for i in range(tensors.shape[0]):
        a, b, c = tensors[i, 0, 0], tensors[i, 0, 1], tensors[i, 0, 2]
        d, e, f = tensors[i, 1, 1], tensors[i, 1, 2], tensors[i, 2, 2]
        c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
        scale = 1.0 / (a * c00 + b * c01 + c * c02)
        c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
        out[i, 0, 0], out[i, 0, 1], out[i, 0, 2] = c00 * scale, c01 * scale, c02 * scale
        out[i, 1, 0], out[i, 1, 1], out[i, 1, 2] = c01 * scale, c11 * scale, c12 * scale
        out[i, 2, 0], out[i, 2, 1], out[i, 2, 2] = c02 * scale, c12 * scale, c22 * scale
    return out


@numba.njit(cache=True, nogil=True)
def _fill_cell_forms(points: np.ndarray, tetrahedra: np.ndarray, inverse_tensors: np.ndarray,
                     tensor_of_cell: np.ndarray, forms: np.ndarray, height_scale: float) -> None:
    """Write each tetrahedron's forms (:func:`shared_cell_forms`) into ``forms`` (m, 16), of
    any float type, the heights times ``height_scale``."""
    d = np.empty(3)
    cell_forms_ = np.zeros(16)
    for cell in range(tetrahedra.shape[0]):
        m = inverse_tensors[tensor_of_cell[cell]]
        cell_forms_[:] = 0.0
        for i in range(4):
            for j in range(i + 1, 4):
                for a in range(3):
                    d[a] = points[tetrahedra[cell, j], a] - points[tetrahedra[cell, i], a]
                total = 0.0
                for a in range(3):
                    for b in range(3):
                        total += d[a] * m[a, b] * d[b]
                cell_forms_[_LENGTHS + _EDGE[i, j]] = total
                cell_forms_[_ROOTS + _EDGE[i, j]] = math.sqrt(max(total, 0.0))
        for target in range(4):
            la, lb, lc = _others(target)
            l_ac = cell_forms_[_EDGE[la, lc]]
            l_bc = cell_forms_[_EDGE[lb, lc]]
            e1e2 = 0.5 * (l_ac + l_bc - cell_forms_[_EDGE[la, lb]])
            e1y = 0.5 * (l_ac + cell_forms_[_EDGE[target, lc]] - cell_forms_[_EDGE[target, la]])
            e2y = 0.5 * (l_bc + cell_forms_[_EDGE[target, lc]] - cell_forms_[_EDGE[target, lb]])
            det = l_ac * l_bc - e1e2 * e1e2
            if det > 0.0:
                h2 = cell_forms_[_EDGE[target, lc]] - (e1y * (l_bc * e1y - e1e2 * e2y)
                                                       + e2y * (l_ac * e2y - e1e2 * e1y)) / det
                cell_forms_[_HEIGHTS + target] = math.sqrt(max(h2, 0.0)) * (1.0 - _HEIGHT_MARGIN) * height_scale
        for k in range(16):
            forms[cell, k] = cell_forms_[k]


@numba.njit(cache=True, nogil=True)
def cells_by_lowest_node(tetrahedra: np.ndarray, n_nodes: int) -> np.ndarray:
    """The permutation (m,) that sorts the tetrahedra by their lowest node, ties in their given
    order (a counting sort: ``np.argsort(tetrahedra.min(axis=1), kind="stable")``)."""
    counts = np.zeros(n_nodes + 1, dtype=np.int64)
    lowest = np.empty(tetrahedra.shape[0], dtype=np.int64)
    for cell in range(tetrahedra.shape[0]):
        low = tetrahedra[cell, 0]
        for local in range(1, 4):
            low = min(low, tetrahedra[cell, local])
        lowest[cell] = low
        counts[low + 1] += 1
    for node in range(n_nodes):
        counts[node + 1] += counts[node]
    order = np.empty(tetrahedra.shape[0], dtype=np.int64)
    for cell in range(tetrahedra.shape[0]):
        order[counts[lowest[cell]]] = cell
        counts[lowest[cell]] += 1
    return order


@numba.njit(cache=True, inline="always")
def _segment(u_i: float, u_j: float, g: float, b: float, yy: float, best: float) -> float:
    """Minimum over alpha in (0, 1) of alpha u_i + (1-alpha) u_j + ||y - alpha e|| with
    g = e.Me, b = e.My, yy = y.My (e = x_i - x_j, y = x_v - x_j), if interior; else best.
    The stationary point s = ||y - alpha e|| = sqrt((yy g - b^2) / (g - k^2)), k = u_i - u_j,
    alpha = (b - k s) / g: both tests before the one division they need (the solver's time
    is in these updates)."""
    if g <= 0.0:
        return best
    k = u_i - u_j
    room = g - k * k
    if room <= 0.0:
        return best
    h2g = yy * g - b * b
    if h2g < 0.0:
        h2g = 0.0
    s = math.sqrt(h2g / room)
    r = b - k * s
    if 0.0 < r < g:
        value = u_j + k * (r / g) + s
        if value < best:
            return value
    return best


@numba.njit(cache=True, inline="always")
def _tetrahedron_update(cell: int, target: int, changed: int, tetrahedra: np.ndarray, forms: np.ndarray,
                        phi: np.ndarray, best: float) -> float:
    """The local update of vertex ``target`` of ``cell`` (the smaller of it and ``best``).
    With ``changed`` a local vertex, only the parts that use that vertex's value (its vertex,
    its two edges, the face): the others cannot have changed since they were last evaluated.
    With ``changed`` = -1, all of them."""
    la, lb, lc = _others(target)
    return _update(cell, target, changed, phi[tetrahedra[cell, la]], phi[tetrahedra[cell, lb]],
                   phi[tetrahedra[cell, lc]], forms, best)


@numba.njit(cache=True, inline="always")
def _update(cell: int, target: int, changed: int, u_a: float, u_b: float, u_c: float, forms: np.ndarray,
            best: float) -> float:
    """:func:`_tetrahedron_update` from the values ``u_a``, ``u_b``, ``u_c`` of the other three
    vertices in increasing local order."""
    la, lb, lc = _others(target)
    fa = u_a < np.inf
    fb = u_b < np.inf
    fc = u_c < np.inf
    if not (fa or fb or fc):
        return best
    ea = _EDGE[target, la]
    eb = _EDGE[target, lb]
    ec = _EDGE[target, lc]
    if fa and changed != lb and changed != lc:
        best = min(best, u_a + forms[cell, _ROOTS + ea])
    if fb and changed != la and changed != lc:
        best = min(best, u_b + forms[cell, _ROOTS + eb])
    if fc and changed != la and changed != lb:
        best = min(best, u_c + forms[cell, _ROOTS + ec])
    # e1 = x_a - x_c, e2 = x_b - x_c, y = x_v - x_c; inner products by polarisation
    l_ac = np.float64(forms[cell, _LENGTHS + _EDGE[la, lc]])
    l_bc = np.float64(forms[cell, _LENGTHS + _EDGE[lb, lc]])
    l_ab = np.float64(forms[cell, _LENGTHS + _EDGE[la, lb]])
    yy = np.float64(forms[cell, _LENGTHS + ec])
    e1e2 = 0.5 * (l_ac + l_bc - l_ab)
    e1y = 0.5 * (l_ac + yy - forms[cell, _LENGTHS + ea])
    e2y = 0.5 * (l_bc + yy - forms[cell, _LENGTHS + eb])
    # edges (a, c), (b, c), (a, b); for (a, b): e = e1 - e2, y' = y - e2
    if fa and fc and changed != lb:
        best = _segment(u_a, u_c, l_ac, e1y, yy, best)
    if fb and fc and changed != la:
        best = _segment(u_b, u_c, l_bc, e2y, yy, best)
    if fa and fb and changed != lc:
        best = _segment(u_a, u_b, l_ab, e1y - e1e2 - e2y + l_bc, yy - 2.0 * e2y + l_bc, best)
    # the face's interior: G lambda = b - k s with s^2 (1 - k.G^-1 k) = yy - b.G^-1 b, G^-1 =
    # adj(G) / det; both sides times det, so that the tests need no division
    if fa and fb and fc:
        det = l_ac * l_bc - e1e2 * e1e2
        if det <= 0.0:
            return best
        k1 = u_a - u_c
        k2 = u_b - u_c
        room = det - (k1 * (l_bc * k1 - e1e2 * k2) + k2 * (l_ac * k2 - e1e2 * k1))
        if room <= 0.0:
            return best
        h2d = yy * det - (e1y * (l_bc * e1y - e1e2 * e2y) + e2y * (l_ac * e2y - e1e2 * e1y))
        if h2d < 0.0:
            h2d = 0.0
        s = math.sqrt(h2d / room)
        r1 = e1y - k1 * s
        r2 = e2y - k2 * s
        n1 = l_bc * r1 - e1e2 * r2
        n2 = l_ac * r2 - e1e2 * r1
        if n1 > 0.0 and n2 > 0.0 and n1 + n2 < det:
            best = min(best, u_c + (k1 * n1 + k2 * n2) / det + s)
    return best


@numba.njit(cache=True)
def solve_node(v: int, phi: np.ndarray, tetrahedra: np.ndarray, forms: np.ndarray, offsets: np.ndarray,
               cells: np.ndarray, locals_: np.ndarray) -> float:
    """The smallest local update of node v over all its tetrahedra (inf when none is upwind)."""
    best = np.inf
    for k in range(offsets[v], offsets[v + 1]):
        best = _tetrahedron_update(cells[k], locals_[k], -1, tetrahedra, forms, phi, best)
    return best


@numba.njit(cache=True, inline="always")
def _heap_place(keys: np.ndarray, items: np.ndarray, where: np.ndarray, position: int, key: float,
                item: int) -> None:
    """Put ``item`` with ``key`` at ``position`` or above it (a push at ``position`` = the size, or
    a decrease of an entry's key at its position); ``where[item]`` follows every move."""
    while position > 0:
        parent = (position - 1) >> 1
        if keys[parent] <= key:
            break
        keys[position] = keys[parent]
        items[position] = items[parent]
        where[items[position]] = position
        position = parent
    keys[position] = key
    items[position] = item
    where[item] = position


@numba.njit(cache=True, inline="always")
def _heap_offer(keys: np.ndarray, items: np.ndarray, where: np.ndarray, size: int, key: float, item: int) -> int:
    """``item`` at ``key`` (lower than its present key if it is in the heap); returns the new size."""
    position = where[item]
    if position < 0:
        _heap_place(keys, items, where, size, key, item)
        return size + 1
    _heap_place(keys, items, where, position, key, item)
    return size


@numba.njit(cache=True, inline="always")
def _heap_take(keys: np.ndarray, items: np.ndarray, where: np.ndarray, size: int) -> int:
    """Remove the root (read it first); returns the new size."""
    where[items[0]] = -1
    size -= 1
    if size == 0:
        return 0
    key = keys[size]
    item = items[size]
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[child] >= key:
            break
        keys[position] = keys[child]
        items[position] = items[child]
        where[items[position]] = position
        position = child
    keys[position] = key
    items[position] = item
    where[item] = position
    return size


@numba.njit(cache=True, nogil=True)  # a patient's maps are solved on several threads
def ordered_label_correcting(phi: np.ndarray, tetrahedra: np.ndarray, forms: np.ndarray, offsets: np.ndarray,
                             cells: np.ndarray, locals_: np.ndarray, sources: np.ndarray,
                             source_values: np.ndarray, tolerance: float) -> int:
    """Lower ``phi`` (n,) in place to the fixed point of the local updates with ``sources``
    fired at ``source_values`` (the units of ``phi``, ms here; inf where unreached). ``phi``
    starts at inf, or at an earlier solution of the same grid whose sources are kept (their
    front is not recomputed: only what the new sources change is recomputed). A source keeps its value
    unless the front reaches it earlier; a node's value changes only by more than
    ``tolerance``. Returns the number of nodes taken from the heap (re-takes included)."""
    empty_int, empty_float = np.zeros(0, dtype=np.int64), np.zeros(0)
    one_offset = np.zeros(1, dtype=np.int64)
    return coupled_label_correcting(phi, tetrahedra, forms, offsets, cells, locals_, sources, source_values, tolerance,
                                    empty_float, one_offset, empty_int, empty_float,
                                    np.zeros(phi.shape[0] + 1, dtype=np.int64), empty_int,
                                    np.zeros((0, 4), dtype=np.int64), np.zeros((0, 4)), empty_int,
                                    one_offset, empty_int, one_offset, empty_int, empty_float)


@numba.njit(cache=True, nogil=True)
def coupled_label_correcting(phi: np.ndarray, tetrahedra: np.ndarray, forms: np.ndarray, offsets: np.ndarray,
                             cells: np.ndarray, locals_: np.ndarray, sources: np.ndarray, source_values: np.ndarray,
                             tolerance: float, tree_phi: np.ndarray, tree_offsets: np.ndarray,
                             tree_neighbours: np.ndarray, tree_edge_times: np.ndarray, entry_offsets: np.ndarray,
                             entry_junctions: np.ndarray, junction_nodes: np.ndarray, junction_weights: np.ndarray,
                             junction_tree_node: np.ndarray, fire_offsets: np.ndarray, fire_junctions: np.ndarray,
                             ball_offsets: np.ndarray, ball_nodes: np.ndarray, ball_times: np.ndarray) -> int:
    """:func:`ordered_label_correcting` with Purkinje trees in the same heap (retrograde
    conduction solved with the myocardium, one fixed point of both). Tree node ``t``'s time is
    ``tree_phi[t]`` (inf: unreached), its edges the CSR ``tree_offsets`` / ``tree_neighbours``
    with travel times ``tree_edge_times``. Junction ``j`` is entered from the myocardium at the
    interpolation ``junction_weights[j] . phi[junction_nodes[j]]`` (re-evaluated whenever a node
    of it with a weight is taken: ``entry_offsets`` / ``entry_junctions`` list each grid node's
    junctions) into tree node ``junction_tree_node[j]``; when a tree node is taken, its junctions
    (``fire_offsets`` / ``fire_junctions``) fire their balls: grid nodes ``ball_nodes`` at the tree
    node's time plus ``ball_times`` (CSR ``ball_offsets`` per junction). Returns the number of
    grid and tree nodes taken from the heap."""
    n = phi.shape[0]
    # an indexed heap: each node at most once, its entry lowered in place when its value is
    # (no stale entries to pop; the front's nodes only)
    keys = np.empty(n + tree_phi.shape[0])
    items = np.empty(n + tree_phi.shape[0], dtype=np.int64)
    where = np.full(n + tree_phi.shape[0], -1, dtype=np.int64)
    size = 0
    # a cell's four nodes and their values, read once per cell
    nodes = np.empty(4, dtype=np.int64)
    u = np.empty(4)
    for i in range(sources.shape[0]):
        if source_values[i] < phi[sources[i]]:
            phi[sources[i]] = source_values[i]
    for i in range(sources.shape[0]):
        if phi[sources[i]] == source_values[i] and where[sources[i]] < 0:
            size = _heap_offer(keys, items, where, size, source_values[i], sources[i])
    taken = 0
    while size > 0:
        key = keys[0]
        v = items[0]
        size = _heap_take(keys, items, where, size)
        taken += 1
        if v >= n:  # a Purkinje tree node
            node = v - n
            for k in range(tree_offsets[node], tree_offsets[node + 1]):
                other = tree_neighbours[k]
                candidate = key + tree_edge_times[k]
                if candidate < tree_phi[other] - tolerance:
                    tree_phi[other] = candidate
                    size = _heap_offer(keys, items, where, size, candidate, n + other)
            for k in range(fire_offsets[node], fire_offsets[node + 1]):
                junction = fire_junctions[k]
                for b in range(ball_offsets[junction], ball_offsets[junction + 1]):
                    w = ball_nodes[b]
                    candidate = key + ball_times[b]
                    if candidate < phi[w] - tolerance:
                        phi[w] = candidate
                        size = _heap_offer(keys, items, where, size, candidate, w)
            continue
        for k in range(offsets[v], offsets[v + 1]):
            cell = cells[k]
            changed = locals_[k]
            for local in range(4):
                nodes[local] = tetrahedra[cell, local]
                u[local] = phi[nodes[local]]
            for target in range(4):
                if target == changed:
                    continue
                threshold = u[target] - tolerance
                la, lb, lc = _others(target)
                lowest = min(u[la], min(u[lb], u[lc]))
                if lowest + forms[cell, _HEIGHTS + target] >= threshold:
                    continue
                candidate = _update(cell, target, changed, u[la], u[lb], u[lc], forms, threshold)
                if candidate < threshold:
                    u[target] = candidate
                    phi[nodes[target]] = candidate
                    size = _heap_offer(keys, items, where, size, candidate, nodes[target])
        for k in range(entry_offsets[v], entry_offsets[v + 1]):
            junction = entry_junctions[k]
            entry = 0.0
            for corner in range(4):
                weight = junction_weights[junction, corner]
                if weight > 0.0:
                    entry += weight * phi[junction_nodes[junction, corner]]
            node = junction_tree_node[junction]
            if entry < tree_phi[node] - tolerance:
                tree_phi[node] = entry
                size = _heap_offer(keys, items, where, size, entry, n + node)
    return taken
