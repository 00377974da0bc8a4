"""The FEM lead-field solver: closed form in a homogeneous ball (with convergence), zero mean
on the body surface, reciprocity with a direct solve of the pseudo-bidomain problem (eq. 1,
assembled independently with dolfinx/UFL), the lead matrix, the sample points, the jobs
and their errors.

Geometry: a ball of radius A_MM (body surface, facet tag 1) around a concentric inner ball
of radius CORE_MM (myocardium, tag 1; its surface is the epicardium, facet tag 2).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ecgcohort.anatomy.electrodes import STANDARD_ELECTRODES, normalised_coordinates
from ecgcohort.fibers import FibreAngles, MyocardialFibres, load_fibres, save_fibres
from ecgcohort.leadfield import (Conductivities, LeadFieldError, LeadFieldSolver, intracellular_tensors,
                                 lead_field_gradients, lead_matrix, sample_points)
from ecgcohort.leadfield.jobs import (STANDARD_ELECTRODE_COUNT, compute_lead_field_chunks, electrode_chunks,
                                     write_sample_points)
from ecgcohort.leadfield.solver import body_mesh, lead_matrix_from_potentials
from ecgcohort.meshing import VOLUME_TAGS
from synthetic import concentric_balls_mesh

A_MM, CORE_MM = 100.0, 40.0
A = A_MM * 1e-3
SIGMA = 0.06
#: every tensor reduces to SIGMA * I: G_i + G_e = 0.06 along and across the fibres
UNIFORM = Conductivities(intra_fibre=0.03, intra_cross=0.03, extra_fibre=0.03, extra_cross=0.03, torso=SIGMA)
ELECTRODE = A * np.array([0.3, -0.5, 0.81]) / np.linalg.norm([0.3, -0.5, 0.81])


def ball_mesh(path, size_mm: float) -> None:
    """Two concentric balls meshed with gmsh at ``size_mm``, tagged like a patient mesh."""
    concentric_balls_mesh(path, size_mm, A_MM, CORE_MM)


def exact_z(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """DESIGN.md's closed form, Ω (x, e in m)."""
    r = np.linalg.norm(x - e, axis=1)
    return (2 / r + np.log(2 * A / (A - x @ e / A + r)) / A) / (4 * np.pi * SIGMA)


