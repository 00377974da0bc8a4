"""Features of a delineated beat: wave amplitudes per lead, intervals, frontal axes, the
precordial transition, voltage indices, fragmentation, high-frequency content, mid-QRS
notching and the T wave at the end of the record.

Every amplitude is measured from the lead's level at QRS onset (the isoelectric reference of
our records, which carry no PR segment), in mV; times in ms; angles in degrees. Definitions:

* R: the largest positive deflection of the QRS; S: its largest negative deflection (the S
  wave, or the depth of a QS complex) — what R/S ratios, the transition, Cornell and
  Sokolow-Lyon use. Q: the depth of an initial negative deflection that a positive one
  (≥ ``wave_min_mv``) follows, else 0.
* Initial deflection: the sign of the first excursion of the QRS beyond ``wave_min_mv``
  (+1 an initial r, −1 an initial q or QS; 0 none) — septal activation.
* Transition: the first precordial lead from which R ≥ S holds through V6 (index 1-6 for
  V1-V6, 7 when R < S in V6).
* T: the signed extremum of the lead from the delineation's T-wave start (a fixed ST segment
  after QRS offset) to the T end (the record's end when the T end is not measured).
* Frontal axes from the net areas of I and aVF over the QRS (T wave): in Einthoven's
  triangle, I = E cos θ and aVF = (√3/2) E sin θ, so θ = atan2(2 aVF / √3, I).
* Turning points: local extrema of the QRS whose prominence is at least
  ``turning_point_prominence_mv`` (a smooth qRs has three).
* High-frequency content (zero-phase 4th-order Butterworth filters on the beat with an
  isoelectric lead-in): the fraction of the QRS energy (all leads) above ``hf_cutoff_hz``, and
  the 150-250 Hz band of the QRS per lead — its peak |V| and its RMS in µV, the largest over
  the leads.
* Mid-QRS notch or slur (Strauss et al. 2011): on the QRS low-passed at ``notch_lowpass_hz``,
  in the window from 40 ms after QRS onset to half the QRS duration, a local minimum of the
  slope along the lead's main deflection below ``notch_slope_ratio`` times the steepest slope
  of the same direction both before and after it (a notch reverses the slope, a slur only
  slows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ecgcohort.ecg.leads import LEAD_NAMES
from ecgcohort.realism.delineation import Delineation, settings_values

LIMB_LEADS: tuple[str, ...] = LEAD_NAMES[:6]
PRECORDIAL_LEADS: tuple[str, ...] = LEAD_NAMES[6:]
#: The leads Strauss et al. (2011) inspect for mid-QRS notching or slurring in LBBB.
STRAUSS_NOTCH_LEADS: tuple[str, ...] = ("V1", "V2", "V5", "V6", "I", "aVL")
#: Strauss's notch window starts this long after QRS onset, ms.
STRAUSS_NOTCH_START_MS = 40.0
#: The per-lead features, each a column ``{name}_{lead}`` of the feature table.
PER_LEAD_FEATURES: tuple[str, ...] = ("r_mv", "s_mv", "q_mv", "rs_ratio", "t_mv", "initial_deflection",
                                      "turning_points")


@dataclass(frozen=True)
class FeatureSettings:
    """Settings of :func:`beat_features` (config section ``realism.features``)."""

    wave_min_mv: float = 0.02
    turning_point_prominence_mv: float = 0.05
    hf_cutoff_hz: float = 100.0
    hf_band_hz: tuple[float, float] = (150.0, 250.0)
    notch_lowpass_hz: float = 40.0
    notch_slope_ratio: float = 0.5
    filter_lead_in_ms: float = 200.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> FeatureSettings:
        """From the config section; unknown keys are an error naming them."""
        return cls(**settings_values(cls, section, "feature", pair_keys=("hf_band_hz",)))


@dataclass(frozen=True)
class QrsWaves:
    """R, S and Q amplitudes (mV, ≥ 0) and the initial deflection (+1, −1, 0) of one lead's QRS."""

    r_mv: float
    s_mv: float
    q_mv: float
    initial_deflection: int


def qrs_waves(qrs_mv: np.ndarray, wave_min_mv: float) -> QrsWaves:
    """R, S, Q and the initial deflection of one lead's QRS (samples, mV from the QRS-onset level)."""
    x = np.asarray(qrs_mv, dtype=np.float64)
    beyond = np.flatnonzero(np.abs(x) >= wave_min_mv)
    initial = int(np.sign(x[beyond[0]])) if beyond.size else 0
    q = 0.0
    if initial < 0:
        positive = np.flatnonzero(x >= wave_min_mv)
        if positive.size:
            q = float(-x[:positive[0]].min())
    return QrsWaves(r_mv=float(max(x.max(), 0.0)), s_mv=float(max(-x.min(), 0.0)), q_mv=q, initial_deflection=initial)


