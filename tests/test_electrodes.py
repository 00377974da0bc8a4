"""Electrode placement on a closed-form trunk: anatomical order, on-surface, spread."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.anatomy import (
    STANDARD_ELECTRODES,
    anterior_electrodes,
    electrode_table,
    normalised_coordinates,
    standard_electrodes,
)
from ecgcohort.anatomy.electrodes import ElectrodeError
from ecgcohort.geometry import signed_distance
from synthetic import trunk


@pytest.fixture(scope="module")
def body():
    return trunk(sectors=96, sections=61)


def test_precordial_electrodes_follow_the_anatomical_rules(body):
    points, faces, landmarks = body
    placed = standard_electrodes(points, faces, landmarks)
    assert list(placed) == list(STANDARD_ELECTRODES)
    x = {name: p[0] for name, p in placed.items()}
    assert x["V1"] < 0 < x["V2"] < x["V3"] < x["V4"] < x["V5"] < x["V6"]  # V1 right of V2, V6 most lateral
    assert placed["V1"][2] == pytest.approx(placed["V2"][2]) == pytest.approx(60 + 0.55 * 180)
    assert placed["V4"][2] == pytest.approx(placed["V5"][2]) == pytest.approx(placed["V6"][2])
    assert placed["V4"][2] == pytest.approx(60 + 0.72 * 180)
    # V6 on the mid-axillary line: the widest point of the section; V1-V5 on the front
    assert placed["V6"][:2] == pytest.approx([170.0, 0.0], abs=1.0)
    assert all(placed[name][1] > 0 for name in ("V1", "V2", "V3", "V4", "V5"))
    assert placed["RA"][0] < 0 < placed["LA"][0] and placed["LL"][2] > placed["V6"][2]
    distance = signed_distance(points, faces, np.array(list(placed.values())))
    assert np.abs(distance).max() < 1e-4  # mm: on a facet


def test_anterior_electrodes_cover_the_front_evenly(body):
    points, faces, landmarks = body
    spread = anterior_electrodes(points, faces, 60, np.random.default_rng(3), landmarks)
    assert np.abs(signed_distance(points, faces, spread)).max() < 1e-4
    assert (spread[:, 1] > 0).all()
    gaps = np.linalg.norm(spread[:, None] - spread[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    nearest = gaps.min(axis=1)
    # an even spread: the closest pair is not much closer than the typical spacing, unlike
    # uniform random points, whose closest pair is far closer
    assert nearest.min() > 0.6 * np.median(nearest)
    same = anterior_electrodes(points, faces, 60, np.random.default_rng(3), landmarks)
    np.testing.assert_array_equal(same, spread)


def test_uniform_random_points_would_fail_the_spread_check(body):
    points, faces, landmarks = body
    rng = np.random.default_rng(5)
    x = rng.uniform(-150, 150, 60)
    z = rng.uniform(60, 560, 60)
    candidates = np.column_stack([x, np.zeros(60), z])
    gaps = np.linalg.norm(candidates[:, None] - candidates[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    nearest = gaps.min(axis=1)
    assert nearest.min() < 0.6 * np.median(nearest)


def test_table_has_normalised_coordinates_in_range(body):
    points, faces, landmarks = body
    table = electrode_table(points, faces, landmarks, 16, np.random.default_rng(1))
    assert list(table.name[:9]) == list(STANDARD_ELECTRODES) and len(table) == 25
    assert table.x_norm.between(-1, 1).all() and table.y_norm.between(0, 1).all() and table.z_norm.between(0, 1).all()
    v6 = table.set_index("name").loc["V6"]
    assert v6.x_norm == pytest.approx(1.0, abs=0.01) and v6.y_norm == pytest.approx(0.5, abs=0.01)
    corners = normalised_coordinates(points, np.array([points.min(axis=0), points.max(axis=0)]))
    np.testing.assert_allclose(corners, [[-1, 0, 0], [1, 1, 1]], atol=1e-12)


def test_an_electrode_off_the_body_is_an_error(body):
    points, faces, landmarks = body
    far = dict(landmarks, jugular_notch=np.array([0.0, 115.0, 900.0]), xiphoid=np.array([0.0, 115.0, 1000.0]))
    with pytest.raises(ElectrodeError, match="no section"):
        standard_electrodes(points, faces, far)


def test_the_anterior_array_added_to_the_written_standard_table_is_the_whole_table(body, tmp_path):
    # the workflow places the 12-lead electrodes in one job (the convergence ladder reads only
    # them) and adds the anterior array in another from the CSV: the same table to the last bit,
    # and a different anterior count leaves the 12-lead rows as they were
    import pandas as pd

    from ecgcohort.anatomy.electrodes import standard_electrode_table, with_anterior_electrodes
    from ecgcohort.anatomy.outputs import write_electrodes

    points, faces, landmarks = body
    direct = electrode_table(points, faces, landmarks, 16, np.random.default_rng(7))
    write_electrodes(standard_electrode_table(points, faces, landmarks), tmp_path / "standard.csv")
    standard = pd.read_csv(tmp_path / "standard.csv", float_precision="round_trip")
    pd.testing.assert_frame_equal(with_anterior_electrodes(standard, points, faces, landmarks, 16,
                                                           np.random.default_rng(7)), direct, check_exact=True)
    fewer = with_anterior_electrodes(standard, points, faces, landmarks, 4, np.random.default_rng(7))
    assert len(fewer) == 13
    pd.testing.assert_frame_equal(fewer.iloc[:9], direct.iloc[:9], check_exact=True)
