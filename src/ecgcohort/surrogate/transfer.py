"""How an error in the lead-field gradient becomes an ECG error (the surrogate study, "ECG transfer").

With P1 V_m and a lead field constant per myocardial cell, lead l of the 12-lead ECG is

    φ_l(t) = −Σ_c g_l,c · J_c(t),   g_l = Σ_e W_le ∇Z_e,   J_c(t) = vol_c G_i,c ∇V_m,c(t),

W the lead weights (:data:`~ecgcohort.ecg.leads.LEAD_WEIGHTS`), so an error δg reaches the
ECG only through the source J: where ∇V_m = 0 no error of ∇Z matters, and a uniform scale
error of ∇Z is the same scale error of every lead. This module measures, per lead and per
phase of the beat, the ECG error against the source-weighted error of the lead's own field,
the parts of it that come from the magnitude and from the direction of ∇Z, and how much
forming a lead from electrode differences magnifies the electrodes' errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

import numba
import numpy as np
import scipy.sparse

from ecgcohort.fem import p1_gradients


@dataclass(frozen=True)
class Myocardium:
    """A myocardial mesh: nodes (N, 3) in m, tetrahedra (C, 4), G_i per cell (C, 3, 3) in S/m;
    the operators that depend on it alone are built once, on first use."""

    nodes_m: np.ndarray
    tetrahedra: np.ndarray
    intracellular: np.ndarray

    @cached_property
    def gradient_operator(self) -> scipy.sparse.csr_matrix:
        """:func:`~ecgcohort.leadfield.matrix.gradient_operator` of the mesh (m²)."""
        from ecgcohort.leadfield.matrix import gradient_operator

        return gradient_operator(self.nodes_m, self.tetrahedra)

    @cached_property
    def source_operator(self) -> np.ndarray:
        """(C, 3, 4) vol_c G_i,c ∇φ_a (S·m): J_c = Σ_a operator[c, :, a] V_m(node a of c)."""
        gradients, volumes = p1_gradients(self.nodes_m, self.tetrahedra)           # (C, 4, 3), (C,)
        return np.einsum("cjk,cak,c->cja", np.asarray(self.intracellular, dtype=np.float64), gradients, volumes)

    def lead_matrix(self, grad_lead_field: np.ndarray) -> np.ndarray:
        """:func:`~ecgcohort.leadfield.matrix.lead_matrix` of fields per cell (E, C, 3) in Ω/m."""
        from ecgcohort.leadfield.matrix import lead_matrix

        return lead_matrix(self.nodes_m, self.tetrahedra, self.intracellular, grad_lead_field,
                           self.gradient_operator)


def source_weights(myocardium: Myocardium, vm: np.ndarray, phases: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per phase, Σ_t |J_c(t)| per cell (C,) with J_c(t) = vol_c G_i,c ∇V_m,c(t): where and how
    strongly the ECG's source lives (``vm`` (N, T) in any unit, ``phases`` masks over T)."""
    tetrahedra = np.ascontiguousarray(myocardium.tetrahedra, dtype=np.int64)
    names = list(phases)
    masks = np.array([np.asarray(phases[name], dtype=np.bool_) for name in names]).reshape(len(names), -1)
    values = np.ascontiguousarray(vm, dtype=np.float64)
    if masks.shape[1] != values.shape[1]:
        raise ValueError(f"the phase masks cover {masks.shape[1]} times, V_m has {values.shape[1]}")
    sums = _summed_source_strength(tetrahedra, myocardium.source_operator, values, masks)
    return {name: sums[k] for k, name in enumerate(names)}


