"""Surface measures and checks against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.geometry import (
    grid_inside,
    inspect_surface,
    ray_hits,
    rotation_about,
    signed_distance,
    surface_area,
    surface_centroid,
    surface_volume,
    winding_numbers,
)
from synthetic import lv_cup, trunk


def test_the_shell_volume_converges_to_the_closed_form():
    exact = 2 / 3 * np.pi * (35.0**3 - 25.0**3)
    errors = []
    for rings, sectors in ((6, 20), (12, 40), (24, 80)):
        points, faces, _ = lv_cup(rings=rings, sectors=sectors)
        errors.append(abs(surface_volume(points, faces) - exact) / exact)
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.005
    assert errors[1] / errors[2] > 3.5  # second order in the grid spacing


def test_elliptic_cylinder_area_volume_and_centroid():
    points, faces, _ = trunk(sectors=256)
    a, b, h = 170.0, 115.0, 600.0
    assert surface_volume(points, faces) == pytest.approx(np.pi * a * b * h, rel=2e-3)
    ellipse_perimeter = np.pi * (3 * (a + b) - np.sqrt((3 * a + b) * (a + 3 * b)))
    assert surface_area(points, faces) == pytest.approx(ellipse_perimeter * h + 2 * np.pi * a * b, rel=2e-3)
    assert surface_centroid(points, faces) == pytest.approx([0, 0, h / 2], abs=1e-6)


def test_a_clean_surface_passes_and_a_folded_one_is_caught():
    points, faces, _ = lv_cup()
    report = inspect_surface(points, faces)
    assert report.watertight and report.misplaced_probe_fraction == 0 and report.volume_mm3 > 0
    folded = points.copy()
    apex_region = folded[:, 2] < -30
    folded[apex_region, 2] += 25  # push the outer apex through the inner wall
    assert inspect_surface(folded, faces).misplaced_probe_fraction > 0
    opened = faces[:-5]
    assert inspect_surface(points, opened).boundary_edges > 0
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert inspect_surface(points, flipped).inconsistently_oriented_edges == 3


def test_signed_distance_and_rays_inside_an_elliptic_cylinder():
    points, faces, _ = trunk(sectors=256)
    distances = signed_distance(points, faces, np.array([[0, 0, 300.0], [0, 100.0, 300.0], [0, 200.0, 300.0]]))
    assert distances == pytest.approx([-115.0, -15.0, 85.0], abs=0.3)
    hits = ray_hits(points, faces, np.array([0.0, 0.0, 300.0]), np.array([1.0, 1.0, 0.0]))
    # the ray meets the ellipse x^2/a^2 + y^2/b^2 = 1 at x = y = ab / sqrt(a^2 + b^2)
    expected = 170 * 115 / np.hypot(170, 115)
    assert len(hits) == 1 and hits[0][:2] == pytest.approx([expected, expected], rel=2e-3)


def test_signed_distance_in_spatial_order_is_each_querys_own_value():
    import igl

    # answered in Z-curve order and put back: with the pseudonormal's sign every value is bit for
    # bit libigl's in the given order; with the winding number's, libigl's own repeated calls
    # differ by about 1e-11 mm
    points, faces, _ = trunk(sectors=128)
    queries = np.random.default_rng(3).uniform([-250, -200, 0], [250, 200, 600], size=(3000, 3))
    for closed, sign, tolerance in ((True, igl.SIGNED_DISTANCE_TYPE_PSEUDONORMAL, 0.0),
                                    (False, igl.SIGNED_DISTANCE_TYPE_DEFAULT, 1e-9)):
        direct = igl.signed_distance(queries, points.astype(np.float64), faces.astype(np.int64), sign_type=sign)[0]
        ordered = signed_distance(points, faces, queries, closed_surface=closed)
        assert np.abs(ordered - direct).max() <= tolerance
        assert np.array_equal(np.sign(ordered), np.sign(direct))
    assert signed_distance(points, faces, queries[:1]).shape == (1,)
    assert signed_distance(points, faces, queries[:0]).shape == (0,)


def test_rotations_are_proper_and_right_handed():
    rotation = rotation_about([1, 1, 1], 120)
    assert rotation @ rotation.T == pytest.approx(np.eye(3), abs=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1)
    assert rotation @ np.array([1, 0, 0]) == pytest.approx([0, 1, 0], abs=1e-12)


def test_spatial_order_is_a_permutation_along_the_z_curve():
    from ecgcohort.geometry import spatial_order

    # the eight octant corners of a cube, shuffled: the Z curve visits x fastest, then y, then z
    corners = np.array([[x, y, z] for z in (0.0, 1.0) for y in (0.0, 1.0) for x in (0.0, 1.0)])
    shuffled = np.random.default_rng(0).permutation(8)
    order = spatial_order(corners[shuffled], bits=1)
    assert np.array_equal(corners[shuffled][order], corners)
    points = np.random.default_rng(1).normal(size=(1000, 3))
    assert np.array_equal(np.sort(spatial_order(points)), np.arange(1000))
    # consecutive points are near: the mean step is a fraction of a random pair's distance
    ordered = points[spatial_order(points)]
    step = np.linalg.norm(np.diff(ordered, axis=0), axis=1).mean()
    assert step < 0.3 * np.linalg.norm(points[1:] - points[:-1], axis=1).mean()


def test_libigl_takes_the_jobs_thread_count():
    import os
    import subprocess
    import sys

    # Snakemake sets OMP_NUM_THREADS to a job's threads; libigl follows it unless told otherwise
    show = "import ecgcohort, os; print(os.environ.get('IGL_NUM_THREADS'))"
    environment = {key: value for key, value in os.environ.items() if key not in ("IGL_NUM_THREADS", "OMP_NUM_THREADS")}

    def igl_threads(**variables: str) -> str:
        return subprocess.run([sys.executable, "-c", show], env={**environment, **variables}, capture_output=True,
                              text=True, check=True).stdout.strip()

    assert igl_threads(OMP_NUM_THREADS="1") == "1"
    assert igl_threads(OMP_NUM_THREADS="1", IGL_NUM_THREADS="3") == "3"
    assert igl_threads() == "None"


def _box_surface(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box as 12 outward triangles."""
    corners = np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([tri for a, b, c, d in quads for tri in ((a, b, c), (a, c, d))], dtype=np.int64)
    return corners, faces


