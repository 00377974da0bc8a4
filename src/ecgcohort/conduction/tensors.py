"""Conduction tensors of anisotropic myocardium: the metric of the eikonal equation and of the
point sources' straight-front times. Units: velocities m/s = mm/ms, tensors (mm/ms)²."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgcohort.structure_tensors import fibre_structure


def check_velocity(name: str, v: float | np.ndarray) -> np.ndarray:
    """``v`` as a float64 array, refused unless every value is finite and > 0 (m/s = mm/ms)."""
    arr = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0):
        raise ValueError(f"{name} must be finite and > 0 (m/s = mm/ms), got min {np.min(arr)!r}")
    return arr


def conduction_tensors(fibres: np.ndarray, v_fibre: float | np.ndarray, v_cross: float | np.ndarray,
                       normals: np.ndarray | None = None, v_normal: float | np.ndarray | None = None) -> np.ndarray:
    """(n_cells, 3, 3) D = v_t² I + (v_f² − v_t²) A + (v_n² − v_t²) N in (mm/ms)², A = f fᵀ for
    fibre vectors (n_cells, 3; any non-zero length) or the cells' structure tensors (n_cells, 3,
    3), see :func:`ecgcohort.structure_tensors.fibre_structure`, and N = n nᵀ likewise for the sheet normals
    ``normals``; ``v_fibre``/``v_cross``/``v_normal`` in m/s = mm/ms, scalars or (n_cells,)
    arrays. Without ``normals`` or ``v_normal`` the tensor is transversely isotropic (v_n = v_t).
    D stays positive definite for any positive velocities: its quadratic form is at least
    min(v_t², v_n²) plus (v_f² − v_t²) xᵀAx.
    """
    structure = fibre_structure(fibres)
    count = structure.shape[0]
    vf = np.broadcast_to(check_velocity("v_fibre", v_fibre), (count,))
    vt = np.broadcast_to(check_velocity("v_cross", v_cross), (count,))
    tensors = (vt**2)[:, None, None] * np.eye(3)[None] + (vf**2 - vt**2)[:, None, None] * structure
    if normals is None or v_normal is None:
        return tensors
    normal = fibre_structure(normals)
    if normal.shape[0] != count:
        raise ValueError(f"sheet normals must be given per cell ({count}), got {normal.shape[0]}")
    vn = np.broadcast_to(check_velocity("v_normal", v_normal), (count,))
    return tensors + (vn**2 - vt**2)[:, None, None] * normal


#: the ventricles a layer can cover (the side of the nearer endocardium, :func:`wall_depth`)
LAYER_VENTRICLES: tuple[str, ...] = ("lv", "rv")


def _surface_distances(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Each point's distance (mm) to the triangles ``faces`` of ``points``; inf without any."""
    import igl

    if len(faces) == 0:
        return np.full(len(points), np.inf)
    squared, _, _ = igl.point_mesh_squared_distance(points, points, np.ascontiguousarray(faces, dtype=np.int64))
    return np.sqrt(squared)


