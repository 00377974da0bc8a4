"""The transfer matrix of the inverse benchmark (issue 13) against closed forms: R·1 = 1, and
the concentric-sphere volume conductor with spherical-harmonic data on the inner sphere."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.inverse.problem import InverseError, SurfaceMesh
from ecgcohort.inverse.surfaces import boundary_loops, cap_holes, check_closed, compact, remesh_to_nodes
from ecgcohort.geometry import boundary_faces
from ecgcohort.inverse.transfer import transfer_matrix

INNER, OUTER = 1.0, 2.0


def shell_mesh(size: float) -> tuple[np.ndarray, np.ndarray]:
    """Tetrahedra (points, cells) between spheres of radii INNER and OUTER, element size ``size``."""
    import gmsh

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("Mesh.MeshSizeMax", size)
        gmsh.option.setNumber("Mesh.MeshSizeMin", size)
        gmsh.model.add("shell")
        outer = gmsh.model.occ.addSphere(0, 0, 0, OUTER)
        inner = gmsh.model.occ.addSphere(0, 0, 0, INNER)
        gmsh.model.occ.cut([(3, outer)], [(3, inner)])
        gmsh.model.occ.synchronize()
        gmsh.model.mesh.generate(3)
        tags, coordinates, _ = gmsh.model.mesh.getNodes()
        _, cell_nodes = gmsh.model.mesh.getElementsByType(4)
    finally:
        gmsh.finalize()
    index = np.zeros(int(tags.max()) + 1, dtype=np.int64)
    index[tags.astype(np.int64)] = np.arange(len(tags))
    return coordinates.reshape(-1, 3), index[cell_nodes.astype(np.int64)].reshape(-1, 4)


def harmonic(l: int, points: np.ndarray) -> np.ndarray:
    """A real spherical harmonic of degree l (unnormalised) at the points' directions."""
    x, y, z = (points / np.linalg.norm(points, axis=1, keepdims=True)).T
    return {1: x, 2: x * y, 3: 0.5 * (5 * z ** 3 - 3 * z)}[l]


def body_ratio(l: int, a: float = INNER, b: float = OUTER) -> float:
    """φ(b)/φ(a) for φ = (A r^l + B r^-(l+1)) Y_l, φ(a) = Y_l, ∂φ/∂r(b) = 0.

    The no-flux condition gives l A b^(l−1) = (l+1) B b^(−l−2), B = l A b^(2l+1)/(l+1); then
    φ(a) = A (a^l + l b^(2l+1) a^(−l−1)/(l+1)) = 1 and φ(b) = A b^l (1 + l/(l+1)) = A b^l (2l+1)/(l+1).
    """
    return b ** l * (2 * l + 1) / (l + 1) / (a ** l + l * b ** (2 * l + 1) * a ** (-l - 1) / (l + 1))


def shell_problem(size: float):
    points, cells = shell_mesh(size)
    faces = boundary_faces(cells)
    radius = np.linalg.norm(points[faces].mean(axis=1), axis=1)
    body, heart_faces = faces[radius > 1.5], faces[radius < 1.5]
    heart_nodes = np.unique(heart_faces)
    local = np.full(len(points), -1)
    local[heart_nodes] = np.arange(len(heart_nodes))
    heart = SurfaceMesh(points[heart_nodes], local[heart_faces])
    measurement = points[np.unique(body)]
    return points, cells, body, heart, measurement


@pytest.fixture(scope="module")
def shells():
    return {size: shell_problem(size) for size in (0.4, 0.2)}


def test_constant_heart_potential_is_constant_everywhere(shells):
    points, cells, body, heart, measurement = shells[0.4]
    matrix, stats = transfer_matrix(points, cells, body, heart, measurement)
    assert matrix.shape == (len(measurement), len(heart.points))
    np.testing.assert_allclose(matrix @ np.ones(len(heart.points)), 1.0, atol=1e-12)
    assert stats.row_sum_error < 1e-12


