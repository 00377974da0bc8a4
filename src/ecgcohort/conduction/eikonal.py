"""Anisotropic eikonal activation times on tetrahedral meshes.

Solves (Dokuchaev et al. 2026, eq. 10)

    sqrt(grad(tau) . D grad(tau)) = 1   in the myocardium,   tau = t_i at the sources,

with the per-element conduction tensor D = v_t^2 I + (v_f^2 - v_t^2) f f^T + (v_n^2 - v_t^2) n n^T
(fibre f, sheet normal n; orthotropic: v_f along the fibre, v_t across it in the sheet, v_n
across the sheets; without n, transversely isotropic), with the Fast Iterative Method's
local update: on the CPU its fixed point is found in Dijkstra's order by compiled code
(:mod:`ecgcohort.conduction.eikonal_compiled`); ``fim-python`` (import name ``fimpy``)
runs the Fast Iterative Method itself on a GPU and as the reference.  D is the metric *as
speed squared* (fimpy's convention): <grad(phi), D grad(phi)> = 1, edge lengths measured with
D^-1.  Units: positions mm, velocities m/s (= mm/ms), times ms.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ecgcohort.conduction.coupling import MeshSearch, couple_points
from ecgcohort.conduction.tensors import check_velocity, conduction_tensors
from ecgcohort.fem import refine_tetrahedra
from ecgcohort.structure_tensors import fibre_structure

log = logging.getLogger(__name__)

#: fimpy marks nodes it never reached with this value (``FIMBase.undef_val`` = 1e10).
_UNREACHED = 1e9
#: the compiled solver changes a node only by more than this (ms): far below the
#: discretisation error (0.5 ms) and an ECG sample (1 ms). On a converged sinus map (502k
#: nodes) 1e-4 against 1e-9 ms: the nodes re-taken from the heap 60 -> 24 %, the solve
#: 3.0 -> 2.6 s, the times later by 3e-5 ms on average and 7e-4 ms at most
_TOLERANCE_MS = 1e-4


def _fimpy() -> tuple[Any, bool]:
    """Import fimpy's solver module quietly (it prints a message when cupy is missing)."""
    with contextlib.redirect_stdout(io.StringIO()):
        from fimpy import solver
    return solver, bool(getattr(solver, "cupy_available", False))


def _cuda_device_count() -> int:
    """CUDA devices cupy sees (0 without cupy, a driver or a device)."""
    try:
        import cupy as cp

        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # no cupy, no driver, no device: all mean "no GPU here"
        return 0


def gpu_versions() -> str:
    """The versions that decide whether fim-python's cupy backend runs: cupy, fim-python and
    the CUDA runtime (``'absent'`` where one is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    def package(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    try:
        import cupy as cp

        cupy_version = cp.__version__
        runtime = cp.cuda.runtime.runtimeGetVersion()
        cuda = f"{runtime // 1000}.{runtime % 1000 // 10}"
    except Exception:
        cupy_version, cuda = "absent", "absent"
    return f"cupy {cupy_version}, fim-python {package('fim-python')}, CUDA runtime {cuda}"


@functools.lru_cache(maxsize=1)
def gpu_backend_status() -> tuple[bool, str]:
    """(usable, reason): whether fim-python's cupy backend solves correctly here.

    Importable cupy and a visible device are not enough (cupy 14 refuses the numpy-cupy
    comparisons of fim-python 1.2.2 when it is handed cupy arrays), so the backend must also
    reproduce the compiled solver on a small anisotropic mesh; the result is cached per
    process."""
    solver_module, has_cupy = _fimpy()
    if not has_cupy:
        return False, "fim-python cannot import cupy"
    if _cuda_device_count() < 1:
        return False, "cupy sees no CUDA device"
    points, tetrahedra = _self_test_mesh()
    tensors = conduction_tensors(np.tile([1.0, 0.5, 0.0], (len(tetrahedra), 1)), 0.6, 0.4)
    sources, times = np.array([0]), np.array([0.0])
    try:
        gpu = _fim_python_activation(points, tetrahedra, tensors, sources, times, "gpu", solver_module)
    except Exception as error:  # any failure of the third-party backend means "not usable"
        return False, f"fim-python's cupy backend failed its self-test: {type(error).__name__}: {error}"
    cpu = _solve_compiled(_compiled_geometry(points, tetrahedra, tensors), sources, times)
    deviation = float(np.max(np.abs(gpu - cpu)))
    if not deviation <= 1e-4 * float(cpu.max()):
        return False, f"fim-python's cupy backend differs from the compiled solver by {deviation:.3g} ms"
    return True, "fim-python's cupy backend passed its self-test"


def gpu_available() -> bool:
    """True when fim-python's cupy backend runs here and passes its self-test."""
    return gpu_backend_status()[0]


