"""The built-in bi-ventricular heart statistical shape model (lengths in mm, angles in radians).

Geometry, in the heart-local frame: the LV long axis is the z axis, +z from apex to base, the
base plane is z = 0, and the RV lies on the +x side of the LV (y = z x x). With the usual
orientation of the heart in the chest, +x points right-anterior and +y left-anterior-superior,
so the RV junction on the +y side is called anterior and the one on the -y side posterior.

The myocardium is bounded by one closed, outward-oriented triangle surface made of four
labelled regions (:data:`HEART_LABELS`):

* LV endocardium: a truncated ellipsoid (semi-axes ``radius - wall``, ``e * radius - wall``,
  ``length - apex wall``), cut at its equator z = 0.
* Epicardium: the LV epicardial ellipsoid (``radius``, ``e * radius``, ``length``) plus a
  radial "RV bulge" ``ramp(d + delta)`` (a C1 ramp: 0 below -k, quadratic, identity above
  k = 0.75 RV wall), where ``d`` is the RV cavity depth below and
  ``delta`` is the RV free-wall thickness corrected for the wall's slope, so that the bulge
  covers the RV with a wall of the chosen thickness and blends smoothly into the LV
  (interventricular grooves).
* RV endocardium: the RV cavity is a crescent wrapped around the LV's +x side. In the
  normalised coordinates ``xi = (theta - theta_rv) / half_angle`` and ``eta = z / rv_height``
  it occupies the half disc ``xi^2 + eta^2 <= 1, eta <= 0``, between the LV epicardium
  (septal sheet, ``r = r_lv_epi``) and the free wall (``r = r_lv_epi + d`` with the depth
  ``d = cavity_depth * (1 - xi^2 - eta^2)``). The two sheets meet along the junction curve
  ``xi^2 + eta^2 = 1`` (the RV insertions, down to the RV apex).
* Base: the annulus in the plane z = 0 between the epicardial rim and the LV and RV
  endocardial rims (the cavities are open at the base).

Correspondence: the template triangulation is built once per edge length on the reference
(default) heart: ring meshes (apex pole, rings of equal meridian spacing, stitched by shortest
diagonals) for the two cups, Gmsh frontal-Delaunay meshes of conformal (LSCM) flattenings for
the two RV sheets, and a Gmsh mesh of the base. Every vertex carries fixed parametric
coordinates; a parameter set is mapped onto the template by evaluating its closed-form
surfaces at those coordinates (the base interior follows by harmonic extension of the rim
displacement), so every heart has the same points, faces and labels.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import igl
import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from scipy.spatial import cKDTree

from ecgcohort.shapes.model import ShapeModel, from_training_shapes

HEART_LABELS: dict[int, str] = {1: "lv_endocardium", 2: "rv_endocardium", 3: "epicardium", 4: "base"}
_LV_ENDO, _RV_ENDO, _EPI, _BASE = 1, 2, 3, 4

# Angular margin (multiple of the RV half angle) inside which the epicardial angles follow the RV.
_RV_ANGLE_SPAN = 1.25


@dataclass(frozen=True)
class BiventricularParameters:
    """Shape parameters of one parametric bi-ventricular heart; defaults are an average adult.

    Lengths in mm, angles in radians, other values dimensionless. Construction raises
    ValueError outside the ranges in which the template gives valid, decent meshes (they
    contain the population of :func:`sample_parameters` with a wide margin).
    """

    lv_length_mm: float = 90.0          # epicardial LV long axis, apex to base plane
    lv_radius_mm: float = 35.0          # epicardial LV short-axis radius at the base (x semi-axis)
    lv_ellipticity: float = 1.0         # y / x ratio of the LV short-axis semi-axes
    lv_wall_mm: float = 10.5            # LV wall thickness at the base (radial)
    lv_apex_wall_mm: float = 8.0        # LV wall thickness at the apex (axial)
    rv_depth: float = 0.75              # RV cavity apex depth as a fraction of the LV length
    rv_half_angle_rad: float = 1.2      # half of the angle around the LV axis covered by the RV
    rv_cavity_depth_mm: float = 28.0    # septum to RV free wall at the base (radial, mid RV)
    rv_wall_mm: float = 3.8             # RV free-wall thickness
    rv_rotation_rad: float = 0.0        # rotation of the RV around the LV axis towards +y

    def __post_init__(self) -> None:
        problems = []
        if not 50.0 <= self.lv_length_mm <= 140.0:
            problems.append(f"lv_length_mm {self.lv_length_mm} outside 50-140")
        if not 0.25 <= self.lv_radius_mm / self.lv_length_mm <= 0.6:
            problems.append(f"lv_radius_mm / lv_length_mm {self.lv_radius_mm / self.lv_length_mm:.3f} "
                            "outside 0.25-0.6")
        if not 0.8 <= self.lv_ellipticity <= 1.25:
            problems.append(f"lv_ellipticity {self.lv_ellipticity} outside 0.8-1.25")
        short_axis = self.lv_radius_mm * min(1.0, self.lv_ellipticity)
        if not 4.0 <= self.lv_wall_mm <= 0.45 * short_axis:
            problems.append(f"lv_wall_mm {self.lv_wall_mm} outside 4-{0.45 * short_axis:.1f}")
        if not 3.0 <= self.lv_apex_wall_mm <= 0.25 * self.lv_length_mm:
            problems.append(f"lv_apex_wall_mm {self.lv_apex_wall_mm} outside 3-{0.25 * self.lv_length_mm:.1f}")
        if not 0.45 <= self.rv_depth <= 0.88:
            problems.append(f"rv_depth {self.rv_depth} outside 0.45-0.88")
        if not 0.9 <= self.rv_half_angle_rad <= 1.5:
            problems.append(f"rv_half_angle_rad {self.rv_half_angle_rad} outside 0.9-1.5")
        if not 8.0 <= self.rv_cavity_depth_mm <= 1.3 * self.lv_radius_mm:
            problems.append(f"rv_cavity_depth_mm {self.rv_cavity_depth_mm} outside 8-{1.3 * self.lv_radius_mm:.1f}")
        if not 2.5 <= self.rv_wall_mm <= 6.5:
            problems.append(f"rv_wall_mm {self.rv_wall_mm} outside 2.5-6.5")
        if not abs(self.rv_rotation_rad) <= 0.6:
            problems.append(f"rv_rotation_rad {self.rv_rotation_rad} outside -0.6-0.6")
        if problems:
            raise ValueError("implausible bi-ventricular parameters: " + "; ".join(problems))


_REFERENCE = BiventricularParameters()


def _cylindrical(r: np.ndarray, theta: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Cartesian points (..., 3) mm from cylindrical coordinates about the LV axis."""
    r, theta, z = np.broadcast_arrays(r, theta, z)
    return np.stack([r * np.cos(theta), r * np.sin(theta), z], axis=-1)


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped into [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


class _Heart:
    """Closed-form surfaces of one parameter set, as radial functions r(theta, z) about the LV axis."""

    def __init__(self, p: BiventricularParameters):
        self.p = p
        self.length = p.lv_length_mm
        self.ax, self.ay = p.lv_radius_mm, p.lv_radius_mm * p.lv_ellipticity
        self.endo_ax, self.endo_ay = self.ax - p.lv_wall_mm, self.ay - p.lv_wall_mm
        self.endo_length = p.lv_length_mm - p.lv_apex_wall_mm
        self.rv_height = p.rv_depth * p.lv_length_mm
        self.theta_rv = p.rv_rotation_rad
        self.half_angle = p.rv_half_angle_rad
        self.cavity_depth = p.rv_cavity_depth_mm
        self.rv_wall = p.rv_wall_mm
        self.groove = 0.75 * p.rv_wall_mm   # half width of the C1 blend of the RV bulge, mm

    @staticmethod
    def _ellipse(theta: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
        """Radius (mm) of the ellipse with semi-axes a, b at polar angle theta, and d/dtheta."""
        c, s = np.cos(theta), np.sin(theta)
        q = (c / a) ** 2 + (s / b) ** 2
        radius = 1.0 / np.sqrt(q)
        return radius, -radius ** 3 * s * c * (1.0 / b ** 2 - 1.0 / a ** 2)

    def lv_epicardial_radius(self, theta: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Radius (mm) of the LV epicardial ellipsoid at polar angle theta and height z (mm)."""
        radius, _ = self._ellipse(theta, self.ax, self.ay)
        return radius * np.sqrt(np.clip(1.0 - (z / self.length) ** 2, 0.0, None))

    def epicardial_angle(self, alpha: np.ndarray) -> np.ndarray:
        """Polar angle (rad) of the epicardial template angle ``alpha``: within the RV span it
        scales with the RV half angle (so the RV features keep their template vertices),
        outside it is stretched linearly to meet alpha = +-pi."""
        alpha = np.asarray(alpha, dtype=float)
        reference_span = _RV_ANGLE_SPAN * _REFERENCE.rv_half_angle_rad
        span = _RV_ANGLE_SPAN * self.half_angle
        inside = alpha * (span / reference_span)
        outside = np.sign(alpha) * (span + (np.abs(alpha) - reference_span)
                                    * (np.pi - span) / (np.pi - reference_span))
        return self.theta_rv + np.where(np.abs(alpha) <= reference_span, inside, outside)

    def bulge(self, theta: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Radial distance (mm) from the LV epicardium out to the epicardium (RV free wall)."""
        xi = _wrap(theta - self.theta_rv) / self.half_angle
        eta = z / self.rv_height
        depth = self.cavity_depth * (1.0 - xi ** 2 - eta ** 2)
        # slope of the free wall r = r_lv + depth, to turn the wall thickness into a radial offset
        ellipse, ellipse_dtheta = self._ellipse(theta, self.ax, self.ay)
        height = np.clip(1.0 - (z / self.length) ** 2, 1e-6, None)
        radius = ellipse * np.sqrt(height) + np.maximum(depth, 0.0)
        dr_dtheta = ellipse_dtheta * np.sqrt(height) - 2.0 * self.cavity_depth * xi / self.half_angle
        dr_dz = -ellipse * z / (self.length ** 2 * np.sqrt(height)) - 2.0 * self.cavity_depth * eta / self.rv_height
        stretch = np.sqrt(1.0 + (dr_dtheta / radius) ** 2 + dr_dz ** 2)
        x = depth + self.rv_wall * np.minimum(stretch, 2.0)
        k = self.groove
        return np.where(x >= k, x, np.where(x <= -k, 0.0, (x + k) ** 2 / (4.0 * k)))

    def lv_endocardium(self, cos_psi: np.ndarray, sin_psi: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Points (..., 3) mm of the LV endocardium at ellipsoidal angle psi (0 apex, pi/2 base)."""
        theta = self.theta_rv + np.asarray(alpha)
        radius, _ = self._ellipse(theta, self.endo_ax, self.endo_ay)
        return _cylindrical(radius * sin_psi, theta, -self.endo_length * cos_psi)

    def epicardium(self, cos_psi: np.ndarray, sin_psi: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Points (..., 3) mm of the epicardium at ellipsoidal angle psi (0 apex, pi/2 base)."""
        theta = self.epicardial_angle(alpha)
        z = -self.length * cos_psi
        radius, _ = self._ellipse(theta, self.ax, self.ay)
        return _cylindrical(radius * sin_psi + self.bulge(theta, z), theta, z)

    def rv_endocardium(self, xi: np.ndarray, eta: np.ndarray, free_wall: bool) -> np.ndarray:
        """Points (..., 3) mm of the RV septal (free_wall False) or free-wall sheet at (xi, eta)."""
        theta = self.theta_rv + self.half_angle * np.asarray(xi)
        z = self.rv_height * np.asarray(eta)
        radius = self.lv_epicardial_radius(theta, z)
        if free_wall:
            radius = radius + self.cavity_depth * np.maximum(1.0 - xi ** 2 - eta ** 2, 0.0)
        return _cylindrical(radius, theta, z)


# --------------------------------------------------------------------------------------------
# Gmsh planar triangulation (used only while building a template)

_GMSH_LOCK = threading.Lock()


@contextmanager
def _gmsh_model() -> Iterator[object]:
    """A fresh, silent Gmsh model; Gmsh state owned by someone else is restored afterwards."""
    import gmsh

    with _GMSH_LOCK:
        owner = not gmsh.isInitialized()
        if owner:
            gmsh.initialize(readConfigFiles=False, interruptible=False)
            previous_model = None
        else:
            previous_model = gmsh.model.getCurrent()
        settings = {"General.Terminal": 0, "General.Verbosity": 1, "Mesh.Algorithm": 6,
                    "Mesh.MeshSizeFromPoints": 0, "Mesh.MeshSizeFromCurvature": 0,
                    "Mesh.MeshSizeExtendFromBoundary": 0, "Mesh.RecombineAll": 0}
        saved = {name: gmsh.option.getNumber(name) for name in settings}
        for name, value in settings.items():
            gmsh.option.setNumber(name, value)
        gmsh.model.add("ecgcohort_heart_template")
        try:
            yield gmsh
        finally:
            gmsh.model.mesh.removeSizeCallback()
            gmsh.model.remove()
            if owner:
                gmsh.finalize()
            else:
                for name, value in saved.items():
                    gmsh.option.setNumber(name, value)
                if previous_model:
                    gmsh.model.setCurrent(previous_model)


def triangulate_planar(loops: Sequence[np.ndarray], size: Callable[[float, float], float]) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate the planar region bounded by ``loops`` ((k, 2) polygons; the first is the
    outer boundary, the others holes) without adding boundary points, with target edge length
    ``size(x, y)``. Returns (interior points (n, 2), triangles indexing the loop points in
    order followed by the interior points)."""
    boundary = np.concatenate(loops)
    with _gmsh_model() as gmsh:
        geo = gmsh.model.geo
        curve_loops, lines = [], []
        for loop in loops:
            points = [geo.addPoint(float(x), float(y), 0.0) for x, y in loop]
            loop_lines = [geo.addLine(points[i], points[(i + 1) % len(points)]) for i in range(len(points))]
            lines.extend(loop_lines)
            curve_loops.append(geo.addCurveLoop(loop_lines))
        surface = geo.addPlaneSurface(curve_loops)
        for line in lines:
            geo.mesh.setTransfiniteCurve(line, 2)
        geo.synchronize()
        gmsh.model.mesh.setSizeCallback(lambda dim, tag, x, y, z, lc: size(x, y))
        gmsh.model.mesh.generate(2)
        tags, coordinates, _ = gmsh.model.mesh.getNodes()
        element_types, _, element_nodes = gmsh.model.mesh.getElements(2, surface)
    if list(element_types) != [2]:
        raise RuntimeError(f"gmsh produced element types {list(element_types)}, expected triangles")
    coordinates = coordinates.reshape(-1, 3)[:, :2]
    distance, nearest = cKDTree(boundary).query(coordinates)
    on_boundary = distance <= 1e-9 * max(1.0, float(np.abs(boundary).max()))
    if np.count_nonzero(on_boundary) != len(boundary) or len(np.unique(nearest[on_boundary])) != len(boundary):
        raise RuntimeError("gmsh did not keep the prescribed boundary points")
    index = np.empty(len(tags), dtype=np.int64)
    index[on_boundary] = nearest[on_boundary]
    index[~on_boundary] = len(boundary) + np.arange(np.count_nonzero(~on_boundary))
    position = {int(tag): i for i, tag in enumerate(tags)}
    triangles = index[np.array([position[int(tag)] for tag in element_nodes[0]]).reshape(-1, 3)]
    return coordinates[~on_boundary], triangles


# --------------------------------------------------------------------------------------------
# Template pieces

def _arc_length(points: np.ndarray, axis: int) -> np.ndarray:
    """Cumulative polyline length (mm) along ``axis`` of a sampled curve family (..., 3)."""
    steps = np.linalg.norm(np.diff(points, axis=axis), axis=-1)
    shape = list(steps.shape)
    shape[axis] = 1
    return np.concatenate([np.zeros(shape), np.cumsum(steps, axis=axis)], axis=axis)


def _ring_strip(inner: np.ndarray, outer: np.ndarray, inner_points: np.ndarray,
                outer_points: np.ndarray) -> list[tuple[int, int, int]]:
    """Triangles stitching two closed rings of vertex indices (both ordered by increasing
    angle) by shortest diagonals; ``*_points`` are their template positions (mm)."""
    n_in, n_out = len(inner), len(outer)
    start = int(np.argmin(np.linalg.norm(outer_points - inner_points[0], axis=1)))
    outer, outer_points = np.roll(outer, -start), np.roll(outer_points, -start, axis=0)
    triangles = []
    i = j = 0
    while i < n_in or j < n_out:
        a, b = inner[i % n_in], outer[j % n_out]
        pa, pb = inner_points[i % n_in], outer_points[j % n_out]
        advance_inner = j == n_out or (
            i < n_in and np.linalg.norm(inner_points[(i + 1) % n_in] - pb)
            <= np.linalg.norm(outer_points[(j + 1) % n_out] - pa))
        if advance_inner:
            triangles.append((a, inner[(i + 1) % n_in], b))
            i += 1
        else:
            triangles.append((a, outer[(j + 1) % n_out], b))
            j += 1
    return triangles


@dataclass
class _Cup:
    """A ring-meshed cup: pole + rings of parametric coordinates (psi as cos/sin, alpha)."""

    cos_psi: np.ndarray
    sin_psi: np.ndarray
    alpha: np.ndarray
    triangles: np.ndarray      # local indices
    rim: np.ndarray            # local indices of the last ring (z = 0), by increasing alpha


def _ring_cup(surface: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], h: float) -> _Cup:
    """Mesh a cup psi in [0, pi/2] x alpha in [-pi, pi) of the reference heart with staggered
    rings of points ``h`` mm apart, rings sqrt(3)/2 h apart (near-equilateral triangles),
    stitched by shortest diagonals, with a fan at the apex pole."""
    psi = np.linspace(0.0, np.pi / 2, 801)
    alpha = np.linspace(-np.pi, np.pi, 513)
    grid = surface(np.cos(psi)[:, None], np.sin(psi)[:, None], alpha[None, :])
    meridian = np.linalg.norm(np.diff(grid, axis=0), axis=-1)[:, :-1]
    around = np.linalg.norm(np.diff(grid, axis=1), axis=-1)
    weights = 0.5 * (around[1:] + around[:-1]) + 1e-12
    mean_step = (meridian * weights).sum(axis=1) / weights.sum(axis=1)
    meridian_length = np.concatenate([[0.0], np.cumsum(mean_step)])
    n_rings = max(3, int(round(meridian_length[-1] / (h * math.sqrt(3.0) / 2.0))))   # equilateral rows
    ring_psi = np.interp(np.linspace(0.0, meridian_length[-1], n_rings + 1), meridian_length, psi)
    fine = np.linspace(-np.pi, np.pi, 4097)
    cos_list, sin_list, alpha_list, rings = [np.array([1.0])], [np.array([0.0])], [np.array([0.0])], [np.array([0])]
    count = 1
    for i, value in enumerate(ring_psi[1:], start=1):
        c, s = (0.0, 1.0) if i == n_rings else (math.cos(value), math.sin(value))
        curve = surface(np.full(fine.shape, c), np.full(fine.shape, s), fine)
        length = _arc_length(curve, axis=0)
        n = max(6, int(round(length[-1] / h)))
        fractions = (np.arange(n) + 0.5 * (i % 2)) / n
        ring_alpha = np.interp(fractions * length[-1], length, fine)
        cos_list.append(np.full(n, c))
        sin_list.append(np.full(n, s))
        alpha_list.append(ring_alpha)
        rings.append(np.arange(count, count + n))
        count += n
    cup = _Cup(np.concatenate(cos_list), np.concatenate(sin_list), np.concatenate(alpha_list),
               np.empty((0, 3), dtype=np.int64), rings[-1])
    points = surface(cup.cos_psi, cup.sin_psi, cup.alpha)
    triangles = [(0, ring[(j + 1) % len(ring)], ring[j]) for ring in rings[1:2] for j in range(len(ring))]
    for inner, outer in zip(rings[1:-1], rings[2:]):
        triangles.extend(_ring_strip(inner, outer, points[inner], points[outer]))
    cup.triangles = np.asarray(triangles, dtype=np.int64)
    return cup


def _curve_nodes(curve: Callable[[np.ndarray], np.ndarray], start: float, stop: float, h: float,
                 even: bool = False) -> np.ndarray:
    """Parameter values (start..stop inclusive) of points about ``h`` mm apart along a curve."""
    fine = np.linspace(start, stop, 4001)
    length = _arc_length(curve(fine), axis=0)
    n = max(2, int(round(length[-1] / h)))
    if even:
        n += n % 2
    return np.interp(np.linspace(0.0, length[-1], n + 1), length, fine)


def _barycentric_lookup(queries: np.ndarray, points: np.ndarray, triangles: np.ndarray,
                        values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of per-vertex ``values`` of a planar triangulation at ``queries``
    (nearest-triangle extrapolation outside). Returns (values, smallest barycentric weight)."""
    centres = points[triangles].mean(axis=1)
    _, candidates = cKDTree(centres).query(queries, k=min(12, len(triangles)))
    a, b, c = (points[triangles[candidates, i]] for i in range(3))
    v0, v1, v2 = b - a, c - a, queries[:, None, :] - a
    det = v0[..., 0] * v1[..., 1] - v0[..., 1] * v1[..., 0]
    w1 = (v2[..., 0] * v1[..., 1] - v2[..., 1] * v1[..., 0]) / det
    w2 = (v0[..., 0] * v2[..., 1] - v0[..., 1] * v2[..., 0]) / det
    weights = np.stack([1.0 - w1 - w2, w1, w2], axis=-1)
    best = weights.min(axis=-1).argmax(axis=1)
    rows = np.arange(len(queries))
    chosen = triangles[candidates[rows, best]]
    w = weights[rows, best]
    return np.einsum("qi,qi...->q...", w, values[chosen]), w.min(axis=1)


def _sheet(heart: _Heart, free_wall: bool, loop: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Mesh one RV sheet of the reference heart. ``loop``: (B, 2) boundary (xi, eta) in order
    (base edge at eta = 0, then the junction arc). Returns interior (xi, eta) (n, 2) and
    triangles indexing the loop points followed by the interior points.

    The sheet is flattened conformally (LSCM on a fine auxiliary mesh) and meshed in the
    plane with target size h / (local 3-D scale), so its triangles are near-equilateral in 3-D."""

    def sheet(xi_eta: np.ndarray) -> np.ndarray:
        return heart.rv_endocardium(xi_eta[:, 0], xi_eta[:, 1], free_wall)

    # fine auxiliary mesh of the half disc, nodes exactly on the boundary
    width = float(np.linalg.norm(np.diff(sheet(np.column_stack([np.linspace(-1, 1, 201), np.zeros(201)])),
                                         axis=0), axis=1).sum()) / 2
    height = heart.rv_height
    fine_size = math.sqrt(np.pi * width * height / 2 / (0.866 * 2500))
    edge = np.linspace(-1.0, 1.0, max(8, int(2 * width / fine_size)) + 1)
    arc = np.linspace(2 * np.pi, np.pi, max(8, int(np.pi * 0.5 * (width + height) / fine_size)) + 1)[1:-1]
    fine_boundary = np.concatenate([np.column_stack([edge, np.zeros_like(edge)]),
                                    np.column_stack([np.cos(arc), np.sin(arc)])])
    scale = np.array([width, height])
    interior, fine_triangles = triangulate_planar([fine_boundary * scale], lambda x, y: fine_size)
    fine_xi_eta = np.concatenate([fine_boundary, interior / scale])
    fine_xyz = sheet(fine_xi_eta)
    horns = np.array([0, len(edge) - 1])
    uv, _ = igl.lscm(fine_xyz, fine_triangles, horns,
                     np.array([[0.0, 0.0], [np.linalg.norm(fine_xyz[horns[1]] - fine_xyz[horns[0]]), 0.0]]))
    e1, e2 = uv[fine_triangles[:, 1]] - uv[fine_triangles[:, 0]], uv[fine_triangles[:, 2]] - uv[fine_triangles[:, 0]]
    signed_area_uv = 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    if not (np.all(signed_area_uv > 0) or np.all(signed_area_uv < 0)):
        raise RuntimeError("the conformal flattening of the RV sheet folds over")
    area_uv = np.abs(signed_area_uv)
    area_3d = 0.5 * np.linalg.norm(np.cross(fine_xyz[fine_triangles[:, 1]] - fine_xyz[fine_triangles[:, 0]],
                                            fine_xyz[fine_triangles[:, 2]] - fine_xyz[fine_triangles[:, 0]]), axis=1)
    scale_3d = np.zeros(len(uv))
    counts = np.zeros(len(uv))
    for i in range(3):
        np.add.at(scale_3d, fine_triangles[:, i], np.sqrt(area_3d / area_uv))
        np.add.at(counts, fine_triangles[:, i], 1.0)
    scale_3d /= counts

    # loop points in the plane: interpolate along the fine boundary
    on_edge = loop[:, 1] == 0.0
    phi = np.mod(np.arctan2(loop[~on_edge, 1], loop[~on_edge, 0]), 2 * np.pi)
    arc_angle = np.concatenate([[np.pi], arc[::-1], [2 * np.pi]])                # increasing
    arc_uv = np.concatenate([uv[:1], uv[len(edge):len(fine_boundary)][::-1], uv[len(edge) - 1:len(edge)]])
    loop_uv = np.empty((len(loop), 2))
    for k in range(2):
        loop_uv[on_edge, k] = np.interp(loop[on_edge, 0], edge, uv[:len(edge), k])
        loop_uv[~on_edge, k] = np.interp(phi, arc_angle, arc_uv[:, k])

    # size field on a regular grid, read by a cheap pure-Python bilinear callback
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    n_grid = 96
    gu, gv = np.linspace(lo[0], hi[0], n_grid), np.linspace(lo[1], hi[1], n_grid)
    grid = np.stack(np.meshgrid(gu, gv, indexing="ij"), axis=-1).reshape(-1, 2)
    grid_scale, _ = _barycentric_lookup(grid, uv, fine_triangles, scale_3d)
    table = (h / np.clip(grid_scale, 0.2 * scale_3d.min(), None)).reshape(n_grid, n_grid).tolist()
    du, dv = (hi[0] - lo[0]) / (n_grid - 1), (hi[1] - lo[1]) / (n_grid - 1)

    def size(x: float, y: float) -> float:
        fu = min(max((x - lo[0]) / du, 0.0), n_grid - 1.000001)
        fv = min(max((y - lo[1]) / dv, 0.0), n_grid - 1.000001)
        i, j = int(fu), int(fv)
        a, b = fu - i, fv - j
        return ((1 - a) * ((1 - b) * table[i][j] + b * table[i][j + 1])
                + a * ((1 - b) * table[i + 1][j] + b * table[i + 1][j + 1]))

    interior_uv, triangles = triangulate_planar([loop_uv], size)
    interior_xi_eta, smallest_weight = _barycentric_lookup(interior_uv, uv, fine_triangles, fine_xi_eta)
    # a node outside the fine flattening (possible only next to a boundary chord) is pulled inside
    radius = np.hypot(interior_xi_eta[:, 0], interior_xi_eta[:, 1])
    limit = 1.0 - 0.05 * h / max(width, height)
    interior_xi_eta[radius > limit] *= (limit / radius[radius > limit])[:, None]
    interior_xi_eta[:, 1] = np.minimum(interior_xi_eta[:, 1], -0.05 * h / height)
    if np.any(smallest_weight < -0.5):
        raise RuntimeError("RV sheet template: interior nodes outside the flattened sheet")
    return interior_xi_eta, triangles


@dataclass(frozen=True)
class _Template:
    """Fixed connectivity and per-vertex parametric coordinates of the heart template."""

    faces: np.ndarray
    labels: np.ndarray
    n_points: int
    endo_index: np.ndarray
    endo_coords: np.ndarray           # (n, 3): cos psi, sin psi, alpha
    epi_index: np.ndarray
    epi_coords: np.ndarray
    septal_index: np.ndarray          # septal sheet incl. junction curve and its base edge
    septal_coords: np.ndarray         # (n, 2): xi, eta
    free_index: np.ndarray            # free-wall sheet without the junction curve
    free_coords: np.ndarray
    base_boundary: np.ndarray         # vertex indices on the base rims
    base_interior: np.ndarray
    base_boundary_reference: np.ndarray   # (n, 2) mm, reference heart
    base_interior_reference: np.ndarray
    base_coupling: scipy.sparse.csr_matrix   # -L_IB
    base_solve: Callable[[np.ndarray], np.ndarray]
    landmarks: dict[str, int]

    def points(self, heart: _Heart) -> np.ndarray:
        """Vertex positions (n, 3) mm of one heart."""
        points = np.empty((self.n_points, 3))
        c = self.endo_coords
        points[self.endo_index] = heart.lv_endocardium(c[:, 0], c[:, 1], c[:, 2])
        c = self.epi_coords
        points[self.epi_index] = heart.epicardium(c[:, 0], c[:, 1], c[:, 2])
        points[self.septal_index] = heart.rv_endocardium(self.septal_coords[:, 0], self.septal_coords[:, 1], False)
        points[self.free_index] = heart.rv_endocardium(self.free_coords[:, 0], self.free_coords[:, 1], True)
        displacement = points[self.base_boundary, :2] - self.base_boundary_reference
        points[self.base_interior, :2] = self.base_interior_reference + self.base_solve(
            self.base_coupling @ displacement)
        points[self.base_interior, 2] = 0.0
        return points


def _orient(triangles: np.ndarray, points: np.ndarray, outward: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Flip a consistently oriented patch if most of its normals disagree with ``outward``
    (a function of the face centres giving a direction away from the myocardium)."""
    a, b, c = (points[triangles[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    agreement = np.einsum("ij,ij->i", normals, outward((a + b + c) / 3.0))
    return triangles if np.mean(agreement > 0) > 0.5 else triangles[:, ::-1].copy()


@functools.lru_cache(maxsize=4)
def _template(edge_length_mm: float) -> _Template:
    """Build the template triangulation for a target edge length (mm) on the reference heart."""
    h = float(edge_length_mm)
    heart = _Heart(_REFERENCE)
    endo = _ring_cup(heart.lv_endocardium, h)
    epi = _ring_cup(heart.epicardium, h)

    # RV boundary curves: junction arc (xi, eta) = (cos phi, sin phi), phi from 2 pi (anterior
    # insertion, xi = 1) through 3 pi / 2 (RV apex) to pi (posterior insertion, xi = -1)
    def junction(phi: np.ndarray) -> np.ndarray:
        return heart.rv_endocardium(np.cos(phi), np.sin(phi), False)

    half = _curve_nodes(junction, 2 * np.pi, 1.5 * np.pi, h)
    phi = np.concatenate([half, 3 * np.pi - half[::-1][1:]])        # symmetric about the apex
    junction_xi_eta = np.column_stack([np.cos(phi), np.sin(phi)])
    junction_xi_eta[0] = (1.0, 0.0)
    junction_xi_eta[-1] = (-1.0, 0.0)
    junction_xi_eta[len(half) - 1] = (0.0, -1.0)

    def base_edge(free_wall: bool) -> np.ndarray:
        def curve(xi: np.ndarray) -> np.ndarray:
            return heart.rv_endocardium(xi, np.zeros_like(xi), free_wall)
        left = _curve_nodes(curve, -1.0, 0.0, h)
        return np.concatenate([left, -left[::-1][1:]])               # symmetric, node at xi = 0

    septal_edge, free_edge = base_edge(False), base_edge(True)

    # global numbering
    n_endo, n_epi = len(endo.alpha), len(epi.alpha)
    endo_index = np.arange(n_endo)
    epi_index = n_endo + np.arange(n_epi)
    offset = n_endo + n_epi
    junction_index = offset + np.arange(len(junction_xi_eta))      # [0] anterior, [-1] posterior
    offset += len(junction_xi_eta)
    septal_edge_index = np.concatenate([[junction_index[-1]], offset + np.arange(len(septal_edge) - 2),
                                        [junction_index[0]]])
    offset += len(septal_edge) - 2
    free_edge_index = np.concatenate([[junction_index[-1]], offset + np.arange(len(free_edge) - 2),
                                      [junction_index[0]]])
    offset += len(free_edge) - 2

    faces, labels = [], []
    endo_points = heart.lv_endocardium(endo.cos_psi, endo.sin_psi, endo.alpha)
    epi_points = heart.epicardium(epi.cos_psi, epi.sin_psi, epi.alpha)

    sheets = {}
    for free_wall, edge, edge_index in ((False, septal_edge, septal_edge_index), (True, free_edge, free_edge_index)):
        loop = np.concatenate([np.column_stack([edge, np.zeros_like(edge)]), junction_xi_eta[1:-1]])
        loop_index = np.concatenate([edge_index, junction_index[1:-1]])
        interior, triangles = _sheet(heart, free_wall, loop, h)
        interior_index = offset + np.arange(len(interior))
        offset += len(interior)
        sheets[free_wall] = (loop, loop_index, interior, interior_index, triangles)

    # base: outer loop = epicardial rim, holes = LV endocardial rim and the RV crescent
    epi_rim = epi_index[epi.rim]
    endo_rim = endo_index[endo.rim]
    crescent = np.concatenate([septal_edge_index, free_edge_index[-2:0:-1]])
    septal_loop_points = heart.rv_endocardium(septal_edge, np.zeros_like(septal_edge), False)
    free_loop_points = heart.rv_endocardium(free_edge, np.zeros_like(free_edge), True)
    crescent_xy = np.concatenate([septal_loop_points, free_loop_points[-2:0:-1]])[:, :2]
    base_loops = [epi_points[epi.rim, :2], endo_points[endo.rim, :2], crescent_xy]
    base_boundary = np.concatenate([epi_rim, endo_rim, crescent])
    base_interior_xy, base_triangles_local = triangulate_planar(base_loops, lambda x, y: h)
    base_interior = offset + np.arange(len(base_interior_xy))
    offset += len(base_interior_xy)
    n_points = offset

    points = np.empty((n_points, 3))
    points[endo_index] = endo_points
    points[epi_index] = epi_points
    septal_index = np.concatenate([sheets[False][1], sheets[False][3]])
    septal_coords = np.concatenate([sheets[False][0], sheets[False][2]])
    free_index = np.concatenate([free_edge_index[1:-1], sheets[True][3]])
    free_coords = np.concatenate([np.column_stack([free_edge[1:-1], np.zeros(len(free_edge) - 2)]),
                                  sheets[True][2]])
    points[septal_index] = heart.rv_endocardium(septal_coords[:, 0], septal_coords[:, 1], False)
    points[free_index] = heart.rv_endocardium(free_coords[:, 0], free_coords[:, 1], True)
    base_boundary_xy = np.concatenate(base_loops)
    points[base_interior] = np.column_stack([base_interior_xy, np.zeros(len(base_interior_xy))])

    def radial(centres: np.ndarray) -> np.ndarray:
        return np.column_stack([centres[:, 0], centres[:, 1], np.zeros(len(centres))])

    def up(centres: np.ndarray) -> np.ndarray:
        return np.tile([0.0, 0.0, 1.0], (len(centres), 1))

    patches = [
        (endo_index[endo.triangles], _LV_ENDO, lambda c: -radial(c) + up(c) * 1e-3),
        (epi_index[epi.triangles], _EPI, lambda c: radial(c) - up(c) * 1e-3),
        (np.concatenate([sheets[False][1], sheets[False][3]])[sheets[False][4]], _RV_ENDO, radial),
        (np.concatenate([sheets[True][1], sheets[True][3]])[sheets[True][4]], _RV_ENDO, lambda c: -radial(c)),
        (np.concatenate([base_boundary, base_interior])[base_triangles_local], _BASE, up),
    ]
    for triangles, label, outward in patches:
        oriented = _orient(triangles, points, outward)
        faces.append(oriented)
        labels.append(np.full(len(oriented), label, dtype=np.int32))
    faces_array = np.concatenate(faces).astype(np.int64)
    labels_array = np.concatenate(labels)

    # harmonic extension operator of the base (cotangent Laplacian of the planar template)
    base_vertices = np.concatenate([base_boundary, base_interior])
    local = np.full(n_points, -1, dtype=np.int64)
    local[base_vertices] = np.arange(len(base_vertices))
    base_faces = local[np.concatenate(faces)[labels_array == _BASE]]
    laplacian = igl.cotmatrix(points[base_vertices], base_faces).tocsr()
    nb = len(base_boundary)
    interior_block = laplacian[nb:, nb:].tocsc()
    coupling = -laplacian[nb:, :nb].tocsr()
    factor = scipy.sparse.linalg.splu(interior_block) if interior_block.shape[0] else None

    def solve(rhs: np.ndarray) -> np.ndarray:
        return factor.solve(rhs) if factor is not None else rhs[:0]

    landmarks = {
        "lv_apex_endocardium": int(endo_index[0]),
        "lv_apex_epicardium": int(epi_index[0]),
        "rv_apex_endocardium": int(junction_index[len(half) - 1]),
        "rv_insertion_anterior": int(junction_index[0]),
        "rv_insertion_posterior": int(junction_index[-1]),
        "septum_base": int(septal_edge_index[len(septal_edge) // 2]),
        "rv_free_wall_base": int(free_edge_index[len(free_edge) // 2]),
    }
    template = _Template(faces_array, labels_array, n_points, endo_index,
                         np.column_stack([endo.cos_psi, endo.sin_psi, endo.alpha]), epi_index,
                         np.column_stack([epi.cos_psi, epi.sin_psi, epi.alpha]), septal_index, septal_coords,
                         free_index, free_coords, base_boundary, base_interior, base_boundary_xy,
                         base_interior_xy, coupling, solve, landmarks)
    check = template.points(heart)
    if not np.allclose(check, points, atol=1e-6):
        raise RuntimeError("heart template does not reproduce the reference heart")
    return template


# --------------------------------------------------------------------------------------------
# Public API

def biventricular_surface(parameters: BiventricularParameters,
                          edge_length_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (n, 3) mm, faces (m, 3) int64, face_labels (m,) int32) of the closed myocardial
    surface of one parametric heart on the template for ``edge_length_mm`` (mm); the faces
    and labels depend only on the edge length."""
    if not 0.3 <= edge_length_mm <= 10.0:
        raise ValueError(f"edge_length_mm {edge_length_mm} outside 0.3-10 mm")
    template = _template(float(edge_length_mm))
    return template.points(_Heart(parameters)), template.faces.copy(), template.labels.copy()


def reference_template(edge_length_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (n, 3) mm, faces, face labels) of the template for ``edge_length_mm`` (mm) on the
    reference heart, where every template vertex lies exactly on the closed-form surfaces:
    templates of two edge lengths correspond by position there."""
    if not 0.3 <= edge_length_mm <= 10.0:
        raise ValueError(f"edge_length_mm {edge_length_mm} outside 0.3-10 mm")
    template = _template(float(edge_length_mm))
    return template.points(_Heart(_REFERENCE)), template.faces.copy(), template.labels.copy()


def heart_landmarks(edge_length_mm: float) -> dict[str, int]:
    """Named template vertices (apices, RV insertions, mid-septum and mid-RV-free-wall at the
    base) for ``edge_length_mm`` (mm)."""
    return dict(_template(float(edge_length_mm)).landmarks)


def _truncated_normal(rng: np.random.Generator, sd: float, limit: float = 2.5) -> float:
    """A normal deviate with standard deviation ``sd``, truncated at ``limit`` sd."""
    while True:
        value = rng.standard_normal()
        if abs(value) <= limit:
            return float(value * sd)


def sample_parameters(rng: np.random.Generator) -> BiventricularParameters:
    """One plausible adult heart: independent log-normal / normal variations (truncated at
    2.5 sd) of overall size (7 %), LV length (5 %), sphericity (7 %), short-axis ellipticity
    (0.04), LV wall (9 %) and apical wall (8 %) thickness, RV extent towards the apex (0.04 of
    the LV length), RV angular width (0.08 rad), RV cavity depth (12 %) and RV wall thickness
    (10 %). The RV stays centred on +x (the frame is defined by it), so ``rv_rotation_rad``
    is not varied."""
    r = _REFERENCE
    size = math.exp(_truncated_normal(rng, 0.07))
    length = r.lv_length_mm * size * math.exp(_truncated_normal(rng, 0.05))
    sphericity = r.lv_radius_mm / r.lv_length_mm * math.exp(_truncated_normal(rng, 0.07))
    lv_wall = r.lv_wall_mm * math.sqrt(size) * math.exp(_truncated_normal(rng, 0.09))
    return BiventricularParameters(
        lv_length_mm=length,
        lv_radius_mm=sphericity * length,
        lv_ellipticity=r.lv_ellipticity + _truncated_normal(rng, 0.04),
        lv_wall_mm=lv_wall,
        lv_apex_wall_mm=lv_wall * r.lv_apex_wall_mm / r.lv_wall_mm * math.exp(_truncated_normal(rng, 0.08)),
        rv_depth=r.rv_depth + _truncated_normal(rng, 0.04),
        rv_half_angle_rad=r.rv_half_angle_rad + _truncated_normal(rng, 0.08),
        rv_cavity_depth_mm=r.rv_cavity_depth_mm * size * math.exp(_truncated_normal(rng, 0.12)),
        rv_wall_mm=r.rv_wall_mm * math.exp(_truncated_normal(rng, 0.10)),
    )


def build_heart_model(n_modes: int = 12, population: int = 200, seed: int = 0,
                      edge_length_mm: float = 1.0) -> ShapeModel:
    """PCA over ``population`` parametric hearts drawn by :func:`sample_parameters` from
    ``np.random.default_rng(seed)`` (in order) on one fixed template of about
    ``edge_length_mm`` (mm) edges; the model is named "biv_heart" (mean in mm, sd in mm) and
    carries its template on the reference heart, from which
    :func:`ecgcohort.shapes.resample.resampling` resamples an instance at any edge length."""
    rng = np.random.default_rng(seed)
    template = _template(float(edge_length_mm))
    shapes = np.empty((population, template.n_points, 3))
    for i in range(population):
        shapes[i] = template.points(_Heart(sample_parameters(rng)))
    reference, _, _ = reference_template(edge_length_mm)
    return from_training_shapes("biv_heart", shapes, template.faces, template.labels, HEART_LABELS,
                                n_modes, template.landmarks,
                                template={"kind": "biventricular", "edge_length_mm": float(edge_length_mm)},
                                reference=reference)
