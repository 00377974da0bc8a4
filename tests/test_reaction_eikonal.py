"""The reaction–eikonal tissue model that checks the diffused repolarisation times: its APD
calibration, the uncoupled limit (every node repolarises at its intrinsic time), the coupled
one (electrotonic currents pull repolarisation together), the TP06 cells on arrays, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.conduction import action_potential as ap
from ecgcohort.conduction.eikonal import _self_test_mesh
from ecgcohort.conduction.reaction_eikonal import (MitchellSchaeffer, TenTusscher, cell_parameters_for_apd,
                                                   isolated_cell_apd, reaction_eikonal_times)

FIBRE_ALONG_Y = np.array([0.0, 1.0, 0.0])


def slab(n: int, size_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points, tets = _self_test_mesh(n=n, spacing_mm=size_mm / n)
    return points, tets, np.tile(FIBRE_ALONG_Y, (len(tets), 1))


def test_isolated_cells_get_the_apd_they_are_calibrated_to():
    model = MitchellSchaeffer()
    target = np.array([150.0, 230.0, 305.0, 420.0])
    closing = cell_parameters_for_apd(model, target)
    np.testing.assert_allclose(isolated_cell_apd(model, closing), target, atol=0.5)
    assert np.all(np.diff(closing) > 0)  # longer APD, slower closing gate
    with pytest.raises(ValueError, match="5 ms are outside"):
        cell_parameters_for_apd(model, np.array([5.0]))


def test_uncoupled_tissue_repolarises_at_the_intrinsic_times():
    """D = 0: every node is its own isolated cell, stimulated at its activation time."""
    points, tets, fibres = slab(n=4, size_mm=8.0)
    tau = 3.0 * points[:, 1] + 10.0  # a front along y, 24 ms across
    apd = 250.0 + 10.0 * points[:, 0]
    times = reaction_eikonal_times(points, tets, fibres, tau, apd, diffusion_mm2_per_ms=(0.0, 0.0), sample_every_ms=1.0)
    np.testing.assert_allclose(times.repolarisation_ms, tau + apd, atol=0.1)
    assert np.all((times.depolarisation_ms > tau) & (times.depolarisation_ms < tau + 1.5))
    # the sampled voltage: every 1 ms from the first activation, at rest before each node's own,
    # depolarised halfway through its APD
    assert times.sample_times_ms[0] == 10.0 and np.allclose(np.diff(times.sample_times_ms), 1.0)
    before = times.sample_times_ms[None, :] < tau[:, None]
    assert np.all(times.voltage[before] == 0.0)
    middle = np.searchsorted(times.sample_times_ms, tau + 0.5 * apd)
    assert np.all(times.voltage[np.arange(len(tau)), middle] > 0.6)
    with pytest.raises(ValueError, match="multiple of the step"):
        reaction_eikonal_times(points, tets, fibres, tau, apd, diffusion_mm2_per_ms=(0.0, 0.0), sample_every_ms=0.07)


def test_coupling_pulls_repolarisation_together_across_an_apd_step():
    """Two halves of a slab with APDs 100 ms apart, activated at once: coupled, the short half
    repolarises later and the long half earlier, monotonically across the step, and the
    fibre direction (y, along the step) does not matter; uncoupled, the step stays 100 ms."""
    points, tets, fibres = slab(n=8, size_mm=8.0)
    apd = np.where(points[:, 0] < 4.0, 250.0, 350.0)
    tau = np.zeros(len(points))
    coupled = reaction_eikonal_times(points, tets, fibres, tau, apd, diffusion_mm2_per_ms=(1.0, 1.0)).repolarisation_ms
    alone = reaction_eikonal_times(points, tets, fibres, tau, apd, diffusion_mm2_per_ms=(0.0, 0.0)).repolarisation_ms
    assert np.ptp(alone) == pytest.approx(100.0, abs=0.2)
    assert np.ptp(coupled) < 0.9 * np.ptp(alone)
    planes = np.unique(points[:, 0])
    profile = np.array([coupled[points[:, 0] == x].mean() for x in planes])
    assert np.all(np.diff(profile) > 0)
    for x in planes:  # nearly uniform within each plane (the six-tetrahedra split is not symmetric)
        assert np.ptp(coupled[points[:, 0] == x]) < 1.0


def test_tp06_terms_on_arrays_equal_the_scalar_cell_and_calibrate():
    state = np.array(ap.INITIAL_STATE, dtype=float)
    states = np.repeat(state[:, None], 4, axis=1)
    states[0] = [-86.0, -45.0, -20.0, 15.0]
    epi = ap.CELL_TYPES["epi"]
    array_terms = ap.tp06_terms_array(states, 0.0, epi)
    for column in range(4):
        scalar_terms = ap.tp06_terms(states[:, column], 0.0, epi)
        for scalar_group, array_group in zip(scalar_terms, array_terms):
            np.testing.assert_allclose([a[column] for a in array_group], scalar_group, rtol=1e-12)
    # more repolarising current, shorter APD; the calibration inverts it
    model = TenTusscher()
    target = np.array([250.0, 330.0])
    factor = cell_parameters_for_apd(model, target, dt_ms=0.05, table_size=9)
    assert factor[0] > 1.0 > factor[1]
    np.testing.assert_allclose(isolated_cell_apd(model, factor, dt_ms=0.05), target, atol=3.0)


def test_bad_input_is_refused():
    points, tets, fibres = slab(n=2, size_mm=4.0)
    tau = np.zeros(len(points))
    with pytest.raises(ValueError, match="per node"):
        reaction_eikonal_times(points, tets, fibres, tau[:-1], np.full(len(points) - 1, 300.0))
    with pytest.raises(ValueError, match=">= 0"):
        reaction_eikonal_times(points, tets, fibres, tau, np.full(len(points), 300.0), diffusion_mm2_per_ms=(-1, 0))
    with pytest.raises(ValueError, match="finite"):
        reaction_eikonal_times(points, tets, fibres, np.full(len(points), np.nan), np.full(len(points), 300.0))
