"""The eikonal grid refined only where the conduction metric needs it
(:mod:`ecgcohort.conduction.selective_refinement`, :meth:`EikonalGrid.metric_refined`)."""

from __future__ import annotations

import numpy as np
import pytest
from test_eikonal import SINGLE_MS, V_F, V_T, box_mesh, jittered_box

from ecgcohort.conduction.eikonal import EikonalGrid
from ecgcohort.conduction.selective_refinement import (bisect_marked_edges, edge_metric_lengths, mesh_edges,
                                                       metric_priority)
from ecgcohort.conduction.tensors import conduction_tensors
from ecgcohort.fem import p1_gradients

V_N = 0.17
VELOCITIES = (V_F, V_T, V_N)


def _faces(tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    faces = np.sort(np.concatenate([tets[:, [0, 1, 2]], tets[:, [0, 1, 3]], tets[:, [0, 2, 3]], tets[:, [1, 2, 3]]]),
                    axis=1)
    return np.unique(faces, axis=0, return_counts=True)


def _orthotropic_box(n: int = 4, seed: int = 7):
    """A jittered box with random fibres and sheet normals per cell."""
    points, tets = jittered_box(n, seed)
    rng = np.random.default_rng(seed)
    fibres = rng.normal(size=(len(tets), 3))
    normals = np.cross(fibres, rng.normal(size=(len(tets), 3)))
    return points, tets, fibres, normals


@pytest.mark.parametrize("threshold_ms", [0.0, 20.0, 30.0, 45.0])
def test_selective_bisection_is_conforming_and_fills_each_parent(threshold_ms):
    """Random fibres, several thresholds: every face is shared by one or two children, each coarse
    boundary face splits into one triangle more than it has marked edges, the children fill their
    parent's volume with its orientation, and the new nodes are the marked edges' midpoints after
    the mesh's own nodes."""
    points, tets, fibres, normals = _orthotropic_box()
    grid = EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, threshold_ms, normals=normals)
    edges, edge_of_cell, lengths = edge_metric_lengths(points, tets, conduction_tensors(fibres, *VELOCITIES[:2],
                                                                                        normals, V_N))
    marked = lengths > threshold_ms
    assert 0 < marked.sum() or threshold_ms > lengths.max()
    np.testing.assert_array_equal(grid.points_mm[:len(points)], points)
    np.testing.assert_allclose(grid.points_mm[len(points):], 0.5 * (points[edges[marked, 0]] + points[edges[marked, 1]]))
    assert grid.mesh_nodes == len(points) and len(grid.points_mm) == len(points) + marked.sum()
    _, counts = _faces(grid.tetrahedra)
    assert set(counts) <= {1, 2}
    coarse_faces, coarse_counts = _faces(tets)
    boundary = coarse_faces[coarse_counts == 1]
    edge_number = {tuple(edge): k for k, edge in enumerate(edges)}
    expected = sum(1 + sum(marked[edge_number[(face[i], face[j])]] for i, j in ((0, 1), (0, 2), (1, 2)))
                   for face in boundary)
    assert (counts == 1).sum() == expected
    _, volumes = p1_gradients(points, tets)
    _, child_volumes = p1_gradients(grid.points_mm, grid.tetrahedra)
    assert np.all(np.sign(child_volumes) == np.sign(volumes)[grid.parent])
    np.testing.assert_allclose(np.bincount(grid.parent, weights=child_volumes, minlength=len(tets)), volumes,
                               rtol=1e-12)
    # a child lies inside its parent: its centroid has positive barycentric coordinates there
    grads, _ = p1_gradients(points, tets)
    centroid = grid.points_mm[grid.tetrahedra].mean(axis=1)
    bary = 0.25 + np.einsum("cij,cj->ci", grads[grid.parent], centroid - points[tets[grid.parent]].mean(axis=1))
    assert bary.min() > 0.0


