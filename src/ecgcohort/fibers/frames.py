"""The LDRB fibre / sheet / sheet-normal frames at many points, compiled without allocations.

The arithmetic of ``ldrb.calculus.compute_fiber_sheet_system`` (fenicsx-ldrb 0.2.0, Bayer et
al. 2012): at each point the LV, RV and epicardial frames are built from the apex-to-base
gradient and the Laplace gradients (``axis``), rotated by the helix and sheet angles
(``orient``), and blended by quaternion slerp (``bislerp``) at the transmural depths. ldrb's
loop allocates a dozen small arrays per point and calls BLAS for 3x3 products: 8.6 µs a
point, 16 s for the 1.9M points of a 1.2 mm heart's nodes, cells and cell quadrature points.
The same steps on scalars take a fraction of that and agree with ldrb to rounding
(tests/test_fibers.py). Gradients in any length unit (only their directions enter), angles in
degrees.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _normalised(x: float, y: float, z: float) -> tuple[float, float, float]:
    norm = math.sqrt(x * x + y * y + z * z)
    if norm > 0.0:
        return x / norm, y / norm, z / norm
    return x, y, z


@numba.njit(cache=True)
def _oriented_frame(frame: np.ndarray, u: np.ndarray, v: np.ndarray, sign_v: float, alpha_deg: float,
                    beta_deg: float) -> None:
    """ldrb's ``orient(axis(u, sign_v * v), alpha, beta)`` into ``frame`` (3, 3): columns
    circumferential, apicobasal, transmural of the orthonormalised (u, v), rotated by the helix
    angle ``alpha_deg`` about the transmural axis and the sheet angle ``beta_deg`` about the
    fibre."""
    e1x, e1y, e1z = _normalised(u[0], u[1], u[2])
    vx, vy, vz = sign_v * v[0], sign_v * v[1], sign_v * v[2]
    along = e1x * vx + e1y * vy + e1z * vz
    e2x, e2y, e2z = _normalised(vx - along * e1x, vy - along * e1y, vz - along * e1z)
    e0x, e0y, e0z = _normalised(e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x)
    alpha, beta = math.radians(alpha_deg), math.radians(beta_deg)
    ca, sa, cb, sb = math.cos(alpha), math.sin(alpha), math.cos(beta), math.sin(beta)
    # (Q A) B with A the rotation by alpha in the (e0, e1) plane and B by beta in (e1, e2)
    for row, (q0, q1, q2) in enumerate(((e0x, e1x, e2x), (e0y, e1y, e2y), (e0z, e1z, e2z))):
        a0 = q0 * ca + q1 * sa
        a1 = -q0 * sa + q1 * ca
        frame[row, 0] = a0
        frame[row, 1] = a1 * cb - q2 * sb
        frame[row, 2] = a1 * sb + q2 * cb


@numba.njit(cache=True)
def _quaternion(frame: np.ndarray, out: np.ndarray) -> None:
    """ldrb's ``rot2quat``: the unit quaternion (w, x, y, z) of the rotation ``frame``."""
    q = frame
    trace = q[0, 0] + q[1, 1] + q[2, 2]
    if trace > 0:
        r = math.sqrt(1.0 + trace)
        s = 0.5 / r
        a, b, c, d = 0.5 * r, (q[2, 1] - q[1, 2]) * s, (q[0, 2] - q[2, 0]) * s, (q[1, 0] - q[0, 1]) * s
    elif q[0, 0] > q[1, 1] and q[0, 0] > q[2, 2]:
        s = 2 * math.sqrt(1.0 + q[0, 0] - q[1, 1] - q[2, 2])
        a, b, c, d = (q[2, 1] - q[1, 2]) / s, 0.25 * s, (q[0, 1] + q[1, 0]) / s, (q[0, 2] + q[2, 0]) / s
    elif q[1, 1] > q[0, 0] and q[1, 1] > q[2, 2]:
        s = 2 * math.sqrt(1.0 + q[1, 1] - q[0, 0] - q[2, 2])
        a, b, c, d = (q[0, 2] - q[2, 0]) / s, (q[0, 1] + q[1, 0]) / s, 0.25 * s, (q[1, 2] + q[2, 1]) / s
    else:
        s = 2 * math.sqrt(1.0 + q[2, 2] - q[0, 0] - q[1, 1])
        a, b, c, d = (q[1, 0] - q[0, 1]) / s, (q[0, 2] + q[2, 0]) / s, (q[1, 2] + q[2, 1]) / s, 0.25 * s
    norm = math.sqrt(a * a + b * b + c * c + d * d)
    if norm > 0.0:
        a, b, c, d = a / norm, b / norm, c / norm, d / norm
    out[0], out[1], out[2], out[3] = a, b, c, d


