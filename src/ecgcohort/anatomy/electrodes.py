"""ECG electrodes on the body surface: the 9 independent electrodes of the standard 12-lead
ECG placed by anatomical rules, plus unipolar electrodes spread over the anterior torso.

Frame (mm): x right to left, y posterior to anterior, z superior to inferior. Normalised torso
coordinates: x in [-1, 1] (right to left), y in [0, 1] (posterior to anterior), z in [0, 1]
(superior to inferior), from the torso's bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from ecgcohort.geometry import ray_hits

if TYPE_CHECKING:  # the tables' builders import it: the lead-field job reads STANDARD_ELECTRODES only
    import pandas as pd

STANDARD_ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")


class ElectrodeError(ValueError):
    """An electrode that cannot be placed on the body surface."""


@dataclass(frozen=True)
class ElectrodeRules:
    """Anatomical placement rules, as fractions of the sternum (jugular notch to xiphoid)."""

    fourth_intercostal_fraction: float = 0.55
    fifth_intercostal_fraction: float = 0.72
    sternal_border_mm: float = 20.0
    midclavicular_fraction: float = 0.7   # of the distance from the midline to the left shoulder


def _section_centre(points: np.ndarray, z: float, band_mm: float = 20.0) -> np.ndarray:
    section = points[np.abs(points[:, 2] - z) < band_mm]
    if len(section) < 3:
        raise ElectrodeError(f"the body surface has no section at z = {z:.0f} mm")
    centre = section.mean(axis=0)
    centre[2] = z
    return centre


def _cast(points: np.ndarray, faces: np.ndarray, origin: np.ndarray, direction: np.ndarray, name: str) -> np.ndarray:
    hits = ray_hits(points, faces, origin, direction)
    if len(hits) == 0:
        raise ElectrodeError(f"electrode {name}: no body surface from {origin.round(1).tolist()} "
                             f"towards {np.round(direction, 2).tolist()}")
    return hits[-1]


def standard_electrodes(points: np.ndarray, faces: np.ndarray, landmarks: Mapping[str, np.ndarray],
                        rules: ElectrodeRules = ElectrodeRules()) -> dict[str, np.ndarray]:
    """Positions (mm) of RA, LA, LL, V1-V6 on the body surface."""
    top, bottom = np.asarray(landmarks["jugular_notch"]), np.asarray(landmarks["xiphoid"])
    midline = 0.5 * (top[0] + bottom[0])
    fourth = top[2] + rules.fourth_intercostal_fraction * (bottom[2] - top[2])
    fifth = top[2] + rules.fifth_intercostal_fraction * (bottom[2] - top[2])
    forward = np.array([0.0, 1.0, 0.0])

    def anterior(x: float, z: float, name: str) -> np.ndarray:
        centre = _section_centre(points, z)
        return _cast(points, faces, np.array([x, centre[1], z]), forward, name)

    placed = {
        "V1": anterior(midline - rules.sternal_border_mm, fourth, "V1"),
        "V2": anterior(midline + rules.sternal_border_mm, fourth, "V2"),
    }
    midclavicular = midline + rules.midclavicular_fraction * (landmarks["left_shoulder"][0] - midline)
    placed["V4"] = anterior(midclavicular, fifth, "V4")
    middle = 0.5 * (placed["V2"] + placed["V4"])
    placed["V3"] = anterior(middle[0], middle[2], "V3")
    centre = _section_centre(points, placed["V4"][2])
    placed["V6"] = _cast(points, faces, centre, np.array([1.0, 0.0, 0.0]), "V6")
    # V5 on the anterior axillary line, at V4's level: cast through the midpoint of V4 and V6, so
    # that it lies lateral to V4 on a breast too (the bisector of the two directions met a
    # woman's breast medial to V4)
    between = 0.5 * (placed["V4"] + placed["V6"]) - centre
    between[2] = 0.0
    placed["V5"] = _cast(points, faces, centre, between, "V5")
    for limb, landmark in (("RA", "right_shoulder"), ("LA", "left_shoulder"), ("LL", "left_hip")):
        placed[limb] = _nearest_vertex(points, np.asarray(landmarks[landmark]))
    return {name: placed[name] for name in STANDARD_ELECTRODES}


def _nearest_vertex(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    return points[int(np.argmin(np.linalg.norm(points - target, axis=1)))].copy()


def anterior_electrodes(points: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator,
                        landmarks: Mapping[str, np.ndarray], min_facing: float = 0.3, max_vertical: float = 0.8,
                        max_lateral_fraction: float = 0.9, candidates_per_electrode: int = 200) -> np.ndarray:
    """``count`` points (mm) spread evenly over the anterior torso surface.

    Candidates are drawn uniformly by area on faces whose outward normal faces forwards
    (normal_y >= ``min_facing``) and not up or down (|normal_z| < ``max_vertical``: the flat
    neck and hip cuts of the trunk are no skin), between the jugular notch and the hips and
    medial to ``max_lateral_fraction`` of the distance from the midline to the shoulder
    landmarks (the shoulders' cut edges are where a coarse mesh's body surface departs most
    from the patient's), then thinned by farthest-point sampling, which gives
    blue-noise-like spacing without clumps.
    """
    if count == 0:
        return np.empty((0, 3))
    a, b, c = (points[faces[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    areas = 0.5 * np.linalg.norm(normals, axis=1)
    unit = normals / np.maximum(2 * areas[:, None], 1e-300)
    centres = (a + b + c) / 3
    hip_level = 0.5 * (landmarks["left_hip"][2] + landmarks["right_hip"][2])
    midline = 0.5 * (landmarks["jugular_notch"][0] + landmarks["xiphoid"][0])
    half_width = 0.5 * (abs(landmarks["left_shoulder"][0] - midline) + abs(landmarks["right_shoulder"][0] - midline))
    eligible = ((unit[:, 1] >= min_facing) & (np.abs(unit[:, 2]) < max_vertical)
                & (np.abs(centres[:, 0] - midline) <= max_lateral_fraction * half_width)
                & (centres[:, 2] >= landmarks["jugular_notch"][2]) & (centres[:, 2] <= hip_level))
    if not eligible.any():
        raise ElectrodeError("no anterior body surface between the jugular notch and the hips")
    chosen = rng.choice(np.flatnonzero(eligible), size=count * candidates_per_electrode,
                        p=areas[eligible] / areas[eligible].sum())
    u, v = rng.random((2, len(chosen)))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    candidates = a[chosen] + u[:, None] * (b[chosen] - a[chosen]) + v[:, None] * (c[chosen] - a[chosen])
    selected = [int(np.argmin(np.linalg.norm(candidates - candidates.mean(axis=0), axis=1)))]
    distance = np.linalg.norm(candidates - candidates[selected[0]], axis=1)
    for _ in range(count - 1):
        selected.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(candidates - candidates[selected[-1]], axis=1))
    return candidates[selected]


def normalised_coordinates(points: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Normalised torso coordinates (x in [-1, 1], y and z in [0, 1]) of ``positions``."""
    low, high = points.min(axis=0), points.max(axis=0)
    unit = (np.asarray(positions) - low) / (high - low)
    return np.column_stack([2 * unit[:, 0] - 1, unit[:, 1], unit[:, 2]])


def _table(names: Sequence[str], kinds: Sequence[str], positions: np.ndarray, points: np.ndarray) -> pd.DataFrame:
    import pandas as pd

    normalised = normalised_coordinates(points, positions)
    return pd.DataFrame({
        "name": list(names), "kind": list(kinds),
        "x_mm": positions[:, 0], "y_mm": positions[:, 1], "z_mm": positions[:, 2],
        "x_norm": normalised[:, 0], "y_norm": normalised[:, 1], "z_norm": normalised[:, 2],
    })


def standard_electrode_table(points: np.ndarray, faces: np.ndarray, landmarks: Mapping[str, np.ndarray],
                             rules: ElectrodeRules = ElectrodeRules()) -> pd.DataFrame:
    """The 12-lead electrodes (RA, LA, LL, V1-V6): name, kind, position (mm) and normalised
    torso coordinates."""
    standard = standard_electrodes(points, faces, landmarks, rules)
    return _table(list(standard), ["standard"] * len(standard), np.array(list(standard.values())), points)


def with_anterior_electrodes(standard: pd.DataFrame, points: np.ndarray, faces: np.ndarray,
                             landmarks: Mapping[str, np.ndarray], anterior_count: int,
                             rng: np.random.Generator) -> pd.DataFrame:
    """``standard`` (:func:`standard_electrode_table`) followed by ``anterior_count`` anterior
    electrodes A000, A001, ... (positions independent of the standard ones)."""
    spread = anterior_electrodes(points, faces, anterior_count, rng, landmarks)
    positions = np.vstack([standard[["x_mm", "y_mm", "z_mm"]].to_numpy(dtype=float), spread])
    names = standard.name.tolist() + [f"A{i:03d}" for i in range(len(spread))]
    return _table(names, standard.kind.tolist() + ["anterior"] * len(spread), positions, points)


def electrode_table(points: np.ndarray, faces: np.ndarray, landmarks: Mapping[str, np.ndarray],
                    anterior_count: int, rng: np.random.Generator,
                    rules: ElectrodeRules = ElectrodeRules()) -> pd.DataFrame:
    """All electrodes: name, kind, position (mm) and normalised torso coordinates."""
    return with_anterior_electrodes(standard_electrode_table(points, faces, landmarks, rules), points, faces,
                                    landmarks, anterior_count, rng)
