"""The fast subendocardial layer (ecgcohort.conduction.tensors.SubendocardialLayer) in the
eikonal grid: which cells it takes, their tensors, and a front along a layer in a slab against
the closed-form head-wave times."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.conduction.eikonal import EikonalGrid
from ecgcohort.conduction.tensors import SubendocardialLayer, conduction_tensors

from test_eikonal import SINGLE_MS, box_mesh

V_F, V_T = 0.6, 0.3  # the myocardium's fibre / cross velocities, m/s = mm/ms
V_LAYER = 0.98  # Myerburg et al. 1978's subendocardial muscle along its fibres, m/s


def test_a_cell_below_the_depth_gets_the_faster_fibre_velocity():
    """Two tetrahedra, one with a mean transmural coordinate below the depth (in the layer),
    one above: the first's tensor is the myocardium's with the layer's fibre velocity, the
    second's unchanged; across the fibres both keep the myocardium's velocity."""
    transmural = np.array([0.0, 0.0, 0.1, 0.1, 0.5, 0.5])
    tetrahedra = np.array([[0, 1, 2, 3], [2, 3, 4, 5]])  # means 0.05 and 0.3
    layer = SubendocardialLayer(transmural_depth=0.1, fibre_velocity_m_per_s=V_LAYER)
    np.testing.assert_array_equal(layer.cells(transmural, tetrahedra), [True, False])
    scale = layer.fibre_velocity_scale(transmural, tetrahedra, V_F)
    np.testing.assert_allclose(scale, [V_LAYER / V_F, 1.0])
    fibres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    tensors = conduction_tensors(fibres, V_F * scale, V_T)
    np.testing.assert_allclose(fibres[0] @ tensors[0] @ fibres[0], V_LAYER**2)
    np.testing.assert_allclose(fibres[1] @ tensors[1] @ fibres[1], V_F**2)
    np.testing.assert_allclose([tensors[0][2, 2], tensors[1][2, 2]], V_T**2)
    assert SubendocardialLayer(transmural_depth=0.0).fibre_velocity_scale(transmural, tetrahedra, V_F) is None


def test_a_layer_is_refused_outside_its_range():
    with pytest.raises(ValueError, match="transmural_depth"):
        SubendocardialLayer(transmural_depth=-0.1)
    with pytest.raises(ValueError, match="fibre_velocity_m_per_s"):
        SubendocardialLayer(transmural_depth=0.1, fibre_velocity_m_per_s=0.0)
    assert SubendocardialLayer.from_config(None) == SubendocardialLayer(0.0)
    with pytest.raises(ValueError, match="per tetrahedron"):
        points, tets = box_mesh(1)
        EikonalGrid.refined(points, tets, np.tile([1.0, 0.0, 0.0], (len(tets), 1)), 0,
                            fibre_velocity_scale=np.ones(len(tets) + 1))


@pytest.mark.parametrize("refinements", [0, 1])
def test_a_front_along_a_layer_in_a_slab_arrives_at_the_head_wave_time(refinements):
    """A slab [0, 10]^3 mm with fibres along x, its bottom row of cells (z < h = 2 mm) a layer
    conducting at v_L along x. A front running along the layer at v_L sheds a head wave into
    the slower muscle above it: t = x / v_L + (z − h) √(1 − v_f²/v_L²) / v_t (the least time
    over the point ξ where a path leaves the layer, ξ / v_L + √((x − ξ)²/v_f² + (z − h)²/v_t²)),
    and x / v_L in the layer. Started with those times on the face x = 0, the grid's times are
    the closed form everywhere (piecewise plane, with the kink on a node plane); without the
    layer the same start gives the muscle's own, later, front."""
    points, tets = box_mesh(5)  # 2 mm cells
    h = 2.0
    layer = SubendocardialLayer(transmural_depth=h / 10.0, fibre_velocity_m_per_s=V_LAYER)
    scale = layer.fibre_velocity_scale(points[:, 2] / 10.0, tets, V_F)  # z / 10 mm as the transmural coordinate
    assert scale is not None and np.all(points[tets[scale > 1.0]][:, :, 2] <= h)

    def head_wave(p: np.ndarray) -> np.ndarray:
        return p[:, 0] / V_LAYER + np.maximum(p[:, 2] - h, 0.0) * np.sqrt(1.0 - (V_F / V_LAYER) ** 2) / V_T

    fibres = np.tile([1.0, 0.0, 0.0], (len(tets), 1))
    grid = EikonalGrid.refined(points, tets, fibres, refinements, fibre_velocity_scale=scale)
    face = np.flatnonzero(np.isclose(grid.points_mm[:, 0], 0.0))
    tau = grid.restrict(grid.activation_times(V_F, V_T, face, head_wave(grid.points_mm[face]), device="cpu"))
    np.testing.assert_allclose(tau, head_wave(points), rtol=0, atol=SINGLE_MS)
    plain = EikonalGrid.refined(points, tets, fibres, refinements)
    tau_plain = plain.restrict(plain.activation_times(V_F, V_T, face, head_wave(plain.points_mm[face]), device="cpu"))
    in_layer = points[:, 2] <= h
    np.testing.assert_allclose(tau_plain[in_layer], points[in_layer, 0] / V_F, rtol=0, atol=SINGLE_MS)
    assert np.all(tau_plain >= tau - SINGLE_MS)