@numba.njit(cache=True)
def _summed_source_strength(tetrahedra: np.ndarray, operator: np.ndarray, vm: np.ndarray,
                            masks: np.ndarray) -> np.ndarray:
    """(phases, C): Σ over each phase's times of |Σ_a operator[c, :, a] vm[tetrahedra[c, a], t]|
    (operator vol_c G_i,c ∇φ_a in S·m; the sums in S·m times V_m's unit), cell by cell (compiled: a 1.2 mm heart's beat is 376k cells x 601 times, 1.8 GB as one array).
    A cell's strengths at every time first, in a loop the compiler vectorises, then each
    phase's sum in time order."""
    n_phases, n_times = masks.shape
    sums = np.zeros((n_phases, tetrahedra.shape[0]))
    strength = np.empty(n_times)
    for c in range(tetrahedra.shape[0]):
        v0, v1, v2, v3 = vm[tetrahedra[c, 0]], vm[tetrahedra[c, 1]], vm[tetrahedra[c, 2]], vm[tetrahedra[c, 3]]
        o = operator[c]
        for t in range(n_times):
            jx = o[0, 0] * v0[t] + o[0, 1] * v1[t] + o[0, 2] * v2[t] + o[0, 3] * v3[t]
            jy = o[1, 0] * v0[t] + o[1, 1] * v1[t] + o[1, 2] * v2[t] + o[1, 3] * v3[t]
            jz = o[2, 0] * v0[t] + o[2, 1] * v1[t] + o[2, 2] * v2[t] + o[2, 3] * v3[t]
            strength[t] = np.sqrt(jx * jx + jy * jy + jz * jz)
        for phase in range(n_phases):
            total = 0.0
            for t in range(n_times):
                if masks[phase, t]:
                    total += strength[t]
            sums[phase, c] = total
    return sums


