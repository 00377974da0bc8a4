"""Compiled kernels of :func:`ecgcohort.geometry.grid_inside`: the crossings of a closed
surface with the grid lines parallel to x, and the grid points' inside flags by their parity
(lengths in mm)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _edge_test(points: np.ndarray, u: int, v: int, py: float, pz: float) -> tuple[float, int]:
    """The (y, z) edge function of the edge u → v at (py + ε, pz + ε²) — computed from the lower
    vertex index to the higher, negated for the other direction — and its sign (never 0 for an
    edge of nonzero length)."""
    first, second, flip = (u, v, 1.0) if u < v else (v, u, -1.0)
    ey, ez = points[second, 1] - points[first, 1], points[second, 2] - points[first, 2]
    value = ey * (pz - points[first, 2]) - ez * (py - points[first, 1])
    if value > 0.0:
        sign = 1
    elif value < 0.0:
        sign = -1
    elif ez != 0.0:  # on the edge's line: the ε term decides, then the ε² term
        sign = -1 if ez > 0.0 else 1
    else:
        sign = 1 if ey > 0.0 else (-1 if ey < 0.0 else 0)
    return flip * value, int(flip) * sign


@numba.njit(cache=True, inline="always")
def _crossing(points: np.ndarray, a: int, b: int, c: int, py: float, pz: float) -> tuple[bool, float]:
    """Whether the line (py + ε, pz + ε²) parallel to x crosses triangle a, b, c, and the x there."""
    wc, sc = _edge_test(points, a, b, py, pz)
    wa, sa = _edge_test(points, b, c, py, pz)
    wb, sb = _edge_test(points, c, a, py, pz)
    if sa == 0 or not sa == sb == sc:
        return False, 0.0
    total = wa + wb + wc
    if total == 0.0:  # the triangle's shadow is a segment: no interior to cross
        return False, 0.0
    return True, (wa * points[a, 0] + wb * points[b, 0] + wc * points[c, 0]) / total


@numba.njit(cache=True)
def _sweep(points: np.ndarray, faces: np.ndarray, ys: np.ndarray, zs: np.ndarray, counts: np.ndarray,
           crossings: np.ndarray, filled: np.ndarray, fill: bool) -> None:
    """Every triangle against the grid lines its (y, z) shadow's box holds (inclusive: the exact
    test decides): counts the crossings per line (``counts[line + 1]``) or, with ``fill``,
    writes their x at ``filled[line]``."""
    for face in range(len(faces)):
        a, b, c = faces[face, 0], faces[face, 1], faces[face, 2]
        j0 = np.searchsorted(ys, min(points[a, 1], points[b, 1], points[c, 1]), side="left")
        j1 = np.searchsorted(ys, max(points[a, 1], points[b, 1], points[c, 1]), side="right")
        k0 = np.searchsorted(zs, min(points[a, 2], points[b, 2], points[c, 2]), side="left")
        k1 = np.searchsorted(zs, max(points[a, 2], points[b, 2], points[c, 2]), side="right")
        for j in range(j0, j1):
            for k in range(k0, k1):
                crossed, x = _crossing(points, a, b, c, ys[j], zs[k])
                if not crossed:
                    continue
                line = j * len(zs) + k
                if fill:
                    crossings[filled[line]] = x
                    filled[line] += 1
                else:
                    counts[line + 1] += 1


@numba.njit(cache=True)
def line_crossings(points: np.ndarray, faces: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per grid line (j, k) (offsets into the second array, CSR), the x of every crossing."""
    counts = np.zeros(len(ys) * len(zs) + 1, dtype=np.int64)
    _sweep(points, faces, ys, zs, counts, np.empty(0), np.empty(0, dtype=np.int64), False)
    offsets = np.cumsum(counts)
    crossings = np.empty(offsets[-1], dtype=np.float64)
    _sweep(points, faces, ys, zs, counts, crossings, offsets[:-1].copy(), True)
    return offsets, crossings


@numba.njit(cache=True)
def fill_by_parity(offsets: np.ndarray, crossings: np.ndarray, xs: np.ndarray, ny: int, nz: int) -> np.ndarray:
    """Inside where an odd number of a line's crossings lie below the grid point's x."""
    inside = np.zeros((len(xs), ny, nz), dtype=np.bool_)
    for j in range(ny):
        for k in range(nz):
            line = j * nz + k
            along = np.sort(crossings[offsets[line]:offsets[line + 1]])
            below = 0
            for i in range(len(xs)):
                while below < len(along) and along[below] < xs[i]:
                    below += 1
                inside[i, j, k] = below % 2 == 1
    return inside
