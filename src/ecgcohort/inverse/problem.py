"""What every inverse-ECG method of the benchmark shares: the heart-surface mesh it
reconstructs on, the reconstruction it returns, and the error every method raises.

Every method is one function with the signature of paper 2's comparison,

    method(transfer R (m, n), bspm Y (m, T), surface: SurfaceMesh, times (T,), config) -> Reconstruction

where ``surface.points`` are the n heart-surface nodes in the Aliev–Panfilov model's length
unit, ``times`` are in its (dimensionless) time unit, and ``config`` is the method's config
section plus the run's ``seed`` (int), ``workdir`` (a folder for checkpoints) and ``model``
(the Aliev–Panfilov parameters, a mapping of :class:`~ecgcohort.inverse.surface.AlievPanfilov`
fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class InverseError(ValueError):
    """Input the inverse benchmark cannot use: an open heart surface, a transfer matrix that
    fails R·1 = 1, a time grid too short for a stencil, an unknown method..."""


@dataclass(frozen=True)
class SurfaceMesh:
    """A closed triangle mesh: ``points`` (n, 3) float64, ``faces`` (F, 3) int64 node indices."""

    points: np.ndarray
    faces: np.ndarray

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float64)
        faces = np.asarray(self.faces, dtype=np.int64)
        if points.ndim != 2 or points.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
            raise InverseError(f"a surface mesh needs points (n, 3) and faces (F, 3), got {points.shape}, "
                               f"{faces.shape}")
        if faces.size and (faces.min() < 0 or faces.max() >= len(points)):
            raise InverseError("a face refers to a point that does not exist")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "faces", faces)

    def scaled(self, factor: float) -> "SurfaceMesh":
        """The same mesh with coordinates multiplied by ``factor`` (a change of length unit)."""
        return SurfaceMesh(self.points * factor, self.faces)


@dataclass
class Reconstruction:
    """Û (n, T) and what the method wants recorded: ``info`` (JSON-able: chosen λ, epochs,
    final losses), ``history`` (per-epoch rows of a trained method), ``seconds`` of wall time."""

    estimate: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def named_entry(cls, key: str, name: str, section) -> object:
    """A dataclass ``cls`` with a ``name`` field built from one entry of the named mapping
    ``inverse.<key>``; an unknown key raises :class:`InverseError` naming the entry."""
    section = dict(section or {})
    unknown = set(section) - (set(cls.__dataclass_fields__) - {"name"})
    if unknown:
        raise InverseError(f"inverse.{key}.{name}: unknown key(s) {', '.join(sorted(unknown))}")
    return cls(name=name, **section)