def test_grid_inside_is_the_closed_form_where_grid_lines_run_through_edges_and_vertices():
    """A box whose corners, edges and faces lie on grid lines and grid points, and a sphere
    against its winding numbers: strictly inside and outside exactly (a line through an edge or
    vertex counts its crossing once); a grid point on the box's surface on either side."""
    import pyvista as pv

    axis = np.arange(-3.0, 3.5, 0.5)
    corners, faces = _box_surface(np.array([-1.0, -1.5, -2.0]), np.array([2.0, 1.0, 0.5]))
    inside = grid_inside(corners, faces, axis, axis, axis)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    strictly_in = (x > -1) & (x < 2) & (y > -1.5) & (y < 1) & (z > -2) & (z < 0.5)
    strictly_out = (x < -1) | (x > 2) | (y < -1.5) | (y > 1) | (z < -2) | (z > 0.5)
    assert inside.shape == (len(axis),) * 3
    assert inside[strictly_in].all() and not inside[strictly_out].any()
    # the same box with its faces' triangles turned the other way round: the same points
    assert np.array_equal(grid_inside(corners, faces[:, ::-1], axis, axis, axis)[strictly_in | strictly_out],
                          inside[strictly_in | strictly_out])

    sphere = pv.Icosphere(radius=2.2, nsub=4)
    points, triangles = np.asarray(sphere.points, dtype=float), sphere.faces.reshape(-1, 4)[:, 1:]
    fine = np.linspace(-3.0, 3.0, 41)
    lattice = np.stack(np.meshgrid(fine, fine, fine, indexing="ij"), axis=-1).reshape(-1, 3)
    expected = winding_numbers(points, triangles, lattice) > 0.5
    assert np.array_equal(grid_inside(points, triangles, fine, fine, fine).reshape(-1), expected)
    with pytest.raises(ValueError, match="ascending"):
        grid_inside(points, triangles, fine[::-1], fine, fine)
