"""The convergence stage's evaluation points: where they lie, and that classifying the candidates
a block of rounds at a time keeps the points of one round at a time."""

from __future__ import annotations

import types

import numpy as np
import pyvista as pv

from ecgcohort.convergence.level import evaluation_points
from ecgcohort.geometry import signed_distance, winding_numbers

HEART_MM, BODY_MM = 30.0, 120.0
DEPTH_MM, SHELL_MM = 2.0, 20.0


def _sphere(radius: float) -> types.SimpleNamespace:
    sphere = pv.Icosphere(radius=radius, nsub=4)
    return types.SimpleNamespace(points=np.asarray(sphere.points, dtype=float),
                                 faces=np.asarray(sphere.faces.reshape(-1, 4)[:, 1:], dtype=np.int64))


def _one_round_at_a_time(heart, torso, rng: np.random.Generator, myocardium: int, torso_count: int) -> np.ndarray:
    """The selection as first written: one 20,000-candidate round per closest-point query."""
    low, high = heart.points.min(axis=0) - SHELL_MM, heart.points.max(axis=0) + SHELL_MM
    kept = {1: [], 2: []}
    for _ in range(200):
        if len(np.concatenate(kept[1] or [np.empty((0, 3))])) >= myocardium and \
                len(np.concatenate(kept[2] or [np.empty((0, 3))])) >= torso_count:
            break
        candidates = low + rng.random((20000, 3)) * (high - low)
        distance = signed_distance(heart.points, heart.faces, candidates, closed_surface=True)
        shell = np.flatnonzero((distance >= DEPTH_MM) & (distance <= SHELL_MM))
        shell = shell[winding_numbers(torso.points, torso.faces, candidates[shell]) > 0.5]
        shell = shell[signed_distance(torso.points, torso.faces, candidates[shell], closed_surface=True) <= -15.0]
        kept[1].append(candidates[distance <= -DEPTH_MM])
        kept[2].append(candidates[shell])
    return np.concatenate([np.concatenate(kept[1])[:myocardium], np.concatenate(kept[2])[:torso_count]])


def test_evaluation_points_lie_where_asked_and_match_one_round_at_a_time():
    heart, torso = _sphere(HEART_MM), _sphere(BODY_MM)
    # more myocardial points than one round holds (the myocardium deeper than 2 mm fills about 9 % of the box):
    # the selection spans several rounds and stops inside a block
    points, region = evaluation_points(heart, torso, np.random.default_rng(3), 4000, 500, DEPTH_MM, SHELL_MM)
    radius = np.linalg.norm(points, axis=1)
    assert np.array_equal(region, np.repeat([1, 2], [4000, 500]))
    # the icosphere's faces lie up to 0.1 mm inside the sphere of its vertices
    assert radius[region == 1].max() <= HEART_MM - DEPTH_MM + 1e-9
    torso_radius = radius[region == 2]
    assert torso_radius.min() >= HEART_MM + DEPTH_MM - 0.2 and torso_radius.max() <= HEART_MM + SHELL_MM + 1e-9
    expected = _one_round_at_a_time(heart, torso, np.random.default_rng(3), 4000, 500)
    np.testing.assert_array_equal(points, expected)
