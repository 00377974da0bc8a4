"""Signed-distance samples of the four closed surfaces: closed forms (sphere, ellipsoid) for both
distance methods, mesh-to-sdf against libigl on heart-like surfaces, capping of the heart,
bad input, and the sample layout."""

from __future__ import annotations

import dataclasses
import math

import igl
import mesh_to_sdf
import numpy as np
import pytest
import trimesh

import ecgcohort.encoding.sdf as sdf_module
from ecgcohort.anatomy.assembly import Surface
from ecgcohort.config import load_schema, validate_config
from ecgcohort.encoding.sdf import (
    SdfSamplingSpec,
    SdfSignError,
    exact_distance,
    mesh_to_sdf_distance,
    read_sdf_samples,
    sample_sdf,
    sdf_preview,
    write_sdf_samples,
)
from ecgcohort.encoding.surfaces import SURFACES, SurfaceError, closed_surfaces
from ecgcohort.geometry import inspect_surface, surface_area, surface_volume
from ecgcohort.shapes.catalog import shape_model_from_config
from synthetic import trunk

HEART_EDGE_MM = 4.0
HEART_OFFSET_MM = np.array([20.0, 20.0, 250.0])  # puts the heart-local frame inside the trunk
CLOUD_POINTS = 200_000  # mesh-to-sdf surface samples, the spec's default


# --------------------------------------------------------------------------------------------
# fixtures and helpers

@pytest.fixture(scope="module")
def heart(repo) -> Surface:
    """The builtin model's mean heart (default config, 4 mm), moved into the synthetic trunk."""
    config = validate_config({}, load_schema(repo / "workflow/schemas/config.schema.yaml"))
    model = shape_model_from_config("heart", dict(config["shapes"]["heart"], template_edge_mm=HEART_EDGE_MM))
    return Surface(model.mean + HEART_OFFSET_MM, model.faces, model.face_labels, model.label_names)


@pytest.fixture(scope="module")
def torso() -> Surface:
    points, faces, _ = trunk()
    return Surface(points, faces, np.ones(len(faces), dtype=np.int32), {1: "body_surface"})


@pytest.fixture(scope="module")
def surfaces(heart, torso):
    return closed_surfaces(heart, torso, patient="train-0007")


