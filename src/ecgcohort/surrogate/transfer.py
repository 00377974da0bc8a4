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
    def source_operator(self) -> np.ndarray:
        """(C, 3, 4) vol_c G_i,c ∇φ_a (S·m): J_c = Σ_a operator[c, :, a] V_m(node a of c)."""
        gradients, volumes = p1_gradients(self.nodes_m, self.tetrahedra)           # (C, 4, 3), (C,)
        return np.einsum("cjk,cak,c->cja", np.asarray(self.intracellular, dtype=np.float64), gradients, volumes)

    @cached_property
    def source_matrix(self) -> scipy.sparse.csr_matrix:
        """S (3C, N) in S·m with rows (c, i): J = S V_m, the :attr:`source_operator` as a sparse
        matrix (built from it as it lies: four entries per row, no sorting)."""
        n_cells = self.tetrahedra.shape[0]
        columns = np.broadcast_to(np.asarray(self.tetrahedra, dtype=np.int64)[:, None, :], (n_cells, 3, 4))
        return scipy.sparse.csr_matrix((self.source_operator.reshape(-1), columns.reshape(-1),
                                        np.arange(0, 12 * n_cells + 1, 4)), shape=(3 * n_cells, len(self.nodes_m)))

    def lead_matrix(self, grad_lead_field: np.ndarray) -> np.ndarray:
        """(F, N) :func:`~ecgcohort.leadfield.matrix.lead_matrix` of fields per cell (F, C, 3)
        in Ω/m: L[f, a] = −Σ_c,i S[(c, i), a] ∇Z_f[c, i] (G_i symmetric), φ = L V_m; one sparse
        product per piece of cells (no copy of all the fields cell-major)."""
        fields = np.asarray(grad_lead_field, dtype=np.float64)
        n_cells = self.tetrahedra.shape[0]
        if fields.ndim != 3 or fields.shape[1:] != (n_cells, 3):
            raise ValueError(f"grad_lead_field must be (fields, {n_cells}, 3), got {fields.shape}")
        transposed = np.zeros((len(self.nodes_m), len(fields)))
        for start in range(0, n_cells, _CELLS_PER_PIECE):
            stop = min(start + _CELLS_PER_PIECE, n_cells)
            piece = np.ascontiguousarray(fields[:, start:stop].reshape(len(fields), -1).T)  # (3 cells, F)
            transposed -= self.source_matrix[3 * start:3 * stop].T @ piece
        return np.ascontiguousarray(transposed.T)


#: Cells per piece of :meth:`Myocardium.lead_matrix` and :func:`transfer_fields`: a piece's
#: fields cell-major (3 × 48 values a cell for the transfer) stay a few tens of MB instead of
#: 460 MB at 400k cells.
_CELLS_PER_PIECE = 32768


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


#: Cells whose phase sums run side by side in :func:`_summed_source_strength`: each cell's sum is
#: one chain of dependent additions in time order, and 16 chains fill two vector registers.
_SOURCE_CELLS_PER_BLOCK = 16


