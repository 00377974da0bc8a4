"""Rule-based myocardial fibres (LDRB, Bayer et al. 2012) and ventricular coordinates.

The myocardium is cut out of a heart-in-torso mesh written by
:func:`ecgcohort.meshing.mesh_heart_in_torso` (lengths in mm); its boundary facets inherit the
epicardium, LV / RV endocardium and base tags, and the Laplace problems of ``fenicsx-ldrb``
(its ``scalar_laplacians``, solved here: P1, CG + algebraic multigrid)

* ``apex``: 0 at the apex (the point farthest from the base), 1 on the base;
* ``epi``: 1 on the epicardium, 0 on the LV and RV endocardium;
* ``lv``: 1 on the LV endocardium, 0 on the epicardium and the RV endocardium;
* ``rv``: 1 on the RV endocardium, 0 on the epicardium and the LV endocardium;
* ``lv_rv``: 1 on the LV endocardium, 0 on the RV endocardium;

(free, i.e. zero-flux, on the other boundaries) give the fibre / sheet / sheet-normal frame
from their gradients (:mod:`ecgcohort.fibers.frames`, ldrb's arithmetic). The same solves
give the ventricular coordinates.

Angle conventions (ldrb's, degrees): at a point with apex-to-base direction ``l`` (gradient of
``apex``) and transmural direction ``t`` (endocardium to epicardium, orthogonalised against
``l``), the circumferential direction is ``c = l x t`` and the fibre is
``cos(alpha) c + sin(alpha) l``: ``alpha`` is the helix angle, positive when the fibre rises
towards the base while turning in ``+c``. The transverse direction
``-sin(alpha) c + cos(alpha) l`` and ``t`` are then rotated by the sheet angle ``beta`` about
the fibre, giving the ``sheet`` (ldrb's ``s0``; in the wall plane for beta = 0) and the
``normal`` (ldrb's ``n0``; transmural for beta = 0). Angles interpolate linearly from the
endocardial to the epicardial value in the transmural coordinate (bislerp of the frames).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgcohort.io import atomic_path, vtk_array, vtk_cells, vtk_points, write_vtk_xml
from ecgcohort.structure_tensors import fibre_structure

# the mesh reader (gmsh, igl, scipy) is imported where it is used: a job that only reads a
# patient's fibres (the dataset part) does not need it
if TYPE_CHECKING:
    from ecgcohort.meshing.tetra import TaggedMesh

log = logging.getLogger(__name__)

#: ldrb boundary names -> our facet tag names
_LDRB_MARKERS: dict[str, str] = {"epi": "epicardium", "lv": "lv_endocardium", "rv": "rv_endocardium",
                                 "base": "base"}
COORDINATE_NAMES: tuple[str, ...] = ("apicobasal", "transmural", "rotational", "ventricle")
_ORTHONORMAL_TOLERANCE = 1e-6
#: The Laplace problems' relative tolerance (CG with PETSc's algebraic multigrid: ldrb's
#: default, PETSc's own LU, took 3.3 s per problem on a 35k-node heart, this 0.3 s).
LAPLACE_RTOL = 1e-10
#: Barycentric points of the cell averages of f fᵀ: Keast's four-point rule (degree 2). A 4 mm
#: cell spans a third of the wall, over which the helix angle turns by some 40°, so its
#: centroid's fibre misstates its conductivity: against a 64-point rule the centroid's f fᵀ is
#: off by 0.10 (mean Frobenius norm, default patient at 4 mm), these four points' by 0.025.
_KEAST_A, _KEAST_B = 0.5854101966249685, 0.1381966011250105
STRUCTURE_POINTS = np.array([[_KEAST_A if i == k else _KEAST_B for i in range(4)] for k in range(4)])


class FibreError(RuntimeError):
    """The myocardium cannot be given a fibre field (missing surfaces, untagged boundary...)."""


@dataclass(frozen=True)
class FibreAngles:
    """LDRB helix (alpha) and sheet (beta) angles in degrees, on the endocardium and the
    epicardium; the same values are used in both ventricles and the septum. Zero is not
    allowed (ldrb treats 0 as "not given"); use a tiny angle instead."""

    alpha_endo: float = 40.0
    alpha_epi: float = -50.0
    beta_endo: float = -65.0
    beta_epi: float = 25.0

    def __post_init__(self) -> None:
        for name in ("alpha_endo", "alpha_epi", "beta_endo", "beta_epi"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or abs(value) > 90:
                raise ValueError(f"{name} must be an angle in [-90, 90] degrees, got {value}")


@dataclass
class MyocardialFibres:
    """Fibres and coordinates on the myocardium submesh (lengths in mm).

    ``points_mm`` (n_nodes, 3) and ``tetrahedra`` (n_cells, 4, local node numbers) are the
    myocardium; ``fibre``, ``sheet``, ``normal`` are unit, mutually orthogonal per-node vectors
    (n_nodes, 3), computed by LDRB from the nodal scalars and the volume-weighted average of
    the adjacent cells' gradients, and ``*_cell`` the same per cell, from the (exact, constant)
    cell gradients and the scalars at the cell centroid. Fibre directions are axial: ``f`` and
    ``-f`` are the same fibre, and ldrb may flip the sign between neighbours.

    ``coordinates`` (per node, dimensionless):

    * ``"apicobasal"``: the ldrb ``apex`` Laplace solution, 0 at the apex, 1 on the base (not
      proportional to distance: it rises steeply near the point-like apex condition);
    * ``"transmural"``: the ldrb ``epi`` solution, 0 on the LV and RV endocardium, 1 on the
      epicardium (in the septum, which has no epicardium, it stays below about 0.5);
    * ``"rotational"``: angle in radians in (-pi, pi] around the LV long axis (apex node to the
      centroid of the LV endocardial rim at the base), 0 towards the centroid of the RV
      endocardium, positive counter-clockwise seen from the base (right-handed about the
      apex-to-base axis; towards +y, anterior, in the heart-local frame of
      :mod:`ecgcohort.shapes.heart`);
    * ``"ventricle"``: 0 for LV, 1 for RV: 1 where the RV endocardial solution exceeds the LV one
      (``rv > lv``), so the septum is split at its mid-wall and the RV free wall is RV; on the
      epicardium, where both are 0, the adjacent cells' mean values decide.

    ``parent_nodes`` / ``parent_cells`` index the nodes and cells of the full mesh as read by
    :func:`ecgcohort.meshing.read_tagged_mesh` (the order of the ``.msh`` file).
    """

    points_mm: np.ndarray
    tetrahedra: np.ndarray
    fibre: np.ndarray
    sheet: np.ndarray
    normal: np.ndarray
    fibre_cell: np.ndarray
    sheet_cell: np.ndarray
    normal_cell: np.ndarray
    coordinates: dict[str, np.ndarray]
    parent_nodes: np.ndarray
    parent_cells: np.ndarray
    angles: FibreAngles = field(default_factory=FibreAngles)
    seconds: float = 0.0
    structure_cell: np.ndarray | None = None

    @property
    def cell_structure(self) -> np.ndarray:
        """(n_cells, 3, 3) each cell's mean of f fᵀ (``structure_cell``; f fᵀ of ``fibre_cell``
        where not computed): what conductivity and conduction tensors are built from."""
        return fibre_structure(self.fibre_cell if self.structure_cell is None else self.structure_cell)

    @property
    def normal_structure(self) -> np.ndarray:
        """(n_cells, 3, 3) n nᵀ of each cell's sheet normal ``normal_cell``: with
        :attr:`cell_structure`, what orthotropic conduction tensors are built from."""
        return fibre_structure(self.normal_cell)

    @property
    def n_nodes(self) -> int:
        return int(self.points_mm.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.tetrahedra.shape[0])


@dataclass(frozen=True)
class _Myocardium:
    """The myocardium cut out of a tagged mesh, in dolfinx's node and cell order (the order
    the fibres have always been written in): ``points_mm`` (N, 3), ``tetrahedra`` (C, 4),
    ``parent_nodes`` / ``parent_cells`` into the full mesh, and the node sets of its LDRB
    surfaces by ldrb name (``epi``, ``lv``, ``rv``, ``base``; the RV's absent in an LV-only
    heart) and of its whole boundary."""

    points_mm: np.ndarray
    tetrahedra: np.ndarray
    parent_nodes: np.ndarray
    parent_cells: np.ndarray
    surface_nodes: dict[str, np.ndarray]
    boundary_nodes: np.ndarray


def _faces(tetrahedra: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys of the cells' triangular faces, each face once, sorted; how many cells share
    each): a face's key encodes its sorted node triple."""
    faces = np.sort(tetrahedra[:, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]].reshape(-1, 3), axis=1)
    return np.unique(_face_keys(faces, n_nodes), return_counts=True)


