"""The convergence stage's evaluation points: where they lie, and that classifying the candidates
a block of rounds at a time keeps the points of one round at a time."""

from __future__ import annotations

import types

import numpy as np
import pytest
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


@pytest.mark.parametrize("myocardium", [4000, 16000])
def test_evaluation_points_lie_where_asked_and_match_one_round_at_a_time(myocardium):
    heart, torso = _sphere(HEART_MM), _sphere(BODY_MM)
    # more myocardial points than one round holds (the myocardium deeper than 2 mm fills about 9 % of the box):
    # the selection spans several rounds and stops inside a block; at 16,000 it needs a second
    # block, where the shell has its points and only the heart's inside is measured
    points, region = evaluation_points(heart, torso, np.random.default_rng(3), myocardium, 500, DEPTH_MM, SHELL_MM)
    radius = np.linalg.norm(points, axis=1)
    assert np.array_equal(region, np.repeat([1, 2], [myocardium, 500]))
    # the icosphere's faces lie up to 0.1 mm inside the sphere of its vertices
    assert radius[region == 1].max() <= HEART_MM - DEPTH_MM + 1e-9
    torso_radius = radius[region == 2]
    assert torso_radius.min() >= HEART_MM + DEPTH_MM - 0.2 and torso_radius.max() <= HEART_MM + SHELL_MM + 1e-9
    expected = _one_round_at_a_time(heart, torso, np.random.default_rng(3), myocardium, 500)
    np.testing.assert_array_equal(points, expected)


def test_the_ladder_table_shows_the_patients_heart_size_where_it_differs_from_the_level():
    """meshing.heart_element_size_follows_heart meshes a woman's 1.2 mm level at 1.165 mm: the
    Markdown table says so in its own column; a table of levels meshed as named has none."""
    import pandas as pd

    from ecgcohort.convergence.summary import markdown_table

    rows = [{"patient": "train-0000", "heart_mm": heart, "patient_heart_mm": heart * 0.9709, "torso_mm": 30.0,
             "gradient": "p1", "reference": heart == 0.7, "eikonal_refinements": 1, "nodes": 1000.0,
             "myocardial_volume_change": 0.0, "activation_span_ms": 90.0, "ecg_error": 0.05, "ecg_error_qrs": 0.05,
             "lead_field_share": 0.03, "lead_field_share_qrs": 0.03, "activation_share": 0.04,
             "grad_angle_deg_myocardium": 1.7, "grad_magnitude_myocardium": 0.02, "grad_angle_deg_torso": 2.4,
             "order_ecg_error": np.nan, "order_grad_angle_deg_myocardium": np.nan, "total_s": 30.0}
            for heart in (1.2, 0.7)]
    scaled = markdown_table(pd.DataFrame(rows))
    header, _, level, reference = scaled.splitlines()
    assert "| heart / mm | patient's heart / mm | torso / mm |" in header
    assert level.startswith("| train-0000 | 1.2 | 1.165 | 30 |")
    assert reference.startswith("| train-0000 | 0.7 | 0.680 | 30 |")
    as_named = markdown_table(pd.DataFrame([{**row, "patient_heart_mm": row["heart_mm"]} for row in rows]))
    assert "patient's heart" not in as_named and "| train-0000 | 1.2 | 30 |" in as_named
