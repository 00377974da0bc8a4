"""Paper 3's 75 intracardiac recording sites, placed on each patient from its ventricular
coordinates (:class:`~ecgcohort.fibers.MyocardialFibres`) instead of by hand.

* **30 endocardial sites.** 17 in the LV at the centres of the AHA-17 segments (Cerqueira et
  al. 2002): the long axis from the apex (0) to the base plane (1) is split into the apex cap
  (segment 17, below ``APEX_CAP``) and apical, mid and basal thirds of the rest; the basal and
  mid rings have six 60° segments, the apical ring four 90° segments. Rotational angle 0 points
  at the septum (the RV), positive angles are anterior, so the segment centres are anterior 90°,
  anteroseptal 30°, inferoseptal −30°, inferior −90°, inferolateral −150° and anterolateral
  150°; apical anterior 90°, septal 0°, inferior −90° and lateral 180°. 13 in the RV: five on
  its septal surface across the septum from the LV septal sites (segments 2, 3, 8, 9, 14) and
  eight spread over the RV free wall by farthest-point sampling from the free wall's most
  apical node.
* **20 epicardial sites**: the epicardial node nearest to each endocardial site that has an
  epicardium behind it — the 12 LV sites off the septum and the 8 RV free-wall sites (the
  paper: "20 exterior wall points … based on minimum distances from the … endocardial points").
* **25 mid-wall sites**: the node off both surfaces nearest to the midpoint of each of those 20
  endocardial–epicardial pairs and of the 5 LV–RV septal pairs.

Site order: LV endocardium by AHA segment 1…17, RV septum, RV free wall, epicardium, mid-wall.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecgcohort.conduction.scenarios import (ENDOCARDIAL_BAND, EPICARDIAL_BAND, LV, RV, ScenarioError,
                                            find_site, ventricular_frame)
from ecgcohort.fibers.rule_based import MyocardialFibres
from ecgcohort.io import atomic_path

#: Long-axis position (0 apex, 1 base) below which the LV endocardium is the apex cap (segment 17).
APEX_CAP = 0.1
_THIRD = (1.0 - APEX_CAP) / 3.0
#: Long-axis bands (low, high) of the apical, mid and basal rings.
RING_BANDS = {"apical": (APEX_CAP, APEX_CAP + _THIRD), "mid": (APEX_CAP + _THIRD, APEX_CAP + 2 * _THIRD),
              "basal": (APEX_CAP + 2 * _THIRD, 1.0)}
#: AHA-17 segments: number → (name, ring, centre angle in degrees; None for the apex cap).
AHA_SEGMENTS: dict[int, tuple[str, str, float | None]] = {
    1: ("basal anterior", "basal", 90.0), 2: ("basal anteroseptal", "basal", 30.0),
    3: ("basal inferoseptal", "basal", -30.0), 4: ("basal inferior", "basal", -90.0),
    5: ("basal inferolateral", "basal", -150.0), 6: ("basal anterolateral", "basal", 150.0),
    7: ("mid anterior", "mid", 90.0), 8: ("mid anteroseptal", "mid", 30.0),
    9: ("mid inferoseptal", "mid", -30.0), 10: ("mid inferior", "mid", -90.0),
    11: ("mid inferolateral", "mid", -150.0), 12: ("mid anterolateral", "mid", 150.0),
    13: ("apical anterior", "apical", 90.0), 14: ("apical septal", "apical", 0.0),
    15: ("apical inferior", "apical", -90.0), 16: ("apical lateral", "apical", 180.0),
    17: ("apex", "apex", None),
}
SEPTAL_SEGMENTS = (2, 3, 8, 9, 14)
#: Half-width (degrees) of a segment in its ring: 30° in the basal and mid rings, 45° in the apical.
SEGMENT_HALF_WIDTH = {"basal": 30.0, "mid": 30.0, "apical": 45.0}
RV_FREE_WALL_SITES = 8
N_SITES = 75


@dataclass(frozen=True)
class RecordingSites:
    """The 75 sites of one patient: ``nodes`` index the myocardial nodes of fibres.npz,
    ``positions_mm`` (75, 3), ``labels`` (e.g. ``LV endo 2 basal anteroseptal``) and ``layer``
    (``endo``, ``epi``, ``mid``)."""

    nodes: np.ndarray
    positions_mm: np.ndarray
    labels: tuple[str, ...]
    layer: tuple[str, ...]

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as temporary, open(temporary, "wb") as stream:
            np.savez(stream, nodes=self.nodes, positions_mm=self.positions_mm, labels=np.array(self.labels),
                     layer=np.array(self.layer))


def load_sites(path: str | Path) -> RecordingSites:
    with np.load(path) as data:
        return RecordingSites(data["nodes"], data["positions_mm"], tuple(str(s) for s in data["labels"]),
                              tuple(str(s) for s in data["layer"]))


def _endocardium(fibres: MyocardialFibres, ventricle: int) -> np.ndarray:
    transmural, side = fibres.coordinates["transmural"], fibres.coordinates["ventricle"] >= 0.5
    return np.flatnonzero((transmural < ENDOCARDIAL_BAND) & (side == bool(ventricle)))


def _nearest(points: np.ndarray, candidates: np.ndarray, target: np.ndarray) -> int:
    return int(candidates[np.argmin(np.linalg.norm(points[candidates] - target, axis=1))])


def _farthest_point_sampling(points: np.ndarray, start: int, count: int) -> np.ndarray:
    chosen = [start]
    distance = np.linalg.norm(points - points[start], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.array(chosen)


def recording_sites(fibres: MyocardialFibres) -> RecordingSites:
    """The 75 recording sites of a patient (module docstring); ScenarioError where a ventricle's
    endocardium or epicardium has no node to place a site on."""
    frame = ventricular_frame(fibres)
    points = fibres.points_mm
    nodes, labels, layers = [], [], []

    def add(node: int, label: str, layer: str) -> None:
        nodes.append(int(node))
        labels.append(label)
        layers.append(layer)

    for segment, (name, ring, angle) in AHA_SEGMENTS.items():
        position = APEX_CAP / 2 if angle is None else float(np.mean(RING_BANDS[ring]))
        node = find_site(fibres, frame, LV, "endo", position, None if angle is None else np.deg2rad(angle))
        add(node, f"LV endo {segment} {name}", "endo")
    lv_endo_nodes = dict(zip(AHA_SEGMENTS, nodes))

    rv_endocardium = _endocardium(fibres, RV)
    if rv_endocardium.size < len(SEPTAL_SEGMENTS) + RV_FREE_WALL_SITES:
        raise ScenarioError(f"the RV endocardium has {rv_endocardium.size} nodes, too few for 13 sites")
    septal_pairs = []
    for segment in SEPTAL_SEGMENTS:
        node = _nearest(points, rv_endocardium, points[lv_endo_nodes[segment]])
        septal_pairs.append((lv_endo_nodes[segment], node))
        add(node, f"RV endo septum opposite LV {segment}", "endo")
    # the free wall is the half of the RV endocardium farther from the LV endocardium
    lv_endocardium = _endocardium(fibres, LV)
    from scipy.spatial import cKDTree

    distance_to_lv = cKDTree(points[lv_endocardium]).query(points[rv_endocardium])[0]
    free_wall = rv_endocardium[distance_to_lv > np.median(distance_to_lv)]
    start = int(np.argmin(frame.longitudinal[free_wall]))
    for k, index in enumerate(_farthest_point_sampling(points[free_wall], start, RV_FREE_WALL_SITES)):
        add(free_wall[index], f"RV endo free wall {k + 1}", "endo")

    epicardium = np.flatnonzero(fibres.coordinates["transmural"] > EPICARDIAL_BAND)
    if epicardium.size == 0:
        raise ScenarioError("no epicardial nodes to place the epicardial sites on")
    walled = [node for segment, node in lv_endo_nodes.items() if segment not in SEPTAL_SEGMENTS]
    walled += nodes[17 + len(SEPTAL_SEGMENTS):]
    pairs = []
    for endo_node, label in zip(walled, [labels[nodes.index(n)] for n in walled]):
        epi_node = _nearest(points, epicardium, points[endo_node])
        pairs.append((endo_node, epi_node))
        add(epi_node, label.replace("endo", "epi", 1), "epi")
    transmural = fibres.coordinates["transmural"]
    # off both surfaces: on a coarse mesh the node nearest to a thin wall's midpoint is often a
    # surface node
    interior = np.flatnonzero((transmural > ENDOCARDIAL_BAND) & (transmural < EPICARDIAL_BAND))
    if interior.size == 0:
        raise ScenarioError("the myocardium has no nodes between its surfaces for the mid-wall sites")
    for (endo_node, epi_node), label in zip(pairs + septal_pairs,
                                            [f"mid-wall behind {labels[nodes.index(e)]}" for e, _ in pairs]
                                            + [f"mid-septum at LV {s}" for s in SEPTAL_SEGMENTS]):
        add(_nearest(points, interior, 0.5 * (points[endo_node] + points[epi_node])), label, "mid")
    if len(nodes) != N_SITES:  # the layout above is fixed; this guards edits to it
        raise AssertionError(f"{len(nodes)} recording sites instead of {N_SITES}")
    node_array = np.array(nodes)
    return RecordingSites(node_array, points[node_array].copy(), tuple(labels), tuple(layers))


def segment_of(fibres: MyocardialFibres, node: int) -> tuple[str, float]:
    """(ring, rotational angle in degrees) of a myocardial node: the ring by the long-axis
    bands of :data:`RING_BANDS` (``apex`` below :data:`APEX_CAP`)."""
    position = float(ventricular_frame(fibres).longitudinal[node])
    ring = "apex" if position < APEX_CAP else next(name for name, (low, high) in RING_BANDS.items()
                                                   if low <= position <= high)
    return ring, float(np.rad2deg(fibres.coordinates["rotational"][node]))
