"""Repolarisation with electrotonic coupling: intrinsic APD gradients, then a diffusion of
repolarisation times.

Each node's V_m is the template U stretched by an APD scale (``transmembrane_potential``);
with the intrinsic scales alone every node repolarises on its own, as an isolated cell
would, and walls a few elements thick show their full transmural difference. In tissue,
electrotonic currents pull neighbours' repolarisation together: cells activated late end
up with shorter APDs, early ones with longer, and short-wavelength dispersion is damped
(Gima & Rudy 2002; Franz et al. 1987's inverse activation–APD relation). This module models
that as a diffusion of the repolarisation time r = τ + APD: the intrinsic r₀ is smoothed by
one anisotropic Helmholtz solve on the myocardium,

    r − ∇·(Λ ∇r) = r₀,    Λ = ℓ_f² f fᵀ + ℓ_t² (I − f fᵀ),    no flux on the boundary,

with electrotonic lengths ℓ_f along and ℓ_t across the fibres (mm), and the effective APD
scale follows from r − τ. P1 elements, so the field converges under mesh refinement like
the rest of the ground truth. ℓ = 0 leaves the intrinsic scales. Lengths mm, times ms.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class Repolarisation:
    """Intrinsic APD gradients (fractional changes, see :func:`intrinsic_apd_scale`) and the
    electrotonic lengths (mm) of the repolarisation-time diffusion."""

    apex_to_base: float = 0.0
    endo_to_epi: float = 0.0
    lv_to_rv: float = 0.0
    length_fibre_mm: float = 0.0
    length_cross_mm: float = 0.0

    def __post_init__(self) -> None:
        if self.length_fibre_mm < 0 or self.length_cross_mm < 0:
            raise ValueError("electrotonic lengths must be >= 0 mm")

    @classmethod
    def from_config(cls, section: Mapping[str, float]) -> "Repolarisation":
        """From ``electrophysiology.action_potential``."""
        lengths = section.get("electrotonic_length_mm", {}) or {}
        return cls(apex_to_base=float(section.get("apd_apex_to_base", 0.0)),
                   endo_to_epi=float(section.get("apd_endo_to_epi", 0.0)),
                   lv_to_rv=float(section.get("apd_lv_to_rv", 0.0)),
                   length_fibre_mm=float(lengths.get("fibre", 0.0)), length_cross_mm=float(lengths.get("cross", 0.0)))


def intrinsic_apd_scale(longitudinal: np.ndarray, transmural: np.ndarray, ventricle: np.ndarray,
                        settings: Repolarisation) -> np.ndarray:
    """Per-node intrinsic APD scale 1 + apex_to_base·(l − ½) + endo_to_epi·(t − ½) + lv_to_rv·(v − ½)
    (l long-axis position 0 apex 1 base, t transmural 0 endo 1 epi, v 0 LV 1 RV): the fractional
    APD change from apex to base, endocardium to epicardium and LV to RV, centred so the mean APD
    stays about the template's."""
    scale = (1.0 + settings.apex_to_base * (np.asarray(longitudinal) - 0.5)
             + settings.endo_to_epi * (np.clip(transmural, 0.0, 1.0) - 0.5)
             + settings.lv_to_rv * (np.clip(ventricle, 0.0, 1.0) - 0.5))
    if np.any(scale <= 0.1):
        raise ValueError(f"APD heterogeneity ({settings.apex_to_base}, {settings.endo_to_epi}, {settings.lv_to_rv}) "
                         "makes APD scales <= 0.1")
    return scale


def diffuse_repolarisation(points_mm: np.ndarray, tetrahedra: np.ndarray, fibre_cell: np.ndarray,
                           repolarisation_ms: np.ndarray, length_fibre_mm: float, length_cross_mm: float) -> np.ndarray:
    """The repolarisation times (ms per node) smoothed by r − ∇·(Λ∇r) = r₀ (module notes), by
    conjugate gradients on the P1 system (M + K_Λ) r = M r₀."""
    import scipy.sparse.linalg

    r0 = np.asarray(repolarisation_ms, dtype=np.float64)
    if length_fibre_mm == 0 and length_cross_mm == 0:
        return r0.copy()
    system, mass, preconditioner = _diffusion_system(points_mm, tetrahedra, fibre_cell, length_fibre_mm,
                                                     length_cross_mm)
    right = mass @ r0
    smoothed, info = scipy.sparse.linalg.cg(system, right, x0=r0, M=preconditioner, rtol=1e-10, maxiter=5000)
    if info != 0:
        raise RuntimeError(f"the repolarisation diffusion did not converge (CG info {info})")
    return smoothed


