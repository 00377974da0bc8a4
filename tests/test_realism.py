"""ECG realism: delineation of synthetic beats with known fiducials and axis, features, the
criteria on hand-made normal and abnormal 12-leads, the sex-specific thresholds applied per
patient, the cohort summary, undelineable ECGs flagged (never dropped), and the clinical
figure's paper scale. The population comparison: tests/test_realism_population.py."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ecgcohort.config import load_schema, validate_config
from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_NAMES, standard_leads
from ecgcohort.realism.criteria import criteria_of, evaluate_row
from ecgcohort.realism.delineation import DelineationError, DelineationSettings, delineate, t_wave_residual
from ecgcohort.realism.features import (FeatureSettings, beat_features, frontal_axis_deg, has_mid_qrs_notch,
                                        transition_index, turning_points)
from ecgcohort.realism.jobs import beat_row, delineate_patient_job, read_beat, realism_summary_job
from ecgcohort.realism.summary import evaluate_cohort, markdown_summary, pass_rates

TIMES_MS = np.arange(501.0)
CYCLE_MS = 1000.0
#: Horizontal-plane directions of V1-V6 (degrees from the left towards the front).
PRECORDIAL_DEG = (115.0, 94.0, 76.0, 60.0, 35.0, 0.0)


def gaussian(centre_ms: float, sigma_ms: float) -> np.ndarray:
    return np.exp(-0.5 * ((TIMES_MS - centre_ms) / sigma_ms) ** 2)


def dipole_beat(components: list[tuple[float, float, float, float, float]]) -> np.ndarray:
    """12 leads (12, T) in mV of a heart vector made of Gaussian components (centre ms, sigma
    ms, amplitude mV, frontal angle deg (+90 to the feet), anterior component as a fraction),
    seen by electrodes on Einthoven's triangle and in the horizontal plane."""
    vector = np.zeros((3, TIMES_MS.size))  # x left, y feet, z front
    for centre, sigma, amplitude, angle, anterior in components:
        direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle)), anterior])
        vector += amplitude * direction[:, None] * gaussian(centre, sigma)[None, :]
    limb = {"RA": -150.0, "LA": -30.0, "LL": 90.0}
    potentials = [np.array([math.cos(math.radians(a)), math.sin(math.radians(a)), 0.0]) @ vector / math.sqrt(3)
                  for a in limb.values()]
    potentials += [np.array([math.cos(math.radians(a)), 0.0, math.sin(math.radians(a))]) @ vector
                   for a in PRECORDIAL_DEG]
    return standard_leads(np.array(potentials), LEAD_ELECTRODES)


def expected_axis_deg(components: list[tuple[float, float, float, float, float]]) -> float:
    """The frontal direction of the summed QRS area vector."""
    area = sum(amplitude * sigma * np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
               for _, sigma, amplitude, angle, _ in components)
    return math.degrees(math.atan2(area[1], area[0]))


NARROW_QRS = [(30.0, 4.0, 0.4, -150.0, 0.6), (55.0, 8.0, 1.5, 50.0, -0.2), (80.0, 6.0, 0.5, -100.0, -0.5)]
WIDE_QRS = [(35.0, 8.0, 0.8, 180.0, -0.8), (90.0, 15.0, 2.0, -10.0, -0.6), (140.0, 8.0, 0.6, -60.0, -0.5)]
T_WAVE = (330.0, 40.0, 0.5, 45.0, 0.3)


@pytest.mark.parametrize("qrs, onset_ms, offset_ms", [(NARROW_QRS, 30.0 - 12.0, 80.0 + 18.0),
                                                      (WIDE_QRS, 35.0 - 24.0, 140.0 + 24.0)])
@pytest.mark.parametrize("rotation_deg", [-70.0, 0.0, 40.0])
def test_delineation_recovers_known_onset_offset_duration_and_axis(qrs, onset_ms, offset_ms, rotation_deg):
    """QRS onset and offset within 5 ms of the first component's centre − 3σ and the last one's
    + 3σ, duration within 6 ms, frontal axis within 1° of the QRS area vector's direction."""
    rotated = [(c, s, a, angle + rotation_deg, z) for c, s, a, angle, z in qrs]
    leads = dipole_beat(rotated + [T_WAVE])
    found = delineate(leads, TIMES_MS, CYCLE_MS)
    assert found.qrs_onset_ms == pytest.approx(onset_ms, abs=5.0)
    assert found.qrs_offset_ms == pytest.approx(offset_ms, abs=5.0)
    assert found.qrs_duration_ms == pytest.approx(offset_ms - onset_ms, abs=6.0)
    features = beat_features(leads, 1.0, found, CYCLE_MS)
    axis_error = (features["qrs_axis_deg"] - expected_axis_deg(rotated) + 180.0) % 360.0 - 180.0
    assert abs(axis_error) < 1.0
    assert not found.t_unfinished


def test_t_peak_and_end_of_a_gaussian_t_wave():
    """T peak within 3 ms of the Gaussian's centre μ; T end within 10 ms of μ + 2σ, where the
    tangent at the steepest descent meets the baseline; QT from QRS onset to T end."""
    leads = dipole_beat(NARROW_QRS + [T_WAVE])
    found = delineate(leads, TIMES_MS, CYCLE_MS)
    centre, sigma = T_WAVE[:2]
    assert found.t_peak_ms == pytest.approx(centre, abs=3.0)
    assert found.t_offset_ms == pytest.approx(centre + 2.0 * sigma, abs=10.0)
    features = beat_features(leads, 1.0, found, CYCLE_MS)
    assert features["qt_ms"] == pytest.approx(found.t_offset_ms - found.qrs_onset_ms)
    assert features["qtc_ms"] == pytest.approx(features["qt_ms"])  # Fridericia at 60 bpm


@pytest.mark.parametrize("t_centre_ms, residual", [(460.0, 0.61), (420.0, 0.14)])
def test_a_t_wave_cut_by_the_record_is_flagged_and_not_measured(t_centre_ms, residual):
    """What is left at 500 ms of a Gaussian T (σ 40 ms) is exp(−(500 − μ)²/2σ²) of it; neither
    its peak nor its end is measured (ECGdeli would place the end at 494 ms for μ = 420 ms, on
    the taper that closes the record)."""
    late_t = (t_centre_ms, 40.0, 0.5, 45.0, 0.3)
    found = delineate(dipole_beat(NARROW_QRS + [late_t]), TIMES_MS, CYCLE_MS)
    assert found.t_unfinished and found.t_residual_fraction == pytest.approx(residual, abs=0.02)
    assert math.isnan(found.t_offset_ms) and math.isnan(found.t_peak_ms)
    finished = delineate(dipole_beat(NARROW_QRS + [T_WAVE]), TIMES_MS, CYCLE_MS)
    assert not finished.t_unfinished and finished.t_residual_fraction < 0.03