@numba.njit(cache=True)
def _bislerp(first: np.ndarray, second: np.ndarray, t: float, out: np.ndarray, qa: np.ndarray,
             qb: np.ndarray) -> None:
    """ldrb's ``bislerp``: the rotation ``t`` of the way from ``first`` to ``second`` (3, 3),
    slerped from the one of ``first``'s quaternion and its three 90° turns nearest to
    ``second``'s, into ``out``; ``qa``, ``qb`` (4,) are work space."""
    _quaternion(first, qa)
    _quaternion(second, qb)
    a, b, c, d = qa[0], qa[1], qa[2], qa[3]
    best = (a, b, c, d)
    best_dot = abs(a * qb[0] + b * qb[1] + c * qb[2] + d * qb[3])
    for candidate in ((-b, a, d, -c), (-c, -d, a, b), (-d, c, -b, a)):
        dot = abs(candidate[0] * qb[0] + candidate[1] * qb[1] + candidate[2] * qb[2] + candidate[3] * qb[3])
        if dot > best_dot:
            best_dot, best = dot, candidate
    q1w, q1x, q1y, q1z = best
    dot = q1w * qb[0] + q1x * qb[1] + q1y * qb[2] + q1z * qb[3]
    q3w, q3x, q3y, q3z = qb[0], qb[1], qb[2], qb[3]
    if dot < 0.0:
        dot, q3w, q3x, q3y, q3z = -dot, -q3w, -q3x, -q3y, -q3z
    if dot < 0.9999:
        angle = math.acos(dot)
        wa = math.sin(angle * (1 - t)) / math.sin(angle)
        wb = math.sin(angle * t) / math.sin(angle)
    else:  # nearly equal: linear interpolation, as ldrb (not renormalised)
        wa, wb = 1 - t, t
    w, x, y, z = wa * q1w + wb * q3w, wa * q1x + wb * q3x, wa * q1y + wb * q3y, wa * q1z + wb * q3z
    out[0, 0] = 1.0 - 2.0 * y * y - 2.0 * z * z
    out[1, 0] = 2.0 * x * y + 2.0 * w * z
    out[2, 0] = 2.0 * x * z - 2.0 * w * y
    out[0, 1] = 2.0 * x * y - 2.0 * w * z
    out[1, 1] = 1.0 - 2.0 * x * x - 2.0 * z * z
    out[2, 1] = 2.0 * y * z + 2.0 * w * x
    out[0, 2] = 2.0 * x * z + 2.0 * w * y
    out[1, 2] = 2.0 * y * z - 2.0 * w * x
    out[2, 2] = 1.0 - 2.0 * x * x - 2.0 * y * y


@numba.njit(cache=True, inline="always")
def _point_frame(lv: float, rv: float, epi: float, lv_rv: float, gradients: np.ndarray, angles: np.ndarray,
                 out: np.ndarray, q_lv: np.ndarray, q_rv: np.ndarray, q_epi: np.ndarray, q_endo: np.ndarray,
                 qa: np.ndarray, qb: np.ndarray) -> None:
    """The LDRB frame (3, 3) into ``out`` at one point: scalars lv, rv, epi, lv_rv, gradients
    (4, 3) of lv, rv, epi, apex, ``angles`` as in :func:`_frames`; the rest work space."""
    if epi > 0.5:
        region = 0 if lv_rv >= 0.5 else 1
    elif lv_rv >= 0.9:
        region = 0
    elif lv_rv <= 0.1:
        region = 1
    else:
        region = 2
    alpha_endo, alpha_epi = angles[region, 0], angles[region, 1]
    beta_endo, beta_epi = angles[region, 2], angles[region, 3]
    depth = 0.5 if lv + rv < 1e-12 else rv / (lv + rv)
    alpha_s = alpha_endo * (1 - depth) - alpha_endo * depth
    alpha_w = alpha_endo * (1 - epi) + alpha_epi * epi
    beta_s = beta_endo * (1 - depth) - beta_endo * depth
    beta_w = beta_endo * (1 - epi) + beta_epi * epi
    apex = gradients[3]
    _oriented_frame(q_lv, apex, gradients[0], -1.0, alpha_s, beta_s)
    _oriented_frame(q_rv, apex, gradients[1], 1.0, alpha_s, beta_s)
    _oriented_frame(q_epi, apex, gradients[2], 1.0, alpha_w, beta_w)
    _bislerp(q_lv, q_rv, depth, q_endo, qa, qb)
    _bislerp(q_endo, q_epi, epi, out, qa, qb)


@numba.njit(cache=True)
def _frames(scalars: np.ndarray, gradients: np.ndarray, angles: np.ndarray, out: np.ndarray) -> None:
    """Kernel of :func:`fibre_sheet_frames` (its argument layout; ``out`` (n, 3, 3))."""
    q_lv, q_rv, q_epi, q_endo = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
    qa, qb = np.empty(4), np.empty(4)
    for i in range(scalars.shape[0]):
        _point_frame(scalars[i, 0], scalars[i, 1], scalars[i, 2], scalars[i, 3], gradients[i], angles, out[i],
                     q_lv, q_rv, q_epi, q_endo, qa, qb)


