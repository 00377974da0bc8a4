"""Fibre structure tensors, what conductivity and conduction tensors are built from. Apart
from :mod:`ecgcohort.fem` (numba, scipy: about 0.5 s to import) because jobs that only read a
patient's fibres (the dataset part) use them too."""

from __future__ import annotations

import numpy as np


def fibre_structure(fibres: np.ndarray) -> np.ndarray:
    """Per-cell fibre structure tensors A (n_cells, 3, 3), dimensionless: f fᵀ for fibre
    vectors ``fibres`` (n_cells, 3; any non-zero length, either sign), or ``fibres`` itself when
    given as (n_cells, 3, 3) tensors — the cell averages of f fᵀ that
    :class:`ecgcohort.fibers.MyocardialFibres` stores, symmetric with trace 1. A transversely
    isotropic tensor with values a along and b across the fibre is then b I + (a − b) A, exact
    over the cell for the cell's mean fibre distribution rather than its centroid's fibre."""
    f = np.asarray(fibres, dtype=np.float64)
    if f.ndim == 3 and f.shape[1:] == (3, 3):
        trace = np.einsum("cii->c", f)
        if not np.all(np.isfinite(f)) or np.any(np.abs(trace - 1.0) > 1e-6):
            raise ValueError("fibre structure tensors must be finite with trace 1")
        return f
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"fibres must have shape (n_cells, 3) or (n_cells, 3, 3), got {f.shape}")
    norms = np.linalg.norm(f, axis=1)
    bad = ~np.isfinite(norms) | (norms <= 1e-12)
    if np.any(bad):
        raise ValueError(f"{int(bad.sum())} fibre vectors have zero (or non-finite) length")
    f = f / norms[:, None]
    return f[:, :, None] * f[:, None, :]