def _split_error(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(magnitude part, direction part) of other − reference (…, 3): the reference with the
    other's length, minus the reference; the other's direction at the reference's length,
    minus the reference. Zero-length vectors have no direction error."""
    length_ref = np.linalg.norm(reference, axis=-1, keepdims=True)
    length = np.linalg.norm(other, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(length_ref > 0, length / length_ref, 1.0)
        unit = np.where(length > 0, other / length, 0.0)
        unit_ref = np.where(length_ref > 0, reference / length_ref, 0.0)
    return (ratio - 1.0) * reference, np.where(length > 0, length_ref * (unit - unit_ref), 0.0)


@dataclass(frozen=True)
class TransferFields:
    """What :func:`ecg_transfer` needs of two sets of electrode gradients, independent of the
    beat: the lead matrices (12, N) of the reference leads' fields and of the other's error,
    magnitude part and direction part, and the lengths (12 or E, C) that the weighted errors
    sum. Built once per pair and used for every scenario."""

    matrices: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]


def transfer_fields(myocardium: Myocardium, reference: np.ndarray, other: np.ndarray,
                    electrode_names: Sequence[str]) -> TransferFields:
    """:class:`TransferFields` of ``other``'s electrode gradients (E, C, 3, Ω/m per cell)
    against ``reference``'s on ``myocardium`` (lead matrices dimensionless, lengths in Ω/m)."""
    from ecgcohort.ecg.leads import LEAD_WEIGHTS, lead_electrode_indices

    columns = lead_electrode_indices(electrode_names)
    electrodes_ref = np.asarray(reference, dtype=np.float64)[columns]
    electrodes_other = np.asarray(other, dtype=np.float64)[columns]
    g_ref = np.einsum("le,ecj->lcj", LEAD_WEIGHTS, electrodes_ref)
    g_other = np.einsum("le,ecj->lcj", LEAD_WEIGHTS, electrodes_other)
    magnitude_delta, direction_delta = _split_error(g_ref, g_other)
    # each lead field is its own "electrode" of a lead matrix: the ECG signals are matrix @ V_m
    matrices = {name: myocardium.lead_matrix(field)
                for name, field in (("reference", g_ref), ("error", g_other - g_ref), ("magnitude", magnitude_delta),
                                    ("direction", direction_delta))}
    lengths = {"lead": np.linalg.norm(g_ref, axis=-1), "lead_error": np.linalg.norm(g_other - g_ref, axis=-1),
               "electrode": np.linalg.norm(electrodes_ref, axis=-1),
               "electrode_error": np.linalg.norm(electrodes_other - electrodes_ref, axis=-1)}
    return TransferFields(matrices, lengths)


def ecg_transfer(myocardium: Myocardium, vm: np.ndarray, reference: np.ndarray, other: np.ndarray,
                 electrode_names: Sequence[str], phases: Mapping[str, np.ndarray],
                 weights: Mapping[str, np.ndarray] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per phase and per lead (arrays of 12, rows of :data:`~ecgcohort.ecg.leads.LEAD_NAMES`):

    * ``ecg_error`` — ‖δφ_l‖ / ‖φ_l‖ over the phase (relative ℓ2 of the 12-lead ECG from
      ``other``'s ∇Z against ``reference``'s);
    * ``magnitude_part`` / ``direction_part`` — the same with only the magnitude or only the
      direction of ``other``'s lead field taken (the rest the reference's);
    * ``weighted_field_error`` — Σ_c,t |J| |δg_l| / Σ_c,t |J| |g_l|: the lead field's relative
      error where the source lives; ``ecg_error`` / it < 1 means errors cancel in the sum;
    * ``electrode_error`` — the same weighted error for the lead's electrodes, Σ_e |W_le| Σ |J|
      |δ∇Z_e| / Σ_e |W_le| Σ |J| |∇Z_e|;
    * ``difference_gain`` — Σ_e |W_le| Σ |J| |∇Z_e| / Σ |J| |g_l|: how much larger the
      electrodes' fields are than the lead's where the source lives, the factor by which
      forming the lead can magnify the electrodes' relative errors.

    ``vm`` (N, T) transmembrane potentials in any unit; ``reference``, ``other`` (E, C, 3)
    electrode gradients per cell; ``phases`` boolean masks over the T times (e.g. QRS, T);
    ``weights`` :func:`source_weights` of the same ``vm`` and phases, when already computed.
    Several beats of one pair: :func:`transfer_fields` once, then :func:`transfer_of_fields`."""
    weights = source_weights(myocardium, vm, phases) if weights is None else weights
    return transfer_of_fields(transfer_fields(myocardium, reference, other, electrode_names), vm, phases, weights)


def transfer_of_fields(fields: TransferFields, vm: np.ndarray, phases: Mapping[str, np.ndarray],
                       weights: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """:func:`ecg_transfer` from the pair's :class:`TransferFields` and the beat's
    :func:`source_weights` (``vm`` (N, T) in any unit)."""
    from ecgcohort.ecg.leads import LEAD_WEIGHTS

    values = np.asarray(vm, dtype=np.float64)
    signals = {name: matrix @ values for name, matrix in fields.matrices.items()}
    lengths = fields.lengths
    absolute_weights = np.abs(LEAD_WEIGHTS)
    result: dict[str, dict[str, np.ndarray]] = {}
    for phase, mask in phases.items():
        mask = np.asarray(mask, dtype=bool)
        weight = weights[phase]
        norm = np.linalg.norm(signals["reference"][:, mask], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            lead_weighted = lengths["lead"] @ weight
            electrode_weighted = absolute_weights @ (lengths["electrode"] @ weight)
            result[phase] = {
                "ecg_error": np.linalg.norm(signals["error"][:, mask], axis=1) / norm,
                "magnitude_part": np.linalg.norm(signals["magnitude"][:, mask], axis=1) / norm,
                "direction_part": np.linalg.norm(signals["direction"][:, mask], axis=1) / norm,
                "weighted_field_error": (lengths["lead_error"] @ weight) / lead_weighted,
                "electrode_error": absolute_weights @ (lengths["electrode_error"] @ weight) / electrode_weighted,
                "difference_gain": electrode_weighted / lead_weighted,
            }
    return result


def qrs_and_t_phases(times_ms: np.ndarray, last_activation_ms: float, margin_ms: float) -> dict[str, np.ndarray]:
    """Boolean masks of the QRS (t ≤ last activation + margin) and the rest of the beat (T),
    and of the whole record, over ``times_ms``."""
    times = np.asarray(times_ms, dtype=np.float64)
    qrs = times <= last_activation_ms + margin_ms
    return {"qrs": qrs, "t": ~qrs, "beat": np.ones_like(qrs)}