def test_t_residual_is_a_fraction_of_the_beats_largest_t():
    """A lead whose T is 0.3 of the beat's largest, with 0.02 of that largest T left at the end
    (test-0000's V2 at 4 mm: 0.1 of 0.33 mV, 7 µV left), is finished: 0.02 < 0.05, where a
    fraction of its own T (0.067) flagged it; 0.1 left in the largest lead is 0.1."""
    t = np.linspace(0.0, 1.0, 201)
    bump = np.exp(-((t - 0.5) / 0.1) ** 2)
    small_tail = np.stack([bump, 0.3 * bump + 0.02 * (t > 0.9)])
    assert t_wave_residual(small_tail, np.zeros(2), 20) == pytest.approx(0.02, rel=1e-6)
    assert t_wave_residual(small_tail, np.zeros(2), 20) < DelineationSettings().t_residual_max
    large_tail = np.stack([bump + 0.1 * (t > 0.9), 0.3 * bump])
    assert t_wave_residual(large_tail, np.zeros(2), 20) == pytest.approx(0.1, rel=1e-3)


def test_undelineable_ecgs_raise_with_the_reason():
    rng = np.random.default_rng(3)
    with pytest.raises(DelineationError, match="flat"):
        delineate(np.zeros((12, TIMES_MS.size)), TIMES_MS, CYCLE_MS)
    with pytest.raises(DelineationError, match="noise"):
        delineate(rng.normal(0.0, 0.5, (12, TIMES_MS.size)), TIMES_MS, CYCLE_MS)
    with pytest.raises(DelineationError, match="non-finite"):
        delineate(np.full((12, TIMES_MS.size), np.nan), TIMES_MS, CYCLE_MS)
    # no QRS-like complex: a ramp (its spatial velocity never stands out) and a lone slow wave
    ramp = np.tile(np.linspace(0.0, 1.0, TIMES_MS.size), (12, 1))
    with pytest.raises(DelineationError, match="no QRS.*times its median"):
        delineate(ramp, TIMES_MS, CYCLE_MS)
    with pytest.raises(DelineationError, match="no QRS.*outside 40-300 ms"):
        delineate(np.tile(gaussian(250.0, 60.0), (12, 1)), TIMES_MS, CYCLE_MS)


def test_an_ecgdeli_failure_flags_the_beat_instead_of_failing_the_job(monkeypatch):
    import ecgdeli

    def broken(*args, **kwargs):
        raise ecgdeli.MatlabIndexError("MATLAB:badsubscript", "Index exceeds the number of array elements.")

    monkeypatch.setattr(ecgdeli, "annotate", broken)
    row = beat_row("p1", "sinus", "sinus", "healthy", hand_made(NORMAL_I, NORMAL_II, NORMAL_PRECORDIAL), TIMES_MS,
                   CYCLE_MS, DelineationSettings(), FeatureSettings())
    assert row["status"].startswith("ECGdeli failed on the T wave") and "qrs_duration_ms" not in row


def test_feature_primitives():
    assert frontal_axis_deg(1.0, 0.0) == pytest.approx(0.0)
    assert frontal_axis_deg(0.0, 1.0) == pytest.approx(90.0)
    assert frontal_axis_deg(1.0, math.sqrt(3) / 2) == pytest.approx(45.0)  # aVF = (√3/2) E sin θ
    assert transition_index(np.array([0.2, 0.5, 1.2, 1.5, 2, 2]), np.array([1, 1, 1, 1, 0.5, 0.2])) == 3
    assert transition_index(np.array([0.2, 0.5, 0.6, 0.8, 2, 2]), np.array([1, 1, 1, 1, 0.5, 0.2])) == 5
    assert transition_index(np.array([1.0, 0.1, 2, 2, 2, 2]), np.array([0.5, 1, 1, 1, 1, 1])) == 3
    assert transition_index(np.ones(6), np.full(6, 2.0)) == 7
    smooth = 1.2 * gaussian(55.0, 8.0) - 0.4 * gaussian(80.0, 6.0)
    assert turning_points(smooth[20:100], 0.01) == 2
    wiggly = smooth + 0.05 * np.sin(2 * np.pi * TIMES_MS / 6.0) * gaussian(55.0, 15.0)
    assert turning_points(wiggly[20:100], 0.01) >= 5
    assert turning_points(smooth[20:100] + 0.01 * np.sin(2 * np.pi * TIMES_MS[20:100] / 6.0), 0.05) == 2
    slurred = gaussian(60.0, 12.0) + 1.2 * gaussian(105.0, 20.0)
    assert has_mid_qrs_notch(slurred[20:170], 1.0, 0.5)
    assert not has_mid_qrs_notch(2.0 * gaussian(90.0, 25.0)[15:165], 1.0, 0.5)


# --- hand-made 12-leads: components (centre ms, sigma ms) and per-lead amplitudes (mV)

NORMAL_WAVES = {"q": (25.0, 4.0), "r": (52.0, 9.0), "s": (82.0, 6.0), "t": (330.0, 40.0)}
NORMAL_I = {"q": -0.1, "r": 0.8, "s": -0.2, "t": 0.25}
NORMAL_II = {"q": -0.05, "r": 1.2, "s": -0.2, "t": 0.35}
NORMAL_PRECORDIAL = {
    "V1": {"r": 0.3, "s": -1.2, "t": 0.3},
    "V2": {"r": 0.5, "s": -1.5, "t": 0.6},
    "V3": {"r": 1.0, "s": -0.8, "t": 0.7},
    "V4": {"q": -0.05, "r": 1.4, "s": -0.5, "t": 0.6},
    "V5": {"q": -0.1, "r": 1.3, "s": -0.3, "t": 0.5},
    "V6": {"q": -0.1, "r": 1.0, "s": -0.2, "t": 0.4},
}


