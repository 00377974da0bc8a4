"""A conforming tetrahedral mesh of the torso with the myocardium as a tagged subdomain, and
the blood pools as another when their caps are given.

The input surfaces are used as the mesh's boundary triangles (they are produced at the target
sizes upstream); gmsh fills the myocardium, the blood pools (the cavities closed by flat caps
across the valve openings, :func:`ecgcohort.meshing.surfaces.cavity_caps`) and the rest of the
torso with tetrahedra. Without caps the cavities are part of the torso. Lengths in mm.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import gmsh
import numpy as np

from ecgcohort.geometry import surface_volume
from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)

VOLUME_TAGS: dict[str, int] = {"myocardium": 1, "torso": 2, "blood": 3}
FACET_TAGS: dict[str, int] = {"body_surface": 1, "epicardium": 2, "lv_endocardium": 3,
                              "rv_endocardium": 4, "base": 5, "lv_cap": 6, "rv_cap": 7}

#: gmsh's 3D algorithms by the names ``meshing.algorithm_3d`` takes
ALGORITHMS_3D: dict[str, int] = {"delaunay": 1, "hxt": 10}


class MeshingError(RuntimeError):
    """gmsh could not mesh the anatomy, or the mesh fails its quality or volume checks."""


@dataclass(frozen=True)
class MeshReport:
    """Size and quality of a tetrahedral mesh (volumes in mm^3, angles in degrees)."""

    nodes: int
    tetrahedra: int
    tetrahedra_per_region: dict[str, int]
    volume_per_region_mm3: dict[str, float]
    min_dihedral_deg: float
    sliver_fraction: float
    sliver_threshold_deg: float
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def tetrahedron_quality(points: np.ndarray, tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(volume mm^3, minimum dihedral angle in degrees) of every tetrahedron."""
    p = [points[tets[:, k]] for k in range(4)]
    e1, e2, e3 = (p[k] - p[0] for k in (1, 2, 3))
    volume = np.abs(np.einsum("ij,ij->i", e1, _cross(e2, e3))) / 6
    # the four face normals, each pointing away from the opposite vertex when the corners are
    # positively oriented and towards it when they are not: either way the dihedral angle at the
    # edge two faces share is pi minus the angle between their normals, so the smallest dihedral
    # angle belongs to the pair whose unit normals have the smallest dot product (one arccos a
    # tetrahedron, not six)
    normals = (_cross(p[2] - p[1], p[3] - p[1]), _cross(e3, e2), _cross(e1, e3), _cross(e2, e1))
    normals = [n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300) for n in normals]
    smallest = np.full(len(tets), np.inf)
    for i in range(4):
        for j in range(i + 1, 4):
            np.minimum(smallest, np.einsum("ij,ij->i", normals[i], normals[j]), out=smallest)
    return volume, 180.0 - np.degrees(np.arccos(np.clip(smallest, -1, 1)))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross products of (n, 3) arrays with ``np.cross``'s arithmetic (each component
    a_i b_j - a_j b_i, the products rounded first), without its axis juggling and temporaries:
    the same bits in two thirds of the time (the quality check of a 600k-cell mesh 0.5 -> 0.3 s)."""
    out = np.empty_like(a)
    for axis, (i, j) in enumerate(((1, 2), (2, 0), (0, 1))):
        np.multiply(a[:, i], b[:, j], out=out[:, axis])
        out[:, axis] -= a[:, j] * b[:, i]
    return out


def morton_order(points: np.ndarray, bits: int = 21) -> np.ndarray:
    """Indices that sort points (n, 3) along a Morton (Z-order) curve over their bounding cube
    cut into 2^bits cells per axis - neighbours in space stay close in the order - with ties
    broken by the coordinates: a function of the positions alone, not of their input order."""
    points = np.asarray(points, dtype=np.float64)
    low = points.min(axis=0)
    span = max(float(np.ptp(points, axis=0).max()), 1e-300)
    cells = np.minimum((points - low) / span * (1 << bits), (1 << bits) - 1).astype(np.uint64)
    code = np.zeros(len(points), dtype=np.uint64)
    for axis in range(3):
        code |= _spread_bits(cells[:, axis], bits) << np.uint64(axis)
    if len(np.unique(code)) == len(code):  # no ties to break: the coordinates would not change the order
        return np.argsort(code, kind="stable")
    return np.lexsort((points[:, 2], points[:, 1], points[:, 0], code))


def _spread_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """``values`` (uint64 below 2^bits, bits <= 21) with their bit k moved to bit 3k."""
    if bits > 21:
        raise ValueError(f"a Morton code of three axes holds at most 21 bits per axis, not {bits}")
    spread = values & np.uint64((1 << bits) - 1)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):
        spread = (spread | (spread << np.uint64(shift))) & np.uint64(mask)
    return spread


NODE_GRID_MM = 2.0 ** -26


def _snap_nodes() -> None:
    """Round every node of the generated mesh to a grid of :data:`NODE_GRID_MM` (15 pm).
    gmsh places a few nodes one bit apart from one run to the next on the same input (9 of
    8 524 nodes, 6e-14 mm, in one run of ten), and every array computed on the mesh, the
    lead fields and ECGs included, changed in its last bits with them; a difference that small
    crosses a grid line with a probability of about 4e-6 per coordinate."""
    import ctypes

    node_tags, coordinates, _ = gmsh.model.mesh.getNodes()
    snapped = np.ascontiguousarray(np.round(np.asarray(coordinates, dtype=np.float64) / NODE_GRID_MM) * NODE_GRID_MM)
    # gmsh has no bulk setter; its Python setNode converts every 3-vector through numpy (7 us a
    # node, 0.7 s for a 1.2 mm patient), so the same C function is called on views of one array
    set_node = gmsh.lib.gmshModelMeshSetNode
    error = ctypes.c_int()
    three, none = ctypes.c_size_t(3), ctypes.c_size_t(0)
    first, stride = snapped.ctypes.data, 3 * snapped.itemsize
    for index, tag in enumerate(node_tags.tolist()):
        set_node(ctypes.c_size_t(tag), ctypes.c_void_p(first + stride * index), three, None, none,
                 ctypes.byref(error))
        if error.value != 0:
            raise MeshingError(f"gmsh could not move node {tag}: {gmsh.logger.getLastError()}")


def _number_canonically() -> None:
    """Give the generated mesh an order that depends on its geometry alone: nodes numbered
    along a Morton curve (:func:`morton_order`), and the triangles and tetrahedra of every
    entity sorted by their corner nodes. gmsh's own order permutes nodes and elements from one
    run to the next on the same input (the positions and the elements do not change; its
    Hilbert renumbering breaks ties by that order too), and every per-node array of the
    dataset, and the point samples drawn by node, would change with it."""
    node_tags, coordinates, _ = gmsh.model.mesh.getNodes()
    order = morton_order(np.asarray(coordinates, dtype=np.float64).reshape(-1, 3))
    gmsh.model.mesh.renumberNodes(node_tags[order], np.arange(1, len(order) + 1, dtype=node_tags.dtype))
    for dim, element_type, corners in ((2, 2, 3), (3, 4, 4)):
        for _, tag in gmsh.model.getEntities(dim):
            _, nodes = gmsh.model.mesh.getElementsByType(element_type, tag)
            if len(nodes) == 0:
                continue
            key = np.sort(np.asarray(nodes, dtype=np.int64).reshape(-1, corners), axis=1)
            gmsh.model.mesh.reorderElements(element_type, tag, _rows_in_order(key))


def _rows_in_order(rows: np.ndarray) -> np.ndarray:
    """The permutation that sorts the rows of a non-negative integer array (n, 3 or 4)
    lexicographically, stably: ``np.lexsort(rows.T[::-1])``, its columns packed in pairs into
    int64 keys (two sort keys, not four)."""
    base = int(rows.max(initial=0)) + 1
    if base ** 2 >= 2 ** 63:
        return np.lexsort(rows.T[::-1])
    keys = [rows[:, k] * base + rows[:, k + 1] if k + 1 < rows.shape[1] else rows[:, k]
            for k in range(0, rows.shape[1], 2)]
    return np.lexsort(keys[::-1])


def mesh_heart_in_torso(torso_points: np.ndarray, torso_faces: np.ndarray, heart_points: np.ndarray,
                        heart_faces: np.ndarray, heart_regions: np.ndarray, region_names: Mapping[int, str],
                        heart_size_mm: float, torso_size_mm: float, output_path: str | Path,
                        threads: int = 1, algorithm: str = "hxt", optimize_netgen: bool = False,
                        sliver_threshold_deg: float = 5.0, max_sliver_fraction: float = 1e-3,
                        caps: Sequence = ()) -> MeshReport:
    """Mesh the torso (closed surface) with the myocardium (closed surface whose faces carry
    ``heart_regions``, named by ``region_names`` as in :data:`FACET_TAGS`) as a conforming
    subdomain, and the blood pools (each ventricle's endocardium closed by its cap, a
    :class:`ecgcohort.meshing.surfaces.CavityCap`, named ``lv`` or ``rv``) as another when
    ``caps`` are given; write gmsh ``.msh`` 4.1 with physical names, atomically.

    Raises :class:`MeshingError` if gmsh fails, the tagged volumes differ from the
    surface-enclosed volumes by more than 2%, or too many slivers remain.
    """
    start = time.perf_counter()
    missing = {"epicardium"} - set(region_names.values())
    if missing:
        raise MeshingError(f"heart surface lacks regions {sorted(missing)}")
    if algorithm not in ALGORITHMS_3D:
        raise MeshingError(f"unknown 3D algorithm {algorithm!r} (one of {', '.join(ALGORITHMS_3D)})")
    gmsh.initialize(interruptible=threading.current_thread() is threading.main_thread())
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", max(1, threads))
        # each stage's own cap too: left at 0 it follows OpenMP's count (OMP_NUM_THREADS, the
        # CPUs a job may use), not meshing.threads
        for dimension in (1, 2, 3):
            gmsh.option.setNumber(f"Mesh.MaxNumThreads{dimension}D", max(1, threads))
        gmsh.option.setNumber("Mesh.Algorithm3D", ALGORITHMS_3D[algorithm])
        gmsh.option.setNumber("Mesh.MeshSizeMax", torso_size_mm)
        gmsh.option.setNumber("Mesh.MeshSizeMin", min(heart_size_mm, torso_size_mm))
        gmsh.option.setNumber("Mesh.Optimize", 1)
        gmsh.option.setNumber("Mesh.OptimizeNetgen", int(optimize_netgen))
        gmsh.option.setNumber("Mesh.Binary", 1)
        gmsh.model.add("heart_torso")

        n_torso = len(torso_points)
        torso_nodes = np.arange(1, n_torso + 1)
        heart_nodes = np.arange(n_torso + 1, n_torso + len(heart_points) + 1)
        body = FACET_TAGS["body_surface"]
        gmsh.model.addDiscreteEntity(2, body)
        gmsh.model.mesh.addNodes(2, body, torso_nodes, np.asarray(torso_points, float).ravel())
        gmsh.model.mesh.addElementsByType(body, 2, [], torso_nodes[torso_faces].ravel())
        heart_surfaces = []
        first = True
        for label, name in region_names.items():
            selected = heart_regions == label
            if not selected.any():
                continue
            tag = FACET_TAGS[name]
            gmsh.model.addDiscreteEntity(2, tag)
            if first:  # nodes live on one entity; the others reference them by tag
                gmsh.model.mesh.addNodes(2, tag, heart_nodes, np.asarray(heart_points, float).ravel())
                first = False
            gmsh.model.mesh.addElementsByType(tag, 2, [], heart_nodes[heart_faces[selected]].ravel())
            heart_surfaces.append(tag)
        next_node = n_torso + len(heart_points) + 1
        cap_surfaces = {}
        for cap in caps:
            tag = FACET_TAGS[f"{cap.name}_cap"]
            gmsh.model.addDiscreteEntity(2, tag)
            cap_nodes = np.arange(next_node, next_node + len(cap.points))
            next_node += len(cap.points)
            gmsh.model.mesh.addNodes(2, tag, cap_nodes, np.asarray(cap.points, float).ravel())
            gmsh.model.mesh.addElementsByType(tag, 2, [], np.concatenate([heart_nodes, cap_nodes])[cap.faces].ravel())
            cap_surfaces[cap.name] = tag
        # the discrete surfaces' curves and points, the surfaces not split into connected pieces
        # (gmsh's default: 0.34 -> 0.09 s at 1.2 mm, the same mesh): each is a loop's member as it is
        gmsh.model.mesh.createTopology(makeSimplyConnected=False)

        torso_loop = gmsh.model.geo.addSurfaceLoop([body])
        heart_loop = gmsh.model.geo.addSurfaceLoop(heart_surfaces)
        myocardium = gmsh.model.geo.addVolume([heart_loop], VOLUME_TAGS["myocardium"])
        volumes = {"myocardium": [myocardium]}
        if cap_surfaces:
            pools = []
            for entity, (name, cap_tag) in enumerate(cap_surfaces.items(), start=len(VOLUME_TAGS) + 1):
                pool_loop = gmsh.model.geo.addSurfaceLoop([FACET_TAGS[f"{name}_endocardium"], cap_tag])
                pools.append(gmsh.model.geo.addVolume([pool_loop], entity))
            outer = [tag for tag in heart_surfaces if tag not in (FACET_TAGS["lv_endocardium"],
                                                                  FACET_TAGS["rv_endocardium"])]
            outer_loop = gmsh.model.geo.addSurfaceLoop(outer + list(cap_surfaces.values()))
            volumes["blood"] = pools
            volumes["torso"] = [gmsh.model.geo.addVolume([torso_loop, outer_loop], VOLUME_TAGS["torso"])]
        else:
            volumes["torso"] = [gmsh.model.geo.addVolume([torso_loop, heart_loop], VOLUME_TAGS["torso"])]
        gmsh.model.geo.synchronize()
        for name, entities in volumes.items():
            gmsh.model.addPhysicalGroup(3, entities, VOLUME_TAGS[name], name)
        for name, tag in FACET_TAGS.items():
            if name == "body_surface" or tag in heart_surfaces or tag in cap_surfaces.values():
                gmsh.model.addPhysicalGroup(2, [tag], tag, name)

        # the myocardium at the heart's size throughout; the torso graded from the heart's size
        # at the heart to the torso's size away from it
        distance = gmsh.model.mesh.field.add("Distance")
        gmsh.model.mesh.field.setNumbers(distance, "SurfacesList", heart_surfaces)
        graded = gmsh.model.mesh.field.add("Threshold")
        gmsh.model.mesh.field.setNumber(graded, "InField", distance)
        gmsh.model.mesh.field.setNumber(graded, "SizeMin", heart_size_mm)
        gmsh.model.mesh.field.setNumber(graded, "SizeMax", torso_size_mm)
        gmsh.model.mesh.field.setNumber(graded, "DistMin", 0.0)
        gmsh.model.mesh.field.setNumber(graded, "DistMax", 4.0 * torso_size_mm)
        uniform = gmsh.model.mesh.field.add("Constant")
        gmsh.model.mesh.field.setNumber(uniform, "VIn", heart_size_mm)
        gmsh.model.mesh.field.setNumber(uniform, "VOut", torso_size_mm)
        gmsh.model.mesh.field.setNumbers(uniform, "VolumesList", [myocardium])
        smallest = gmsh.model.mesh.field.add("Min")
        gmsh.model.mesh.field.setNumbers(smallest, "FieldsList", [graded, uniform])
        gmsh.model.mesh.field.setAsBackgroundMesh(smallest)
        gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)

        try:
            gmsh.model.mesh.generate(3)
        except Exception as error:  # gmsh raises plain Exceptions with its last error message
            raise MeshingError(f"gmsh failed to mesh the volume: {error}") from error

        _snap_nodes()
        _number_canonically()
        node_tags, coordinates, _ = gmsh.model.mesh.getNodes()
        points = np.zeros((int(node_tags.max()) + 1, 3))
        points[node_tags.astype(int)] = coordinates.reshape(-1, 3)
        counts, tagged_volumes, worst, slivers, total = {}, {}, [], 0, 0
        for name, entities in volumes.items():
            tets = np.vstack([gmsh.model.mesh.getElementsByType(4, entity)[1].astype(int).reshape(-1, 4)
                              for entity in entities])
            volume, dihedral = tetrahedron_quality(points, tets)
            counts[name], tagged_volumes[name] = int(len(tets)), float(volume.sum())
            worst.append(float(dihedral.min()) if len(tets) else 180.0)
            slivers += int((dihedral < sliver_threshold_deg).sum())
            total += len(tets)
        volumes = tagged_volumes
        report = MeshReport(
            nodes=int(len(node_tags)), tetrahedra=int(total), tetrahedra_per_region=counts,
            volume_per_region_mm3=volumes, min_dihedral_deg=min(worst),
            sliver_fraction=slivers / max(total, 1), sliver_threshold_deg=sliver_threshold_deg,
            seconds=time.perf_counter() - start,
        )
        expected = {"myocardium": surface_volume(heart_points, heart_faces)}
        if caps:
            expected["blood"] = sum(cavity_volume(heart_points, heart_faces, heart_regions, region_names, cap)
                                    for cap in caps)
        expected["torso"] = surface_volume(torso_points, torso_faces) - sum(expected.values())
        for name, value in expected.items():
            if abs(volumes[name] - value) > 0.02 * abs(value):
                raise MeshingError(f"the {name} tetrahedra fill {volumes[name] / 1e3:.1f} mL but its "
                                   f"surfaces enclose {value / 1e3:.1f} mL (more than 2% apart)")
        if report.sliver_fraction > max_sliver_fraction:
            raise MeshingError(f"{report.sliver_fraction:.2%} of tetrahedra have a dihedral angle below "
                               f"{sliver_threshold_deg} degrees (allowed {max_sliver_fraction:.2%})")
        with atomic_path(output_path) as temporary:
            gmsh.write(str(temporary))
    finally:
        gmsh.finalize()
    log.info("meshed %d nodes, %d tetrahedra (%s) in %.1f s; min dihedral %.1f deg", report.nodes,
             report.tetrahedra, counts, report.seconds, report.min_dihedral_deg)
    return report


def cavity_volume(heart_points: np.ndarray, heart_faces: np.ndarray, heart_regions: np.ndarray,
                  region_names: Mapping[int, str], cap) -> float:
    """Volume (mm³) enclosed by one ventricle's endocardium and its cap."""
    label = next(k for k, v in region_names.items() if v == f"{cap.name}_endocardium")
    points = np.vstack([heart_points, cap.points])
    return abs(surface_volume(points, np.vstack([heart_faces[heart_regions == label], cap.faces])))


