"""V_m carried on the eikonal grid (ecgcohort.ecg.source_grid): the grid's lead matrix from the
mesh's against a direct assembly on the grid, the Ritz projection's identities, and the maps
that carry the grid's times."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.conduction.action_potential import ActionPotential
from ecgcohort.conduction.eikonal import EikonalGrid, _self_test_mesh
from ecgcohort.conduction.maps import ActivationMap, load_activation, save_activation
from ecgcohort.ecg.forward import electrode_potentials, source_potentials
from ecgcohort.ecg.source_grid import GridLeadMatrix, SourceGrid, many_electrode_potentials
from ecgcohort.fem import refine_tetrahedra, refinement_prolongation
from ecgcohort.leadfield.solver import lead_matrix_from_potentials


def _tensors(count: int, rng: np.random.Generator) -> np.ndarray:
    """Random symmetric positive-definite 3 × 3 tensors (S/m), one per cell."""
    a = rng.standard_normal((count, 3, 3)) * 0.05
    return np.einsum("cij,ckj->cik", a, a) + 0.02 * np.eye(3)


@pytest.fixture(scope="module")
def mesh():
    points, tets = _self_test_mesh(3, 2.0)
    rng = np.random.default_rng(7)
    return points + rng.uniform(-0.3, 0.3, points.shape), tets, _tensors(len(tets), rng)


def test_prolongation_interpolates_linear_fields_onto_the_refined_nodes(mesh):
    points, tets, _ = mesh
    fine, _, _ = refine_tetrahedra(points, tets)
    linear = points @ np.array([0.3, -1.1, 2.0]) + 4.0
    prolongation = refinement_prolongation(tets, len(points))
    assert prolongation.shape == (len(fine), len(points))
    np.testing.assert_allclose(prolongation @ linear, fine @ np.array([0.3, -1.1, 2.0]) + 4.0, rtol=1e-12)


@pytest.mark.parametrize("refinements", [1, 2])
def test_the_source_grid_has_the_eikonal_grids_nodes_in_their_order(mesh, refinements):
    points, tets, _ = mesh
    grid = SourceGrid.refined(points, tets, refinements)
    eikonal = EikonalGrid.refined(points, tets, np.tile([1.0, 0.0, 0.0], (len(tets), 1)), refinements)
    np.testing.assert_array_equal(grid.points_mm, eikonal.points_mm)
    assert grid.mesh_nodes == eikonal.mesh_nodes == len(points)
    assert len(grid.tetrahedra) == 8 ** refinements * len(tets)
    np.testing.assert_allclose(grid.prolongation @ points, grid.points_mm, atol=1e-12)
    # every grid cell lies inside its mesh cell: its centroid's barycentric coordinates there are >= 0
    centroid = grid.points_mm[grid.tetrahedra].mean(axis=1)
    corners = points[tets[grid.parent_cells]]
    local = np.linalg.solve(np.transpose(corners[:, 1:] - corners[:, :1], (0, 2, 1)), (centroid - corners[:, 0])[..., None])[..., 0]
    assert local.min() > -1e-12 and local.sum(axis=1).max() < 1 + 1e-12


@pytest.mark.parametrize("refinements", [1, 2])
def test_the_grid_lead_matrix_is_the_lead_field_assembled_on_the_grid(mesh, refinements):
    """L_g = L K⁺ Pᵀ K_g from the mesh's P1 lead matrix against −(K_g P Z)ᵀ assembled directly."""
    points, tets, tensors = mesh
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, len(points)))
    mesh_matrix = lead_matrix_from_potentials(points * 1e-3, tets, tensors, z)
    grid = SourceGrid.refined(points, tets, refinements)
    direct = lead_matrix_from_potentials(grid.points_mm * 1e-3, grid.tetrahedra, tensors[grid.parent_cells],
                                         (grid.prolongation @ z.T).T)
    ritz = GridLeadMatrix(mesh_matrix, grid, tensors).columns(0, grid.n_nodes)
    assert np.abs(direct).max() > 0
    np.testing.assert_allclose(ritz, direct, atol=1e-10 * np.abs(direct).max())
    # blocks of columns are the same columns
    np.testing.assert_allclose(GridLeadMatrix(mesh_matrix, grid, tensors).columns(5, 40), direct[:, 5:40],
                               atol=1e-10 * np.abs(direct).max())


