"""The inverse benchmark's ground truth: the extracellular potential of V_m on the heart–torso
mesh, against the closed form of a current dipole in an insulated homogeneous sphere, and
reciprocal to the lead-field ECG.

Geometry: a ball of radius R_MM (body surface) around a concentric ball of radius CORE_MM
(myocardium). With G_i = g I in the core, G_i + G_e = σ I everywhere and V_m = E·x in the core,
the source −div(G_i∇V_m) is a cos θ layer on the core's surface: outside the core φ is exactly
that of a dipole p = −g |core| E at the centre, p·r̂ (1/r² + 2r/R³) / (4πσ) (Frank 1952).
"""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.inverse.extracellular import ExtracellularSolver, Myocardium, reciprocity_error, relative_l2
from ecgcohort.leadfield import Conductivities
from ecgcohort.meshing import FACET_TAGS, read_tagged_mesh
from synthetic import concentric_balls_mesh

R_MM, CORE_MM = 100.0, 25.0
G_INTRA, SIGMA = 0.03, 0.06
UNIFORM = Conductivities(intra_fibre=G_INTRA, intra_cross=G_INTRA, extra_fibre=SIGMA - G_INTRA,
                         extra_cross=SIGMA - G_INTRA, torso=SIGMA)
FIELD_MV_PER_MM = np.array([2.0, -1.0, 3.0])


def dipole_in_sphere(points_mm: np.ndarray, moment: np.ndarray) -> np.ndarray:
    """φ (mV) of a dipole ``moment`` (mV·S·m, i.e. p/σ's numerator) at the centre of the
    insulated sphere, at ``points_mm``."""
    r = np.linalg.norm(points_mm, axis=1) * 1e-3
    radius = R_MM * 1e-3
    cosine_term = (points_mm * 1e-3) @ moment / r
    return cosine_term * (1 / r**2 + 2 * r / radius**3) / (4 * np.pi * SIGMA)


def core_volume_m3(myocardium: Myocardium) -> float:
    corners = myocardium.points_mm[myocardium.tetrahedra] * 1e-3
    edges = corners[:, 1:] - corners[:, :1]
    return float(np.abs(np.linalg.det(edges)).sum() / 6)