def transition_index(r_mv: np.ndarray, s_mv: np.ndarray) -> int:
    """1-6: the first of V1-V6 (R and S given in that order, mV) from which R ≥ S through V6;
    7 when R < S in V6."""
    below = np.flatnonzero(np.asarray(r_mv) < np.asarray(s_mv))
    return int(below[-1]) + 2 if below.size else 1


def turning_points(qrs_mv: np.ndarray, prominence_mv: float) -> int:
    """Local maxima and minima of a QRS (mV) with at least ``prominence_mv`` prominence."""
    from scipy.signal import find_peaks

    x = np.asarray(qrs_mv, dtype=np.float64)
    return int(find_peaks(x, prominence=prominence_mv)[0].size + find_peaks(-x, prominence=prominence_mv)[0].size)


def frontal_axis_deg(lead_i: float, lead_avf: float) -> float:
    """Frontal-plane axis (degrees, −180 to 180, +90 pointing to the feet) from the net
    deflections (or areas) of leads I and aVF; NaN when both are zero."""
    if lead_i == 0 and lead_avf == 0:
        return float("nan")
    return float(np.degrees(np.arctan2(2.0 * lead_avf / np.sqrt(3.0), lead_i)))


def angle_between_deg(a_deg: float, b_deg: float) -> float:
    """The unsigned angle between two directions, 0-180 degrees."""
    return float(abs((a_deg - b_deg + 180.0) % 360.0 - 180.0))


def has_mid_qrs_notch(qrs_mv: np.ndarray, dt_ms: float, slope_ratio: float) -> bool:
    """Strauss's mid-QRS notch or slur in one (low-passed) lead's QRS (mV, from onset to offset):
    a local minimum of the slope along the main deflection inside 40 ms after onset … half the
    QRS, below ``slope_ratio`` × the steepest slope of that direction before and after it."""
    x = np.asarray(qrs_mv, dtype=np.float64)
    main = 1.0 if x.max() >= -x.min() else -1.0
    slope = main * np.gradient(x, dt_ms)
    start = int(round(STRAUSS_NOTCH_START_MS / dt_ms))
    stop = x.size // 2
    for k in range(max(start, 1), min(stop, x.size - 1)):
        if not (slope[k] <= slope[k - 1] and slope[k] < slope[k + 1]):
            continue
        before, after = slope[:k].max(), slope[k + 1:].max()
        if before > 0 and after > 0 and slope[k] < slope_ratio * min(before, after):
            return True
    return False


def _filtered(leads_mv: np.ndarray, dt_ms: float, lead_in: int, kind: str,
              corners_hz: float | tuple[float, float]) -> np.ndarray:
    """Zero-phase 4th-order Butterworth of the leads after an isoelectric lead-in of ``lead_in``
    samples (the level at the first sample); the lead-in is cut off again."""
    from scipy.signal import butter, sosfiltfilt

    padded = np.concatenate([np.repeat(leads_mv[:, :1], lead_in, axis=1), leads_mv], axis=1)
    sos = butter(4, corners_hz, btype=kind, fs=1000.0 / dt_ms, output="sos")
    return sosfiltfilt(sos, padded, axis=1)[:, lead_in:]


