"""One patient surface at any resolution: the built-in families' templates resampled.

A patient is an instance of a shape model on the model's own (fixed, fine) template. The
meshing stage needs the same surface with edges of the mesh's size. A :class:`Resampling`
of a model to an edge length is a new triangulation of the same family whose every vertex
is a fixed barycentric combination of three vertices of the model's template: applied to a
patient's surface it gives points *on* that surface (a piecewise-linear surface sampled
anywhere stays on it), so every resolution meshes one and the same patient and only the
chordal error of the coarser triangles remains.

The correspondence comes from each family's parametrisation, never from the patient:

* the bi-ventricular heart: the template for the new edge length and the model's template
  both lie exactly on the closed-form reference heart; each new vertex is projected onto the
  model's reference triangles of its own region (a vertex on a region boundary takes the
  nearest of its regions);
* the trunk: every template vertex has ray coordinates (ring level and azimuth, or a point
  of a hemisphere's disk); the coarser template's coordinates are located in the model
  template's triangles in that parameter plane.

Lengths in mm.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ecgcohort.io import atomic_path
from ecgcohort.shapes.model import ShapeModel, ShapeModelError


@dataclass(frozen=True)
class Resampling:
    """A triangulation (``faces`` (m, 3), ``labels`` (m,)) whose vertex i is
    ``sum_k weights[i, k] * model_points[vertices[i, k]]``."""

    vertices: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    labels: np.ndarray

    @property
    def n_points(self) -> int:
        return int(len(self.vertices))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """The resampled points (n, 3) of one instance ``points`` (model vertices, (N, 3), mm)."""
        return np.einsum("nk,nkd->nd", self.weights, np.asarray(points, dtype=float)[self.vertices])


def can_resample(model: ShapeModel) -> bool:
    """Whether ``model`` is a built-in family this module can resample."""
    kind = model.template.get("kind")
    return (kind == "biventricular" and model.reference is not None) or kind == "trunk"


def resampling(model: ShapeModel, edge_length_mm: float, cache_dir: str | Path | None = None) -> Resampling:
    """The model's family triangulated with edges of about ``edge_length_mm`` (mm), as
    barycentric combinations of the model's vertices. Raises :class:`ShapeModelError` for a
    model that is no built-in family (a loaded atlas has no parametrisation to resample).
    ``cache_dir``: where a plan is kept for the next patient of the same model and edge length
    (:func:`resampling_cache_key`: a plan of another model, code or library version is computed
    anew, never loaded)."""
    if not edge_length_mm > 0:
        raise ShapeModelError(f"{model.name}: edge length must be > 0 mm, got {edge_length_mm}")
    kind = model.template.get("kind")
    if kind == "biventricular" and model.reference is not None:
        build = _heart_resampling
    elif kind == "trunk":
        build = _trunk_resampling
    else:
        raise ShapeModelError(f"shape model '{model.name}' has no parametric template (template: "
                              f"{dict(model.template) or 'none'}): it cannot be resampled")
    if cache_dir is None:
        return build(model, float(edge_length_mm))
    path = Path(cache_dir) / f"{kind}_{resampling_cache_key(model, float(edge_length_mm))}.npz"
    if path.exists():
        with np.load(path) as stored:
            return Resampling(stored["vertices"], stored["weights"], stored["faces"], stored["labels"])
    plan = build(model, float(edge_length_mm))
    with atomic_path(path) as temporary:  # a unique temporary: parallel jobs may share the cache
        np.savez(temporary, vertices=plan.vertices, weights=plan.weights, faces=plan.faces, labels=plan.labels)
    return plan


def resampling_cache_key(model: ShapeModel, edge_length_mm: float) -> str:
    """The version of a cached plan: a hash of the edge length (mm), the model's template and
    reference triangles, this module's and the heart family's source, and the numpy, igl and
    Python versions that compute it."""
    import igl

    from ecgcohort.shapes import heart

    digest = hashlib.sha256(f"{edge_length_mm!r} {sorted(model.template.items())!r}".encode())
    for array in (model.mean, model.faces, model.face_labels, model.reference):
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    for module in (__file__, heart.__file__):
        digest.update(Path(module).read_bytes())
    digest.update(f"numpy {np.__version__}, igl {getattr(igl, '__version__', '?')}, "
                  f"python {sys.version_info[:3]}".encode())
    return digest.hexdigest()[:16]


def _barycentric(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (n, 3) of ``points`` in the triangles (a, b, c) (each (n, d)),
    of the points' projections onto the triangles' planes."""
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    determinant = d00 * d11 - d01 * d01
    w1 = (d11 * d20 - d01 * d21) / determinant
    w2 = (d00 * d21 - d01 * d20) / determinant
    return np.stack([1.0 - w1 - w2, w1, w2], axis=-1)


