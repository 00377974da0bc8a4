"""How a lead-field gradient error becomes an ECG error: closed cases and an independent
re-computation through the lead matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial

from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_NAMES, standard_leads
from ecgcohort.leadfield.matrix import lead_matrix
from ecgcohort.surrogate.metrics import angular_error_deg, relative_l2
from ecgcohort.surrogate.transfer import Myocardium, ecg_transfer, qrs_and_t_phases, source_weights

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
