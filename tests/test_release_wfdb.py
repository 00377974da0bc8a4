"""WFDB export of the cohort's 12-lead ECGs (ecgcohort.release.wfdb_export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
import xarray as xr

from ecgcohort.release.wfdb_export import export_wfdb, read_wfdb_ecg

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
PATIENTS = ["train-0000", "test-0001"]
SPLITS = ["train", "test"]
SEXES, AGES = ["female", "male"], [43.3, 71.8]
SCENARIOS = ["sinus", "pacing-00"]
RIPPLE_LEAD = 7          # V2 carries a 5 µV ripple on top of its waves
RIPPLE_V = 5e-6


def gaussian_waves_v(time_s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth ECG-like lead (V): a sum of 4 Gaussians of ±0.1..3 mV."""
    signal = np.zeros_like(time_s)
    for _ in range(4):
        amplitude_v = rng.choice([-1.0, 1.0]) * rng.uniform(0.1e-3, 3e-3)
        centre_s, width_s = rng.uniform(0.05, 0.55), rng.uniform(0.008, 0.06)
        signal += amplitude_v * np.exp(-0.5 * ((time_s - centre_s) / width_s) ** 2)
    return signal


def synthetic_cohort(time_s: np.ndarray | None = None) -> xr.Dataset:
    """2 patients × 2 scenarios × 12 leads × 601 samples at 1 kHz, FEM and pseudo lead ECGs."""
    if time_s is None:
        time_s = np.linspace(0.0, 0.6, 601)
    rng = np.random.default_rng(7)
    shape = (len(PATIENTS), len(SCENARIOS), len(LEADS), time_s.size)
    fem = np.empty(shape)
    pseudo = np.empty(shape)
    for index in np.ndindex(shape[:3]):
        fem[index] = gaussian_waves_v(time_s, rng)
        pseudo[index] = 0.8 * fem[index] + gaussian_waves_v(time_s, rng) * 0.2
    ripple = RIPPLE_V * np.sin(2 * np.pi * 40.0 * time_s)
    fem[:, :, RIPPLE_LEAD] += ripple
    pseudo[:, :, RIPPLE_LEAD] += ripple
    dims = ("patient", "scenario", "lead", "time")
    return xr.Dataset(
        {"lead_ecg": (dims, fem, {"units": "V", "long_name": "lead ECG (FEM lead field)"}),
         "pseudo_lead_ecg": (dims, pseudo, {"units": "V", "long_name": "lead ECG (pseudo)"})},
        coords={"patient": PATIENTS, "split": ("patient", SPLITS), "sex": ("patient", SEXES),
                "age": ("patient", AGES, {"units": "year"}), "scenario": SCENARIOS,
                "lead": LEADS, "time": ("time", time_s, {"units": "s"})},
        attrs={"git_revision": "abc1234", "created": "2025-01-02T03:04:05+00:00"},
    ).chunk({"patient": 1})


@pytest.fixture(scope="module")
def cohort() -> xr.Dataset:
    return synthetic_cohort()


@pytest.fixture(scope="module")
def fem_export(cohort, tmp_path_factory) -> tuple[Path, list[Path]]:
    out_dir = tmp_path_factory.mktemp("wfdb_fem")
    return out_dir, export_wfdb(cohort, out_dir, source="fem")


def test_round_trip_through_wfdb_rdrecord(cohort, fem_export):
    out_dir, headers = fem_export
    expected = sorted(out_dir / p / f"{s}.hea" for p in PATIENTS for s in SCENARIOS)
    assert headers == expected
    for patient_index, patient in enumerate(PATIENTS):
        # the record files only: no temporary left behind
        assert sorted(f.name for f in (out_dir / patient).iterdir()) == sorted(
            f"{s}{ext}" for s in SCENARIOS for ext in (".dat", ".hea"))
        for scenario_index, scenario in enumerate(SCENARIOS):
            record = wfdb.rdrecord(str(out_dir / patient / scenario))
            assert record.record_name == scenario
            assert record.fs == 1000.0
            assert record.sig_name == LEADS
            assert record.units == ["mV"] * 12
            assert record.fmt == ["16"] * 12
            assert record.baseline == [0] * 12
            gains = np.asarray(record.adc_gain)
            assert np.all(gains == gains[0])
            step_mv = 1.0 / gains[0]
            comments = "\n".join(record.comments)
            assert f"patient: {patient}" in comments
            assert f"split: {SPLITS[patient_index]}" in comments
            # spelled as the PhysioNet/CinC Challenge headers spell them
            assert f"Age: {AGES[patient_index]}" in comments
            assert f"Sex: {SEXES[patient_index].capitalize()}" in comments
            assert f"scenario: {scenario}" in comments
            assert "source: FEM lead field" in comments
            assert "ecgcohort abc1234 2025-01-02T03:04:05+00:00" in comments
            assert f"quantisation step (uV): {1e3 * step_mv:.9g}" in comments
            input_mv = cohort["lead_ecg"].values[patient_index, scenario_index].T * 1e3
            # most of the int16 range is used, and the 5 µV ripple is resolved
            digital = wfdb.rdrecord(str(out_dir / patient / scenario), physical=False).d_signal
            assert 0.9 * 32767 <= np.abs(digital).max() <= 32767
            assert 1e3 * step_mv < RIPPLE_V * 1e6 / 20
            error_mv = np.abs(record.p_signal - input_mv)
            assert error_mv.max() <= 0.5 * step_mv * (1 + 1e-6)


