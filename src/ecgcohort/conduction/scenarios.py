"""Activation scenarios: where and when the ventricles are stimulated, placed by anatomical
rules so that the same rule lands on the same anatomical site in every patient.

Stimulus sites (the bundle-branch roots the Purkinje trees grow from, pacing sites) are
positions on the patient's own heart surface (the anatomy stage's ``heart.vtp``, on the
shape model's fixed template), in a frame of that surface: the long axis from the epicardial
apex (0) to the base plane's centre (1), and the angle about it from the LV towards the RV (0,
the septum). They do not depend on the mesh; :mod:`ecgcohort.conduction.coupling` couples them
to any mesh by position.

Recording sites and the APD gradients are fields on the mesh, from the LDRB coordinates of
its myocardial nodes:

* ``ventricle`` (0 LV, 1 RV) and ``transmural`` (0 endocardium, 1 epicardium) from the LDRB
  Laplace solves;
* ``rotational`` angle (radians, 0 towards the RV, i.e. the septum as seen from the LV axis);
* ``longitudinal``: the distance along the LV long axis from the apex (0) to the base plane
  (1). The LDRB apico-basal solution crowds towards 1 (median about 0.93 on our meshes) and
  depends on the mesh, so it is only used to find the apex and the base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # the Snakefile reads the scenarios at parse time: no numba or igl for that
    from ecgcohort.anatomy.assembly import Surface
    from ecgcohort.fibers.rule_based import MyocardialFibres

SCENARIO_KINDS = ("sinus", "lbbb", "biv_pacing", "random_pacing")
#: the kinds activated through the Purkinje trees (the others are paced on the myocardium)
PURKINJE_KINDS = ("sinus", "lbbb")
LV, RV = 0, 1
ENDOCARDIAL_BAND = 0.02  # transmural coordinate below this counts as endocardium
EPICARDIAL_BAND = 0.98


class ScenarioError(ValueError):
    """A scenario that cannot be set up on this patient (no matching site, bad settings)."""


@dataclass(frozen=True)
class Scenario:
    """One named activation scenario (see ``electrophysiology.scenarios`` in docs/config.md).

    ``kind``: ``sinus`` (both Purkinje trees), ``lbbb`` (RV tree only), ``biv_pacing`` (RV apical
    endocardium at ``rv_time_ms`` plus LV lateral free-wall epicardium at ``lv_time_ms``) or
    ``random_pacing`` (``count`` separate single-site maps, named ``{name}-00``, ...).
    Positions: ``rv_long_axis_position`` / ``lv_long_axis_position`` on the long axis (0 apex,
    1 base); the LV site is opposite the septum (rotational angle pi). ``engage_purkinje``:
    the front enters Purkinje trees where it reaches their junctions and travels on through
    them (retrograde conduction) - both trees for the pacing kinds, the blocked LV tree for
    ``lbbb`` (the block is proximal, the distal LV Purkinje network is excitable: Wyndham et
    al. 1980, Tung & Upadhyay 2020); ignored by sinus.
    """

    name: str
    kind: str
    rv_time_ms: float = 0.0
    lv_time_ms: float = 0.0
    rv_long_axis_position: float = 0.15
    lv_long_axis_position: float = 0.5
    count: int = 1
    engage_purkinje: bool = True

    def __post_init__(self) -> None:
        if self.kind not in SCENARIO_KINDS:
            raise ScenarioError(f"scenario '{self.name}': kind '{self.kind}' is not one of {', '.join(SCENARIO_KINDS)}")
        for key in ("rv_long_axis_position", "lv_long_axis_position"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ScenarioError(f"scenario '{self.name}': {key} must be in [0, 1], got {getattr(self, key)}")
        if self.count < 1:
            raise ScenarioError(f"scenario '{self.name}': count must be >= 1, got {self.count}")

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> "Scenario":
        """From one ``electrophysiology.scenarios`` entry."""
        return cls(**dict(entry))

    @property
    def uses_purkinje(self) -> bool:
        """Whether this scenario starts from the Purkinje junctions (sinus, LBBB)."""
        return self.kind in PURKINJE_KINDS

    @property
    def retrograde_trees(self) -> tuple[str, ...]:
        """The Purkinje trees ('lv', 'rv') this scenario's front enters at their junctions and
        runs through: both for an engaging pacing kind, the LV tree for an engaging LBBB,
        none for sinus."""
        if not self.engage_purkinje or self.kind == "sinus":
            return ()
        return ("lv",) if self.kind == "lbbb" else ("lv", "rv")

    def instance_names(self) -> list[str]:
        """The activation maps this scenario makes: its name, or ``name-NN`` per random site."""
        if self.kind == "random_pacing":
            return [f"{self.name}-{i:02d}" for i in range(self.count)]
        return [self.name]


def scenarios_from_config(entries: Sequence[Mapping[str, Any]]) -> dict[str, Scenario]:
    """Map every activation-map name to its scenario; names must be unique across all
    scenarios."""
    maps: dict[str, Scenario] = {}
    for entry in entries:
        scenario = Scenario.from_config(entry)
        for name in scenario.instance_names():
            if name in maps:
                raise ScenarioError(f"activation map name '{name}' is used twice in electrophysiology.scenarios")
            maps[name] = scenario
    return maps


@dataclass(frozen=True)
class VentricularFrame:
    """The LV long axis of a patient: apex and base-plane centre (mm) and per-node
    ``longitudinal`` position (0 apex, 1 base plane)."""

    apex_mm: np.ndarray
    base_centre_mm: np.ndarray
    longitudinal: np.ndarray

    @property
    def long_axis_mm(self) -> float:
        return float(np.linalg.norm(self.base_centre_mm - self.apex_mm))


def ventricular_frame(fibres: MyocardialFibres) -> VentricularFrame:
    """Apex (node of least apico-basal coordinate), base centre (mean of the LV basal nodes)
    and the normalised distance of every node along the apex-to-base axis."""
    apicobasal = fibres.coordinates["apicobasal"]
    apex = fibres.points_mm[int(np.argmin(apicobasal))]
    basal = (apicobasal > 0.999) & (fibres.coordinates["ventricle"] < 0.5)
    if not np.any(basal):
        raise ScenarioError("no basal LV nodes (apico-basal coordinate never reaches 1)")
    base_centre = fibres.points_mm[basal].mean(axis=0)
    axis = base_centre - apex
    length_sq = float(axis @ axis)
    if length_sq < 1e-6:
        raise ScenarioError("apex and base centre coincide")
    longitudinal = np.clip((fibres.points_mm - apex) @ axis / length_sq, 0.0, 1.0)
    return VentricularFrame(apex, base_centre, longitudinal)


def _angle_difference(a: np.ndarray, b: float) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (a - b))))


def find_site(fibres: MyocardialFibres, frame: VentricularFrame, ventricle: int, surface: str,
              long_axis_position: float, rotation_rad: float | None) -> int:
    """Node index on the ``surface`` ('endo' or 'epi') of ``ventricle`` (LV 0, RV 1) closest to
    the long-axis position (0 apex, 1 base) and rotational angle (radians; None: any angle).

    Closeness is measured in mm: long-axis offset times the axis length, angular offset times
    the node's distance from the axis."""
    transmural = fibres.coordinates["transmural"]
    on_surface = transmural < ENDOCARDIAL_BAND if surface == "endo" else transmural > EPICARDIAL_BAND
    in_ventricle = (fibres.coordinates["ventricle"] >= 0.5) == bool(ventricle)
    candidates = np.flatnonzero(on_surface & in_ventricle)
    if candidates.size == 0:
        raise ScenarioError(f"no {'RV' if ventricle else 'LV'} {surface}cardial nodes to place a site on")
    axis = (frame.base_centre_mm - frame.apex_mm) / frame.long_axis_mm
    offset = fibres.points_mm[candidates] - frame.apex_mm
    radius = np.linalg.norm(offset - np.outer(offset @ axis, axis), axis=1)
    cost = ((frame.longitudinal[candidates] - long_axis_position) * frame.long_axis_mm) ** 2
    if rotation_rad is not None:
        cost = cost + (_angle_difference(fibres.coordinates["rotational"][candidates], rotation_rad) * radius) ** 2
    return int(candidates[np.argmin(cost)])