@dataclass(frozen=True)
class TaggedMesh:
    """A heart-in-torso mesh as arrays, in the order of the ``.msh`` file: ``points_mm``
    (N, 3) nodes in mm, ``tetrahedra`` (C, 4) node indices, ``cell_tags`` (C,) the volume tag
    of each cell (:data:`VOLUME_TAGS`) and ``facets`` {facet tag: (F, 3) node indices}
    (:data:`FACET_TAGS`). Cell and node indices of every later stage refer to this order."""

    points_mm: np.ndarray
    tetrahedra: np.ndarray
    cell_tags: np.ndarray
    facets: dict[int, np.ndarray]


def read_tagged_mesh(path: str | Path) -> TaggedMesh:
    """Read a mesh written by :func:`mesh_heart_in_torso` with gmsh's API (0.2 s for 540k
    tetrahedra, where dolfinx's reader, which also reorders and builds the topology, takes
    4.5 s). Raises :class:`MeshingError` for a file without tagged tetrahedra."""
    path = Path(path)
    if not path.is_file():
        raise MeshingError(f"no mesh file {path}")
    gmsh.initialize(interruptible=threading.current_thread() is threading.main_thread())
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.open(str(path))
        node_tags, coordinates, _ = gmsh.model.mesh.getNodes()
        # nodes in the order of their tags, not of the file (as dolfinx's reader does): the tags
        # are canonical (_number_canonically), the file's node blocks are not
        node_tags = node_tags.astype(np.int64)
        by_tag = np.argsort(node_tags)
        index = np.full(int(node_tags.max()) + 1, -1, dtype=np.int64)
        index[node_tags[by_tag]] = np.arange(len(node_tags))
        points = np.asarray(coordinates, dtype=np.float64).reshape(-1, 3)[by_tag]

        def connectivity(dim: int, entity: int, corners: int) -> np.ndarray:
            kinds, _, nodes = gmsh.model.mesh.getElements(dim, entity)
            blocks = [np.asarray(n, dtype=np.int64).reshape(-1, corners) for n in nodes]
            return index[np.vstack(blocks)] if blocks else np.empty((0, corners), dtype=np.int64)

        tetrahedra, cell_tags = [], []
        facets: dict[int, list[np.ndarray]] = {}
        for dim, entity in gmsh.model.getEntities():
            if dim not in (2, 3):
                continue
            groups = gmsh.model.getPhysicalGroupsForEntity(dim, entity)
            if len(groups) == 0:
                continue
            elements = connectivity(dim, entity, 4 if dim == 3 else 3)
            if dim == 3:
                tetrahedra.append(elements)
                cell_tags.append(np.full(len(elements), int(groups[0]), dtype=np.int32))
            else:
                facets.setdefault(int(groups[0]), []).append(elements)
    finally:
        gmsh.finalize()
    if not tetrahedra:
        raise MeshingError(f"{path}: no tagged tetrahedra")
    return TaggedMesh(points_mm=points, tetrahedra=np.vstack(tetrahedra), cell_tags=np.concatenate(cell_tags),
                      facets={tag: np.vstack(parts) for tag, parts in sorted(facets.items())})