def sphere_mesh(radius: float, scale=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """An icosphere (5 subdivisions, 20480 faces) with every vertex on the sphere, scaled per axis."""
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    return np.asarray(mesh.vertices) * scale, np.asarray(mesh.faces, dtype=np.int64)


def max_circumradius(points: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (points[faces[:, i]] for i in range(3))
    ab, bc, ca = (np.linalg.norm(u - v, axis=1) for u, v in ((a, b), (b, c), (c, a)))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    return float((ab * bc * ca / (4 * area)).max())


def chord_error(points: np.ndarray, faces: np.ndarray, radius_of_curvature: float) -> float:
    """Largest gap (mm) between a flat triangle with its vertices on a convex surface and the
    surface: the sagitta of a triangle of the largest circumradius on a sphere of the smallest
    radius of curvature. The inscribed polyhedron lies within this of the surface both ways, so
    its signed distance differs from the surface's by at most this."""
    rho = max_circumradius(points, faces)
    return radius_of_curvature - math.sqrt(radius_of_curvature**2 - rho**2)


def sample_spacing_bound(area_mm2: float, cloud_points: int, queries: int) -> float:
    """Distance (mm) beyond which no query's foot point is from its nearest of ``cloud_points``
    uniform surface samples, except with probability 1e-6: P(one foot point has none within c)
    = exp(-N pi c^2 / A) on a locally flat surface, times the number of queries. mesh-to-sdf's
    distance (to the nearest sample) exceeds the exact one by at most this."""
    return math.sqrt(area_mm2 * (math.log(queries) + math.log(1e6)) / (math.pi * cloud_points))


def shell_queries(points: np.ndarray, faces: np.ndarray, rng: np.random.Generator, count: int,
                  box_margin_mm: float) -> np.ndarray:
    """Points near the surface (noise 2.5 and 25 mm) and uniform in its padded bounding box."""
    on, _ = sdf_module.sample_on_surface(points, faces, 2 * count, rng)
    noise = np.repeat([2.5, 25.0], count)[:, None] * rng.standard_normal((2 * count, 3))
    box = rng.uniform(points.min(axis=0) - box_margin_mm, points.max(axis=0) + box_margin_mm, (count, 3))
    return np.vstack([on + noise, box])


def ellipsoid_distance(queries: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Exact signed distance (negative inside) to the ellipsoid sum (x_i / a_i)^2 = 1.

    The closest point is y_i = a_i^2 x_i / (a_i^2 + t) where t is the unique root on
    (-min a_i^2, inf) of F(t) = sum (a_i x_i / (a_i^2 + t))^2 - 1, which decreases monotonically
    there (Eberly, "Distance from a point to an ellipse, an ellipsoid, or a hyperellipsoid");
    F(-a_min^2 + a_min |x_min|) >= 0 and F(a_max |x|) <= 0 bracket it for bisection."""
    x = np.abs(queries)  # the problem is symmetric per octant
    k = int(np.argmin(axes))
    low = -axes[k] ** 2 + axes[k] * x[:, k]
    high = axes.max() * np.linalg.norm(x, axis=1)
    for _ in range(200):
        middle = 0.5 * (low + high)
        value = ((axes * x / (axes**2 + middle[:, None])) ** 2).sum(axis=1) - 1
        low, high = np.where(value > 0, middle, low), np.where(value > 0, high, middle)
    closest = axes**2 * x / (axes**2 + 0.5 * (low + high)[:, None])
    distance = np.linalg.norm(x - closest, axis=1)
    return np.where(((x / axes) ** 2).sum(axis=1) < 1, -distance, distance)


def normal_turn_deg(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (k, 2) of a closed surface and the angle (deg) between their two faces' normals."""
    normals = np.cross(points[faces[:, 1]] - points[faces[:, 0]], points[faces[:, 2]] - points[faces[:, 0]])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    owner = np.tile(np.arange(len(faces)), 3)
    order = np.lexsort(edges.T[::-1])
    edges, owner = edges[order], owner[order]
    cosine = np.einsum("ij,ij->i", normals[owner[::2]], normals[owner[1::2]])
    return edges[::2], np.degrees(np.arccos(np.clip(cosine, -1, 1)))


# --------------------------------------------------------------------------------------------
# closed forms

def test_sphere_distances_match_the_closed_form_for_both_methods():
    radius = 50.0
    points, faces = sphere_mesh(radius)
    queries = shell_queries(points, faces, np.random.default_rng(1), 4000, 50.0)
    truth = np.linalg.norm(queries, axis=1) - radius
    chord = chord_error(points, faces, radius)  # 0.009 mm at 1.6 mm edges
    assert np.abs(exact_distance(points, faces, queries) - truth).max() <= chord + 1e-9

    spacing = sample_spacing_bound(4 * np.pi * radius**2, CLOUD_POINTS, len(queries))  # 1.1 mm
    ours = mesh_to_sdf_distance(points, faces, queries, CLOUD_POINTS, np.random.default_rng(2))
    # the library's own call draws its samples unseeded; it must obey the same bounds, which
    # shows ours is its algorithm: no rescaling, input units, negative inside
    library = mesh_to_sdf.mesh_to_sdf(trimesh.Trimesh(points, faces, process=False), queries,
                                      surface_point_method="sample", sign_method="normal",
                                      sample_point_count=CLOUD_POINTS)
    deep = np.abs(truth) > spacing + chord
    for values in (ours, library):
        error = np.abs(values) - np.abs(truth)
        assert error.min() >= -chord - 1e-5  # float32 distances, never below the mesh's own
        assert error.max() <= spacing + chord
        assert np.median(error[np.abs(truth) < 5]) < 0.25 * spacing  # typical, not worst, gap
        assert np.array_equal(np.sign(values[deep]), np.sign(truth[deep]))


def test_ellipsoid_distances_match_the_exact_distance_for_both_methods():
    axes = np.array([60.0, 40.0, 25.0])
    points, faces = sphere_mesh(1.0, axes)
    queries = shell_queries(points, faces, np.random.default_rng(3), 4000, 40.0)
    truth = ellipsoid_distance(queries, axes)
    # the smallest radius of curvature of an ellipsoid, c^2 / a, at the ends of its long axis
    chord = chord_error(points, faces, axes.min() ** 2 / axes.max())  # 0.07 mm
    assert np.abs(exact_distance(points, faces, queries) - truth).max() <= chord + 1e-9

    spacing = sample_spacing_bound(surface_area(points, faces), CLOUD_POINTS, len(queries))  # 0.9 mm
    values = mesh_to_sdf_distance(points, faces, queries, CLOUD_POINTS, np.random.default_rng(4))
    error = np.abs(values) - np.abs(truth)
    assert error.min() >= -chord - 1e-5
    assert error.max() <= spacing + chord
    deep = np.abs(truth) > spacing + chord
    assert np.array_equal(np.sign(values[deep]), np.sign(truth[deep]))


# --------------------------------------------------------------------------------------------
# mesh-to-sdf on our surfaces

def test_mesh_to_sdf_sign_fails_at_the_rv_insertion_and_nowhere_deep_else(surfaces):
    """Measured with 200k mesh-to-sdf samples: here (39k queries per surface), in an
    exploration with 300k DeepSDF-like queries, and on the workflow's train-0000, test-0000 and
    test-0001 (4 mm hearts in Anny trunks, 120k queries):

    * LV cavity, heart envelope: signs agree on 99.99 % of the points or more; every wrong sign
      lies within 0.7 mm of the surface (the sample spacing is 0.3 mm; within 2.4 mm with 50k
      samples, 0.4 mm with 1M).
    * synthetic trunk: 99.97 %; wrong signs only on outside points, within 0.3 mm of the wall
      and up to 1.8 mm here (3.4 mm in the exploration) at its 90-degree cap rims. On the
      workflow's trunks 0.015 %, but at a concave crease of the lower back (normal turn
      115 deg) inside points 5 and 29 mm deep were called outside.
    * RV cavity: 1.0 % of the points here, 1.7-2.1 % in the exploration and 2.8-4.3 % on the
      workflow's patients get the wrong sign: outside points called inside, median 68 mm
      (45-54 mm on the patients) and up to 162 mm here, 530 mm in the exploration, from the
      surface, whatever the sample count (50k, 200k, 1M: 1.7, 2.1, 1.7 %). Their closest point
      is on the RV insertion (99 % within 4 mm of it, median 0.5 mm), the edge where septum
      and free wall meet at about 30 degrees (the normals turn by up to 151 deg): the nearest
      samples' normal vote is wrong wherever the query lies in that edge's normal cone but
      behind one of the two sheets.

    Where the signs agree, mesh-to-sdf's distance exceeds libigl's by p99 0.09-0.15 mm (heart),
    1.3 mm (trunk), within the sample-spacing bound.
    """
    rng = np.random.default_rng(5)
    for name in SURFACES:
        points, faces = surfaces[name]
        queries = shell_queries(points, faces, rng, 13_000, 100.0)
        exact = exact_distance(points, faces, queries)
        approximate = mesh_to_sdf_distance(points, faces, queries, CLOUD_POINTS, rng)
        wrong = np.sign(approximate) != np.sign(exact)
        error = np.abs(approximate[~wrong]) - np.abs(exact[~wrong])
        measured = (name, wrong.mean(), np.abs(exact[wrong]).max(initial=0.0))
        spacing = sample_spacing_bound(surface_area(points, faces), CLOUD_POINTS, len(queries))
        assert error.min() > -1e-4 and error.max() <= spacing, name
        if name == "rv_endocardium":
            assert wrong.mean() > 0.004 and np.abs(exact[wrong]).max() > 100, measured
            assert (exact[wrong] > 0).mean() > 0.95  # outside points called inside
            _, _, closest = igl.signed_distance(queries[wrong], points, faces)[:3]
            edges, turn = normal_turn_deg(points, faces)
            sharp = points[np.unique(edges[turn > 120])]
            gap = np.linalg.norm(closest[:, None] - sharp[None], axis=2).min(axis=1)
            assert np.median(gap) < 1.0 and (gap < HEART_EDGE_MM).mean() > 0.95
        else:
            assert wrong.mean() < 1e-3, measured
            assert np.abs(exact[wrong]).max(initial=0.0) < (5.0 if name == "torso" else 1.0), measured


# --------------------------------------------------------------------------------------------
# the four closed surfaces

def test_the_mean_heart_closes_into_nested_cavities_and_envelope(heart, surfaces):
    volume = {}
    for name in SURFACES:
        report = inspect_surface(*surfaces[name])
        assert report.watertight and report.misplaced_probe_fraction == 0, name
        volume[name] = report.volume_mm3
        assert volume[name] > 0, name
    cavities = volume["lv_endocardium"] + volume["rv_endocardium"]
    assert cavities < volume["epicardium"]
    myocardium = surface_volume(heart.points, heart.faces)
    # the envelope shares the cavities' caps, so the volumes add up to round-off
    assert volume["epicardium"] - cavities == pytest.approx(myocardium, rel=1e-12)
    assert 80e3 < volume["lv_endocardium"] < 160e3 and 50e3 < volume["rv_endocardium"] < 150e3  # mL x 1000
    # cavities lie inside the envelope, the envelope inside the torso
    for inner, outer in (("lv_endocardium", "epicardium"), ("rv_endocardium", "epicardium"), ("epicardium", "torso")):
        assert exact_distance(*surfaces[outer], surfaces[inner][0]).max() <= 1e-9, inner


@pytest.mark.parametrize("region, surface", [("lv_endocardium", "lv_endocardium"),
                                             ("rv_endocardium", "rv_endocardium"),
                                             ("epicardium", "epicardium"), ("base", "epicardium")])
def test_a_heart_with_a_missing_face_fails_naming_the_surface(heart, torso, region, surface):
    label = next(k for k, v in heart.label_names.items() if v == region)
    others = heart.faces[heart.labels != label]
    # a face away from the region's rim, so that the hole is a loop of its own
    inner = [i for i in np.flatnonzero(heart.labels == label) if not np.isin(heart.faces[i], others).any()]
    mask = np.arange(len(heart.faces)) != inner[len(inner) // 3]
    broken = Surface(heart.points, heart.faces[mask], heart.labels[mask], heart.label_names)
    with pytest.raises(SurfaceError, match=f"patient train-0003: surface {surface} is not closed: 3 boundary edges"):
        closed_surfaces(broken, torso, patient="train-0003")


def test_an_open_or_inverted_torso_fails_naming_the_torso(heart, torso):
    open_torso = Surface(torso.points, torso.faces[1:], torso.labels[1:], torso.label_names)
    with pytest.raises(SurfaceError, match="patient test-0001: surface torso is not closed: 3 boundary edges"):
        closed_surfaces(heart, open_torso, patient="test-0001")
    inverted = Surface(torso.points, torso.faces[:, ::-1], torso.labels, torso.label_names)
    with pytest.raises(SurfaceError, match="patient test-0001: surface torso encloses a volume of -"):
        closed_surfaces(heart, inverted, patient="test-0001")


# --------------------------------------------------------------------------------------------
# sampling

def test_a_wrong_sign_deep_inside_fails_naming_patient_and_surface(surfaces, monkeypatch):
    spec = SdfSamplingSpec(near_surface_count=800, uniform_count=200)
    exact = sdf_module.exact_distance

    def inverted_for_the_lv(points, faces, queries):
        values = exact(points, faces, queries)
        return -values if np.array_equal(points, surfaces["lv_endocardium"][0]) else values

    monkeypatch.setattr(sdf_module, "exact_distance", inverted_for_the_lv)
    with pytest.raises(SdfSignError, match=r"patient train-0009: surface lv_endocardium \(exact\): \d+ of \d+ "
                                           r"samples farther than 1.0 mm from it have the wrong sign, e\.g\. \["):
        sample_sdf(surfaces, spec, np.random.default_rng(0), patient="train-0009")


def test_an_isolated_exact_sign_failure_takes_the_winding_numbers_sign(surfaces, monkeypatch, caplog):
    """study train-0012: one pseudonormal sign flipped 23 mm outside the RV cavity at a rim fold."""
    spec = SdfSamplingSpec(near_surface_count=800, uniform_count=1200)
    reference = sample_sdf(surfaces, spec, np.random.default_rng(0), patient="train-0012")
    rv = SURFACES.index("rv_endocardium")
    far_outside = int(np.argmax(reference.sdf_mm[rv]))
    assert reference.sdf_mm[rv, far_outside] > 20.0
    exact = sdf_module.exact_distance

    def one_flipped_for_the_rv(points, faces, queries):
        values = exact(points, faces, queries)
        if np.array_equal(points, surfaces["rv_endocardium"][0]):
            values[far_outside] = -values[far_outside]
        return values

    monkeypatch.setattr(sdf_module, "exact_distance", one_flipped_for_the_rv)
    with caplog.at_level("WARNING", logger="ecgcohort.encoding.sdf"):
        repaired = sample_sdf(surfaces, spec, np.random.default_rng(0), patient="train-0012")
    np.testing.assert_array_equal(repaired.sdf_mm, reference.sdf_mm)
    assert "patient train-0012: surface rv_endocardium (exact): 1 of" in caplog.text


def test_the_sign_check_rejects_mesh_to_sdf_on_the_rv_cavity(surfaces):
    method = dict(SdfSamplingSpec().method, rv_endocardium="mesh_to_sdf")
    spec = SdfSamplingSpec(near_surface_count=4000, uniform_count=4000, method=method)
    with pytest.raises(SdfSignError, match=r"patient train-0002: surface rv_endocardium \(mesh_to_sdf\)"):
        sample_sdf(surfaces, spec, np.random.default_rng(0), patient="train-0002")


def test_an_inverted_surface_given_to_the_sampler_fails_naming_it(surfaces):
    points, faces = surfaces["epicardium"]
    inverted = dict(surfaces, epicardium=(points, faces[:, ::-1]))
    with pytest.raises(SurfaceError, match="patient train-0004: surface epicardium encloses a volume of -"):
        sample_sdf(inverted, SdfSamplingSpec(near_surface_count=80, uniform_count=20), np.random.default_rng(0),
                   patient="train-0004")


def test_the_samples_are_laid_out_as_specified_and_reproducible(surfaces, tmp_path):
    spec = SdfSamplingSpec(near_surface_count=4002, uniform_count=1000, box_padding_mm=15.0,
                           method=dict(SdfSamplingSpec().method, epicardium="mesh_to_sdf"))
    samples = sample_sdf(surfaces, spec, np.random.default_rng(11), patient="train-0005")
    assert samples.points_mm.dtype == samples.sdf_mm.dtype == np.float32 and samples.kind.dtype == np.int8
    assert samples.surfaces == SURFACES and samples.sdf_mm.shape == (4, 5002)
    assert np.bincount(samples.kind).tolist() == [1000, 1001, 1001, 1000, 1000]
    # one point set for all surfaces: each row is that surface's distance at the same points
    for k, name in enumerate(SURFACES):
        if spec.method[name] == "exact":
            expected = exact_distance(*surfaces[name], samples.points_mm.astype(float))
            np.testing.assert_allclose(samples.sdf_mm[k], expected, atol=1e-4)
        near = samples.sdf_mm[k, samples.kind == k + 1]
        small, large = near[: len(near) // 2], near[len(near) // 2:]  # sigma 2.5 mm, then 25 mm
        # a point displaced by Gaussian noise is no farther from the surface than the noise:
        # median |normal part| = 0.67 sigma; |noise| < 5 sigma except with probability 1e-5
        assert np.median(np.abs(small)) < 2.5 and np.abs(small).max() < 12.5, name
        assert 2.5 < np.median(np.abs(large)) < 25.0, name
    uniform = samples.points_mm[samples.kind == 0]
    low, high = surfaces["torso"][0].min(axis=0) - 15.0, surfaces["torso"][0].max(axis=0) + 15.0
    assert np.all(uniform >= low) and np.all(uniform <= high)
    assert np.all(uniform.min(axis=0) < low + 30) and np.all(uniform.max(axis=0) > high - 30)  # fills the box

    again = sample_sdf(surfaces, spec, np.random.default_rng(11), patient="train-0005")
    other = sample_sdf(surfaces, spec, np.random.default_rng(12), patient="train-0005")
    assert np.array_equal(again.points_mm, samples.points_mm) and np.array_equal(again.sdf_mm, samples.sdf_mm)
    assert not np.array_equal(other.points_mm, samples.points_mm)

    path = tmp_path / "sdf" / "samples.npz"
    write_sdf_samples(samples, path)
    back = read_sdf_samples(path)
    assert dataclasses.astuple(back)[3:] == dataclasses.astuple(samples)[3:]
    for field in ("points_mm", "sdf_mm", "kind"):
        assert np.array_equal(getattr(back, field), getattr(samples, field))
    sdf_preview(samples, tmp_path / "sdf" / "samples.png", title="train-0005")
    assert sorted(p.name for p in (tmp_path / "sdf").iterdir()) == ["samples.npz", "samples.png"]
    assert (tmp_path / "sdf" / "samples.png").stat().st_size > 20_000


def test_the_distances_computed_in_spatial_order_are_those_of_the_points_in_file_order(surfaces):
    samples = sample_sdf(surfaces, SdfSamplingSpec(near_surface_count=3000, uniform_count=1000),
                         np.random.default_rng(4), patient="train-0006")
    for k, name in enumerate(SURFACES):
        expected = exact_distance(*surfaces[name], samples.points_mm.astype(float)).astype(np.float32)
        assert np.array_equal(samples.sdf_mm[k], expected), name


def test_invalid_specs_are_refused():
    with pytest.raises(ValueError, match="method"):
        SdfSamplingSpec(method={"torso": "exact"})
    with pytest.raises(ValueError, match="near_sigma_mm"):
        SdfSamplingSpec(near_sigma_mm=(2.5, 0.0))
