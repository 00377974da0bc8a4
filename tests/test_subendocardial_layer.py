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
    scale = layer.velocity_scales(transmural, tetrahedra, (V_F, V_T, None))
    np.testing.assert_allclose(scale, [[V_LAYER / V_F, 1.0, 1.0], [1.0, 1.0, 1.0]])
    fibres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    tensors = conduction_tensors(fibres, V_F * scale[:, 0], V_T * scale[:, 1])
    np.testing.assert_allclose(fibres[0] @ tensors[0] @ fibres[0], V_LAYER**2)
    np.testing.assert_allclose(fibres[1] @ tensors[1] @ fibres[1], V_F**2)
    np.testing.assert_allclose([tensors[0][2, 2], tensors[1][2, 2]], V_T**2)
    assert SubendocardialLayer(transmural_depth=0.0).velocity_scales(transmural, tetrahedra, (V_F, V_T, None)) is None


def test_an_isotropic_layer_in_one_ventricle():
    """The same two cells and a third in the RV: with a velocity across the fibres the LV cell
    of the layer conducts at it in every direction (D = v² I, orthotropic muscle or not), the RV
    cell of the same depth is left out of an LV layer, and the cell above the depth keeps the
    muscle's tensor."""
    transmural = np.array([0.0, 0.0, 0.1, 0.1, 0.5, 0.5, 0.0, 0.0])
    ventricle = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    tetrahedra = np.array([[0, 1, 2, 3], [2, 3, 4, 5], [6, 7, 0, 1]])  # LV layer, LV above, RV (mean 0.5) layer
    v_n, v_iso = 0.17, 1.6
    layer = SubendocardialLayer(transmural_depth=0.1, fibre_velocity_m_per_s=v_iso, cross_velocity_m_per_s=v_iso,
                                ventricles=("lv",))
    np.testing.assert_array_equal(layer.cells(transmural, tetrahedra, ventricle), [True, False, False])
    both = SubendocardialLayer(transmural_depth=0.1, fibre_velocity_m_per_s=v_iso, cross_velocity_m_per_s=v_iso)
    np.testing.assert_array_equal(both.cells(transmural, tetrahedra), [True, False, True])
    scale = layer.velocity_scales(transmural, tetrahedra, (V_F, V_T, v_n), ventricle)
    fibres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    tensors = conduction_tensors(fibres, V_F * scale[:, 0], V_T * scale[:, 1], normals, v_n * scale[:, 2])
    np.testing.assert_allclose(tensors[0], v_iso**2 * np.eye(3), rtol=1e-12)
    np.testing.assert_allclose(tensors[1], conduction_tensors(fibres[1:2], V_F, V_T, normals[1:2], v_n)[0], rtol=1e-12)
    np.testing.assert_allclose(tensors[2], conduction_tensors(fibres[2:3], V_F, V_T, normals[2:3], v_n)[0], rtol=1e-12)
    with pytest.raises(ValueError, match="ventricle coordinate"):
        layer.cells(transmural, tetrahedra)
    with pytest.raises(ValueError, match="ventricles"):
        SubendocardialLayer(transmural_depth=0.1, ventricles=("la",))
    with pytest.raises(ValueError, match="cross_velocity_m_per_s"):
        SubendocardialLayer(transmural_depth=0.1, cross_velocity_m_per_s=-1.0)
    assert SubendocardialLayer.from_config({"transmural_depth": 0.1, "cross_velocity_m_per_s": 1.6,
                                            "ventricles": ["lv"]}) == SubendocardialLayer(0.1, 0.98, 1.6, ("lv",))


@pytest.mark.parametrize("refinements", [0, 1])
def test_a_plane_front_across_the_fibres_of_an_isotropic_layer_runs_at_its_velocity(refinements):
    """A cube of layer (every cell below the depth), fibres along x, sheet normals along z, the
    layer isotropic at v_L: a plane front started on the face y = 0 reaches every node at
    y / v_L (a plane front is exact on the grid); the same layer without a cross velocity
    (Myerburg's) keeps the muscle's v_t across the fibres, y / v_t."""
    points, tets = box_mesh(5)
    v_iso, v_n = 1.6, 0.17
    fibres = np.tile([1.0, 0.0, 0.0], (len(tets), 1))
    normals = np.tile([0.0, 0.0, 1.0], (len(tets), 1))
    for cross, speed in ((v_iso, v_iso), (None, V_T)):
        layer = SubendocardialLayer(transmural_depth=0.5, fibre_velocity_m_per_s=v_iso, cross_velocity_m_per_s=cross)
        scale = layer.velocity_scales(np.zeros(len(points)), tets, (V_F, V_T, v_n))
        grid = EikonalGrid.refined(points, tets, fibres, refinements, normals=normals, velocity_scale=scale)
        face = np.flatnonzero(np.isclose(grid.points_mm[:, 1], 0.0))
        tau = grid.restrict(grid.activation_times(V_F, V_T, face, np.zeros(len(face)), device="cpu", v_normal=v_n))
        np.testing.assert_allclose(tau, points[:, 1] / speed, rtol=0, atol=SINGLE_MS)


def test_a_layer_is_refused_outside_its_range():
    with pytest.raises(ValueError, match="transmural_depth"):
        SubendocardialLayer(transmural_depth=-0.1)
    with pytest.raises(ValueError, match="fibre_velocity_m_per_s"):
        SubendocardialLayer(transmural_depth=0.1, fibre_velocity_m_per_s=0.0)
    assert SubendocardialLayer.from_config(None) == SubendocardialLayer(0.0)
    with pytest.raises(ValueError, match="per tetrahedron"):
        points, tets = box_mesh(1)
        EikonalGrid.refined(points, tets, np.tile([1.0, 0.0, 0.0], (len(tets), 1)), 0,
                            velocity_scale=np.ones((len(tets) + 1, 3)))


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
    scale = layer.velocity_scales(points[:, 2] / 10.0, tets, (V_F, V_T, None))  # z / 10 mm as the transmural coordinate
    assert scale is not None and np.all(points[tets[scale[:, 0] > 1.0]][:, :, 2] <= h)

    def head_wave(p: np.ndarray) -> np.ndarray:
        return p[:, 0] / V_LAYER + np.maximum(p[:, 2] - h, 0.0) * np.sqrt(1.0 - (V_F / V_LAYER) ** 2) / V_T

    fibres = np.tile([1.0, 0.0, 0.0], (len(tets), 1))
    grid = EikonalGrid.refined(points, tets, fibres, refinements, velocity_scale=scale)
    face = np.flatnonzero(np.isclose(grid.points_mm[:, 0], 0.0))
    tau = grid.restrict(grid.activation_times(V_F, V_T, face, head_wave(grid.points_mm[face]), device="cpu"))
    np.testing.assert_allclose(tau, head_wave(points), rtol=0, atol=SINGLE_MS)
    plain = EikonalGrid.refined(points, tets, fibres, refinements)
    tau_plain = plain.restrict(plain.activation_times(V_F, V_T, face, head_wave(plain.points_mm[face]), device="cpu"))
    in_layer = points[:, 2] <= h
    np.testing.assert_allclose(tau_plain[in_layer], points[in_layer, 0] / V_F, rtol=0, atol=SINGLE_MS)
    assert np.all(tau_plain >= tau - SINGLE_MS)
