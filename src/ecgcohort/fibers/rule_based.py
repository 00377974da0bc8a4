"""Rule-based myocardial fibres (LDRB, Bayer et al. 2012) and ventricular coordinates.

The myocardium is cut out of a heart-in-torso mesh written by
:func:`ecgcohort.meshing.mesh_heart_in_torso` (lengths in mm); its boundary facets inherit the
epicardium, LV / RV endocardium and base tags, and ``fenicsx-ldrb`` solves the Laplace problems

* ``apex``: 0 at the apex (the point farthest from the base), 1 on the base;
* ``epi``: 1 on the epicardium, 0 on the LV and RV endocardium;
* ``lv``: 1 on the LV endocardium, 0 on the epicardium and the RV endocardium;
* ``rv``: 1 on the RV endocardium, 0 on the epicardium and the LV endocardium;
* ``lv_rv``: 1 on the LV endocardium, 0 on the RV endocardium;

(free, i.e. zero-flux, on the other boundaries) and builds the fibre / sheet / sheet-normal
frame from their gradients. The same solves give the ventricular coordinates.

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

from ecgcohort.io import atomic_path
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
#: The Laplace problems by CG + algebraic multigrid: ldrb's default (PETSc's own LU) takes
#: 3.3 s per problem on a 35k-node heart, this 0.3 s, and agrees with it to 1e-9.
_LAPLACE_SOLVER = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-10}
#: Barycentric points of the cell averages of f fᵀ: Keast's four-point rule (degree 2). A 4 mm
#: cell spans a third of the wall, over which the helix angle turns by some 40°, so its
#: centroid's fibre misstates its conductivity: against a 64-point rule the centroid's f fᵀ is
#: off by 0.10 (mean Frobenius norm, default patient at 4 mm), these four points' by 0.025.
_KEAST_A, _KEAST_B = 0.5854101966249685, 0.1381966011250105
STRUCTURE_POINTS = np.array([[_KEAST_A if i == k else _KEAST_B for i in range(4)] for k in range(4)])


def _import_ldrb():
    """``ldrb.ldrb``, with its numba functions cached on disk.

    ldrb compiles its quaternion helpers eagerly at import without numba's cache (5-7 s in
    every job); compiled with ``cache=True`` the second import takes under a second.
    """
    import numba

    plain = numba.njit

    def cached(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return plain(*args, **kwargs)

    numba.njit = cached
    try:
        import ldrb.ldrb as ldrb_module
    finally:
        numba.njit = plain
    return ldrb_module


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
      (``rv > lv``), so the septum is split at its mid-wall and the RV free wall is RV.

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


def _myocardium_mesh(tagged: TaggedMesh):
    """(dolfinx mesh of the myocardium cells, facet MeshTags of its LDRB surfaces, parent
    cells, parent nodes): parents index the cells and nodes of the full ``tagged`` mesh."""
    from mpi4py import MPI

    import basix.ufl
    import dolfinx.graph
    import dolfinx.io.utils
    import dolfinx.mesh
    import ufl

    from ecgcohort.meshing.tetra import FACET_TAGS, VOLUME_TAGS

    cells = np.flatnonzero(tagged.cell_tags == VOLUME_TAGS["myocardium"])
    if cells.size == 0:
        raise FibreError("the mesh has no myocardium cells")
    nodes, local = np.unique(tagged.tetrahedra[cells], return_inverse=True)
    local_of = np.full(len(tagged.points_mm), -1, dtype=np.int64)
    local_of[nodes] = np.arange(len(nodes))
    domain = ufl.Mesh(basix.ufl.element("Lagrange", "tetrahedron", 1, shape=(3,)))
    mesh = dolfinx.mesh.create_mesh(MPI.COMM_SELF, local.reshape(-1, 4), domain, tagged.points_mm[nodes])
    tdim = mesh.topology.dim
    # dolfinx reorders cells and nodes; map both back to the input (then to the full mesh)
    parent_cells = cells[np.asarray(mesh.topology.original_cell_index, dtype=np.int64)]
    parent_nodes = nodes[np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)]

    wanted = [FACET_TAGS[name] for name in _LDRB_MARKERS.values() if FACET_TAGS[name] in tagged.facets]
    triangles = np.vstack([tagged.facets[tag] for tag in wanted])
    values = np.concatenate([np.full(len(tagged.facets[tag]), tag, dtype=np.int32) for tag in wanted])
    on_myocardium = np.all(local_of[triangles] >= 0, axis=1)
    entities, entity_values = dolfinx.io.utils.distribute_entity_data(
        mesh, tdim - 1, local_of[triangles[on_myocardium]], values[on_myocardium])
    mesh.topology.create_connectivity(tdim - 1, tdim)
    facet_tags = dolfinx.mesh.meshtags_from_entities(mesh, tdim - 1, dolfinx.graph.adjacencylist(entities),
                                                     entity_values.astype(np.int32))
    boundary = dolfinx.mesh.exterior_facet_indices(mesh.topology)
    untagged = np.setdiff1d(boundary, facet_tags.indices)
    if untagged.size:
        raise FibreError(f"{untagged.size} of {boundary.size} myocardial boundary facets carry none of the tags "
                         f"{sorted(_LDRB_MARKERS.values())}")
    return mesh, facet_tags, parent_cells, parent_nodes


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


def _nodal_gradients(mesh, nodal_space, cell_data: dict) -> dict[str, np.ndarray]:
    """The cell (DG_0) gradients (1/mm) of ldrb's ``cell_data`` averaged onto the P1 dofs of
    ``nodal_space``, weighted by cell volume. ldrb interpolates the piecewise-constant
    gradient into P1 by keeping one adjacent cell's value per node (whichever dolfinx visits
    last), which makes nodal fibres depend on the cell order."""
    import ldrb.utils

    cell_dofs = np.asarray(ldrb.utils.space_from_string("DG_0", mesh, dim=3).dofmap.list)[:, 0]
    nodal_dofs = np.asarray(nodal_space.dofmap.list)
    corners = mesh.geometry.x[np.asarray(mesh.geometry.dofmaps[0])]
    volumes = np.abs(np.linalg.det(corners[:, 1:] - corners[:, :1])) / 6.0
    n_dofs = nodal_space.dofmap.index_map.size_local + nodal_space.dofmap.index_map.num_ghosts
    weight = np.zeros(n_dofs)
    for k in range(4):
        weight += np.bincount(nodal_dofs[:, k], weights=volumes, minlength=n_dofs)
    averaged = {}
    for key, values in cell_data.items():
        if not key.endswith("_gradient"):
            continue
        per_cell = np.asarray(values).reshape(-1, 3)[cell_dofs] * volumes[:, None]
        total = np.zeros((n_dofs, 3))
        for k in range(4):
            for axis in range(3):
                total[:, axis] += np.bincount(nodal_dofs[:, k], weights=per_cell[:, axis], minlength=n_dofs)
        averaged[key] = (total / weight[:, None]).reshape(-1)
    return averaged


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


def _cell_structure(cell_data: dict, nodal_scalars: dict[str, np.ndarray], cell_nodes: np.ndarray,
                    cell_dofs: np.ndarray, angles: FibreAngles) -> np.ndarray:
    """(n_cells, 3, 3) the mean of f fᵀ over each cell: LDRB at :data:`STRUCTURE_POINTS`, from the
    Laplace solutions interpolated there (P1, ``nodal_scalars`` on the cells' ``cell_nodes``) and
    the cells' constant gradients (``cell_data``, DG_0 dofs ``cell_dofs``)."""
    n_cells, n_points = cell_nodes.shape[0], STRUCTURE_POINTS.shape[0]
    data = {}
    for key, values in cell_data.items():
        if key.endswith("_gradient"):
            per_cell = np.asarray(values, dtype=float).reshape(-1, 3)[cell_dofs]
            data[key] = np.repeat(per_cell, n_points, axis=0).reshape(-1)
    for name, values in nodal_scalars.items():
        data[f"{name}_scalar"] = (np.asarray(values, dtype=float)[cell_nodes] @ STRUCTURE_POINTS.T).reshape(-1)
    fibre = _frames(data, angles)[0].reshape(n_cells, n_points, 3)
    norms = np.linalg.norm(fibre, axis=2, keepdims=True)
    if not np.all(norms > 1e-6):
        raise FibreError(f"{int((norms <= 1e-6).sum())} fibres inside cells vanish (parallel Laplace gradients)")
    fibre = fibre / norms
    return np.einsum("cqi,cqj->cij", fibre, fibre) / n_points


def myocardial_fibres(mesh_path: str | Path, angles: FibreAngles = FibreAngles()) -> MyocardialFibres:
    """LDRB fibres and ventricular coordinates of the myocardium of the mesh at ``mesh_path``
    (gmsh ``.msh`` in mm from :func:`ecgcohort.meshing.mesh_heart_in_torso`); angles in degrees.

    Meshes without an RV endocardium (LV only) are supported: ``ventricle`` is then 0 and
    ``rotational`` is measured from an arbitrary but fixed direction (the x axis projected).
    """
    from mpi4py import MPI  # noqa: F401  (libmpi before dolfinx)

    import dolfinx.fem

    ldrb_module = _import_ldrb()
    import ldrb.utils  # after _import_ldrb, which caches ldrb's numba functions

    from ecgcohort.meshing.tetra import FACET_TAGS, read_tagged_mesh

    start = time.perf_counter()
    mesh, facet_tags, parent_cells, node_map = _myocardium_mesh(read_tagged_mesh(mesh_path))
    present = set(np.unique(facet_tags.values).tolist())
    markers = {name: [FACET_TAGS[tag]] for name, tag in _LDRB_MARKERS.items() if FACET_TAGS[tag] in present}
    missing = {"epi", "lv", "base"} - set(markers)
    if missing:
        raise FibreError(f"the myocardium lacks the surfaces {sorted(_LDRB_MARKERS[m] for m in missing)}")
    has_rv = "rv" in markers

    scalars = ldrb_module.scalar_laplacians(mesh=mesh, markers=markers, ffun=facet_tags,
                                           petsc_options=_LAPLACE_SOLVER)
    cell_data, _ = ldrb_module.project_gradients(mesh=mesh, fiber_space="DG_0", scalar_solutions=scalars)
    node_data, _ = ldrb_module.project_gradients(mesh=mesh, fiber_space="P_1", scalar_solutions=scalars)
    node_data.update(_nodal_gradients(mesh, scalars["apex"].function_space, cell_data))
    fibre, sheet, normal = _frames(node_data, angles)
    fibre_cell, sheet_cell, normal_cell = _frames(cell_data, angles)
    fibre, sheet, normal = _orthonormalise(fibre, sheet, normal, "nodal")
    fibre_cell, sheet_cell, normal_cell = _orthonormalise(fibre_cell, sheet_cell, normal_cell, "cell")

    # P1 dofs as the nodes: dof <-> geometry node through the cell-local vertex order
    V = scalars["apex"].function_space
    n_dofs = V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts
    cell_dofs = np.asarray(V.dofmap.list)
    dof_to_node = np.empty(n_dofs, dtype=np.int64)
    dof_to_node[cell_dofs] = np.asarray(mesh.geometry.dofmaps[0])
    points = np.asarray(mesh.geometry.x[dof_to_node], dtype=float)

    def nodal(name: str) -> np.ndarray:
        function = dolfinx.fem.Function(V)
        function.interpolate(scalars[name])
        return np.asarray(function.x.array, dtype=float).copy()

    apicobasal, transmural, lv = nodal("apex"), nodal("epi"), nodal("lv")
    rv = nodal("rv") if has_rv else np.zeros_like(lv)
    dg_dofs = np.asarray(ldrb.utils.space_from_string("DG_0", mesh, dim=3).dofmap.list)[:, 0]
    scalar_names = [key.removesuffix("_scalar") for key in cell_data if key.endswith("_scalar")]
    if not np.array_equal(dg_dofs, np.arange(len(dg_dofs))):
        raise FibreError("dolfinx numbered the DG_0 dofs out of cell order: the per-cell fibres would be misplaced")
    structure = _cell_structure(cell_data, {name: nodal(name) for name in scalar_names}, cell_dofs,
                                dg_dofs, angles)
    ventricle = (rv > lv).astype(float)

    boundary_nodes = {}
    mesh.topology.create_connectivity(2, 0)
    for name, values in markers.items():
        facets = np.hstack([facet_tags.find(v) for v in values])
        boundary_nodes[name] = dolfinx.fem.locate_dofs_topological(V, 2, facets)
    apex_point = points[np.argmin(apicobasal)]
    lv_rim = np.intersect1d(boundary_nodes["lv"], boundary_nodes["base"])
    if lv_rim.size == 0:
        raise FibreError("the LV endocardium does not reach the base: no base centre")
    base_centre = points[lv_rim].mean(axis=0)
    if has_rv:
        rv_centre = points[boundary_nodes["rv"]].mean(axis=0)
    else:
        rv_centre = apex_point + np.array([1.0, 0.0, 0.0])
    rotational = rotational_coordinate(points, apex_point, base_centre, rv_centre)

    seconds = time.perf_counter() - start
    log.info("LDRB on %d nodes, %d tetrahedra in %.1f s", len(points), len(cell_dofs), seconds)
    return MyocardialFibres(
        points_mm=points, tetrahedra=cell_dofs.astype(np.int64),
        fibre=fibre, sheet=sheet, normal=normal,
        fibre_cell=fibre_cell, sheet_cell=sheet_cell, normal_cell=normal_cell,
        coordinates={"apicobasal": apicobasal, "transmural": transmural, "rotational": rotational,
                     "ventricle": ventricle},
        parent_nodes=node_map[dof_to_node].astype(np.int64), parent_cells=parent_cells.astype(np.int64),
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
        with atomic_path(path.with_suffix(".vtu")) as temporary:
            _write_vtu(fibres, temporary)
    return path


def _write_vtu(fibres: MyocardialFibres, path: Path) -> None:
    """The fibres as a binary, uncompressed ``.vtu`` for viewing (point and cell vectors,
    coordinates; ``fibre`` the active scalars), written with VTK's own classes: pyvista costs
    about 0.5 s to import in a job that draws nothing, and wrote the same bytes."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import VTK_TETRA, vtkCellArray, vtkUnstructuredGrid
    from vtkmodules.vtkIOXML import vtkXMLUnstructuredGridWriter

    def vtk_array(values: np.ndarray, name: str | None = None):
        array = numpy_to_vtk(np.ascontiguousarray(values), deep=True)
        if name is not None:
            array.SetName(name)
        return array

    grid = vtkUnstructuredGrid()
    points = vtkPoints()
    points.SetData(vtk_array(fibres.points_mm))
    grid.SetPoints(points)
    cells = vtkCellArray()
    cells.SetData(vtk_array(np.arange(0, 4 * fibres.n_cells + 1, 4, dtype=np.int64)),
                  vtk_array(np.asarray(fibres.tetrahedra, dtype=np.int64).ravel()))
    grid.SetCells(vtk_array(np.full(fibres.n_cells, VTK_TETRA, dtype=np.uint8)), cells)
    for name in ("fibre", "sheet", "normal"):
        grid.GetPointData().AddArray(vtk_array(getattr(fibres, name), name))
        grid.GetCellData().AddArray(vtk_array(getattr(fibres, f"{name}_cell"), name))
    for name, value in fibres.coordinates.items():
        grid.GetPointData().AddArray(vtk_array(value, name))
    grid.GetPointData().SetActiveScalars("fibre")
    grid.GetCellData().SetActiveScalars("fibre")
    writer = vtkXMLUnstructuredGridWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(grid)
    writer.SetDataModeToBinary()
    writer.SetCompressorTypeToNone()
    if writer.Write() != 1:
        raise OSError(f"VTK could not write {path}")


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