@dataclass(frozen=True)
class HisRoots:
    """Where the left and right bundle branches reach the endocardium (mm), where the
    moderator band meets the RV free wall (mm), and the direction (unit, towards the apex) the
    Purkinje trees grow from there."""

    lv_mm: np.ndarray
    rv_mm: np.ndarray
    rv_free_wall_mm: np.ndarray
    direction: np.ndarray


@dataclass(frozen=True)
class SurfaceFrame:
    """The long axis of a patient's heart surface: epicardial apex and base-plane centre (mm),
    the unit axis from apex to base, and the unit septal direction (from the LV towards the RV,
    orthogonal to the axis)."""

    apex_mm: np.ndarray
    base_centre_mm: np.ndarray
    axis: np.ndarray
    septal: np.ndarray

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.base_centre_mm - self.apex_mm))

    def longitudinal(self, points_mm: np.ndarray) -> np.ndarray:
        """Position along the long axis, 0 at the apex and 1 at the base plane (clipped)."""
        return np.clip((np.asarray(points_mm) - self.apex_mm) @ self.axis / self.length_mm, 0.0, 1.0)

    def radius_mm(self, points_mm: np.ndarray) -> np.ndarray:
        """Distance from the long axis, mm."""
        offset = np.asarray(points_mm) - self.apex_mm
        return np.linalg.norm(offset - np.outer(offset @ self.axis, self.axis), axis=1)

    def rotational(self, points_mm: np.ndarray) -> np.ndarray:
        """Angle about the long axis from the septal direction, radians in (-pi, pi]."""
        offset = np.asarray(points_mm) - self.apex_mm
        return np.arctan2(offset @ np.cross(self.axis, self.septal), offset @ self.septal)


