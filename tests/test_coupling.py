"""Point stimuli coupled to a tetrahedral mesh by position: exact travel times within the
holding element, and an activation that converges under refinement."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.conduction.coupling import couple_points
from ecgcohort.conduction.eikonal import activation_times

V_F, V_T = 0.6, 0.3  # m/s = mm/ms
FIBRE = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)


def cube(n: int, size_mm: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """A cube of n³ cells, six tetrahedra each (Kuhn), mm."""
    from ecgcohort.conduction.eikonal import _self_test_mesh

    return _self_test_mesh(n=n, spacing_mm=size_mm / n)


def exact_times(points: np.ndarray, source: np.ndarray, time_ms: float) -> np.ndarray:
    """Straight-line anisotropic travel times from a point source in a homogeneous medium, ms."""
    d = points - source
    along = d @ FIBRE
    return time_ms + np.sqrt(along**2 / V_F**2 + ((d * d).sum(axis=1) - along**2) / V_T**2)


def test_coupled_nodes_are_the_holding_tetrahedron_at_exact_travel_times():
    points, tets = cube(4)
    source = np.array([[7.3, 11.1, 4.2]])
    coupled = couple_points(points, tets, source)
    corners = points[tets[coupled.cells[0]]]
    # the chosen tetrahedron holds the point: non-negative barycentric coordinates
    local = np.linalg.solve((corners[1:] - corners[0]).T, source[0] - corners[0])
    assert local.min() >= -1e-12 and local.sum() <= 1 + 1e-12
    assert sorted(coupled.nodes.tolist()) == sorted(tets[coupled.cells[0]].tolist())
    times = coupled.node_times(np.array([2.5]), np.tile(FIBRE, (len(tets), 1)), V_F, V_T)
    np.testing.assert_allclose(times, exact_times(points[coupled.nodes], source[0], 2.5), rtol=1e-12)
    # the fibre's structure tensor f fᵀ gives the same times; a cell mean of two fibres the
    # metric of its mean conduction tensor
    dyad = np.broadcast_to(np.outer(FIBRE, FIBRE), (len(tets), 3, 3))
    np.testing.assert_allclose(coupled.node_times(np.array([2.5]), dyad, V_F, V_T), times, rtol=1e-12)
    mean = 0.5 * (np.diag([1.0, 0.0, 0.0]) + np.diag([0.0, 1.0, 0.0]))
    d = points[coupled.nodes] - source[0]
    expected = np.sqrt((d[:, 0] ** 2 + d[:, 1] ** 2) / ((V_F**2 + V_T**2) / 2) + d[:, 2] ** 2 / V_T**2)
    np.testing.assert_allclose(coupled.node_times(np.array([0.0]), np.broadcast_to(mean, (len(tets), 3, 3)), V_F, V_T),
                               expected, rtol=1e-12)
    isotropic = coupled.node_times(np.array([0.0]), None, V_F, V_T)
    np.testing.assert_allclose(isotropic, np.linalg.norm(points[coupled.nodes] - source[0], axis=1) / V_F)
    # orthotropic: the sheet normal along z (perpendicular to FIBRE) crossed at v_n
    v_n = 0.17
    normals = np.tile([0.0, 0.0, 1.0], (len(tets), 1))
    along = d @ FIBRE
    in_sheet = (d[:, :2] ** 2).sum(axis=1) - along**2
    expected = 2.5 + np.sqrt(along**2 / V_F**2 + in_sheet / V_T**2 + d[:, 2] ** 2 / v_n**2)
    np.testing.assert_allclose(coupled.node_times(np.array([2.5]), np.tile(FIBRE, (len(tets), 1)), V_F, V_T, normals,
                                                  v_n), expected, rtol=1e-12)


def test_a_point_just_outside_the_mesh_takes_the_nearest_element():
    points, tets = cube(3)
    outside = np.array([[-0.05, 10.0, 10.0]])  # 0.05 mm off the x = 0 face, as a junction off a coarse chord
    coupled = couple_points(points, tets, outside)
    assert np.all(points[coupled.nodes, 0] <= 20.0 / 3 + 1e-9)  # an element on that face


def test_the_coupled_activation_converges_to_the_straight_line_solution():
    """A point source inside a 40 mm cube: the activation's mean error at the nodes against the
    straight-line solution falls at every refinement (first order: the Fast Iterative Method's
    own bias on a tetrahedral mesh, a few per cent, positive)."""
    source = np.array([[7.7, 9.1, 10.4]])
    errors = []
    for n in (4, 8, 16):
        points, tets = cube(n, size_mm=40.0)
        fibres = np.tile(FIBRE, (len(tets), 1))
        coupled = couple_points(points, tets, source)
        tau = activation_times(points, tets, fibres, V_F, V_T, coupled.nodes,
                               coupled.node_times(np.zeros(1), fibres, V_F, V_T), device="cpu")
        errors.append(float(np.abs(tau - exact_times(points, source[0], 0.0)).mean()))
    print("\nmean |error| (ms) at 10, 5, 2.5 mm:", np.round(errors, 3))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.5 * errors[0]


def _point_source_error(n: int, radius_edges: float, source: np.ndarray) -> float:
    points, tets = cube(n, size_mm=40.0)
    fibres = np.tile(FIBRE, (len(tets), 1))
    coupled = couple_points(points, tets, source, radius_edges=radius_edges)
    tau = activation_times(points, tets, fibres, V_F, V_T, coupled.nodes,
                           coupled.node_times(np.zeros(1), fibres, V_F, V_T), device="cpu")
    return float((tau - exact_times(points, source[0], 0.0)).mean())


def test_a_source_ball_removes_most_of_the_point_source_delay_at_every_resolution():
    """The first-order scheme runs late around a point source; starting it from the nodes within
    2.5 edge lengths (exact straight-line times in this homogeneous medium) cuts the mean delay
    over a 40 mm cube (5.9 / 3.7 / 2.3 ms) by 40 % or more at 5, 2.5 and 1.25 mm, and the delay
    still falls with refinement: the ball shrinks with the mesh, so the limit is the same."""
    source = np.array([[17.7, 19.1, 20.4]])
    point = [_point_source_error(n, 0.0, source) for n in (8, 16, 32)]
    ball = [_point_source_error(n, 2.5, source) for n in (8, 16, 32)]
    print("\nmean delay (ms) at 5, 2.5, 1.25 mm, point / ball:", np.round(point, 3), np.round(ball, 3))
    assert all(p > 0 for p in point)
    assert all(0 < b < 0.6 * p for b, p in zip(ball, point))
    assert ball[2] < ball[0]


def test_a_source_ball_keeps_the_interpolation_and_grows_with_the_element():
    points, tets = cube(8, size_mm=40.0)
    source = np.array([[17.7, 19.1, 20.4]])
    plain = couple_points(points, tets, source)
    ball = couple_points(points, tets, source, radius_edges=2.0)
    assert set(plain.nodes.tolist()) < set(ball.nodes.tolist())
    field = points @ np.array([0.3, -0.2, 0.7])  # linear: interpolation at the source is exact
    np.testing.assert_allclose(ball.interpolate(field), plain.interpolate(field), rtol=1e-12)
    np.testing.assert_allclose(ball.interpolate(field), source @ np.array([0.3, -0.2, 0.7]), rtol=1e-12)
    edge = np.mean([np.linalg.norm(points[tets[plain.cells[0], i]] - points[tets[plain.cells[0], j]])
                    for i in range(4) for j in range(i + 1, 4)])
    reach = np.linalg.norm(points[ball.nodes] - source[0], axis=1).max()
    assert 1.5 * edge < reach <= 2.0 * edge + 1e-9
    # the same ball on a mesh twice as fine holds about as many nodes (the radius is in edges)
    fine_points, fine_tets = cube(16, size_mm=40.0)
    fine = couple_points(fine_points, fine_tets, source, radius_edges=2.0)
    assert 0.5 < len(fine.nodes) / len(ball.nodes) < 2.0


def test_a_source_ball_does_not_jump_a_gap_to_the_facing_wall():
    """Two slabs 2 mm apart (a thin blood pool between two walls): a source on one face with a
    ball wider than the gap couples no node of the facing slab."""
    points, tets = cube(4, size_mm=20.0)
    facing = points + np.array([0.0, 0.0, 22.0])
    both_points = np.vstack([points, facing])
    both_tets = np.vstack([tets, tets + len(points)])
    source = np.array([[9.3, 10.2, 19.9]])  # 2.1 mm below the facing slab
    coupled = couple_points(both_points, both_tets, source, radius_edges=3.0)
    assert np.all(coupled.nodes < len(points))
    # the KD ball alone would reach the other slab
    assert np.any(np.linalg.norm(facing - source[0], axis=1) < 3.0 * 5.0)


def test_source_balls_are_the_edge_connected_nodes_inside_the_radius():
    """The compiled ball search against a plain breadth-first search over the mesh's edges."""
    points, tets = cube(6, size_mm=30.0)
    sources = np.array([[17.7, 19.1, 20.4], [0.2, 15.0, 3.1], [29.9, 0.1, 29.9], [12.0, 12.0, 12.0]])
    radius_edges = 2.5
    coupled = couple_points(points, tets, sources, radius_edges=radius_edges)
    neighbours = [set() for _ in points]
    for cell in tets:
        for a in cell:
            neighbours[a].update(int(b) for b in cell if b != a)
    for k, position in enumerate(sources):
        cell = tets[coupled.cells[coupled.source == k][0]]
        radius = radius_edges * np.mean([np.linalg.norm(points[cell[i]] - points[cell[j]])
                                         for i in range(4) for j in range(i + 1, 4)])
        inside = set(np.nonzero(np.linalg.norm(points - position, axis=1) <= radius)[0].tolist())
        seeds = {int(node) for node in cell}
        reached, frontier = set(seeds), list(seeds)
        while frontier:
            frontier = [b for a in frontier for b in neighbours[a] if b in inside and b not in reached
                        and not reached.add(b)]
        # the corners (four rows per source) come first, then the balls
        ball = coupled.nodes[4 * len(sources):][coupled.source[4 * len(sources):] == k]
        assert len(reached - seeds) > 0
        np.testing.assert_array_equal(np.sort(ball), sorted(reached - seeds))


def test_a_negative_source_radius_is_refused():
    points, tets = cube(2)
    with pytest.raises(ValueError, match="source radius"):
        couple_points(points, tets, np.array([[5.0, 5.0, 5.0]]), radius_edges=-1.0)
