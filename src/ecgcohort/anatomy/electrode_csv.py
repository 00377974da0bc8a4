"""A patient's electrode table as written by the anatomy stage (``electrodes.csv``), read with
the standard library: the jobs that only read it (lead fields, dataset part, ECGs) import
neither pandas nor scipy for it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ElectrodeTable:
    """A patient's electrodes (``electrodes.csv``): names, kinds, positions (mm) and normalised
    torso coordinates (x ∈ [−1, 1], y, z ∈ [0, 1])."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    positions_mm: np.ndarray
    normalised: np.ndarray


def read_electrode_table(path: str | Path) -> ElectrodeTable:
    """Read ``electrodes.csv`` (columns name, kind, x_mm, y_mm, z_mm, x_norm, y_norm, z_norm)."""
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    columns = ("name", "kind", "x_mm", "y_mm", "z_mm", "x_norm", "y_norm", "z_norm")
    if not rows or any(column not in rows[0] for column in columns):
        raise ValueError(f"{path}: expected the columns {', '.join(columns)} and at least one electrode")
    return ElectrodeTable(
        names=tuple(row["name"] for row in rows), kinds=tuple(row["kind"] for row in rows),
        positions_mm=np.array([[float(row[c]) for c in ("x_mm", "y_mm", "z_mm")] for row in rows]),
        normalised=np.array([[float(row[c]) for c in ("x_norm", "y_norm", "z_norm")] for row in rows]))