def _heart_resampling(model: ShapeModel, edge_length_mm: float) -> Resampling:
    import igl

    from ecgcohort.shapes.heart import reference_template

    points, faces, labels = reference_template(edge_length_mm)
    reference = np.ascontiguousarray(model.reference)
    best = np.full(len(points), np.inf)
    vertices = np.zeros((len(points), 3), dtype=np.int64)
    weights = np.zeros((len(points), 3))
    for label in np.unique(labels):
        queries = np.unique(faces[labels == label])
        region = np.ascontiguousarray(model.faces[model.face_labels == label])
        if len(region) == 0:
            raise ShapeModelError(f"{model.name}: no faces of region {label} to resample onto")
        squared, face, closest = igl.point_mesh_squared_distance(np.ascontiguousarray(points[queries]), reference,
                                                                 region)[:3]
        corners = region[face]
        local = _barycentric(closest, *(reference[corners[:, i]] for i in range(3)))
        local = np.clip(local, 0.0, None)
        local /= local.sum(axis=1, keepdims=True)
        better = squared < best[queries]
        chosen = queries[better]
        best[chosen], vertices[chosen], weights[chosen] = squared[better], corners[better], local[better]
    return Resampling(vertices, weights, faces, labels)


def _trunk_resampling(model: ShapeModel, edge_length_mm: float) -> Resampling:
    from ecgcohort.shapes.torso import trunk_template

    fine = trunk_template(int(model.template["n_azimuth"]), int(model.template["n_polar"]),
                          float(model.template["ring_spacing"]))
    if fine.n_points != len(model.mean) or not np.array_equal(fine.faces, model.faces):
        raise ShapeModelError(f"{model.name}: its triangulation is not the trunk template it names")
    fine_edge = _mean_edge_length(model.mean, model.faces)
    ratio = fine_edge / edge_length_mm
    coarse = trunk_template(n_azimuth=4 * max(4, round(fine.n_azimuth * ratio / 4)),
                            n_polar=max(2, round(fine.n_polar * ratio)),
                            ring_spacing=fine.ring_spacing / ratio)
    vertices = np.zeros((coarse.n_points, 3), dtype=np.int64)
    weights = np.zeros((coarse.n_points, 3))

    on_rings = coarse.kind == 1
    level = coarse.levels[coarse.ring[on_rings]]
    azimuth = np.mod(np.arctan2(coarse.directions[on_rings, 0], coarse.directions[on_rings, 1]), 2 * math.pi)
    vertices[on_rings], weights[on_rings] = _locate_on_rings(fine, level, azimuth)
    for kind, disk in ((0, coarse.top_disk), (2, coarse.bottom_disk)):
        inner = coarse.kind[disk] == kind
        fine_disk = fine.top_disk if kind == 0 else fine.bottom_disk
        vertices[disk[inner]], weights[disk[inner]] = _locate_in_disk(fine, fine_disk, coarse.disk_planar[inner])
    return Resampling(vertices, weights, coarse.faces.copy(), np.ones(len(coarse.faces), dtype=np.int32))


def _locate_on_rings(fine, level: np.ndarray, azimuth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fine ring-grid triangles and weights of points at (level (fraction of L), azimuth (rad)):
    the quad (k, i)-(k+1, i+1) is split as the template splits it."""
    n = fine.n_azimuth
    k = np.clip(np.searchsorted(fine.levels, level, side="right") - 1, 0, len(fine.levels) - 2)
    u = np.clip((level - fine.levels[k]) / (fine.levels[k + 1] - fine.levels[k]), 0.0, 1.0)
    position = azimuth / (2 * math.pi / n)
    i = np.floor(position).astype(np.int64) % n
    v = np.clip(position - np.floor(position), 0.0, 1.0)
    first = np.flatnonzero(fine.kind == 1)[0]

    def at(ring: np.ndarray, index: np.ndarray) -> np.ndarray:
        return first + ring * n + index % n

    lower = u + v <= 1.0
    vertices = np.where(lower[:, None],
                        np.column_stack([at(k, i), at(k + 1, i), at(k, i + 1)]),
                        np.column_stack([at(k, i + 1), at(k + 1, i), at(k + 1, i + 1)]))
    weights = np.where(lower[:, None], np.column_stack([1.0 - u - v, u, v]),
                       np.column_stack([1.0 - u, 1.0 - v, u + v - 1.0]))
    return vertices, weights


def _locate_in_disk(fine, fine_disk: np.ndarray, planar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fine cap triangles and weights of points of a hemisphere's disk (planar coordinates)."""
    local = np.full(fine.n_points, -1, dtype=np.int64)
    local[fine_disk] = np.arange(len(fine_disk))
    cap = fine.faces[(local[fine.faces] >= 0).all(axis=1)]
    corners = fine.disk_planar[local[cap]]                     # (F, 3, 2)
    candidates = cKDTree(corners.mean(axis=1)).query(planar, k=min(12, len(cap)))[1]
    weights = _barycentric(planar[:, None, :], corners[candidates, 0], corners[candidates, 1],
                           corners[candidates, 2])
    best = weights.min(axis=2).argmax(axis=1)
    rows = np.arange(len(planar))
    chosen = weights[rows, best]
    if chosen.min(initial=0.0) < -1e-9:
        raise ShapeModelError("a point of the trunk's hemisphere lies outside the model template's disk")
    chosen = np.clip(chosen, 0.0, None)
    return cap[candidates[rows, best]], chosen / chosen.sum(axis=1, keepdims=True)


def _mean_edge_length(points: np.ndarray, faces: np.ndarray) -> float:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return float(np.linalg.norm(points[edges[:, 0]] - points[edges[:, 1]], axis=1).mean())
