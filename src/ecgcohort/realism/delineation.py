"""Delineation of one simulated beat: global QRS onset and offset, T peak and T end.

Our ECGs are single beats that start at the earliest stimulus (no P wave, no preceding beat),
sampled at 1 ms. Two methods, chosen by measurement on the default cohort (docs/methods/realism.md):

* **QRS onset and offset** from the spatial velocity of the eight independent leads
  (I, II, V1-V6): √(Σ (dV/dt)²), smoothed over a few ms. The onset is the first sample above a
  small fraction of its QRS maximum; the offset is the last sample above a threshold before
  the trough that separates the QRS from the T wave (the larger of a fixed fraction of the
  maximum and a multiple of the trough, so that T waves steep enough to rival the QRS's tail,
  as in paced beats, do not extend it). One global onset and offset for all leads (earliest
  onset to latest offset over simultaneous leads, as the AHA/ACCF/HRS recommendations part I,
  Kligfield et al. 2007, ask of computerised measurement).
* **T peak and T end** from ecgdeli (the Python port of KIT's ECGdeli), run on a record of
  identical beats: the beat is given an isoelectric segment in front and repeated at the
  cycle length, because ECGdeli's detector needs several beats and a baseline. Its R-peak
  detection is bypassed with reference R peaks at the spatial-velocity maximum (ECGdeli's
  own detector takes the large T waves of our sinus beats for QRS complexes).

ECGdeli's own QRS boundaries are not used: it places them 20-25 ms before its Q and after its
S peak inside R ± 50 ms, so it cannot delineate the 150-250 ms complexes of paced beats
(measured: onsets 40-140 ms late).

A T wave still under way at the end of the record (more than ``t_residual_max`` of the beat's
T amplitude left at the last sample in any lead) is flagged: its peak time and end are not
measured (NaN), since ECGdeli would only find those of the taper that closes the record for it
(on the default cohort's paced beats their T peaks moved by up to 35 ms with the number of beats
tiled). An
ECG that cannot be delineated at all — flat, mostly noise, a spatial velocity without a peak
that stands out, a "QRS" outside ``qrs_duration_limits_ms`` — raises
:class:`DelineationError` naming the reason.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np

from ecgcohort.ecg.leads import LEAD_NAMES

log = logging.getLogger(__name__)

#: The leads whose spatial velocity delineates the QRS: the eight independent ones (the other
#: four are linear combinations of I and II).
INDEPENDENT_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: Identical beats in the record handed to ECGdeli; the middle one is read.
TILED_BEATS = 6
#: Frequency above which a record's power counts as noise for the delineability check, Hz.
NOISE_CUTOFF_HZ = 40.0


class DelineationError(ValueError):
    """The ECG cannot be delineated; the message says why."""


def settings_values(settings_class: type, section: Mapping[str, Any], kind: str,
                    pair_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A settings dataclass's keyword arguments from a config section: unknown keys are an error
    naming them, the ``pair_keys`` (YAML lists) become tuples of floats."""
    known = {f.name for f in fields(settings_class)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"unknown {kind} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = dict(section)
    for key in pair_keys:
        if key in values:
            values[key] = tuple(float(v) for v in values[key])
    return values


@dataclass(frozen=True)
class DelineationSettings:
    """Settings of :func:`delineate` (config section ``realism.delineation``)."""

    qrs_onset_fraction: float = 0.02
    qrs_offset_fraction: float = 0.05
    qrs_offset_trough_factor: float = 2.0
    qrs_search_ms: float = 350.0
    trough_search_ms: float = 200.0
    smoothing_ms: float = 5.0
    isoelectric_ms: float = 200.0
    taper_ms: float = 100.0
    st_segment_ms: float = 40.0
    t_residual_max: float = 0.05
    min_amplitude_mv: float = 0.05
    max_noise_fraction: float = 0.5
    min_velocity_prominence: float = 2.0
    qrs_duration_limits_ms: tuple[float, float] = (40.0, 300.0)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> DelineationSettings:
        """From the config section; unknown keys are an error naming them."""
        return cls(**settings_values(cls, section, "delineation", pair_keys=("qrs_duration_limits_ms",)))


@dataclass(frozen=True)
class Delineation:
    """Fiducial times of one beat (ms on the record's time axis) and the T-wave check.

    ``t_start_ms`` is where the T wave is looked for (a fixed ST segment after QRS offset).
    ``t_offset_ms`` is NaN when the T wave is not finished at the end of the record
    (``t_unfinished``); ``t_residual_fraction`` is the largest level left at the last sample in
    any lead as a fraction of the beat's T amplitude (its largest lead's). ``baseline_mv`` (12,)
    is each lead's level at QRS onset, the reference of every amplitude.
    """

    qrs_onset_ms: float
    qrs_offset_ms: float
    t_start_ms: float
    t_peak_ms: float
    t_offset_ms: float
    t_residual_fraction: float
    t_unfinished: bool
    baseline_mv: np.ndarray

    @property
    def qrs_duration_ms(self) -> float:
        return self.qrs_offset_ms - self.qrs_onset_ms


def check_leads(leads_mv: np.ndarray, times_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The leads (12, T) in mV and times (T,) in ms as float arrays, and the sampling interval
    (ms); ValueError for a wrong shape, non-finite samples or an uneven time axis."""
    leads = np.asarray(leads_mv, dtype=np.float64)
    times = np.asarray(times_ms, dtype=np.float64)
    if leads.ndim != 2 or leads.shape[0] != len(LEAD_NAMES) or times.shape != (leads.shape[1],):
        raise ValueError(f"expected 12 leads (12, T) and times (T,), got {leads.shape} and {times.shape}")
    if leads.shape[1] < 10:
        raise DelineationError(f"the record has {leads.shape[1]} samples")
    if not np.all(np.isfinite(leads)):
        raise DelineationError("the ECG has non-finite samples")
    steps = np.diff(times)
    dt = float(steps[0])
    if dt <= 0 or not np.allclose(steps, dt, rtol=1e-6, atol=1e-9):
        raise ValueError("the time axis is not evenly sampled")
    return leads, times, dt


def spatial_velocity(leads_mv: np.ndarray, dt_ms: float, smoothing_ms: float) -> np.ndarray:
    """√(Σ (dV/dt)²) over :data:`INDEPENDENT_LEADS` (T,), mV/ms, moving-averaged over
    ``smoothing_ms``."""
    from scipy.ndimage import uniform_filter1d

    rows = [LEAD_NAMES.index(name) for name in INDEPENDENT_LEADS]
    velocity = np.sqrt((np.gradient(leads_mv[rows], dt_ms, axis=1) ** 2).sum(axis=0))
    width = max(1, int(round(smoothing_ms / dt_ms)))
    return uniform_filter1d(velocity, width, mode="nearest")


def qrs_boundaries(leads_mv: np.ndarray, dt_ms: float, settings: DelineationSettings) -> tuple[int, int, int]:
    """Sample indices of the QRS onset, the spatial-velocity maximum and the QRS offset."""
    velocity = spatial_velocity(leads_mv, dt_ms, settings.smoothing_ms)
    search = max(2, min(velocity.size, int(round(settings.qrs_search_ms / dt_ms))))
    peak = int(np.argmax(velocity[:search]))
    top = velocity[peak]
    prominence = top / max(float(np.median(velocity)), np.finfo(float).tiny)
    if prominence < settings.min_velocity_prominence:
        raise DelineationError(f"no QRS complex: the spatial velocity's maximum is {prominence:.1f} times its median "
                               f"(at least {settings.min_velocity_prominence:g})")
    onset = int(np.argmax(velocity[:peak + 1] >= settings.qrs_onset_fraction * top))
    end = min(velocity.size, peak + max(2, int(round(settings.trough_search_ms / dt_ms))))
    trough = peak + int(np.argmin(velocity[peak:end]))
    threshold = min(1.0, max(settings.qrs_offset_fraction,
                             settings.qrs_offset_trough_factor * velocity[trough] / top)) * top
    above = np.flatnonzero(velocity[peak:trough + 1] >= threshold)
    offset = peak + int(above[-1])
    return onset, peak, offset


def noise_fraction(leads_mv: np.ndarray, dt_ms: float) -> float:
    """Fraction of the record's power (all leads, means removed) above :data:`NOISE_CUTOFF_HZ`."""
    centred = leads_mv - leads_mv.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(centred, axis=1)) ** 2
    frequencies_hz = np.fft.rfftfreq(centred.shape[1], d=dt_ms * 1e-3)
    total = float(power.sum())
    return float(power[:, frequencies_hz > NOISE_CUTOFF_HZ].sum() / total) if total > 0 else 0.0


def tiled_record(leads_mv: np.ndarray, dt_ms: float, cycle_length_ms: float, settings: DelineationSettings,
                 beats: int = TILED_BEATS) -> tuple[np.ndarray, int, int]:
    """The beat repeated ``beats`` times: per beat an isoelectric segment of ``isoelectric_ms``
    (the level at the first sample), the beat, a raised-cosine taper from its last sample back
    to the isoelectric level over ``taper_ms``, and the isoelectric level up to the period
    (the cycle length, or longer if the beat does not fit). Returns the record (12, N), the
    offset of the beat inside each period and the period, in samples."""
    n_leads, n_samples = leads_mv.shape
    lead_in = int(round(settings.isoelectric_ms / dt_ms))
    taper = max(1, int(round(settings.taper_ms / dt_ms)))
    period = max(int(round(cycle_length_ms / dt_ms)), lead_in + n_samples + taper)
    level = leads_mv[:, :1]
    one = np.repeat(level, period, axis=1)
    one[:, lead_in:lead_in + n_samples] = leads_mv
    weights = 0.5 * (1.0 + np.cos(np.pi * np.arange(1, taper + 1) / taper))
    one[:, lead_in + n_samples:lead_in + n_samples + taper] = level + (leads_mv[:, -1:] - level) * weights
    return np.tile(one, beats), lead_in, period


def ecgdeli_t_wave(leads_mv: np.ndarray, dt_ms: float, cycle_length_ms: float, r_peak: int,
                   settings: DelineationSettings) -> tuple[float, float]:
    """ECGdeli's consensus T peak and T end of the beat (sample indices into the beat, NaN
    where ECGdeli found none), from a tiled record with reference R peaks at ``r_peak``."""
    import ecgdeli

    record, lead_in, period = tiled_record(leads_mv, dt_ms, cycle_length_ms, settings)
    reference = np.zeros((TILED_BEATS, len(ecgdeli.FPT_COLUMNS)))
    # the MATLAB table is 1-based; its R column is the sixth
    reference[:, ecgdeli.Wave.R_PEAK] = np.arange(TILED_BEATS) * period + lead_in + r_peak + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            annotation = ecgdeli.annotate(record.T, 1000.0 / dt_ms, waves="QRST",
                                          reference=ecgdeli.FPT.from_matlab(reference))
        except ecgdeli.MatlabError as error:  # the port's own failures, e.g. an index out of the record
            raise DelineationError(f"ECGdeli failed on the T wave: {error}") from error
    for warning in caught:
        log.info("ecgdeli: %s", warning.message)
    beat = TILED_BEATS // 2
    positions = annotation.consensus.positions
    if positions.shape[0] != TILED_BEATS:
        raise DelineationError(f"ecgdeli kept {positions.shape[0]} of the {TILED_BEATS} reference beats")
    start = beat * period + lead_in

    def sample(wave: int) -> float:
        value = int(positions[beat, wave])
        return float(value - start) if value != ecgdeli.MISSING else float("nan")

    return sample(ecgdeli.Wave.T_PEAK), sample(ecgdeli.Wave.T_OFF)


def t_wave_residual(leads_mv: np.ndarray, baseline_mv: np.ndarray, t_start: int) -> float:
    """Largest |last sample − baseline| over the leads as a fraction of the beat's T amplitude
    (the largest |V − baseline| of any lead from ``t_start`` on); 0 without T. One scale for
    the beat: a lead whose own T is small (a biphasic V2 of 0.1 mV) would otherwise count the
    microvolts the action potentials' tails leave at the record's end as an unfinished T."""
    window = np.abs(leads_mv[:, t_start:] - baseline_mv[:, None])
    if window.shape[1] == 0:
        return float("nan")
    amplitude = float(window.max())
    if amplitude <= 0:
        return 0.0
    return float(np.abs(leads_mv[:, -1] - baseline_mv).max() / amplitude)


def delineate(leads_mv: np.ndarray, times_ms: np.ndarray, cycle_length_ms: float,
              settings: DelineationSettings = DelineationSettings()) -> Delineation:
    """Delineate a beat of 12 leads (12, T) in mV sampled at ``times_ms`` (T,), ms, starting at
    (or shortly before) QRS onset; the beat repeats every ``cycle_length_ms`` for ECGdeli.

    Raises :class:`DelineationError` for an ECG that is flat, mostly noise or has no QRS of a
    plausible duration.
    """
    leads, times, dt = check_leads(leads_mv, times_ms)
    largest = float(np.ptp(leads, axis=1).max())
    if largest < settings.min_amplitude_mv:
        raise DelineationError(f"flat ECG: largest peak-to-peak {largest:.3g} mV < {settings.min_amplitude_mv} mV")
    noise = noise_fraction(leads, dt)
    if noise > settings.max_noise_fraction:
        raise DelineationError(f"noise: {100 * noise:.0f} % of the power above {NOISE_CUTOFF_HZ:g} Hz "
                               f"(at most {100 * settings.max_noise_fraction:.0f} %)")
    onset, peak, offset = qrs_boundaries(leads, dt, settings)
    duration = (offset - onset) * dt
    low, high = settings.qrs_duration_limits_ms
    if not low <= duration <= high:
        raise DelineationError(f"no QRS complex: spatial velocity gives {duration:.0f} ms, outside {low:g}-{high:g} ms")
    baseline = leads[:, onset].copy()
    t_start = min(leads.shape[1] - 1, offset + int(round(settings.st_segment_ms / dt)))
    # the record starts with every cell at rest (φ = L·V_rest = 0): the level a finished T wave
    # returns to, where the level at QRS onset already carries the first millisecond of the QRS
    residual = t_wave_residual(leads, leads[:, 0], t_start)
    unfinished = bool(residual > settings.t_residual_max)
    t_peak, t_end = ecgdeli_t_wave(leads, dt, cycle_length_ms, peak, settings)
    last = leads.shape[1] - 1
    # an unfinished T wave's peak and end would be those of the record's closing taper
    if unfinished or not t_end <= last:
        t_end = float("nan")
    if unfinished or not t_peak <= last:
        t_peak = float("nan")

    def to_ms(index: float) -> float:
        return float(times[0] + index * dt) if np.isfinite(index) else float("nan")

    return Delineation(qrs_onset_ms=to_ms(onset), qrs_offset_ms=to_ms(offset), t_start_ms=to_ms(t_start),
                       t_peak_ms=to_ms(t_peak),
                       t_offset_ms=to_ms(t_end), t_residual_fraction=residual, t_unfinished=unfinished,
                       baseline_mv=baseline)
