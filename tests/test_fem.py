"""P1 matrices assembled into their sparsity pattern, checked against an independent dense
assembly and their closed-form properties."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.conduction.coupling import MeshSearch
from ecgcohort.fem import (centroid_tree, locate_points, mass_matrix, p1_gradients, refine_tetrahedra,
                           stiffness_matrix, tetrahedron_volumes)


def _mesh(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A jittered cube of Kuhn tetrahedra refined once (irregular node valences), mm."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float) * 10.0
    cells = np.array([[0, 1, 3, 7], [0, 1, 5, 7], [0, 2, 3, 7], [0, 2, 6, 7], [0, 4, 5, 7], [0, 4, 6, 7]])
    points, tets, _ = refine_tetrahedra(*refine_tetrahedra(corners, cells)[:2])
    points = points + np.random.default_rng(seed).normal(scale=0.15, size=points.shape) * (points % 10 != 0)
    return points, tets


def _dense(points: np.ndarray, tets: np.ndarray, tensors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stiffness, mass) element by element into dense arrays, with the textbook formulas."""
    n = len(points)
    stiffness, mass = np.zeros((n, n)), np.zeros((n, n))
    for cell, corners in enumerate(tets):
        edges = points[corners[1:]] - points[corners[0]]
        volume = abs(np.linalg.det(edges)) / 6.0
        gradients = np.vstack([-np.linalg.inv(edges).sum(axis=1), np.linalg.inv(edges).T]).reshape(4, 3)
        stiffness[np.ix_(corners, corners)] += volume * gradients @ tensors[cell] @ gradients.T
        mass[np.ix_(corners, corners)] += volume * (np.eye(4) + 1.0) / 20.0
    return stiffness, mass


def test_the_assembled_matrices_equal_a_dense_assembly():
    points, tets = _mesh()
    rng = np.random.default_rng(1)
    halves = rng.normal(size=(len(tets), 3, 3))
    tensors = halves @ np.transpose(halves, (0, 2, 1)) + np.eye(3)  # symmetric positive definite, S/m
    grads, volumes = p1_gradients(points, tets)
    stiffness = stiffness_matrix(tets, grads, volumes, tensors, len(points))
    mass = mass_matrix(tets, volumes, len(points))
    dense_stiffness, dense_mass = _dense(points, tets, tensors)
    np.testing.assert_allclose(stiffness.toarray(), dense_stiffness, rtol=0, atol=1e-12 * np.abs(dense_stiffness).max())
    np.testing.assert_allclose(mass.toarray(), dense_mass, rtol=0, atol=1e-12 * dense_mass.max())
    # constants are in the stiffness matrix's kernel; the mass matrix integrates 1 to the volume
    np.testing.assert_allclose(stiffness @ np.ones(len(points)), 0.0, atol=1e-10 * np.abs(dense_stiffness).max())
    assert np.isclose(mass.sum(), volumes.sum(), rtol=1e-12) and np.isclose(volumes.sum(), 1000.0, rtol=1e-12)
    for matrix in (stiffness, mass):
        assert matrix.has_sorted_indices and np.all(np.diff(matrix.indptr) > 0)


def test_each_nodes_cells_are_the_cells_holding_it():
    points, tets = _mesh(seed=2)
    search = MeshSearch.of(points, tets)
    for node in range(len(points)):
        cells = search.node_cells[search.cell_offsets[node]:search.cell_offsets[node + 1]]
        np.testing.assert_array_equal(cells, np.nonzero((tets == node).any(axis=1))[0])


def test_refinement_and_centroids_match_the_array_formulas():
    """The compiled red refinement and centroids against numpy's reading of the same rules."""
    points, tets = _mesh(seed=3)
    fine_points, children, parent = refine_tetrahedra(points, tets)
    # each child lies in its parent and the eight children fill it exactly
    volume = lambda p, t: np.abs(np.linalg.det(p[t[:, 1:]] - p[t[:, :1]])) / 6.0  # noqa: E731
    np.testing.assert_allclose(np.bincount(parent, weights=volume(fine_points, children)), volume(points, tets),
                               rtol=1e-12)
    np.testing.assert_allclose(centroid_tree(fine_points, children).data, fine_points[children].mean(axis=1),
                               rtol=0, atol=0)


