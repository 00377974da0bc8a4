"""LDRB fibres and ventricular coordinates on a meshed bi-ventricular heart in a torso.

Measurements here are independent of ldrb's internals: surfaces come from the parent mesh's
facet tags (through ``parent_nodes``), the transmural direction from a volume-weighted nodal
average of the P1 gradients of the transmural coordinate, the long axis from the heart's
local frame (+z apex to base, RV on +x, base plane at z = 300 mm after the translation).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from mpi4py import MPI  # noqa: F401  (libmpi before dolfinx)

from ecgcohort.fibers import FibreAngles, load_fibres, myocardial_fibres, rotational_coordinate, save_fibres
from ecgcohort.meshing import FACET_TAGS, mesh_heart_in_torso, read_tagged_mesh
from ecgcohort.shapes.heart import build_heart_model
from synthetic import trunk

EDGE_MM = 4.0
BASE_Z = 300.0
DEFAULT = FibreAngles()
STEEP = FibreAngles(alpha_endo=65.0, alpha_epi=-25.0)


def _import_ldrb():
    """``ldrb.ldrb`` (the reference the library's LDRB reimplements), its numba functions
    compiled with the on-disk cache (ldrb compiles them eagerly at import, 5-7 s otherwise)."""
    import numba

    plain = numba.njit

    def cached(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return plain(*args, **kwargs)

    numba.njit = cached
    try:
        import ldrb.ldrb as ldrb_module
    finally:
        numba.njit = plain
    return ldrb_module


@pytest.fixture(scope="module")
def mesh_path(tmp_path_factory):
    model = build_heart_model(n_modes=2, population=10, seed=0, edge_length_mm=EDGE_MM)
    torso_points, torso_faces, _ = trunk()
    path = tmp_path_factory.mktemp("fibres") / "heart.msh"
    mesh_heart_in_torso(torso_points, torso_faces, model.mean + np.array([0.0, 0.0, BASE_Z]), model.faces,
                        model.face_labels, model.label_names, heart_size_mm=EDGE_MM, torso_size_mm=40.0,
                        output_path=path)
    return path


@pytest.fixture(scope="module")
def case(mesh_path):
    path = mesh_path
    start = time.perf_counter()
    fibres = myocardial_fibres(path, DEFAULT)
    print(f"\nLDRB (first call, with imports/JIT) {time.perf_counter() - start:.1f} s; in-function "
          f"{fibres.seconds:.1f} s for {fibres.n_cells} tetrahedra, {fibres.n_nodes} nodes")
    steep = myocardial_fibres(path, STEEP)
    print(f"LDRB (second call) {steep.seconds:.1f} s")

    data = read_tagged_mesh(path)
    local = {int(parent): i for i, parent in enumerate(fibres.parent_nodes)}
    surfaces = {}
    for name in ("epicardium", "lv_endocardium", "rv_endocardium", "base"):
        surfaces[name] = np.array(sorted(local[int(node)] for node in np.unique(data.facets[FACET_TAGS[name]])))
    return fibres, steep, surfaces, data


def _cell_gradients(points: np.ndarray, tets: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P1 gradient per cell, volume-weighted average of the cell gradients per node), 1/mm."""
    p = points[tets]
    edges = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]], axis=1)
    differences = values[tets[:, 1:]] - values[tets[:, [0]]]
    per_cell = np.linalg.solve(edges, differences[..., None])[..., 0]
    volume = np.abs(np.linalg.det(edges)) / 6
    total, weight = np.zeros((len(points), 3)), np.zeros(len(points))
    for k in range(4):
        np.add.at(total, tets[:, k], per_cell * volume[:, None])
        np.add.at(weight, tets[:, k], volume)
    return per_cell, total / weight[:, None]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _helix_deg(fibre: np.ndarray, transmural: np.ndarray) -> np.ndarray:
    """Helix angle (degrees, (-90, 90]): fibre against the circumferential direction
    c = l x t in the plane normal to t, l the +z long axis projected on that plane."""
    l_axis = _unit(np.array([0.0, 0.0, 1.0]) - transmural[:, 2:3] * transmural)
    circumferential = np.cross(l_axis, transmural)
    return np.degrees(np.arctan(np.einsum("ij,ij->i", fibre, l_axis) / np.einsum("ij,ij->i", fibre, circumferential)))