#: the last diffusion system built, with the arrays it was built from: every map of a patient
#: (five per job, 48 per simulation bank) diffuses on the same mesh and fibres; the lock lets
#: maps solved on several threads build it once
_LAST_SYSTEM: list = []
_SYSTEM_LOCK = threading.Lock()


def _diffusion_system(points_mm: np.ndarray, tetrahedra: np.ndarray, fibre_cell: np.ndarray, length_fibre_mm: float,
                      length_cross_mm: float):
    """(M + K_Λ, M, Jacobi preconditioner) of :func:`diffuse_repolarisation`, rebuilt only when
    the mesh, fibres (the same array objects) or lengths differ from the last call's."""
    key = (points_mm, tetrahedra, fibre_cell, float(length_fibre_mm), float(length_cross_mm))
    with _SYSTEM_LOCK:
        if not (_LAST_SYSTEM and all(a is b for a, b in zip(_LAST_SYSTEM[0][:3], key[:3]))
                and _LAST_SYSTEM[0][3:] == key[3:]):
            _LAST_SYSTEM[:] = [key, _build_diffusion_system(points_mm, tetrahedra, fibre_cell, length_fibre_mm,
                                                            length_cross_mm)]
        return _LAST_SYSTEM[1]


def _build_diffusion_system(points_mm: np.ndarray, tetrahedra: np.ndarray, fibre_cell: np.ndarray,
                            length_fibre_mm: float, length_cross_mm: float):
    """(M + K_Λ, M, Jacobi preconditioner) on the mesh (mm) with electrotonic lengths in mm."""
    import scipy.sparse.linalg

    from ecgcohort.fem import mass_matrix, p1_gradients, stiffness_matrix
    from ecgcohort.structure_tensors import fibre_structure

    grads, volumes = p1_gradients(points_mm, tetrahedra)
    structure = fibre_structure(fibre_cell)
    tensors = length_cross_mm**2 * np.eye(3)[None] + (length_fibre_mm**2 - length_cross_mm**2) * structure
    n = len(points_mm)
    mass = mass_matrix(tetrahedra, volumes, n)
    system = (mass + stiffness_matrix(tetrahedra, grads, volumes, tensors, n)).tocsr()
    diagonal = system.diagonal()
    preconditioner = scipy.sparse.linalg.LinearOperator((n, n), matvec=lambda x: x / diagonal)
    return system, mass, preconditioner


def effective_apd_scale(points_mm: np.ndarray, tetrahedra: np.ndarray, fibre_cell: np.ndarray,
                        activation_ms: np.ndarray, intrinsic_scale: np.ndarray, apd90_ms: float, peak_ms: float,
                        settings: Repolarisation) -> np.ndarray:
    """The APD scale per node that puts each node's repolarisation at the diffused time:
    with the template's peak at ``peak_ms`` and APD90 ``apd90_ms``, a scale a gives
    r = τ + t_p + a (APD90 − t_p) (``transmembrane_potential`` stretches after the peak)."""
    tau = np.asarray(activation_ms, dtype=np.float64)
    span = apd90_ms - peak_ms
    r0 = tau + peak_ms + np.asarray(intrinsic_scale) * span
    r = diffuse_repolarisation(points_mm, tetrahedra, fibre_cell, r0, settings.length_fibre_mm,
                               settings.length_cross_mm)
    scale = (r - tau - peak_ms) / span
    if np.any(scale <= 0.1):
        raise ValueError(f"repolarisation diffusion leaves APD scales down to {scale.min():.2f} (activation span "
                         f"{np.ptp(tau):.0f} ms against an APD of {apd90_ms:.0f} ms)")
    return scale


def repolarisation_scale(fibres, activation_ms: np.ndarray, settings: Repolarisation, template,
                         global_scale: float = 1.0) -> np.ndarray:
    """The effective APD scale per myocardial node of one activation map: the intrinsic
    gradients in the LDRB coordinates of ``fibres`` (a ``MyocardialFibres``; the long-axis
    position of :func:`ecgcohort.conduction.scenarios.ventricular_frame`), times
    ``global_scale``, diffused with the map's activation (``template``: the action potential
    whose APD90 and peak time the scale stretches)."""
    from ecgcohort.conduction.scenarios import ventricular_frame

    intrinsic = global_scale * intrinsic_apd_scale(ventricular_frame(fibres).longitudinal,
                                                   fibres.coordinates["transmural"], fibres.coordinates["ventricle"],
                                                   settings)
    return effective_apd_scale(fibres.points_mm, fibres.tetrahedra, fibres.cell_structure, activation_ms, intrinsic,
                               template.apd90_ms, template.peak_time_ms, settings)
