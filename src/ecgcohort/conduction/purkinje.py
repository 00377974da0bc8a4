"""Purkinje trees grown on the endocardial surfaces, and activation times of their junctions.

A fractal tree (package ``fractal-tree``, import ``fractal_tree``; Sahli Costabal et al. 2016)
is grown on one endocardial sub-surface (LV or RV endocardium, extracted by face label) from a
root point and an initial direction.  Activation along the tree is the shortest path length
from the root (Dijkstra on edge lengths, ``scipy.sparse.csgraph``) divided by the Purkinje conduction
velocity, plus the root time; the terminal nodes (Purkinje-muscle junctions) are the eikonal
stimuli, kept as positions and coupled to a mesh by :mod:`ecgcohort.conduction.coupling`.

fractal-tree quirks guarded here: it calls ``sys.exit(0)`` when the start point cannot be
projected on the surface (turned into :class:`PurkinjeError`), it draws from numpy's *global*
RNG (seeded and restored around the call by :func:`seeded_global_rng`), and it writes files
and a tqdm bar by default (disabled / silenced).

Units: positions and lengths mm, angles degrees (radians only inside fractal-tree), times ms,
velocities m/s (= mm/ms).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ecgcohort.io import vtk_array, vtk_cells, vtk_points, write_vtk_xml

#: face labels of the closed myocardial surface
LV_ENDOCARDIUM = 1
RV_ENDOCARDIUM = 2


class PurkinjeError(RuntimeError):
    """A Purkinje tree could not be grown (root off the surface, degenerate direction, ...)."""


@dataclass(frozen=True)
class TreeSettings:
    """Fractal-tree parameters in physical units (mm, degrees), defaults for an adult ventricle.

    ``initial_length_mm``: the first (His-bundle branch) segment from the root;
    ``branch_length_mm``: mean branch length (sd = sqrt(0.2) * mean, as fractal-tree);
    ``branch_angle_deg``: angle of each child to its parent's direction;
    ``generations``: number of bifurcating generations;
    ``segment_length_mm``: length of the straight segments a branch is made of;
    ``repulsivity``: how strongly branches are pushed away from the existing tree;
    ``fascicles_angles_deg`` / ``fascicles_lengths_mm``: straight fascicles leaving the end of the
    first branch (empty: none);
    ``max_root_distance_mm``: a root farther than this from the surface is an error.
    """

    initial_length_mm: float = 10.0
    branch_length_mm: float = 8.0
    branch_angle_deg: float = 15.0
    generations: int = 10
    segment_length_mm: float = 1.0
    repulsivity: float = 0.1
    fascicles_angles_deg: tuple[float, ...] = (-70.0, 20.0)
    fascicles_lengths_mm: tuple[float, ...] = (10.0, 10.0)
    max_root_distance_mm: float = 5.0

    def __post_init__(self) -> None:
        positive = ("initial_length_mm", "branch_length_mm", "segment_length_mm", "max_root_distance_mm")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.generations < 0:
            raise ValueError(f"generations must be >= 0, got {self.generations}")
        if self.segment_length_mm > min(self.initial_length_mm, self.branch_length_mm):
            raise ValueError("segment_length_mm must not exceed initial_length_mm or branch_length_mm")
        if len(self.fascicles_angles_deg) != len(self.fascicles_lengths_mm):
            raise ValueError("fascicles_angles_deg and fascicles_lengths_mm must have the same length")
        if any(length < self.segment_length_mm for length in self.fascicles_lengths_mm):
            raise ValueError("every fascicle must be at least one segment long")


@dataclass
class PurkinjeTree:
    """A tree of ``nodes_mm`` (n, 3) mm joined by ``edges`` (n - 1, 2); ``root`` node index,
    ``junctions`` indices of the terminal nodes (degree 1, root excluded) and ``activation_ms``
    (n,) ms = root time + path length from the root / conduction velocity (NaN until timed)."""

    nodes_mm: np.ndarray
    edges: np.ndarray
    root: int
    junctions: np.ndarray
    activation_ms: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def n_nodes(self) -> int:
        return int(len(self.nodes_mm))

    def edge_lengths_mm(self) -> np.ndarray:
        """Length (mm) of every edge."""
        a, b = self.nodes_mm[self.edges[:, 0]], self.nodes_mm[self.edges[:, 1]]
        return np.linalg.norm(a - b, axis=1)


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed numpy's global (legacy) RNG with ``seed`` for the block, then restore its state."""
    state = np.random.get_state()
    np.random.seed(int(seed))
    try:
        yield
    finally:
        np.random.set_state(state)


