"""A patient's inputs to the ECG stage as files: its electrode table and its lead-field chunks.
Apart from :mod:`ecgcohort.ecg.forward` so that a job that only reads them (the dataset part)
imports neither numba nor scipy (about 1 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# the electrode table is the anatomy stage's; read here by the ECG stage's jobs
from ecgcohort.anatomy.electrode_csv import ElectrodeTable, read_electrode_table  # noqa: F401
from ecgcohort.io import npz_members


def read_lead_field_chunks(paths: Sequence[str | Path], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The lead-field chunks of one patient, electrodes concatenated in chunk order.

    Returns ``electrode_names`` (E,) and each of ``keys`` (arrays stacked along the electrode
    axis; ``stats_json`` as an array of one string per chunk). Only the requested arrays are read.
    ``grad_cells`` of a chunk written without them (``leadfield.cell_gradient_electrodes``
    ``standard``: (E, 0, 3)) are NaN rows.
    """
    if not paths:
        raise ValueError("no lead-field chunks given")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("electrode_names", *keys)}
    for path in paths:
        # stored members come as memory maps: only their headers are read here
        try:
            chunk = npz_members(path, list(parts))
        except KeyError as missing:
            raise ValueError(f"lead-field chunk {missing.args[0]}") from None
        for name in parts:
            parts[name].append(np.atleast_1d(chunk[name]))
    if "grad_cells" in parts:
        parts["grad_cells"] = _cells_filled(parts["grad_cells"])
    out = {name: _concatenated(values) for name, values in parts.items()}
    out["electrode_names"] = out["electrode_names"].astype(str)
    return out


def _cells_filled(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Chunks' ``grad_cells``, those without cells (E_k, 0, 3) replaced by NaN rows of the
    others' cell count."""
    counts = {a.shape[1] for a in arrays if a.shape[1]}
    if len(counts) > 1:
        raise ValueError(f"lead-field chunks hold grad_cells of different cell counts {sorted(counts)}")
    if not counts or all(a.shape[1] for a in arrays):
        return arrays
    cells = counts.pop()
    return [a if a.shape[1] else np.full((a.shape[0], cells, *a.shape[2:]), np.nan, dtype=a.dtype) for a in arrays]


def _concatenated(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The arrays joined along their first axis, each memory-mapped one read straight from its
    file into its rows of the result: one copy by the kernel instead of a page fault per 4 kB
    (590 MB of paper-size chunks in 0.4 s rather than 1.2 s)."""
    if len({(a.dtype, a.shape[1:]) for a in arrays}) != 1 or not all(
            isinstance(a, np.memmap) and a.flags.c_contiguous for a in arrays):
        return np.concatenate(arrays)
    out = np.empty((sum(a.shape[0] for a in arrays), *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    start = 0
    for array in arrays:
        rows = out[start:start + array.shape[0]]
        with open(array.filename, "rb") as stream:
            stream.seek(array.offset)
            if stream.readinto(memoryview(rows).cast("B")) != rows.nbytes:
                raise ValueError(f"{array.filename} ends inside an array of {array.shape}")
        start += array.shape[0]
    return out