def _lv_free_wall_mid(fibres, nodes: np.ndarray) -> np.ndarray:
    """The nodes on the LV free wall (x < -10 mm, away from the RV on +x) between 20% and
    80% of the apex-to-base height."""
    x = fibres.points_mm
    z_apex = x[:, 2].min()
    height = (x[nodes, 2] - z_apex) / (BASE_Z - z_apex)
    return nodes[(x[nodes, 0] < -10.0) & (height > 0.2) & (height < 0.8)]


@pytest.mark.parametrize("where", ["node", "cell"])
def test_frames_are_orthonormal(case, where):
    fibres = case[0]
    suffix = "" if where == "node" else "_cell"
    frame = np.stack([getattr(fibres, name + suffix) for name in ("fibre", "sheet", "normal")], axis=1)
    expected = fibres.n_nodes if where == "node" else fibres.n_cells
    assert frame.shape == (expected, 3, 3)
    gram = np.einsum("nai,nbi->nab", frame, frame)
    assert np.abs(gram - np.eye(3)).max() < 1e-8
    # right-handed, as ldrb builds them by rotations
    assert np.allclose(np.cross(frame[:, 0], frame[:, 1]), frame[:, 2], atol=1e-8)


def test_submesh_maps_back_to_the_full_mesh(case):
    fibres, _, surfaces, data = case
    assert np.array_equal(data.points_mm[fibres.parent_nodes], fibres.points_mm)
    assert set(np.unique(data.cell_tags[fibres.parent_cells])) == {1}
    np.testing.assert_array_equal(np.sort(data.tetrahedra[fibres.parent_cells], axis=1),
                                  np.sort(fibres.parent_nodes[fibres.tetrahedra], axis=1))
    assert len(np.unique(fibres.parent_nodes)) == fibres.n_nodes
    assert fibres.n_cells == int((data.cell_tags == 1).sum())
    assert all(len(nodes) > 20 for nodes in surfaces.values())


def test_fibres_are_orthogonal_to_the_transmural_gradient(case):
    fibres = case[0]
    per_cell, per_node = _cell_gradients(fibres.points_mm, fibres.tetrahedra, fibres.coordinates["transmural"])
    node_dot = np.abs(np.einsum("ij,ij->i", fibres.fibre, _unit(per_node)))
    cell_dot = np.abs(np.einsum("ij,ij->i", fibres.fibre_cell, _unit(per_cell)))
    print(f"\nmedian |f . grad(transmural)|: nodes {np.median(node_dot):.3f}, cells {np.median(cell_dot):.3f}")
    assert np.median(node_dot) < 0.05
    # per cell, ldrb blends the LV/RV endocardial gradients with the epicardial one: looser
    # (random directions would give a median of 0.5)
    assert np.median(cell_dot) < 0.1


@pytest.mark.parametrize("which", ["default", "steep"])
def test_helix_angles_on_the_lv_free_wall_match_the_configuration(case, which):
    fibres = case[0] if which == "default" else case[1]
    angles = DEFAULT if which == "default" else STEEP
    surfaces = case[2]
    _, per_node = _cell_gradients(fibres.points_mm, fibres.tetrahedra, fibres.coordinates["transmural"])
    transmural = _unit(per_node)
    endo = _lv_free_wall_mid(fibres, np.setdiff1d(surfaces["lv_endocardium"], surfaces["base"]))
    epi = _lv_free_wall_mid(fibres, np.setdiff1d(surfaces["epicardium"], surfaces["base"]))
    assert len(endo) > 30 and len(epi) > 30
    helix_endo = float(np.median(_helix_deg(fibres.fibre[endo], transmural[endo])))
    helix_epi = float(np.median(_helix_deg(fibres.fibre[epi], transmural[epi])))
    print(f"\n{which}: helix endo {helix_endo:.1f} (configured {angles.alpha_endo}), "
          f"epi {helix_epi:.1f} (configured {angles.alpha_epi}) deg over {len(endo)}/{len(epi)} nodes")
    assert helix_endo == pytest.approx(angles.alpha_endo, abs=5.0)
    assert helix_epi == pytest.approx(angles.alpha_epi, abs=5.0)