def test_read_wfdb_ecg_returns_volts(cohort, fem_export):
    out_dir, headers = fem_export
    for patient_index, patient in enumerate(PATIENTS):
        for scenario_index, scenario in enumerate(SCENARIOS):
            header = out_dir / patient / f"{scenario}.hea"
            signals_v, fs_hz, leads, comments = read_wfdb_ecg(header)
            again, _, _, _ = read_wfdb_ecg(header.with_suffix(""))
            np.testing.assert_array_equal(again, signals_v)
            expected_v = cohort["lead_ecg"].values[patient_index, scenario_index]
            assert signals_v.shape == (12, 601)
            step_v = float(comments["quantisation step (uV)"]) * 1e-6
            assert np.abs(signals_v - expected_v).max() <= 0.5 * step_v * (1 + 1e-6)
            assert fs_hz == 1000.0
            assert leads == LEADS
            assert comments["patient"] == patient
            assert comments["split"] == SPLITS[patient_index]
            assert (comments["Sex"].lower(), float(comments["Age"])) == (SEXES[patient_index], AGES[patient_index])
            assert comments["scenario"] == scenario
            assert float(comments["time of first sample (s)"]) == 0.0
            assert comments["generated by"] == "ecgcohort abc1234 2025-01-02T03:04:05+00:00"


def test_pseudo_source_writes_pseudo_values(cohort, tmp_path):
    headers = export_wfdb(cohort, tmp_path, source="pseudo", patients=["test-0001"])
    assert headers == sorted(tmp_path / "test-0001" / f"{s}.hea" for s in SCENARIOS)
    fem_v = cohort["lead_ecg"].values[1]
    pseudo_v = cohort["pseudo_lead_ecg"].values[1]
    for scenario_index, header in enumerate(tmp_path / "test-0001" / f"{s}.hea"
                                            for s in SCENARIOS):
        signals_v, _, _, comments = read_wfdb_ecg(header)
        assert comments["source"] == "pseudo lead field"
        step_v = float(comments["quantisation step (uV)"]) * 1e-6
        assert np.abs(signals_v - pseudo_v[scenario_index]).max() <= 0.5 * step_v * (1 + 1e-6)
        assert np.abs(signals_v - fem_v[scenario_index]).max() > 1e-4
    assert not (tmp_path / "train-0000").exists()


def test_non_uniform_time_axis_is_refused(tmp_path):
    time_s = np.linspace(0.0, 0.6, 601)
    time_s[300] += 0.0004
    with pytest.raises(ValueError, match="not uniform"):
        export_wfdb(synthetic_cohort(time_s), tmp_path)
    assert not list(tmp_path.rglob("*.hea"))


def test_nan_sample_names_patient_and_scenario_and_no_record(tmp_path):
    cohort = synthetic_cohort().load()
    cohort["lead_ecg"].values[1, 1, 4, 123] = np.nan
    with pytest.raises(ValueError, match="non-finite") as error:
        export_wfdb(cohort, tmp_path)
    assert "test-0001" in str(error.value) and "pacing-00" in str(error.value)
    assert not (tmp_path / "test-0001" / "pacing-00.hea").exists()
    assert not (tmp_path / "test-0001" / "pacing-00.dat").exists()


def test_unknown_source_is_refused(cohort, tmp_path):
    with pytest.raises(ValueError, match="'ventricular'"):
        export_wfdb(cohort, tmp_path, source="ventricular")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fs_hz, gain", [(1000.0, 1234.5), (1234.56789, 32000.0), (500.00000001, 7.25)])
def test_the_record_writer_writes_the_bytes_wfdb_wrsamp_writes(tmp_path, fs_hz, gain):
    """Our format-16 writer (wfdb.wrsamp's field checks cost 60 ms a record, 50 minutes at
    10,000 patients) against wfdb's own: header and signal files equal byte for byte, for
    negative and extreme samples, a fractional frequency and comments."""
    from ecgcohort.release.wfdb_export import write_format16_record

    rng = np.random.default_rng(int(fs_hz))
    digital = rng.integers(-32767, 32768, size=(601, 12)).astype(np.int16)
    digital[0, :3] = (-32767, 32767, 0)
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    comments = ["patient: train-0001", "quantisation step (uV): 0.81"]
    (tmp_path / "ours").mkdir(), (tmp_path / "wfdb").mkdir()
    write_format16_record(tmp_path / "ours", "sinus", digital, gain, fs_hz, names, comments)
    wfdb.wrsamp("sinus", fs=fs_hz, units=["mV"] * 12, sig_name=names, d_signal=digital, fmt=["16"] * 12,
                adc_gain=[gain] * 12, baseline=[0] * 12, comments=comments, write_dir=str(tmp_path / "wfdb"))
    for suffix in (".hea", ".dat"):
        ours, theirs = (tmp_path / folder / f"sinus{suffix}" for folder in ("ours", "wfdb"))
        assert ours.read_bytes() == theirs.read_bytes(), suffix
    assert np.array_equal(wfdb.rdrecord(str(tmp_path / "ours" / "sinus"), physical=False).d_signal, digital)
