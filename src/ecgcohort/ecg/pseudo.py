"""The pseudo lead field (paper eq. 11): the lead field of an electrode in an infinite,
homogeneous, isotropic conductor σ0, Z*(x) = 1 / (4π σ0 |e − x|) (Ω), which needs no torso.

Its gradient ∇Z*(x) = (e − x) / (4π σ0 |e − x|³) (Ω/m) plugs into the same lead matrix as the
FEM ∇Z, so FEM and pseudo-lead-field ECGs differ only in ∇Z. Lengths in m, σ0 in S/m.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from ecgcohort.leadfield.matrix import gradient_operator, lead_matrix

#: Electrodes per block in :func:`pseudo_lead_matrix` (bounds the (E, cells, 4) temporaries).
_ELECTRODE_BLOCK = 16


def _offsets(electrodes_m: np.ndarray, points_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, P, 3) e − x and (E, P) |e − x|, m; a point on an electrode is an error (Z* is singular)."""
    e = np.asarray(electrodes_m, dtype=np.float64).reshape(-1, 3)
    x = np.asarray(points_m, dtype=np.float64).reshape(-1, 3)
    offset = e[:, None, :] - x[None, :, :]
    distance = np.linalg.norm(offset, axis=-1)
    if np.any(distance <= 0.0):
        j, p = np.argwhere(distance <= 0.0)[0]
        raise ValueError(f"point {p} coincides with electrode {j}: the pseudo lead field is singular there")
    return offset, distance


def _check_sigma(sigma0_s_per_m: float) -> float:
    sigma = float(sigma0_s_per_m)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"torso conductivity must be finite and > 0 S/m, got {sigma0_s_per_m!r}")
    return sigma


def pseudo_lead_field(electrodes_m: np.ndarray, points_m: np.ndarray, sigma0_s_per_m: float) -> np.ndarray:
    """Z* (E, P) in Ω of electrodes (E, 3) at points (P, 3), positions in m."""
    sigma = _check_sigma(sigma0_s_per_m)
    _, distance = _offsets(electrodes_m, points_m)
    return 1.0 / (4.0 * np.pi * sigma * distance)


def pseudo_lead_field_gradient(electrodes_m: np.ndarray, points_m: np.ndarray,
                               sigma0_s_per_m: float) -> np.ndarray:
    """∇_x Z* (E, P, 3) in Ω/m, exact: (e − x) / (4π σ0 |e − x|³)."""
    sigma = _check_sigma(sigma0_s_per_m)
    offset, distance = _offsets(electrodes_m, points_m)
    return offset / (4.0 * np.pi * sigma * distance ** 3)[..., None]


def pseudo_lead_matrix(electrodes_m: np.ndarray, points_m: np.ndarray, tetrahedra: np.ndarray,
                       intracellular: np.ndarray, sigma0_s_per_m: float,
                       operator: scipy.sparse.csr_matrix | None = None) -> np.ndarray:
    """(E, N) lead matrix of the pseudo lead field on a P1 myocardium (nodes in m, G_i per cell
    in S/m; ``operator`` its :func:`~ecgcohort.leadfield.matrix.gradient_operator` where already
    built): electrode potentials (V) = result @ V_m (V).

    ∇Z* is taken at each tetrahedron's centroid, i.e. constant per cell like the P1 FEM ∇Z it is
    compared with. The midpoint rule's error on the cell average is of relative order
    (h / |e − x|)², below 1 % for 4 mm elements 40 mm or more from the electrodes (and far
    below for the paper's 0.8 mm); the exact cell average would need Z*'s closed-form surface
    integrals over every face for a correction the FEM ∇Z itself does not resolve.
    """
    points = np.asarray(points_m, dtype=np.float64)
    tets = np.asarray(tetrahedra)
    centroids = points[tets].mean(axis=1)
    electrodes = np.asarray(electrodes_m, dtype=np.float64).reshape(-1, 3)
    operator = gradient_operator(points, tets) if operator is None else operator
    blocks = [lead_matrix(points, tets, intracellular,
                          pseudo_lead_field_gradient(electrodes[a:a + _ELECTRODE_BLOCK], centroids, sigma0_s_per_m),
                          operator)
              for a in range(0, len(electrodes), _ELECTRODE_BLOCK)]
    return np.vstack(blocks) if blocks else np.zeros((0, len(points)))