def hand_made(lead_i: dict, lead_ii: dict, precordial: dict, waves: dict = NORMAL_WAVES) -> np.ndarray:
    """12 leads (12, T) mV: I and II as sums of the named Gaussian waves, the other limb leads
    from Einthoven's and Goldberger's identities, V1-V6 as given."""
    def lead(amplitudes: dict) -> np.ndarray:
        return sum((a * gaussian(*waves[name]) for name, a in amplitudes.items()), np.zeros_like(TIMES_MS))

    i, ii = lead(lead_i), lead(lead_ii)
    limb = [i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2]
    return np.array(limb + [lead(precordial[name]) for name in LEAD_NAMES[6:]])


@pytest.fixture(scope="module")
def realism_config(repo) -> dict:
    """The realism section's defaults from the schema."""
    return validate_config({}, load_schema(repo / "workflow/schemas/config.schema.yaml"))["realism"]


def judge(leads: np.ndarray, criteria_set: str, config: dict, sex: str = "male") -> dict[str, bool]:
    """Criterion name -> passed, for one beat of a patient of ``sex`` judged by ``criteria_set``."""
    row = beat_row("p", "s", "kind", criteria_set, leads, TIMES_MS, CYCLE_MS,
                   DelineationSettings.from_config(config["delineation"]),
                   FeatureSettings.from_config(config["features"]))
    assert row["status"] == "ok", row["status"]
    row["sex"] = sex
    results = evaluate_row(row, config, {criteria_set: [row]})
    return {r["criterion"]: r["passed"] for r in results}


def failing(outcome: dict[str, bool]) -> set[str]:
    return {name for name, passed in outcome.items() if not passed}


def with_changes(base: dict, **leads: dict) -> dict:
    return {name: leads.get(name, amplitudes) for name, amplitudes in base.items()}


@pytest.mark.parametrize("sex", ["female", "male"])
def test_a_hand_made_normal_12_lead_passes_every_healthy_criterion(sex, realism_config):
    outcome = judge(hand_made(NORMAL_I, NORMAL_II, NORMAL_PRECORDIAL), "healthy", realism_config, sex)
    assert set(outcome) == {c.name for c in criteria_of("healthy")}
    assert failing(outcome) == set()


ABNORMAL = {
    "late transition": (NORMAL_I, NORMAL_II, with_changes(
        NORMAL_PRECORDIAL, V3={"r": 0.2, "s": -1.5, "t": 0.7}, V4={"q": -0.05, "r": 0.5, "s": -1.2, "t": 0.6}),
        {"transition_zone", "r_wave_progression", "r_wave_rise"}),
    # R falls from V2 to V3 but stays above 0.3 mV in V3, the transition still in V4
    "reversed R-wave progression": (NORMAL_I, NORMAL_II, with_changes(
        NORMAL_PRECORDIAL, V2={"r": 0.7, "s": -1.5, "t": 0.6}, V3={"r": 0.5, "s": -0.8, "t": 0.7}),
        {"r_wave_rise"}),
    # R falls by 0.06 mV from V2 to V3: just over half a millimetre, a fall a reader sees
    "R falling by a readable 0.06 mV": (NORMAL_I, NORMAL_II, with_changes(
        NORMAL_PRECORDIAL, V2={"r": 1.06, "s": -1.5, "t": 0.6}),
        {"r_wave_rise"}),
    "giant T": ({**NORMAL_I, "t": 1.0}, {**NORMAL_II, "t": 2.0}, with_changes(
        NORMAL_PRECORDIAL, V2={"r": 0.5, "s": -1.5, "t": 4.0}, V3={"r": 1.0, "s": -0.8, "t": 5.0}),
        {"t_amplitude_limb", "t_amplitude_precordial"}),
    "inverted T": ({**NORMAL_I, "t": -0.15}, {**NORMAL_II, "t": 0.3}, with_changes(
        NORMAL_PRECORDIAL, V5={"q": -0.1, "r": 1.3, "s": -0.3, "t": -0.5}, V6={"q": -0.1, "r": 1.0, "s": -0.2, "t": -0.4}),
        {"t_upright"}),
    "high voltage": ({**NORMAL_I, "r": 1.6}, {**NORMAL_II, "r": 1.4}, with_changes(
        NORMAL_PRECORDIAL, V1={"r": 0.3, "s": -2.4, "t": 0.3}, V3={"r": 2.5, "s": -2.0, "t": 0.7},
        V4={"q": -0.05, "r": 2.7, "s": -0.5, "t": 0.6}, V5={"q": -0.1, "r": 2.6, "s": -0.3, "t": 0.5}),
        {"cornell_voltage", "sokolow_lyon"}),
    "no septal activation": (NORMAL_I, NORMAL_II, with_changes(
        NORMAL_PRECORDIAL, V1={"q": -0.1, "r": 0.3, "s": -1.2, "t": 0.3}, V5={"r": 1.3, "s": -0.3, "t": 0.5},
        V6={"r": 1.0, "s": -0.2, "t": 0.4}),
        {"septal_activation"}),
    "initial q in V1, septal q in V5-V6": (NORMAL_I, NORMAL_II, with_changes(
        NORMAL_PRECORDIAL, V1={"q": -0.1, "r": 0.3, "s": -1.2, "t": 0.3}),
        {"septal_activation"}),
    "septal q too shallow to read": (NORMAL_I, NORMAL_II, with_changes(
        NORMAL_PRECORDIAL, V5={"q": -0.02, "r": 1.3, "s": -0.3, "t": 0.5}, V6={"q": -0.02, "r": 1.0, "s": -0.2, "t": 0.4}),
        {"septal_activation"}),
    # the T axis turned to about -20° (T still upright in I and II, inverted in aVR): the QRS axis
    # is about +54°, so the frontal QRS-T angle is about 74°
    "wide QRS-T angle": ({**NORMAL_I, "t": 0.35}, {**NORMAL_II, "t": 0.065}, NORMAL_PRECORDIAL, {"qrs_t_angle"}),
}


