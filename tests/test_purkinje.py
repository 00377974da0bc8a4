"""Purkinje trees on the LV/RV endocardium (fractal-tree) and their junction activation times
(their coupling to a mesh: tests/test_coupling.py)."""

from __future__ import annotations

import numpy as np
import pytest
import pyvista as pv
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ecgcohort.conduction.purkinje import (
    LV_ENDOCARDIUM,
    RV_ENDOCARDIUM,
    PurkinjeError,
    PurkinjeTree,
    TreeSettings,
    _run_fractal_tree,
    extract_surface,
    grow_tree,
    purkinje_tree,
    seeded_global_rng,
    tree_activation,
    write_tree_vtk,
)
from ecgcohort.shapes.heart import build_heart_model

CV = 2.5  # m/s
ROOT_TIME = 3.0  # ms
DOWN = np.array([0.0, 0.0, -1.0])  # base -> apex
LV_ROOT = np.array([25.0, 0.0, -10.0])  # LV septal endocardium below the base (septum on +x)
RV_ROOT = np.array([35.0, 0.0, -10.0])  # RV septal endocardium below the base


@pytest.fixture(scope="module")
def heart():
    return build_heart_model(edge_length_mm=3.0, population=20)


@pytest.fixture(scope="module")
def lv_surface(heart):
    return extract_surface(heart.mean, heart.faces, heart.face_labels, LV_ENDOCARDIUM)


@pytest.fixture(scope="module")
def rv_surface(heart):
    return extract_surface(heart.mean, heart.faces, heart.face_labels, RV_ENDOCARDIUM)


@pytest.fixture(scope="module")
def lv_tree(lv_surface) -> PurkinjeTree:
    points, faces, _ = lv_surface
    return purkinje_tree(points, faces, LV_ROOT, DOWN, TreeSettings(), seed=1,
                         conduction_velocity_m_per_s=CV, root_time_ms=ROOT_TIME)


@pytest.fixture(scope="module")
def rv_tree(rv_surface) -> PurkinjeTree:
    points, faces, _ = rv_surface
    return purkinje_tree(points, faces, RV_ROOT, DOWN, TreeSettings(), seed=1,
                         conduction_velocity_m_per_s=CV, root_time_ms=ROOT_TIME)


def _polydata(points: np.ndarray, faces: np.ndarray) -> pv.PolyData:
    return pv.PolyData(points, np.hstack([np.full((len(faces), 1), 3), faces]).ravel())


def _independent_path_lengths(tree: PurkinjeTree) -> np.ndarray:
    """Path length (mm) from the root by walking the tree breadth first in Python, each node
    its parent's length plus its edge: no shortest-path code."""
    neighbours: dict[int, list[tuple[int, float]]] = {k: [] for k in range(tree.n_nodes)}
    for (i, j), w in zip(tree.edges.tolist(), tree.edge_lengths_mm().tolist()):
        neighbours[i].append((j, w))
        neighbours[j].append((i, w))
    path = np.full(tree.n_nodes, np.nan)
    path[tree.root] = 0.0
    queue = [tree.root]
    while queue:
        node = queue.pop()
        for other, w in neighbours[node]:
            if np.isnan(path[other]):
                path[other] = path[node] + w
                queue.append(other)
    return path


def test_extract_surface_reindexes(heart, lv_surface):
    points, faces, used = lv_surface
    assert faces.min() == 0 and faces.max() == len(points) - 1
    assert len(np.unique(faces)) == len(points)
    np.testing.assert_array_equal(points, heart.mean[used])
    np.testing.assert_array_equal(used[faces], heart.faces[heart.face_labels == LV_ENDOCARDIUM])


