"""Activation maps on disk: one ``.npz`` per (patient, scenario), nodes in the order of the
patient's ``fibres.npz`` (the myocardium submesh)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgcohort.io import atomic_path

if TYPE_CHECKING:  # the action potential imports numba (0.5 s), which reading a map does not need
    from ecgcohort.conduction.action_potential import ActionPotential, PotentialSampler


@dataclass
class ActivationMap:
    """Activation times τ (ms, per myocardial node) of one scenario, with the per-node APD
    scale of the transmembrane-potential model, the stimulus sites (mm) and times (ms), and the
    per-node upstroke spread (ms, :func:`ecgcohort.conduction.action_potential.upstroke_spread_ms`;
    None: none). A map solved on a refined eikonal grid also holds the times of the grid's other
    nodes (``refined_activation_ms``, ms, the edge midpoints of ``refinements`` refinements in
    :func:`ecgcohort.fem.refine_tetrahedra`'s order; None: solved on the mesh) and the factor
    its upstroke spreads were computed with (``upstroke_spread``), so that the ECG can carry
    V_m on that grid (:mod:`ecgcohort.ecg.source_grid`)."""

    scenario: str
    kind: str
    activation_ms: np.ndarray
    apd_scale: np.ndarray
    sites_mm: np.ndarray
    site_times_ms: np.ndarray
    upstroke_ms: np.ndarray | None = None
    refined_activation_ms: np.ndarray | None = None
    refinements: int = 0
    upstroke_spread: float = 0.0

    @property
    def grid_activation_ms(self) -> np.ndarray:
        """Times (ms) of every node of the grid the map was solved on: the mesh's, then the rest."""
        if self.refined_activation_ms is None:
            return np.asarray(self.activation_ms, dtype=np.float64)
        return np.concatenate([np.asarray(self.activation_ms, dtype=np.float64),
                               np.asarray(self.refined_activation_ms, dtype=np.float64)])

    @property
    def total_activation_ms(self) -> float:
        """Time from the first to the last activated node, ms."""
        return float(np.ptp(self.activation_ms))

    def transmembrane_potential_mv(self, times_ms: np.ndarray, template: ActionPotential,
                                   out: np.ndarray | None = None) -> np.ndarray:
        """V_m (n_nodes, n_times) in mV on this map's nodes at ``times_ms`` (written into the
        buffer ``out`` when given, see :func:`transmembrane_potential`)."""
        from ecgcohort.conduction.action_potential import transmembrane_potential

        return transmembrane_potential(self.activation_ms, times_ms, template, self.apd_scale,
                                       upstroke_ms=self.upstroke_ms, out=out)

    def potential_sampler(self, template: ActionPotential) -> PotentialSampler:
        """This map's V_m prepared for sampling by blocks of nodes and times (mV, ms; see
        :func:`ecgcohort.conduction.action_potential.potential_sampler`)."""
        from ecgcohort.conduction.action_potential import potential_sampler

        return potential_sampler(self.activation_ms, template, self.apd_scale, upstroke_ms=self.upstroke_ms)


def save_activation(activation: ActivationMap, path: str | Path) -> Path:
    """Write atomically (a killed job leaves no complete-looking file), uncompressed: a 1.2 mm
    default map's float64 times and APD scales deflate by 7 % in 0.4 s (five per patient). The
    grid's other times are kept as float32 (1e-5 ms at 150 ms; 1.9 MB a map at the default)."""
    refined = {} if activation.refined_activation_ms is None else {
        "refined_activation_ms": np.asarray(activation.refined_activation_ms, dtype=np.float32),
        "refinements": np.array(int(activation.refinements))}
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            np.savez(stream, scenario=np.array(activation.scenario), kind=np.array(activation.kind),
                     activation_ms=activation.activation_ms, apd_scale=activation.apd_scale,
                     sites_mm=np.asarray(activation.sites_mm, dtype=float).reshape(-1, 3),
                     site_times_ms=np.asarray(activation.site_times_ms, dtype=float).reshape(-1),
                     upstroke_ms=(np.zeros_like(activation.activation_ms) if activation.upstroke_ms is None
                                  else activation.upstroke_ms),
                     upstroke_spread=np.array(float(activation.upstroke_spread)), **refined)
    return Path(path)


def load_activation(path: str | Path) -> ActivationMap:
    """Read a map written by :func:`save_activation`."""
    with np.load(path) as data:
        return ActivationMap(scenario=str(data["scenario"]), kind=str(data["kind"]),
                             activation_ms=data["activation_ms"], apd_scale=data["apd_scale"],
                             sites_mm=data["sites_mm"], site_times_ms=data["site_times_ms"],
                             upstroke_ms=data["upstroke_ms"] if "upstroke_ms" in data.files else None,
                             refined_activation_ms=(data["refined_activation_ms"]
                                                    if "refined_activation_ms" in data.files else None),
                             refinements=int(data["refinements"]) if "refinements" in data.files else 0,
                             upstroke_spread=(float(data["upstroke_spread"])
                                              if "upstroke_spread" in data.files else 0.0))
