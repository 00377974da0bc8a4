"""QRS and T waves of a 12-lead ECG: the polarity checks that tell a physiological
repolarisation (T waves concordant with the QRS) from the discordant T waves of a model
without APD heterogeneity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The T wave is taken from this long after the end of ventricular activation, ms (the ST
#: segment between carries the plateau's small gradients, not the T wave).
ST_SEGMENT_MS = 60.0


@dataclass(frozen=True)
class WavePolarity:
    """Per lead: the signed largest deflection of the QRS (same units as the ECG) and the
    T-wave area (units × ms); ``concordant`` where their signs agree."""

    qrs_peak: np.ndarray
    t_area: np.ndarray

    @property
    def concordant(self) -> np.ndarray:
        return np.sign(self.qrs_peak) == np.sign(self.t_area)


def wave_polarity(leads: np.ndarray, times_ms: np.ndarray, first_activation_ms: float, last_activation_ms: float,
                  st_segment_ms: float = ST_SEGMENT_MS) -> WavePolarity:
    """QRS peaks in [first, last activation] and T-wave areas (trapezoid) from the last
    activation + ``st_segment_ms`` to the end of the record, of leads (L, T) sampled at
    ``times_ms``."""
    x = np.asarray(leads, dtype=np.float64)
    t = np.asarray(times_ms, dtype=np.float64)
    qrs = (t >= first_activation_ms) & (t <= last_activation_ms)
    t_wave = t >= last_activation_ms + st_segment_ms
    if qrs.sum() < 2 or t_wave.sum() < 2:
        raise ValueError(f"the record ({t[0]:.0f}-{t[-1]:.0f} ms) holds no QRS ({first_activation_ms:.0f}-"
                         f"{last_activation_ms:.0f} ms) or no T wave after it")
    window = x[:, qrs]
    peak = window[np.arange(len(x)), np.argmax(np.abs(window), axis=1)]
    area = np.trapezoid(x[:, t_wave], t[t_wave], axis=1)
    return WavePolarity(peak, area)
