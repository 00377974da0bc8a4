"""The EP-informed methods' V_m-based forward operator: the equivalent double layer in a bounded
homogeneous torso by the boundary-element method, against closed forms and against the 3-D
extracellular solve it stands in for.

Closed forms: the solid angles of a closed surface sum to 4π from inside and to 0 from outside;
in an insulated sphere the potential on the surface of a centred dipole is three times the
infinite medium's (Frank 1952), and a double layer of strength ∝ cos θ on a concentric sphere
is such a dipole."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.inverse.double_layer import (body_surface_operator, double_layer_transfer, nodal_solid_angles,
                                            oriented_outwards, triangle_solid_angles)
from ecgcohort.inverse.problem import InverseError, SurfaceMesh


def icosphere(radius: float, subdivisions: int) -> SurfaceMesh:
    import pyvista

    sphere = pyvista.Icosphere(radius=radius, nsub=subdivisions)
    return SurfaceMesh(np.asarray(sphere.points), np.asarray(sphere.faces).reshape(-1, 4)[:, 1:])


def test_solid_angles_of_a_closed_surface_are_four_pi_inside_and_zero_outside():
    surface = oriented_outwards(icosphere(10.0, 2))
    flipped = SurfaceMesh(surface.points, surface.faces[:, ::-1])
    assert oriented_outwards(flipped).faces.tolist() == surface.faces.tolist()
    inside = np.array([[0.0, 0.0, 0.0], [3.0, -2.0, 5.0]])
    outside = np.array([[30.0, 0.0, 0.0], [0.0, 11.0, 2.0]])
    np.testing.assert_allclose(triangle_solid_angles(inside, surface).sum(axis=1), 4 * np.pi, rtol=1e-12)
    np.testing.assert_allclose(triangle_solid_angles(outside, surface).sum(axis=1), 0.0, atol=1e-12)
    # lumping to the nodes keeps the sums
    np.testing.assert_allclose(nodal_solid_angles(inside, surface).sum(axis=1), 4 * np.pi, rtol=1e-12)


def test_the_bem_triples_a_centred_dipole_on_an_insulated_sphere_and_converges():
    """u = z/a on a sphere of radius a = 30 inside a body sphere of radius 100: the double layer's
    field outside is a centred dipole's, so on the insulated body surface the potential is 3 × the
    infinite medium's. Measured relative errors 0.011, 0.0021 on 162 and 642 body nodes."""
    heart = icosphere(30.0, 3)
    u = heart.points[:, 2] / 30.0
    errors = []
    for subdivisions in (2, 3):
        body = icosphere(100.0, subdivisions)
        bounded = double_layer_transfer(heart, body, body.points, 50.0) @ u
        infinite = (50.0 / (4 * np.pi)) * nodal_solid_angles(body.points, heart) @ u
        errors.append(np.linalg.norm(bounded - 3 * infinite) / np.linalg.norm(3 * infinite))
    print(f"\nrelative error against 3 x the infinite medium: {errors}")
    assert errors[1] < 0.005 and errors[1] < 0.5 * errors[0]
    # the QS complex over a depolarised patch: the potential facing the excited pole is negative
    top = np.argmax(icosphere(100.0, 3).points[:, 2])
    assert (double_layer_transfer(heart, icosphere(100.0, 3), icosphere(100.0, 3).points, 50.0) @ u)[top] < 0


def test_a_uniform_excitation_is_silent_and_potentials_are_referenced_to_the_body_mean():
    heart, body = icosphere(30.0, 2), icosphere(100.0, 2)
    transfer = double_layer_transfer(heart, body, body.points, 50.0)
    np.testing.assert_allclose(transfer @ np.ones(len(heart.points)), 0.0, atol=1e-12)
    operator = body_surface_operator(body)
    # an equilateral-ish icosphere has nearly equal node areas: the mean over the nodes is ~0
    assert abs((operator @ np.random.default_rng(0).normal(size=len(body.points))).mean()) < 1e-2
    with pytest.raises(InverseError, match="strength must be positive"):
        double_layer_transfer(heart, body, body.points, 0.0)
    with pytest.raises(InverseError, match="off the body surface"):
        double_layer_transfer(heart, body, np.array([[0.0, 0.0, 50.0]]), 50.0)