def test_the_angles_change_the_fibres_but_not_the_coordinates(case):
    fibres, steep = case[0], case[1]
    assert np.array_equal(fibres.points_mm, steep.points_mm)
    for name in fibres.coordinates:
        assert np.allclose(fibres.coordinates[name], steep.coordinates[name])
    # the frames differ: the helix angles differ by 25 degrees at both surfaces
    axial = np.abs(np.einsum("ij,ij->i", fibres.fibre, steep.fibre))
    assert np.median(axial) < np.cos(np.radians(10.0))


def test_transmural_and_apicobasal_boundary_values(case):
    fibres, _, surfaces, _ = case
    transmural = fibres.coordinates["transmural"]
    apicobasal = fibres.coordinates["apicobasal"]
    endo = np.union1d(surfaces["lv_endocardium"], surfaces["rv_endocardium"])
    epi = np.setdiff1d(surfaces["epicardium"], endo)
    assert np.abs(transmural[endo]).max() < 1e-6
    assert np.abs(transmural[epi] - 1).max() < 1e-6
    assert transmural.min() > -1e-6 and transmural.max() < 1 + 1e-6
    assert np.abs(apicobasal[surfaces["base"]] - 1).max() < 1e-6
    # the apex condition is a single node: 0 there, within 5 mm of the lowest point of the heart
    lowest = fibres.points_mm[np.argmin(fibres.points_mm[:, 2])]
    near_apex = np.linalg.norm(fibres.points_mm - lowest, axis=1) < 5.0
    assert apicobasal[near_apex].min() < 1e-6
    assert np.corrcoef(apicobasal, fibres.points_mm[:, 2])[0, 1] > 0.8
    assert apicobasal.min() > -1e-6 and apicobasal.max() < 1 + 1e-6


def test_ventricle_and_rotational_coordinates(case):
    fibres, _, surfaces, _ = case
    ventricle = fibres.coordinates["ventricle"]
    rotational = fibres.coordinates["rotational"]
    lv_only = np.setdiff1d(surfaces["lv_endocardium"], surfaces["rv_endocardium"])
    rv_only = np.setdiff1d(surfaces["rv_endocardium"], surfaces["lv_endocardium"])
    assert np.all(ventricle[lv_only] == 0) and np.all(ventricle[rv_only] == 1)
    assert set(np.unique(ventricle)) == {0.0, 1.0}
    assert np.all(np.abs(rotational) <= np.pi + 1e-12)
    x = fibres.points_mm
    # RV on +x: the RV free wall near 0, the LV free wall (-x) near +-pi, +y is +pi/2
    rv_free = rv_only[x[rv_only, 0] > 20.0]
    assert np.median(np.abs(rotational[rv_free])) < np.radians(30)
    lv_free = lv_only[(x[lv_only, 0] < -10.0) & (np.abs(x[lv_only, 1]) < 8.0)]
    assert len(lv_free) > 10
    assert np.median(np.abs(rotational[lv_free])) > np.radians(160)
    anterior = (x[:, 1] > 15.0) & (np.abs(x[:, 0]) < 5.0)
    assert np.median(rotational[anterior]) == pytest.approx(np.pi / 2, abs=np.radians(20))


def test_rotational_coordinate_closed_form():
    angle = np.linspace(-3.0, 3.0, 13)
    points = np.column_stack([np.cos(angle) * 7, np.sin(angle) * 7, np.linspace(1, 9, 13)])
    # axis along +z, reference towards +x: the angle is the azimuth
    result = rotational_coordinate(points, np.zeros(3), np.array([0, 0, 10.0]), np.array([5.0, 0, 3]))
    assert np.allclose(result, angle)
    # reversing the axis reverses the sense of rotation
    flipped = rotational_coordinate(points, np.array([0, 0, 10.0]), np.zeros(3), np.array([5.0, 0, 3]))
    assert np.allclose(flipped, -angle)


def _subdivision_points(levels: int) -> np.ndarray:
    """Barycentric centroids of the 8**levels equal-volume children of regular (Bey) refinement."""
    def children(v):
        m = lambda i, j: (v[i] + v[j]) / 2  # noqa: E731
        corners = [np.array([v[k], *(m(k, j) for j in range(4) if j != k)]) for k in range(4)]
        ring = (m(0, 1), m(1, 2), m(2, 3), m(0, 3), m(0, 1))
        return corners + [np.array([m(0, 2), m(1, 3), ring[k], ring[k + 1]]) for k in range(4)]
    tets = [np.eye(4)]
    for _ in range(levels):
        tets = [child for tet in tets for child in children(tet)]
    return np.array([tet.mean(axis=0) for tet in tets])