def beat_features(leads_mv: np.ndarray, dt_ms: float, delineation: Delineation, cycle_length_ms: float,
                  settings: FeatureSettings = FeatureSettings()) -> dict[str, float | int | bool | str]:
    """Every feature of one delineated beat (12, T) in mV sampled every ``dt_ms``, on the time
    axis of the delineation (its first sample at 0 ms). Scalar features, then per lead
    ``{feature}_{lead}`` for :data:`PER_LEAD_FEATURES`."""
    leads = np.asarray(leads_mv, dtype=np.float64)
    n = leads.shape[1]
    index = {name: k for k, name in enumerate(LEAD_NAMES)}
    onset = int(round(delineation.qrs_onset_ms / dt_ms))
    offset = int(round(delineation.qrs_offset_ms / dt_ms))
    relative = leads - delineation.baseline_mv[:, None]
    qrs = relative[:, onset:offset + 1]
    t_start = int(round(delineation.t_start_ms / dt_ms))
    t_stop = n if not np.isfinite(delineation.t_offset_ms) else min(n, int(round(delineation.t_offset_ms / dt_ms)) + 1)
    t_window = relative[:, t_start:max(t_stop, t_start + 1)]

    waves = [qrs_waves(row, settings.wave_min_mv) for row in qrs]
    t_extremum = t_window[np.arange(len(LEAD_NAMES)), np.argmax(np.abs(t_window), axis=1)]
    per_lead: dict[str, np.ndarray] = {
        "r_mv": np.array([w.r_mv for w in waves]),
        "s_mv": np.array([w.s_mv for w in waves]),
        "q_mv": np.array([w.q_mv for w in waves]),
        "t_mv": t_extremum,
        "initial_deflection": np.array([w.initial_deflection for w in waves]),
        "turning_points": np.array([turning_points(row, settings.turning_point_prominence_mv) for row in qrs]),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        per_lead["rs_ratio"] = np.where(per_lead["s_mv"] > 0, per_lead["r_mv"] / per_lead["s_mv"],
                                        np.where(per_lead["r_mv"] > 0, np.inf, np.nan))

    qrs_area = np.trapezoid(qrs, dx=dt_ms, axis=1)
    t_area = np.trapezoid(t_window, dx=dt_ms, axis=1)
    qrs_axis = frontal_axis_deg(qrs_area[index["I"]], qrs_area[index["aVF"]])
    t_axis = frontal_axis_deg(t_area[index["I"]], t_area[index["aVF"]])

    precordial = [index[name] for name in PRECORDIAL_LEADS]
    transition = transition_index(per_lead["r_mv"][precordial], per_lead["s_mv"][precordial])

    lead_in = int(round(settings.filter_lead_in_ms / dt_ms))
    high = _filtered(relative, dt_ms, lead_in, "highpass", settings.hf_cutoff_hz)[:, onset:offset + 1]
    band = _filtered(relative, dt_ms, lead_in, "bandpass", settings.hf_band_hz)[:, onset:offset + 1] * 1e3
    qrs_energy = float((qrs ** 2).sum())
    smooth = _filtered(relative, dt_ms, lead_in, "lowpass", settings.notch_lowpass_hz)[:, onset:offset + 1]
    notched = [name for name in STRAUSS_NOTCH_LEADS
               if has_mid_qrs_notch(smooth[index[name]], dt_ms, settings.notch_slope_ratio)]

    r, s = per_lead["r_mv"], per_lead["s_mv"]
    qt = delineation.t_offset_ms - delineation.qrs_onset_ms
    features: dict[str, float | int | bool | str] = {
        "qrs_onset_ms": delineation.qrs_onset_ms,
        "qrs_offset_ms": delineation.qrs_offset_ms,
        "qrs_duration_ms": delineation.qrs_duration_ms,
        "t_peak_ms": delineation.t_peak_ms,
        "t_offset_ms": delineation.t_offset_ms,
        "qt_ms": qt,
        # Fridericia: QT / RR^(1/3), RR in s - equal to QT at 60 bpm
        "qtc_ms": qt / np.cbrt(cycle_length_ms / 1000.0),
        "t_residual_fraction": delineation.t_residual_fraction,
        "t_unfinished": delineation.t_unfinished,
        "qrs_axis_deg": qrs_axis,
        "t_axis_deg": t_axis,
        "qrs_t_angle_deg": angle_between_deg(qrs_axis, t_axis),
        "transition_lead": PRECORDIAL_LEADS[transition - 1] if transition <= len(PRECORDIAL_LEADS) else "none",
        "transition_index": transition,
        "cornell_mv": float(r[index["aVL"]] + s[index["V3"]]),
        "sokolow_lyon_mv": float(s[index["V1"]] + max(r[index["V5"]], r[index["V6"]])),
        "hf_fraction_above_cutoff": float((high ** 2).sum() / qrs_energy) if qrs_energy > 0 else float("nan"),
        "hf_band_peak_uv": float(np.abs(band).max()),
        "hf_band_rms_uv": float(np.sqrt((band ** 2).mean(axis=1)).max()),
        "turning_points_max": int(per_lead["turning_points"].max()),
        "turning_points_median": float(np.median(per_lead["turning_points"])),
        "notched_leads": " ".join(notched),
        "notched_lead_count": len(notched),
    }
    for feature in PER_LEAD_FEATURES:
        for name, value in zip(LEAD_NAMES, per_lead[feature]):
            features[f"{feature}_{name}"] = int(value) if feature in ("initial_deflection", "turning_points") else float(value)
    return features