@numba.njit(cache=True)
def _summed_source_strength(tetrahedra: np.ndarray, operator: np.ndarray, vm: np.ndarray,
                            masks: np.ndarray) -> np.ndarray:
    """(phases, C): Σ over each phase's times of |Σ_a operator[c, :, a] vm[tetrahedra[c, a], t]|
    (operator vol_c G_i,c ∇φ_a in S·m; the sums in S·m times V_m's unit), 16 cells at a time
    (compiled: a 1.2 mm heart's beat is 400k cells x 601 times, 1.9 GB as one array). The
    block's strengths at every time first, then each phase's sums in time order, the block's
    cells side by side: every cell's sum is the same chain of additions as cell by cell (the
    same numbers), and the chains no longer wait on each other's latency (0.74 -> 0.47 s
    CPU a beat)."""
    n_phases, n_times = masks.shape
    n_cells = tetrahedra.shape[0]
    block = _SOURCE_CELLS_PER_BLOCK
    sums = np.zeros((n_phases, n_cells))
    strength = np.zeros((block, n_times))
    totals = np.empty(block)
    for first in range(0, n_cells, block):
        count = min(block, n_cells - first)
        for k in range(count):
            c = first + k
            v0, v1, v2, v3 = vm[tetrahedra[c, 0]], vm[tetrahedra[c, 1]], vm[tetrahedra[c, 2]], vm[tetrahedra[c, 3]]
            o = operator[c]
            row = strength[k]  # one cell's times in a row: the loop over them is vectorised
            for t in range(n_times):
                jx = o[0, 0] * v0[t] + o[0, 1] * v1[t] + o[0, 2] * v2[t] + o[0, 3] * v3[t]
                jy = o[1, 0] * v0[t] + o[1, 1] * v1[t] + o[1, 2] * v2[t] + o[1, 3] * v3[t]
                jz = o[2, 0] * v0[t] + o[2, 1] * v1[t] + o[2, 2] * v2[t] + o[2, 3] * v3[t]
                row[t] = np.sqrt(jx * jx + jy * jy + jz * jz)
        for phase in range(n_phases):
            totals[:] = 0.0
            for t in range(n_times):
                if masks[phase, t]:
                    for k in range(block):
                        totals[k] += strength[k, t]
            for k in range(count):
                sums[phase, first + k] = totals[k]
    return sums


@dataclass(frozen=True)
class TransferFields:
    """What :func:`ecg_transfer` needs of two sets of electrode gradients, independent of the
    beat: the lead matrices (12, N) of the reference leads' fields and of the other's error,
    magnitude part and direction part, and the lengths (12 or E, C) that the weighted errors
    sum. Built once per pair and used for every scenario."""

    matrices: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]


#: The lead-field sets of :class:`TransferFields`, in the order of their lead matrices' rows.
TRANSFER_FIELDS: tuple[str, ...] = ("reference", "error", "magnitude", "direction")


def transfer_fields(myocardium: Myocardium, reference: np.ndarray, other: np.ndarray,
                    electrode_names: Sequence[str]) -> TransferFields:
    """:class:`TransferFields` of ``other``'s electrode gradients (E, C, 3, Ω/m per cell)
    against ``reference``'s on ``myocardium`` (lead matrices dimensionless, lengths in Ω/m).
    The leads' fields and lengths cell by cell (:func:`_lead_fields`), and the four sets'
    lead matrices one sparse product per piece of cells."""
    from ecgcohort.ecg.leads import LEAD_WEIGHTS, lead_electrode_indices

    columns = np.asarray(lead_electrode_indices(electrode_names), dtype=np.int64)
    reference = np.ascontiguousarray(reference, dtype=np.float64)
    other = np.ascontiguousarray(other, dtype=np.float64)
    if reference.shape != other.shape:
        raise ValueError(f"need fields of one shape, got {reference.shape} and {other.shape}")
    n_leads, n_cells = LEAD_WEIGHTS.shape[0], reference.shape[1]
    weights = np.ascontiguousarray(LEAD_WEIGHTS, dtype=np.float64)
    lengths = {"lead": np.empty((n_leads, n_cells)), "lead_error": np.empty((n_leads, n_cells)),
               "electrode": np.empty((len(columns), n_cells)), "electrode_error": np.empty((len(columns), n_cells))}
    # each lead field is its own "electrode" of a lead matrix: the ECG signals are matrix @ V_m
    stacked = np.zeros((len(myocardium.nodes_m), len(TRANSFER_FIELDS) * n_leads))
    fields = np.empty((min(n_cells, _CELLS_PER_PIECE), 3, len(TRANSFER_FIELDS) * n_leads))
    for start in range(0, n_cells, _CELLS_PER_PIECE):
        stop = min(start + _CELLS_PER_PIECE, n_cells)
        piece = fields[:stop - start]
        _lead_fields(weights, columns, reference, other, start, piece,
                     *(lengths[name] for name in ("lead", "lead_error", "electrode", "electrode_error")))
        stacked -= myocardium.source_matrix[3 * start:3 * stop].T @ piece.reshape(3 * (stop - start), -1)
    matrices = np.ascontiguousarray(stacked.T)
    return TransferFields({name: matrices[k * n_leads:(k + 1) * n_leads] for k, name in enumerate(TRANSFER_FIELDS)},
                          lengths)


