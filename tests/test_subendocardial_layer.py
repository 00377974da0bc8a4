"""The fast subendocardial layer (ecgcohort.conduction.tensors.SubendocardialLayer) in the
eikonal grid: the wall depth it is measured in (a slab, a septum between two endocardia, the
synthetic ventricles), which cells it takes, their tensors, and a front along a layer in a slab
against the closed-form head-wave times."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.conduction.eikonal import EikonalGrid
from ecgcohort.conduction.tensors import SubendocardialLayer, conduction_tensors, wall_depth

from test_eikonal import SINGLE_MS, box_mesh

V_F, V_T = 0.6, 0.3  # the myocardium's fibre / cross velocities, m/s = mm/ms
V_LAYER = 0.98  # Myerburg et al. 1978's subendocardial muscle along its fibres, m/s


def test_a_cell_below_the_depth_gets_the_faster_fibre_velocity():
    """Two tetrahedra, one with a mean wall depth below the layer's (in the layer),
    one above: the first's tensor is the myocardium's with the layer's fibre velocity, the
    second's unchanged; across the fibres both keep the myocardium's velocity."""
    transmural = np.array([0.0, 0.0, 0.1, 0.1, 0.5, 0.5])
    tetrahedra = np.array([[0, 1, 2, 3], [2, 3, 4, 5]])  # means 0.05 and 0.3
    lv_side = np.ones(len(transmural), dtype=bool)
    layer = SubendocardialLayer(transmural_depth=0.1, fibre_velocity_m_per_s=V_LAYER)
    np.testing.assert_array_equal(layer.cells(transmural, lv_side, tetrahedra), [True, False])
    scale = layer.velocity_scales(transmural, lv_side, tetrahedra, (V_F, V_T, None))
    np.testing.assert_allclose(scale, [[V_LAYER / V_F, 1.0, 1.0], [1.0, 1.0, 1.0]])
    fibres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    tensors = conduction_tensors(fibres, V_F * scale[:, 0], V_T * scale[:, 1])
    np.testing.assert_allclose(fibres[0] @ tensors[0] @ fibres[0], V_LAYER**2)
    np.testing.assert_allclose(fibres[1] @ tensors[1] @ fibres[1], V_F**2)
    np.testing.assert_allclose([tensors[0][2, 2], tensors[1][2, 2]], V_T**2)
    assert SubendocardialLayer(transmural_depth=0.0).velocity_scales(transmural, lv_side, tetrahedra,
                                                                     (V_F, V_T, None)) is None


def test_an_isotropic_layer_in_one_ventricle():
    """The same two cells and a third in the RV: with a velocity across the fibres the LV cell
    of the layer conducts at it in every direction (D = v² I, orthotropic muscle or not), the RV
    cell of the same depth is left out of an LV layer (and is an RV layer's only cell), and the
    cell above the depth keeps the muscle's tensor."""
    depth = np.array([0.0, 0.0, 0.1, 0.1, 0.5, 0.5, 0.0, 0.0])
    lv_side = np.array([True, True, True, True, True, True, False, False])
    tetrahedra = np.array([[0, 1, 2, 3], [2, 3, 4, 5], [6, 7, 0, 1]])  # LV layer, LV above, RV (mean 0.5) layer
    v_n, v_iso = 0.17, 1.6
    layer = SubendocardialLayer(transmural_depth=0.1, fibre_velocity_m_per_s=v_iso, cross_velocity_m_per_s=v_iso,
                                ventricles=("lv",))
    np.testing.assert_array_equal(layer.cells(depth, lv_side, tetrahedra), [True, False, False])
    both = SubendocardialLayer(transmural_depth=0.1, fibre_velocity_m_per_s=v_iso, cross_velocity_m_per_s=v_iso)
    np.testing.assert_array_equal(both.cells(depth, lv_side, tetrahedra), [True, False, True])
    rv = SubendocardialLayer(transmural_depth=0.1, ventricles=("rv",))
    np.testing.assert_array_equal(rv.cells(depth, lv_side, tetrahedra), [False, False, True])
    scale = layer.velocity_scales(depth, lv_side, tetrahedra, (V_F, V_T, v_n))
    fibres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    tensors = conduction_tensors(fibres, V_F * scale[:, 0], V_T * scale[:, 1], normals, v_n * scale[:, 2])
    np.testing.assert_allclose(tensors[0], v_iso**2 * np.eye(3), rtol=1e-12)
    np.testing.assert_allclose(tensors[1], conduction_tensors(fibres[1:2], V_F, V_T, normals[1:2], v_n)[0], rtol=1e-12)
    np.testing.assert_allclose(tensors[2], conduction_tensors(fibres[2:3], V_F, V_T, normals[2:3], v_n)[0], rtol=1e-12)
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
        scale = layer.velocity_scales(np.zeros(len(points)), np.ones(len(points), dtype=bool), tets,
                                      (V_F, V_T, v_n))
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
    # the LV endocardium at z = 0, the epicardium at z = 10 mm: the wall depth is z / 10
    depth, lv_side = wall_depth(points, tets, points[:, 2] / 10.0, np.zeros(len(points)))
    np.testing.assert_allclose(depth, points[:, 2] / 10.0, atol=1e-12)
    scale = layer.velocity_scales(depth, lv_side, tets, (V_F, V_T, None))
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


def test_the_wall_depth_of_a_septum_is_measured_from_the_nearer_endocardium():
    """A block between the LV endocardium (z = 0) and the RV's (z = 10 mm), no epicardium: the
    depth of every node is min(z, 10 − z) / 10 (0.5 mid-wall), its side the nearer one's, so a
    layer of depth 0.2 takes the 2 mm next to each endocardium and leaves the middle out. The
    transmural coordinate, 0 on both faces, would have put the whole block in the layer."""
    points, tets = box_mesh(5)
    z = points[:, 2]
    transmural = np.where(np.isclose(z, 0.0) | np.isclose(z, 10.0), 0.0, 0.05)
    ventricle = (z > 5.0).astype(float)
    depth, lv_side = wall_depth(points, tets, transmural, ventricle)
    np.testing.assert_allclose(depth, np.minimum(z, 10.0 - z) / 10.0, atol=1e-12)
    np.testing.assert_array_equal(lv_side, z <= 5.0)
    cells = SubendocardialLayer(transmural_depth=0.2).cells(depth, lv_side, tets)
    centroid_z = points[tets][:, :, 2].mean(axis=1)
    np.testing.assert_array_equal(cells, np.minimum(centroid_z, 10.0 - centroid_z) < 2.0)
    lv_only = SubendocardialLayer(transmural_depth=0.2, ventricles=("lv",)).cells(depth, lv_side, tets)
    np.testing.assert_array_equal(lv_only, centroid_z < 2.0)
    with pytest.raises(ValueError, match="no endocardium"):
        wall_depth(points, tets, np.full(len(points), 0.5), ventricle)


def test_the_septum_of_the_synthetic_ventricles_is_not_all_subendocardium(ventricles_dir):
    """On the synthetic biventricular mesh (its LDRB fibres): where the transmural coordinate
    stays below 0.1 far (> 5 mm) from the epicardium — the septum's interior, which a layer of
    that coordinate took — the wall depth reaches the septum's middle (0.5 at most, above 0.3
    somewhere), and the free walls' depth follows the transmural coordinate (0 and 1 on their
    surfaces)."""
    from ecgcohort.fibers import load_fibres

    fibres = load_fibres(ventricles_dir / "fibres.npz")
    transmural, ventricle = fibres.coordinates["transmural"], fibres.coordinates["ventricle"]
    depth, _ = wall_depth(fibres.points_mm, fibres.tetrahedra, transmural, ventricle)
    assert depth.min() >= 0.0 and depth.max() <= 1.0 + 1e-12
    np.testing.assert_array_equal(depth[transmural <= 1e-9], 0.0)
    np.testing.assert_allclose(depth[transmural >= 1.0 - 1e-9], 1.0)
    epicardium = fibres.points_mm[transmural >= 1.0 - 1e-9]
    from scipy.spatial import cKDTree

    far_from_epicardium = cKDTree(epicardium).query(fibres.points_mm)[0] > 5.0
    septal = far_from_epicardium & (transmural < 0.1) & (transmural > 1e-9)
    assert septal.sum() > 20
    assert depth[septal].max() <= 0.5 + 1e-9 and depth[septal].max() > 0.3