def test_cell_structure_is_the_cell_mean_of_the_fibre_dyad(case, mesh_path, monkeypatch):
    """A 4 mm cell spans a third of the wall: its mean f fᵀ (Keast's 4 points) must match a
    64-point average of the same LDRB field far better than the centroid's f fᵀ does."""
    import ecgcohort.fibers.rule_based as rule_based

    fibres = case[0]
    structure = fibres.structure_cell
    assert structure.shape == (fibres.n_cells, 3, 3)
    np.testing.assert_allclose(structure, np.transpose(structure, (0, 2, 1)), atol=1e-12)
    np.testing.assert_allclose(np.einsum("cii->c", structure), 1.0, atol=1e-9)
    assert np.linalg.eigvalsh(structure).min() > -1e-9
    monkeypatch.setattr(rule_based, "STRUCTURE_POINTS", _subdivision_points(2))
    assert np.allclose(_subdivision_points(2).sum(axis=1), 1.0) and len(_subdivision_points(2)) == 64
    fine = rule_based.myocardial_fibres(mesh_path, DEFAULT).structure_cell
    keast = np.linalg.norm(structure - fine, axis=(1, 2)).mean()
    centroid = np.linalg.norm(fibres.fibre_cell[:, :, None] * fibres.fibre_cell[:, None, :] - fine, axis=(1, 2)).mean()
    print(f"\nmean |A - A_64|_F: Keast 4 points {keast:.4f}, centroid fibre {centroid:.4f}")
    assert keast < 0.05 and keast < centroid / 2.5
    # transversely isotropic conductivities then follow the cell mean, not the centroid's fibre
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors

    sigma = Conductivities()
    np.testing.assert_allclose(intracellular_tensors(structure, sigma),
                               sigma.intra_cross * np.eye(3) + (sigma.intra_fibre - sigma.intra_cross) * structure)


def test_angles_are_validated():
    with pytest.raises(ValueError, match="alpha_endo"):
        FibreAngles(alpha_endo=120.0)


def test_save_load_round_trip(case, tmp_path):
    fibres = case[0]
    path = save_fibres(fibres, tmp_path / "fibres.npz", vtu=True)
    loaded = load_fibres(path)
    for name in ("points_mm", "tetrahedra", "fibre", "sheet", "normal", "fibre_cell", "sheet_cell",
                 "normal_cell", "parent_nodes", "parent_cells", "structure_cell"):
        assert np.array_equal(getattr(loaded, name), getattr(fibres, name)), name
    assert loaded.coordinates.keys() == fibres.coordinates.keys()
    for name, values in fibres.coordinates.items():
        assert np.array_equal(loaded.coordinates[name], values)
    assert loaded.angles == fibres.angles
    import pyvista

    grid = pyvista.read(tmp_path / "fibres.vtu")
    assert grid.n_points == fibres.n_nodes and grid.n_cells == fibres.n_cells
    assert np.allclose(grid.point_data["fibre"], fibres.fibre)
    assert np.allclose(grid.cell_data["sheet"], fibres.sheet_cell)