@pytest.mark.parametrize("which", ["lv", "rv"])
def test_tree_on_surface_and_is_a_tree(which, lv_surface, rv_surface, lv_tree, rv_tree):
    (points, faces, _), tree = (lv_surface, lv_tree) if which == "lv" else (rv_surface, rv_tree)
    n = tree.n_nodes
    # sensible size: a few thousand nodes at most, and more than a bare trunk
    assert 300 < n < 6000
    # every node on (within 1 mm of) its endocardial surface: VTK's implicit distance
    distance = pv.PolyData(tree.nodes_mm).compute_implicit_distance(_polydata(points, faces))
    assert np.max(np.abs(distance["implicit_distance"])) < 1.0
    # fractal-tree adds each new node once, joined to its predecessor: a tree
    assert tree.edges.shape == (n - 1, 2)
    assert np.all(tree.edges[:, 0] != tree.edges[:, 1])
    adjacency = coo_matrix((np.ones(n - 1), tuple(tree.edges.T)), shape=(n, n))
    n_components, _ = connected_components(adjacency, directed=False)
    assert n_components == 1
    # junctions: exactly the degree-1 nodes except the root
    degree = np.bincount(tree.edges.ravel(), minlength=n)
    expected = set(np.flatnonzero(degree == 1)) - {tree.root}
    assert set(tree.junctions.tolist()) == expected and len(expected) > 20


def test_junction_times_match_an_independent_tree_walk(lv_tree):
    path = _independent_path_lengths(lv_tree)
    # one path to each node, summed in the same order: the same numbers to the bit
    np.testing.assert_array_equal(lv_tree.activation_ms, ROOT_TIME + path / CV)
    assert lv_tree.activation_ms[lv_tree.root] == ROOT_TIME
    # the farthest junction is well beyond the initial 30 mm trunk
    assert lv_tree.activation_ms[lv_tree.junctions].max() > ROOT_TIME + 40.0 / CV


def test_doubling_cv_halves_times(lv_tree):
    fast = tree_activation(lv_tree, conduction_velocity_m_per_s=2 * CV, root_time_ms=ROOT_TIME)
    np.testing.assert_allclose(fast - ROOT_TIME, (lv_tree.activation_ms - ROOT_TIME) / 2, rtol=1e-12)
    with pytest.raises(ValueError):
        tree_activation(lv_tree, conduction_velocity_m_per_s=0.0)


def test_seed_reproducible_and_global_rng_untouched(rv_surface, rv_tree):
    points, faces, _ = rv_surface
    np.random.seed(12345)
    state_before = np.random.get_state()
    same = grow_tree(points, faces, RV_ROOT, DOWN, TreeSettings(), seed=1)
    state_after = np.random.get_state()
    assert state_before[0] == state_after[0]
    np.testing.assert_array_equal(state_before[1], state_after[1])
    assert state_before[2:] == state_after[2:]
    assert np.random.rand() == np.random.RandomState(12345).rand()

    np.testing.assert_array_equal(same.nodes_mm, rv_tree.nodes_mm)
    np.testing.assert_array_equal(same.edges, rv_tree.edges)
    other = grow_tree(points, faces, RV_ROOT, DOWN, TreeSettings(), seed=2)
    assert other.nodes_mm.shape != same.nodes_mm.shape or not np.allclose(other.nodes_mm, same.nodes_mm)


def test_seeded_global_rng_restores_on_error():
    np.random.seed(7)
    expected = np.random.RandomState(7).rand()
    with pytest.raises(RuntimeError):
        with seeded_global_rng(99):
            np.random.rand(10)
            raise RuntimeError("boom")
    assert np.random.rand() == expected


def test_root_far_from_surface_raises(lv_surface):
    points, faces, _ = lv_surface
    with pytest.raises(PurkinjeError, match="from the surface"):
        grow_tree(points, faces, np.array([300.0, 0.0, -40.0]), DOWN, TreeSettings(), seed=0)


