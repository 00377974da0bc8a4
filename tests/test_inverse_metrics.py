"""The inverse benchmark's metrics beyond paper 2's: activation times from electrograms on a
synthetic planar front, the spatial and temporal correlations, localisation, and the noise
models' signal-to-noise ratio."""

from __future__ import annotations

import numpy as np
import pytest

from ecgcohort.inverse.metrics import (activation_errors, activation_times, localisation_error, spatial_correlation,
                                       temporal_correlation)
from ecgcohort.inverse.noise import NoiseModel, measured_snr_db, noisy_maps
from ecgcohort.inverse.problem import InverseError

SPEED_MM_PER_MS, WIDTH_MS, DT_MS = 0.6, 3.0, 2.0


def planar_front(x_mm: np.ndarray, times_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unipolar electrograms (n, T) of a front along x arriving at 10 + x / v ms: a smooth
    negative deflection centred on the arrival, and the arrival times."""
    arrival = 10.0 + x_mm / SPEED_MM_PER_MS
    phase = (times_ms[None, :] - arrival[:, None]) / WIDTH_MS
    return -np.tanh(phase) + 0.3 * np.exp(-phase ** 2 / 20), arrival


def test_activation_times_of_a_planar_front_are_its_arrival_within_a_sample():
    x = np.linspace(0.0, 60.0, 41)
    times = np.arange(0.0, 200.0, DT_MS)
    signals, arrival = planar_front(x, times)
    detected = activation_times(signals, times)
    assert np.abs(detected - arrival).max() < DT_MS
    # the sub-sample refinement does better than the sampling grid alone
    assert np.abs(detected - arrival).mean() < 0.25 * DT_MS
    upstroke = activation_times(-signals, times, polarity="transmembrane")
    np.testing.assert_allclose(upstroke, detected)
    mae, correlation = activation_errors(detected, arrival)
    assert mae < 0.25 * DT_MS and correlation > 0.999
    # the site of earliest activation: the node at x = 0
    points = np.column_stack([x, np.zeros_like(x), np.zeros_like(x)])
    assert localisation_error(detected, points, np.array([0.0, 3.0, 4.0])) == pytest.approx(5.0)


def test_correlations_per_instant_and_per_node():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(30, 20))
    np.testing.assert_allclose(spatial_correlation(2 * u + 1, u), 1.0)
    np.testing.assert_allclose(temporal_correlation(-u, u), -1.0)
    flat = u.copy()
    flat[:, 3] = 0.5
    assert np.isnan(spatial_correlation(flat, u)[3]) and np.isfinite(spatial_correlation(flat, u)[4])


@pytest.mark.parametrize("snr", [40.0, 20.0])
def test_noise_models_add_the_configured_signal_to_noise_ratio(snr):
    rng = np.random.default_rng(1)
    positions = rng.normal(size=(150, 3)) * 100.0
    times = np.linspace(0.0, 500.0, 400)
    clean = np.sin(times / 40.0)[None, :] * rng.normal(size=(150, 1))
    for model in (NoiseModel("white", snr_db=snr), NoiseModel("shared", snr_db=snr, correlated=0.5)):
        noisy = noisy_maps(clean, positions, times, model, np.random.default_rng(2))
        assert measured_snr_db(clean, noisy) == pytest.approx(snr, abs=0.3)
    shared = noisy_maps(clean, positions, times, NoiseModel("c", snr_db=snr, correlated=1.0), np.random.default_rng(3))
    independent = noisy_maps(clean, positions, times, NoiseModel("w", snr_db=snr), np.random.default_rng(3))
    near = np.argsort(np.linalg.norm(positions - positions[0], axis=1))[1]
    corr = lambda y: np.corrcoef((y - clean)[0], (y - clean)[near])[0, 1]  # noqa: E731
    assert corr(shared) > corr(independent) + 0.2
    wander = noisy_maps(clean, positions, times, NoiseModel("bw", snr_db=60.0, baseline_wander=0.5),
                        np.random.default_rng(4)) - clean
    # a slow drift: most of its power below 1 Hz
    spectrum = np.abs(np.fft.rfft(wander, axis=1)) ** 2
    frequencies = np.fft.rfftfreq(times.size, d=(times[1] - times[0]) * 1e-3)
    assert spectrum[:, frequencies <= 2.0].sum() > 0.9 * spectrum.sum()
    with pytest.raises(InverseError, match="noise_models.bad.correlated"):
        NoiseModel("bad", correlated=1.5)
    with pytest.raises(InverseError, match="zero"):
        noisy_maps(np.zeros((3, 4)), positions[:3], times[:4], NoiseModel("w"), np.random.default_rng(0))


def test_the_summary_per_axis_holds_the_settings_that_differ_in_one_field_alone():
    import pandas as pd

    from ecgcohort.inverse.models import Mismatch
    from ecgcohort.inverse.noise import NoiseModel
    from ecgcohort.inverse.report import markdown_table, setting_axes, with_setting_fields

    mismatches = {"matched": Mismatch("matched", crime=True), "none": Mismatch("none"),
                  "shift_5": Mismatch("shift_5", shift_mm=5.0), "shift_10": Mismatch("shift_10", shift_mm=10.0),
                  "mixed": Mismatch("mixed", shift_mm=5.0, rotation_deg=5.0)}
    noises = {"snr30": NoiseModel("snr30", snr_db=30.0), "snr20": NoiseModel("snr20", snr_db=20.0),
              "wander": NoiseModel("wander", snr_db=20.0, baseline_wander=0.1)}
    settings = [("matched", "snr30"), ("none", "snr30"), ("shift_5", "snr30"), ("shift_10", "snr30"),
                ("shift_10", "snr20"), ("shift_10", "wander"), ("mixed", "snr30")]
    metrics = {f"{m}_{s}": 0.5 for m in ("re", "cc", "spatial_cc", "temporal_cc", "activation_mae_ms", "activation_cc",
                                          "localisation_mm", "seconds") for s in ("mean", "sd")}
    summary = pd.DataFrame([{"source": "sinus", "method": method, "setting": f"{mismatch}/{noise}", "mismatch": mismatch,
                             "noise": noise, "runs": 2, "patients": 2, **metrics, "re_mean": 0.1 * i}
                            for method in ("stre", "tikhonov_2nd") for i, (mismatch, noise) in enumerate(settings)])
    summary = with_setting_fields(summary, mismatches, noises)
    axes = setting_axes(summary)
    # the shift axis: none, 5 and 10 mm at 30 dB (not the crime row, not the rotated one); the
    # rotation axis: 0 and 5 degrees with the heart 5 mm off; the SNR axis: 10 mm at 20 and 30 dB
    # white (not with wander); no electrode axis
    assert set(axes) == {"heart shift (mm)", "heart rotation (°)", "SNR (dB)"}
    rotation = axes["heart rotation (°)"]
    assert list(rotation[rotation.method == "stre"].setting) == ["shift_5/snr30", "mixed/snr30"]
    shift = axes["heart shift (mm)"]
    assert list(shift[shift.method == "stre"].setting) == ["none/snr30", "shift_5/snr30", "shift_10/snr30"]
    assert list(shift[shift.method == "stre"].value) == [0.0, 5.0, 10.0]
    snr = axes["SNR (dB)"]
    assert list(snr[snr.method == "tikhonov_2nd"].setting) == ["shift_10/snr20", "shift_10/snr30"]
    table = markdown_table(summary)
    assert "**heart shift (mm), sinus**" in table and "| stre | 0.10 ± 0.50" in table
    # a summary recorded without the fields (before they were stored) has no axes, and says so by omission
    assert setting_axes(summary.drop(columns=["shift_mm"])) == {}
    assert "Per axis" not in markdown_table(summary.drop(columns=["crime"]))


def test_failed_repeats_are_counted_named_and_never_averaged():
    """A repeat the zero-map detector failed has empty metrics and ``status`` 'failed: ...': the
    summary counts it in ``failed`` and its means come from the scored repeats alone; the table
    marks the V_m reconstructions and shows the count. A summary recorded before the columns
    existed renders as it did."""
    import pandas as pd

    from ecgcohort.inverse.jobs import METRIC_COLUMNS
    from ecgcohort.inverse.report import failed_runs, markdown_table, summarize

    base = {column: 0.5 for column in METRIC_COLUMNS}
    rows = [{**base, "patient": "test-0000", "source": "pacing-00", "method": "eand_arn", "setting": "shift/snr30",
             "mismatch": "shift", "noise": "snr30", "repeat": repeat, "quantity": "excitation", "status": "ok",
             "re": re} for repeat, re in enumerate((0.4, 0.6))]
    rows.append({**rows[0], "repeat": 2, "status": "failed: zero map: |U| = 0.001", "re": float("nan"),
                 "cc": float("nan")})
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    assert failed_runs(metrics).tolist() == [False, False, True]
    summary = summarize(metrics)
    assert summary.loc[0, "runs"] == 3 and summary.loc[0, "failed"] == 1
    assert summary.loc[0, "re_mean"] == pytest.approx(0.5) and summary.loc[0, "quantity"] == "excitation"
    table = markdown_table(summary)
    assert "| eand_arn (V_m) | shift/snr30 | 0.500 ± 0.141 |" in table and table.splitlines()[2].endswith("| 3 (1) | 1 |")
    old = summarize(metrics.drop(columns=["status", "quantity"])).drop(columns=["failed", "quantity"])
    assert "failed" not in markdown_table(old).splitlines()[0] and "(V_m)" not in markdown_table(old)


def test_the_paper_setting_table_sets_each_row_beside_the_papers_figures():
    """benchmarks/inverse_paper_setting.py's recorded table: our RE / MSE / CC and paper 2's
    published ones for the same method and σ; methods without training print no epochs."""
    import pandas as pd

    from ecgcohort.inverse.report import PAPER, PAPER_SETTING_COLUMNS, paper_setting_markdown

    table = pd.DataFrame([
        {"sigma": 0.01, "method": "eand_arn", "repeat": 0, "re": 0.04321, "mse": 0.00123, "cc": 0.99876,
         "activation_mae_ms": 3.25, "seconds": 61.0, "epochs": 544.0, "stopped": "noise level", "status": "ok"},
        {"sigma": 0.1, "method": "tikhonov_2nd", "repeat": 0, "re": 0.0941, "mse": 0.0047, "cc": 0.9877,
         "activation_mae_ms": 8.0, "seconds": 0.5, "epochs": float("nan"), "stopped": float("nan"), "status": "ok"}],
        columns=list(PAPER_SETTING_COLUMNS))
    rows = paper_setting_markdown(table).splitlines()[2:]
    assert rows[0] == ("| 0.01 | eand_arn | 0 | 0.0432 | 0.00123 | 0.9988 | 3.2 | 61.0 | 544 | noise level | ok | "
                       f"{PAPER['eand_arn'][0.01]['re']:.4g} / 0.0031 / 0.9919 |")
    assert rows[1].endswith("| 8.0 | 0.5 | – | – | ok | 0.4625 / 0.0681 / 0.8401 |")
    with pytest.raises(ValueError, match=r"lacks columns \['stopped'\]"):
        paper_setting_markdown(table.drop(columns="stopped"))