@numba.njit(cache=True)
def _lead_fields(weights: np.ndarray, columns: np.ndarray, reference: np.ndarray, other: np.ndarray, start: int,
                 fields: np.ndarray, lead: np.ndarray, lead_error: np.ndarray, electrode: np.ndarray,
                 electrode_error: np.ndarray) -> None:
    """Cell by cell from cell ``start`` on, the leads' fields g = Σ_e W_le ∇Z_e of the
    ``columns`` electrodes of ``reference`` and ``other`` (E, C, 3), written into ``fields``
    (cells of the piece, 3, 4 × 12) in the order of :data:`TRANSFER_FIELDS` (g_ref,
    g_other − g_ref, and the error's magnitude part (g_ref at g_other's length, minus g_ref)
    and direction part (g_other's direction at g_ref's length, minus g_ref; none where
    g_other = 0)), and the lengths |g_ref|, |g_other − g_ref| (12, C), |∇Z_e|, |δ∇Z_e| (9, C)
    of the piece's cells. One pass over the cells instead of a dozen over (12, C, 3) arrays
    (with the sparse products, 4.7 -> 0.7 s CPU at 400k cells)."""
    n_leads, n_electrodes = weights.shape
    g_ref, g_other = np.empty(3), np.empty(3)
    for k in range(fields.shape[0]):
        c = start + k
        for e in range(n_electrodes):
            column = columns[e]
            ref0, ref1, ref2 = reference[column, c, 0], reference[column, c, 1], reference[column, c, 2]
            d0, d1, d2 = other[column, c, 0] - ref0, other[column, c, 1] - ref1, other[column, c, 2] - ref2
            electrode[e, c] = np.sqrt(ref0 * ref0 + ref1 * ref1 + ref2 * ref2)
            electrode_error[e, c] = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        for row in range(n_leads):
            for j in range(3):
                total_ref, total_other = 0.0, 0.0
                for e in range(n_electrodes):
                    total_ref += weights[row, e] * reference[columns[e], c, j]
                    total_other += weights[row, e] * other[columns[e], c, j]
                g_ref[j], g_other[j] = total_ref, total_other
            length_ref = np.sqrt(g_ref[0] * g_ref[0] + g_ref[1] * g_ref[1] + g_ref[2] * g_ref[2])
            length = np.sqrt(g_other[0] * g_other[0] + g_other[1] * g_other[1] + g_other[2] * g_other[2])
            ratio = length / length_ref if length_ref > 0 else 1.0
            error_squared = 0.0
            for j in range(3):
                delta = g_other[j] - g_ref[j]
                error_squared += delta * delta
                unit = g_other[j] / length if length > 0 else 0.0
                unit_ref = g_ref[j] / length_ref if length_ref > 0 else 0.0
                fields[k, j, row] = g_ref[j]
                fields[k, j, n_leads + row] = delta
                fields[k, j, 2 * n_leads + row] = (ratio - 1.0) * g_ref[j]
                fields[k, j, 3 * n_leads + row] = length_ref * (unit - unit_ref) if length > 0 else 0.0
            lead[row, c] = length_ref
            lead_error[row, c] = np.sqrt(error_squared)


#: Vectors per piece of :func:`cell_errors`' cross and dot products (8 MB each).
_VECTORS_PER_PIECE = 1 << 20