def extract_surface(points_mm: np.ndarray, faces: np.ndarray, face_labels: np.ndarray,
                    label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-surface of the faces labelled ``label``: (points mm (k, 3), faces reindexed (f, 3),
    original point index of each sub-surface point (k,))."""
    faces = np.asarray(faces)
    selected = faces[np.asarray(face_labels) == label]
    if len(selected) == 0:
        raise PurkinjeError(f"no faces with label {label}")
    used, inverse = np.unique(selected, return_inverse=True)
    return np.asarray(points_mm, dtype=np.float64)[used], inverse.reshape(-1, 3), used


def _vtk_polydata(points: np.ndarray, cells: np.ndarray):
    """A VTK PolyData of ``points`` (float64) and ``cells`` (k, 2) lines or (k, 3) triangles,
    built with VTK's classes as pyvista builds it (pyvista costs about 0.4 s to import in the
    tree job, which draws nothing)."""
    from vtkmodules.vtkCommonDataModel import vtkPolyData

    cells = np.asarray(cells, dtype=np.int64)
    poly = vtkPolyData()
    poly.SetPoints(vtk_points(points))
    if cells.shape[1] == 2:
        poly.SetLines(vtk_cells(cells))
    else:
        poly.SetPolys(vtk_cells(cells))
    return poly


def _closest_point_on_surface(points_mm: np.ndarray, faces: np.ndarray,
                              query_mm: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Closest point (mm) of the triangle surface to ``query_mm``, its face, and the distance (mm):
    VTK's static cell locator, as pyvista's ``find_closest_cell`` asks it."""
    from vtkmodules.vtkCommonCore import reference
    from vtkmodules.vtkCommonDataModel import vtkGenericCell, vtkStaticCellLocator

    locator = vtkStaticCellLocator()
    locator.SetDataSet(_vtk_polydata(points_mm, faces))
    locator.BuildLocator()
    closest, cell, sub_id, squared = [0.0, 0.0, 0.0], reference(0), reference(0), reference(0.0)
    query = np.asarray(query_mm, dtype=np.float64).reshape(3)
    locator.FindClosestPoint(query.tolist(), closest, vtkGenericCell(), cell, sub_id, squared)
    closest = np.asarray(closest, dtype=np.float64)
    return closest, int(cell), float(np.linalg.norm(closest - query))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a × b of two 3-vectors: np.cross's arithmetic (a1 b2 − a2 b1, …) without its axis
    handling, which costs 25 µs a call."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


@functools.lru_cache(maxsize=1)
def _fast_mesh_class(mesh_class: type) -> type:
    """fractal-tree's ``Mesh`` with ``check_in_triangle`` (its projection of every new node onto
    the surface) computing the same numbers without np.cross: 6 of a tree job's 12 s went to
    np.cross's overhead on 3-vectors. Same floating-point operations, so the same trees."""

    class FastMesh(mesh_class):
        def check_in_triangle(self, order, triangles, pre_projected_point, CPP):  # noqa: N803 (fractal-tree's name)
            from fractal_tree.mesh import ProjectedPoint

            for o in order:
                i = triangles[o]
                projected_point = pre_projected_point - CPP[o] * self.normals[i, :]
                origin = self.verts[self.connectivity[i, 0], :]
                u = self.verts[self.connectivity[i, 1], :] - origin
                v = self.verts[self.connectivity[i, 2], :] - origin
                w = projected_point - origin
                vxw, vxu, uxw = _cross(v, w), _cross(v, u), _cross(u, w)
                sign_r = np.dot(vxw, vxu)
                sign_t = np.dot(uxw, -vxu)
                if sign_r >= 0 and sign_t >= 0:
                    r = np.linalg.norm(vxw) / np.linalg.norm(vxu)
                    t = np.linalg.norm(uxw) / np.linalg.norm(vxu)
                    if r <= 1 and t <= 1 and (r + t) <= 1.001:
                        return ProjectedPoint(point=projected_point, triangle_index=i)
            return ProjectedPoint(point=projected_point, triangle_index=-1)

    return FastMesh