@numba.njit(cache=True)
def _mean_fibre_dyads(nodal_scalars: np.ndarray, tetrahedra: np.ndarray, cell_gradients: np.ndarray,
                      barycentric: np.ndarray, angles: np.ndarray, out: np.ndarray) -> int:
    """Kernel of :func:`mean_fibre_structure`; returns how many fibres vanished (left out)."""
    q_lv, q_rv, q_epi, q_endo = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
    qa, qb, frame = np.empty(4), np.empty(4), np.empty((3, 3))
    point = np.empty(4)
    vanished = 0
    weight = 1.0 / barycentric.shape[0]
    for cell in range(tetrahedra.shape[0]):
        for i in range(3):
            for j in range(3):
                out[cell, i, j] = 0.0
        for q in range(barycentric.shape[0]):
            for field in range(4):
                value = 0.0
                for corner in range(4):
                    value += barycentric[q, corner] * nodal_scalars[tetrahedra[cell, corner], field]
                point[field] = value
            _point_frame(point[0], point[1], point[2], point[3], cell_gradients[cell], angles, frame,
                         q_lv, q_rv, q_epi, q_endo, qa, qb)
            norm = math.sqrt(frame[0, 0] ** 2 + frame[1, 0] ** 2 + frame[2, 0] ** 2)
            if not norm > 1e-6:
                vanished += 1
                continue
            for i in range(3):
                for j in range(3):
                    out[cell, i, j] += weight * frame[i, 0] * frame[j, 0] / (norm * norm)
    return vanished


def mean_fibre_structure(nodal_scalars: np.ndarray, tetrahedra: np.ndarray, cell_gradients: np.ndarray,
                         barycentric: np.ndarray, *, alpha_endo_deg: float, alpha_epi_deg: float,
                         beta_endo_deg: float, beta_epi_deg: float) -> tuple[np.ndarray, int]:
    """(each cell's mean of f fᵀ (C, 3, 3) over the points ``barycentric`` (Q, 4), how many
    of those fibres vanished): the LDRB fibre at each point from the scalars lv, rv, epi,
    lv_rv interpolated there (``nodal_scalars`` (N, 4) on the ``tetrahedra`` (C, 4)) and the
    cell's constant gradients of lv, rv, epi, apex (``cell_gradients`` (C, 4, 3)); angles in
    degrees as in :func:`fibre_sheet_frames`. One pass over the cells, no per-point arrays."""
    angles = np.tile([float(alpha_endo_deg), float(alpha_epi_deg), float(beta_endo_deg), float(beta_epi_deg)], (3, 1))
    out = np.empty((len(tetrahedra), 3, 3))
    vanished = _mean_fibre_dyads(np.ascontiguousarray(nodal_scalars, dtype=float),
                                 np.ascontiguousarray(tetrahedra, dtype=np.int64),
                                 np.ascontiguousarray(cell_gradients, dtype=float),
                                 np.ascontiguousarray(barycentric, dtype=float), angles, out)
    return out, int(vanished)


def fibre_sheet_frames(lv_scalar: np.ndarray, rv_scalar: np.ndarray, epi_scalar: np.ndarray,
                       lv_rv_scalar: np.ndarray, lv_gradient: np.ndarray, rv_gradient: np.ndarray,
                       epi_gradient: np.ndarray, apex_gradient: np.ndarray, *, alpha_endo_deg: float,
                       alpha_epi_deg: float, beta_endo_deg: float,
                       beta_epi_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fibre, sheet, normal), each (n, 3), at n points from the LDRB Laplace solutions there
    (scalars (n,), gradients (n, 3)): ldrb's ``compute_fiber_sheet_system`` with one set of
    helix (alpha) and sheet (beta) angles, degrees, in the LV, the RV and the septum."""
    scalars = np.ascontiguousarray(np.column_stack([lv_scalar, rv_scalar, epi_scalar, lv_rv_scalar]), dtype=float)
    gradients = np.ascontiguousarray(np.stack([np.asarray(g, dtype=float).reshape(-1, 3) for g in
                                               (lv_gradient, rv_gradient, epi_gradient, apex_gradient)], axis=1))
    if gradients.shape[0] != scalars.shape[0]:
        raise ValueError(f"{scalars.shape[0]} points of scalars but {gradients.shape[0]} of gradients")
    angles = np.tile([float(alpha_endo_deg), float(alpha_epi_deg), float(beta_endo_deg), float(beta_epi_deg)], (3, 1))
    frames = np.empty((scalars.shape[0], 3, 3))
    _frames(scalars, gradients, angles, frames)
    return (np.ascontiguousarray(frames[:, :, 0]), np.ascontiguousarray(frames[:, :, 1]),
            np.ascontiguousarray(frames[:, :, 2]))