def test_fractal_tree_sys_exit_becomes_purkinje_error(lv_surface):
    """The raw fractal-tree call (no root pre-check) exits on an unprojectable start point."""
    points, faces, _ = lv_surface
    state = np.random.get_state()
    with pytest.raises(PurkinjeError, match="sys.exit"):
        _run_fractal_tree(points, faces, np.array([300.0, 0.0, -40.0]), DOWN, TreeSettings(), seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])


def test_direction_normal_to_surface_raises(lv_surface):
    points, faces, _ = lv_surface
    a, b, c = points[faces[100]]
    normal = np.cross(b - a, c - a)
    with pytest.raises(PurkinjeError, match="normal"):
        grow_tree(points, faces, (a + b + c) / 3, normal, TreeSettings(), seed=0)


def test_trees_cover_apico_basal_height(lv_surface, rv_surface, lv_tree, rv_tree):
    for (points, _, _), tree in ((lv_surface, lv_tree), (rv_surface, rv_tree)):
        z = tree.nodes_mm[tree.junctions, 2]
        height = np.ptp(points[:, 2])
        assert np.ptp(z) > 0.5 * height
        # reaches the apical third
        assert z.min() < points[:, 2].min() + height / 3
    # LV junctions spread around the cavity (not only on the septal side, x > 0)
    x = lv_tree.nodes_mm[lv_tree.junctions, 0]
    assert (x < -5.0).sum() > 10 and (x > 5.0).sum() > 10


def test_vtk_round_trip(tmp_path, lv_tree):
    path = write_tree_vtk(lv_tree, tmp_path / "sub" / "lv_purkinje.vtp")
    assert path.exists() and not list(path.parent.glob("*.part*"))
    poly = pv.read(path)
    assert poly.n_points == lv_tree.n_nodes
    assert poly.n_lines == len(lv_tree.edges)
    np.testing.assert_allclose(poly.points, lv_tree.nodes_mm, atol=1e-4)
    np.testing.assert_allclose(poly.point_data["activation_ms"], lv_tree.activation_ms)
    lines = poly.lines.reshape(-1, 3)
    assert np.all(lines[:, 0] == 2)
    np.testing.assert_array_equal(lines[:, 1:], lv_tree.edges)
    with pytest.raises(ValueError):
        write_tree_vtk(lv_tree, tmp_path / "tree.vtu")


def test_settings_validation():
    with pytest.raises(ValueError):
        TreeSettings(branch_length_mm=0.0)
    with pytest.raises(ValueError):
        TreeSettings(fascicles_angles_deg=(10.0,), fascicles_lengths_mm=())
    with pytest.raises(ValueError):
        TreeSettings(generations=-1)


def test_the_fast_surface_projection_grows_fractal_trees_own_tree(lv_surface, lv_tree, monkeypatch):
    """The Mesh whose check_in_triangle skips np.cross's overhead does fractal-tree's arithmetic:
    with the library's own Mesh the same seed grows the very same tree, node for node."""
    import ecgcohort.conduction.purkinje as purkinje

    monkeypatch.setattr(purkinje, "_fast_mesh_class", lambda mesh_class: mesh_class)
    points, faces, _ = lv_surface
    theirs = grow_tree(points, faces, LV_ROOT, DOWN, TreeSettings(), seed=1)
    np.testing.assert_array_equal(theirs.nodes_mm, lv_tree.nodes_mm)
    np.testing.assert_array_equal(theirs.edges, lv_tree.edges)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 50, 3))
    np.testing.assert_array_equal(np.stack([purkinje._cross(x, y) for x, y in zip(a, b)]), np.cross(a, b))