def test_body_and_heart_blocks_give_the_same_matrix(shells):
    points, cells, body, heart, measurement = shells[0.4]
    by_body, _ = transfer_matrix(points, cells, body, heart, measurement, block="body")
    by_heart, _ = transfer_matrix(points, cells, body, heart, measurement, block="heart")
    np.testing.assert_allclose(by_heart, by_body, atol=1e-12 * np.abs(by_body).max())


@pytest.mark.parametrize("l", [1, 2, 3])
def test_concentric_spheres_match_the_closed_form_with_second_order(shells, l):
    errors = {}
    for size, (points, cells, body, heart, measurement) in shells.items():
        matrix, _ = transfer_matrix(points, cells, body, heart, measurement)
        expected = body_ratio(l) * harmonic(l, measurement)
        computed = matrix @ harmonic(l, heart.points)
        errors[size] = np.linalg.norm(computed - expected) / np.linalg.norm(expected)
    order = np.log2(errors[0.4] / errors[0.2])
    print(f"l = {l}: ratio {body_ratio(l):.4f}, relative error {errors}, observed order {order:.2f}")
    assert errors[0.2] < 0.1
    assert order > 1.7  # P1 with nodes on the curved spheres: second order


def test_no_dirichlet_boundary_is_refused(shells):
    points, cells, body, heart, measurement = shells[0.4]
    with pytest.raises(InverseError, match="no boundary besides the body surface"):
        transfer_matrix(points, cells, boundary_faces(cells), heart, measurement)
    with pytest.raises(InverseError, match="block"):
        transfer_matrix(points, cells, body, heart, measurement, block="electrodes")


def _open_sphere():
    import pyvista

    sphere = pyvista.Icosphere(radius=1.0, nsub=3)
    points = np.asarray(sphere.points)
    faces = np.asarray(sphere.faces).reshape(-1, 4)[:, 1:]
    centres = points[faces].mean(axis=1)
    keep = (centres[:, 2] < 0.8) & (centres[:, 0] < 0.85)  # two holes, like two valve openings
    return compact(points, faces[keep])


def test_valve_openings_are_capped_into_a_closed_consistent_surface():
    from ecgcohort.geometry import surface_volume

    opened = _open_sphere()
    with pytest.raises(InverseError, match="not a closed surface"):
        check_closed(opened, "the test surface")
    assert len(boundary_loops(opened.faces)) == 2
    capped, caps = cap_holes(opened)
    assert caps == 2
    check_closed(capped, "the capped surface")
    # consistently oriented: the enclosed volume is that of the polyhedron minus the cut caps, positive
    volume = surface_volume(capped.points, capped.faces)
    assert 0.8 * 4 / 3 * np.pi < abs(volume) < 4 / 3 * np.pi
    directed = np.concatenate([capped.faces[:, [0, 1]], capped.faces[:, [1, 2]], capped.faces[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # every directed edge once: orientable, consistent


def test_remeshing_keeps_a_closed_surface_of_the_requested_size():
    capped, _ = cap_holes(_open_sphere())
    remeshed = remesh_to_nodes(capped, 200, "the test surface")
    assert abs(len(remeshed.points) - 200) <= 10
    check_closed(remeshed, "the remeshed surface")
    assert len(remeshed.faces) == 2 * len(remeshed.points) - 4  # Euler: a closed genus-0 triangulation


def test_the_heart_surface_moves_outwards_by_its_offset_and_stays_closed():
    import pyvista

    from ecgcohort.inverse.surfaces import offset_surface

    sphere = pyvista.Icosphere(radius=10.0, nsub=3)
    surface = SurfaceMesh(np.asarray(sphere.points), np.asarray(sphere.faces).reshape(-1, 4)[:, 1:])
    for faces in (surface.faces, surface.faces[:, ::-1]):  # either orientation moves outwards
        moved = offset_surface(SurfaceMesh(surface.points, faces), 3.0)
        np.testing.assert_allclose(np.linalg.norm(moved.points, axis=1), 13.0, atol=1e-3)  # area-weighted normals: near radial
        check_closed(moved, "the moved sphere")
    assert offset_surface(surface, 0.0) is surface