def test_a_dip_of_r_too_small_to_read_is_no_fall(realism_config):
    # R 1.02 mV in V2, 1.0 in V3: 0.02 mV is a fifth of a millimetre at 10 mm/mV; with the
    # threshold at 0 (the criterion before 2026-11-28) it counts as a fall
    dip = hand_made(NORMAL_I, NORMAL_II, with_changes(NORMAL_PRECORDIAL, V2={"r": 1.02, "s": -1.5, "t": 0.6}))
    assert failing(judge(dip, "healthy", realism_config)) == set()
    strict = {**realism_config, "healthy": {**realism_config["healthy"], "r_fall_min_mv": 0.0}}
    assert failing(judge(dip, "healthy", strict)) == {"r_wave_rise"}


@pytest.mark.parametrize("name", list(ABNORMAL))
def test_hand_made_abnormal_12_leads_fail_exactly_their_criteria(name, realism_config):
    lead_i, lead_ii, precordial, expected = ABNORMAL[name]
    assert failing(judge(hand_made(lead_i, lead_ii, precordial), "healthy", realism_config)) == expected


def sex_specific_outcomes(config: dict, criteria_set: str = "healthy", **features: float
                          ) -> dict[str, dict[str, bool]]:
    """Sex -> criterion -> passed for one hand-made feature row judged by ``criteria_set`` (only
    the criteria that read ``features`` are asked)."""
    row = {"patient": "p1", "scenario": "s", "status": "ok", **features}
    names = {"qrs_duration_ms": "strauss_qrs_duration" if criteria_set == "lbbb" else "qrs_duration",
             "cornell_mv": "cornell_voltage", "qtc_ms": "qtc"}
    wanted = {names[key] for key in features}
    outcomes = {}
    for sex in ("female", "male"):
        criteria = [c for c in criteria_of(criteria_set) if c.name in wanted]
        outcomes[sex] = {c.name: c.check({**row, "sex": sex}, config[criteria_set], {}).passed for c in criteria}
    return outcomes


@pytest.mark.parametrize("criteria_set, feature, value, female, male", [
    ("lbbb", "qrs_duration_ms", 135.0, True, False),   # Strauss: >= 130 ms women, >= 140 ms men
    ("lbbb", "qrs_duration_ms", 128.0, False, False),
    ("lbbb", "qrs_duration_ms", 140.0, True, True),
    # normal limits: 70-104 ms women (WHI's 2nd-98th percentiles), 69-110 ms men
    ("healthy", "qrs_duration_ms", 69.5, False, True),
    ("healthy", "qrs_duration_ms", 72.0, True, True),
    ("healthy", "qrs_duration_ms", 104.0, True, True),
    ("healthy", "qrs_duration_ms", 106.0, False, True),
    ("healthy", "qrs_duration_ms", 111.0, False, False),
    ("healthy", "cornell_mv", 2.4, False, True),          # Casale: above 2.0 mV women, 2.8 mV men
    ("healthy", "cornell_mv", 2.0, True, True),
    ("healthy", "cornell_mv", 2.9, False, False),
    ("healthy", "qtc_ms", 455.0, True, False),            # Rautaharju: prolonged at 460 ms women, 450 ms men
    ("healthy", "qtc_ms", 450.0, True, False),
    ("healthy", "qtc_ms", 460.0, False, False),
])
def test_sex_specific_thresholds_apply_the_patients_own(criteria_set, feature, value, female, male,
                                                        realism_config):
    outcomes = sex_specific_outcomes(realism_config, criteria_set, **{feature: value})
    assert [set(o.values()) for o in outcomes.values()] == [{female}, {male}]


def test_the_same_lbbb_beat_passes_strauss_for_a_woman_and_fails_for_a_man(realism_config):
    """A 135 ms LBBB through evaluate_cohort: the woman's beat passes strauss_lbbb, the man's not."""
    beat = {"scenario": "lbbb", "kind": "lbbb", "criteria_set": "lbbb", "status": "ok", "qrs_duration_ms": 135.0,
            "rs_ratio_V1": 0.0, "rs_ratio_V2": 0.1, "notched_leads": "V5 V6", "notched_lead_count": 2,
            "q_mv_I": 0.0, "q_mv_V5": 0.0, "q_mv_V6": 0.0, "t_residual_fraction": 0.01, "t_unfinished": False}
    rows = [{**beat, "patient": "w", "sex": "female"}, {**beat, "patient": "m", "sex": "male"}]
    results = evaluate_cohort(rows, realism_config)
    verdict = {r["patient"]: r["passed"] for r in results if r["criterion"] == "strauss_qrs_duration"}
    assert verdict == {"w": True, "m": False}
    rates = {r["criterion"]: r for r in pass_rates(results, realism_config)}
    assert (rates["strauss_lbbb"]["passed"], rates["strauss_lbbb"]["beats"]) == (1, 2)


@pytest.mark.parametrize("sex", [None, "unknown"])
def test_a_sex_specific_criterion_without_the_patients_sex_names_patient_and_key(sex, realism_config):
    row = {"patient": "train-0007", "scenario": "lbbb", "criteria_set": "lbbb", "status": "ok",
           "qrs_duration_ms": 135.0}
    if sex is not None:
        row["sex"] = sex
    strauss = next(c for c in criteria_of("lbbb") if c.name == "strauss_qrs_duration")
    with pytest.raises(ValueError, match="patient train-0007.*sex"):
        strauss.check(row, realism_config["lbbb"], {})


def test_a_fragmented_qrs_fails_fragmentation_and_the_high_frequency_band(realism_config):
    leads = hand_made(NORMAL_I, NORMAL_II, NORMAL_PRECORDIAL)
    # 200 Hz notches of 0.15 mV in the anterior leads' QRS
    notches = 0.15 * np.sin(2 * np.pi * TIMES_MS / 5.0) * gaussian(52.0, 12.0)
    leads[6:10] += notches
    assert failing(judge(leads, "healthy", realism_config)) == {"qrs_not_fragmented", "hf_band_amplitude"}


@pytest.mark.parametrize(("notch_mv", "fragmented"), [(0.03, False), (0.04, False), (0.15, True)])
def test_fragmentation_counts_the_notches_a_reader_sees(notch_mv, fragmented, realism_config):
    # Notches on the S wave of the inferior leads (II, III, aVF). The study's train-0003 at
    # c9a4e60 failed with one of 0.02 mV in II: a fifth of a millimetre at 10 mm/mV, which no
    # reader of a printed ECG sees (the turning points' prominence is half a millimetre, 0.05 mV).
    leads = hand_made(NORMAL_I, NORMAL_II, NORMAL_PRECORDIAL)
    leads[[1, 2, 5]] += notch_mv * np.sin(2 * np.pi * (TIMES_MS - 82.0) / 5.0) * gaussian(82.0, 5.0)
    assert ("qrs_not_fragmented" in failing(judge(leads, "healthy", realism_config))) is fragmented
    # at the 0.01 mV counted until 2026-12-01 every one of them was fragmented
    assert sum(turning_points(leads[k, 15:95], 0.01) > 4 for k in (1, 2, 5)) >= 2