def exact_gradient(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Its gradient, Ω/m."""
    d = x - e
    r = np.linalg.norm(d, axis=1)[:, None]
    u = A - (x @ e)[:, None] / A + r
    return (-2 * d / r**3 - (-e / A + d / r) / (A * u)) / (4 * np.pi * SIGMA)


def interpolate(solver: LeadFieldSolver, z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The P1 field z (N,) at points x (P, 3) in m."""
    tets = solver.mesh.tetrahedra[solver.locate(x)]
    corners = solver.mesh.points_m[tets]
    edges = np.stack([corners[:, k] - corners[:, 0] for k in (1, 2, 3)], axis=2)
    local = np.linalg.solve(edges, (x - corners[:, 0])[..., None])[..., 0]
    return z[tets[:, 0]] * (1 - local.sum(axis=1)) + np.einsum("pk,pk->p", z[tets[:, 1:]], local)


@pytest.fixture(scope="module")
def far_points() -> np.ndarray:
    """Points inside the ball, farther than 0.3 a from the electrode (m)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 3))
    x *= 0.97 * A * rng.random((4000, 1)) ** (1 / 3) / np.linalg.norm(x, axis=1, keepdims=True)
    return x[np.linalg.norm(x - ELECTRODE, axis=1) > 0.3 * A][:1500]


@pytest.fixture(scope="module")
def balls(tmp_path_factory) -> dict[float, object]:
    folder = tmp_path_factory.mktemp("balls")
    paths = {}
    for size in (24.0, 16.0, 11.0, 7.5):
        paths[size] = folder / f"ball-{size:g}.msh"
        ball_mesh(paths[size], size)
    return paths


def test_exact_gradient_is_the_gradient_of_the_closed_form(far_points):
    step = 1e-7
    numeric = np.stack([(exact_z(far_points + step * unit, ELECTRODE) - exact_z(far_points - step * unit, ELECTRODE))
                        / (2 * step) for unit in np.eye(3)], axis=1)
    assert np.abs(numeric - exact_gradient(far_points, ELECTRODE)).max() < 1e-6 * np.abs(numeric).max()


def test_homogeneous_ball_converges_to_the_closed_form(balls, far_points):
    exact = exact_gradient(far_points, ELECTRODE)
    exact_values = exact_z(far_points, ELECTRODE)
    rows = []
    for size, path in balls.items():
        solver = LeadFieldSolver(path, UNIFORM, max_electrode_offset_mm=2.0)  # the polyhedral sphere's sag
        z = solver.solve(ELECTRODE[None])
        gradient = solver.point_gradients(z, far_points)[0]
        cosine = np.einsum("pi,pi->p", gradient, exact) / np.linalg.norm(gradient, axis=1) / np.linalg.norm(exact, axis=1)
        angle = np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean()
        magnitude = np.abs(np.linalg.norm(gradient, axis=1) / np.linalg.norm(exact, axis=1) - 1).mean()
        values = interpolate(solver, z[0], far_points)
        value_error = (np.linalg.norm((values - values.mean()) - (exact_values - exact_values.mean()))
                       / np.linalg.norm(exact_values - exact_values.mean()))
        h = (4 / 3 * np.pi * A**3 / solver.stats.cells) ** (1 / 3)  # mean cell size, m
        rows.append((h, angle, magnitude, value_error))
        print(f"\nh {h * 1e3:5.2f} mm ({solver.stats.cells} cells): mean angular error {angle:.3f} deg, "
              f"relative magnitude error {magnitude:.4f}, relative Z error {value_error:.5f}")
    h, angle, magnitude, value_error = map(np.array, zip(*rows))
    order_angle = np.polyfit(np.log(h), np.log(angle), 1)[0]
    order_magnitude = np.polyfit(np.log(h), np.log(magnitude), 1)[0]
    order_value = np.polyfit(np.log(h), np.log(value_error), 1)[0]
    print(f"observed orders: angle {order_angle:.2f}, magnitude {order_magnitude:.2f}, Z {order_value:.2f}")
    assert np.all(np.diff(angle) < 0) and np.all(np.diff(magnitude) < 0)
    assert order_angle > 0.8 and order_magnitude > 0.8 and order_value > 0.8
    assert angle[-1] < 2.5 and magnitude[-1] < 0.04 and value_error[-1] < 0.01


def test_the_heart_lead_field_converges_with_the_heart_size_not_the_torso_size(balls, far_points, tmp_path):
    """A fine inner ball (the heart) in a coarse shell (the torso): in the inner ball ∇Z is as
    close to the closed form as with the whole ball fine, and far closer than with the whole
    ball coarse, with a fraction of the cells (why the default meshes a 1.2 mm heart in a 30 mm
    torso)."""
    core = far_points[np.linalg.norm(far_points, axis=1) < 0.8 * CORE_MM * 1e-3]
    exact = exact_gradient(core, ELECTRODE)
    decoupled = tmp_path / "fine-heart.msh"
    concentric_balls_mesh(decoupled, 7.5, A_MM, CORE_MM, shell_size_mm=24.0)

    def angle_and_cells(path) -> tuple[float, int]:
        solver = LeadFieldSolver(path, UNIFORM, max_electrode_offset_mm=8.0)
        gradient = solver.point_gradients(solver.solve(ELECTRODE[None]), core)[0]
        cosine = np.einsum("pi,pi->p", gradient, exact) / np.linalg.norm(gradient, axis=1) / np.linalg.norm(exact, axis=1)
        return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean()), solver.stats.cells

    (coarse, coarse_cells), (fine, fine_cells), (mixed, mixed_cells) = (
        angle_and_cells(path) for path in (balls[24.0], balls[7.5], decoupled))
    print(f"\nheart core angle: all 24 mm {coarse:.3f} deg ({coarse_cells} cells), all 7.5 mm {fine:.3f} deg "
          f"({fine_cells}), 7.5 mm heart in a 24 mm shell {mixed:.3f} deg ({mixed_cells})")
    assert len(core) > 50
    assert mixed < 1.3 * fine and mixed < 0.5 * coarse
    assert mixed_cells < 0.5 * fine_cells


def test_recovered_gradients_converge_faster_than_p1_on_the_ball(balls, far_points):
    """Zienkiewicz-Zhu recovery (volume-weighted nodal averages per region, interpolated) on
    the same solves: smaller errors at every size and a higher observed order than the
    piecewise-constant P1 gradient."""
    exact = exact_gradient(far_points, ELECTRODE)

    def errors(gradient: np.ndarray) -> tuple[float, float]:
        cosine = np.einsum("pi,pi->p", gradient, exact) / np.linalg.norm(gradient, axis=1) / np.linalg.norm(exact, axis=1)
        return (float(np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean()),
                float(np.abs(np.linalg.norm(gradient, axis=1) / np.linalg.norm(exact, axis=1) - 1).mean()))

    rows = []
    for path in balls.values():
        solver = LeadFieldSolver(path, UNIFORM, max_electrode_offset_mm=2.0)
        z = solver.solve(ELECTRODE[None])
        cells = solver.locate(far_points)
        p1 = errors(solver.cell_gradients(z, cells)[0])
        recovered = errors(solver.recovered_gradients(z, cells, far_points)[0])
        # at the centroids the recovered field is the mean of its four nodal values
        centroid = solver.recovered_gradients(z, cells[:5])[0]
        corners = solver.mesh.points_m[solver.mesh.tetrahedra[cells[:5]]].mean(axis=1)
        np.testing.assert_allclose(centroid, solver.recovered_gradients(z, cells[:5], corners)[0], rtol=1e-9)
        h = (4 / 3 * np.pi * A**3 / solver.stats.cells) ** (1 / 3)
        rows.append((h, *p1, *recovered))
        print(f"\nh {h * 1e3:5.2f} mm: angle P1 {p1[0]:.3f} / recovered {recovered[0]:.3f} deg, "
              f"magnitude P1 {p1[1]:.4f} / recovered {recovered[1]:.4f}")
    h, p1_angle, p1_magnitude, angle, magnitude = map(np.array, zip(*rows))
    orders = {name: np.polyfit(np.log(h), np.log(values), 1)[0] for name, values in
              (("P1 angle", p1_angle), ("recovered angle", angle), ("P1 magnitude", p1_magnitude),
               ("recovered magnitude", magnitude))}
    print("observed orders:", {name: round(order, 2) for name, order in orders.items()})
    assert np.all(angle < p1_angle) and np.all(magnitude < p1_magnitude)
    assert orders["recovered angle"] > orders["P1 angle"] + 0.3
    assert orders["recovered magnitude"] > orders["P1 magnitude"] + 0.3


def test_lead_fields_have_zero_mean_on_the_body_surface(balls):
    solver = LeadFieldSolver(balls[16.0], UNIFORM, max_electrode_offset_mm=2.0)
    electrodes = np.array([ELECTRODE, -ELECTRODE, A * np.array([0.0, 0.0, 1.0])])
    z = solver.solve(electrodes)
    assert z.shape == (3, solver.stats.nodes)
    assert np.all(np.abs(solver.surface_integral(z)) < 1e-10 * np.abs(z).max(axis=1) * solver.surface_area)
    # one block of right-hand sides gives what one solve per electrode gives
    single = np.vstack([solver.solve(electrode[None]) for electrode in electrodes])
    assert np.abs(z - single).max() < 1e-12 * np.abs(z).max()
    assert solver.stats.electrodes_solved == 6 and solver.stats.factor_flops > 0


def test_low_rank_factors_agree_with_exact_ones(balls, tmp_path):
    # MUMPS compresses only large fronts: the coarse balls would compare exact with exact
    path = tmp_path / "ball-5.msh"
    ball_mesh(path, 5.0)
    electrodes = np.array([ELECTRODE, -ELECTRODE])
    exact = LeadFieldSolver(path, Conductivities(), low_rank_tolerance=0.0, max_electrode_offset_mm=2.0)
    compressed = LeadFieldSolver(path, Conductivities(), low_rank_tolerance=1e-8, max_electrode_offset_mm=2.0)
    assert exact.stats.factor_entries_low_rank == exact.stats.factor_entries
    assert compressed.stats.factor_entries_low_rank < 0.95 * compressed.stats.factor_entries
    z_exact, z_compressed = exact.solve(electrodes), compressed.solve(electrodes)
    assert np.abs(z_compressed - z_exact).max() < 1e-6 * np.abs(z_exact).max()
    with pytest.raises(LeadFieldError, match="low_rank_tolerance"):
        LeadFieldSolver(balls[11.0], Conductivities(), low_rank_tolerance=-1.0)


def _fibres(centres_m: np.ndarray) -> np.ndarray:
    """A helical, smoothly varying fibre field (unit, per cell)."""
    x, y, z = (centres_m / A).T
    fibres = np.column_stack([-y + 0.3 * z, x, 0.6 + 0.5 * x * y])
    return fibres / np.linalg.norm(fibres, axis=1, keepdims=True)


def _transmembrane(points_m: np.ndarray) -> np.ndarray:
    """A smooth V_m in V."""
    centre = np.array([0.01, -0.015, 0.02])
    return 0.1 * np.exp(-np.sum((points_m - centre) ** 2, axis=1) / (2 * 0.02**2)) - 0.085


@pytest.fixture(scope="module")
def anisotropic(balls):
    """(solver with anisotropic fibres in the core, myocardial cells, their fibres)."""
    probe = LeadFieldSolver(balls[11.0], UNIFORM, max_electrode_offset_mm=2.0)
    cells = np.flatnonzero(probe.mesh.cell_tags == VOLUME_TAGS["myocardium"])
    fibres = _fibres(probe.mesh.points_m[probe.mesh.tetrahedra[cells]].mean(axis=1))
    return LeadFieldSolver(balls[11.0], Conductivities(), fibres, cells, max_electrode_offset_mm=2.0), cells, fibres


def test_lead_matrix_equals_a_direct_pseudo_bidomain_solve(anisotropic, balls):
    """Reciprocity: eq. 3 with the lead fields equals eq. 1 solved directly for φ (assembled
    with UFL, pinned at another node, zero mean on Σ) and read at the electrodes."""
    import dolfinx.fem
    import dolfinx.fem.petsc
    import dolfinx.geometry
    import scipy.sparse
    import scipy.sparse.linalg
    import ufl

    solver, cells, fibres = anisotropic
    metre = 1e-3  # UFL integrates in mm: ∫ over volumes scale by m/mm, gradients by mm/m
    sigma = Conductivities()
    electrodes = np.array([ELECTRODE, A * np.array([-0.6, 0.0, -0.8]), A * np.array([0.0, 1.0, 0.0])])
    z = solver.solve(electrodes)
    tets = solver.mesh.tetrahedra[cells]
    nodes, local = np.unique(tets, return_inverse=True)
    vm = _transmembrane(solver.mesh.points_m[nodes])
    matrix = lead_matrix(solver.mesh.points_m[nodes], local.reshape(-1, 4), intracellular_tensors(fibres, sigma),
                         solver.cell_gradients(z, cells))
    lead_potentials = matrix @ vm
    fast = lead_matrix_from_potentials(solver.mesh.points_m[nodes], local.reshape(-1, 4),
                                       intracellular_tensors(fibres, sigma), z[:, nodes])
    assert np.abs(fast - matrix).max() < 1e-10 * np.abs(matrix).max()
    # the mesh's operator built once serves every field; another mesh's is refused
    from ecgcohort.leadfield.matrix import gradient_operator

    operator = gradient_operator(solver.mesh.points_m[nodes], local.reshape(-1, 4))
    np.testing.assert_array_equal(lead_matrix(solver.mesh.points_m[nodes], local.reshape(-1, 4),
                                              intracellular_tensors(fibres, sigma), solver.cell_gradients(z, cells),
                                              operator), matrix)
    with pytest.raises(ValueError, match="this mesh needs"):
        lead_matrix(solver.mesh.points_m[nodes], local.reshape(-1, 4)[1:], intracellular_tensors(fibres, sigma)[1:],
                    solver.cell_gradients(z, cells)[:, 1:], operator)
    # the lead-field job's path: G_i and the gradient operator folded into the interpolation of
    # the nodal recovered gradients at the centroids, no per-cell array; the same matrix as
    # lead_matrix of the recovered gradients per cell
    from ecgcohort.leadfield.matrix import lead_matrix_from_nodal, recovered_flux_operators

    operators = recovered_flux_operators(solver.mesh.points_m[nodes], local.reshape(-1, 4),
                                         intracellular_tensors(fibres, sigma), solver.cell_interpolation(cells))
    assert [operator.shape for operator in operators] == [(len(nodes), len(solver.mesh.points_m))] * 3
    nodal = solver.nodal_gradients(np.ascontiguousarray(z.T), VOLUME_TAGS["myocardium"])
    recovered = solver.recovered_gradients(z, cells)
    np.testing.assert_allclose(lead_matrix_from_nodal(operators, nodal),
                               lead_matrix(solver.mesh.points_m[nodes], local.reshape(-1, 4),
                                           intracellular_tensors(fibres, sigma), recovered),
                               rtol=0, atol=1e-12 * np.abs(matrix).max())
    # the recovered gradients are the interpolated nodal ones, in blocks of electrodes or not
    np.testing.assert_array_equal(recovered[:, :, 0], (solver.cell_interpolation(cells) @ nodal[0]).T)
    # ... and the job's nodal gradients handed in (computed once for the points, the lead matrix
    # and the cells) give them bit for bit; a wrong array handed in shows
    np.testing.assert_array_equal(solver.recovered_gradients(z, cells, nodal={VOLUME_TAGS["myocardium"]: nodal}),
                                  recovered)
    doubled = {VOLUME_TAGS["myocardium"]: [2 * n for n in nodal]}
    assert not np.array_equal(solver.recovered_gradients(z, cells, nodal=doubled), recovered)
    with pytest.raises(ValueError, match="rows for"):
        recovered_flux_operators(solver.mesh.points_m[nodes], local.reshape(-1, 4),
                                 intracellular_tensors(fibres, sigma), solver.cell_interpolation(cells[1:]))
    with pytest.raises(ValueError, match="for 3 axes"):
        lead_matrix_from_nodal(operators[:2], nodal[:2])

    # dolfinx reads the same file on its own and orders cells its own way: match by centroid
    from mpi4py import MPI
    from scipy.spatial import cKDTree

    import dolfinx.io.gmsh

    data = dolfinx.io.gmsh.read_from_msh(str(balls[11.0]), MPI.COMM_SELF, 0, gdim=3)
    mesh = data.mesh
    centres = mesh.geometry.x[np.asarray(mesh.geometry.dofmaps[0])].mean(axis=1) * metre
    distance, ours = cKDTree(solver.mesh.points_m[solver.mesh.tetrahedra].mean(axis=1)).query(centres)
    assert distance.max() < 1e-12 and np.unique(ours).size == len(ours)
    space = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
    tensors = dolfinx.fem.functionspace(mesh, ("DG", 0, (3, 3)))
    bulk, intra = dolfinx.fem.Function(tensors), dolfinx.fem.Function(tensors)
    cell_dofs = np.asarray(tensors.dofmap.list)[:, 0]  # one (3, 3) block per cell
    bulk.x.array.reshape(-1, 9)[cell_dofs] = solver.tensors[ours].reshape(-1, 9)
    g_i = np.zeros_like(solver.tensors)
    g_i[cells] = intracellular_tensors(fibres, sigma)
    intra.x.array.reshape(-1, 9)[cell_dofs] = g_i[ours].reshape(-1, 9)
    transmembrane = dolfinx.fem.Function(space)
    transmembrane.interpolate(lambda x: _transmembrane(x.T * 1e-3))
    u, v = ufl.TrialFunction(space), ufl.TestFunction(space)
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=data.cell_tags)
    ds = ufl.Measure("ds", domain=mesh, subdomain_data=data.facet_tags)
    stiffness = dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(ufl.inner(bulk * ufl.grad(u), ufl.grad(v)) * dx))
    stiffness.assemble()
    load = dolfinx.fem.petsc.assemble_vector(dolfinx.fem.form(
        -ufl.inner(intra * ufl.grad(transmembrane), ufl.grad(v)) * dx(VOLUME_TAGS["myocardium"])))
    indptr, indices, values = stiffness.getValuesCSR()
    k = scipy.sparse.csr_matrix((values * metre, indices, indptr)).tolil()
    b = load.array.copy() * metre
    pin = k.shape[0] - 1
    k[pin, :] = 0
    k[:, pin] = 0
    k[pin, pin] = 1.0
    b[pin] = 0.0
    phi = dolfinx.fem.Function(space)
    phi.x.array[:] = scipy.sparse.linalg.spsolve(k.tocsr(), b)
    surface = dolfinx.fem.assemble_scalar(dolfinx.fem.form(1.0 * ds(1)))
    phi.x.array[:] -= dolfinx.fem.assemble_scalar(dolfinx.fem.form(phi * ds(1))) / surface

    at_nodes, weights = solver.electrode_loads(electrodes)
    projected = np.einsum("ek,eki->ei", weights, solver.mesh.points_m[at_nodes]) / metre
    tree = dolfinx.geometry.bb_tree(mesh, 3)
    colliding = dolfinx.geometry.compute_colliding_cells(
        mesh, dolfinx.geometry.compute_collisions_points(tree, projected), projected)
    direct = np.array([phi.eval(projected[i], colliding.links(i)[:1])[0] for i in range(len(projected))])
    print(f"\nelectrode potentials (mV): lead matrix {np.round(lead_potentials * 1e3, 4)}, "
          f"direct {np.round(direct * 1e3, 4)}")
    assert np.abs(direct).max() > 1e-5
    assert np.abs(lead_potentials - direct).max() < 1e-6 * np.abs(direct).max()


def test_uniform_transmembrane_potential_gives_no_signal(anisotropic):
    solver, cells, fibres = anisotropic
    z = solver.solve(np.array([ELECTRODE, -ELECTRODE]))
    tets = solver.mesh.tetrahedra[cells]
    nodes, local = np.unique(tets, return_inverse=True)
    matrix = lead_matrix(solver.mesh.points_m[nodes], local.reshape(-1, 4),
                         intracellular_tensors(fibres, Conductivities()), solver.cell_gradients(z, cells))
    assert np.abs(matrix).max() > 0
    assert np.abs(matrix @ np.ones(len(nodes))).max() < 1e-10 * np.abs(matrix).sum(axis=1).max()


def test_anisotropy_changes_the_lead_field_inside_the_heart(anisotropic, balls):
    solver, cells, _ = anisotropic
    isotropic = LeadFieldSolver(balls[11.0], Conductivities(), max_electrode_offset_mm=2.0)
    g = solver.cell_gradients(solver.solve(ELECTRODE[None]), cells)[0]
    g0 = isotropic.cell_gradients(isotropic.solve(ELECTRODE[None]), cells)[0]
    assert np.linalg.norm(g - g0) > 0.05 * np.linalg.norm(g0)


def test_sample_points_lie_in_the_mesh_near_the_interfaces(balls):
    count, near_mm = 3000, 10.0
    samples = sample_points(balls[11.0], count, 0.8, near_mm, np.random.default_rng(3))
    radius = np.linalg.norm(samples.points_m, axis=1)
    assert samples.points_m.shape == (count, 3)
    assert radius.max() <= A * (1 + 1e-9)
    # the polyhedral spheres lie between their radius less the sag and their radius
    arrays = body_mesh(balls[11.0])
    sag = max(radius_mm * 1e-3 - np.linalg.norm(arrays.points_m[arrays.facets[tag]].mean(axis=1), axis=1).min()
              for tag, radius_mm in ((1, A_MM), (2, CORE_MM)))
    assert 0 < sag < 1e-3
    assert np.allclose(samples.distance_to_heart_m, np.abs(radius - CORE_MM * 1e-3), atol=sag)
    near_body = A - radius <= near_mm * 1e-3 + sag
    near_heart = samples.distance_to_heart_m <= near_mm * 1e-3
    assert 0.8 <= np.mean(near_body | near_heart) <= 0.9  # 80% drawn near, some of the uniform rest too
    band = ((CORE_MM + near_mm) ** 3 - (CORE_MM - near_mm) ** 3) / A_MM**3  # its share of the body's volume
    assert np.mean(near_heart) == pytest.approx(0.4 + 0.2 * band, abs=0.03)  # half the near points + uniform ones
    inside_core = radius < CORE_MM * 1e-3 - sag
    assert np.all(samples.region[inside_core] == VOLUME_TAGS["myocardium"])
    assert set(np.unique(samples.region)) == {1, 2}


def _band_by_exact_distances(mesh, volumes, diameter, triangles, width, count, rng):
    """The band sampler as it was before its bounds: every vertex and every drawn point
    projected exactly onto the surface."""
    from ecgcohort.leadfield.sampling import _uniform_in_cells
    from ecgcohort.leadfield.solver import project_on_surface

    tets = mesh.tetrahedra
    vertex_distance = np.full(len(mesh.points_m), np.inf)
    used = np.unique(tets)
    vertex_distance[used] = project_on_surface(mesh.points_m, triangles, mesh.points_m[used])[0]
    candidates = np.flatnonzero(vertex_distance[tets].min(axis=1) <= width + diameter)
    kept_points, kept_cells, acceptance = [], [], 0.5
    while sum(len(p) for p in kept_points) < count:
        missing = count - sum(len(p) for p in kept_points)
        batch = int(np.ceil(1.2 * missing / max(acceptance, 0.02))) + 16
        drawn, local = _uniform_in_cells(mesh.points_m, tets[candidates], volumes[candidates], batch, rng)
        inside = project_on_surface(mesh.points_m, triangles, drawn)[0] <= width
        acceptance = max(float(inside.mean()), 1e-3)
        kept_points.append(drawn[inside])
        kept_cells.append(candidates[local[inside]])
    return np.concatenate(kept_points)[:count], np.concatenate(kept_cells)[:count]


@pytest.mark.parametrize("tag", [1, 2])
@pytest.mark.parametrize("width_mm", [2.0, 10.0])
def test_sample_point_bands_by_bounds_draw_the_points_of_exact_distances(balls, tag, width_mm):
    from ecgcohort.fem import tetrahedron_volumes
    from ecgcohort.leadfield.sampling import _cell_diameters, _in_band, _SurfaceDistance
    from ecgcohort.leadfield.solver import project_on_surface

    mesh = body_mesh(balls[7.5])
    volumes = tetrahedron_volumes(mesh.points_m, mesh.tetrahedra)
    diameter = _cell_diameters(mesh.points_m, mesh.tetrahedra)
    surface = _SurfaceDistance(mesh.points_m, mesh.facets[tag])
    points, cells = _in_band(mesh, volumes, diameter, surface, width_mm * 1e-3, 2000, np.random.default_rng(5))
    expected_points, expected_cells = _band_by_exact_distances(mesh, volumes, diameter, mesh.facets[tag],
                                                               width_mm * 1e-3, 2000, np.random.default_rng(5))
    assert np.array_equal(points, expected_points) and np.array_equal(cells, expected_cells)
    # the bounds bracket the exact distance, the exact one is project_on_surface's to the bit
    queries = np.random.default_rng(6).uniform(-A, A, size=(5000, 3))
    exact = surface.distance(queries)
    assert np.array_equal(exact, project_on_surface(mesh.points_m, mesh.facets[tag], queries)[0])
    lower, upper = surface.bounds(queries, reach=0.01)
    finite = np.isfinite(upper)
    assert np.all(lower[finite] <= exact[finite]) and np.all(exact[finite] <= upper[finite])
    assert np.all(exact[~finite] > 0.01) and 0 < finite.mean() < 1


@pytest.fixture(scope="module")
def patient_files(balls, anisotropic, tmp_path_factory):
    """A fake patient on the 11 mm ball: fibres.npz, electrodes.csv, points.npz."""
    solver, cells, fibres = anisotropic
    folder = tmp_path_factory.mktemp("patient")
    tets = solver.mesh.tetrahedra[cells]
    nodes, local = np.unique(tets, return_inverse=True)
    normal = np.cross(fibres, [0.0, 0.0, 1.0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    nodal = np.tile([1.0, 0.0, 0.0], (len(nodes), 1))
    save_fibres(MyocardialFibres(
        points_mm=solver.mesh.points_m[nodes] * 1e3, tetrahedra=local.reshape(-1, 4), fibre=nodal,
        sheet=np.tile([0.0, 1.0, 0.0], (len(nodes), 1)), normal=np.tile([0.0, 0.0, 1.0], (len(nodes), 1)),
        fibre_cell=fibres, sheet_cell=np.cross(normal, fibres), normal_cell=normal, coordinates={},
        parent_nodes=nodes, parent_cells=cells, angles=FibreAngles()), folder / "fibres.npz")
    # the 12-lead's nine electrodes, then two anterior ones, spread over the ball
    directions = np.array([[0.3, -0.5, 0.81], [-0.6, 0.0, -0.8], [0.0, 1.0, 0.0], [0.7, 0.7, 0.1], [-0.2, 0.3, 0.9],
                           [0.9, -0.1, 0.2], [-0.8, 0.5, 0.1], [0.1, -0.9, -0.3], [0.4, 0.2, -0.9],
                           [-0.3, -0.7, 0.6], [0.6, -0.4, -0.5]])
    at_surface, weights = solver.electrode_loads(A * directions / np.linalg.norm(directions, axis=1, keepdims=True))
    positions = np.einsum("ek,eki->ei", weights, solver.mesh.points_m[at_surface]) * 1e3
    # the anatomy stage's columns (ecgcohort.anatomy.electrode_csv), normalised in the ball's box
    normalised = normalised_coordinates(solver.mesh.points_m * 1e3, positions)
    table = pd.DataFrame({"name": [*STANDARD_ELECTRODES, "A01", "A02"], "kind": ["standard"] * 9 + ["anterior"] * 2,
                          "x_mm": positions[:, 0], "y_mm": positions[:, 1], "z_mm": positions[:, 2],
                          "x_norm": normalised[:, 0], "y_norm": normalised[:, 1], "z_norm": normalised[:, 2]})
    table.to_csv(folder / "electrodes.csv", index=False)
    table.iloc[:9].to_csv(folder / "electrodes_standard.csv", index=False)
    write_sample_points("train-0003", balls[11.0], 500, 0.8, 10.0, 7, folder / "points.npz")
    return folder, solver, table


def test_chunk_job_writes_gradients_and_the_lead_matrix(balls, patient_files):
    folder, solver, table = patient_files
    conductivities = {"intra_fibre": 0.3, "intra_cross": 0.03, "extra_fibre": 0.3, "extra_cross": 0.12, "torso": 0.06}
    compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / "electrodes.csv",
                              folder / "points.npz", chunks=[1], electrodes_per_job=2, conductivities=conductivities,
                              out_npzs=[folder / "chunk-1.npz"])
    with np.load(folder / "chunk-1.npz") as out, np.load(folder / "points.npz") as points:
        assert list(out["electrode_names"]) == ["A01", "A02"]
        assert out["grad_points"].shape == (2, 500, 3) and out["grad_points"].dtype == np.float32
        cells = np.flatnonzero(solver.mesh.cell_tags == VOLUME_TAGS["myocardium"])
        assert out["grad_cells"].shape == (2, len(cells), 3)
        reference = solver.solve(out["electrode_positions_m"])
        # the sample points and the cells carry the recovered gradient (the defaults)
        recovered = solver.recovered_gradients(reference, solver.locate(points["points_m"]), points["points_m"])
        np.testing.assert_allclose(out["grad_points"], recovered, rtol=1e-4, atol=1e-4 * np.abs(out["grad_points"]).max())
        assert np.abs(recovered - solver.point_gradients(reference, points["points_m"])).max() > 1e-3 * np.abs(recovered).max()
        fibres = load_fibres(folder / "fibres.npz")
        intracellular = intracellular_tensors(fibres.cell_structure, Conductivities(**conductivities))
        recovered_cells = solver.recovered_gradients(reference, fibres.parent_cells)
        np.testing.assert_allclose(out["grad_cells"], recovered_cells, rtol=1e-4,
                                   atol=1e-4 * np.abs(recovered_cells).max())
        # the lead matrix is the one the stored gradients give, and sums to zero (L·1 = 0)
        reference_matrix = lead_matrix(fibres.points_mm * 1e-3, fibres.tetrahedra, intracellular, recovered_cells)
        assert np.abs(out["lead_matrix"] - reference_matrix).max() < 1e-8 * np.abs(reference_matrix).max()
        assert np.abs(out["lead_matrix"].sum(axis=1)).max() < 1e-10 * np.abs(reference_matrix).max()
        stats = json.loads(str(out["stats_json"]))
        assert stats["patient"] == "train-0003" and stats["factorisation_s"] > 0 and stats["factor_flops"] > 0
        assert stats["point_gradient"] == "recovered" and stats["cell_gradient"] == "recovered"
    compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / "electrodes.csv",
                              folder / "points.npz", chunks=[1], electrodes_per_job=2, conductivities=conductivities,
                              out_npzs=[folder / "chunk-1-p1.npz"], point_gradient="p1", cell_gradient="p1")
    with np.load(folder / "chunk-1-p1.npz") as out, np.load(folder / "points.npz") as points:
        np.testing.assert_allclose(out["grad_points"], solver.point_gradients(reference, points["points_m"]),
                                   rtol=1e-4, atol=1e-4 * np.abs(out["grad_points"]).max())
        # P1 cells: the Galerkin lead matrix −B Z
        galerkin = lead_matrix(fibres.points_mm * 1e-3, fibres.tetrahedra, intracellular,
                               solver.cell_gradients(reference, fibres.parent_cells))
        assert np.abs(out["lead_matrix"] - galerkin).max() < 1e-8 * np.abs(galerkin).max()
        assert np.abs(out["lead_matrix"] - reference_matrix).max() > 1e-3 * np.abs(galerkin).max()
    with pytest.raises(LeadFieldError, match="cell_gradient"):
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / "electrodes.csv",
                                  folder / "points.npz", chunks=[1], electrodes_per_job=2,
                                  conductivities=conductivities, out_npzs=[folder / "chunk-1-bad.npz"],
                                  cell_gradient="p2")


def test_the_12_leads_cell_gradients_alone_change_nothing_else(balls, patient_files):
    """``cell_gradient_electrodes="standard"``: chunk 0 (the 12-lead's) keeps its per-cell ∇Z,
    the anterior chunk has none, and every other array of both chunks is bit for bit the one
    of ``all``."""
    folder, _, _ = patient_files
    conductivities = {"intra_fibre": 0.3, "intra_cross": 0.03, "extra_fibre": 0.3, "extra_cross": 0.12, "torso": 0.06}
    written = {}
    for electrodes in ("all", "standard"):
        outputs = [folder / f"{electrodes}-{chunk}.npz" for chunk in (0, 1)]
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / "electrodes.csv",
                                  folder / "points.npz", chunks=[0, 1], electrodes_per_job=0,
                                  conductivities=conductivities, out_npzs=outputs,
                                  cell_gradient_electrodes=electrodes)
        written[electrodes] = [dict(np.load(path)) for path in outputs]
    cells = len(load_fibres(folder / "fibres.npz").parent_cells)
    assert written["all"][1]["grad_cells"].shape == (2, cells, 3)
    assert written["standard"][1]["grad_cells"].shape == (2, 0, 3)
    assert written["standard"][0]["grad_cells"].shape == (9, cells, 3)
    for chunk in (0, 1):
        for name in ("grad_points", "lead_matrix", "electrode_positions_m", *(("grad_cells",) if chunk == 0 else ())):
            assert np.array_equal(written["all"][chunk][name], written["standard"][chunk][name]), (chunk, name)
        assert json.loads(str(written["standard"][chunk]["stats_json"]))["cell_gradient_electrodes"] == "standard"
    with pytest.raises(LeadFieldError, match="cell_gradient_electrodes"):
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / "electrodes.csv",
                                  folder / "points.npz", chunks=[1], electrodes_per_job=2,
                                  conductivities=conductivities, out_npzs=[folder / "bad.npz"],
                                  cell_gradient_electrodes="anterior")


def test_the_12_leads_electrodes_are_a_chunk_of_their_own_read_from_their_own_table(balls, patient_files, tmp_path):
    """Chunk 0 is the nine 12-lead electrodes whatever the chunk size, so a job reading only it
    does not change with the anterior electrodes: from the 12-lead's own table it gives the same
    gradients as from the whole table; a table that does not start with them is refused."""
    folder, _, table = patient_files
    assert STANDARD_ELECTRODE_COUNT == len(STANDARD_ELECTRODES)
    assert [list(r) for r in electrode_chunks(11, 0)] == [list(range(9)), [9, 10]]
    assert [list(r) for r in electrode_chunks(11, 1)] == [list(range(9)), [9], [10]]
    assert [list(r) for r in electrode_chunks(14, 2)] == [list(range(9)), [9, 10], [11, 12], [13]]
    assert [list(r) for r in electrode_chunks(9, 2)] == [list(range(9))]
    assert [list(r) for r in electrode_chunks(5, 2)] == [list(range(5))]
    conductivities = Conductivities().__dict__
    for name, electrodes, per_job in (("whole", "electrodes.csv", 1), ("own", "electrodes_standard.csv", 0)):
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / electrodes,
                                  folder / "points.npz", chunks=[0], electrodes_per_job=per_job,
                                  conductivities=conductivities, out_npzs=[tmp_path / f"chunk-0-{name}.npz"])
    with np.load(tmp_path / "chunk-0-whole.npz") as whole, np.load(tmp_path / "chunk-0-own.npz") as own:
        assert list(own["electrode_names"]) == list(STANDARD_ELECTRODES) == list(whole["electrode_names"])
        for key in ("electrode_positions_m", "grad_points", "grad_cells", "lead_matrix"):
            np.testing.assert_array_equal(own[key], whole[key])
    table.iloc[[1, 0, *range(2, 11)]].to_csv(tmp_path / "swapped.csv", index=False)
    with pytest.raises(LeadFieldError, match=r"train-0003.*does not start with the 12-lead's electrodes"):
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", tmp_path / "swapped.csv",
                                  folder / "points.npz", chunks=[0], electrodes_per_job=0,
                                  conductivities=conductivities, out_npzs=[tmp_path / "chunk-0-swapped.npz"])
    assert not (tmp_path / "chunk-0-swapped.npz").exists()


def test_chunk_job_refuses_a_chunk_out_of_range(balls, patient_files):
    folder, _, _ = patient_files
    with pytest.raises(LeadFieldError, match=r"train-0003.*chunk 3"):
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / "electrodes.csv",
                                  folder / "points.npz", chunks=[3], electrodes_per_job=2,
                                  conductivities=Conductivities().__dict__, out_npzs=[folder / "chunk-3.npz"])
    assert not (folder / "chunk-3.npz").exists()


def test_one_job_writes_every_chunk_from_one_factorisation_as_the_per_chunk_jobs_do(balls, patient_files, tmp_path):
    """leadfield.electrodes_per_job "all": one job writes chunk 0 (the 12-lead) and chunk 1 (the
    rest) from one factorisation; so does a job of several anterior chunks. Every array is bit for
    bit the one-job-per-chunk workflow's (chunk 0 from the 12-lead's own table): each chunk is
    still its own block solve on the same factors. The factorisation is shared: every chunk file
    carries the same factorisation time and names the chunks that shared it."""
    folder, _, table = patient_files
    conductivities = Conductivities().__dict__
    common = dict(conductivities=conductivities)

    def job(electrodes: str, chunks: list[int], per_job: int, prefix: str) -> list:
        outs = [tmp_path / f"{prefix}-{chunk}.npz" for chunk in chunks]
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / electrodes,
                                  folder / "points.npz", chunks=chunks, electrodes_per_job=per_job, out_npzs=outs,
                                  **common)
        return outs

    keys = ("electrode_names", "electrode_positions_m", "grad_points", "grad_cells", "lead_matrix")
    separate = job("electrodes_standard.csv", [0], 0, "alone") + job("electrodes.csv", [1], 0, "alone")
    for per_job, expected_chunks in ((0, [0, 1]), (1, [0, 1, 2])):
        together = job("electrodes.csv", expected_chunks, per_job, f"together{per_job}")
        if per_job:
            separate = separate[:1] + job("electrodes.csv", [1], 1, "alone1") + job("electrodes.csv", [2], 1, "alone1")
        names, factorisations = [], set()
        for one, other in zip(together, separate, strict=True):
            with np.load(one) as mine, np.load(other) as theirs:
                for key in keys:
                    np.testing.assert_array_equal(mine[key], theirs[key], err_msg=f"{one.name} {key}")
                names += list(mine["electrode_names"])
                stats = json.loads(str(mine["stats_json"]))
                assert stats["factorisation_chunks"] == expected_chunks
                assert stats["electrodes_solved"] == len(mine["electrode_names"])
                factorisations.add(stats["factorisation_s"])
                assert json.loads(str(theirs["stats_json"]))["factorisation_chunks"] == [stats["chunk"]]
        assert names == list(table["name"])
        assert len(factorisations) == 1


def test_one_job_leaves_no_chunk_file_when_a_later_chunk_fails(balls, patient_files, tmp_path):
    """The files are written only after every chunk is computed: an anterior electrode off the
    body surface fails chunk 1 and leaves no chunk 0 (whose electrodes are fine) behind; a job
    given fewer output files than chunks is refused before it starts."""
    folder, _, table = patient_files
    moved = table.copy()
    moved.loc[10, ["x_mm", "y_mm", "z_mm"]] *= 0.9  # A02 10 mm inside the body
    moved.to_csv(tmp_path / "electrodes.csv", index=False)
    outs = [tmp_path / "chunk-0.npz", tmp_path / "chunk-1.npz"]
    with pytest.raises(LeadFieldError, match=r"train-0003.*A02.*off"):
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", tmp_path / "electrodes.csv",
                                  folder / "points.npz", chunks=[0, 1], electrodes_per_job=0,
                                  conductivities=Conductivities().__dict__, out_npzs=outs)
    assert not any(path.exists() for path in outs)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["electrodes.csv"]  # no temporaries either
    with pytest.raises(LeadFieldError, match=r"train-0003: 2 chunk\(s\) \[0, 1\] for 1 output file"):
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", folder / "electrodes.csv",
                                  folder / "points.npz", chunks=[0, 1], electrodes_per_job=0,
                                  conductivities=Conductivities().__dict__, out_npzs=outs[:1])


def test_an_electrode_off_the_body_surface_is_refused_by_name(balls, patient_files, tmp_path):
    folder, _, table = patient_files
    moved = table.copy()
    moved.loc[3, ["x_mm", "y_mm", "z_mm"]] *= 0.9  # 10 mm inside the body
    moved.to_csv(tmp_path / "electrodes.csv", index=False)
    with pytest.raises(LeadFieldError, match=r"train-0003.*V1.*off"):
        compute_lead_field_chunks("train-0003", balls[11.0], folder / "fibres.npz", tmp_path / "electrodes.csv",
                                  folder / "points.npz", chunks=[0], electrodes_per_job=0,
                                  conductivities=Conductivities().__dict__, out_npzs=[tmp_path / "chunk-0.npz"])
    assert not (tmp_path / "chunk-0.npz").exists()


def test_one_call_api_in_mm(balls, patient_files):
    folder, solver, table = patient_files
    result = lead_field_gradients(balls[11.0], table[["x_mm", "y_mm", "z_mm"]].to_numpy(), Conductivities(),
                                  folder / "fibres.npz", query_points_mm=np.array([[0.0, 0.0, 0.0], [50.0, 0, 0]]))
    assert result.potentials.shape == (len(table), solver.stats.nodes)
    assert result.grad_points.shape == (len(table), 2, 3) and result.grad_cells.shape[0] == len(table)
    points = np.random.default_rng(5).uniform(-0.05, 0.05, (400, 3))  # inside the 0.1 m ball
    assert np.array_equal(solver.locate(points), solver._locate_by_bounding_boxes(points))
    with pytest.raises(LeadFieldError, match="outside the mesh"):
        solver.point_gradients(result.potentials, np.array([[0.0, 0.0, 2 * A]]))


def test_one_call_api_tolerates_the_chordal_gap_of_a_coarse_body_surface(balls):
    """An electrode on the true sphere lies off the 11 mm mesh's flat triangles by up to their
    sag (about 0.3 mm here) plus this offset: 1.5 mm off is within a fifth of the mean edge, and
    is accepted; 15 mm off is another surface, and is refused by name."""
    near = ELECTRODE * (1 + 1.5e-3 / A)
    result = lead_field_gradients(balls[11.0], near[None] / 1e-3, UNIFORM)
    assert result.potentials.shape[0] == 1
    with pytest.raises(LeadFieldError, match=r"#0 .* lie more than 2\.\d+ mm from the body surface"):
        lead_field_gradients(balls[11.0], (ELECTRODE * (1 + 15e-3 / A))[None] / 1e-3, UNIFORM)
    with pytest.raises(LeadFieldError, match="lie more than 1 mm"):
        lead_field_gradients(balls[11.0], near[None] / 1e-3, UNIFORM, max_electrode_offset_mm=1.0)


def test_the_pinned_matrix_and_the_nodal_gradient_operators_are_scipys_bit_for_bit(balls):
    """The solver's pinned matrix (triplets bucketed by row in one compiled pass) and its nodal
    gradient operators (cell-gradient rows built in CSR form) are, array for array, what scipy's
    COO route makes of the same triplets: the factor and every lead field stay the same bits."""
    import scipy.sparse

    from ecgcohort.fem import stiffness_upper_triplets
    from ecgcohort.leadfield.solver import _canonical_upper

    solver = LeadFieldSolver(balls[16.0], UNIFORM, max_electrode_offset_mm=2.0)
    n, pinned = len(solver.mesh.points_m), solver.pinned
    rows, columns, values = stiffness_upper_triplets(solver.mesh.tetrahedra, solver.grads, solver.volumes,
                                                     solver.tensors)
    keep = (rows != pinned) & (columns != pinned)
    diagonal = values[(rows == pinned) & (columns == pinned)].sum()
    expected = scipy.sparse.csr_matrix((np.r_[values[keep], diagonal], (np.r_[rows[keep], pinned],
                                                                        np.r_[columns[keep], pinned])), shape=(n, n))
    expected.sum_duplicates()
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(solver.matrix, name), getattr(expected, name), err_msg=name)
    # the factor takes it as it is; a full symmetric matrix or a lower triangle is cut to its upper one
    assert _canonical_upper(solver.matrix)
    full = (solver.matrix + scipy.sparse.triu(solver.matrix, k=1).T).tocsr()
    assert not _canonical_upper(full) and not _canonical_upper(full.tocoo())
    assert not _canonical_upper(scipy.sparse.tril(full, format="csr"))

    for tag in (VOLUME_TAGS["myocardium"], VOLUME_TAGS["torso"]):
        cells = np.flatnonzero(solver.mesh.cell_tags == tag)
        tets = solver.mesh.tetrahedra[cells]
        weight = np.bincount(tets.ravel(), weights=np.repeat(solver.volumes[cells], 4), minlength=n)
        share = np.repeat(solver.volumes[cells], 4) / np.where(weight > 0, weight, 1.0)[tets.ravel()]
        average = scipy.sparse.csr_matrix((share, (tets.ravel(), np.repeat(np.arange(len(cells)), 4))),
                                          shape=(n, len(cells)))
        for axis, operator in enumerate(solver._nodal_gradient_operator(tag)):
            gradient = scipy.sparse.csr_matrix((solver.grads[cells, :, axis].ravel(),
                                                (np.repeat(np.arange(len(cells)), 4), tets.ravel())),
                                               shape=(len(cells), n))
            reference = (average @ gradient).tocsr()
            for name in ("indptr", "indices", "data"):
                np.testing.assert_array_equal(getattr(operator, name), getattr(reference, name),
                                              err_msg=f"tag {tag}, axis {axis}: {name}")


def test_cell_diameters_are_the_longest_edges_to_the_bit(balls):
    """The cells' longest edges, computed per coordinate row, equal the longest of the six
    corner-to-corner distances of each cell, computed from its (4, 3) corners, bit for bit."""
    from ecgcohort.leadfield.sampling import _cell_diameters

    mesh = body_mesh(balls[16.0])
    corners = mesh.points_m[mesh.tetrahedra]
    expected = np.sqrt(np.max([np.sum((corners[:, i] - corners[:, j]) ** 2, axis=1)
                               for i in range(4) for j in range(i + 1, 4)], axis=0))
    np.testing.assert_array_equal(_cell_diameters(mesh.points_m, mesh.tetrahedra), expected)
    lengths = np.linalg.norm(corners[:, :, None] - corners[:, None, :], axis=-1).reshape(len(corners), -1).max(axis=1)
    np.testing.assert_allclose(_cell_diameters(mesh.points_m, mesh.tetrahedra), lengths, rtol=1e-15)