def _self_test_mesh(n: int = 4, spacing_mm: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """A cube of n³ cells, each split into six tetrahedra (points mm, tetrahedra)."""
    axis = np.arange(n + 1) * spacing_mm
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)

    def node(i: int, j: int, k: int) -> int:
        return (i * (n + 1) + j) * (n + 1) + k

    tetrahedra = []
    for i, j, k in np.ndindex(n, n, n):
        c = [node(i + a, j + b, k + d) for a in (0, 1) for b in (0, 1) for d in (0, 1)]
        for first, second in ((1, 2), (1, 4), (2, 1), (2, 4), (4, 1), (4, 2)):  # Kuhn's six paths to c[7]
            tetrahedra.append([c[0], c[first], c[first | second], c[7]])
    return points, np.asarray(tetrahedra, dtype=np.int64)


def _resolve_device(device: str) -> str:
    """Map the ``electrophysiology.device`` setting to the solver that runs: 'cpu' is the
    compiled solver; 'gpu' is fim-python's cupy backend, refused with the reason and the
    versions where it cannot run; 'auto' takes the GPU only when the backend passes its
    self-test, and otherwise the CPU, logging why."""
    if device == "cpu":
        return "cpu"
    if device not in ("auto", "gpu"):
        raise ValueError(f"electrophysiology.device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    usable, reason = gpu_backend_status()
    if usable:
        return "gpu"
    if device == "gpu":
        raise ValueError(f"electrophysiology.device: gpu cannot run here: {reason} ({gpu_versions()}); "
                         "use device: cpu (the compiled solver)")
    log.info("electrophysiology.device: auto -> the compiled CPU solver (%s; %s)", reason, gpu_versions())
    return "cpu"


def activation_times(
    points_mm: np.ndarray,
    tetrahedra: np.ndarray,
    fibres: np.ndarray | None,
    v_fibre: float,
    v_cross: float,
    source_nodes: np.ndarray,
    source_times_ms: np.ndarray,
    device: str = "auto",
    method: str = "compiled",
    normals: np.ndarray | None = None,
    v_normal: float | None = None,
) -> np.ndarray:
    """Activation time (ms) of every node; fibres per tetrahedron, vectors or structure tensors
    (None = isotropic at v_fibre), and optionally the sheet normals per tetrahedron with the
    velocity across the sheets ``v_normal`` (orthotropic; see :func:`conduction_tensors`).

    ``points_mm`` (n, 3) mm; ``tetrahedra`` (m, 4) node indices; velocities m/s = mm/ms;
    ``source_nodes`` (k,) node indices stimulated at ``source_times_ms`` (k,) ms (a scalar
    time is broadcast).  Every node must belong to a tetrahedron and be reachable from a
    source.  On the CPU (``device`` 'cpu', or 'auto' without a GPU) the compiled solver of
    :mod:`ecgcohort.conduction.eikonal_compiled` solves in float64;
    ``method='fim-python'`` uses fim-python's numpy backend instead (float32, 10-25x slower).
    With 'gpu' fim-python's cupy backend solves (refused with the versions where it cannot);
    'auto' takes it only when it passes its self-test (:func:`gpu_backend_status`).
    """
    pts = np.asarray(points_mm, dtype=np.float64)
    tets = np.asarray(tetrahedra)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] == 0:
        raise ValueError(f"points_mm must have shape (n_points, 3), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points_mm contains non-finite coordinates")
    if tets.ndim != 2 or tets.shape[1] != 4 or tets.shape[0] == 0 or not np.issubdtype(tets.dtype, np.integer):
        raise ValueError(f"tetrahedra must be an integer array of shape (n_cells, 4), got {tets.dtype} {tets.shape}")
    n = pts.shape[0]
    if tets.min() < 0 or tets.max() >= n:
        raise ValueError(f"tetrahedra reference nodes outside [0, {n})")
    used = np.zeros(n, dtype=bool)
    used[tets.ravel()] = True
    if not used.all():
        raise ValueError(f"{int((~used).sum())} of {n} nodes belong to no tetrahedron and cannot be reached")

    vf = float(check_velocity("v_fibre", v_fibre))
    vt = float(check_velocity("v_cross", v_cross))
    if fibres is None:
        d = np.broadcast_to(vf**2 * np.eye(3), (tets.shape[0], 3, 3)).copy()
    else:
        fib = np.asarray(fibres, dtype=np.float64)
        if fib.shape[0] != tets.shape[0]:
            raise ValueError(f"fibres must be given per tetrahedron ({tets.shape[0]}), got {fib.shape}")
        d = conduction_tensors(fib, vf, vt, normals, v_normal)

    uniq, t_uniq = _unique_sources(source_nodes, source_times_ms, n)
    if method not in ("compiled", "fim-python"):
        raise ValueError(f"method must be 'compiled' or 'fim-python', got {method!r}")
    dev = _resolve_device(device)
    if dev == "cpu" and method == "compiled":
        phi = _solve_compiled(_compiled_geometry(pts, tets, d), uniq, t_uniq)
    elif dev == "gpu":
        try:
            phi = _fim_python_activation(pts, tets, d, uniq, t_uniq, dev)
        except Exception as error:  # the backend passed its self-test but failed on this mesh
            raise RuntimeError(f"fim-python's cupy backend failed ({gpu_versions()}): {type(error).__name__}: "
                               f"{error}; set electrophysiology.device: cpu") from error
    else:
        phi = _fim_python_activation(pts, tets, d, uniq, t_uniq, dev)
    return _all_reached(phi)