def _face_keys(sorted_triangles: np.ndarray, n_nodes: int) -> np.ndarray:
    n = np.int64(n_nodes)
    triangles = sorted_triangles.astype(np.int64)
    return (triangles[:, 0] * n + triangles[:, 1]) * n + triangles[:, 2]


def _myocardium(tagged: TaggedMesh) -> _Myocardium:
    """The :class:`_Myocardium` of a tagged heart-in-torso mesh, numbered as dolfinx's
    ``create_mesh`` numbers it (every earlier fibre file's order; tests/test_fibers.py checks
    the two agree): cells in the Gibbs-Poole-Stockmeyer order of their dual graph, nodes in
    the order they first appear in those cells. dolfinx's own graph routines do that in a
    fifth of the time its whole mesh takes to build."""
    from mpi4py import MPI

    import dolfinx.cpp

    from ecgcohort.meshing.tetra import FACET_TAGS, VOLUME_TAGS

    cells = np.flatnonzero(tagged.cell_tags == VOLUME_TAGS["myocardium"])
    if cells.size == 0:
        raise FibreError("the mesh has no myocardium cells")
    nodes, local = np.unique(tagged.tetrahedra[cells], return_inverse=True)
    local = local.reshape(-1, 4).astype(np.int64)
    graph = dolfinx.cpp.graph
    cell_nodes = graph.AdjacencyList_int64(np.ascontiguousarray(local.ravel()),
                                           np.arange(0, local.size + 1, 4, dtype=np.int32))
    dual = dolfinx.cpp.mesh.build_dual_graph(MPI.COMM_SELF, dolfinx.cpp.mesh.CellType.tetrahedron, cell_nodes, 2)
    position = np.asarray(graph.reorder_gps(graph.AdjacencyList_int32(
        np.asarray(dual.array, dtype=np.int32), np.asarray(dual.offsets, dtype=np.int32))), dtype=np.int64)
    cell_order = np.empty_like(position)
    cell_order[position] = np.arange(len(position))
    ordered = local[cell_order]
    first_seen = np.unique(ordered.ravel(), return_index=True)[1]
    node_order = np.argsort(first_seen)
    renumber = np.empty_like(node_order)
    renumber[node_order] = np.arange(len(node_order))
    tetrahedra = renumber[ordered]
    n_nodes = len(node_order)
    parent_cells = cells[cell_order]
    parent_nodes = nodes[node_order]
    points = np.asarray(tagged.points_mm[parent_nodes], dtype=float)

    local_of = np.full(len(tagged.points_mm), -1, dtype=np.int64)
    local_of[parent_nodes] = np.arange(n_nodes)
    face_keys, sharing = _faces(tetrahedra, n_nodes)
    exterior = face_keys[sharing == 1]
    tagged_keys = []
    surface_nodes = {}
    for name, tag_name in _LDRB_MARKERS.items():
        triangles = tagged.facets.get(FACET_TAGS[tag_name])
        if triangles is None:
            continue
        triangles = local_of[triangles]
        triangles = np.sort(triangles[np.all(triangles >= 0, axis=1)], axis=1)
        keys = _face_keys(triangles, n_nodes)
        on_boundary = np.isin(keys, exterior)
        if on_boundary.any():
            surface_nodes[name] = np.unique(triangles[on_boundary])
            tagged_keys.append(keys[on_boundary])
    untagged = np.setdiff1d(exterior, np.concatenate(tagged_keys) if tagged_keys else exterior[:0])
    if untagged.size:
        raise FibreError(f"{untagged.size} of {exterior.size} myocardial boundary facets carry none of the tags "
                         f"{sorted(_LDRB_MARKERS.values())}")
    boundary = np.unique(np.stack([exterior // n_nodes // n_nodes, exterior // n_nodes % n_nodes,
                                   exterior % n_nodes]))
    return _Myocardium(points_mm=points, tetrahedra=tetrahedra, parent_nodes=parent_nodes, parent_cells=parent_cells,
                       surface_nodes=surface_nodes, boundary_nodes=boundary)


