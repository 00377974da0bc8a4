"""Signed-distance samples of a patient's four closed surfaces, the DeepSDF training data of
paper 1 (sec. 2.5): lengths in mm, distances negative inside.

Points are drawn as DeepSDF does: near each surface (area-weighted uniform surface points plus
isotropic Gaussian noise at two scales) and uniformly in the torso's padded bounding box. All
four distances are evaluated at the same points.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

import logging

import igl
import numpy as np

from ecgcohort.encoding.surfaces import SURFACES, TriangleSurface, check_closed
from ecgcohort.geometry import spatial_order, winding_numbers
from ecgcohort.io import atomic_path

METHODS = ("exact", "mesh_to_sdf")

# mesh-to-sdf's normal vote: the sign is the majority over the query's nearest surface samples
# (its own default, 11).
_NORMAL_VOTES = 11
# Queries per mesh-to-sdf batch: bounds the (batch, votes, 3) arrays of its vote to ~50 MB.
_BATCH = 1 << 18
# Colour range of the preview: about a heart's radius, so the heart surfaces stay readable
# beside the torso's distances of hundreds of mm.
_PREVIEW_LIMIT_MM = 50.0
# Half width of the preview's heart panels.
_PREVIEW_HEART_MM = 90.0
# Most points drawn per slab.
_PREVIEW_POINTS = 5000
# The exact method's pseudonormal sign flips where the closest point lies on a rim edge whose two
# faces fold nearly onto each other: config/study.yaml's train-0012 had 1 of 19,510 deep samples
# 23 mm outside its RV cavity called inside (winding number 0.00, the closed surface valid by
# every probe of geometry.inspect_surface). Up to this fraction of the deep samples such isolated
# disagreements take the winding number's sign; more are bad input and raise.
_SIGN_REPAIR_FRACTION = 1e-3

log = logging.getLogger(__name__)


class SdfSignError(ValueError):
    """Signed distances whose sign contradicts the winding number away from the surface."""


@dataclass(frozen=True)
class SdfSamplingSpec:
    """How many points, where, and how their distances are computed (lengths in mm)."""

    near_surface_count: int = 8192  # near-surface points in all, a quarter per surface
    # Half of each surface's near points are perturbed with each scale. 2.5 mm is below half
    # the LV wall (about 8-10 mm) and below the RV wall (about 4 mm), so these points resolve
    # the walls and rarely cross to the next surface; 25 mm is about an LV cavity radius and
    # the heart-torso gap, so those points fill the space between the surfaces while staying
    # far below the torso size (about 300 mm) that the uniform points cover.
    near_sigma_mm: tuple[float, float] = (2.5, 25.0)
    uniform_count: int = 2048  # uniform in the torso's bounding box padded by box_padding_mm
    box_padding_mm: float = 20.0
    # "exact": libigl, exact distance, sign from pseudonormals. "mesh_to_sdf", as paper 1: the
    # distance to the nearest of mesh_to_sdf_surface_points surface samples, the sign by a vote
    # of their normals. Exact is the default: mesh-to-sdf's vote calls 1-4 % of the points
    # inside the RV cavity, up to hundreds of mm outside it, wherever the closest point is on
    # the RV insertion (septum and free wall meet at about 30 degrees), and it missed points
    # 5-29 mm deep at concave creases of the body surface (tests/test_sdf.py).
    method: Mapping[str, str] = field(default_factory=lambda: {name: "exact" for name in SURFACES})
    # 200k samples are 0.3 mm apart on a heart surface (1-3e4 mm^2), 1.8 mm on a body surface
    # (6.6e5 mm^2); mesh-to-sdf's distances exceed the exact ones by about that.
    mesh_to_sdf_surface_points: int = 200_000
    # Samples farther than this (by their own |sdf|) from a surface must have the sign of its
    # winding number. The exact sign is right on valid input but at rare folds
    # (_SIGN_REPAIR_FRACTION); mesh-to-sdf's vote on
    # smooth parts of our surfaces errs only within 0.3 mm (heart) and 1 mm (torso) at 200k
    # samples; a wrong sign deeper than 1 mm is bad input or a failure of the method.
    sign_check_depth_mm: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.near_surface_count < 0 or self.uniform_count < 0:
            problems.append(f"counts must be non-negative (near {self.near_surface_count}, "
                            f"uniform {self.uniform_count})")
        if len(self.near_sigma_mm) != 2 or min(self.near_sigma_mm) <= 0:
            problems.append(f"near_sigma_mm {tuple(self.near_sigma_mm)} must be two positive scales")
        if self.box_padding_mm < 0 or self.sign_check_depth_mm < 0:
            problems.append(f"box_padding_mm {self.box_padding_mm} and sign_check_depth_mm "
                            f"{self.sign_check_depth_mm} must be non-negative")
        if set(self.method) != set(SURFACES) or not set(self.method.values()) <= set(METHODS):
            problems.append(f"method {dict(self.method)} must map each of {SURFACES} to one of {METHODS}")
        if self.mesh_to_sdf_surface_points < _NORMAL_VOTES:
            problems.append(f"mesh_to_sdf_surface_points {self.mesh_to_sdf_surface_points} "
                            f"below {_NORMAL_VOTES}")
        if problems:
            raise ValueError("invalid SDF sampling: " + "; ".join(problems))


@dataclass(frozen=True)
class SdfSamples:
    """Sample points (P, 3) mm, their signed distances (S, P) mm to ``surfaces`` (negative
    inside), and the kind of each point: 0 uniform, k + 1 drawn near surface k."""

    points_mm: np.ndarray
    sdf_mm: np.ndarray
    kind: np.ndarray
    surfaces: tuple[str, ...]
    method: Mapping[str, str]

    def __post_init__(self) -> None:
        count = len(self.points_mm)
        if (self.points_mm.shape != (count, 3) or self.sdf_mm.shape != (len(self.surfaces), count)
                or self.kind.shape != (count,)):
            raise ValueError(f"inconsistent SDF samples: points {self.points_mm.shape}, sdf "
                             f"{self.sdf_mm.shape}, kind {self.kind.shape}, {len(self.surfaces)} surfaces")


def sampling_spec(section: Mapping[str, Any]) -> SdfSamplingSpec:
    """An :class:`SdfSamplingSpec` from an ``encoding.sdf`` config section."""
    values = dict(section)
    if "near_sigma_mm" in values:
        values["near_sigma_mm"] = tuple(values["near_sigma_mm"])
    return SdfSamplingSpec(**values)


def sample_on_surface(points: np.ndarray, faces: np.ndarray, count: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points (mm) uniform over the surface's area and the face each lies on."""
    a, b, c = (points[faces[:, i]] for i in range(3))
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    face = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random((2, count))
    outside = u + v > 1  # fold the unit square onto the triangle
    u[outside], v[outside] = 1 - u[outside], 1 - v[outside]
    return a[face] + u[:, None] * (b[face] - a[face]) + v[:, None] * (c[face] - a[face]), face