def wall_distances(points_mm: np.ndarray, tetrahedra: np.ndarray, transmural: np.ndarray,
                   ventricle: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node of the myocardium (``points_mm`` (n, 3), ``tetrahedra`` (m, 4)): its distances
    (mm) to the LV endocardium, the RV endocardium and the epicardium. These are the mesh's
    boundary triangles whose nodes all have the fibres' ``transmural`` coordinate 0 (endocardium;
    the LV's where the nodes' mean ``ventricle`` coordinate is below 0.5) or 1 (epicardium); a
    surface the mesh lacks is infinitely far (libigl's point-to-triangle distances)."""
    from ecgcohort.geometry import boundary_faces

    points = np.ascontiguousarray(points_mm, dtype=np.float64)
    transmural = np.asarray(transmural, dtype=np.float64)
    faces = boundary_faces(tetrahedra)
    endocardial = faces[np.all(transmural[faces] <= 1e-9, axis=1)]
    epicardial = faces[np.all(transmural[faces] >= 1.0 - 1e-9, axis=1)]
    if len(endocardial) == 0:
        raise ValueError("the myocardium has no endocardium: no boundary triangle whose nodes all have the "
                         "transmural coordinate 0")
    lv_face = np.asarray(ventricle, dtype=np.float64)[endocardial].mean(axis=1) < 0.5
    return (_surface_distances(points, endocardial[lv_face]), _surface_distances(points, endocardial[~lv_face]),
            _surface_distances(points, epicardial))


def wall_depth(points_mm: np.ndarray, tetrahedra: np.ndarray, transmural: np.ndarray,
               ventricle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node of the myocardium: its depth into the wall from the nearer endocardium as a
    fraction of the wall there, and whether that endocardium is the LV's (bool). With d_near and
    d_far the distances to the nearer and the farther endocardium and d_epi to the epicardium
    (:func:`wall_distances`), the depth is d_near / (d_near + min(d_epi, d_far)): 0 on either
    endocardium, 1 on the free walls' epicardium, 0.5 in the middle of the septum, whose wall
    lies between the two endocardia. The transmural coordinate itself is no depth in the septum:
    its Laplace solution, 0 on both endocardia, stays near 0 across the whole septum, which has
    no epicardium (below 0.1 in most of the septum's thickness)."""
    d_lv, d_rv, d_epi = wall_distances(points_mm, tetrahedra, transmural, ventricle)
    near, far = np.minimum(d_lv, d_rv), np.maximum(d_lv, d_rv)
    wall = near + np.minimum(d_epi, far)
    depth = np.divide(near, wall, out=np.zeros_like(near), where=wall > 0)
    return depth, d_lv <= d_rv


@dataclass(frozen=True)
class SubendocardialLayer:
    """A fast-conducting subendocardial layer: the myocardial cells whose centroid lies less than
    ``transmural_depth`` into the wall from the nearer endocardium (:func:`wall_depth`, the mean
    of the cell's nodes: a fraction of the wall, 0.5 the middle of the septum), on the side of
    the ``ventricles`` named (the nearer endocardium's), conduct along their fibres at
    ``fibre_velocity_m_per_s`` instead of the myocardium's. Across the fibres they keep the
    myocardium's velocities (``cross_velocity_m_per_s`` None), after Myerburg et al. 1978: the
    superficial subendocardial muscle of canine ventricles conducts at 0.98 m/s along its fibres,
    across them no faster than the deeper muscle (0.26 m/s); or conduct at
    ``cross_velocity_m_per_s`` across the fibres, in the sheet and across the sheets, which with
    the fibre velocity equal to it makes the layer isotropic: a dense Purkinje network's effect
    on the endocardium. ``transmural_depth`` 0: no layer. Velocities in m/s."""

    transmural_depth: float = 0.0
    fibre_velocity_m_per_s: float = 0.98
    cross_velocity_m_per_s: float | None = None
    ventricles: tuple[str, ...] = LAYER_VENTRICLES

    def __post_init__(self) -> None:
        if not 0.0 <= self.transmural_depth < 1.0:
            raise ValueError("electrophysiology.subendocardial_layer.transmural_depth must be in [0, 1), got "
                             f"{self.transmural_depth!r}")
        check_velocity("electrophysiology.subendocardial_layer.fibre_velocity_m_per_s", self.fibre_velocity_m_per_s)
        if self.cross_velocity_m_per_s is not None:
            check_velocity("electrophysiology.subendocardial_layer.cross_velocity_m_per_s",
                           self.cross_velocity_m_per_s)
        if not self.ventricles or not set(self.ventricles) <= set(LAYER_VENTRICLES):
            raise ValueError("electrophysiology.subendocardial_layer.ventricles must name one or both of "
                             f"{', '.join(LAYER_VENTRICLES)}, got {list(self.ventricles)!r}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> SubendocardialLayer:
        """The ``electrophysiology.subendocardial_layer`` section (None or missing keys: no layer)."""
        section = section or {}
        cross = section.get("cross_velocity_m_per_s")
        return cls(float(section.get("transmural_depth", 0.0)), float(section.get("fibre_velocity_m_per_s", 0.98)),
                   None if cross is None else float(cross),
                   tuple(str(v) for v in section.get("ventricles", LAYER_VENTRICLES)))

    def cells(self, depth: np.ndarray, lv_side: np.ndarray, tetrahedra: np.ndarray) -> np.ndarray:
        """(n_cells,) bool: the cells of the layer, from the nodal wall ``depth`` and ``lv_side``
        (n_nodes,) of :func:`wall_depth`, each averaged over the tetrahedron's four nodes (its
        centroid's value; a cell is on the LV's side when most of its nodes are)."""
        tets = np.asarray(tetrahedra)
        inside = np.asarray(depth, dtype=np.float64)[tets].mean(axis=1) < self.transmural_depth
        if set(self.ventricles) == set(LAYER_VENTRICLES):
            return inside
        in_lv = np.asarray(lv_side, dtype=np.float64)[tets].mean(axis=1) > 0.5
        return inside & (in_lv if "lv" in self.ventricles else ~in_lv)

    def velocity_scales(self, depth: np.ndarray, lv_side: np.ndarray, tetrahedra: np.ndarray,
                        velocities: tuple[float, float, float | None]) -> np.ndarray | None:
        """(n_cells, 3) the factors on the myocardium's ``velocities`` (along the fibres, across
        them in the sheet, across the sheets or None: as across; m/s) per cell: the layer's
        velocities over them inside the layer (:meth:`cells`), 1 outside; None without a layer."""
        if self.transmural_depth == 0.0:
            return None
        v_fibre, v_cross, v_normal = velocities
        v_fibre = float(check_velocity("v_fibre", v_fibre))
        v_cross = float(check_velocity("v_cross", v_cross))
        v_normal = v_cross if v_normal is None else float(check_velocity("v_normal", v_normal))
        inside = self.cells(depth, lv_side, tetrahedra)
        scales = np.ones((len(inside), 3))
        scales[inside, 0] = self.fibre_velocity_m_per_s / v_fibre
        if self.cross_velocity_m_per_s is not None:
            scales[inside, 1] = self.cross_velocity_m_per_s / v_cross
            scales[inside, 2] = self.cross_velocity_m_per_s / v_normal
        return scales