@pytest.fixture(scope="module")
def spheres(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extracellular")
    paths = {}
    for size in (10.0, 6.0):
        paths[size] = folder / f"balls-{size:g}.msh"
        concentric_balls_mesh(paths[size], size, R_MM, CORE_MM)
    return paths


def _dipole_errors(path) -> tuple[float, float]:
    mesh = read_tagged_mesh(path)
    myocardium = Myocardium.of_mesh(mesh.points_mm, mesh.tetrahedra, mesh.cell_tags)
    solver = ExtracellularSolver(path, UNIFORM, myocardium)
    vm = myocardium.points_mm @ FIELD_MV_PER_MM  # mV
    phi = solver.potentials(vm)[:, 0]
    moment = -G_INTRA * core_volume_m3(myocardium) * FIELD_MV_PER_MM * 1e3  # E in mV/m
    body = np.unique(mesh.facets[FACET_TAGS["body_surface"]])
    rng = np.random.default_rng(3)
    inner = rng.normal(size=(300, 3))
    inner *= (45.0 + 45.0 * rng.random((300, 1))) / np.linalg.norm(inner, axis=1, keepdims=True)
    surface_error = relative_l2(dipole_in_sphere(mesh.points_mm[body], moment), phi[body])
    volume_error = relative_l2(dipole_in_sphere(inner, moment), solver.interpolation(inner) @ phi)
    return surface_error, volume_error


def test_a_dipole_layer_in_an_insulated_sphere_matches_the_closed_form_and_converges(spheres):
    coarse = _dipole_errors(spheres[10.0])
    fine = _dipole_errors(spheres[6.0])
    print(f"\nrelative error (body surface, volume 45-90 mm): 10 mm {coarse}, 6 mm {fine}")
    assert fine[0] < 0.01 and fine[1] < 0.01
    assert fine[0] < coarse[0] and fine[1] < coarse[1]


def _helical_structure(centres_mm: np.ndarray) -> np.ndarray:
    x, y, z = (centres_mm / R_MM).T
    fibres = np.column_stack([-y + 0.3 * z, x, 0.6 + 0.5 * x * y])
    fibres /= np.linalg.norm(fibres, axis=1, keepdims=True)
    return np.einsum("ci,cj->cij", fibres, fibres)


def test_electrode_potentials_equal_the_lead_field_ecg(spheres):
    """Reciprocity on an anisotropic myocardium with a travelling V_m: φ read at electrodes
    equals L V_m with the electrodes' Galerkin lead matrix, instant by instant."""
    mesh = read_tagged_mesh(spheres[10.0])
    base = Myocardium.of_mesh(mesh.points_mm, mesh.tetrahedra, mesh.cell_tags)
    structure = _helical_structure(base.points_mm[base.tetrahedra].mean(axis=1))
    myocardium = Myocardium.of_mesh(mesh.points_mm, mesh.tetrahedra, mesh.cell_tags, structure)
    solver = ExtracellularSolver(spheres[10.0], Conductivities(), myocardium, max_electrode_offset_mm=2.0)
    directions = np.array([[0.3, -0.5, 0.81], [-0.6, 0.0, -0.8], [0.0, 1.0, 0.0], [0.7, 0.7, 0.1]])
    electrodes = R_MM * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    arrival_ms = 40.0 + 2.0 * myocardium.points_mm[:, 0]  # a front along x at 0.5 mm/ms
    times = np.linspace(0.0, 120.0, 13)
    vm = -85.0 + 100.0 / (1.0 + np.exp(-(times[None, :] - arrival_ms[:, None]) / 2.0))
    phi = solver.potentials(vm)
    read = solver.electrode_reading(electrodes) @ phi
    direct = solver.galerkin_lead_matrix(electrodes) @ vm
    assert np.abs(read).max() > 1e-3
    assert np.abs(read - direct).max() < 1e-8 * np.abs(direct).max()
    assert reciprocity_error(read, direct) < 1e-8
    # a uniform V_m drives no current
    assert np.abs(solver.potentials(np.full(len(myocardium.points_mm), -85.0))).max() < 1e-9


def test_the_myocardial_boundary_is_the_faces_of_one_cell_only(tmp_path):
    """Closed forms: two tetrahedra sharing a face have 2 × 4 − 2 boundary faces; the 5-cell
    cube has the cube's 6 squares as 12 triangles. A cell's own faces are found whatever its
    node order, and the faces come back sorted row-wise and in lexicographic order, as
    np.unique of the rows gives them."""
    from ecgcohort.inverse.dynamics import myocardial_boundary

    pair = np.array([[0, 1, 2, 3], [4, 2, 1, 3]])
    boundary = myocardial_boundary(pair)
    assert boundary.shape == (6, 3)
    assert not any(set(face) == {1, 2, 3} for face in boundary.tolist())
    # the unit cube's corners numbered x + 2y + 4z: four corner cells around the central one
    cube = np.array([[0, 1, 2, 4], [3, 1, 2, 7], [5, 1, 4, 7], [6, 2, 4, 7], [1, 2, 4, 7]])
    faces = myocardial_boundary(cube[:, ::-1])
    assert faces.shape == (12, 3)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [0, 2]]]), axis=1)
    assert np.all(np.unique(edges, axis=0, return_counts=True)[1] == 2)  # a closed surface
    concentric_balls_mesh(tmp_path / "balls.msh", 15.0, 60.0, 25.0)
    tets = read_tagged_mesh(tmp_path / "balls.msh").tetrahedra
    rows = np.sort(tets[:, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]].reshape(-1, 3), axis=1)
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    np.testing.assert_array_equal(myocardial_boundary(tets), unique[counts == 1])
