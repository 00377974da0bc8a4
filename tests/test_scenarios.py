"""Activation scenarios on a meshed bi-ventricular heart: sites on the heart surface, Purkinje
trees, sinus rhythm / LBBB / BiV pacing / random pacing maps and their V_m."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from mpi4py import MPI  # noqa: F401  (libmpi before dolfinx)

from ecgcohort.conduction.action_potential import action_potential_template
from ecgcohort.conduction.jobs import MapSettings, PatientConduction, activation_map, compute_activations
from ecgcohort.conduction.maps import load_activation
from ecgcohort.anatomy.outputs import read_surface
from ecgcohort.conduction.scenarios import (
    Scenario,
    ScenarioError,
    his_roots,
    pacing_sites,
    scenarios_from_config,
    surface_frame,
    ventricular_frame,
)
from ecgcohort.fibers import load_fibres

SEED = 7
VELOCITIES = {"fibre": 0.6, "cross": 0.4}
HOMOGENEOUS = {"cycle_length_ms": 1000.0, "apd_apex_to_base": 0.0, "apd_endo_to_epi": 0.0}


def map_settings(cache) -> MapSettings:
    return MapSettings(velocities=VELOCITIES, action_potential=HOMOGENEOUS, seed=SEED, device="cpu",
                       template_cache_dir=cache)


@pytest.fixture(scope="module")
def patient(tmp_path_factory, ventricles_dir):
    """A meshed heart with fibres, its Purkinje trees (the session's :func:`synthetic.meshed_ventricles`,
    seed :data:`SEED`), and four activation maps."""
    root = tmp_path_factory.mktemp("scenarios")
    for path in ventricles_dir.iterdir():
        shutil.copy2(path, root / path.name)
    entries = {name: entry for entry in ({"name": "sinus", "kind": "sinus"}, {"name": "lbbb", "kind": "lbbb"},
                                         {"name": "lbbb_blocked", "kind": "lbbb", "engage_purkinje": False},
                                         {"name": "crt", "kind": "biv_pacing", "rv_time_ms": 0.0, "lv_time_ms": 20.0,
                                          "engage_purkinje": False},
                                         {"name": "crt_engaged", "kind": "biv_pacing", "rv_time_ms": 0.0,
                                          "lv_time_ms": 20.0},
                                         {"name": "pacing", "kind": "random_pacing", "count": 2,
                                          "engage_purkinje": False})
               for name in Scenario.from_config(entry).instance_names()}
    compute_activations("train-0003", entries, root / "fibres.npz", root / "heart.vtp", root / "junctions.npz",
                        map_settings(root / "cache"),
                        {name: (root / f"{name}.npz", root / f"{name}.png") for name in entries})
    maps = {name: load_activation(root / f"{name}.npz") for name in entries}
    return root, load_fibres(root / "fibres.npz"), maps


def test_long_axis_coordinate_runs_from_apex_to_base(patient):
    _, fibres, _ = patient
    frame = ventricular_frame(fibres)
    # the builtin heart's long axis is its local z (apex below, base plane at BASE_Z)
    axis = (frame.base_centre_mm - frame.apex_mm) / frame.long_axis_mm
    assert abs(axis[2]) > 0.95
    z = fibres.points_mm[:, 2]
    assert np.corrcoef(frame.longitudinal, z * np.sign(axis[2]))[0, 1] > 0.99
    assert frame.longitudinal.min() == 0.0 and frame.longitudinal.max() == pytest.approx(1.0, abs=0.02)
    # unlike the LDRB apico-basal solution, it is not crowded towards the base
    assert 0.4 < np.median(frame.longitudinal) < 0.75


def test_sites_land_where_their_coordinates_say(patient):
    root, fibres, _ = patient
    heart = read_surface(root / "heart.vtp")
    frame = surface_frame(heart)
    # the builtin heart's long axis is its local z (apex below, base plane at z = BASE_Z)
    assert frame.axis[2] > 0.95 and frame.longitudinal(frame.apex_mm[None])[0] == 0.0
    roots = his_roots(heart, 0.85)
    lv_endocardium = heart.points[heart.region("lv_endocardium")]
    assert np.linalg.norm(lv_endocardium - roots.lv_mm, axis=1).min() == 0.0  # a vertex of the surface
    assert frame.longitudinal(roots.lv_mm[None])[0] == pytest.approx(0.85, abs=0.05)
    assert abs(frame.rotational(roots.lv_mm[None])[0]) < 0.5  # septal
    # the right bundle branch is across the septum, the moderator band reaches the free wall
    assert np.linalg.norm(roots.rv_mm - roots.lv_mm) < 20.0
    assert np.linalg.norm(roots.rv_free_wall_mm - roots.rv_mm) > 25.0
    assert roots.direction @ (frame.apex_mm - frame.base_centre_mm) > 0
    crt = Scenario(name="crt", kind="biv_pacing", rv_long_axis_position=0.15, lv_long_axis_position=0.5)
    (rv_apex, lv_epi), times = pacing_sites(crt, heart)
    np.testing.assert_array_equal(times, [0.0, 0.0])
    assert abs(np.angle(np.exp(1j * (frame.rotational(lv_epi[None])[0] - np.pi)))) < 0.5  # lateral free wall
    assert frame.longitudinal(lv_epi[None])[0] == pytest.approx(0.5, abs=0.05)
    rv_endocardium = heart.points[heart.region("rv_endocardium")]
    # the RV cavity stops short of the LV apex: the site is as apical as the RV endocardium goes
    assert frame.longitudinal(rv_apex[None])[0] <= frame.longitudinal(rv_endocardium).min() + 0.05
    # on the mesh the sites are LV endocardial, LV epicardial and RV endocardial nodes' neighbours
    c = fibres.coordinates
    nearest = [int(np.argmin(np.linalg.norm(fibres.points_mm - site, axis=1))) for site in (roots.lv_mm, lv_epi, rv_apex)]
    assert c["ventricle"][nearest[0]] < 0.5 and c["transmural"][nearest[0]] < 0.1
    assert c["ventricle"][nearest[1]] < 0.5 and c["transmural"][nearest[1]] > 0.9
    assert c["ventricle"][nearest[2]] >= 0.5


def test_sinus_rhythm_is_physiological_and_lbbb_is_longer(patient):
    _, fibres, maps = patient
    sinus, lbbb, blocked = maps["sinus"], maps["lbbb"], maps["lbbb_blocked"]
    print(f"\ntotal activation: sinus {sinus.total_activation_ms:.1f} ms, LBBB {lbbb.total_activation_ms:.1f} ms "
          f"(LV tree not engaged {blocked.total_activation_ms:.1f} ms), CRT {maps['crt'].total_activation_ms:.1f} ms")
    assert 60.0 <= sinus.total_activation_ms <= 120.0
    assert blocked.total_activation_ms > sinus.total_activation_ms + 20.0
    assert lbbb.total_activation_ms > sinus.total_activation_ms + 10.0
    # LBBB delays the LV: its lateral wall activates later than in sinus rhythm, the RV does not
    lv_lateral = (fibres.coordinates["ventricle"] < 0.5) & (np.abs(np.angle(-np.exp(1j * fibres.coordinates["rotational"]))) < 0.5)
    assert np.median(blocked.activation_ms[lv_lateral] - sinus.activation_ms[lv_lateral]) > 20.0
    assert np.median(lbbb.activation_ms[lv_lateral] - sinus.activation_ms[lv_lateral]) > 10.0
    rv = fibres.coordinates["ventricle"] >= 0.5
    for beat in (lbbb, blocked):
        assert np.median(np.abs(beat.activation_ms[rv] - sinus.activation_ms[rv])) < 5.0


def test_pacing_sites_fire_at_their_times(patient):
    _, fibres, maps = patient
    crt = maps["crt"]
    np.testing.assert_allclose(crt.site_times_ms, [0.0, 20.0])
    # each site starts the four nodes of its element, at its time plus the travel time there
    for site, time in zip(crt.sites_mm, crt.site_times_ms):
        distance = np.linalg.norm(fibres.points_mm - site, axis=1)
        near = distance < 1e-9 + np.sort(distance)[3]
        assert np.all(crt.activation_ms[near] >= time + distance[near] / VELOCITIES["fibre"] - 1e-9)
        assert np.all(crt.activation_ms[near] <= time + distance[near] / VELOCITIES["cross"] + 1e-9)
    assert 0.0 <= crt.activation_ms.min() <= 4.0 / VELOCITIES["cross"]  # within one 4 mm element of the site
    first, second = maps["pacing-00"], maps["pacing-01"]
    assert len(first.sites_mm) == len(second.sites_mm) == 1
    assert not np.allclose(first.sites_mm, second.sites_mm)
    # a single site: activation grows with distance from it, never faster than the fibre velocity
    distance = np.linalg.norm(fibres.points_mm - first.sites_mm[0], axis=1)
    assert np.all(first.activation_ms >= distance / VELOCITIES["fibre"] * (1 - 1e-5))


def test_a_paced_front_that_enters_the_purkinje_trees_activates_faster(patient):
    """Retrograde conduction: the paced front reaches the trees' junctions and runs on at the
    Purkinje velocity, so the ventricles activate sooner than through the myocardium alone;
    the pacing site still fires first."""
    root, fibres, maps = patient
    alone, engaged = maps["crt"], maps["crt_engaged"]
    print(f"\nCRT total activation: myocardium only {alone.total_activation_ms:.1f} ms, "
          f"Purkinje engaged {engaged.total_activation_ms:.1f} ms")
    assert np.all(engaged.activation_ms <= alone.activation_ms + 1e-9)
    assert engaged.total_activation_ms < alone.total_activation_ms - 10.0
    assert engaged.activation_ms.min() == pytest.approx(alone.activation_ms.min(), abs=1e-9)  # the site fires first


def test_lbbb_engages_the_blocked_lv_tree_only_once_the_septum_is_crossed(patient):
    """LBBB: the front that crosses the septum enters the LV tree at its junctions and runs on
    through it, so the LV activates sooner than through the myocardium alone - but its first
    activation, and everything activated before it, is unchanged: nothing enters the LV tree
    from above the block."""
    _, fibres, maps = patient
    engaged, blocked = maps["lbbb"], maps["lbbb_blocked"]
    lv = fibres.coordinates["ventricle"] < 0.5
    print(f"\nLBBB total activation: LV tree engaged {engaged.total_activation_ms:.1f} ms, "
          f"blocked {blocked.total_activation_ms:.1f} ms; first LV activation {blocked.activation_ms[lv].min():.1f} ms")
    assert np.all(engaged.activation_ms <= blocked.activation_ms + 1e-9)
    assert engaged.total_activation_ms < blocked.total_activation_ms - 5.0
    first_lv = blocked.activation_ms[lv].min()
    assert engaged.activation_ms[lv].min() == pytest.approx(first_lv, abs=1e-9)
    before = blocked.activation_ms <= first_lv
    np.testing.assert_allclose(engaged.activation_ms[before], blocked.activation_ms[before], atol=1e-9)


def test_trees_solved_with_the_myocardium_are_the_limit_of_repeated_retrograde_rounds(patient):
    """The compiled solver takes retrograde Purkinje conduction into its heap: the map must be
    the fixed point that rounds of (solve, trees fired from that solve's junction times, solve
    again with them) converge to, an independent recomputation; no earlier than one round (each
    round only brings the map earlier), and a round from it changes nothing. The junctions carry
    a Purkinje-muscle delay, which both add to each firing."""
    from ecgcohort.conduction.eikonal import _TOLERANCE_MS, EikonalGrid
    from ecgcohort.conduction.jobs import conduction_velocities, retrograde_coupling, scenario_sources
    from ecgcohort.conduction.purkinje import retrograde_firing_times

    root, fibres, _ = patient
    settings = dataclasses.replace(map_settings(root / "cache"), velocities={"fibre": 0.6, "cross": 0.3, "normal": 0.17})
    conduction = PatientConduction.read(root / "fibres.npz", root / "heart.vtp", root / "junctions.npz", settings)
    grid, junctions = conduction.grid, conduction.junctions
    v = conduction_velocities(settings.velocities)
    # a Purkinje-muscle junction delay fires each retrogradely reached junction that much later
    junctions = junctions | {"junction_delay_ms": np.array(3.0)}
    for entry in ({"name": "crt", "kind": "biv_pacing", "rv_time_ms": 0.0, "lv_time_ms": 20.0},
                  {"name": "lbbb", "kind": "lbbb"}):
        scenario = Scenario.from_config(entry)
        stimuli = scenario_sources(scenario, grid, conduction.heart, junctions, None, settings.velocities)
        coupled = grid.activation_times(*v[:2], stimuli.nodes, stimuli.node_times_ms, device="cpu", v_normal=v[2],
                                        trees=retrograde_coupling(scenario.retrograde_trees, grid, junctions,
                                                                  settings.velocities))

        def round_from(tau):
            nodes, times = [stimuli.nodes], [stimuli.node_times_ms]
            for tree in scenario.retrograde_trees:
                tree_junctions = junctions[f"{tree}_junction_tree_nodes"]
                sources = grid.couple(junctions[f"{tree}_positions_mm"][:len(tree_junctions)])
                firing = retrograde_firing_times(junctions[f"{tree}_tree_nodes_mm"], junctions[f"{tree}_tree_edges"],
                                                 tree_junctions, sources.interpolate(tau),
                                                 float(junctions["purkinje_velocity_m_per_s"]))
                fires = np.isfinite(firing)[sources.source]
                nodes.append(sources.nodes[fires])
                times.append(grid.stimulus_times(sources, np.where(np.isfinite(firing), firing, 0.0) + 3.0, *v)[fires])
            return grid.activation_times(*v[:2], np.concatenate(nodes), np.concatenate(times), device="cpu",
                                         v_normal=v[2])

        tau = grid.activation_times(*v[:2], stimuli.nodes, stimuli.node_times_ms, device="cpu", v_normal=v[2])
        one_round = tau = round_from(tau)
        # a junction entered between its element's corners fires them too, so each round moves
        # the map by about 0.6 of the last (train-0003: 14 ms, then 0.6, 0.38, ... ms)
        for _ in range(80):
            following = round_from(tau)
            if np.abs(following - tau).max() < 1e-9:
                break
            tau = following
        else:
            pytest.fail("the retrograde rounds did not converge")
        # each solve is its fixed point within the solver's tolerance (1e-4 ms): so are the
        # rounds' limit and the coupled solve, to ten times it (measured: 2.2e-4 ms)
        within = 10 * _TOLERANCE_MS
        assert np.abs(coupled - tau).max() < within, entry["name"]
        assert np.all(coupled <= one_round + within)
        assert np.abs(round_from(coupled) - coupled).max() < within
    assert EikonalGrid.solver("cpu") == "cpu"


def test_a_junction_delay_postpones_the_tree_junctions_and_not_the_breakthroughs(patient, tmp_path):
    """``junction_delay_ms``: every tree junction's time later by the delay, the same junctions
    at the same places; the endocardial breakthroughs (Durrer's muscle times) unchanged."""
    from ecgcohort.conduction.jobs import junction_delay_ms, load_junctions
    from ecgcohort.conduction.purkinje_jobs import grow_purkinje
    from synthetic import PURKINJE

    root, _, _ = patient
    breakthroughs = [{"ventricle": "lv", "long_axis_position": 0.5, "rotation_deg": 0.0, "time_ms": 0.0},
                     {"ventricle": "rv", "long_axis_position": 0.65, "rotation_deg": 0.0, "time_ms": 10.0}]
    grown = {}
    for delay in (0.0, 3.4):
        out = tmp_path / f"delay-{delay}"
        out.mkdir()
        grow_purkinje("train-0003", root / "heart.vtp", PURKINJE | {"breakthroughs": breakthroughs, "junction_delay_ms": delay}, SEED,
                      out / "lv.vtp", out / "rv.vtp", out / "junctions.npz")
        grown[delay] = load_junctions(out / "junctions.npz")
    plain, delayed = grown[0.0], grown[3.4]
    assert junction_delay_ms(plain) == 0.0 and junction_delay_ms(delayed) == pytest.approx(3.4)
    for tree in ("lv", "rv"):
        n_tree = len(plain[f"{tree}_junction_tree_nodes"])
        n_breakthroughs = len(plain[f"{tree}_times_ms"]) - n_tree
        assert n_tree > 10 and n_breakthroughs == 1
        np.testing.assert_array_equal(delayed[f"{tree}_positions_mm"], plain[f"{tree}_positions_mm"])
        np.testing.assert_allclose(delayed[f"{tree}_times_ms"][:n_tree], plain[f"{tree}_times_ms"][:n_tree] + 3.4)
        np.testing.assert_array_equal(delayed[f"{tree}_times_ms"][n_tree:], plain[f"{tree}_times_ms"][n_tree:])


def test_which_trees_a_front_enters():
    assert Scenario(name="s", kind="sinus").retrograde_trees == ()
    assert Scenario(name="l", kind="lbbb").retrograde_trees == ("lv",)
    assert Scenario(name="l", kind="lbbb", engage_purkinje=False).retrograde_trees == ()
    assert Scenario(name="c", kind="biv_pacing").retrograde_trees == ("lv", "rv")
    assert Scenario(name="p", kind="random_pacing", engage_purkinje=False).retrograde_trees == ()


def test_random_sites_are_reproducible_per_patient(patient, tmp_path):
    root, _, maps = patient
    entry = {"name": "pacing", "kind": "random_pacing", "count": 2, "engage_purkinje": False}
    again = compute_activations("train-0003", {"pacing-01": entry}, root / "fibres.npz", root / "heart.vtp",
                                root / "junctions.npz", map_settings(root / "cache"),
                                {"pacing-01": (tmp_path / "a.npz", tmp_path / "a.png")})["pacing-01"]
    np.testing.assert_array_equal(again.sites_mm, maps["pacing-01"].sites_mm)
    other = compute_activations("train-0004", {"pacing-01": entry}, root / "fibres.npz", root / "heart.vtp",
                                root / "junctions.npz", map_settings(root / "cache"),
                                {"pacing-01": (tmp_path / "b.npz", tmp_path / "b.png")})["pacing-01"]
    assert not np.allclose(other.sites_mm, maps["pacing-01"].sites_mm)


def test_one_map_computed_alone_is_the_patients_map_bit_for_bit(patient):
    """What reads one scenario (the inverse benchmark's ground truth) computes that map alone
    (activation_map), so an edit of another scenario does not re-run it: it must be the map the
    patient's job wrote, bit for bit, for a map with Purkinje trees and a random pacing map."""
    root, _, maps = patient
    conduction = PatientConduction.read(root / "fibres.npz", root / "heart.vtp", root / "junctions.npz",
                                        map_settings(root / "cache"))
    entries = {"lbbb": {"name": "lbbb", "kind": "lbbb"},
               "pacing-01": {"name": "pacing", "kind": "random_pacing", "count": 2, "engage_purkinje": False}}
    for name, entry in entries.items():
        alone = activation_map("train-0003", name, entry, conduction, map_settings(root / "cache"))
        for field in ("activation_ms", "apd_scale", "sites_mm", "site_times_ms", "upstroke_ms"):
            np.testing.assert_array_equal(getattr(alone, field), getattr(maps[name], field), err_msg=f"{name} {field}")


def test_maps_solved_on_two_threads_are_the_one_thread_maps_bit_for_bit(patient, tmp_path):
    """compute_activations solves a patient's maps on several threads (the compiled eikonal
    solver releases the GIL; the grid's shared geometry is built once, before): every field of
    every map must be the one-thread job's, bit for bit, with the heterogeneous repolarisation
    (its shared diffusion system) and maps that fire the Purkinje trees retrogradely."""
    root, _, maps = patient
    settings = dataclasses.replace(map_settings(root / "cache"),
                                   velocities={"fibre": 0.6, "cross": 0.3, "normal": 0.17},
                                   action_potential={**HOMOGENEOUS, "apd_endo_to_epi": -0.15,
                                                     "electrotonic_length_mm": {"fibre": 6.0, "cross": 4.0}},
                                   eikonal_refinements=1, source_radius_edges=2.5)
    entries = {"sinus": {"name": "sinus", "kind": "sinus"}, "lbbb": {"name": "lbbb", "kind": "lbbb"},
               "crt_engaged": {"name": "crt_engaged", "kind": "biv_pacing", "rv_time_ms": 0.0, "lv_time_ms": 20.0},
               "pacing-00": {"name": "pacing", "kind": "random_pacing", "count": 2}}
    runs = {}
    for threads in (1, 2):
        runs[threads] = compute_activations(
            "train-0003", entries, root / "fibres.npz", root / "heart.vtp", root / "junctions.npz", settings,
            {name: (tmp_path / f"{name}-{threads}.npz", tmp_path / f"{name}-{threads}.png") for name in entries},
            threads=threads)
    for name in entries:
        written = load_activation(tmp_path / f"{name}-2.npz")
        for field in ("activation_ms", "apd_scale", "sites_mm", "site_times_ms", "upstroke_ms"):
            np.testing.assert_array_equal(getattr(runs[2][name], field), getattr(runs[1][name], field),
                                          err_msg=f"{name} {field}")
            np.testing.assert_array_equal(getattr(written, field), getattr(runs[1][name], field),
                                          err_msg=f"{name} {field} as written")
    # the maps differ from one another: a thread did not hand one map's result to another
    assert not np.array_equal(runs[2]["sinus"].activation_ms, runs[2]["lbbb"].activation_ms)


def test_transmembrane_potential_follows_the_activation(patient, tmp_path):
    _, fibres, maps = patient
    template = action_potential_template(cache_dir=tmp_path)
    sinus = maps["sinus"]
    nodes = np.array([int(np.argmin(sinus.activation_ms)), int(np.argmax(sinus.activation_ms))])
    times = np.arange(0.0, 500.0)
    vm = sinus.transmembrane_potential_mv(times, template)
    assert vm.shape == (fibres.n_nodes, times.size)
    for node in nodes:
        upstroke = times[np.argmax(np.diff(vm[node]))]
        assert upstroke == pytest.approx(sinus.activation_ms[node], abs=2.0)
    assert vm.min() == pytest.approx(template.resting_mv, abs=1.0) and vm.max() > 30.0
    from ecgcohort.conduction.repolarisation import Repolarisation, intrinsic_apd_scale

    scale = intrinsic_apd_scale(ventricular_frame(fibres).longitudinal, fibres.coordinates["transmural"],
                                fibres.coordinates["ventricle"], Repolarisation(endo_to_epi=-0.2))
    endo, epi = fibres.coordinates["transmural"] < 0.02, fibres.coordinates["transmural"] > 0.98
    assert scale[endo] == pytest.approx(1.1, abs=0.01) and scale[epi] == pytest.approx(0.9, abs=0.01)


def test_previews_are_pictures(patient):
    root, _, _ = patient
    for name in ("purkinje", "sinus", "crt"):
        png = (root / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_bad_scenarios_are_named():
    with pytest.raises(ScenarioError, match="'wrong'.*kind 'sinsu'"):
        Scenario(name="wrong", kind="sinsu")
    with pytest.raises(ScenarioError, match="'pacing-00' is used twice"):
        scenarios_from_config([{"name": "pacing", "kind": "random_pacing", "count": 2},
                               {"name": "pacing-00", "kind": "sinus"}])
    names = list(scenarios_from_config([{"name": "sinus", "kind": "sinus"},
                                        {"name": "pace", "kind": "random_pacing", "count": 3}]))
    assert names == ["sinus", "pace-00", "pace-01", "pace-02"]


def test_pictures_drawn_apart_are_the_pictures_the_jobs_drew(patient, tmp_path):
    """``draw_patient`` draws from the stored files what the data jobs drew from memory: the
    same PNG bytes for the isochrones (the fixture's job drew them), the Purkinje trees
    (``grow_purkinje`` drew them), a 12-lead ECG and the SDF samples; a data job asked for no
    preview writes none."""
    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.ecg import electrode_potentials, pseudo_lead_matrix, standard_leads, time_grid_ms
    from ecgcohort.ecg.forward import plot_ecg
    from ecgcohort.ecg.leads import LEAD_ELECTRODES
    from ecgcohort.ecg.pictures import PatientData, PatientPictures, draw_patient
    from ecgcohort.encoding.sdf import SdfSamples, sdf_preview, sdf_preview_title, write_sdf_samples
    from ecgcohort.fibers.jobs import plot_fibres
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors

    root, fibres, maps = patient
    # the sinus ECG through the pseudo lead field of electrodes 20 cm around the heart
    sigma = Conductivities()
    centre = fibres.points_mm.mean(axis=0) * 1e-3
    angles = np.linspace(0.0, 2.0 * np.pi, len(LEAD_ELECTRODES), endpoint=False)
    electrodes_m = centre + 0.2 * np.column_stack([np.cos(angles), np.sin(angles), 0.3 * np.cos(3 * angles)])
    lead = pseudo_lead_matrix(electrodes_m, fibres.points_mm * 1e-3, fibres.tetrahedra,
                              intracellular_tensors(fibres.cell_structure, sigma), sigma.torso)
    times_ms = time_grid_ms(400.0, 2.0)
    unipolar = electrode_potentials(lead, maps["sinus"], times_ms,
                                    action_potential_template(1000.0, cache_dir=root / "cache"))
    leads = standard_leads(unipolar, list(LEAD_ELECTRODES))
    np.savez(tmp_path / "sinus-ecg.npz", time_s=times_ms * 1e-3, leads_v=leads, pseudo_leads_v=0.9 * leads)
    plot_ecg(times_ms * 1e-3, leads, 0.9 * leads, tmp_path / "ecg-reference.png",
             title="train-0003, sinus: 12-lead ECG")
    plot_fibres(fibres, tmp_path / "fibres-reference.png", title="train-0003")
    # SDF samples: distances to spheres about the heart's centre, as sample_sdf_job stores them
    sdf_points = fibres.points_mm.mean(axis=0) + np.random.default_rng(5).uniform(-90.0, 90.0, size=(3000, 3))
    radii = {"torso": 80.0, "lv_endocardium": 15.0, "rv_endocardium": 20.0, "epicardium": 40.0}
    samples = SdfSamples(sdf_points, np.stack([np.linalg.norm(sdf_points - sdf_points.mean(axis=0), axis=1) - r
                                               for r in radii.values()]).astype(np.float32),
                         np.zeros(len(sdf_points), dtype=np.int8), tuple(radii), {"sign": "spheres"})
    write_sdf_samples(samples, tmp_path / "sdf.npz")
    sdf_preview(samples, tmp_path / "sdf-reference.png", title=sdf_preview_title("train-0003"))

    drawn = tmp_path / "drawn"
    pictures = PatientPictures(fibres=drawn / "fibres.png", purkinje=drawn / "purkinje.png",
                               activations={"sinus": drawn / "sinus.png", "lbbb": drawn / "lbbb.png"},
                               ecgs={"sinus": drawn / "sinus-ecg.png"}, sdf=drawn / "sdf.png")
    data = PatientData(fibres=root / "fibres.npz", heart=root / "heart.vtp", lv_tree=root / "lv.vtp",
                       rv_tree=root / "rv.vtp", activations={name: root / f"{name}.npz" for name in ("sinus", "lbbb")},
                       ecgs={"sinus": tmp_path / "sinus-ecg.npz"}, sdf=tmp_path / "sdf.npz")
    draw_patient("train-0003", data, pictures)
    for name in ("sinus", "lbbb"):
        assert (drawn / f"{name}.png").read_bytes() == (root / f"{name}.png").read_bytes(), name
    assert (drawn / "purkinje.png").read_bytes() == (root / "purkinje.png").read_bytes()
    assert (drawn / "fibres.png").read_bytes() == (tmp_path / "fibres-reference.png").read_bytes()
    assert (drawn / "sinus-ecg.png").read_bytes() == (tmp_path / "ecg-reference.png").read_bytes()
    assert (drawn / "sdf.png").read_bytes() == (tmp_path / "sdf-reference.png").read_bytes()

    with pytest.raises(ValueError, match="train-0003.*activation maps of scenarios"):
        draw_patient("train-0003", dataclasses.replace(data, activations={"sinus": root / "sinus.npz"}), pictures)
    compute_activations("train-0003", {"sinus": {"name": "sinus", "kind": "sinus"}}, root / "fibres.npz",
                        root / "heart.vtp", root / "junctions.npz", map_settings(root / "cache"),
                        {"sinus": (tmp_path / "unpictured.npz", None)})
    assert (tmp_path / "unpictured.npz").is_file() and not list(tmp_path.glob("unpictured*.png"))


def test_map_settings_from_a_config_take_its_electrophysiology_and_seed():
    from pathlib import Path

    from ecgcohort.config import load_config_files

    root = Path(__file__).resolve().parents[1]
    config = load_config_files([root / "config/config.yaml", root / "config/paper.yaml"],
                               root / "workflow/schemas/config.schema.yaml")
    settings = MapSettings.from_config(config, template_cache_dir="cache")
    physiology = config["electrophysiology"]
    # the paper's values, not the default's: the files were merged first
    assert settings.eikonal_refinements == 0 and settings.seed == 20260
    assert settings.velocities == physiology["velocity_m_per_s"] and settings.velocities["normal"] is None
    assert settings.source_radius_edges == physiology["source_radius_edges"] and settings.device == "cpu"