def _unique_sources(source_nodes: np.ndarray, source_times_ms: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The checked source nodes, each once, at its earliest time (ms)."""
    src = np.atleast_1d(np.asarray(source_nodes))
    t0 = np.broadcast_to(np.asarray(source_times_ms, dtype=np.float64), src.shape).copy()
    if src.size == 0:
        raise ValueError("at least one source node is required")
    if not np.issubdtype(src.dtype, np.integer):
        raise ValueError(f"source_nodes must be integer node indices, got dtype {src.dtype}")
    if src.min() < 0 or src.max() >= n:
        raise ValueError(f"source node index out of range [0, {n}): {src[(src < 0) | (src >= n)].tolist()}")
    if not np.all(np.isfinite(t0)):
        raise ValueError("source_times_ms must be finite")
    # A node given twice fires at its earliest time (fimpy would keep the last one given).
    uniq, inv = np.unique(src, return_inverse=True)
    t_uniq = np.full(uniq.shape, np.inf)
    np.minimum.at(t_uniq, inv, t0)
    return uniq, t_uniq


def _all_reached(phi: np.ndarray) -> np.ndarray:
    unreached = ~np.isfinite(phi) | (phi >= _UNREACHED)
    if np.any(unreached):
        raise ValueError(
            f"{int(unreached.sum())} of {phi.shape[0]} nodes were not reached by the activation "
            "(mesh not connected to any source?)"
        )
    return phi


@dataclass(frozen=True)
class _CompiledTopology:
    """What the compiled solver needs of a mesh whatever its conduction tensors. Nodes and cells
    are renumbered along a Morton (Z-order) curve of the node positions: the solver works along
    the front, so neighbours in space become neighbours in memory (a refined grid otherwise
    scatters a parent's children across the arrays; 4.7 -> 4.1 s per map on a 3.0M-cell grid).
    ``order[i]`` is the original node at position i, ``cell_order[k]`` the original cell at k;
    ``points`` are in the new order. With ``single_precision`` the forms are stored in float32
    and the numbering in int32."""

    order: np.ndarray
    position: np.ndarray
    points: np.ndarray
    tetrahedra: np.ndarray
    cell_order: np.ndarray
    offsets: np.ndarray
    cells: np.ndarray
    locals_: np.ndarray
    single_precision: bool


@dataclass(frozen=True)
class _CompiledGeometry:
    """The solver's geometry: a mesh's :class:`_CompiledTopology` and the local-update forms of
    its conduction tensors."""

    order: np.ndarray
    position: np.ndarray
    tetrahedra: np.ndarray
    forms: np.ndarray
    offsets: np.ndarray
    cells: np.ndarray
    locals_: np.ndarray


def morton_order(points_mm: np.ndarray, bits: int = 10) -> np.ndarray:
    """The permutation (n,) that sorts ``points_mm`` (n, 3) along a Morton curve of
    ``bits`` levels per axis over their bounding cube."""
    low = points_mm.min(axis=0)
    span = max(float((points_mm.max(axis=0) - low).max()), 1e-300)
    cells = ((points_mm - low) / span * (2**bits - 1)).astype(np.uint64)
    code = np.zeros(points_mm.shape[0], dtype=np.uint64)
    for bit in range(bits):
        for axis in range(3):
            code |= ((cells[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def _compiled_topology(pts: np.ndarray, tets: np.ndarray, single_precision: bool = True) -> _CompiledTopology:
    """The :class:`_CompiledTopology` of a mesh; single precision where the numbering fits int32."""
    from ecgcohort.conduction import eikonal_compiled

    order = morton_order(pts)
    position = np.empty_like(order)
    position[order] = np.arange(order.shape[0])
    renumbered = position[tets]
    cell_order = eikonal_compiled.cells_by_lowest_node(renumbered, order.shape[0])
    renumbered = np.ascontiguousarray(renumbered[cell_order])
    # single precision: a tetrahedron's forms in one 64-byte cache line and half the index
    # memory: the solve is bound by memory (0.77 of the time on a 2.6M-cell grid); the geometry
    # is rounded by 6e-8 relative, the maps move by 3e-5 ms at most against a first-order error
    # of 0.5 ms (benchmarks/eikonal_precision.py)
    single_precision = single_precision and renumbered.shape[0] * 4 < np.iinfo(np.int32).max
    offsets, cells, locals_ = eikonal_compiled.node_cells(order.shape[0], renumbered)
    if single_precision:
        renumbered, offsets, cells = renumbered.astype(np.int32), offsets.astype(np.int32), cells.astype(np.int32)
    return _CompiledTopology(order, position, np.ascontiguousarray(pts[order]), renumbered, cell_order, offsets,
                             cells, locals_, single_precision)


def _compiled_geometry(pts: np.ndarray, tets: np.ndarray, tensors: np.ndarray,
                       tensor_of_cell: np.ndarray | None = None, single_precision: bool = True,
                       topology: _CompiledTopology | None = None) -> _CompiledGeometry:
    """The solver's geometry of a mesh whose tetrahedron ``c`` has the conduction tensor
    ``tensors[tensor_of_cell[c]]`` (default: ``tensors[c]``); each tensor is inverted once.
    ``topology``: the mesh's :func:`_compiled_topology` where it is already built (maps at other
    velocities on the same mesh), else built here with ``single_precision``."""
    from ecgcohort.conduction import eikonal_compiled

    if topology is None:
        topology = _compiled_topology(pts, tets, single_precision)
    cell_order = topology.cell_order
    index = cell_order if tensor_of_cell is None else np.asarray(tensor_of_cell, dtype=np.int64)[cell_order]
    inverses = eikonal_compiled.symmetric_inverses(np.ascontiguousarray(tensors, dtype=np.float64))
    forms = eikonal_compiled.shared_cell_forms(topology.points, topology.tetrahedra, inverses, index,
                                               single_precision=topology.single_precision)
    return _CompiledGeometry(topology.order, topology.position, topology.tetrahedra, forms, topology.offsets,
                             topology.cells, topology.locals_)


@dataclass(frozen=True)
class TreeCoupling:
    """Purkinje trees conducting retrogradely, solved in the same heap as the myocardium
    (:func:`ecgcohort.conduction.eikonal_compiled.coupled_label_correcting`). Tree nodes: the
    CSR ``tree_offsets`` / ``tree_neighbours`` with edge travel times ``tree_edge_ms`` (ms).
    Junction ``j`` is entered at the interpolation of the grid times at its position
    (``junction_nodes`` (J, 4) grid nodes, ``junction_weights`` (J, 4) barycentric) into tree
    node ``junction_tree_node[j]``, and fires, when that tree node is reached, the grid nodes
    ``ball_nodes[ball_offsets[j]:ball_offsets[j + 1]]`` at the tree node's time plus
    ``ball_ms`` (the travel time from the junction within each node's cell)."""

    tree_offsets: np.ndarray
    tree_neighbours: np.ndarray
    tree_edge_ms: np.ndarray
    junction_nodes: np.ndarray
    junction_weights: np.ndarray
    junction_tree_node: np.ndarray
    ball_offsets: np.ndarray
    ball_nodes: np.ndarray
    ball_ms: np.ndarray

    @property
    def n_tree_nodes(self) -> int:
        return int(len(self.tree_offsets) - 1)

    def compiled_arguments(self, position: np.ndarray, n_grid: int) -> tuple:
        """The solver's tree arguments with grid nodes renumbered by ``position`` (original
        node -> solver position): the tree times (inf), the tree CSR, each grid node's
        junctions, the junctions, each tree node's junctions and the balls."""
        nodes = np.asarray(position)[self.junction_nodes]
        weighted = self.junction_weights > 0
        entry_nodes = nodes[weighted]
        entry_junctions = np.nonzero(weighted)[0]
        order = np.argsort(entry_nodes, kind="stable")
        entry_offsets = np.searchsorted(entry_nodes[order], np.arange(n_grid + 1)).astype(np.int64)
        by_tree_node = np.argsort(self.junction_tree_node, kind="stable")
        fire_offsets = np.searchsorted(self.junction_tree_node[by_tree_node],
                                       np.arange(self.n_tree_nodes + 1)).astype(np.int64)
        return (np.full(self.n_tree_nodes, np.inf), self.tree_offsets.astype(np.int64),
                self.tree_neighbours.astype(np.int64), self.tree_edge_ms.astype(np.float64), entry_offsets,
                entry_junctions[order].astype(np.int64), nodes.astype(np.int64),
                self.junction_weights.astype(np.float64), self.junction_tree_node.astype(np.int64), fire_offsets,
                by_tree_node.astype(np.int64), self.ball_offsets.astype(np.int64),
                np.asarray(position)[self.ball_nodes].astype(np.int64), self.ball_ms.astype(np.float64))


def _solve_compiled(geometry: _CompiledGeometry, sources: np.ndarray, times: np.ndarray,
                    trees: TreeCoupling | None = None) -> np.ndarray:
    """Activation times (ms, inf where unreached) by the compiled solver, in float64; with
    ``trees``, the Purkinje trees conduct retrogradely in the same solve."""
    from ecgcohort.conduction import eikonal_compiled

    n = geometry.order.shape[0]
    phi = np.full(n, np.inf)
    arguments = (phi, geometry.tetrahedra, geometry.forms, geometry.offsets, geometry.cells, geometry.locals_,
                 geometry.position[sources].astype(np.int64), times.astype(np.float64), _TOLERANCE_MS)
    if trees is None:
        eikonal_compiled.ordered_label_correcting(*arguments)
    else:
        eikonal_compiled.coupled_label_correcting(*arguments, *trees.compiled_arguments(geometry.position, n))
    return phi[geometry.position]


def _fim_python_activation(pts: np.ndarray, tets: np.ndarray, tensors: np.ndarray, sources: np.ndarray,
                           times: np.ndarray, device: str, solver_module: Any = None) -> np.ndarray:
    """Activation times (ms) by fim-python (numpy or cupy backend), in float32."""
    # Conditioning: fimpy asserts eigenvalues of D > 1e-4 and stops on absolute changes
    # < 1e-9, so solve the scaled problem D' = D / v_max² (tau' = v_max * tau, in mm) on
    # centred coordinates, then scale back.  Time shift: sources relative to the earliest.
    v_max = float(np.sqrt(np.linalg.eigvalsh(tensors).max()))
    d_scaled = tensors / v_max**2
    t_ref = float(times.min())
    x0_vals = (times - t_ref) * v_max
    pts_c = pts - pts.mean(axis=0)
    solver_module = solver_module or _fimpy()[0]
    # Both backends are built from numpy arrays: fim-python's base class checks and maps the
    # mesh with numpy (and compiled helpers) before its cupy solver copies it to the device.
    fim = solver_module.create_fim_solver(pts_c, tets.astype(np.int32), d_scaled, precision=np.float32,
                                          device=device)
    if device == "gpu":
        import cupy as cp

        phi = cp.asnumpy(fim.comp_fim(cp.asarray(sources.astype(np.int32)), cp.asarray(x0_vals)))
    else:
        phi = np.asarray(fim.comp_fim(sources.astype(np.int32), x0_vals))
    phi = np.asarray(phi, dtype=np.float64)
    phi[phi >= _UNREACHED] = np.inf
    return phi / v_max + t_ref


def nearest_nodes(points_mm: np.ndarray, targets_mm: np.ndarray) -> np.ndarray:
    """Index of the mesh node nearest (Euclidean, mm) to each target point; shape (k,)."""
    pts = np.asarray(points_mm, dtype=np.float64)
    tg = np.atleast_2d(np.asarray(targets_mm, dtype=np.float64))
    if pts.ndim != 2 or pts.shape[0] == 0 or tg.ndim != 2 or tg.shape[1] != pts.shape[1]:
        raise ValueError(f"points {pts.shape} and targets {tg.shape} must be (n, d) and (k, d)")
    _, idx = cKDTree(pts).query(tg)
    return np.asarray(idx, dtype=np.int64)


@dataclass(frozen=True)
class EikonalGrid:
    """The mesh the eikonal equation is solved on: the myocardium itself or its uniform
    refinement (:func:`ecgcohort.fem.refine_tetrahedra`, ``refinements`` times), each child cell
    keeping its mesh cell's (``parent``) fibre structure — the same conduction tensor field on a
    finer grid. The mesh's own ``mesh_nodes`` nodes come first, so their times are
    ``tau[:mesh_nodes]``. Refining halves the first-order eikonal error around the point-like
    Purkinje junctions (docs/results/verification.md); so does starting each point source from
    its ball of ``source_radius_edges`` edge lengths
    (:func:`ecgcohort.conduction.coupling.couple_points`). ``mesh_structure`` (n_mesh_cells, 3,
    3) is each mesh cell's fibre structure, ``mesh_normal_structure`` its sheet normals' n nᵀ
    (orthotropic conduction; None: transversely isotropic); :attr:`structure` and
    :attr:`normal_structure` give them per grid cell. ``mesh_velocity_scale`` (n_mesh_cells, 3)
    multiplies the velocities along the fibres, across them and across the sheets per mesh cell
    (a fast subendocardial layer, :class:`ecgcohort.conduction.tensors.SubendocardialLayer`;
    None: 1 everywhere)."""

    points_mm: np.ndarray
    tetrahedra: np.ndarray
    mesh_structure: np.ndarray
    parent: np.ndarray
    mesh_nodes: int
    refinements: int = 0
    source_radius_edges: float = 0.0
    mesh_normal_structure: np.ndarray | None = None
    #: None: refined uniformly ``refinements`` times; else the metric length (ms) above which
    #: the mesh's edges were bisected (:meth:`metric_refined`)
    refine_above_ms: float | None = None
    mesh_velocity_scale: np.ndarray | None = None
    # the compiled solver's geometry for the last velocity pair: a patient's maps share it; its
    # topology (numbering, node-cell lists) serves every velocity pair
    _prepared: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _topology: list = field(default_factory=list, init=False, repr=False, compare=False)
    _search: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    # maps of one patient may be solved on several threads (compute_activations): one lock for
    # the solver's geometry, one for the search structures, so that both can be built at once
    _locks: dict = field(default_factory=lambda: {"solver": threading.Lock(), "search": threading.Lock()},
                         init=False, repr=False, compare=False)

    @classmethod
    def refined(cls, points_mm: np.ndarray, tetrahedra: np.ndarray, fibres: np.ndarray,
                refinements: int, source_radius_edges: float = 0.0,
                normals: np.ndarray | None = None, velocity_scale: np.ndarray | None = None) -> EikonalGrid:
        """The grid of a mesh (``points_mm`` (n, 3), ``tetrahedra`` (m, 4)) with fibres per cell
        (vectors or structure tensors), optionally sheet normals and factors (> 0) on the
        velocities along the fibres, across them and across the sheets per cell (m, 3), refined
        ``refinements`` (≥ 0) times; point sources on it start from
        their balls of ``source_radius_edges`` (≥ 0) edge lengths."""
        if not np.isfinite(source_radius_edges) or source_radius_edges < 0:
            raise ValueError(f"the source radius must be >= 0 edge lengths, got {source_radius_edges!r}")
        if int(refinements) != refinements or refinements < 0:
            raise ValueError(f"eikonal refinements must be a non-negative integer, got {refinements!r}")
        points = np.asarray(points_mm, dtype=np.float64)
        tets = np.asarray(tetrahedra, dtype=np.int64)
        structure = fibre_structure(fibres)
        normal = None if normals is None else fibre_structure(normals)
        for name, tensors in (("fibres", structure), ("sheet normals", normal)):
            if tensors is not None and tensors.shape[0] != tets.shape[0]:
                raise ValueError(f"{name} must be given per tetrahedron ({tets.shape[0]}), got {tensors.shape[0]}")
        scale = None if velocity_scale is None else check_velocity("velocity scale", velocity_scale)
        if scale is not None and scale.shape != (tets.shape[0], 3):
            raise ValueError(f"the velocity scale must be given per tetrahedron and direction ({tets.shape[0]}, 3), "
                             f"got shape {scale.shape}")
        parent = np.arange(tets.shape[0])
        for _ in range(int(refinements)):
            points, tets, children = refine_tetrahedra(points, tets)
            parent = parent[children]
        return cls(points, tets, structure, parent, int(np.asarray(points_mm).shape[0]), int(refinements),
                   float(source_radius_edges), normal, mesh_velocity_scale=scale)

    @classmethod
    def metric_refined(cls, points_mm: np.ndarray, tetrahedra: np.ndarray, fibres: np.ndarray,
                       velocities: tuple[float, float, float | None], refine_above_ms: float,
                       source_radius_edges: float = 0.0, normals: np.ndarray | None = None,
                       passes: int = 1) -> EikonalGrid:
        """The grid of a mesh (as :meth:`refined`) whose edges longer than ``refine_above_ms``
        (≥ 0) in the conduction metric are bisected
        (:mod:`ecgcohort.conduction.selective_refinement`): an edge's length is the time (ms) a
        straight front takes along it, the largest over the cells around it, at ``velocities``
        (fibre, cross, sheet normal or None; m/s). 0 splits every edge, a threshold above every
        edge leaves the mesh as it is. With ``passes`` > 1 the grid's own edges are measured and
        bisected again, up to that many times or until none is longer. The mesh's nodes come
        first; children keep their cell's tensors."""
        from ecgcohort.conduction import selective_refinement

        if not np.isfinite(refine_above_ms) or refine_above_ms < 0:
            raise ValueError(f"the metric refinement threshold must be >= 0 ms, got {refine_above_ms!r}")
        if int(passes) != passes or passes < 1:
            raise ValueError(f"metric refinement passes must be a positive integer, got {passes!r}")
        mesh = cls.refined(points_mm, tetrahedra, fibres, 0, source_radius_edges, normals)
        tensors = conduction_tensors(mesh.mesh_structure, *velocities[:2], mesh.mesh_normal_structure, velocities[2])
        points, tets, parent = mesh.points_mm, mesh.tetrahedra, mesh.parent
        for _ in range(int(passes)):
            edges, edge_of_cell, lengths = selective_refinement.edge_metric_lengths(points, tets, tensors, parent)
            marked = lengths > refine_above_ms
            if not marked.any():
                break
            points, tets, children = selective_refinement.bisect_marked_edges(
                points, tets, edges, edge_of_cell, marked, selective_refinement.metric_priority(edges, lengths))
            parent = parent[children]
        return cls(points, tets, mesh.mesh_structure, parent, mesh.mesh_nodes, 0, mesh.source_radius_edges,
                   mesh.mesh_normal_structure, refine_above_ms=float(refine_above_ms))

    @property
    def structure(self) -> np.ndarray:
        """(n_cells, 3, 3) each grid cell's fibre structure (its mesh cell's)."""
        return self.mesh_structure[self.parent]

    @property
    def normal_structure(self) -> np.ndarray | None:
        """(n_cells, 3, 3) each grid cell's sheet-normal structure n nᵀ, or None."""
        return None if self.mesh_normal_structure is None else self.mesh_normal_structure[self.parent]

    def activation_times(self, v_fibre: float, v_cross: float, source_nodes: np.ndarray,
                         source_times_ms: np.ndarray, device: str = "auto",
                         v_normal: float | None = None, trees: TreeCoupling | None = None) -> np.ndarray:
        """:func:`activation_times` on this grid (times in ms of every grid node; ``v_normal``
        across the sheets where the grid has sheet normals, None: as ``v_cross``). On the CPU
        the compiled solver's geometry (conduction tensors, their inverses, the local-update
        forms, the node ordering) is prepared once per velocity pair and reused by every later
        map: the same numbers, computed once. ``trees``: Purkinje trees conducting
        retrogradely in the same solve (the compiled CPU solver only)."""
        if _resolve_device(device) != "cpu":
            if trees is not None:
                raise ValueError("Purkinje trees in the solve need the compiled CPU solver (device cpu)")
            if self.mesh_velocity_scale is not None:
                raise ValueError("a fast subendocardial layer (electrophysiology.subendocardial_layer) is solved on "
                                 "the CPU only: set electrophysiology.device: cpu")
            return activation_times(self.points_mm, self.tetrahedra, self.structure, v_fibre, v_cross, source_nodes,
                                    source_times_ms, device=device, normals=self.normal_structure,
                                    v_normal=v_normal)
        geometry = self._compiled(v_fibre, v_cross, v_normal)
        sources, times = _unique_sources(source_nodes, source_times_ms, self.points_mm.shape[0])
        return _all_reached(_solve_compiled(geometry, sources, times, trees))

    @staticmethod
    def solver(device: str) -> str:
        """The solver that runs for ``device``: 'cpu' (the compiled solver) or 'gpu' (fim-python)."""
        return _resolve_device(device)

    def _compiled(self, v_fibre: float, v_cross: float, v_normal: float | None) -> _CompiledGeometry:
        """The compiled solver's geometry for these velocities (m/s), built on first use."""
        key = (float(check_velocity("v_fibre", v_fibre)), float(check_velocity("v_cross", v_cross)),
               None if v_normal is None else float(check_velocity("v_normal", v_normal)))
        with self._locks["solver"]:
            if key not in self._prepared:
                self._prepared.clear()
                v_fibre_cells, v_cross_cells, v_normal_cells = self._velocities(*key)
                if not self._topology:
                    self._topology.append(_compiled_topology(self.points_mm, self.tetrahedra))
                self._prepared[key] = _compiled_geometry(
                    self.points_mm, self.tetrahedra,
                    conduction_tensors(self.mesh_structure, v_fibre_cells, v_cross_cells, self.mesh_normal_structure,
                                       v_normal_cells), self.parent, topology=self._topology[0])
            return self._prepared[key]

    def prepare(self, v_fibre: float, v_cross: float, v_normal: float | None = None, device: str = "auto",
                threads: int = 1) -> str:
        """Build what every map on this grid shares before maps are solved on several threads:
        the search structures the point sources are coupled with and, where the
        compiled CPU solver runs, its geometry for these velocities (m/s); with ``threads`` > 1
        the two at once (both release the GIL for most of their time). Idempotent. Returns the
        solver that runs for ``device``: 'cpu' (the compiled solver) or 'gpu'."""
        solver = _resolve_device(device)
        if solver != "cpu":
            self._search_structures()
        elif threads < 2:
            self._search_structures()
            self._compiled(v_fibre, v_cross, v_normal)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1, thread_name_prefix="eikonal-grid") as pool:
                geometry = pool.submit(self._compiled, v_fibre, v_cross, v_normal)
                self._search_structures()
                geometry.result()
        return solver

    def conduction_tensors(self, v_fibre: float, v_cross: float, v_normal: float | None = None) -> np.ndarray:
        """(n_cells, 3, 3) conduction tensors of this grid's cells, (mm/ms)² (:func:`conduction_tensors`)."""
        velocities = self._velocities(v_fibre, v_cross, v_normal)
        return conduction_tensors(self.mesh_structure, *velocities[:2], self.mesh_normal_structure,
                                  velocities[2])[self.parent]

    def _velocities(self, v_fibre: float, v_cross: float, v_normal: float | None, cells=slice(None)) -> tuple:
        """(along the fibres, across them, across the sheets or None) in m/s for the mesh
        ``cells``: the velocities times each cell's factors, if any."""
        if self.mesh_velocity_scale is None:
            return v_fibre, v_cross, v_normal
        scale = self.mesh_velocity_scale[cells]
        return (v_fibre * scale[..., 0], v_cross * scale[..., 1],
                None if v_normal is None else v_normal * scale[..., 2])

    def stimulus_times(self, coupled, source_times_ms: np.ndarray, v_fibre: float, v_cross: float,
                       v_normal: float | None = None) -> np.ndarray:
        """The times (ms) of the nodes of point stimuli ``coupled`` to this grid
        (:meth:`ecgcohort.conduction.coupling.CoupledSources.node_times`, velocities m/s), from
        the tensors of the mesh cells holding them."""
        on_mesh = dataclasses.replace(coupled, cells=self.parent[coupled.cells])
        v_fibre_cells, v_cross_cells, v_normal_cells = self._velocities(v_fibre, v_cross, v_normal, on_mesh.cells)
        return on_mesh.node_times(source_times_ms, self.mesh_structure, v_fibre_cells, v_cross_cells,
                                  self.mesh_normal_structure, v_normal_cells)

    def couple(self, positions_mm: np.ndarray):
        """Point stimuli at ``positions_mm`` (k, 3) coupled to this grid, each with its ball
        (:func:`ecgcohort.conduction.coupling.couple_points`); the grid's search structures are
        built once (4 s per map on a 3.0M-cell grid otherwise)."""
        return couple_points(self.points_mm, self.tetrahedra, positions_mm, radius_edges=self.source_radius_edges,
                             trees=self._search_structures())

    def _search_structures(self) -> MeshSearch:
        """The grid's :class:`MeshSearch`, built on first use."""
        with self._locks["search"]:
            if "trees" not in self._search:
                self._search["trees"] = MeshSearch.of(self.points_mm, self.tetrahedra)
            return self._search["trees"]

    def restrict(self, tau_ms: np.ndarray) -> np.ndarray:
        """Times on the grid (n_grid,) -> times on the mesh's nodes (mesh_nodes,)."""
        return np.asarray(tau_ms)[: self.mesh_nodes]
