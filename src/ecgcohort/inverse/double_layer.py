"""The V_m-based forward operator of the EP-informed methods: the equivalent double layer (EDL)
on the closed heart surface in a bounded homogeneous torso, solved by the boundary-element
method on the body surface.

Why. The Aliev–Panfilov prior of EP-DL and EAND-ARN describes a normalised excitation u in
[0, 1] — the transmembrane potential's shape, not the extracellular potential's. Applied to
heart-surface φ it is satisfied by u = v = 0 and pulls every estimate there (issue 62). The
EDL theory (Geselowitz 1989; van Oosterom 2002, 2004's ECGSIM) maps the transmembrane
potential on a closed surface around the sources to the potentials outside it, so the prior
describes the unknown and the data stay the patient's own 3-D extracellular solve.

The source. Outside the closed heart surface S_H (outward normals n), the potential in an
infinite homogeneous medium of a double layer of strength s·u (s in mV per unit of u) is

    φ_∞(x) = (s / 4π) ∫_{S_H} u(y) dΩ_x(y),   dΩ_x(y) = (y − x)·n_y / |y − x|³ dS_y,

the integration by parts of Geselowitz's ∫ σ_i ∇V_m·∇(1/r) dV / (4πσ) with s = σ_i/σ times
the action potential's amplitude: a depolarised patch facing x (dΩ < 0) gives a negative
potential, the QS complex over a pacing site; a uniform u gives nothing (∫ dΩ = 0 outside).

The torso. The body is a homogeneous conductor with an insulated surface Σ; the potential on Σ
solves the boundary integral equation of Barnard et al. (1967),

    φ(x) = 2 φ_∞(x) + (1/2π) ∫_Σ φ(y) dΩ_x(y),   x ∈ Σ,

collocated at Σ's nodes with piecewise-linear φ lumped to the triangles (each triangle's solid
angle — van Oosterom & Strackee 1983 — shared equally among its three corners), the diagonal
set by the auto solid angle (a constant φ solves the homogeneous equation), and the singular
system deflated (Lynn & Timlake 1968): φ referenced to zero area-weighted mean over Σ, as the
3-D truth's body potentials are. The measurement points read φ by linear interpolation on Σ.

What it leaves out (model error the benchmark keeps, no inverse crime): the heart's and the
blood pools' own conductivities (one σ everywhere inside Σ), the endocardial half of the
myocardium's boundary (the surface is the epicardial envelope; its u is that of the nearest
myocardial boundary), anisotropy (one strength s).

Units: lengths in mm (they cancel: solid angles are dimensionless), u dimensionless, s and
the operator's output in mV.
"""

from __future__ import annotations

import logging

import numpy as np

from ecgcohort.inverse.problem import InverseError, SurfaceMesh

log = logging.getLogger(__name__)

#: rows of solid angles computed at once (memory: rows × triangles × 3 × 3 floats)
_CHUNK = 256