def test_a_normal_qrs_axis_out_of_range_fails_the_axis(realism_config):
    # I negative and aVF positive: a right axis (about +120°); the T axis stays near +46°, so the
    # frontal QRS-T angle widens to about 74° as well
    leads = hand_made({"q": 0.05, "r": -0.6, "s": 0.1, "t": 0.25}, {"q": -0.05, "r": 0.9, "s": -0.2, "t": 0.35},
                      NORMAL_PRECORDIAL)
    assert failing(judge(leads, "healthy", realism_config)) == {"qrs_axis", "qrs_t_angle"}


LBBB_WAVES = {"a": (55.0, 12.0), "b": (105.0, 20.0), "qs": (90.0, 25.0), "q": (25.0, 4.0), "t": (350.0, 45.0)}
LBBB_PRECORDIAL = {
    "V1": {"qs": -1.5, "t": 0.6}, "V2": {"qs": -2.0, "t": 0.7}, "V3": {"qs": -1.5, "t": 0.5},
    "V4": {"a": 0.4, "b": 0.4, "qs": -0.6, "t": -0.2}, "V5": {"a": 0.8, "b": 1.0, "t": -0.4},
    "V6": {"a": 0.7, "b": 0.9, "t": -0.3},
}


def test_a_hand_made_lbbb_passes_strauss_and_fails_when_changed(realism_config):
    lbbb_i, lbbb_ii = {"a": 0.6, "b": 0.8, "t": -0.3}, {"a": 0.3, "b": 0.4, "t": -0.1}
    leads = hand_made(lbbb_i, lbbb_ii, LBBB_PRECORDIAL, LBBB_WAVES)
    assert failing(judge(leads, "lbbb", realism_config)) == set()
    assert "qrs_duration" in failing(judge(leads, "healthy", realism_config))
    smooth = hand_made({"b": 1.0, "t": -0.3}, {"b": 0.5, "t": -0.1},
                       with_changes(LBBB_PRECORDIAL, V5={"b": 1.4, "t": -0.4}, V6={"b": 1.3, "t": -0.3}),
                       {**LBBB_WAVES, "b": (90.0, 25.0)})
    assert failing(judge(smooth, "lbbb", realism_config)) == {"strauss_mid_qrs_notch"}
    lateral_q = hand_made({**lbbb_i, "q": -0.15}, lbbb_ii, LBBB_PRECORDIAL, LBBB_WAVES)
    assert failing(judge(lateral_q, "lbbb", realism_config)) == {"lbbb_no_lateral_q"}


def test_biventricular_pacing_is_judged_against_the_same_patients_lbbb(realism_config):
    lbbb = {"patient": "p1", "scenario": "lbbb", "criteria_set": "lbbb", "status": "ok", "qrs_duration_ms": 150.0}

    def narrower(duration_ms: float, patient_lbbb: list[dict]) -> tuple[bool, bool]:
        crt = {"patient": "p1", "scenario": "crt", "criteria_set": "biv_pacing", "status": "ok",
               "qrs_duration_ms": duration_ms, "t_residual_fraction": 0.01, "t_unfinished": False}
        result = next(r for r in evaluate_row(crt, realism_config, {"lbbb": patient_lbbb})
                      if r["criterion"] == "narrower_than_lbbb")
        return result["measured"], result["passed"]

    assert narrower(120.0, [lbbb]) == (True, True)
    assert narrower(170.0, [lbbb]) == (True, False)
    assert narrower(120.0, []) == (False, False)
    assert narrower(120.0, [{**lbbb, "status": "flat ECG"}]) == (False, False)


def test_undelineable_beats_stay_in_the_table_and_fail_every_criterion(realism_config):
    settings = DelineationSettings.from_config(realism_config["delineation"])
    features = FeatureSettings.from_config(realism_config["features"])
    flat = beat_row("p1", "sinus", "sinus", "healthy", np.zeros((12, TIMES_MS.size)), TIMES_MS, CYCLE_MS,
                    settings, features)
    normal = beat_row("p2", "sinus", "sinus", "healthy", hand_made(NORMAL_I, NORMAL_II, NORMAL_PRECORDIAL), TIMES_MS,
                      CYCLE_MS, settings, features)
    assert flat["status"].startswith("flat") and normal["status"] == "ok"
    flat["sex"], normal["sex"] = "female", "male"
    results = evaluate_cohort([flat, normal], realism_config)
    flat_results = [r for r in results if r["patient"] == "p1"]
    assert len(flat_results) == len(criteria_of("healthy"))
    assert all(not r["passed"] and not r["measured"] and "not delineated" in r["value"] for r in flat_results)
    rates = pass_rates(results, realism_config)
    assert all(r["beats"] == 2 for r in rates)
    everything = next(r for r in rates if r["criterion"] == "all criteria")
    assert (everything["passed"], everything["beats"]) == (1, 2)
    assert "p1 sinus: flat" in markdown_summary(rates, [flat, normal])


def table_row(path: Path, scenario: str) -> dict[str, str]:
    with open(path, newline="") as stream:
        return next(r for r in csv.DictReader(stream) if r["scenario"] == scenario)


def write_ecg(path: Path, patient: str, scenario: str, leads_mv: np.ndarray) -> Path:
    np.savez(path, patient=np.array(patient), scenario=np.array(scenario), time_s=TIMES_MS * 1e-3,
             leads_v=leads_mv * 1e-3, lead_names=np.array(LEAD_NAMES))
    return path


