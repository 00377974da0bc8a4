"""The inversion's own model (no inverse crime): R on a separately meshed torso reproduces the
3-D truth's body-surface potentials to discretisation accuracy when nothing is mismatched,
differs measurably from it when the heart is moved, and refuses a heart moved out of the torso.

Geometry: the insulated ball of radius R_MM with a dipole-layer core (as in
test_inverse_extracellular); the "heart surface" a sphere of radius HEART_MM around the core,
the body surface the ball's."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.inverse.extracellular import ExtracellularSolver, Myocardium, relative_l2
from ecgcohort.inverse.models import (Mismatch, check_inside, inversion_model, inversion_volume, jittered_points,
                                      moved_heart)
from ecgcohort.inverse.problem import InverseError, SurfaceMesh
from ecgcohort.inverse.surfaces import check_closed
from ecgcohort.inverse.transfer import transfer_matrix
from ecgcohort.leadfield import Conductivities
from ecgcohort.meshing import read_tagged_mesh
from synthetic import concentric_balls_mesh

R_MM, CORE_MM, HEART_MM = 100.0, 25.0, 45.0
UNIFORM = Conductivities(intra_fibre=0.03, intra_cross=0.03, extra_fibre=0.03, extra_cross=0.03, torso=0.06)


def icosphere(radius: float, subdivisions: int) -> SurfaceMesh:
    import pyvista

    sphere = pyvista.Icosphere(radius=radius, nsub=subdivisions)
    return SurfaceMesh(np.asarray(sphere.points), np.asarray(sphere.faces).reshape(-1, 4)[:, 1:])


def sphere_points(count: int, radius: float, seed: int) -> np.ndarray:
    points = np.random.default_rng(seed).normal(size=(count, 3))
    return radius * points / np.linalg.norm(points, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    """(heart surface, body surface, measurement points, φ at the heart nodes (n, T), φ at the
    measurement points (m, T)) of three dipole orientations in the ball."""
    path = tmp_path_factory.mktemp("inversion") / "balls.msh"
    concentric_balls_mesh(path, 8.0, R_MM, CORE_MM)
    mesh = read_tagged_mesh(path)
    myocardium = Myocardium.of_mesh(mesh.points_mm, mesh.tetrahedra, mesh.cell_tags)
    solver = ExtracellularSolver(path, UNIFORM, myocardium, max_electrode_offset_mm=3.0)
    fields = np.array([[2.0, -1.0, 3.0], [0.0, 1.0, 0.0], [-1.0, 0.5, 0.2]])
    phi = solver.potentials(myocardium.points_mm @ fields.T)
    heart = icosphere(HEART_MM, 3)
    measurement = sphere_points(80, R_MM, 1)
    body = icosphere(R_MM, 4)
    return heart, body, measurement, solver.interpolation(heart.points) @ phi, solver.electrode_reading(
        measurement) @ phi


def test_the_volume_between_two_surfaces_keeps_them_as_its_boundary():
    heart, body = icosphere(1.0, 2), icosphere(2.0, 2)
    points, tetrahedra, body_faces, heart_nodes = inversion_volume(heart, body, 0.4)
    np.testing.assert_allclose(points[heart_nodes], heart.points)
    assert len(body_faces) == len(body.faces)
    check_closed(SurfaceMesh(points, body_faces), "the meshed body surface")
    corners = points[tetrahedra]
    volume = np.abs(np.linalg.det(corners[:, 1:] - corners[:, :1])).sum() / 6
    enclosed = lambda s: np.einsum("fi,fi->f", s.points[s.faces[:, 0]], np.cross(  # noqa: E731
        s.points[s.faces[:, 1]], s.points[s.faces[:, 2]])).sum() / 6
    assert volume == pytest.approx(enclosed(body) - enclosed(heart), rel=1e-9)
    matrix, stats = transfer_matrix(points, tetrahedra, body_faces, heart, points[np.unique(body_faces)])
    assert stats.row_sum_error < 1e-10 and stats.max_heart_projection < 1e-9


def test_unmismatched_inversion_model_reproduces_the_3d_truth(truth):
    heart, body, measurement, phi_heart, phi_body = truth
    rng = np.random.default_rng(0)
    model = inversion_model(heart, body, measurement, Mismatch("none"), rng, body_nodes=500, element_size_mm=12.0)
    assert model.transfer.shape == (len(measurement), len(heart.points))
    assert np.abs(model.transfer.sum(axis=1) - 1).max() < 1e-8
    forward_error = relative_l2(phi_body, model.transfer @ phi_heart)
    shifted = inversion_model(heart, body, measurement, Mismatch("shift", shift_mm=10.0), np.random.default_rng(0),
                              body_nodes=500, element_size_mm=12.0)
    shifted_error = relative_l2(phi_body, shifted.transfer @ phi_heart)
    matrix_change = relative_l2(model.transfer, shifted.transfer)
    print(f"\nforward error: none {forward_error:.4f}, 10 mm shift {shifted_error:.4f}; "
          f"R changed by {matrix_change:.4f}; model figures {model.figures['volume_nodes']} nodes")
    assert forward_error < 0.05
    assert shifted_error > 2 * forward_error
    assert shifted.figures["heart_displacement_mm"] == pytest.approx(10.0, rel=1e-9)
    assert matrix_change > 0.01


def test_rotation_keeps_the_centroid_and_jitter_moves_points_along_the_surface():
    heart = icosphere(30.0, 2)
    heart = SurfaceMesh(heart.points * [1.0, 0.7, 1.3] + [5.0, -3.0, 2.0], heart.faces)
    rotated = moved_heart(heart, Mismatch("r", rotation_deg=10.0), np.random.default_rng(2))
    np.testing.assert_allclose(rotated.points.mean(axis=0), heart.points.mean(axis=0), atol=1e-9)
    pairwise = lambda p: np.linalg.norm(p[:, None] - p[None], axis=2)  # noqa: E731
    np.testing.assert_allclose(pairwise(rotated.points), pairwise(heart.points), atol=1e-9)
    assert np.abs(rotated.points - heart.points).max() > 1.0
    body = icosphere(R_MM, 4)
    points = sphere_points(50, R_MM, 4)
    moved = jittered_points(points, body, 5.0, np.random.default_rng(5))
    radius = np.linalg.norm(moved, axis=1)
    assert np.all(radius > R_MM - 0.2) and np.all(radius <= R_MM + 1e-9)
    distance = np.linalg.norm(moved - points, axis=1)
    assert np.all((distance > 4.0) & (distance < 6.0))


def test_a_heart_moved_out_of_the_torso_is_refused_naming_the_mismatch():
    heart, body = icosphere(30.0, 2), icosphere(40.0, 3)
    assert check_inside(heart, body, 1.0, "unmoved") == pytest.approx(10.0, abs=0.5)
    far = Mismatch("shift_20mm", shift_mm=20.0)
    with pytest.raises(InverseError, match=r"mismatch shift_20mm: the heart shifted 20 mm.*outside the body surface"):
        inversion_model(heart, body, sphere_points(20, 40.0, 1), far, np.random.default_rng(0), body_nodes=300,
                        element_size_mm=8.0)
    # a measurement point 30 mm off the body surface (an electrode placed on another body)
    off = np.vstack([sphere_points(19, 40.0, 1), [[0.0, 0.0, 70.0]]])
    with pytest.raises(InverseError, match=r"mismatch none: a measurement point lies 30(\.\d+)? from the surface"):
        inversion_model(heart, body, off, Mismatch("none"), np.random.default_rng(0), body_nodes=300, element_size_mm=8.0)
    with pytest.raises(InverseError, match="matched"):
        Mismatch.from_config("matched", {"crime": True, "shift_mm": 5.0})
    with pytest.raises(InverseError, match="unknown key"):
        Mismatch.from_config("odd", {"shift": 5.0})