@functools.lru_cache(maxsize=1)
def _fast_nodes_class(nodes_class: type) -> type:
    """fractal-tree's ``Nodes`` keeping its node coordinates in a growing array as well as its
    list: its k-d trees were rebuilt from the list of 3-vectors after every branch (a Python
    conversion of every node, 0.5 s of a patient's trees). The trees are built from the same
    coordinates in the same order, so the same trees grow."""
    from scipy.spatial import cKDTree

    class FastNodes(nodes_class):
        def __init__(self, initial_node: np.ndarray) -> None:
            super().__init__(initial_node)
            self._coordinates = np.empty((1024, 3))
            self._coordinates[0] = initial_node

        def add_nodes(self, queue: list[np.ndarray]) -> list[int]:
            first = len(self.nodes)
            if first + len(queue) > len(self._coordinates):
                grown = np.empty((2 * (first + len(queue)), 3))
                grown[:first] = self._coordinates[:first]
                self._coordinates = grown
            nodes_id = []
            for offset, point in enumerate(queue):
                self.nodes.append(point)
                self._coordinates[first + offset] = point
                self.last_node += 1
                nodes_id.append(self.last_node)
            self.tree = cKDTree(self._coordinates[:len(self.nodes)])
            return nodes_id

        def update_collision_tree(self, nodes_to_exclude: list[int]) -> None:
            # fractal-tree's set(range(n)) minus the excluded iterates in ascending order (small
            # ints sit in their own hash slots): the same kept nodes in the same order
            kept_mask = np.ones(len(self.nodes), dtype=bool)
            kept_mask[np.asarray(nodes_to_exclude, dtype=np.int64)] = False
            kept = np.flatnonzero(kept_mask)
            if not len(kept):
                super().update_collision_tree(nodes_to_exclude)
                return
            self.nodes_to_consider_keys = kept
            self.collision_tree = cKDTree(self._coordinates[kept])

    return FastNodes


@contextlib.contextmanager
def _fast_fractal_tree_nodes() -> Iterator[None]:
    """fractal-tree's ``generate_fractal_tree`` building its nodes as :func:`_fast_nodes_class`
    for the block (it names the class as a module global)."""
    import fractal_tree.tree

    original = fractal_tree.tree.Nodes
    fractal_tree.tree.Nodes = _fast_nodes_class(original)
    try:
        yield
    finally:
        fractal_tree.tree.Nodes = original