def oriented_outwards(surface: SurfaceMesh) -> SurfaceMesh:
    """The closed ``surface`` with its faces ordered so that their normals (p1 − p0) × (p2 − p0)
    point outwards (positive enclosed volume)."""
    corners = surface.points[surface.faces]
    volume = np.einsum("fi,fi->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0
    if volume == 0:
        raise InverseError("a surface of zero enclosed volume has no outside")
    return surface if volume > 0 else SurfaceMesh(surface.points, surface.faces[:, ::-1].copy())


def triangle_solid_angles(observers: np.ndarray, surface: SurfaceMesh) -> np.ndarray:
    """Signed solid angles (P, F) of the surface's triangles seen from ``observers`` (P, 3),
    by van Oosterom & Strackee's formula tan(Ω/2) = R1·(R2×R3) / (r1 r2 r3 + (R1·R2) r3 +
    (R1·R3) r2 + (R2·R3) r1), R_k the corners relative to the observer. Positive where the
    observer sees the triangle's back (its normal points away from the observer); zero for an
    observer in the triangle's plane (its own triangles)."""
    observers = np.asarray(observers, dtype=np.float64).reshape(-1, 3)
    corners = surface.points[surface.faces]  # (F, 3, 3)
    out = np.empty((len(observers), len(surface.faces)))
    for start in range(0, len(observers), _CHUNK):
        r = corners[None, :, :, :] - observers[start:start + _CHUNK, None, None, :]  # (p, F, 3, 3)
        length = np.linalg.norm(r, axis=-1)
        r1, r2, r3 = r[:, :, 0], r[:, :, 1], r[:, :, 2]
        l1, l2, l3 = length[:, :, 0], length[:, :, 1], length[:, :, 2]
        numerator = np.einsum("pfi,pfi->pf", r1, np.cross(r2, r3))
        denominator = (l1 * l2 * l3 + np.einsum("pfi,pfi->pf", r1, r2) * l3 + np.einsum("pfi,pfi->pf", r1, r3) * l2
                       + np.einsum("pfi,pfi->pf", r2, r3) * l1)
        out[start:start + _CHUNK] = 2.0 * np.arctan2(numerator, denominator)
    return out


def nodal_solid_angles(observers: np.ndarray, surface: SurfaceMesh) -> np.ndarray:
    """(P, n): each triangle's solid angle shared equally among its three corners (a linear
    density lumped to the triangles)."""
    angles = triangle_solid_angles(observers, surface) / 3.0
    nodal = np.zeros((len(angles), len(surface.points)))
    for k in range(3):
        np.add.at(nodal.T, surface.faces[:, k], angles.T)
    return nodal


def node_areas(surface: SurfaceMesh) -> np.ndarray:
    """Lumped areas (n,): a third of each adjacent triangle's area."""
    corners = surface.points[surface.faces]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    return np.bincount(surface.faces.ravel(), weights=np.repeat(area / 3.0, 3), minlength=len(surface.points))


def body_surface_operator(body: SurfaceMesh) -> np.ndarray:
    """(N, N) inverse of the deflated BEM matrix of the insulated homogeneous body: B maps
    2 φ_∞ at Σ's nodes to φ at Σ's nodes with zero area-weighted mean (module docstring)."""
    body = oriented_outwards(body)
    omega = nodal_solid_angles(body.points, body)
    np.fill_diagonal(omega, 0.0)
    # auto solid angle: the rows of a constant φ sum to 2π, so φ = 1 solves φ − Ω φ / 2π = 0
    np.fill_diagonal(omega, 2.0 * np.pi - omega.sum(axis=1))
    matrix = np.eye(len(body.points)) - omega / (2.0 * np.pi)
    areas = node_areas(body)
    weights = areas / areas.sum()
    # Lynn & Timlake's deflation: the null vector 1 pinned by the area-weighted mean
    solution = np.linalg.solve(matrix + np.outer(np.ones(len(weights)), weights), np.eye(len(weights)))
    return solution - np.outer(np.ones(len(weights)), weights @ solution)


def double_layer_transfer(heart: SurfaceMesh, body: SurfaceMesh, measurement_points: np.ndarray,
                          strength_mv: float) -> np.ndarray:
    """A (m, n) in mV per unit of u: the potentials at the ``measurement_points`` (m, 3) on the
    closed ``body`` surface of a double layer of strength ``strength_mv``·u on the closed
    ``heart`` surface (n nodes) inside it, in a homogeneous insulated torso, referenced to
    zero mean over the body surface (module docstring). A·1 = 0: a uniform u is silent."""
    from ecgcohort.leadfield.solver import project_on_surface

    if not strength_mv > 0:
        raise InverseError(f"the double layer's strength must be positive, got {strength_mv} mV")
    heart, body = oriented_outwards(heart), oriented_outwards(body)
    source = (strength_mv / (4.0 * np.pi)) * nodal_solid_angles(body.points, heart)  # φ_∞ at Σ's nodes per u
    on_body = body_surface_operator(body) @ (2.0 * source)
    distance, nodes, weights = project_on_surface(body.points, body.faces, np.asarray(measurement_points, float))
    scale = np.ptp(body.points, axis=0).max()
    if distance.max() > 0.05 * scale:
        raise InverseError(f"a measurement point lies {distance.max():.3g} off the body surface the double layer's "
                           f"potential is read on")
    transfer = np.einsum("mk,mkn->mn", weights, on_body[nodes])
    return transfer - transfer.mean(axis=1, keepdims=True)


#: below this correlation between the calibration's step maps and the data the least-squares
#: factor is noise (the step model explains under a tenth of the data's variance)
MIN_CALIBRATION_CORRELATION = 0.3


def calibrated_gain(transfer: np.ndarray, bspm: np.ndarray, laplacian: np.ndarray, times: np.ndarray,
                    min_correlation: float = MIN_CALIBRATION_CORRELATION) -> float:
    """The factor (dimensionless) that scales the double layer ``transfer`` (m, n) to the data
    ``bspm`` (m, T) at ``times`` (T,), estimated from the data alone: a second-order Tikhonov
    estimate of u (Γ the surface ``laplacian`` (n, n) plus a small identity, since a uniform u is
    silent and Γ·1 = 0; λ at the L-curve's corner, :func:`tikhonov_activation`), the activation times of its upstrokes, a unit step of u at
    those times (a quarter of a sampling step wide), and the least-squares factor of its body
    maps on the data. Where those step maps correlate with the data by less than
    ``min_correlation`` the factor says nothing (on the workflow test's 120-node heart sampled
    every 12.9 ms the Tikhonov activation times are nearly uniform, a uniform u is silent, and
    the correlation was 0.05 and −0.23, the factor 1.08 and −1.78): the layer keeps its nominal
    strength (factor 1), and the log says so.

    Why: the layer's strength, the action potential's amplitude times σ_i/σ, is not known to the
    inversion — the torso's and the blood pools' conductivities set it. On a default-cohort patient
    (test-0000, pacing-00) the 3-D truth's body maps were 0.23 of what 50 mV predicts; this
    estimate gave 0.47 on the matched row (correlation 0.35) and 0.31 with the heart 10 mm off
    (0.85). With a strength four times too large the prior's u in [0, 1] cannot fit the data and
    the networks bend it out of shape (EP-DL's CC was −0.77)."""
    transfer, bspm = np.asarray(transfer, dtype=np.float64), np.asarray(bspm, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    step = upstroke_map(tikhonov_activation(transfer, bspm, laplacian, times), times,
                        0.25 * float(times[1] - times[0]))
    predicted = transfer @ step
    correlation = map_correlation(predicted, bspm)
    if not correlation >= min_correlation:
        log.warning("the double layer's calibration: its step maps correlate with the data by %.2f (< %.2f): the "
                    "layer keeps its nominal strength", correlation, min_correlation)
        return 1.0
    gain = float(np.sum(predicted * bspm)) / float(np.sum(predicted * predicted))
    log.info("the double layer's calibration: factor %.3f (its step maps correlate with the data by %.2f)", gain,
             correlation)
    return gain


def map_correlation(predicted: np.ndarray, bspm: np.ndarray) -> float:
    """Uncentred correlation of predicted body maps with the data (both (m, T)): the cosine of the
    angle between them, 0 where either is zero."""
    predicted, bspm = np.asarray(predicted, dtype=np.float64), np.asarray(bspm, dtype=np.float64)
    norms = float(np.sqrt(np.sum(predicted * predicted) * np.sum(bspm * bspm)))
    return float(np.sum(predicted * bspm)) / norms if norms > 0 else 0.0


def tikhonov_activation(transfer: np.ndarray, bspm: np.ndarray, laplacian: np.ndarray,
                        times: np.ndarray) -> np.ndarray:
    """Activation times (n,), in the unit of ``times`` (T,), of the data alone: the steepest
    upstrokes of a second-order Tikhonov estimate of u from ``bspm`` (m, T) through ``transfer``
    (m, n), Γ the surface ``laplacian`` (n, n) plus a small identity (a uniform u is silent and
    Γ·1 = 0, so Γ alone leaves it undetermined), λ at the L-curve's corner for the record (Hansen
    & O'Leary 1993). The estimate's level is arbitrary (A·1 = 0); its upstrokes are what the data
    determine.

    Why the L-curve: the crime-free data's error is mostly the model's, shared by neighbouring
    electrodes, and rules built on white errors choose λ from the white noise they see. With GCV
    the less noise, the smaller λ (test-0001, heart 10 mm off: 5.0e-2 at 30 dB, 2.1e-4 at 40 dB):
    the estimate fitted the model error, its step maps correlated with the data by 0.00-0.27 on 8
    of the inverse axes' 22 patient rows, the calibration fell back to the nominal strength and
    EP-DL lost its warm start — every row where EP-DL lost the V_m's shape, and all but one of
    EAND-ARN's. Robust GCV (γ = 0.1) kept the correlation at 0.51-0.92 but still shrank λ 50-fold
    from 30 to 40 dB there, and the layer's factor (a property of the geometry, not of the noise)
    rose 0.40 → 0.90: EAND-ARN's CC 0.41, 0.86 with the factor held at 0.40. The corner, which
    assumes no noise model, gave factors of 0.36-0.47 over that geometry's five noise settings
    (robust GCV 0.34-0.90) and step-map correlations of 0.45-0.93 on all 22 rows."""
    from ecgcohort.inverse.metrics import activation_times
    from ecgcohort.inverse.tikhonov import tikhonov

    transfer, bspm = np.asarray(transfer, dtype=np.float64), np.asarray(bspm, dtype=np.float64)
    shift = 1e-3 * float(np.abs(np.diag(laplacian)).mean())
    grid = np.linalg.norm(transfer, 2) * np.logspace(-8, 2, 60)
    estimate = tikhonov(transfer, bspm, laplacian + shift * np.eye(len(laplacian)), choice="lcurve", per_time=False,
                        grid=grid).estimate
    return activation_times(estimate, np.asarray(times, dtype=np.float64), "transmembrane")


def upstroke_map(activation: np.ndarray, times: np.ndarray, width: float) -> np.ndarray:
    """u (n, T) at ``times`` (T,) of a unit logistic upstroke at each node's ``activation`` (n,),
    ``width`` its time constant (the unit of ``times``): rest (0) before, plateau (1) after."""
    argument = (np.asarray(times, float)[None, :] - np.asarray(activation, float)[:, None]) / width
    return 1.0 / (1.0 + np.exp(-np.clip(argument, -50.0, 50.0)))
