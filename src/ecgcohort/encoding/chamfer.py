"""Chamfer distance of point clouds and the paper's interior-cloud evaluation of SDF fields
(paper 1, eq. 8, sec. 2.6 and 3.1). Distances come out in the units of the points: give the
grid in mm (or multiply by the normalisation scale) to compare with the paper's mm."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def _cloud(points: np.ndarray, name: str) -> np.ndarray:
    cloud = np.asarray(points, dtype=np.float64)
    if cloud.ndim != 2:
        raise ValueError(f"{name} must have shape (N, dim), got {cloud.shape}")
    if cloud.shape[0] == 0:
        raise ValueError(f"{name} is an empty point cloud: the Chamfer distance is undefined")
    return cloud


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Eq. 8: ½ (mean over a of the distance to the nearest point of b + mean over b of the
    distance to the nearest point of a), Euclidean (not squared). ValueError on empty clouds."""
    a, b = _cloud(a, "a"), _cloud(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"clouds of different dimensions: {a.shape[1]} and {b.shape[1]}")
    a_to_b = cKDTree(b).query(a)[0]
    b_to_a = cKDTree(a).query(b)[0]
    return float(0.5 * (a_to_b.mean() + b_to_a.mean()))


def regular_grid(lower: np.ndarray, upper: np.ndarray, resolution: int) -> np.ndarray:
    """(resolution³, 3) points of the regular grid spanning [lower, upper] (both included),
    in C order of (i, j, k) along (x, y, z): ``values.reshape(r, r, r)[i, j, k]`` is the
    value at the grid point i along x, j along y, k along z."""
    lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    if lo.shape != (3,) or hi.shape != (3,) or np.any(hi <= lo) or resolution < 2:
        raise ValueError(f"need lower < upper (3,) and resolution >= 2, got {lo}, {hi}, {resolution}")
    axes = [np.linspace(lo[d], hi[d], resolution) for d in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def interior_chamfer(predicted_sdf: np.ndarray, true_sdf: np.ndarray, grid_points: np.ndarray) -> float:
    """The paper's reconstruction error of one surface: keep the grid points where each SDF
    (R,) is ≤ 0 (the interiors) and take the Chamfer distance (eq. 8) of the two clouds.
    Returns inf when the predicted interior is empty (the decoder lost the surface: an
    error, not a crash); raises ValueError when the true one is (the grid misses the shape)."""
    points = np.asarray(grid_points, dtype=np.float64)
    predicted, true = np.asarray(predicted_sdf).reshape(-1), np.asarray(true_sdf).reshape(-1)
    if points.ndim != 2 or not len(predicted) == len(true) == len(points):
        raise ValueError(f"need one value per grid point: {predicted.shape}, {true.shape}, {points.shape}")
    inside_true = points[true <= 0]
    if len(inside_true) == 0:
        raise ValueError("the true SDF has no interior point on this grid")
    inside_predicted = points[predicted <= 0]
    if len(inside_predicted) == 0:
        return float("inf")
    return chamfer_distance(inside_predicted, inside_true)


def interior_volume(sdf: np.ndarray, grid_points: np.ndarray, resolution: int) -> float:
    """Volume (units³ of the grid) of the interior ``sdf ≤ 0`` on a regular grid from
    :func:`regular_grid`: interior points × the volume of one grid cell. Its error is of the
    order of the surface area times half the spacing, so compare volumes on one grid."""
    points = np.asarray(grid_points, dtype=np.float64)
    values = np.asarray(sdf).reshape(-1)
    if len(values) != len(points) or len(points) != resolution ** 3:
        raise ValueError(f"need {resolution}^3 grid points and one value each, got {points.shape}, {values.shape}")
    spacing = (points.max(axis=0) - points.min(axis=0)) / (resolution - 1)
    return float(np.count_nonzero(values <= 0) * np.prod(spacing))