@pytest.mark.parametrize("with_rv", [True, False])
def test_compiled_frames_equal_ldrbs_own(with_rv):
    """ecgcohort.fibers.frames reproduces ldrb's compute_fiber_sheet_system (the reference it
    ports) point by point, in every region branch (LV, RV, septum by epi / lv_rv) and for an
    LV-only heart (no RV solution: ldrb's zeros)."""
    from ecgcohort.fibers.frames import fibre_sheet_frames
    ldrb = _import_ldrb()
    rng = np.random.default_rng(3)
    n = 5000
    data = {"lv_scalar": rng.random(n), "epi_scalar": rng.random(n), "lv_gradient": rng.normal(size=3 * n),
            "epi_gradient": rng.normal(size=3 * n), "apex_gradient": rng.normal(size=3 * n)}
    if with_rv:
        data.update(rv_scalar=rng.random(n), lv_rv_scalar=rng.random(n), rv_gradient=rng.normal(size=3 * n))
    reference = ldrb.compute_fiber_sheet_system(marker_scalar=np.zeros(n), alpha_endo_lv=DEFAULT.alpha_endo,
                                                alpha_epi_lv=DEFAULT.alpha_epi, beta_endo_lv=DEFAULT.beta_endo,
                                                beta_epi_lv=DEFAULT.beta_epi, **data)
    zeros = np.zeros(n)
    ours = fibre_sheet_frames(data["lv_scalar"], data.get("rv_scalar", zeros), data["epi_scalar"],
                              data.get("lv_rv_scalar", zeros), data["lv_gradient"],
                              data.get("rv_gradient", np.zeros(3 * n)), data["epi_gradient"], data["apex_gradient"],
                              alpha_endo_deg=DEFAULT.alpha_endo, alpha_epi_deg=DEFAULT.alpha_epi,
                              beta_endo_deg=DEFAULT.beta_endo, beta_epi_deg=DEFAULT.beta_epi)
    for theirs, mine in zip((reference.f0, reference.s0, reference.n0), ours):
        np.testing.assert_allclose(mine, np.asarray(theirs).reshape(-1, 3), rtol=0, atol=1e-12)
    # the frames are rotations wherever the gradients are not parallel
    frame = np.stack(ours, axis=2)
    np.testing.assert_allclose(np.einsum("nji,njk->nik", frame, frame), np.broadcast_to(np.eye(3), frame.shape),
                               atol=1e-3)