def exact_distance(points: np.ndarray, faces: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact signed distance (mm, negative inside) by libigl, the sign from the angle-weighted
    pseudonormal at the closest point, which is exact on closed, consistently oriented surfaces.

    ``ecgcohort.geometry.signed_distance`` uses libigl's default sign, the winding number: four
    times slower here, and no independent check against the winding number of
    :func:`_checked_signs`.
    """
    distance = igl.signed_distance(np.ascontiguousarray(queries, dtype=np.float64),
                                   np.ascontiguousarray(points, dtype=np.float64),
                                   np.ascontiguousarray(faces, dtype=np.int64),
                                   sign_type=igl.SIGNED_DISTANCE_TYPE_PSEUDONORMAL)[0]
    return np.asarray(distance)


def mesh_to_sdf_distance(points: np.ndarray, faces: np.ndarray, queries: np.ndarray, surface_points: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Signed distance (mm, negative inside) by mesh-to-sdf's ``surface_point_method="sample",
    sign_method="normal"``: the distance to the nearest of ``surface_points`` area-uniform surface
    samples, the sign by the vote of the nearest samples' face normals.

    ``mesh_to_sdf.mesh_to_sdf`` draws those samples with trimesh's unseeded generator; building
    its point cloud from ``rng`` keeps a patient's samples reproducible. Distances are in the
    input units (mesh-to-sdf rescales only in its ``sample_sdf_near_surface``) and never below
    the exact distance; its sign is negative inside, as ours.
    """
    import trimesh
    from mesh_to_sdf.surface_point_cloud import SurfacePointCloud

    mesh = trimesh.Trimesh(points, faces, process=False)
    samples, face = sample_on_surface(points, faces, surface_points, rng)
    cloud = SurfacePointCloud(mesh, points=samples, normals=mesh.face_normals[face])
    return np.concatenate([cloud.get_sdf(queries[start:start + _BATCH], use_depth_buffer=False,
                                         sample_count=_NORMAL_VOTES)
                           for start in range(0, len(queries), _BATCH)] or [np.empty(0)])


def _checked_signs(surface: str, method: str, points: np.ndarray, faces: np.ndarray, queries: np.ndarray,
                   sdf: np.ndarray, depth_mm: float, patient: str) -> np.ndarray:
    """``sdf`` (mm) with the sign checked against the winding number (inside where w > 0.5) at
    samples deeper than ``depth_mm`` by their own |sdf|. Raises :class:`SdfSignError` where any
    deep sign is wrong, except that the exact method's isolated pseudonormal failures (at most
    :data:`_SIGN_REPAIR_FRACTION` of the deep samples) take the winding number's sign, logged."""
    deep = np.flatnonzero(np.abs(sdf) > depth_mm)
    # outside its bounding box a closed surface's winding number is 0: evaluated only inside it
    # (a heart surface's box holds about a third of the paper's deep samples)
    boxed = np.all((queries[deep] >= points.min(axis=0)) & (queries[deep] <= points.max(axis=0)), axis=1)
    winding = np.zeros(len(deep))
    winding[boxed] = winding_numbers(points, faces, queries[deep[boxed]])
    disagrees = (winding > 0.5) != (sdf[deep] < 0)
    wrong = deep[disagrees]
    who = f"patient {patient}: " if patient else ""
    if len(wrong) and method == "exact" and len(wrong) <= _SIGN_REPAIR_FRACTION * len(deep):
        repaired = sdf.copy()
        repaired[wrong] = -repaired[wrong]
        log.warning("%ssurface %s (exact): %d of %d samples farther than %s mm had the pseudonormal's wrong sign "
                    "(a fold at the closest point); they take the winding number's", who, surface, len(wrong),
                    len(deep), depth_mm)
        return repaired
    if len(wrong):
        first = wrong[0]
        example = np.array2string(queries[first], precision=1, separator=", ")
        raise SdfSignError(f"{who}surface {surface} ({method}): {len(wrong)} of {len(deep)} samples farther than "
                           f"{depth_mm} mm from it have the wrong sign, e.g. {example} mm: sdf "
                           f"{sdf[first]:.2f} mm, winding number {winding[np.flatnonzero(disagrees)[0]]:.2f}")
    return sdf


def _split(count: int, parts: int) -> list[int]:
    return [count // parts + (i < count % parts) for i in range(parts)]


def sample_sdf(surfaces: Mapping[str, TriangleSurface], spec: SdfSamplingSpec, rng: np.random.Generator, *,
               patient: str = "") -> SdfSamples:
    """Signed distances (mm, negative inside) of the closed surfaces of :data:`SURFACES` (as
    from :func:`~ecgcohort.encoding.surfaces.closed_surfaces`) at points drawn from ``rng``:
    near-surface points first, surface by surface, then the uniform ones.

    Raises :class:`~ecgcohort.encoding.surfaces.SurfaceError` for a surface that is not closed
    and outward oriented, :class:`SdfSignError` when a distance deeper than
    ``spec.sign_check_depth_mm`` contradicts the surface's winding number (beyond the exact
    method's isolated pseudonormal failures, which take the winding number's sign).
    """
    for name in SURFACES:
        check_closed(*surfaces[name], name, patient)
    blocks, kinds = [], []
    for k, (name, count) in enumerate(zip(SURFACES, _split(spec.near_surface_count, len(SURFACES)))):
        on_surface, _ = sample_on_surface(*surfaces[name], count, rng)
        sigma = np.repeat(np.asarray(spec.near_sigma_mm, dtype=float), _split(count, 2))
        blocks.append(on_surface + sigma[:, None] * rng.standard_normal((count, 3)))
        kinds.append(np.full(count, k + 1, dtype=np.int8))
    torso_points = surfaces["torso"][0]
    low, high = torso_points.min(axis=0) - spec.box_padding_mm, torso_points.max(axis=0) + spec.box_padding_mm
    blocks.append(rng.uniform(low, high, size=(spec.uniform_count, 3)))
    kinds.append(np.zeros(spec.uniform_count, dtype=np.int8))
    # distances are taken at the stored (float32) points so that points and values agree exactly
    points = np.concatenate(blocks).astype(np.float32)
    # every distance is computed in spatial order (each point's value does not depend on it)
    order = spatial_order(points)
    queries = points[order].astype(np.float64)
    sdf = np.empty((len(SURFACES), len(points)))
    for k, name in enumerate(SURFACES):
        surface_points, faces = surfaces[name]
        if spec.method[name] == "exact":
            distance = exact_distance(surface_points, faces, queries)
        else:
            distance = mesh_to_sdf_distance(surface_points, faces, queries, spec.mesh_to_sdf_surface_points, rng)
        sdf[k, order] = _checked_signs(name, spec.method[name], surface_points, faces, queries, distance,
                                       spec.sign_check_depth_mm, patient)
    return SdfSamples(points, sdf.astype(np.float32), np.concatenate(kinds), SURFACES, dict(spec.method))


def write_sdf_samples(samples: SdfSamples, path: str | Path) -> None:
    """Write ``.npz`` arrays points_mm, sdf_mm, kind, surfaces and method_json (atomically)."""
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        # uncompressed: float32 noise barely compresses and zlib would cost more than the write
        np.savez(stream, points_mm=samples.points_mm, sdf_mm=samples.sdf_mm, kind=samples.kind,
                 surfaces=np.array(samples.surfaces), method_json=np.array(json.dumps(dict(samples.method))))


def read_sdf_samples(path: str | Path) -> SdfSamples:
    """Read a file written by :func:`write_sdf_samples`."""
    with np.load(path, allow_pickle=False) as data:
        return SdfSamples(data["points_mm"], data["sdf_mm"], data["kind"],
                          tuple(str(name) for name in data["surfaces"]), json.loads(str(data["method_json"])))


def sdf_preview_title(patient: str) -> str:
    """The title of a patient's SDF preview."""
    return f"{patient}: signed distances (mm)"


def sdf_preview(samples: SdfSamples, path: str | Path, title: str = "", slab_mm: float = 5.0) -> None:
    """PNG: the samples within ``slab_mm`` of the coronal (x-z) and sagittal (y-z) planes through
    the heart's centre, one column per surface (the torso whole, the heart surfaces zoomed onto
    the heart), coloured by the signed distance (mm)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    epicardium = samples.sdf_mm[samples.surfaces.index("epicardium")]
    centre = samples.points_mm[epicardium < 0].mean(axis=0)
    low, high = samples.points_mm.min(axis=0), samples.points_mm.max(axis=0)
    norm = TwoSlopeNorm(0.0, -_PREVIEW_LIMIT_MM, _PREVIEW_LIMIT_MM)
    columns = len(samples.surfaces)
    figure, axes = plt.subplots(2, columns, figsize=(2.6 * columns + 1.0, 6.0), squeeze=False)
    for row, (plane, u) in enumerate((("coronal", 0), ("sagittal", 1))):
        normal = 1 - u  # the coronal slab is thin in y, the sagittal one in x
        slab = np.flatnonzero(np.abs(samples.points_mm[:, normal] - centre[normal]) < slab_mm)
        # an even thinning keeps the drawing time flat at paper-size sample counts
        slab = slab[np.unique(np.linspace(0, len(slab) - 1, min(len(slab), _PREVIEW_POINTS)).astype(int))]
        for column, name in enumerate(samples.surfaces):
            axis = axes[row, column]
            image = axis.scatter(samples.points_mm[slab, u], samples.points_mm[slab, 2], c=samples.sdf_mm[column, slab],
                                 s=3, cmap="RdBu_r", norm=norm, rasterized=True)
            if name == "torso":
                axis.set(xlim=(low[u], high[u]), ylim=(high[2], low[2]))
            else:
                axis.set(xlim=(centre[u] - _PREVIEW_HEART_MM, centre[u] + _PREVIEW_HEART_MM),
                         ylim=(centre[2] + _PREVIEW_HEART_MM, centre[2] - _PREVIEW_HEART_MM))
            # ylim runs from high to low: z points down (superior to inferior) in the patient frame
            axis.set_aspect("equal")
            axis.locator_params(nbins=4)
            axis.tick_params(labelsize=7)
            axis.set_title(f"{name}, {plane}", fontsize=9)
            axis.set_xlabel(f"{'xy'[u]} (mm)", fontsize=8)
        axes[row, 0].set_ylabel("z (mm)", fontsize=8)
    figure.subplots_adjust(left=0.06, right=0.88, bottom=0.08, top=0.9, wspace=0.3, hspace=0.35)
    figure.colorbar(image, cax=figure.add_axes((0.9, 0.2, 0.015, 0.6)),
                    label=f"signed distance (mm), clipped at ±{_PREVIEW_LIMIT_MM:g}")
    figure.suptitle(title or "SDF samples")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
