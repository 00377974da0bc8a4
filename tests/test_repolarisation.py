"""Repolarisation with electrotonic coupling: the diffusion of repolarisation times against its
one-dimensional closed form, its conservation, and the activation-APD coupling it produces."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.conduction.eikonal import _self_test_mesh
from ecgcohort.conduction.repolarisation import Repolarisation, diffuse_repolarisation, effective_apd_scale
from ecgcohort.fem import mass_matrix, p1_gradients

FIBRE_ALONG_Y = np.array([0.0, 1.0, 0.0])


def slab(n: int = 24, size_mm: float = 12.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points, tets = _self_test_mesh(n=n, spacing_mm=size_mm / n)
    return points, tets, np.tile(FIBRE_ALONG_Y, (len(tets), 1))


def closed_form(x: np.ndarray, thickness: float, length: float) -> np.ndarray:
    """r − ℓ² r'' = x on [0, d] with r'(0) = r'(d) = 0."""
    a = length * (np.cosh(thickness / length) - 1.0) / np.sinh(thickness / length)
    return x + a * np.cosh(x / length) - length * np.sinh(x / length)


def test_a_transmural_gradient_is_damped_as_the_closed_form_says():
    """A repolarisation gradient across a 12 mm wall (across the fibres, ℓ_t = 2 mm): the P1
    solution matches the 1-D closed form, and the gradient at the mid-wall is reduced."""
    points, tets, fibres = slab()
    smoothed = diffuse_repolarisation(points, tets, fibres, points[:, 0], length_fibre_mm=4.0, length_cross_mm=2.0)
    exact = closed_form(points[:, 0], 12.0, 2.0)
    assert np.abs(smoothed - exact).max() < 0.02 * 12.0
    # near the walls the gradient vanishes (no flux), in the middle it is kept
    wall, middle = points[:, 0] < 1e-9, np.abs(points[:, 0] - 6.0) < 1e-9
    assert smoothed[wall].mean() > 1.0 and abs(smoothed[middle].mean() - 6.0) < 0.05


def test_the_diffusion_conserves_the_mean_and_leaves_uniform_fields_alone():
    points, tets, fibres = slab(n=8)
    rng = np.random.default_rng(3)
    r0 = 300.0 + 20.0 * rng.standard_normal(len(points))
    smoothed = diffuse_repolarisation(points, tets, fibres, r0, 4.0, 2.0)
    mass = mass_matrix(tets, p1_gradients(points, tets)[1], len(points))
    assert (mass @ smoothed).sum() == pytest.approx((mass @ r0).sum(), rel=1e-10)
    assert smoothed.std() < 0.5 * r0.std()
    np.testing.assert_allclose(diffuse_repolarisation(points, tets, fibres, np.full(len(points), 310.0), 4.0, 2.0),
                               310.0, rtol=1e-12)
    np.testing.assert_array_equal(diffuse_repolarisation(points, tets, fibres, r0, 0.0, 0.0), r0)


def test_late_activation_shortens_the_apd():
    """Electrotonic coupling's best-known effect (Franz et al. 1987): with one intrinsic APD,
    the cells activated last end up with the shortest APD; without coupling nothing changes."""
    points, tets, fibres = slab(n=12)
    tau = 3.0 * points[:, 1]  # a front along the fibres, 36 ms across the slab
    uniform = np.ones(len(points))
    coupled = effective_apd_scale(points, tets, fibres, tau, uniform, apd90_ms=300.0, peak_ms=5.0,
                                  settings=Repolarisation(length_fibre_mm=4.0, length_cross_mm=2.0))
    assert np.corrcoef(tau, coupled)[0, 1] < -0.9
    assert coupled.max() - coupled.min() > 0.02
    alone = effective_apd_scale(points, tets, fibres, tau, uniform, 300.0, 5.0, Repolarisation())
    np.testing.assert_allclose(alone, 1.0, atol=1e-12)


def test_settings_come_from_the_config_section():
    settings = Repolarisation.from_config({"apd_apex_to_base": -0.1, "apd_endo_to_epi": -0.15, "apd_lv_to_rv": 0.05,
                                           "electrotonic_length_mm": {"fibre": 4.0, "cross": 2.0}})
    assert settings == Repolarisation(-0.1, -0.15, 0.05, 4.0, 2.0)
    with pytest.raises(ValueError, match="electrotonic lengths"):
        Repolarisation(length_fibre_mm=-1.0)