def test_repeated_passes_leave_no_edge_longer_than_the_threshold():
    """Bisecting the grid's own edges again until none is longer: conforming, filling the
    mesh, every edge within the threshold in its slowest cell's metric."""
    points, tets, fibres, normals = _orthotropic_box()
    grid = EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, 10.0, normals=normals, passes=8)
    once = EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, 10.0, normals=normals)
    assert len(grid.tetrahedra) > len(once.tetrahedra)
    _, _, lengths = edge_metric_lengths(grid.points_mm, grid.tetrahedra, grid.conduction_tensors(*VELOCITIES))
    assert lengths.max() <= 10.0
    _, counts = _faces(grid.tetrahedra)
    assert set(counts) <= {1, 2}
    _, volumes = p1_gradients(points, tets)
    _, child_volumes = p1_gradients(grid.points_mm, grid.tetrahedra)
    np.testing.assert_allclose(np.bincount(grid.parent, weights=child_volumes, minlength=len(tets)), volumes,
                               rtol=1e-12)
    with pytest.raises(ValueError, match="positive integer"):
        EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, 20.0, normals=normals, passes=0)


def test_threshold_zero_splits_every_edge_and_above_every_edge_keeps_the_mesh():
    points, tets, fibres, normals = _orthotropic_box()
    edges, _ = mesh_edges(tets, len(points))
    everything = EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, 0.0, normals=normals)
    assert len(everything.points_mm) == len(points) + len(edges)
    assert len(everything.tetrahedra) == 8 * len(tets)  # six bisections in any order: eight children
    nothing = EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, 1e6, normals=normals)
    np.testing.assert_array_equal(nothing.points_mm, points)
    np.testing.assert_array_equal(nothing.tetrahedra, tets)
    np.testing.assert_array_equal(nothing.parent, np.arange(len(tets)))


def test_edge_metric_length_is_the_slowest_cells_travel_time():
    """Two cells sharing an edge along z, one with fibres along z (0.6 m/s), one with sheet normals
    along z (0.17 m/s): the shared edge's length is its length over 0.17 m/s."""
    points = np.array([[0.0, 0, 0], [0, 0, 2.0], [1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]])
    tets = np.array([[0, 1, 2, 3], [0, 1, 3, 4]])
    fibres, normals = np.array([[0.0, 0, 1], [1.0, 0, 0]]), np.array([[1.0, 0, 0], [0.0, 0, 1]])
    edges, _, lengths = edge_metric_lengths(points, tets, conduction_tensors(fibres, V_F, V_T, normals, V_N))
    shared = np.flatnonzero((edges[:, 0] == 0) & (edges[:, 1] == 1))[0]
    assert lengths[shared] == pytest.approx(2.0 / V_N)


def test_bisection_refuses_an_ambiguous_order():
    points, tets = box_mesh(1)
    edges, edge_of_cell = mesh_edges(tets, len(points))
    with pytest.raises(ValueError, match="distinct"):
        bisect_marked_edges(points, tets, edges, edge_of_cell, np.ones(len(edges), bool), np.zeros(len(edges)))
    with pytest.raises(ValueError, match=">= 0 ms"):
        EikonalGrid.metric_refined(points, tets, np.tile([1.0, 0, 0], (len(tets), 1)), VELOCITIES, -1.0)


def test_metric_priority_is_longest_first_then_node_ids():
    edges = np.array([[0, 1], [0, 2], [1, 2], [2, 3]])
    priority = metric_priority(edges, np.array([3.0, 5.0, 3.0, 5.0]))
    np.testing.assert_array_equal(priority, [2, 0, 3, 1])


def test_selective_grid_keeps_orthotropic_plane_fronts_exact():
    """Fibres along x, sheet normals along z: a plane front from each face travels at v_f, v_t,
    v_n exactly, on a grid bisected where the metric is long."""
    points, tets = box_mesh(4)
    fibres, normals = np.tile([1.0, 0.0, 0.0], (len(tets), 1)), np.tile([0.0, 0.0, 1.0], (len(tets), 1))
    grid = EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, 10.0, normals=normals)
    assert len(points) < len(grid.points_mm) < len(points) + len(mesh_edges(tets, len(points))[0])
    for axis, speed in ((0, V_F), (1, V_T), (2, V_N)):
        face = np.flatnonzero(np.isclose(grid.points_mm[:, axis], 0.0))
        tau = grid.activation_times(V_F, V_T, face, np.zeros(len(face)), device="cpu", v_normal=V_N)
        np.testing.assert_allclose(tau, grid.points_mm[:, axis] / speed, rtol=0, atol=SINGLE_MS)


