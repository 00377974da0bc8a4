"""Conduction tensors of anisotropic myocardium: the metric of the eikonal equation and of the
point sources' straight-front times. Units: velocities m/s = mm/ms, tensors (mm/ms)²."""

from __future__ import annotations

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
