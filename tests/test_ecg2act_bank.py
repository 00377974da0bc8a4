"""Paper 3's recording sites and the simulation bank on a meshed bi-ventricular heart, the
training/evaluation metrics, and the polarity of the T waves."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from mpi4py import MPI  # noqa: F401  (libmpi before dolfinx)

from ecgcohort.conduction.action_potential import action_potential_template, transmembrane_potential
from ecgcohort.conduction.eikonal import activation_times as eikonal_activation
from ecgcohort.conduction.scenarios import ENDOCARDIAL_BAND, EPICARDIAL_BAND, ventricular_frame
from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_WEIGHTS
from ecgcohort.ecg.pseudo import pseudo_lead_matrix
from ecgcohort.ecg.waves import wave_polarity
from ecgcohort.ecg2act.bank import (BankError, BankSpec, PatientElectrophysiology, draw_sample, scaled_junction_times,
                                   simulate_bank)
from ecgcohort.ecg2act.sites import (AHA_SEGMENTS, N_SITES, RING_BANDS, SEGMENT_HALF_WIDTH, load_sites,
                                     recording_sites, segment_of)
from ecgcohort.ecg2act.training import apd_ms, pearson_per_series, random_splits, vm_metrics
from ecgcohort.fibers import load_fibres
from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors


@pytest.fixture(scope="module")
def ventricles(tmp_path_factory, ventricles_dir):
    """Fibres, junctions, sites, the pseudo lead matrix rows of nine electrodes around the heart
    (the session's :func:`synthetic.meshed_ventricles`) and the TP06 template."""
    root = tmp_path_factory.mktemp("ecg2act")
    for path in ventricles_dir.iterdir():
        shutil.copy2(path, root / path.name)
    fibres = load_fibres(root / "fibres.npz")
    with np.load(root / "junctions.npz") as data:
        junctions = {key: data[key] for key in data.files}
    centre = fibres.points_mm.mean(axis=0)
    # RA, LA, LL far out on the limbs' directions, V1-V6 on an arc in front of the heart
    angles = np.deg2rad([-20, 0, 20, 45, 70, 95])
    precordial = centre + np.column_stack([120 * np.sin(angles), -120 * np.cos(angles), np.zeros(6)])
    limbs = centre + np.array([[-250.0, 0, 250], [250, 0, 250], [100, 0, -400]])
    electrodes_m = np.vstack([limbs, precordial]) * 1e-3
    sigma = Conductivities()
    rows = pseudo_lead_matrix(electrodes_m, fibres.points_mm * 1e-3, fibres.tetrahedra,
                              intracellular_tensors(fibres.cell_structure, sigma), sigma.torso)
    template = action_potential_template(1000.0, cache_dir=root)
    sites = recording_sites(fibres)
    return fibres, PatientElectrophysiology(fibres, junctions, rows, sites, template), root


def test_the_75_sites_lie_in_their_segments_and_layers(ventricles):
    fibres, patient, _ = ventricles
    sites = patient.sites
    assert len(sites.nodes) == N_SITES == 75
    assert (sites.layer.count("endo"), sites.layer.count("epi"), sites.layer.count("mid")) == (30, 20, 25)
    transmural, ventricle = fibres.coordinates["transmural"], fibres.coordinates["ventricle"]
    for k, (segment, (name, ring, angle)) in enumerate(AHA_SEGMENTS.items()):
        node = sites.nodes[k]
        assert transmural[node] < ENDOCARDIAL_BAND and ventricle[node] < 0.5, name
        found_ring, found_angle = segment_of(fibres, node)
        assert found_ring == ring, (segment, name, found_ring)
        if angle is not None:
            offset = abs((found_angle - angle + 180.0) % 360.0 - 180.0)
            assert offset < SEGMENT_HALF_WIDTH[ring], (segment, name, found_angle)
    rv = sites.nodes[17:30]
    assert (transmural[rv] < ENDOCARDIAL_BAND).all() and (ventricle[rv] >= 0.5).all()
    epi = np.array(sites.layer) == "epi"
    assert (transmural[sites.nodes[epi]] > EPICARDIAL_BAND).all()
    mid = np.array(sites.layer) == "mid"
    # mid-wall sites sit between the surfaces, off both
    assert (transmural[sites.nodes[mid]] > ENDOCARDIAL_BAND).all()
    assert (transmural[sites.nodes[mid]] < EPICARDIAL_BAND).all()
    # and the apex cap of segment 17 is the lowest LV site
    longitudinal = ventricular_frame(fibres).longitudinal
    assert longitudinal[sites.nodes[16]] < RING_BANDS["apical"][0]


def test_sites_round_trip(ventricles, tmp_path):
    _, patient, _ = ventricles
    patient.sites.save(tmp_path / "sites.npz")
    again = load_sites(tmp_path / "sites.npz")
    assert np.array_equal(again.nodes, patient.sites.nodes) and again.labels == patient.sites.labels


def test_the_sites_picture_shows_every_layer_in_its_colour(ventricles, tmp_path):
    """draw_bank_sites' picture (drawn apart from the bank) from the stored fibres and sites:
    endocardial red, epicardial blue and mid-wall gold sites all visible."""
    from matplotlib.image import imread

    from ecgcohort.ecg2act.jobs import draw_sites_job

    _, patient, root = ventricles
    patient.sites.save(tmp_path / "sites.npz")
    draw_sites_job("train-0000", root / "fibres.npz", tmp_path / "sites.npz", tmp_path / "sites.png")
    pixels = imread(tmp_path / "sites.png")[..., :3]
    colours = {"endo": (1.0, 0.0, 0.0), "epi": (0.255, 0.412, 0.882), "mid": (1.0, 0.843, 0.0)}
    for layer, rgb in colours.items():
        near = np.all(np.abs(pixels - np.array(rgb)) < 0.12, axis=-1)
        assert near.sum() > 50, f"{layer} sites not drawn"


def test_a_sample_is_the_eikonal_and_lead_matrix_recomputed(ventricles):
    """One sample against an independent recomputation of its parts: the eikonal from the
    drawn sources, V_m from the template, the 12 leads from the nine rows, and the sites'
    activation as the eikonal time plus the template's own delay to 0 mV."""
    fibres, patient, _ = ventricles
    spec = BankSpec(count=1, kind_weights={"pacing": 1.0}, max_pacing_sites=1, apd_global_scale=(1.0, 1.0))
    sample = draw_sample(patient, spec, np.random.default_rng(3))
    assert sample.kind == "pacing" and sample.parameters["pacing_sites"] == 1.0
    # redraw the same numbers to know the site
    rng = np.random.default_rng(3)
    rng.choice(4, p=[0, 0, 0, 1.0])
    v_fibre, ratio = rng.uniform(*spec.fibre_velocity), rng.uniform(*spec.cross_fibre_ratio)
    rng.uniform(), rng.uniform(*spec.apd_apex_to_base), rng.uniform(*spec.apd_endo_to_epi)
    rng.integers(1, 2)
    node = rng.choice(fibres.n_nodes, size=1, replace=False)
    tau = eikonal_activation(fibres.points_mm, fibres.tetrahedra, fibres.cell_structure, v_fibre, v_fibre * ratio, node,
                             np.zeros(1), device="cpu", normals=fibres.normal_structure,
                             v_normal=v_fibre * ratio * spec.normal_cross_ratio)
    assert sample.total_activation_ms == pytest.approx(np.ptp(tau))
    delay = patient.template.time_ms[np.argmax(patient.template.voltage_mv > 0)]
    expected = tau[patient.sites.nodes] + delay
    assert np.abs(sample.site_activation_ms - np.ceil(expected)).max() <= 1.0
    from ecgcohort.conduction.repolarisation import Repolarisation, repolarisation_scale

    repolarisation = Repolarisation(apex_to_base=sample.parameters["apd_apex_to_base"],
                                    endo_to_epi=sample.parameters["apd_endo_to_epi"])
    vm = transmembrane_potential(tau, spec.times_ms, patient.template,
                                 repolarisation_scale(fibres, tau, repolarisation, patient.template))
    np.testing.assert_allclose(sample.leads, LEAD_WEIGHTS @ (patient.lead_rows @ vm), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(sample.vm, vm[patient.sites.nodes])
    # Einthoven and Goldberger hold on the bank's leads
    leads = sample.leads
    np.testing.assert_allclose(leads[0] + leads[2], leads[1], atol=1e-9)
    np.testing.assert_allclose(leads[3] + leads[4] + leads[5], 0.0, atol=1e-9)


def test_a_faster_tree_shortens_its_conduction_times_and_not_its_junction_delay(ventricles):
    """The bank's fascicle speed scale divides a tree's conduction times and the breakthroughs'
    times; the Purkinje-muscle junction delay is the junction's, the same at every speed."""
    junctions = {"lv_times_ms": np.array([13.4, 23.4, 3.4, 0.0, 5.0]), "lv_junction_tree_nodes": np.arange(3),
                 "junction_delay_ms": np.array(3.4)}
    np.testing.assert_allclose(scaled_junction_times(junctions, "lv", 2.0), [8.4, 13.4, 3.4, 0.0, 2.5])
    np.testing.assert_allclose(scaled_junction_times(junctions, "lv", 1.0), junctions["lv_times_ms"])
    # a junction file from before the delay existed: every time divided
    older = {key: value for key, value in junctions.items() if key != "junction_delay_ms"}
    np.testing.assert_allclose(scaled_junction_times(older, "lv", 2.0), junctions["lv_times_ms"] / 2.0)

    # a sample drawn at speed scale 1.25 is the one drawn at 1 from those times, junction delay 0
    # (the synthetic heart's trees have no breakthroughs: one added at the LV's first junction, at 0 ms)
    _, patient, _ = ventricles
    delayed = {**patient.junctions, "junction_delay_ms": np.array(3.4)}
    for tree in ("lv", "rv"):
        delayed[f"{tree}_times_ms"] = np.asarray(patient.junctions[f"{tree}_times_ms"], dtype=np.float64).copy()
        delayed[f"{tree}_times_ms"][:len(patient.junctions[f"{tree}_junction_tree_nodes"])] += 3.4
    first = np.argmin(delayed["lv_times_ms"])
    delayed["lv_positions_mm"] = np.vstack([delayed["lv_positions_mm"], delayed["lv_positions_mm"][first]])
    delayed["lv_times_ms"] = np.append(delayed["lv_times_ms"], 0.0)
    prepared = {**delayed, "junction_delay_ms": np.array(0.0)}
    for tree in ("lv", "rv"):
        prepared[f"{tree}_times_ms"] = scaled_junction_times(delayed, tree, 1.25)
    fixed = dict(count=1, kind_weights={"sinus": 1.0}, fibre_velocity=(0.6, 0.6), cross_fibre_ratio=(0.5, 0.5),
                 rv_delay_ms=(2.0, 2.0))
    faster = draw_sample(dataclasses.replace(patient, junctions=delayed),
                         BankSpec(purkinje_speed_scale=(1.25, 1.25), **fixed), np.random.default_rng(3))
    reference = draw_sample(dataclasses.replace(patient, junctions=prepared),
                            BankSpec(purkinje_speed_scale=(1.0, 1.0), **fixed), np.random.default_rng(3))
    np.testing.assert_allclose(faster.leads, reference.leads, rtol=1e-9, atol=1e-12)
    # and the delay is not divided: at scale 1.25 the stimuli differ from dividing every time
    divided = {**delayed, "junction_delay_ms": np.array(0.0)}
    for tree in ("lv", "rv"):
        divided[f"{tree}_times_ms"] = np.asarray(delayed[f"{tree}_times_ms"]) / 1.25
    everything_scaled = draw_sample(dataclasses.replace(patient, junctions=divided),
                                    BankSpec(purkinje_speed_scale=(1.0, 1.0), **fixed), np.random.default_rng(3))
    assert np.abs(everything_scaled.leads - faster.leads).max() > 0.01 * np.abs(faster.leads).max()


def test_bundle_branch_blocks_activate_the_blocked_ventricle_late(ventricles):
    fibres, patient, _ = ventricles
    ventricle = fibres.coordinates["ventricle"][patient.sites.nodes]
    lv, rv = ventricle < 0.5, ventricle >= 0.5
    fixed = dict(fibre_velocity=(0.6, 0.6), cross_fibre_ratio=(0.5, 0.5), purkinje_speed_scale=(1.0, 1.0),
                 rv_delay_ms=(0.0, 0.0))
    delays = {}
    for kind in ("sinus", "lbbb", "rbbb"):
        sample = draw_sample(patient, BankSpec(count=1, kind_weights={kind: 1.0}, **fixed), np.random.default_rng(0))
        a = sample.site_activation_ms
        delays[kind] = np.mean(a[lv]) - np.mean(a[rv])
        if kind == "sinus":
            sinus_total = sample.total_activation_ms
        else:
            assert sample.total_activation_ms > sinus_total + 10.0, kind
    assert delays["lbbb"] > delays["sinus"] + 15.0  # the LV waits for the RV
    assert delays["rbbb"] < delays["sinus"] - 15.0


def test_the_bank_is_reproducible_and_follows_the_kind_weights(ventricles):
    _, patient, _ = ventricles
    spec = BankSpec(count=12, kind_weights={"sinus": 1.0, "pacing": 1.0})
    first = simulate_bank(patient, spec, np.random.default_rng(11))
    second = simulate_bank(patient, spec, np.random.default_rng(11))
    np.testing.assert_array_equal(first["leads"], second["leads"])
    assert set(first["kind"]) <= {"sinus", "pacing"} and len(set(first["kind"])) == 2
    assert first["vm"].shape == (12, 75, 500) and first["leads"].shape == (12, 12, 500)
    assert first["unipolar"].shape == (12, len(LEAD_ELECTRODES), 500)
    assert np.isfinite(first["site_activation_ms"]).all()
    # physiological ranges: rest near -86 mV, upstroke above +20 mV, activation within the record
    assert -90.0 < first["vm"].min() < -80.0 and first["vm"].max() > 20.0
    assert 0.0 < first["site_activation_ms"].min() and first["site_activation_ms"].max() < 400.0


def test_repolarisation_variants_share_the_activation_and_differ_in_the_t_wave(ventricles):
    """Paper 3's G_Kr x cycle-length variants: k samples per activation draw with the same
    activation times and different APD draws (so different late ECG); k = 1 is the bank of
    draw_sample, draw for draw."""
    _, patient, _ = ventricles
    single = BankSpec(count=5, kind_weights={"sinus": 1.0, "pacing": 1.0})
    bank = simulate_bank(patient, single, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    for index in range(5):
        np.testing.assert_array_equal(draw_sample(patient, single, rng).leads.astype(np.float32), bank["leads"][index])
    np.testing.assert_array_equal(bank["parameters"]["activation_draw"], np.arange(5))

    variants = simulate_bank(patient, BankSpec(count=5, kind_weights={"sinus": 1.0, "pacing": 1.0},
                                               repolarisation_variants=2), np.random.default_rng(5))
    np.testing.assert_array_equal(variants["parameters"]["activation_draw"], [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(variants["leads"][0], bank["leads"][0])  # the first variant is draw_sample's
    for first, second in ((0, 1), (2, 3)):
        np.testing.assert_array_equal(variants["site_activation_ms"][first], variants["site_activation_ms"][second])
        assert variants["kind"][first] == variants["kind"][second]
        assert variants["parameters"]["apd_global_scale"][first] != variants["parameters"]["apd_global_scale"][second]
        # the APD stretches the template from the plateau on, so the difference is the T wave's
        difference = np.abs(variants["leads"][first] - variants["leads"][second])
        activation_end = int(variants["site_activation_ms"][first].max())
        assert difference[:, :activation_end].max() < 0.2 * difference[:, activation_end:].max()
        assert difference[:, activation_end:].max() > 0.01  # mV
    with pytest.raises(BankError, match="repolarisation_variants"):
        BankSpec(repolarisation_variants=0)


def test_bad_bank_settings_are_refused_by_name(ventricles):
    fibres, patient, _ = ventricles
    with pytest.raises(BankError, match="fibre_velocity"):
        BankSpec(fibre_velocity=(0.8, 0.5))
    with pytest.raises(BankError, match="normal_cross_ratio"):
        BankSpec(normal_cross_ratio=0.0)
    with pytest.raises(BankError, match="kind_weights"):
        BankSpec(kind_weights={"sinus": 1.0, "vt": 1.0})
    with pytest.raises(BankError, match="unknown ecg2act.bank key"):
        BankSpec.from_config({"cuont": 3})
    with pytest.raises(BankError, match=r"lead matrix rows must be \(9"):
        PatientElectrophysiology(fibres, patient.junctions, patient.lead_rows[:, :-1], patient.sites,
                                 patient.template)


def test_wave_polarity_of_known_waves():
    t = np.arange(500.0)
    qrs = np.exp(-0.5 * ((t - 40) / 8) ** 2)
    t_wave = 0.3 * np.exp(-0.5 * ((t - 300) / 40) ** 2)
    leads = np.stack([qrs + t_wave, qrs - t_wave, -qrs - t_wave])
    polarity = wave_polarity(leads, t, 10.0, 90.0)
    np.testing.assert_allclose(polarity.qrs_peak, [1.0, 1.0, -1.0], atol=1e-3)
    np.testing.assert_allclose(np.abs(polarity.t_area), 0.3 * 40 * np.sqrt(2 * np.pi), rtol=1e-3)
    assert polarity.concordant.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="no QRS"):
        wave_polarity(leads, t, 10.0, 480.0)


def test_metrics_on_known_signals():
    t = np.arange(500.0)
    true = np.where(t >= 20, 20.0, -85.0) * np.ones((2, 75, 1))
    true[..., 300:] = -85.0  # APD 280 ms from the first sample > 0 at 20 ms
    assert apd_ms(true)[0, 0] == pytest.approx(279.0)
    late = np.roll(true, 5, axis=-1)
    metrics = vm_metrics(late, true, 1.0)
    assert metrics["activation_mae_ms"] == pytest.approx(5.0)
    assert metrics["apd_error_ms"] == pytest.approx(0.0)
    assert metrics["vm_rmse_mv"] == pytest.approx(np.sqrt(10 / 500) * 105.0)
    np.testing.assert_allclose(pearson_per_series(true * 2.0 + 1.0, true), 1.0)
    fit, validation, scored = random_splits(100, 0.05, 0.1, 0)
    assert (len(fit), len(validation), len(scored)) == (85, 5, 10)
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, validation, scored])), np.arange(100))
    with pytest.raises(ValueError, match="validation_fraction"):
        random_splits(100, 1.5, 0.05, 0)


def test_sites_that_do_not_resolve_are_refused(ventricles, tmp_path):
    import dataclasses

    from ecgcohort.conduction.scenarios import ScenarioError
    from ecgcohort.ecg2act.jobs import simulation_bank_job
    from ecgcohort.fibers.rule_based import save_fibres

    fibres, _, root = ventricles
    all_lv = dataclasses.replace(fibres, coordinates={**fibres.coordinates,
                                                      "ventricle": np.zeros(fibres.n_nodes)})
    with pytest.raises(ScenarioError, match="RV endocardium has 0 nodes"):
        recording_sites(all_lv)
    save_fibres(all_lv, tmp_path / "fibres.npz")
    out = tmp_path / "bank.zarr"
    with pytest.raises(BankError, match="patient train-0003: the RV endocardium"):
        simulation_bank_job(patient="train-0003", split="train", fibres_npz=tmp_path / "fibres.npz",
                            junctions_npz=root / "junctions.npz", chunk_paths=[], bank={"count": 2}, seed=0,
                            action_potential={"cycle_length_ms": 1000.0}, template_cache_dir=root, out_zarr=out,
                            out_sites=tmp_path / "sites.npz")
    assert not out.exists() and not (tmp_path / "sites.npz").exists()
