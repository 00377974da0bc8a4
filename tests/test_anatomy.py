"""Patient assembly across a sampled cohort: closed surfaces, volumes, heart inside the torso,
the body and heart of the patient's sex, electrode order, and clear failures for impossible rows."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from ecgcohort.anatomy import (
    AnatomyError,
    HeartNorms,
    PlacementSettings,
    assemble_patient,
    electrode_table,
)
from ecgcohort.cohort import Person, design_from_config, patient_ids, patient_parameters, patient_person
from ecgcohort.encoding.surfaces import closed_surfaces
from ecgcohort.geometry import surface_volume
from ecgcohort.config import load_schema, validate_config
from ecgcohort.geometry import inspect_surface, signed_distance, winding_numbers
from ecgcohort.io import user_cache_dir
from ecgcohort.shapes import load_npz
from ecgcohort.shapes.catalog import write_shape_model

# a coarser heart template than the default 1 mm keeps twenty assemblies quick
HEART_TEMPLATE_MM = 2.0


@pytest.fixture(scope="module")
def config(repo):
    return validate_config({}, load_schema(repo / "workflow/schemas/config.schema.yaml"))


@pytest.fixture(scope="module")
def models(config, tmp_path_factory):
    """The built-in heart (on a 2 mm template) and torso, through the session's model cache as a
    workflow job makes them (the torso is then usually a workflow copy's)."""
    folder = tmp_path_factory.mktemp("shapes")
    specs = {"heart": dict(config["shapes"]["heart"], template_edge_mm=HEART_TEMPLATE_MM),
             "torso": config["shapes"]["torso"]}
    for organ, spec in specs.items():
        write_shape_model(organ, spec, folder / f"{organ}.npz", cache_dir=user_cache_dir("shapes"))
    return load_npz(folder / "heart.npz"), load_npz(folder / "torso.npz")


@pytest.fixture(scope="module")
def design(config):
    cohort = copy.deepcopy(config["cohort"])
    cohort["train"] = {"count": 20, "lhs_batch": 20}
    return design_from_config(cohort)


@pytest.fixture(scope="module")
def cohort(design):
    return {patient: patient_parameters(design, patient) for patient in patient_ids(design, "train")}


def placement(config, **changes) -> PlacementSettings:
    return PlacementSettings(**{key: value for key, value in dict(config["anatomy"], **changes).items()
                                if key != "heart_by_sex"})


def assemble(config, models, patient, row, person=Person("female", 50.0), **changes):
    heart, torso = models
    return assemble_patient(patient, heart, torso, row, placement(config, **changes), person=person,
                            heart_norms=HeartNorms(**config["anatomy"]["heart_by_sex"]))


@pytest.fixture(scope="module")
def assembled(models, cohort, design, config):
    return {patient: assemble(config, models, patient, row, patient_person(design, patient))
            for patient, row in cohort.items()}


def test_twenty_sampled_patients_are_closed_and_physiological(assembled, config):
    for patient, anatomy in assembled.items():
        for surface in (anatomy.heart, anatomy.torso):
            report = inspect_surface(surface.points, surface.faces)
            assert report.watertight and report.misplaced_probe_fraction == 0 and report.volume_mm3 > 0, patient
        measures = anatomy.measures
        assert 90 <= measures["myocardial_volume_ml"] <= 300, patient
        assert 15 <= measures["torso_volume_l"] <= 90, patient
        assert 70 <= measures["lv_long_axis_length_mm"] <= 115, patient


def test_every_heart_lies_inside_its_torso_with_clearance(assembled, config):
    for patient, anatomy in assembled.items():
        torso = anatomy.torso
        inside = winding_numbers(torso.points, torso.faces, anatomy.heart.points)
        assert np.all(inside > 0.5), patient
        depth = -signed_distance(torso.points, torso.faces, anatomy.heart.points)
        assert depth.min() >= config["anatomy"]["min_clearance_mm"], patient
        assert depth.min() == pytest.approx(anatomy.measures["heart_clearance_mm"])


def test_skin_to_heart_distance_matches_echocardiography(assembled):
    # parasternal skin-to-heart distance in 150 standing adults: 32.1 +- 7.9 mm (2D echo,
    # J Am Soc Echocardiogr 2008); the placement before (20 mm behind the wall) gave a median of 19 mm
    clearances = np.array([anatomy.measures["heart_clearance_mm"] for anatomy in assembled.values()])
    assert 32.1 - 7.9 <= np.median(clearances) <= 32.1 + 7.9, clearances
    assert np.all((clearances >= 32.1 - 2.5 * 7.9) & (clearances <= 32.1 + 2.5 * 7.9)), clearances


def test_the_heart_is_oriented_as_configured(assembled):
    for patient, anatomy in assembled.items():
        long_axis = np.asarray(anatomy.measures["long_axis"])
        # apex left, anterior and inferior, within the sampled +-10 degree rotations
        assert long_axis[0] > 0.3 and long_axis[1] > 0.3 and long_axis[2] > 0.3, (patient, long_axis)
        centre = np.asarray(anatomy.measures["centre_mm"])
        midline = 0.5 * (anatomy.landmarks["jugular_notch"][0] + anatomy.landmarks["xiphoid"][0])
        assert centre[0] > midline, patient  # left of the midline


def test_the_rotation_angles_rotate_about_the_named_axes(models, cohort, config):
    row = dict(next(iter(cohort.values())))
    row.update(rotation_x_deg=0.0, rotation_y_deg=0.0, rotation_z_deg=0.0)
    base = assemble(config, models, "train-0000", row)
    turned = assemble(config, models, "train-0000", dict(row, rotation_z_deg=10.0))
    # about the long axis: the long axis stays, the LV-RV axis turns by 10 degrees
    assert np.dot(base.measures["long_axis"], turned.measures["long_axis"]) == pytest.approx(1, abs=2e-3)
    angle = np.degrees(np.arccos(np.clip(np.dot(base.measures["lv_rv_axis"], turned.measures["lv_rv_axis"]), -1, 1)))
    assert angle == pytest.approx(10, abs=1.0)
    tilted = assemble(config, models, "train-0000", dict(row, rotation_x_deg=10.0))
    tilt = np.degrees(np.arccos(np.dot(base.measures["long_axis"], tilted.measures["long_axis"])))
    assert tilt == pytest.approx(10, abs=1.0)


def test_electrodes_on_every_patient_are_ordered_and_on_the_body(assembled):
    rng = np.random.default_rng(0)
    for patient, anatomy in list(assembled.items())[:5]:
        torso = anatomy.torso
        table = electrode_table(torso.points, torso.faces, anatomy.landmarks, 16, rng).set_index("name")
        x = table.x_mm
        assert x["V1"] < x["V2"] < x["V3"] < x["V4"] < x["V5"], patient
        # V4 to V6 go round the chest at one level: V6 may lie no further left than V5 where the
        # side of the chest is flat, but it lies further back
        centre = torso.points[np.abs(torso.points[:, 2] - table.z_mm["V4"]) < 20.0].mean(axis=0)
        azimuth = np.degrees(np.arctan2(table.x_mm - centre[0], table.y_mm - centre[1]))
        assert azimuth["V4"] < azimuth["V5"] < azimuth["V6"], patient
        assert x["V6"] == pytest.approx(x.max(), abs=60), patient  # V6 among the most lateral
        assert x["RA"] < 0 < x["LA"], patient
        positions = table[["x_mm", "y_mm", "z_mm"]].to_numpy()
        assert np.abs(signed_distance(torso.points, torso.faces, positions)).max() < 1e-3, patient
        centre_y = torso.points[:, 1].mean()
        assert (table.loc[["V1", "V2", "V3", "V4"], "y_mm"] > centre_y).all(), patient
        assert table.x_norm.between(-1, 1).all() and table.y_norm.between(0, 1).all() and table.z_norm.between(0, 1).all()


def test_a_heart_pushed_through_the_chest_wall_fails_naming_patient_and_value(models, cohort, config):
    row = dict(next(iter(cohort.values())), translation_y_mm=90.0)
    with pytest.raises(AnatomyError, match=r"patient train-0000: the heart pokes through the body surface by [0-9.]+ mm"):
        assemble(config, models, "train-0000", row)
    with pytest.raises(AnatomyError, match=r"patient train-0000: myocardial volume [0-9]+ mL is outside \[10, 20\]"):
        assemble(config, models, "train-0000", next(iter(cohort.values())), myocardial_volume_ml=[10.0, 20.0])


def cavity_volume_and_wall(anatomy) -> tuple[float, np.ndarray]:
    """The LV cavity's volume (mL) and every epicardial point's distance to the endocardium (mm)."""
    import igl

    lv_points, lv_faces = closed_surfaces(anatomy.heart, anatomy.torso, patient=anatomy.patient)["lv_endocardium"]
    heart = anatomy.heart
    label = {name: value for value, name in heart.label_names.items()}
    epicardium = np.unique(heart.faces[heart.labels == label["epicardium"]])
    endocardium = heart.faces[np.isin(heart.labels, [label["lv_endocardium"], label["rv_endocardium"]])]
    squared, _, _ = igl.point_mesh_squared_distance(heart.points[epicardium], heart.points,
                                                    np.ascontiguousarray(endocardium))
    return surface_volume(lv_points, lv_faces) / 1e3, np.sqrt(squared)


def test_a_woman_s_heart_is_smaller_by_the_cmr_ratios_and_her_body_by_the_body_model_s(models, cohort, config):
    """Equal modes and pose, sex the only difference: the LV cavity volume ratio is Hudsmith's
    135 / 160 mL (the endocardium is only scaled), the free walls' thickness ratio Kawel's 5.3 /
    6.3 mm (every epicardial point moved towards its nearest endocardial point), and the torso
    smaller (Anny's women at the same age)."""
    row = next(iter(cohort.values()))
    woman, man = (assemble(config, models, "train-0000", row, Person(sex, 50.0)) for sex in ("female", "male"))
    (woman_cavity, woman_wall), (man_cavity, man_wall) = cavity_volume_and_wall(woman), cavity_volume_and_wall(man)
    norms = config["anatomy"]["heart_by_sex"]
    assert woman_cavity / man_cavity == pytest.approx(norms["lv_edv_ml"]["female"] / norms["lv_edv_ml"]["male"], rel=1e-6)
    thickness = norms["wall_thickness_mm"]
    assert np.median(woman_wall) / np.median(man_wall) == pytest.approx(thickness["female"] / thickness["male"],
                                                                       rel=2e-3)
    assert woman.measures["heart_wall_factor"] < 1.0 == man.measures["heart_wall_factor"]
    assert woman.measures["torso_volume_l"] < 0.85 * man.measures["torso_volume_l"]
    # the whole myocardium: the size's cube times thinner walls
    assert woman.measures["myocardial_volume_ml"] < norms["lv_edv_ml"]["female"] / norms["lv_edv_ml"]["male"] * \
        man.measures["myocardial_volume_ml"]


def test_each_sex_of_the_sampled_cohort_assembles_and_the_women_are_smaller(assembled, design):
    people = {patient: patient_person(design, patient) for patient in assembled}
    torso = {sex: [a.measures["torso_volume_l"] for p, a in assembled.items() if people[p].sex == sex]
             for sex in ("female", "male")}
    assert len(torso["female"]) == len(torso["male"]) == 10  # 50/50 in a 20-patient batch
    assert np.median(torso["female"]) < np.median(torso["male"])
    for patient, anatomy in assembled.items():
        assert anatomy.person == people[patient]


def test_an_age_outside_the_torso_model_s_regression_fails_naming_patient_and_value(models, cohort, config):
    with pytest.raises(AnatomyError, match=r"patient train-0000: torso: age 95 years is outside the ages its "
                                           r"sex-and-age regression was fitted over, \[20, 80\] years"):
        assemble(config, models, "train-0000", next(iter(cohort.values())), Person("male", 95.0))


def test_the_rv_shares_the_diaphragmatic_surface_with_the_lv_and_follows_the_rotation(models, cohort, config):
    # the anatomy texts: the diaphragmatic surface mainly LV (about two thirds), the sternocostal
    # surface mainly RV; a rotation about the long axis that turns the LV -> RV axis downwards (+z)
    # gives the RV more of the diaphragmatic surface and less of the sternocostal one
    row = dict(next(iter(cohort.values())))
    row.update(rotation_x_deg=0.0, rotation_y_deg=0.0, rotation_z_deg=0.0)
    shares = {}
    for angle in (-20.0, 0.0, 20.0):
        anatomy = assemble(config, models, "train-0000", dict(row, rotation_z_deg=angle))
        shares[angle] = (anatomy.measures["rv_share_of_diaphragmatic_surface"],
                         anatomy.measures["rv_share_of_sternocostal_surface"], anatomy.measures["lv_rv_axis"][2])
    diaphragmatic, sternocostal, _ = shares[0.0]
    assert 0.2 <= diaphragmatic < 0.5, shares
    assert sternocostal > 0.6, shares
    rv_up, _, rv_down = sorted(shares.values(), key=lambda share: share[2])
    assert rv_down[0] > diaphragmatic + 0.05 and rv_up[0] < diaphragmatic - 0.05, shares
    assert rv_down[1] < rv_up[1], shares