def test_laplace_solutions_equal_ldrbs_own(case, mesh_path):
    """The library's Laplace solves (one stiffness matrix, the Dirichlet nodes eliminated, one
    multigrid set-up for the three wall problems) give fenicsx-ldrb's ``scalar_laplacians``
    on the same dolfinx mesh, node for node, to the solvers' tolerance; the ventricle label is
    ``rv > lv`` wherever the two differ."""
    import dolfinx.fem
    import dolfinx.graph
    import dolfinx.io.utils
    import dolfinx.mesh

    from ecgcohort.fibers.rule_based import _myocardium

    fibres, _, surfaces, data = case
    myocardium = _myocardium(data)
    # the same dolfinx mesh, tagged as ldrb wants its facets
    domain = __import__("ufl").Mesh(__import__("basix.ufl").ufl.element("Lagrange", "tetrahedron", 1, shape=(3,)))
    from mpi4py import MPI

    mesh = dolfinx.mesh.create_mesh(MPI.COMM_SELF, fibres.tetrahedra, domain, fibres.points_mm)
    original = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)  # geometry node -> fibres' node
    tags = {"epi": FACET_TAGS["epicardium"], "lv": FACET_TAGS["lv_endocardium"], "rv": FACET_TAGS["rv_endocardium"],
            "base": FACET_TAGS["base"]}
    local = np.full(len(data.points_mm), -1)
    local[fibres.parent_nodes] = np.arange(fibres.n_nodes)
    triangles = np.vstack([local[data.facets[tag]] for tag in tags.values()])
    values = np.concatenate([np.full(len(data.facets[tag]), tag, dtype=np.int32) for tag in tags.values()])
    keep = np.all(triangles >= 0, axis=1)
    entities, entity_values = dolfinx.io.utils.distribute_entity_data(mesh, 2, triangles[keep], values[keep])
    mesh.topology.create_connectivity(2, 3)
    facet_tags = dolfinx.mesh.meshtags_from_entities(mesh, 2, dolfinx.graph.adjacencylist(entities),
                                                     entity_values.astype(np.int32))
    reference = _import_ldrb().scalar_laplacians(
        mesh=mesh, markers={name: [tag] for name, tag in tags.items()}, ffun=facet_tags,
        petsc_options={"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-12})
    space = reference["apex"].function_space
    dof_to_node = np.empty(fibres.n_nodes, dtype=np.int64)
    dof_to_node[np.asarray(space.dofmap.list)] = original[np.asarray(mesh.geometry.dofmaps[0])]
    ours = {"apex": fibres.coordinates["apicobasal"], "epi": fibres.coordinates["transmural"]}
    for name, function in reference.items():
        nodal = np.empty(fibres.n_nodes)
        nodal[dof_to_node] = function.x.array
        if name in ours:
            np.testing.assert_allclose(ours[name], nodal, rtol=0, atol=1e-7, err_msg=name)
    assert {name: len(nodes) for name, nodes in myocardium.surface_nodes.items()} == \
        {name: len(surfaces[tag]) for name, tag in (("epi", "epicardium"), ("lv", "lv_endocardium"),
                                                     ("rv", "rv_endocardium"), ("base", "base"))}
    lv, rv = (np.empty(fibres.n_nodes) for _ in range(2))
    lv[dof_to_node], rv[dof_to_node] = reference["lv"].x.array, reference["rv"].x.array
    distinct = np.abs(rv - lv) > 1e-6
    assert distinct.mean() > 0.5
    np.testing.assert_array_equal(fibres.coordinates["ventricle"][distinct], (rv > lv)[distinct])


def test_epicardial_ventricle_labels_follow_the_wall(case):
    """On the epicardium (lv = rv = 0 there) the label is the adjacent wall's: the LV free
    wall (x < -10 mm, away from the RV on +x) is LV, and the labels are not the rounding noise
    of a solver (both ventricles present on the epicardium, in proportions near the walls')."""
    fibres, _, surfaces, _ = case
    epicardium = surfaces["epicardium"]
    labels = fibres.coordinates["ventricle"][epicardium]
    lv_free_wall = _lv_free_wall_mid(fibres, epicardium)
    assert lv_free_wall.size > 20
    assert fibres.coordinates["ventricle"][lv_free_wall].max() == 0.0
    assert 0.05 < labels.mean() < 0.95


def test_myocardium_is_numbered_as_dolfinx_numbers_it(case):
    """The fibres' node and cell order is the one dolfinx's create_mesh and P1 space give the
    myocardium cells (that of every earlier fibre file), rebuilt from its graph routines."""
    import basix.ufl
    import dolfinx.fem
    import dolfinx.mesh
    import ufl
    from mpi4py import MPI

    from ecgcohort.fibers.rule_based import _myocardium
    from ecgcohort.meshing import VOLUME_TAGS

    fibres, _, _, data = case
    myocardium = _myocardium(data)
    cells = np.flatnonzero(data.cell_tags == VOLUME_TAGS["myocardium"])
    nodes, local = np.unique(data.tetrahedra[cells], return_inverse=True)
    domain = ufl.Mesh(basix.ufl.element("Lagrange", "tetrahedron", 1, shape=(3,)))
    mesh = dolfinx.mesh.create_mesh(MPI.COMM_SELF, local.reshape(-1, 4), domain, data.points_mm[nodes])
    space = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
    dofs = np.asarray(space.dofmap.list)
    dof_to_node = np.empty(len(nodes), dtype=np.int64)
    dof_to_node[dofs] = np.asarray(mesh.geometry.dofmaps[0])
    np.testing.assert_array_equal(myocardium.tetrahedra, dofs)
    np.testing.assert_array_equal(myocardium.parent_cells, cells[np.asarray(mesh.topology.original_cell_index)])
    np.testing.assert_array_equal(myocardium.parent_nodes,
                                  nodes[np.asarray(mesh.geometry.input_global_indices)][dof_to_node])
    np.testing.assert_array_equal(myocardium.points_mm, mesh.geometry.x[dof_to_node])
    np.testing.assert_array_equal(fibres.tetrahedra, myocardium.tetrahedra)


def test_the_fibre_job_writes_the_paraview_file_only_when_asked(mesh_path, tmp_path):
    from ecgcohort.fibers.jobs import compute_fibres

    angles = {"alpha_endo_deg": 40.0, "alpha_epi_deg": -50.0, "beta_endo_deg": -65.0, "beta_epi_deg": 25.0}
    compute_fibres("p", mesh_path, angles, tmp_path / "plain" / "fibres.npz")
    assert (tmp_path / "plain" / "fibres.npz").exists() and not (tmp_path / "plain" / "fibres.vtu").exists()
    compute_fibres("p", mesh_path, angles, tmp_path / "viewing" / "fibres.npz", vtu=True)
    assert (tmp_path / "viewing" / "fibres.vtu").stat().st_size > 0
