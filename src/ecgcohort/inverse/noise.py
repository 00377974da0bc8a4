"""Measurement noise of the inverse benchmark's body-surface maps, set by signal-to-noise ratio.

A :class:`NoiseModel` adds to the clean maps y (m, T):

* white Gaussian noise at ``snr_db`` below the clean maps' RMS (over points and instants);
  a fraction ``correlated`` of its power is spatially correlated instead, with covariance
  exp(−d/ℓ) between points d apart (ℓ = ``correlation_length_mm``) — noise that many electrodes
  share (muscle, contact drift);
* ``baseline_wander`` — a slow sinusoid per point (respiration; 0.15–0.5 Hz, one frequency per
  record, a phase per point), its amplitude that fraction of the clean RMS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from ecgcohort.inverse.problem import InverseError, named_entry

WANDER_HZ = (0.15, 0.5)


@dataclass(frozen=True)
class NoiseModel:
    """One ``inverse.noise_models`` entry."""

    name: str
    snr_db: float = 30.0
    correlated: float = 0.0
    correlation_length_mm: float = 50.0
    baseline_wander: float = 0.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.snr_db):
            raise InverseError(f"inverse.noise_models.{self.name}.snr_db must be finite, got {self.snr_db!r}")
        if not 0.0 <= self.correlated <= 1.0:
            raise InverseError(f"inverse.noise_models.{self.name}.correlated must be in [0, 1], got {self.correlated!r}")
        if not self.correlation_length_mm > 0:
            raise InverseError(f"inverse.noise_models.{self.name}.correlation_length_mm must be > 0, got "
                               f"{self.correlation_length_mm!r}")
        if not self.baseline_wander >= 0:
            raise InverseError(f"inverse.noise_models.{self.name}.baseline_wander must be >= 0, got "
                               f"{self.baseline_wander!r}")

    @classmethod
    def from_config(cls, name: str, section: Mapping[str, Any] | None) -> "NoiseModel":
        return named_entry(cls, "noise_models", name, section)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def noisy_maps(clean: np.ndarray, positions_mm: np.ndarray, times_ms: np.ndarray, model: NoiseModel,
               rng: np.random.Generator) -> np.ndarray:
    """y + noise (m, T) for clean maps y (m, T) at measurement points (m, 3) in mm and instants
    (T,) in ms."""
    clean = np.asarray(clean, dtype=np.float64)
    rms = float(np.sqrt(np.mean(clean ** 2)))
    if not rms > 0:
        raise InverseError("the clean body-surface maps are zero: no signal to set a noise level against")
    sigma = rms * 10.0 ** (-model.snr_db / 20.0)
    noise = np.sqrt(1.0 - model.correlated) * rng.normal(0.0, sigma, size=clean.shape)
    if model.correlated > 0:
        points = np.asarray(positions_mm, dtype=np.float64)
        distance = np.linalg.norm(points[:, None] - points[None], axis=2)
        covariance = np.exp(-distance / model.correlation_length_mm)
        values, vectors = np.linalg.eigh(covariance)
        factor = vectors * np.sqrt(np.clip(values, 0.0, None))
        noise += np.sqrt(model.correlated) * sigma * factor @ rng.normal(size=clean.shape)
    if model.baseline_wander > 0:
        frequency = rng.uniform(*WANDER_HZ)
        phase = rng.uniform(0.0, 2 * np.pi, size=(clean.shape[0], 1))
        seconds = np.asarray(times_ms, dtype=np.float64)[None, :] * 1e-3
        noise += model.baseline_wander * rms * np.sqrt(2.0) * np.sin(2 * np.pi * frequency * seconds + phase)
    return clean + noise


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """10 log10(power of the clean maps / power of the added noise), dB."""
    clean = np.asarray(clean, dtype=np.float64)
    return float(10 * np.log10(np.mean(clean ** 2) / np.mean((np.asarray(noisy) - clean) ** 2)))
