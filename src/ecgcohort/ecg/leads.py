"""The standard 12-lead ECG from unipolar electrode potentials (any unit, e.g. V).

Limb leads (Einthoven) I = LA − RA, II = LL − RA, III = LL − LA; augmented limb leads
(Goldberger) aVR = RA − (LA + LL)/2, aVL = LA − (RA + LL)/2, aVF = LL − (RA + LA)/2;
precordial leads V1…V6 against Wilson's central terminal (RA + LA + LL)/3.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Leads in the conventional order, rows of :data:`LEAD_WEIGHTS`.
LEAD_NAMES: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: The 9 independent electrodes of the 12-lead ECG, columns of :data:`LEAD_WEIGHTS`.
LEAD_ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")


def _weights() -> np.ndarray:
    w = np.zeros((len(LEAD_NAMES), len(LEAD_ELECTRODES)))
    ra, la, ll = 0, 1, 2
    w[0, [ra, la]] = -1.0, 1.0                   # I
    w[1, [ra, ll]] = -1.0, 1.0                   # II
    w[2, [la, ll]] = -1.0, 1.0                   # III
    w[3, [ra, la, ll]] = 1.0, -0.5, -0.5         # aVR
    w[4, [ra, la, ll]] = -0.5, 1.0, -0.5         # aVL
    w[5, [ra, la, ll]] = -0.5, -0.5, 1.0         # aVF
    for k in range(6):                           # V1..V6 - Wilson's central terminal
        w[6 + k, [ra, la, ll]] = -1.0 / 3.0
        w[6 + k, 3 + k] = 1.0
    w.setflags(write=False)
    return w


#: (12, 9) zero-sum lead weights: leads = LEAD_WEIGHTS @ potentials[LEAD_ELECTRODES].
LEAD_WEIGHTS: np.ndarray = _weights()


def lead_electrode_indices(electrode_names: Sequence[str]) -> np.ndarray:
    """Positions of RA, LA, LL, V1…V6 in ``electrode_names``; ValueError naming any missing one."""
    names = [str(name) for name in electrode_names]
    missing = [name for name in LEAD_ELECTRODES if name not in names]
    if missing:
        raise ValueError(f"the 12-lead ECG needs electrode(s) {', '.join(missing)}, "
                         f"missing from the {len(names)} electrodes given")
    return np.array([names.index(name) for name in LEAD_ELECTRODES])


def standard_leads(potentials: np.ndarray, electrode_names: Sequence[str]) -> np.ndarray:
    """The 12 leads (12, T) in the units of ``potentials`` (E, T), rows in :data:`LEAD_NAMES`."""
    phi = np.asarray(potentials, dtype=np.float64)
    if phi.ndim != 2 or phi.shape[0] != len(electrode_names):
        raise ValueError(f"potentials must be (n_electrodes={len(electrode_names)}, n_times), got {phi.shape}")
    return LEAD_WEIGHTS @ phi[lead_electrode_indices(electrode_names)]