def _run_fractal_tree(points_mm: np.ndarray, faces: np.ndarray, init_node_mm: np.ndarray,
                      direction: np.ndarray, settings: TreeSettings, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Call ``fractal_tree.generate_fractal_tree`` with the global RNG seeded (and restored),
    no files written and its progress bar silenced; returns (nodes mm, lines).  A start point
    it cannot project (its ``sys.exit``) or an invalid mesh node raise :class:`PurkinjeError`."""
    from fractal_tree import FractalTreeParameters, Mesh, generate_fractal_tree
    from fractal_tree.mesh import InvalidNodeError

    parameters = FractalTreeParameters(
        filename="unused",
        initial_direction=np.asarray(direction, dtype=np.float64),
        init_length=settings.initial_length_mm,
        N_it=settings.generations,
        length=settings.branch_length_mm,
        branch_angle=np.deg2rad(settings.branch_angle_deg),
        repulsitivity=settings.repulsivity,
        l_segment=settings.segment_length_mm,
        generate_fascicles=len(settings.fascicles_angles_deg) > 0,
        fascicles_angles=tuple(float(a) for a in np.deg2rad(settings.fascicles_angles_deg)),
        fascicles_length=tuple(float(x) for x in settings.fascicles_lengths_mm),
        save=False,
        save_paraview=False,
    )
    mesh = _fast_mesh_class(Mesh)(verts=np.asarray(points_mm, dtype=np.float64), connectivity=np.asarray(faces),
                                  init_node=np.asarray(init_node_mm, dtype=np.float64))
    ft_logger = logging.getLogger("fractal_tree")
    previous_level = ft_logger.level
    ft_logger.setLevel(logging.CRITICAL)  # its "initial point not in mesh" is re-raised below
    try:
        with seeded_global_rng(seed), contextlib.redirect_stderr(io.StringIO()), _fast_fractal_tree_nodes():
            result = generate_fractal_tree(mesh, parameters)
    except SystemExit as exc:
        raise PurkinjeError(
            f"fractal-tree could not project the start point {np.round(init_node_mm, 3).tolist()} mm "
            "onto the surface (it called sys.exit)") from exc
    except InvalidNodeError as exc:
        raise PurkinjeError(f"fractal-tree rejected the surface: {exc}") from exc
    finally:
        ft_logger.setLevel(previous_level)
    nodes = np.asarray(result.nodes, dtype=np.float64).reshape(-1, 3)
    lines = np.asarray(result.lines, dtype=np.int64).reshape(-1, 2)
    return nodes, lines


def _terminal_nodes(n_nodes: int, edges: np.ndarray, root: int) -> np.ndarray:
    """Indices of the nodes of degree 1 other than ``root``."""
    degree = np.bincount(edges.ravel(), minlength=n_nodes)
    leaves = np.flatnonzero(degree == 1)
    return leaves[leaves != root]


def grow_tree(points_mm: np.ndarray, faces: np.ndarray, root_mm: np.ndarray, direction: np.ndarray,
              settings: TreeSettings | None = None, seed: int = 0) -> PurkinjeTree:
    """Grow a fractal Purkinje tree on the triangle surface (``points_mm`` (k, 3) mm, ``faces``
    (f, 3)) from ``root_mm`` (projected onto the surface; farther than
    ``settings.max_root_distance_mm`` is an error) along ``direction`` (projected on the tangent
    plane there).  Same ``seed``, same tree.  ``activation_ms`` is left empty (see
    :func:`purkinje_tree`)."""
    settings = settings or TreeSettings()
    points_mm = np.asarray(points_mm, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    root_mm = np.asarray(root_mm, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(root_mm)):
        raise PurkinjeError(f"root is not finite: {root_mm}")
    root_on_surface, face, distance = _closest_point_on_surface(points_mm, faces, root_mm)
    if distance > settings.max_root_distance_mm:
        raise PurkinjeError(f"root {np.round(root_mm, 3).tolist()} mm is {distance:.1f} mm from the "
                            f"surface (> {settings.max_root_distance_mm} mm)")
    a, b, c = points_mm[faces[face]]
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal)
    direction = np.asarray(direction, dtype=np.float64).reshape(3)
    tangent = direction - np.dot(direction, normal) * normal
    if np.linalg.norm(tangent) < 1e-6 * max(np.linalg.norm(direction), 1e-300):
        raise PurkinjeError("initial direction is (nearly) normal to the surface at the root")
    tangent /= np.linalg.norm(tangent)

    nodes, edges = _run_fractal_tree(points_mm, faces, root_on_surface, tangent, settings, seed)
    if not np.all(np.isfinite(nodes)):
        raise PurkinjeError("fractal-tree produced non-finite node coordinates")
    # fractal-tree keeps node 0 at the given start point (already on the surface here)
    root = 0
    return PurkinjeTree(nodes_mm=nodes, edges=edges, root=root,
                        junctions=_terminal_nodes(len(nodes), edges, root),
                        activation_ms=np.full(len(nodes), np.nan))


def tree_activation(tree: PurkinjeTree, conduction_velocity_m_per_s: float = 2.5,
                    root_time_ms: float = 0.0) -> np.ndarray:
    """Activation time (ms) of every tree node: ``root_time_ms`` + shortest path length (mm)
    from the root along the tree / ``conduction_velocity_m_per_s`` (m/s = mm/ms)."""
    import scipy.sparse
    from scipy.sparse.csgraph import dijkstra

    if not conduction_velocity_m_per_s > 0:
        raise ValueError(f"conduction velocity must be > 0 m/s, got {conduction_velocity_m_per_s}")
    # a tree has one path to each node: its length is the same sum, in the same order, for any
    # shortest-path code (networkx's took 0.3 s a patient, most of it building the graph)
    edges = np.asarray(tree.edges, dtype=np.int64).reshape(-1, 2)
    graph = scipy.sparse.csr_matrix((tree.edge_lengths_mm(), (edges[:, 0], edges[:, 1])),
                                    shape=(tree.n_nodes, tree.n_nodes))
    path_mm = dijkstra(graph, directed=False, indices=tree.root)
    if not np.all(np.isfinite(path_mm)):
        raise PurkinjeError(f"{int((~np.isfinite(path_mm)).sum())} tree nodes are not connected to the root")
    return float(root_time_ms) + path_mm / float(conduction_velocity_m_per_s)


def purkinje_tree(points_mm: np.ndarray, faces: np.ndarray, root_mm: np.ndarray, direction: np.ndarray,
                  settings: TreeSettings | None = None, seed: int = 0,
                  conduction_velocity_m_per_s: float = 2.5, root_time_ms: float = 0.0) -> PurkinjeTree:
    """:func:`grow_tree` then :func:`tree_activation`: a tree with ``activation_ms`` (ms) set."""
    tree = grow_tree(points_mm, faces, root_mm, direction, settings, seed)
    tree.activation_ms = tree_activation(tree, conduction_velocity_m_per_s, root_time_ms)
    return tree


def retrograde_firing_times(nodes_mm: np.ndarray, edges: np.ndarray, junction_nodes: np.ndarray,
                            entry_ms: np.ndarray, conduction_velocity_m_per_s: float) -> np.ndarray:
    """When each junction fires once the tree is entered from the myocardium: the tree is
    reached at its junctions (``junction_nodes``, tree node indices) at ``entry_ms`` (inf: not
    reached) and conducts in every direction at the Purkinje velocity (m/s = mm/ms); a
    junction fires at its earliest arrival, ms (inf where nothing arrives)."""
    import scipy.sparse
    from scipy.sparse.csgraph import dijkstra

    n = len(nodes_mm)
    lengths = np.linalg.norm(nodes_mm[edges[:, 0]] - nodes_mm[edges[:, 1]], axis=1)
    entry = np.asarray(entry_ms, dtype=float)
    reached = np.isfinite(entry)
    if not reached.any():
        return np.full(len(junction_nodes), np.inf)
    # a virtual node n joined to every reached junction by its entry time, as a length
    rows = np.concatenate([edges[:, 0], np.full(int(reached.sum()), n)])
    columns = np.concatenate([edges[:, 1], np.asarray(junction_nodes)[reached]])
    weights = np.concatenate([lengths, np.maximum(entry[reached], 0.0) * conduction_velocity_m_per_s + 1e-12])
    graph = scipy.sparse.csr_matrix((weights, (rows, columns)), shape=(n + 1, n + 1))
    distance = dijkstra(graph, directed=False, indices=n)
    return distance[np.asarray(junction_nodes)] / conduction_velocity_m_per_s


def write_tree_vtk(tree: PurkinjeTree, path: str | Path) -> Path:
    """Write the tree as line cells of a .vtp (points mm, point data ``activation_ms`` ms when
    set; binary, zlib: the bytes pyvista wrote), atomically; returns the path."""
    target = Path(path)
    if target.suffix != ".vtp":
        raise ValueError(f"expected a .vtp path, got {target}")
    poly = _vtk_polydata(tree.nodes_mm, np.asarray(tree.edges).reshape(-1, 2))
    if tree.activation_ms.shape == (tree.n_nodes,):
        poly.GetPointData().AddArray(vtk_array(np.asarray(tree.activation_ms, dtype=np.float64), "activation_ms"))
        poly.GetPointData().SetActiveScalars("activation_ms")
    poly.GetFieldData().AddArray(vtk_array(np.array([tree.root], dtype=np.int64), "root"))
    poly.GetFieldData().AddArray(vtk_array(np.asarray(tree.junctions, dtype=np.int64), "junctions"))
    write_vtk_xml(poly, target)
    return target


def read_tree_vtk(path: str | Path) -> PurkinjeTree:
    """Read a tree written by :func:`write_tree_vtk` (nodes mm, activation ms when stored)."""
    import pyvista as pv

    poly = pv.read(str(path))
    edges = np.asarray(poly.lines, dtype=np.int64).reshape(-1, 3)[:, 1:]
    activation = (np.asarray(poly.point_data["activation_ms"], dtype=np.float64)
                  if "activation_ms" in poly.point_data else np.empty(0))
    return PurkinjeTree(nodes_mm=np.asarray(poly.points, dtype=np.float64), edges=edges,
                        root=int(poly.field_data["root"][0]), junctions=np.asarray(poly.field_data["junctions"],
                                                                                  dtype=np.int64),
                        activation_ms=activation)


def join_trees(first: PurkinjeTree, second: PurkinjeTree) -> PurkinjeTree:
    """One tree rooted at ``first``'s root, with ``second`` hung from it by a straight edge
    between the two roots (e.g. the moderator band carrying the right bundle branch from the
    septum to the RV free wall). Activation times are left unset."""
    offset = first.n_nodes
    nodes = np.vstack([first.nodes_mm, second.nodes_mm])
    edges = np.vstack([first.edges, second.edges + offset, [[first.root, second.root + offset]]])
    return PurkinjeTree(nodes_mm=nodes, edges=edges, root=first.root,
                        junctions=_terminal_nodes(len(nodes), edges, first.root),
                        activation_ms=np.full(len(nodes), np.nan))