def test_the_fast_nodes_grow_fractal_trees_own_tree(rv_surface, rv_tree, monkeypatch):
    """Nodes kept in an array for fractal-tree's k-d trees: with the library's own Nodes (its
    trees rebuilt from the list after every branch) the same seed grows the very same tree."""
    import ecgcohort.conduction.purkinje as purkinje

    monkeypatch.setattr(purkinje, "_fast_nodes_class", lambda nodes_class: nodes_class)
    points, faces, _ = rv_surface
    theirs = grow_tree(points, faces, RV_ROOT, DOWN, TreeSettings(), seed=1)
    assert theirs.n_nodes > 1024  # more than FastNodes starts with: its array grew
    np.testing.assert_array_equal(theirs.nodes_mm, rv_tree.nodes_mm)
    np.testing.assert_array_equal(theirs.edges, rv_tree.edges)


def test_tree_activation_zero_length_edge_and_disconnected_node():
    """A zero-length edge still joins its nodes (same time); a node off the tree is an error."""
    nodes = np.array([[0.0, 0, 0], [5.0, 0, 0], [5.0, 0, 0], [5.0, 10, 0]])
    tree = PurkinjeTree(nodes, np.array([[0, 1], [1, 2], [2, 3]]), 0, np.array([3]))
    np.testing.assert_array_equal(tree_activation(tree, 2.5, 1.0), [1.0, 3.0, 3.0, 7.0])
    broken = PurkinjeTree(nodes, np.array([[0, 1], [1, 2]]), 0, np.array([2]))
    with pytest.raises(PurkinjeError, match="1 tree nodes are not connected"):
        tree_activation(broken, 2.5)


def test_tree_vtp_has_the_bytes_pyvista_wrote(tmp_path, lv_tree):
    """write_tree_vtk with VTK's classes writes the file pyvista wrote before, byte for byte."""
    write_tree_vtk(lv_tree, tmp_path / "tree.vtp")
    poly = pv.PolyData(lv_tree.nodes_mm, lines=np.hstack([np.full((len(lv_tree.edges), 1), 2), lv_tree.edges]).ravel())
    poly.point_data["activation_ms"] = lv_tree.activation_ms
    poly.field_data["root"] = np.array([lv_tree.root], dtype=np.int64)
    poly.field_data["junctions"] = np.asarray(lv_tree.junctions, dtype=np.int64)
    poly.save(str(tmp_path / "pyvista.vtp"))
    assert (tmp_path / "tree.vtp").read_bytes() == (tmp_path / "pyvista.vtp").read_bytes()


def test_closest_point_is_pyvistas_closest_cell(lv_surface):
    """The root's projection by VTK's locator: pyvista's find_closest_cell, bit for bit."""
    from ecgcohort.conduction.purkinje import _closest_point_on_surface

    points, faces, _ = lv_surface
    mesh = _polydata(points, faces)
    rng = np.random.default_rng(4)
    for query in points[rng.integers(0, len(points), 25)] + rng.normal(scale=3.0, size=(25, 3)):
        cell, closest = mesh.find_closest_cell(query, return_closest_point=True)
        ours = _closest_point_on_surface(points, faces, query)
        np.testing.assert_array_equal(ours[0], closest)
        assert ours[1] == cell and ours[2] == np.linalg.norm(closest - query)


def test_growing_and_writing_trees_imports_no_pyvista(tmp_path, lv_surface):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    points, faces, _ = lv_surface
    np.savez(tmp_path / "surface.npz", points=points, faces=faces)
    script = f"""
import json, sys
import numpy as np
from ecgcohort.conduction.purkinje import TreeSettings, purkinje_tree, write_tree_vtk
surface = np.load({str(tmp_path / 'surface.npz')!r})
tree = purkinje_tree(surface["points"], surface["faces"], np.array({LV_ROOT.tolist()}), np.array({DOWN.tolist()}),
                     TreeSettings(generations=3), seed=1)
write_tree_vtk(tree, {str(tmp_path / 'tree.vtp')!r})
print(json.dumps(sorted(sys.modules)))
"""
    source = str(Path(__file__).resolve().parents[1] / "src")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": source})
    assert "pyvista" not in json.loads(result.stdout.strip().splitlines()[-1])
    assert (tmp_path / "tree.vtp").stat().st_size > 0