def test_tetrahedron_volumes_are_p1_gradients_volumes_to_the_bit():
    """The volumes without the gradients: a scaled right tetrahedron's closed form, and on a
    jittered refined mesh the very numbers p1_gradients returns."""
    corner = np.array([[0.0, 0, 0], [2, 0, 0], [0, 3, 0], [0, 0, 5]])
    np.testing.assert_allclose(tetrahedron_volumes(corner, [[0, 1, 2, 3]]), [2 * 3 * 5 / 6], rtol=1e-15)
    np.testing.assert_allclose(tetrahedron_volumes(corner, [[0, 2, 1, 3]]), [5.0], rtol=1e-15)  # either orientation
    points, tetrahedra = corner, np.array([[0, 1, 2, 3]])
    for _ in range(3):
        points, tetrahedra = refine_tetrahedra(points, tetrahedra)[:2]
    points = points + np.random.default_rng(3).normal(scale=0.01, size=points.shape)
    volumes = tetrahedron_volumes(points, tetrahedra)
    np.testing.assert_array_equal(volumes, p1_gradients(points, tetrahedra)[1])
    np.testing.assert_allclose(volumes.sum(), 5.0, rtol=1e-2)
    with pytest.raises(ValueError, match="1 degenerate tetrahedra"):
        tetrahedron_volumes(np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]]), [[0, 1, 2, 3]])


def test_located_cells_and_weights_are_the_best_of_every_candidate_to_the_bit():
    """locate_points takes a target's nearest-centroid cell when the target lies well inside it
    and tests all candidates otherwise: for targets inside cells, on shared faces, at nodes and
    outside the mesh, the cells and weights are those of testing every candidate (the best
    smallest barycentric coordinate), bit for bit, and an inside target's weights rebuild it."""
    points, tets = _mesh(3)
    rng = np.random.default_rng(4)
    cells = rng.integers(0, len(tets), 3000)
    weights = rng.dirichlet(np.ones(4), 3000)
    inside = np.einsum("ck,ckx->cx", weights, points[tets[cells]])
    on_faces = np.einsum("ck,ckx->cx", np.c_[weights[:, :3] / weights[:, :3].sum(axis=1, keepdims=True),
                                             np.zeros(3000)], points[tets[cells]])
    outside = points.min(axis=0) - 2.0 + (np.ptp(points, axis=0) + 4.0) * rng.random((2000, 3))
    targets = np.vstack([inside, on_faces, points, outside])
    tree = centroid_tree(points, tets)
    found, found_weights = locate_points(points, tets, targets, candidates=8, centroids=tree)

    near = tree.query(targets, k=8)[1]
    corners = points[tets[near]]
    edges = np.stack([corners[:, :, k] - corners[:, :, 0] for k in (1, 2, 3)], axis=-1)
    local = np.linalg.solve(edges, (targets[:, None, :] - corners[:, :, 0])[..., None])[..., 0]
    barycentric = np.concatenate([1.0 - local.sum(axis=-1, keepdims=True), local], axis=-1)
    best = barycentric.min(axis=-1).argmax(axis=1)
    rows = np.arange(len(targets))
    expected = np.clip(barycentric[rows, best], 0.0, None)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(found, near[rows, best])
    np.testing.assert_array_equal(found_weights, expected)
    # an inside target whose cell is among its candidates is rebuilt by its weights
    held = (near[:3000] == cells[:, None]).any(axis=1)
    assert held.mean() > 0.9
    np.testing.assert_allclose(np.einsum("ck,ckx->cx", found_weights[:3000][held], points[tets[found[:3000][held]]]),
                               inside[held], atol=1e-9)
