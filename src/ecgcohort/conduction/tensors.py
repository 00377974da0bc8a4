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


#: the ventricles a layer can cover (the fibres' ``ventricle`` coordinate: 0 LV, 1 RV)
LAYER_VENTRICLES: tuple[str, ...] = ("lv", "rv")


@dataclass(frozen=True)
class SubendocardialLayer:
    """A fast-conducting subendocardial layer: the myocardial cells whose centroid lies below
    ``transmural_depth`` of the transmural coordinate (0 on the LV and RV endocardium, 1 on the
    epicardium), in the ``ventricles`` named (by the fibres' ``ventricle`` coordinate, the septum
    split at its mid-wall), conduct along their fibres at ``fibre_velocity_m_per_s`` instead of
    the myocardium's. Across the fibres they keep the myocardium's velocities
    (``cross_velocity_m_per_s`` None), after Myerburg et al. 1978: the superficial subendocardial
    muscle of canine ventricles conducts at 0.98 m/s along its fibres, across them no faster than
    the deeper muscle (0.26 m/s); or conduct at ``cross_velocity_m_per_s`` across the fibres, in
    the sheet and across the sheets, which with the fibre velocity equal to it makes the layer
    isotropic: a dense Purkinje network's effect on the endocardium. ``transmural_depth`` 0: no
    layer. Velocities in m/s."""

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

    def cells(self, transmural: np.ndarray, tetrahedra: np.ndarray, ventricle: np.ndarray | None = None) -> np.ndarray:
        """(n_cells,) bool: the cells of the layer, from the nodal transmural coordinate
        (n_nodes,) averaged over each tetrahedron's four nodes (its centroid's value) and, where
        the layer covers one ventricle only, the nodal ``ventricle`` coordinate (0 LV, 1 RV) so
        averaged (required then)."""
        tets = np.asarray(tetrahedra)
        inside = np.asarray(transmural, dtype=np.float64)[tets].mean(axis=1) < self.transmural_depth
        if set(self.ventricles) == set(LAYER_VENTRICLES):
            return inside
        if ventricle is None:
            raise ValueError(f"a subendocardial layer in the {self.ventricles[0].upper()} only needs the fibres' "
                             "ventricle coordinate")
        in_lv = np.asarray(ventricle, dtype=np.float64)[tets].mean(axis=1) < 0.5
        return inside & (in_lv if "lv" in self.ventricles else ~in_lv)

    def velocity_scales(self, transmural: np.ndarray, tetrahedra: np.ndarray,
                        velocities: tuple[float, float, float | None],
                        ventricle: np.ndarray | None = None) -> np.ndarray | None:
        """(n_cells, 3) the factors on the myocardium's ``velocities`` (along the fibres, across
        them in the sheet, across the sheets or None: as across; m/s) per cell: the layer's
        velocities over them inside the layer, 1 outside; None without a layer."""
        if self.transmural_depth == 0.0:
            return None
        v_fibre, v_cross, v_normal = velocities
        v_fibre = float(check_velocity("v_fibre", v_fibre))
        v_cross = float(check_velocity("v_cross", v_cross))
        v_normal = v_cross if v_normal is None else float(check_velocity("v_normal", v_normal))
        inside = self.cells(transmural, tetrahedra, ventricle)
        scales = np.ones((len(inside), 3))
        scales[inside, 0] = self.fibre_velocity_m_per_s / v_fibre
        if self.cross_velocity_m_per_s is not None:
            scales[inside, 1] = self.cross_velocity_m_per_s / v_cross
            scales[inside, 2] = self.cross_velocity_m_per_s / v_normal
        return scales