def cell_errors(gradient: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean angular error (degrees) and relative magnitude error of fields per myocardial cell
    (E, C, 3) against the ``reference``'s: the field the lead matrix integrates, unweighted.
    The numbers of :func:`~ecgcohort.surrogate.metrics.angular_error_deg` (mean) and
    :func:`~ecgcohort.surrogate.metrics.relative_magnitude_error` (mean ignoring 0/0), with the
    cross products, dot products and lengths in one compiled pass (the arctangent stays
    numpy's, so the angles are the same to the bit; 1.5 -> 0.3 s CPU at 400k cells x 25
    electrodes)."""
    predicted = np.ascontiguousarray(gradient, dtype=np.float64).reshape(-1, 3)
    truth = np.ascontiguousarray(reference, dtype=np.float64).reshape(-1, 3)
    if predicted.shape != truth.shape:
        raise ValueError(f"need fields of one shape, got {np.shape(gradient)} and {np.shape(reference)}")
    angle, magnitude = np.empty(len(truth)), np.empty(len(truth))
    size = max(1, min(len(truth), _VECTORS_PER_PIECE))
    cross, dot, degenerate = np.empty(size), np.empty(size), np.empty(size, dtype=np.bool_)
    for start in range(0, len(truth), size):
        stop = min(start + size, len(truth))
        count = stop - start
        _cross_dot_magnitude(predicted[start:stop], truth[start:stop], cross[:count], dot[:count], degenerate[:count],
                             magnitude[start:stop])
        piece = np.degrees(np.arctan2(cross[:count], dot[:count], out=angle[start:stop]), out=angle[start:stop])
        piece[degenerate[:count]] = 90.0  # a zero vector has no direction (angular_error_deg)
    return {"angular_error_deg": float(angle.mean()), "magnitude_error": float(np.nanmean(magnitude))}


@numba.njit(cache=True, error_model="numpy")
def _cross_dot_magnitude(predicted: np.ndarray, truth: np.ndarray, cross: np.ndarray, dot: np.ndarray,
                         degenerate: np.ndarray, magnitude: np.ndarray) -> None:
    """Per vector pair (n, 3): |p × r|, p · r, whether either is zero, and ||p| − |r|| / |r|
    (inf or nan where |r| = 0), with angular_error_deg's and relative_magnitude_error's
    arithmetic in their order."""
    for i in range(truth.shape[0]):
        p0, p1, p2 = predicted[i, 0], predicted[i, 1], predicted[i, 2]
        r0, r1, r2 = truth[i, 0], truth[i, 1], truth[i, 2]
        cross_x, cross_y, cross_z = p1 * r2 - p2 * r1, p2 * r0 - p0 * r2, p0 * r1 - p1 * r0
        cross[i] = np.sqrt(cross_x * cross_x + cross_y * cross_y + cross_z * cross_z)
        dot[i] = p0 * r0 + p1 * r1 + p2 * r2
        squared, squared_ref = p0 * p0 + p1 * p1 + p2 * p2, r0 * r0 + r1 * r1 + r2 * r2
        degenerate[i] = squared == 0 or squared_ref == 0
        length_ref = np.sqrt(squared_ref)
        magnitude[i] = np.abs(np.sqrt(squared) - length_ref) / length_ref


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
    Several beats of one pair: :func:`transfer_fields` once, then :func:`transfer_of_signals`."""
    weights = source_weights(myocardium, vm, phases) if weights is None else weights
    fields = transfer_fields(myocardium, reference, other, electrode_names)
    values = np.asarray(vm, dtype=np.float64)
    return transfer_of_signals(fields, {name: matrix @ values for name, matrix in fields.matrices.items()}, phases,
                               weights)


def transfer_of_signals(fields: TransferFields, signals: Mapping[str, np.ndarray], phases: Mapping[str, np.ndarray],
                        weights: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """:func:`ecg_transfer` from the pair's :class:`TransferFields`, the beat's signals of its
    lead matrices (``signals[name]`` = ``fields.matrices[name]`` @ V_m (12, T), V_m in any unit;
    a caller with several lead matrices forms them all in one product) and the beat's
    :func:`source_weights`."""
    from ecgcohort.ecg.leads import LEAD_WEIGHTS

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