def test_a_potential_linear_on_the_mesh_gives_the_meshs_ecg(mesh):
    """For any lead matrix whose rows sum to zero (the recovered form's too), V_m = P v on the
    grid gives L v: the Ritz projection of a mesh field is itself."""
    points, tets, tensors = mesh
    rng = np.random.default_rng(11)
    matrix = rng.standard_normal((3, len(points)))
    matrix -= matrix.mean(axis=1, keepdims=True)
    grid = SourceGrid.refined(points, tets, 1)
    v = rng.standard_normal((len(points), 5))
    grid_matrix = GridLeadMatrix(matrix, grid, tensors).columns(0, grid.n_nodes)
    np.testing.assert_allclose(grid_matrix @ (grid.prolongation @ v), matrix @ v, atol=1e-10 * np.abs(matrix @ v).max())
    # the grid matrix's rows sum to zero too: a constant V_m gives no ECG
    np.testing.assert_allclose(grid_matrix.sum(axis=1), 0.0, atol=1e-10 * np.abs(grid_matrix).max())


def _template() -> ActionPotential:
    """A template sampled at 1 ms: a 2 ms upstroke to 40 mV, a falling plateau, rest after 280 ms."""
    time_ms = np.arange(0.0, 400.0, 1.0)
    voltage = np.where(time_ms < 2.0, -85.0 + 62.5 * time_ms, 40.0 - 0.3 * time_ms)
    voltage = np.where(time_ms > 280.0, -85.0, np.maximum(voltage, -85.0))
    return ActionPotential(time_ms, voltage, resting_mv=-85.0, peak_mv=40.0, apd90_ms=250.0,
                           max_upstroke_mv_per_ms=62.5)


def _grid_map(points: np.ndarray, grid: SourceGrid, scenario: str = "sinus") -> ActivationMap:
    """A plane front at 0.5 m/s along x, solved on the grid (its times at every grid node)."""
    tau = grid.points_mm[:, 0] / 0.5
    mesh_nodes = len(points)
    return ActivationMap(scenario, "sinus", tau[:mesh_nodes], np.ones(mesh_nodes), np.zeros((1, 3)), np.zeros(1),
                         None, refined_activation_ms=tau[mesh_nodes:].astype(np.float32),
                         refinements=grid.refinements, upstroke_spread=0.75)


def test_grid_potentials_are_the_direct_product_on_the_grid(mesh):
    points, tets, tensors = mesh
    rng = np.random.default_rng(5)
    matrix = lead_matrix_from_potentials(points * 1e-3, tets, tensors, rng.standard_normal((2, len(points))))
    grid = SourceGrid.refined(points, tets, 1)
    on_grid = grid.activation(_grid_map(points, grid))
    assert on_grid.activation_ms.size == grid.n_nodes and on_grid.upstroke_ms.max() > 0
    template, times = _template(), np.arange(0.0, 30.0, 1.0)
    columns = GridLeadMatrix(matrix, grid, tensors)
    blocked = many_electrode_potentials(columns, [on_grid, on_grid], times, template, block_values=64,
                                        columns_per_read=50)
    dense = electrode_potentials(columns.columns(0, grid.n_nodes), on_grid, times, template)
    assert np.abs(dense).max() > 0
    for potentials in blocked:
        np.testing.assert_allclose(potentials, dense, atol=1e-12 * np.abs(dense).max())
    # and the product of the whole V_m field, formed at once
    whole = columns.columns(0, grid.n_nodes) @ on_grid.transmembrane_potential_mv(times, template) * 1e-3
    np.testing.assert_allclose(dense, whole, atol=1e-12 * np.abs(whole).max())


def test_maps_keep_their_grid_times_and_the_ecg_refuses_mixed_grids(mesh, tmp_path):
    points, tets, tensors = mesh
    grid = SourceGrid.refined(points, tets, 1)
    activation = _grid_map(points, grid)
    stored = load_activation(save_activation(activation, tmp_path / "sinus.npz"))
    assert stored.refinements == 1 and stored.upstroke_spread == 0.75
    np.testing.assert_allclose(stored.grid_activation_ms, grid.points_mm[:, 0] / 0.5, rtol=1e-6)
    fibres = type("Fibres", (), {"points_mm": points, "tetrahedra": tets})()
    matrix = np.zeros((1, len(points)))
    on_mesh = ActivationMap("lbbb", "lbbb", activation.activation_ms, activation.apd_scale, np.zeros((1, 3)),
                            np.zeros(1))
    with pytest.raises(ValueError, match=r"different grids: \['lbbb'\] on the mesh"):
        source_potentials(matrix, {"sinus": stored, "lbbb": on_mesh}, fibres, tensors)
    kept, maps = source_potentials(matrix, {"sinus": stored, "lbbb": on_mesh}, fibres, tensors, vm_nodes="mesh")
    assert kept is matrix and maps["sinus"] is stored
    with pytest.raises(ValueError, match="vm_nodes"):
        source_potentials(matrix, {"sinus": stored}, fibres, tensors, vm_nodes="nodes")
    grid2 = SourceGrid.refined(points, tets, 2)
    with pytest.raises(ValueError, match="refined 1 times, this grid is refined 2"):
        grid2.activation(stored)