def _point_source_box():
    """A jittered 20 mm box (2 mm cells), fibres and sheet normals oblique to the mesh, and the
    exact times from the node nearest its centre."""
    points, tets = box_mesh(10, length_mm=20.0)
    inner = np.all((points > 0) & (points < 20.0), axis=1)
    points[inner] += np.random.default_rng(0).uniform(-0.5, 0.5, (inner.sum(), 3))
    fibre = np.array([1.0, 0.3, 0.2]) / np.linalg.norm([1.0, 0.3, 0.2])
    normal = np.cross(fibre, [0.0, 0.0, 1.0])
    source = int(np.argmin(np.linalg.norm(points - 10.0, axis=1)))
    metric = np.linalg.inv(conduction_tensors(fibre[None], V_F, V_T, normal[None], V_N)[0])
    offset = points - points[source]
    exact = np.sqrt(np.einsum("ni,ij,nj->n", offset, metric, offset))
    return points, tets, np.tile(fibre, (len(tets), 1)), np.tile(normal, (len(tets), 1)), source, exact


def test_selective_grid_shrinks_the_point_source_error_between_unrefined_and_refined():
    """A point source in a homogeneous orthotropic box (edges 4-20 ms in the metric): the error
    (always late) of the grid that splits every edge is no larger than the uniform refinement's;
    splitting fewer, longer edges gives errors in between that grow with the threshold."""
    points, tets, fibres, normals, source, exact = _point_source_box()

    def mean_error(grid: EikonalGrid) -> float:
        tau = grid.restrict(grid.activation_times(V_F, V_T, np.array([source]), [0.0], device="cpu", v_normal=V_N))
        assert np.all(tau >= exact - SINGLE_MS)
        return float(np.mean(tau - exact))

    unrefined = mean_error(EikonalGrid.refined(points, tets, fibres, 0, normals=normals))
    uniform = mean_error(EikonalGrid.refined(points, tets, fibres, 1, normals=normals))
    selective = [mean_error(EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, threshold, normals=normals))
                 for threshold in (0.0, 8.0, 12.0)]
    assert uniform < 0.8 * unrefined
    assert selective[0] <= uniform
    assert selective[0] <= selective[1] <= selective[2] < unrefined


def test_point_sources_couple_to_the_selective_grid():
    """A stimulus inside the box, coupled with its 2.5-edge ball: on the selective grids the ball's
    nodes start at their exact straight-front times (from their parent cells' tensors), and the map read back at the mesh nodes is late
    by no more than on the uniformly refined grid when every edge is split."""
    points, tets, fibres, normals, _, _ = _point_source_box()
    position = np.array([[10.3, 9.6, 10.2]])
    metric = np.linalg.inv(conduction_tensors(fibres[:1], V_F, V_T, normals[:1], V_N)[0])
    offset = points - position
    exact = np.sqrt(np.einsum("ni,ij,nj->n", offset, metric, offset))
    errors = []
    for grid in (EikonalGrid.refined(points, tets, fibres, 1, 2.5, normals),
                 EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, 0.0, 2.5, normals),
                 EikonalGrid.metric_refined(points, tets, fibres, VELOCITIES, 12.0, 2.5, normals)):
        coupled = grid.couple(position)
        times = grid.stimulus_times(coupled, np.array([1.0]), V_F, V_T, V_N)
        ball = grid.points_mm[coupled.nodes] - position
        np.testing.assert_allclose(times, 1.0 + np.sqrt(np.einsum("ni,ij,nj->n", ball, metric, ball)), rtol=1e-12)
        tau = grid.restrict(grid.activation_times(V_F, V_T, coupled.nodes, times, device="cpu", v_normal=V_N))
        assert np.all(tau >= 1.0 + exact - SINGLE_MS)
        errors.append(float(np.mean(tau - 1.0 - exact)))
        assert len(coupled.nodes) > 4  # the ball beyond the cell's corners
    assert errors[1] <= errors[0]