class _DirichletLaplace:
    """The P1 Laplace problem K u = b with u fixed on the nodes ``fixed`` (bool (N,)), solved
    on the free nodes (K_ff u_f = b_f − K_fd u_d) by CG with PETSc's algebraic multigrid,
    set up once for any number of right-hand sides and boundary values."""

    def __init__(self, stiffness, fixed: np.ndarray, rtol: float):
        from mpi4py import MPI  # noqa: F401  (libmpi before PETSc)
        from petsc4py import PETSc

        self.fixed = np.asarray(fixed, dtype=bool)
        self.free = np.flatnonzero(~self.fixed)
        if self.free.size == 0 or not self.fixed.any():
            raise FibreError(f"a Laplace problem with {int(self.fixed.sum())} of {len(self.fixed)} nodes fixed")
        rows = stiffness[self.free]
        self.coupling = rows[:, np.flatnonzero(self.fixed)].tocsr()
        free_block = rows[:, self.free].tocsr()
        free_block.sort_indices()
        self.block = free_block
        self.matrix = PETSc.Mat().createAIJ(size=free_block.shape, csr=(
            free_block.indptr.astype(PETSc.IntType), free_block.indices.astype(PETSc.IntType), free_block.data),
            comm=PETSc.COMM_SELF)
        self.matrix.assemble()
        self.ksp = PETSc.KSP().create(PETSc.COMM_SELF)
        self.ksp.setOperators(self.matrix)
        self.ksp.setType("cg")
        self.ksp.getPC().setType("gamg")
        self.ksp.setTolerances(rtol=rtol)
        self.rhs, self.solution = self.matrix.createVecs()
        self.PETSc = PETSc

    def solve(self, fixed_values: np.ndarray, load: np.ndarray | None = None) -> np.ndarray:
        """Nodal u (N,): ``fixed_values`` (N,) read on the fixed nodes, ``load`` (N,) the
        right-hand side (default none)."""
        u = np.where(self.fixed, fixed_values, 0.0)
        rhs = -(self.coupling @ u[self.fixed])
        if load is not None:
            rhs += load[self.free]
        return self._solved(rhs, u)

    def _solved(self, rhs: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``u`` with its free nodes set to the CG solution for ``rhs`` (zero initial guess)."""
        self.rhs.setArray(rhs)
        self.solution.set(0.0)
        self.ksp.solve(self.rhs, self.solution)
        if self.ksp.getConvergedReason() <= 0:
            raise FibreError(f"the LDRB Laplace solve did not converge (PETSc reason {self.ksp.getConvergedReason()})")
        u[self.free] = self.solution.getArray()
        return u

    def solve_fixing_also(self, extra: np.ndarray, fixed_values: np.ndarray) -> np.ndarray:
        """Nodal u (N,) of this problem with the nodes ``extra`` fixed as well, every fixed
        node to its ``fixed_values`` (N,), no load. The extra nodes' rows and columns become
        the identity and this problem's multigrid preconditions the result: for a few nodes
        (the apex) a couple of CG iterations more instead of a new set-up (0.3 s at 1.2 mm)."""
        import scipy.sparse

        PETSc = self.PETSc
        position = np.full(len(self.fixed), -1, dtype=np.int64)
        position[self.free] = np.arange(len(self.free))
        pinned = np.unique(position[extra][position[extra] >= 0])
        u = np.where(self.fixed, fixed_values, 0.0)
        u[extra] = fixed_values[extra]
        rhs = -(self.coupling @ u[self.fixed]) - self.block[:, pinned] @ u[self.free[pinned]]
        rhs[pinned] = u[self.free[pinned]]
        keep = np.ones(len(self.free))
        keep[pinned] = 0.0
        kept = scipy.sparse.diags(keep)
        block = (kept @ self.block @ kept + scipy.sparse.diags(1.0 - keep)).tocsr()
        block.sort_indices()
        matrix = PETSc.Mat().createAIJ(size=block.shape, csr=(
            block.indptr.astype(PETSc.IntType), block.indices.astype(PETSc.IntType), block.data), comm=PETSc.COMM_SELF)
        matrix.assemble()
        self.ksp.getPC().setReusePreconditioner(True)
        self.ksp.setOperators(matrix, self.matrix)
        return self._solved(rhs, u)


def _conditions(n_nodes: int, *conditions: tuple[np.ndarray, float]) -> tuple[np.ndarray, np.ndarray]:
    """(fixed mask, values) of Dirichlet conditions (node indices, value), later ones winning
    where they share nodes (as dolfinx's ``set_bc``, which ldrb used)."""
    fixed, values = np.zeros(n_nodes, dtype=bool), np.zeros(n_nodes)
    for nodes, value in conditions:
        fixed[nodes] = True
        values[nodes] = value
    return fixed, values


def _laplace_solutions(myocardium: _Myocardium, grads: np.ndarray, volumes: np.ndarray,
                       rtol: float) -> dict[str, np.ndarray]:
    """ldrb's Laplace solutions (``scalar_laplacians``; module docstring) as nodal values:
    ``apex``, ``epi``, ``lv``, ``rv`` and ``lv_rv`` (the last two with an RV). The stiffness
    matrix is assembled once; the three solves with Dirichlet conditions on every
    endocardium and the epicardium share one multigrid set-up."""
    from ecgcohort.fem import stiffness_matrix

    tets, n = myocardium.tetrahedra, len(myocardium.points_mm)
    stiffness = stiffness_matrix(tets, grads, volumes, np.broadcast_to(np.eye(3), (len(tets), 3, 3)), n)
    surfaces = myocardium.surface_nodes
    base = surfaces["base"]
    # ldrb's apex: the farthest point of the base by -Δu = 1, u = 1 on the base; then every
    # boundary node with its y and z (ldrb tests z twice, never x)
    load = np.bincount(tets.ravel(), weights=np.repeat(volumes / 4.0, 4), minlength=n)
    fixed, values = _conditions(n, (base, 1.0))
    base_problem = _DirichletLaplace(stiffness, fixed, rtol)
    farthest = base_problem.solve(values, load)
    apex_point = myocardium.points_mm[int(np.argmax(farthest))]
    boundary = myocardium.boundary_nodes
    candidates = myocardium.points_mm[boundary]
    apex = boundary[np.isclose(candidates[:, 2], apex_point[2]) & np.isclose(candidates[:, 1], apex_point[1])]
    if apex.size == 0:
        raise FibreError(f"no boundary node at the apex {np.round(apex_point, 2).tolist()} mm")
    _, values = _conditions(n, (apex, 0.0), (base, 1.0))
    solutions = {"apex": base_problem.solve_fixing_also(apex, values)}

    walls = [name for name in ("epi", "lv", "rv") if name in surfaces]
    fixed = np.zeros(n, dtype=bool)
    fixed[np.concatenate([surfaces[name] for name in walls])] = True
    shared = _DirichletLaplace(stiffness, fixed, rtol)
    for case in walls:
        others = np.concatenate([surfaces[name] for name in walls if name != case])
        _, values = _conditions(n, (surfaces[case], 1.0), (others, 0.0))
        solutions[case] = shared.solve(values)
    if "rv" in surfaces:
        fixed, values = _conditions(n, (surfaces["lv"], 1.0), (surfaces["rv"], 0.0))
        solutions["lv_rv"] = _DirichletLaplace(stiffness, fixed, rtol).solve(values)
    return solutions


def _frames(data: dict, angles: FibreAngles) -> tuple[np.ndarray, ...]:
    """LDRB (fibre, sheet, normal), each (n, 3), from ldrb's scalars and gradients ``data`` at n
    points (``{name}_scalar`` (n,), ``{name}_gradient`` (3n,) for ldrb's problems; the RV's
    missing in an LV-only heart): :func:`ecgcohort.fibers.frames.fibre_sheet_frames`."""
    from ecgcohort.fibers.frames import fibre_sheet_frames

    lv = np.asarray(data["lv_scalar"], dtype=float)
    zeros = np.zeros_like(lv)
    return fibre_sheet_frames(
        lv, data.get("rv_scalar", zeros), data["epi_scalar"], data.get("lv_rv_scalar", zeros),
        data["lv_gradient"], data.get("rv_gradient", np.zeros(3 * len(lv))), data["epi_gradient"],
        data["apex_gradient"], alpha_endo_deg=angles.alpha_endo, alpha_epi_deg=angles.alpha_epi,
        beta_endo_deg=angles.beta_endo, beta_epi_deg=angles.beta_epi)


def _nodal_average(tetrahedra: np.ndarray, volumes: np.ndarray, per_cell: np.ndarray) -> np.ndarray:
    """Per-cell vectors (C, 3) averaged onto the nodes (N, 3), weighted by cell volume. ldrb
    interpolated the piecewise-constant gradients into P1 by keeping one adjacent cell's
    value per node (whichever dolfinx visited last), which made nodal fibres depend on the
    cell order."""
    n_nodes = int(tetrahedra.max()) + 1
    weight = np.bincount(tetrahedra.ravel(), weights=np.repeat(volumes, 4), minlength=n_nodes)
    weighted = np.repeat(per_cell * volumes[:, None], 4, axis=0)
    total = np.stack([np.bincount(tetrahedra.ravel(), weights=weighted[:, axis], minlength=n_nodes)
                      for axis in range(3)], axis=1)
    return total / weight[:, None]


def _orthonormalise(fibre: np.ndarray, sheet: np.ndarray, normal: np.ndarray,
                    where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gram-Schmidt the ldrb frames (its bislerp falls back to a linear, non-unit quaternion
    interpolation for nearly equal frames, leaving errors up to ~1e-4) into right-handed
    orthonormal ones; raise :class:`FibreError` for degenerate (near zero) vectors."""
    frame = np.stack([fibre, sheet, normal], axis=1)
    error = np.abs(np.einsum("nai,nbi->nab", frame, frame) - np.eye(3)).max(axis=(1, 2))
    bad = ~(error < _ORTHONORMAL_TOLERANCE)
    if bad.any():
        log.debug("%d %s frames off orthonormal by up to %.1e; re-orthonormalised", int(bad.sum()), where,
                  float(error[bad].max()))
    if not np.all(error < 0.1):
        raise FibreError(f"{int((~(error < 0.1)).sum())} {where} frames are degenerate (vanishing or "
                         "parallel Laplace gradients)")
    f = fibre / np.linalg.norm(fibre, axis=1, keepdims=True)
    s = sheet - np.einsum("ij,ij->i", sheet, f)[:, None] * f
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    n = np.cross(f, s)
    if np.any(np.einsum("ij,ij->i", n, normal) < 0.9):
        raise FibreError(f"ldrb returned left-handed {where} frames")
    return f, s, n


def rotational_coordinate(points_mm: np.ndarray, apex_mm: np.ndarray, base_centre_mm: np.ndarray,
                          rv_centre_mm: np.ndarray) -> np.ndarray:
    """Angle (radians, (-pi, pi]) of each point around the axis apex -> base centre, 0 towards
    ``rv_centre_mm``, right-handed about the apex-to-base direction (points in mm)."""
    axis = np.asarray(base_centre_mm, float) - np.asarray(apex_mm, float)
    axis /= np.linalg.norm(axis)
    towards_rv = np.asarray(rv_centre_mm, float) - apex_mm
    towards_rv = towards_rv - (towards_rv @ axis) * axis
    norm = np.linalg.norm(towards_rv)
    if norm < 1e-9:
        raise FibreError("the RV centre lies on the LV long axis: no rotational reference")
    e1 = towards_rv / norm
    e2 = np.cross(axis, e1)
    relative = np.asarray(points_mm, float) - apex_mm
    return np.arctan2(relative @ e2, relative @ e1)


def _ventricle(lv: np.ndarray, rv: np.ndarray, tetrahedra: np.ndarray, volumes: np.ndarray) -> np.ndarray:
    """1.0 at the nodes where the RV endocardial solution ``rv`` exceeds the LV one ``lv``,
    else 0.0. Both are 0 on the epicardium (their Dirichlet value): there the adjacent cells
    decide (their volume-weighted mean ``rv`` against their mean ``lv``). ldrb's solves
    returned the fixed values only to the solver's tolerance, so the epicardial labels were
    the sign of its rounding (61 % RV on the default patient's epicardium, LV free wall
    included)."""
    ventricle = rv > lv
    tied = lv == rv
    if tied.any():
        weights = np.repeat(volumes, 4)
        cell_excess = (rv - lv)[tetrahedra].mean(axis=1)
        excess = np.bincount(tetrahedra.ravel(), weights=np.repeat(cell_excess, 4) * weights, minlength=len(lv))
        ventricle[tied] = excess[tied] > 0
    return ventricle.astype(float)


def _cell_structure(scalars: dict[str, np.ndarray], cell_gradients: dict[str, np.ndarray], tetrahedra: np.ndarray,
                    angles: FibreAngles) -> np.ndarray:
    """(n_cells, 3, 3) the mean of f fᵀ over each cell: LDRB at :data:`STRUCTURE_POINTS`, from the
    nodal Laplace solutions ``scalars`` interpolated there (P1) and the cells' constant
    ``cell_gradients`` (n_cells, 3); an absent RV's solutions are zero, as in :func:`_frames`."""
    from ecgcohort.fibers.frames import mean_fibre_structure

    zeros = np.zeros_like(scalars["lv"])
    nodal = np.column_stack([scalars.get(name, zeros) for name in ("lv", "rv", "epi", "lv_rv")])
    no_gradient = np.zeros_like(cell_gradients["lv"])
    gradients = np.stack([cell_gradients.get(name, no_gradient) for name in ("lv", "rv", "epi", "apex")], axis=1)
    structure, vanished = mean_fibre_structure(
        nodal, tetrahedra, gradients, STRUCTURE_POINTS, alpha_endo_deg=angles.alpha_endo,
        alpha_epi_deg=angles.alpha_epi, beta_endo_deg=angles.beta_endo, beta_epi_deg=angles.beta_epi)
    if vanished:
        raise FibreError(f"{vanished} fibres inside cells vanish (parallel Laplace gradients)")
    return structure


def myocardial_fibres(mesh_path: str | Path, angles: FibreAngles = FibreAngles(),
                      laplace_rtol: float = LAPLACE_RTOL) -> MyocardialFibres:
    """LDRB fibres and ventricular coordinates of the myocardium of the mesh at ``mesh_path``
    (gmsh ``.msh`` in mm from :func:`ecgcohort.meshing.mesh_heart_in_torso`); angles in degrees;
    ``laplace_rtol``: the CG solves' relative tolerance (:data:`LAPLACE_RTOL`).

    Meshes without an RV endocardium (LV only) are supported: ``ventricle`` is then 0 and
    ``rotational`` is measured from an arbitrary but fixed direction (the x axis projected).
    """
    from ecgcohort.fem import p1_gradients
    from ecgcohort.meshing.tetra import read_tagged_mesh

    start = time.perf_counter()
    myocardium = _myocardium(read_tagged_mesh(mesh_path))
    missing = {"epi", "lv", "base"} - set(myocardium.surface_nodes)
    if missing:
        raise FibreError(f"the myocardium lacks the surfaces {sorted(_LDRB_MARKERS[m] for m in missing)}")
    has_rv = "rv" in myocardium.surface_nodes
    points, tets = myocardium.points_mm, myocardium.tetrahedra
    grads, volumes = p1_gradients(points, tets)
    scalars = _laplace_solutions(myocardium, grads, volumes, laplace_rtol)

    # ldrb's inputs: the cells' constant gradients (1/mm) and the scalars at their centroids,
    # the nodal scalars and the volume-weighted nodal averages of the cell gradients
    cell_gradients = {name: np.einsum("cki,ck->ci", grads, values[tets]) for name, values in scalars.items()
                      if name != "lv_rv"}
    cell_data = {f"{name}_gradient": gradient.reshape(-1) for name, gradient in cell_gradients.items()}
    cell_data.update({f"{name}_scalar": values[tets].mean(axis=1) for name, values in scalars.items()
                      if name != "apex"})
    node_data = {f"{name}_gradient": _nodal_average(tets, volumes, gradient).reshape(-1)
                 for name, gradient in cell_gradients.items()}
    node_data.update({f"{name}_scalar": values for name, values in scalars.items() if name != "apex"})
    fibre, sheet, normal = _frames(node_data, angles)
    fibre_cell, sheet_cell, normal_cell = _frames(cell_data, angles)
    fibre, sheet, normal = _orthonormalise(fibre, sheet, normal, "nodal")
    fibre_cell, sheet_cell, normal_cell = _orthonormalise(fibre_cell, sheet_cell, normal_cell, "cell")
    structure = _cell_structure(scalars, cell_gradients, tets, angles)

    apicobasal, transmural, lv = scalars["apex"], scalars["epi"], scalars["lv"]
    rv = scalars["rv"] if has_rv else np.zeros_like(lv)
    ventricle = _ventricle(lv, rv, tets, volumes)
    surfaces = myocardium.surface_nodes
    apex_point = points[np.argmin(apicobasal)]
    lv_rim = np.intersect1d(surfaces["lv"], surfaces["base"])
    if lv_rim.size == 0:
        raise FibreError("the LV endocardium does not reach the base: no base centre")
    base_centre = points[lv_rim].mean(axis=0)
    rv_centre = points[surfaces["rv"]].mean(axis=0) if has_rv else apex_point + np.array([1.0, 0.0, 0.0])
    rotational = rotational_coordinate(points, apex_point, base_centre, rv_centre)

    seconds = time.perf_counter() - start
    log.info("LDRB on %d nodes, %d tetrahedra in %.1f s", len(points), len(tets), seconds)
    return MyocardialFibres(
        points_mm=points, tetrahedra=tets,
        fibre=fibre, sheet=sheet, normal=normal,
        fibre_cell=fibre_cell, sheet_cell=sheet_cell, normal_cell=normal_cell,
        coordinates={"apicobasal": apicobasal, "transmural": transmural, "rotational": rotational,
                     "ventricle": ventricle},
        parent_nodes=myocardium.parent_nodes, parent_cells=myocardium.parent_cells.astype(np.int64),
        angles=angles, seconds=seconds, structure_cell=structure,
    )


_ARRAYS = ("points_mm", "tetrahedra", "fibre", "sheet", "normal", "fibre_cell", "sheet_cell", "normal_cell",
           "parent_nodes", "parent_cells")


def save_fibres(fibres: MyocardialFibres, path: str | Path, vtu: bool = False) -> Path:
    """Write ``fibres`` to ``path`` (``.npz``, atomically); with ``vtu`` also ``path`` with the
    suffix ``.vtu`` (for viewing: point and cell vectors, coordinates). Returns the path."""
    path = Path(path)
    arrays = {name: np.asarray(getattr(fibres, name)) for name in _ARRAYS}
    arrays.update({f"coordinate_{name}": np.asarray(value) for name, value in fibres.coordinates.items()})
    a = fibres.angles
    arrays["angles_deg"] = np.array([a.alpha_endo, a.alpha_epi, a.beta_endo, a.beta_epi], dtype=float)
    arrays["seconds"] = np.array(fibres.seconds)
    if fibres.structure_cell is not None:
        arrays["structure_cell"] = np.asarray(fibres.structure_cell)
    # uncompressed: zlib saves a quarter of the size (directions are incompressible) at 0.6 s
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    if vtu:
        _write_vtu(fibres, path.with_suffix(".vtu"))
    return path


def _write_vtu(fibres: MyocardialFibres, path: Path) -> None:
    """The fibres as a binary, uncompressed ``.vtu`` for viewing (point and cell vectors,
    coordinates; ``fibre`` the active scalars), written with VTK's own classes: pyvista costs
    about 0.5 s to import in a job that draws nothing, and wrote the same bytes."""
    from vtkmodules.vtkCommonDataModel import VTK_TETRA, vtkUnstructuredGrid

    grid = vtkUnstructuredGrid()
    grid.SetPoints(vtk_points(fibres.points_mm))
    grid.SetCells(vtk_array(np.full(fibres.n_cells, VTK_TETRA, dtype=np.uint8)), vtk_cells(fibres.tetrahedra))
    for name in ("fibre", "sheet", "normal"):
        grid.GetPointData().AddArray(vtk_array(getattr(fibres, name), name))
        grid.GetCellData().AddArray(vtk_array(getattr(fibres, f"{name}_cell"), name))
    for name, value in fibres.coordinates.items():
        grid.GetPointData().AddArray(vtk_array(value, name))
    grid.GetPointData().SetActiveScalars("fibre")
    grid.GetCellData().SetActiveScalars("fibre")
    write_vtk_xml(grid, path, compress=False)


def load_fibres(path: str | Path) -> MyocardialFibres:
    """Read fibres written by :func:`save_fibres` (``.npz``)."""
    with np.load(Path(path)) as archive:
        arrays = {name: archive[name] for name in _ARRAYS}
        coordinates = {key.removeprefix("coordinate_"): archive[key] for key in archive.files
                       if key.startswith("coordinate_")}
        angles = FibreAngles(*(float(v) for v in archive["angles_deg"]))
        seconds = float(archive["seconds"])
        structure = archive["structure_cell"] if "structure_cell" in archive.files else None
    return MyocardialFibres(**arrays, coordinates=coordinates, angles=angles, seconds=seconds,
                            structure_cell=structure)