def surface_frame(heart: Surface) -> SurfaceFrame:
    """The :class:`SurfaceFrame` of a labelled heart surface (regions ``lv_endocardium``,
    ``rv_endocardium``, ``epicardium``, ``base``)."""
    from ecgcohort.anatomy.assembly import heart_frame

    frame = heart_frame(heart)
    axis = -frame.long_axis
    return SurfaceFrame(frame.apex, frame.base_centre, axis, frame.lv_rv_axis)


def surface_site(heart: Surface, frame: SurfaceFrame, region: str, long_axis_position: float,
                 rotation_rad: float | None) -> np.ndarray:
    """The vertex (mm) of ``region`` closest to the long-axis position (0 apex, 1 base) and
    rotational angle (radians from the septum; None: any angle). Closeness in mm: the axial
    offset times the axis length, the angular offset times the vertex's distance from the axis."""
    points = heart.points[heart.region(region)]
    cost = ((frame.longitudinal(points) - long_axis_position) * frame.length_mm) ** 2
    if rotation_rad is not None:
        cost = cost + (_angle_difference(frame.rotational(points), rotation_rad) * frame.radius_mm(points)) ** 2
    return points[int(np.argmin(cost))].copy()


def his_roots(heart: Surface, long_axis_position: float, moderator_band_position: float = 0.4) -> HisRoots:
    """Bundle-branch roots on the heart surface: the LV septal endocardium at
    ``long_axis_position`` (0 apex, 1 base) and the RV endocardial vertex nearest to it
    (across the septum); and the moderator band's free-wall end: the RV endocardial vertex
    farthest from the long axis within 0.05 of ``moderator_band_position``."""
    if not 0.0 < long_axis_position < 1.0:
        raise ScenarioError(f"His position must be inside (0, 1) on the long axis, got {long_axis_position}")
    frame = surface_frame(heart)
    lv = surface_site(heart, frame, "lv_endocardium", long_axis_position, 0.0)
    rv_points = heart.points[heart.region("rv_endocardium")]
    rv = rv_points[int(np.argmin(np.linalg.norm(rv_points - lv, axis=1)))].copy()
    band = rv_points[np.abs(frame.longitudinal(rv_points) - moderator_band_position) < 0.05]
    if band.size == 0:
        raise ScenarioError(f"no RV endocardium at long-axis position {moderator_band_position} for the moderator band")
    free_wall = band[int(np.argmax(frame.radius_mm(band)))].copy()
    return HisRoots(lv, rv, free_wall, -frame.axis)


def random_myocardial_point(heart: Surface, rng: np.random.Generator, batch: int = 256) -> np.ndarray:
    """A point (mm) drawn uniformly from the myocardium enclosed by the heart surface."""
    from ecgcohort.geometry import winding_numbers

    low, high = heart.points.min(axis=0), heart.points.max(axis=0)
    for _ in range(1000):
        candidates = low + rng.random((batch, 3)) * (high - low)
        inside = np.flatnonzero(winding_numbers(heart.points, heart.faces, candidates) > 0.5)
        if inside.size:
            return candidates[inside[0]]
    raise ScenarioError("no point of the heart's bounding box lies inside the myocardium")


def pacing_sites(scenario: Scenario, heart: Surface, rng: np.random.Generator | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(positions (k, 3) mm, stimulus times (k,) ms) of a pacing scenario on the heart surface:
    ``biv_pacing`` gives the RV apical endocardium and the LV lateral free-wall epicardium
    (rotational angle pi); ``random_pacing`` one point drawn uniformly from the myocardium
    with ``rng``."""
    if scenario.kind == "biv_pacing":
        frame = surface_frame(heart)
        rv = surface_site(heart, frame, "rv_endocardium", scenario.rv_long_axis_position, None)
        lv = surface_site(heart, frame, "epicardium", scenario.lv_long_axis_position, np.pi)
        return np.stack([rv, lv]), np.array([scenario.rv_time_ms, scenario.lv_time_ms])
    if scenario.kind == "random_pacing":
        if rng is None:
            raise ScenarioError(f"scenario '{scenario.name}': random pacing needs the patient's generator")
        return random_myocardial_point(heart, rng)[None, :], np.array([0.0])
    raise ScenarioError(f"scenario '{scenario.name}' ({scenario.kind}) is not a pacing scenario")