def test_the_jobs_write_every_beat_flagged_or_not_and_the_figures(tmp_path, realism_config):
    rng = np.random.default_rng(0)
    ecgs = {"sinus": write_ecg(tmp_path / "sinus.npz", "p1", "sinus", hand_made(NORMAL_I, NORMAL_II, NORMAL_PRECORDIAL)),
            "noisy": write_ecg(tmp_path / "noisy.npz", "p1", "noisy", rng.normal(0.0, 0.3, (12, TIMES_MS.size))),
            "flat": write_ecg(tmp_path / "flat.npz", "p1", "flat", np.zeros((12, TIMES_MS.size)))}
    kinds = {"sinus": "sinus", "noisy": "random_pacing", "flat": "lbbb"}
    delineate_patient_job("p1", ecgs, kinds, realism_config["judged_as"], CYCLE_MS, realism_config["delineation"],
                          realism_config["features"], tmp_path / "p1.json", {"sinus": tmp_path / "sinus-12lead.png"})
    rows = json.loads((tmp_path / "p1.json").read_text())["rows"]
    assert [(r["scenario"], r["status"].split(":")[0]) for r in rows] == [("sinus", "ok"), ("noisy", "noise"),
                                                                        ("flat", "flat ECG")]
    outputs = {name: tmp_path / f"{name}.{ext}" for name, ext in (("features", "csv"), ("criteria", "csv"),
                                                                   ("table", "csv"), ("markdown", "md"),
                                                                   ("distributions", "png"), ("pose", "csv"),
                                                                   ("population", "csv"), ("population_markdown", "md"),
                                                                   ("population_figure", "png"),
                                                                   ("prevalence", "csv"), ("heart_size", "csv"),
                                                                   ("heart_size_figure", "png"))}
    anatomy = tmp_path / "anatomy.json"
    anatomy.write_text(json.dumps({"patient": "p1", "sex": "female", "age_years": 52.5,
                                   "measures": {"long_axis": [0.5, 0.5, 0.5 * np.sqrt(2.0)],
                                                "myocardial_volume_ml": 140.0}}))
    realism_summary_job([tmp_path / "p1.json"], [anatomy],
                        {"healthy": realism_config["healthy"], "lbbb": realism_config["lbbb"]}, outputs)
    with open(outputs["pose"], newline="") as stream:
        (pose,) = list(csv.DictReader(stream))
    sinus_axis = float(table_row(outputs["features"], "sinus")["qrs_axis_deg"])
    assert float(pose["long_axis_frontal_deg"]) == pytest.approx(np.degrees(np.arctan2(np.sqrt(2.0), 1.0)), abs=1e-4)
    assert float(pose["qrs_minus_long_axis_deg"]) == pytest.approx(sinus_axis - float(pose["long_axis_frontal_deg"]),
                                                                   abs=1e-3)
    assert "## Heart pose against anatomy" in outputs["markdown"].read_text()
    with open(outputs["features"], newline="") as stream:
        table = list(csv.DictReader(stream))
    assert [r["scenario"] for r in table] == ["sinus", "noisy", "flat"]
    assert list(table[0])[:3] == ["patient", "sex", "age_years"]
    assert {(r["sex"], r["age_years"]) for r in table} == {("female", "52.5")}
    with open(outputs["population"], newline="") as stream:
        population = list(csv.DictReader(stream))
    qrs = [r for r in population if r["feature"] == "qrs_duration_ms" and r["sex"] in ("female", "all")]
    assert qrs and all(r["cohort_n"] == "1" for r in qrs)
    assert all(r["cohort_n"] == "0" for r in population if r["sex"] == "male")
    assert "## The cohort against healthy populations" in outputs["markdown"].read_text()
    assert outputs["population_markdown"].read_text() in outputs["markdown"].read_text()
    assert table[0]["qrs_duration_ms"] and not table[2]["qrs_duration_ms"]
    with open(outputs["table"], newline="") as stream:
        rates = {(r["criteria_set"], r["criterion"]): r for r in csv.DictReader(stream)}
    assert rates[("healthy", "all criteria")]["passed"] == "1"
    assert rates[("lbbb", "strauss_qrs_duration")]["measured"] == "0"
    assert (rates[("lbbb", "strauss_lbbb")]["passed"], rates[("lbbb", "strauss_lbbb")]["goal_reached"]) == ("0", "no")
    # the goals are on the summary rows: every sinus criterion, Strauss, CRT narrower than LBBB
    assert rates[("healthy", "qrs_duration")]["goal_reached"] == ""
    assert rates[("healthy", "all criteria")]["goal_reached"] == "yes"
    assert rates[("paced", "t_wave_complete")]["passed"] == "0"
    # one sinus beat, passing every criterion, of a woman
    with open(outputs["prevalence"], newline="") as stream:
        prevalence = {(r["criterion"], r["sex"]): r for r in csv.DictReader(stream)}
    assert (prevalence[("every criterion", "female")]["cohort_beats"],
            prevalence[("every criterion", "female")]["cohort_failing"]) == ("1", "0")
    assert ("every criterion", "male") not in prevalence
    assert "## Findings against their prevalence in adults" in outputs["population_markdown"].read_text()
    # one sinus beat of a 140 mL heart, too few for a line; the flat LBBB beat is not counted
    with open(outputs["heart_size"], newline="") as stream:
        heart_size = {(r["kind"], r["sex"]): r for r in csv.DictReader(stream)}
    assert (heart_size[("sinus", "female")]["beats"], heart_size[("sinus", "female")]["volume_median_ml"],
            heart_size[("sinus", "female")]["slope_ms_per_10ml"]) == ("1", "140", "")
    assert heart_size[("lbbb", "female")]["beats"] == "0"
    assert "## The QRS duration against the heart's size" in outputs["markdown"].read_text()
    # the page rebuilt from the CSVs alone (how a recorded run's page is checked) is the page; a run
    # recorded before the prevalence table (the heart-size table) renders without it
    from ecgcohort.realism.report import HEART_SIZE_CSV, PREVALENCE_CSV, REPORT_CSVS, realism_markdown_from_csvs

    written = {"rates": "table", "rows": "features", "pose": "pose", "population": "population"}
    (tmp_path / "recorded").mkdir()
    for role, name in REPORT_CSVS.items():
        (tmp_path / "recorded" / name).write_bytes(outputs[written[role]].read_bytes())
    older = realism_markdown_from_csvs(tmp_path / "recorded")
    assert "## Findings against their prevalence" not in older and older in outputs["markdown"].read_text()
    (tmp_path / "recorded" / PREVALENCE_CSV).write_bytes(outputs["prevalence"].read_bytes())
    without_heart_size = realism_markdown_from_csvs(tmp_path / "recorded")
    assert "heart's size" not in without_heart_size and without_heart_size in outputs["markdown"].read_text()
    (tmp_path / "recorded" / HEART_SIZE_CSV).write_bytes(outputs["heart_size"].read_bytes())
    assert realism_markdown_from_csvs(tmp_path / "recorded") == outputs["markdown"].read_text()
    for name in ("distributions", "population_figure", "heart_size_figure"):
        assert outputs[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    # 10 s at 25 mm/s plus the 10 mm calibration column and margins, at 150 dpi
    with Image.open(tmp_path / "sinus-12lead.png") as image:
        width_mm = image.size[0] / 150 * 25.4
    assert width_mm == pytest.approx(10.0 + 250.0 + 5.0, abs=1.0)


def test_an_ecg_file_of_another_beat_is_refused(tmp_path):
    path = write_ecg(tmp_path / "sinus.npz", "p1", "lbbb", np.zeros((12, TIMES_MS.size)))
    with pytest.raises(ValueError, match="p1, sinus"):
        read_beat(path, "p1", "sinus")


@pytest.mark.workflow
def test_the_stage_runs_in_snakemake_flags_bad_beats_and_reruns_only_what_changed(workflow_copy, workflow_config):
    """The realism rules alone on ECG files put in place of the upstream stages (one patient's
    beats normal, LBBB-like, flat, noise): every beat in the feature table, the clinical 12-lead
    of the sinus beat and the summary in the report; a second run does nothing; a changed
    healthy range re-runs the summary only."""
    import copy
    import re

    config = copy.deepcopy(workflow_config)
    config["cohort"]["train"] = {"count": 1, "lhs_batch": 1}
    config["cohort"]["test"] = {"count": 1, "lhs_batch": 1}
    workflow_copy.write_config(config)
    rng = np.random.default_rng(1)
    lbbb = hand_made({"a": 0.6, "b": 0.8, "t": -0.3}, {"a": 0.3, "b": 0.4, "t": -0.1}, LBBB_PRECORDIAL, LBBB_WAVES)
    beats = {"sinus": hand_made(NORMAL_I, NORMAL_II, NORMAL_PRECORDIAL), "lbbb": lbbb, "crt": lbbb,
             "pacing-00": np.zeros((12, TIMES_MS.size)), "pacing-01": rng.normal(0.0, 0.3, (12, TIMES_MS.size))}
    for patient in ("train-0000", "test-0000"):
        folder = workflow_copy.root / "results/patients" / patient / "ecg"
        folder.mkdir(parents=True)
        for scenario, leads in beats.items():
            write_ecg(folder / f"{scenario}.npz", patient, scenario, leads)
        anatomy = workflow_copy.root / "results/patients" / patient / "anatomy/anatomy.json"
        anatomy.parent.mkdir(parents=True)
        anatomy.write_text(json.dumps({"patient": patient, "sex": "female" if patient.startswith("test") else "male",
                                       "age_years": 47.0, "measures": {"long_axis": [0.58, 0.58, 0.57],
                                                                          "myocardial_volume_ml": 150.0}}))
    only_realism = ("--allowed-rules", "delineate_ecgs", "realism_summary", "realism")

    def run(*args: str) -> str:
        result = workflow_copy.snakemake(*args, *only_realism)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
        return result.stdout + result.stderr

    log = run("realism")
    assert re.findall(r"^(?:local)?rule (\w+):", log, re.M).count("delineate_ecgs") == 2
    results = workflow_copy.root / "results"
    with open(results / "ecg/features.csv", newline="") as stream:
        table = list(csv.DictReader(stream))
    assert len(table) == 10
    status = {(r["patient"], r["scenario"]): r["status"].split(":")[0] for r in table}
    assert status[("test-0000", "sinus")] == "ok" and status[("test-0000", "pacing-00")] == "flat ECG"
    assert status[("train-0000", "pacing-01")] == "noise"
    for patient in ("train-0000", "test-0000"):
        assert (results / f"patients/{patient}/realism/sinus-12lead.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (results / f"benchmarks/patients/{patient}/delineate_ecgs.tsv").exists()
    markdown = (results / "ecg/realism.md").read_text()
    assert "train-0000 pacing-00: flat ECG" in markdown and "| qrs_duration | QRS 70-104 ms (women), 69-110 ms (men) | 2/2 |" in markdown

    report = run("--report", "results/report.html", "realism")
    assert "Report created" in report
    html = (results / "report.html").read_text()
    with open(results / "ecg/pose.csv", newline="") as stream:
        assert [r["patient"] for r in csv.DictReader(stream)] == ["train-0000", "test-0000"]
    for name in ("feature_distributions.png", "realism.csv", "sinus-12lead.png", "pose.csv", "population.csv",
                 "population.png", "heart_size.csv", "heart_size.png"):
        assert f"filename={name}" in html, name

    assert "Nothing to be done" in run("realism")
    config["realism"] = {"healthy": {"qrs_duration_ms": {"male": [80.0, 100.0]}}}
    workflow_copy.write_config(config)
    rerun = re.findall(r"^(?:local)?rule (\w+):", run("realism"), re.M)
    assert rerun == ["realism_summary", "realism"] or rerun == ["realism_summary"], rerun


def test_long_axis_angles_follow_the_frame_and_the_qrs_axis_convention():
    from ecgcohort.anatomy.assembly import long_axis_angles

    assert long_axis_angles([1.0, 0.0, 0.0]) == pytest.approx({"frontal_deg": 0.0, "transverse_deg": 0.0,
                                                               "inclination_deg": 0.0})
    # inferior is +90 in the frontal plane, as for the QRS axis; anterior is +90 in the transverse plane
    assert long_axis_angles([0.0, 0.0, 2.0])["frontal_deg"] == pytest.approx(90.0)
    assert long_axis_angles([0.0, 3.0, 0.0])["transverse_deg"] == pytest.approx(90.0)
    # the default reference pose: 45 degrees left of anterior, 35 degrees below the horizontal
    angles = long_axis_angles([0.58, 0.58, 0.57])
    assert angles["transverse_deg"] == pytest.approx(45.0)
    assert angles["frontal_deg"] == pytest.approx(44.5, abs=0.1)
    assert angles["inclination_deg"] == pytest.approx(34.8, abs=0.1)


def test_pose_rows_pair_each_patient_with_its_sinus_axis_and_flag_what_is_missing(tmp_path):
    from ecgcohort.realism.pose import pose_markdown, pose_rows

    for patient, axis, share in (("a", [1.0, 1.0, 1.0], 0.3), ("b", [1.0, 0.0, -1.0], 0.5)):
        (tmp_path / f"{patient}.json").write_text(json.dumps({"patient": patient, "measures": {
            "long_axis": axis, "rv_share_of_diaphragmatic_surface": share}}))
    # a's apex 85 mm left of a midline at x = 10 and 72 % of the way from the notch to the xiphoid
    summary = json.loads((tmp_path / "a.json").read_text())
    summary["landmarks_mm"] = {"jugular_notch": [10.0, 50.0, -200.0], "xiphoid": [10.0, 100.0, -20.0]}
    summary["measures"]["apex_mm"] = [95.0, 40.0, -200.0 + 0.72 * 180.0]
    (tmp_path / "a.json").write_text(json.dumps(summary))
    features = [{"patient": "a", "kind": "sinus", "status": "ok", "qrs_axis_deg": -170.0},
                {"patient": "a", "kind": "lbbb", "status": "ok", "qrs_axis_deg": 0.0},
                {"patient": "b", "kind": "sinus", "status": "flat ECG", "qrs_axis_deg": None}]
    rows = pose_rows([tmp_path / "a.json", tmp_path / "b.json"], features)
    assert [r["long_axis_frontal_deg"] for r in rows] == pytest.approx([45.0, -45.0])
    # the difference wraps into [-180, 180): -170 - 45 = -215 is +145
    assert rows[0]["qrs_minus_long_axis_deg"] == pytest.approx(145.0)
    assert rows[1]["sinus_qrs_axis_deg"] is None and rows[1]["qrs_minus_long_axis_deg"] is None
    assert "1/2 within 2 SD | 38.1° ± 7.8° |" in pose_markdown(rows)
    # transverse: a at 45° lies within Engblom et al.'s 46 ± 2 × 7°, b at 0° (pointing left) not
    assert [r["long_axis_transverse_deg"] for r in rows] == pytest.approx([45.0, 0.0])
    assert "0° to 45° (median 22°); 1/2 within 2 SD | 46° ± 7° |" in pose_markdown(rows)
    assert (rows[0]["apex_left_of_midline_mm"], rows[0]["apex_sternum_fraction"]) == pytest.approx((85.0, 0.72))
    assert rows[1]["apex_left_of_midline_mm"] is None  # no apex or landmarks: not measured
    assert "| apex left of the midsternal line | 85 to 85 mm (median 85 mm); 1/1 within 80-90 mm | 8 to 9 cm |" \
        in pose_markdown(rows)
    assert [r["rv_share_of_diaphragmatic_surface"] for r in rows] == [0.3, 0.5]
    assert "| RV share of the diaphragmatic surface | 0.30 to 0.50 (median 0.40) |" in pose_markdown(rows)
    assert "RV share of the sternocostal" not in pose_markdown(rows)  # not measured: no line
    (tmp_path / "c.json").write_text(json.dumps({"patient": "c", "measures": {}}))
    with pytest.raises(ValueError, match="patient c"):
        pose_rows([tmp_path / "c.json"], features)


def test_the_pass_rate_by_transverse_angle_counts_each_band_from_the_criteria_rows(tmp_path):
    from ecgcohort.realism.pose import pose_markdown, pose_rows
    from ecgcohort.realism.report import read_csv_rows
    from ecgcohort.realism.summary import write_csv

    # long axes 30, 45, 50 and 60 degrees from the left towards anterior (y forward), level
    angles = {"a": 30.0, "b": 45.0, "c": 50.0, "d": 60.0}
    for patient, angle in angles.items():
        axis = [np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle)), 0.0]
        (tmp_path / f"{patient}.json").write_text(json.dumps({"patient": patient, "measures": {"long_axis": axis}}))
    # b fails one healthy criterion; c's LBBB failure does not count; d has no sinus beat judged
    results = [{"patient": p, "scenario": "sinus", "criteria_set": "healthy", "criterion": name, "passed": ok}
               for p, name, ok in (("a", "qrs_duration", True), ("a", "qrs_axis", True), ("b", "qrs_duration", True),
                                   ("b", "septal_activation", False), ("c", "qrs_duration", True))]
    results.append({"patient": "c", "scenario": "lbbb", "criteria_set": "lbbb", "criterion": "strauss_qrs_duration",
                    "passed": False})
    rows = pose_rows([tmp_path / f"{p}.json" for p in angles], [], results)
    assert [r["long_axis_transverse_deg"] for r in rows] == pytest.approx(list(angles.values()))
    assert [r["sinus_every_criterion"] for r in rows] == [True, False, True, None]
    page = pose_markdown(rows)
    # Engblom et al.'s 46 +/- 7 degrees: a below 39, b and c between 39 and 53; d unjudged
    assert "| below 39° (mean − 1 SD) | 1 (33 %) | 16 % | 1/1 (100 %) |" in page
    assert "| 39° to 53° | 2 (67 %) | 68 % | 1/2 (50 %) |" in page
    assert "| 53° and above (mean + 1 SD) | 0 (0 %) | 16 % | none |" in page
    # read back from the recorded CSV, the flags give the same table; a table without them, none
    write_csv(rows, tmp_path / "pose.csv")
    assert pose_markdown(read_csv_rows(tmp_path / "pose.csv")) == page
    assert "transverse angle |" not in pose_markdown([{k: v for k, v in r.items() if k != "sinus_every_criterion"}
                                                      for r in rows])


def test_a_septal_q_just_under_its_threshold_fails_and_says_so():
    from ecgcohort.realism.criteria import _septal_activation

    row = {"initial_deflection_V1": 1, "q_mv_V5": 0.0291, "q_mv_V6": 0.04923}
    outcome = _septal_activation(row, {"septal_q_min_mv": 0.05}, {})
    # printed to the digit that decides: 0.049 mV, not a rounded 0.05 that reads as a pass
    assert outcome.passed is False and "V6 0.049 mV" in outcome.value
    assert _septal_activation(dict(row, q_mv_V6=0.0501), {"septal_q_min_mv": 0.05}, {}).passed
