"""How a lead-field gradient error becomes an ECG error: closed cases and an independent
re-computation through the lead matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial

from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_NAMES, standard_leads
from ecgcohort.leadfield.matrix import lead_matrix
from ecgcohort.surrogate.metrics import angular_error_deg, relative_l2, relative_magnitude_error
from ecgcohort.surrogate.transfer import (Myocardium, cell_errors, ecg_transfer, qrs_and_t_phases, source_weights,
                                         transfer_fields)

NAMES = list(LEAD_ELECTRODES) + ["A000"]


@pytest.fixture(scope="module")
def case():
    """A 2 cm block of tetrahedra, anisotropic G_i, 10 electrodes' random smooth ∇Z per cell,
    and a V_m that changes in time only where x < 1 cm (∇V_m = 0 in the cells beyond)."""
    rng = np.random.default_rng(4)
    axis = np.linspace(0.0, 0.02, 7)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    grid = grid + rng.uniform(-5e-4, 5e-4, grid.shape) * (np.ptp(grid, axis=0) > 0)
    tetrahedra = scipy.spatial.Delaunay(grid).simplices
    fibre = np.array([1.0, 0.0, 0.0])
    intracellular = np.broadcast_to(0.03 * np.eye(3) + 0.27 * np.outer(fibre, fibre), (len(tetrahedra), 3, 3))
    myocardium = Myocardium(grid, tetrahedra, np.array(intracellular))
    centroids = grid[tetrahedra].mean(axis=1)
    coefficients = rng.normal(size=(len(NAMES), 3, 4))
    basis = np.c_[np.ones(len(centroids)), centroids / 0.02]
    gradients = np.einsum("ejk,ck->ecj", coefficients, basis)
    times = np.arange(0.0, 300.0, 2.0)
    near = grid[:, 0] < 0.01
    front = np.where(near, 20.0 + 3000.0 * grid[:, 0] + 500.0 * grid[:, 1], 50.0)      # activation, ms
    apd = np.where(near, 200.0 + 2000.0 * grid[:, 2], 220.0)
    vm = -85.0 + 100.0 / (1.0 + np.exp(-(times[None, :] - front[:, None]) / 2.0)) \
        - 100.0 / (1.0 + np.exp(-(times[None, :] - front[:, None] - apd[:, None]) / 8.0))
    still = np.all(~near[tetrahedra], axis=1)                                   # ∇V_m = 0 there
    return myocardium, vm, gradients, times, still


def test_an_error_where_the_source_is_zero_does_not_reach_the_ecg(case):
    myocardium, vm, gradients, times, still = case
    assert 0.2 < still.mean() < 0.8
    other = gradients.copy()
    other[:, still] = np.random.default_rng(1).normal(size=other[:, still].shape)
    assert angular_error_deg(other[:, still], gradients[:, still]).mean() > 30.0  # a large field error
    result = ecg_transfer(myocardium, vm, gradients, other, NAMES, qrs_and_t_phases(times, 60.0, 10.0))
    for phase in result.values():
        assert np.all(phase["ecg_error"] < 1e-12)
        assert np.all(phase["weighted_field_error"] < 1e-12)
        assert np.all(phase["electrode_error"] < 1e-12)


def test_a_uniform_one_percent_scale_is_one_percent_in_every_lead_and_phase(case):
    myocardium, vm, gradients, times, _ = case
    result = ecg_transfer(myocardium, vm, gradients, 1.01 * gradients, NAMES, qrs_and_t_phases(times, 60.0, 10.0))
    for phase in result.values():
        for key in ("ecg_error", "magnitude_part", "weighted_field_error", "electrode_error"):
            np.testing.assert_allclose(phase[key], 0.01, rtol=1e-9, err_msg=key)
        assert np.all(phase["direction_part"] < 1e-12)
        assert np.all(phase["difference_gain"] >= 1.0 - 1e-12)                  # triangle inequality


def test_the_ecg_error_equals_the_one_through_the_lead_matrix(case):
    myocardium, vm, gradients, times, _ = case
    rng = np.random.default_rng(2)
    rotation = scipy.spatial.transform.Rotation.from_rotvec(rng.normal(scale=0.15, size=3)).as_matrix()
    other = 1.1 * np.einsum("ij,ecj->eci", rotation, gradients) + 0.05 * rng.normal(size=gradients.shape)
    phases = qrs_and_t_phases(times, 60.0, 10.0)
    result = ecg_transfer(myocardium, vm, gradients, other, NAMES, phases)
    leads = {name: standard_leads(lead_matrix(myocardium.nodes_m, myocardium.tetrahedra, myocardium.intracellular, g)
                                  @ vm, NAMES) for name, g in (("reference", gradients), ("other", other))}
    for phase, mask in phases.items():
        expected = relative_l2(leads["other"][:, mask], leads["reference"][:, mask])
        np.testing.assert_allclose(result[phase]["ecg_error"], expected, rtol=1e-9)
        assert result[phase]["ecg_error"].shape == (len(LEAD_NAMES),)
    # a rotation keeps every lead field's length: all of its error is direction
    rotated = ecg_transfer(myocardium, vm, gradients, np.einsum("ij,ecj->eci", rotation, gradients), NAMES,
                           phases)["beat"]
    assert np.all(rotated["magnitude_part"] < 1e-12)
    np.testing.assert_allclose(rotated["direction_part"], rotated["ecg_error"], rtol=1e-9)
    assert np.all(rotated["ecg_error"] > 0.01)

def test_source_weights_sum_the_cells_current_density_over_each_phase(case):
    from ecgcohort.fem import p1_gradients

    myocardium, vm, _, times, still = case
    phases = qrs_and_t_phases(times, 60.0, 10.0)
    weights = source_weights(myocardium, vm, phases)
    gradients, volumes = p1_gradients(myocardium.nodes_m, myocardium.tetrahedra)
    grad_vm = np.einsum("cak,cat->ctk", gradients, vm[myocardium.tetrahedra])          # cell by cell
    strength = np.linalg.norm(np.einsum("cjk,ctk->ctj", myocardium.intracellular, grad_vm), axis=-1) * volumes[:, None]
    for phase, mask in phases.items():
        np.testing.assert_allclose(weights[phase], strength[:, mask].sum(axis=1), rtol=1e-10,
                                   atol=1e-12 * strength.sum(axis=1).max())
    np.testing.assert_allclose(weights["qrs"] + weights["t"], weights["beat"], rtol=1e-12)
    assert np.all(weights["beat"][still] < 1e-12 * weights["beat"].max())


def test_the_blocked_source_sums_are_the_cell_by_cell_sums_to_the_bit(case):
    """The compiled sums run 16 cells side by side; each cell's sum must still be the same chain
    of additions in time order as a plain loop over its times (a cell count that leaves a
    partial last block)."""
    myocardium, vm, _, times, _ = case
    assert len(myocardium.tetrahedra) % 16 != 0
    phases = qrs_and_t_phases(times, 60.0, 10.0)
    weights = source_weights(myocardium, vm, phases)
    operator = myocardium.source_operator
    for c in range(0, len(myocardium.tetrahedra), 7):
        v = vm[myocardium.tetrahedra[c]]
        o = operator[c]
        j = [o[i, 0] * v[0] + o[i, 1] * v[1] + o[i, 2] * v[2] + o[i, 3] * v[3] for i in range(3)]
        strength = np.sqrt(j[0] * j[0] + j[1] * j[1] + j[2] * j[2])
        for phase, mask in phases.items():
            total = 0.0
            for value in strength[mask]:
                total += float(value)
            assert weights[phase][c] == total, (phase, c)


@pytest.mark.parametrize("cells_per_piece", [32768, 97])
def test_the_myocardium_lead_matrix_is_the_fem_paths(case, cells_per_piece, monkeypatch):
    from ecgcohort.surrogate import transfer

    monkeypatch.setattr(transfer, "_CELLS_PER_PIECE", cells_per_piece)
    myocardium, _, gradients, _, _ = case
    expected = lead_matrix(myocardium.nodes_m, myocardium.tetrahedra, myocardium.intracellular, gradients)
    np.testing.assert_allclose(myocardium.lead_matrix(gradients), expected, rtol=0,
                               atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("cells_per_piece", [32768, 97])
def test_the_transfer_fields_are_the_leads_fields_split_into_magnitude_and_direction(case, cells_per_piece,
                                                                                    monkeypatch):
    """The compiled pass against the leads' fields formed with numpy and split as the module
    docstring says, on fields with zero vectors on either side (no direction there), in one
    piece of cells and in uneven pieces."""
    from ecgcohort.ecg.leads import LEAD_WEIGHTS
    from ecgcohort.surrogate import transfer

    monkeypatch.setattr(transfer, "_CELLS_PER_PIECE", cells_per_piece)

    myocardium, _, gradients, _, _ = case
    other = 1.05 * gradients + 0.1 * np.random.default_rng(6).normal(size=gradients.shape)
    reference = gradients.copy()
    other[:, :5] = 0.0                     # every lead's other field 0: its direction part is 0
    reference[:, 5:9] = 0.0                # every lead's reference 0: length ratio 1, no unit
    fields = transfer_fields(myocardium, reference, other, NAMES)
    columns = [NAMES.index(name) for name in LEAD_ELECTRODES]
    g_ref = np.einsum("le,ecj->lcj", LEAD_WEIGHTS, reference[columns])
    g_other = np.einsum("le,ecj->lcj", LEAD_WEIGHTS, other[columns])
    length_ref = np.linalg.norm(g_ref, axis=-1, keepdims=True)
    length = np.linalg.norm(g_other, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(length_ref > 0, length / length_ref, 1.0)
        unit = np.where(length > 0, g_other / length, 0.0)
        unit_ref = np.where(length_ref > 0, g_ref / length_ref, 0.0)
    expected = {"reference": g_ref, "error": g_other - g_ref, "magnitude": (ratio - 1.0) * g_ref,
                "direction": np.where(length > 0, length_ref * (unit - unit_ref), 0.0)}
    assert np.all(expected["direction"][:, :5] == 0) and np.any(expected["direction"][:, 10:] != 0)
    for name, field in expected.items():
        matrix = lead_matrix(myocardium.nodes_m, myocardium.tetrahedra, myocardium.intracellular, field)
        np.testing.assert_allclose(fields.matrices[name], matrix, rtol=0, atol=1e-12 * np.abs(matrix).max() + 1e-300,
                                   err_msg=name)
    lengths = {"lead": length_ref[..., 0], "lead_error": np.linalg.norm(g_other - g_ref, axis=-1),
               "electrode": np.linalg.norm(reference[columns], axis=-1),
               "electrode_error": np.linalg.norm(other[columns] - reference[columns], axis=-1)}
    for name, values in lengths.items():
        np.testing.assert_allclose(fields.lengths[name], values, rtol=1e-14, atol=1e-300, err_msg=name)


@pytest.mark.parametrize("vectors_per_piece", [1 << 20, 1000])
def test_the_cell_errors_are_the_metrics_means_to_the_bit(case, vectors_per_piece, monkeypatch):
    from ecgcohort.surrogate import transfer

    monkeypatch.setattr(transfer, "_VECTORS_PER_PIECE", vectors_per_piece)
    _, _, gradients, _, _ = case
    other = gradients + 0.3 * np.random.default_rng(7).normal(size=gradients.shape)
    other[0, :3] = 0.0                     # no direction: 90 degrees
    reference = gradients.copy()
    reference[1, 3] = 0.0                  # |r| = 0: an infinite magnitude error, counted
    reference[2, 4] = 0.0
    other[2, 4] = 0.0                      # 0/0: left out of the mean
    errors = cell_errors(other, reference)
    angle = angular_error_deg(other, reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = relative_magnitude_error(other, reference)
    assert angle[0, 0] == 90.0 and np.isinf(magnitude[1, 3]) and np.isnan(magnitude[2, 4])
    assert errors["angular_error_deg"] == float(angle.mean())
    assert errors["magnitude_error"] == float(np.nanmean(magnitude)) == np.inf
    finite = cell_errors(other[:, 5:], reference[:, 5:])
    assert finite["magnitude_error"] == float(np.nanmean(relative_magnitude_error(other[:, 5:], reference[:, 5:])))
    with pytest.raises(ValueError, match="one shape"):
        cell_errors(other[:, 1:], reference)


def test_leads_formed_from_nearly_equal_electrode_fields_magnify_their_errors(case):
    myocardium, vm, gradients, times, _ = case
    close = gradients.copy()
    la, ra = NAMES.index("LA"), NAMES.index("RA")
    close[la] = close[ra] + 0.05 * gradients[la]                                # lead I = LA − RA is small
    other = close * (1.0 + 0.02 * np.random.default_rng(3).choice([-1.0, 1.0], size=(len(NAMES), 1, 1)))
    result = ecg_transfer(myocardium, vm, close, other, NAMES, qrs_and_t_phases(times, 60.0, 10.0))["beat"]
    lead_i = LEAD_NAMES.index("I")
    assert result["difference_gain"][lead_i] > 10.0
    assert result["electrode_error"][lead_i] == pytest.approx(0.02, rel=1e-9)
    assert result["weighted_field_error"][lead_i] > 5 * result["electrode_error"][lead_i]


def _transfer(scale: float) -> dict:
    lead = scale * np.arange(1.0, 13.0)
    phase = {"ecg_error": lead, "weighted_field_error": 0.5 * lead, "electrode_error": 0.4 * lead,
             "difference_gain": np.full(12, 1.5), "magnitude_part": 0.3 * lead, "direction_part": 0.2 * lead}
    return {"cells": {"angular_error_deg": 10.0 * scale, "magnitude_error": 0.2 * scale},
            "sinus": {"qrs": phase, "beat": phase}, "lbbb": {"qrs": phase, "beat": phase}}


def test_the_transfer_table_averages_patients_scenarios_and_leads_and_counts_the_pseudo_once():
    from ecgcohort.surrogate.report import transfer_table

    summaries = [{"patient": patient, "encoding": "deepsdf", "target": "pseudo_residual", "outlier": False,
                  "surrogate": {"ecg_transfer": _transfer(scale)}, "pseudo": {"ecg_transfer": _transfer(10.0)}}
                 for patient, scale in (("test-0000", 1.0), ("test-0001", 3.0))]
    summaries.append({**summaries[0], "encoding": "pca", "pseudo": {"ecg_transfer": _transfer(99.0)}})
    table = transfer_table(summaries).set_index(["model", "phase", "lead"])
    deepsdf = table.loc[("DeepSDF, pseudo_residual", "qrs", "V1")]
    assert deepsdf["ecg_error"] == pytest.approx(2.0 * 7)                        # mean of scales 1 and 3
    assert deepsdf["cell_angular_error_deg"] == pytest.approx(20.0)
    assert deepsdf["ecg_over_field"] == pytest.approx(2.0)
    assert table.loc[("DeepSDF, pseudo_residual", "beat", "all"), "ecg_error"] == pytest.approx(2.0 * 6.5)
    # the pseudo lead field once per patient: the pca row's repeat of test-0000 is not counted
    assert table.loc[("pseudo lead field", "qrs", "I"), "ecg_error"] == pytest.approx(10.0)
    assert len(table) == 3 * 2 * 13


def test_myocardial_points_are_cell_centroids_with_the_cells_fem_gradient(case, tmp_path):
    import xarray as xr

    from ecgcohort.surrogate.jobs import myocardial_points

    myocardium, _, gradients, _, _ = case
    store = tmp_path / "cohort.zarr"
    xr.Dataset({"node_position": (("node", "component"), myocardium.nodes_m),
                "tetrahedra": (("cell", "corner"), myocardium.tetrahedra),
                "grad_lead_field_cell": (("electrode", "cell", "component"), gradients.astype(np.float32))}
               ).to_zarr(store, group="patients/train-0003")
    points, grad_z = myocardial_points(store, "train-0003", 300, seed=5)
    centroids = myocardium.nodes_m[myocardium.tetrahedra].mean(axis=1)
    cells = [int(np.argmin(np.linalg.norm(centroids - p, axis=1))) for p in points]
    assert len(set(cells)) == 300                                                 # distinct cells
    np.testing.assert_allclose(points, centroids[cells], atol=1e-15)
    np.testing.assert_allclose(grad_z, gradients[:, cells], rtol=1e-6)
    again, _ = myocardial_points(store, "train-0003", 300, seed=5)
    other, _ = myocardial_points(store, "train-0003", 300, seed=6)
    np.testing.assert_array_equal(points, again)
    assert not np.array_equal(points, other)
    everything, _ = myocardial_points(store, "train-0003", 10 ** 6, seed=5)
    assert len(everything) == len(myocardium.tetrahedra)                          # at most every cell
