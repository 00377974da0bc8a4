"""Conductivity tensors of the pseudo-bidomain model (paper sec. 2.1), SI units (S/m)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from ecgcohort.structure_tensors import fibre_structure


@dataclass(frozen=True)
class Conductivities:
    """Intra-/extracellular fibre and cross-fibre conductivities, the torso's and the blood
    pools', S/m (blood only where the mesh tags blood pools apart).

    Defaults are the paper's (Potse 2006, Bradley): 3.0/0.3/3.0/1.2 and 0.6 mS/cm; blood 0.7 S/m
    (Geddes & Baker 1967).
    """

    intra_fibre: float = 0.3
    intra_cross: float = 0.03
    extra_fibre: float = 0.3
    extra_cross: float = 0.12
    torso: float = 0.06
    blood: float = 0.7

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"conductivity '{name}' must be finite and > 0 S/m, got {value!r}")

    @classmethod
    def from_config(cls, section: Mapping[str, float]) -> "Conductivities":
        """From the ``leadfield.conductivity_s_per_m`` config mapping (same key names)."""
        return cls(**{key: float(value) for key, value in section.items()})


def _transversely_isotropic(fibres: np.ndarray, along: float, across: float) -> np.ndarray:
    return across * np.eye(3)[None] + (along - across) * fibre_structure(fibres)


def intracellular_tensors(fibres: np.ndarray, sigma: Conductivities) -> np.ndarray:
    """(n_cells, 3, 3) G_i = σ_i,t I + (σ_i,f − σ_i,t) A, S/m, with A = f⊗f for fibres per cell
    (n_cells, 3) or the cells' structure tensors (n_cells, 3, 3); see
    :func:`ecgcohort.structure_tensors.fibre_structure`."""
    return _transversely_isotropic(fibres, sigma.intra_fibre, sigma.intra_cross)


def bulk_tensors(fibres: np.ndarray, sigma: Conductivities) -> np.ndarray:
    """(n_cells, 3, 3) G = G_i + G_e, S/m."""
    return _transversely_isotropic(fibres, sigma.intra_fibre + sigma.extra_fibre,
                                   sigma.intra_cross + sigma.extra_cross)
