"""Transmembrane-potential template from the ten Tusscher–Panfilov 2006 (TP06) human
ventricular cell model, and V_m(x, t) = U(t − τ(x)) built from it (times in ms, voltages in mV).

The TP06 model is implemented here from the published equations: ten Tusscher K.H.W.J. &
Panfilov A.V., "Alternans and spiral breakup in a human ventricular tissue model",
Am J Physiol Heart Circ Physiol 291:H1088–H1100 (2006), with the 2004 currents
(ten Tusscher, Noble, Noble & Panfilov, AJP Heart 286:H1573, 2004) that it keeps.  It has 19
states: V, K_i, Na_i, Ca_i, Ca_ss, Ca_SR, the RyR recovery variable R̄ (the four-state RyR
Markov model reduced as in the paper, open probability O quasi-steady) and 12 gates.
Gates are advanced with Rush–Larsen, V, the concentrations and R̄ with forward Euler.
Concentrations use the paper's instantaneous-buffering (buffer-factor) formulation.

Units follow the paper: V mV, t ms, currents pA/pF, concentrations mM, C_m µF, volumes µL.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numba
import numpy as np

from ecgcohort.io import atomic_path

# ---------------------------------------------------------------- physical constants
R_GAS = 8314.472  # mJ/(mol K)
T_KELVIN = 310.0  # K
F_FARADAY = 96485.3415  # C/mol
RTONF = R_GAS * T_KELVIN / F_FARADAY  # mV
FONRT = 1.0 / RTONF  # 1/mV

# ---------------------------------------------------------------- cell geometry
C_M = 0.185  # µF, membrane capacitance
V_C = 0.016404  # µL, cytoplasmic volume
V_SR = 0.001094  # µL, sarcoplasmic-reticulum volume
V_SS = 0.00005468  # µL, subspace volume

# ---------------------------------------------------------------- extracellular concentrations
K_O = 5.4  # mM
NA_O = 140.0  # mM
CA_O = 2.0  # mM

# ---------------------------------------------------------------- conductances / currents
G_NA = 14.838  # nS/pF
G_K1 = 5.405  # nS/pF
G_KR = 0.153  # nS/pF
P_KNA = 0.03  # dimensionless, Na permeability of I_Ks relative to K
G_CAL = 3.980e-5  # cm/(ms µF) (L-type Ca permeability)
G_BNA = 2.9e-4  # nS/pF
G_BCA = 5.92e-4  # nS/pF
G_PCA = 0.1238  # pA/pF
K_PCA = 0.0005  # mM
G_PK = 0.0146  # nS/pF
P_NAK = 2.724  # pA/pF
K_MK = 1.0  # mM
K_MNA = 40.0  # mM
K_NACA = 1000.0  # pA/pF
K_SAT = 0.1  # dimensionless
ALPHA_NACA = 2.5  # dimensionless
GAMMA_NACA = 0.35  # dimensionless
KM_CA = 1.38  # mM
KM_NAI = 87.5  # mM

# cell-type specific (paper Table 1 / 2004 model): G_to, G_Ks in nS/pF
G_TO_EPI = 0.294  # nS/pF
G_TO_ENDO = 0.073  # nS/pF
G_TO_M = 0.294  # nS/pF
G_KS_EPI = 0.392  # nS/pF
G_KS_ENDO = 0.392  # nS/pF
G_KS_M = 0.098  # nS/pF

# ---------------------------------------------------------------- calcium handling
K_UP = 0.00025  # mM
V_MAXUP = 0.006375  # mM/ms
V_REL = 0.102  # 1/ms
V_LEAK = 0.00036  # 1/ms
V_XFER = 0.0038  # 1/ms
K1_PRIME = 0.15  # 1/(mM^2 ms)
K2_PRIME = 0.045  # 1/(mM ms)
K3 = 0.060  # 1/ms
K4 = 0.005  # 1/ms
EC = 1.5  # mM
MAX_SR = 2.5  # dimensionless
MIN_SR = 1.0  # dimensionless
BUF_C = 0.2  # mM
K_BUF_C = 0.001  # mM
BUF_SR = 10.0  # mM
K_BUF_SR = 0.3  # mM
BUF_SS = 0.4  # mM
K_BUF_SS = 0.00025  # mM

# ---------------------------------------------------------------- stimulus
STIM_AMPLITUDE = -52.0  # pA/pF
STIM_DURATION = 1.0  # ms

# ---------------------------------------------------------------- state
STATE_NAMES = (
    "V", "K_i", "Na_i", "Ca_i", "Ca_ss", "Ca_SR", "R_bar",  # forward Euler
    "m", "h", "j", "xr1", "xr2", "xs", "r", "s", "d", "f", "f2", "fCass",  # Rush–Larsen
)
N_NONGATE = 7
# Initial state of the CellML version of the epicardial model (close to the 1 Hz limit cycle);
# units: mV, mM, mM, mM, mM, mM, then dimensionless gates.
INITIAL_STATE = (
    -85.23, 136.89, 8.604, 0.000126, 0.00036, 3.64, 0.9073,
    0.00172, 0.7444, 0.7045, 0.00621, 0.4712, 0.0095, 2.42e-8, 0.999998,
    3.373e-5, 0.7888, 0.9755, 0.9953,
)

TEMPLATE_PRE_MS = 20  # ms of rest kept before the stimulus in the template


class CellParameters(NamedTuple):
    """Cell-type dependent TP06 parameters."""

    g_to: float  # nS/pF
    g_ks: float  # nS/pF
    endo_s_gate: bool  # endocardial s-gate kinetics instead of epicardial/M
    g_kr_scale: float = 1.0  # multiplies G_KR (a per-cell APD handle; arrays for many cells)


CELL_TYPES = {
    "epi": CellParameters(G_TO_EPI, G_KS_EPI, False),
    "endo": CellParameters(G_TO_ENDO, G_KS_ENDO, True),
    "m": CellParameters(G_TO_M, G_KS_M, False),
}


class _Maths(NamedTuple):
    """The elementary functions the TP06 equations are written in: math's for one cell, numpy's
    for an array of cells (one equation text for both)."""

    exp: Any
    log: Any
    sqrt: Any
    select: Any  # select(condition, if_true, if_false)


_SCALAR = _Maths(math.exp, math.log, math.sqrt, lambda condition, a, b: a if condition else b)
_ARRAY = _Maths(np.exp, np.log, np.sqrt, np.where)


def tp06_terms(y: np.ndarray | list[float], i_stim: float, cell: CellParameters
               ) -> tuple[list[float], list[float], list[float]]:
    """TP06 right-hand side at state y (order STATE_NAMES) with stimulus i_stim (pA/pF).

    Returns (d/dt of the 7 non-gate states [mV/ms, mM/ms, 1/ms], gate steady states,
    gate time constants [ms]); a gate x obeys dx/dt = (x_inf − x)/tau.
    """
    return _tp06_terms([float(a) for a in y], i_stim, cell, _SCALAR)


def tp06_terms_array(y: np.ndarray, i_stim: np.ndarray | float, cell: CellParameters
                     ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """:func:`tp06_terms` for many cells at once: ``y`` (19, n), ``i_stim`` (n,) or scalar, the
    cell's conductances scalars or (n,) arrays; each term an (n,) array."""
    return _tp06_terms(list(np.asarray(y, dtype=np.float64)), i_stim, cell, _ARRAY)


def _tp06_terms(y: list, i_stim, cell: CellParameters, maths: _Maths):
    (v, k_i, na_i, ca_i, ca_ss, ca_sr, r_bar,
     m, h, j, xr1, xr2, xs, r, s, d, f, f2, fcass) = y
    exp, select = maths.exp, maths.select

    e_k = RTONF * maths.log(K_O / k_i)
    e_na = RTONF * maths.log(NA_O / na_i)
    e_ks = RTONF * maths.log((K_O + P_KNA * NA_O) / (k_i + P_KNA * na_i))
    e_ca = 0.5 * RTONF * maths.log(CA_O / ca_i)

    # ------------------------------------------------------------ currents (pA/pF)
    i_na = G_NA * m * m * m * h * j * (v - e_na)
    vv = v - 15.0
    vv = select(abs(vv) < 1e-7, 1e-7, vv)  # removable singularity of the GHK form
    e2 = exp(2.0 * vv * FONRT)
    i_cal = (G_CAL * d * f * f2 * fcass * 4.0 * vv * F_FARADAY * FONRT
             * (0.25 * ca_ss * e2 - CA_O) / (e2 - 1.0))
    i_to = cell.g_to * r * s * (v - e_k)
    i_kr = G_KR * cell.g_kr_scale * math.sqrt(K_O / 5.4) * xr1 * xr2 * (v - e_k)
    i_ks = cell.g_ks * xs * xs * (v - e_ks)
    a_k1 = 0.1 / (1.0 + exp(0.06 * (v - e_k - 200.0)))
    b_k1 = (3.0 * exp(0.0002 * (v - e_k + 100.0)) + exp(0.1 * (v - e_k - 10.0))) / (1.0 + exp(-0.5 * (v - e_k)))
    i_k1 = G_K1 * math.sqrt(K_O / 5.4) * a_k1 / (a_k1 + b_k1) * (v - e_k)
    ev = exp(GAMMA_NACA * v * FONRT)
    ev1 = exp((GAMMA_NACA - 1.0) * v * FONRT)
    i_naca = (K_NACA * (ev * na_i ** 3 * CA_O - ev1 * NA_O ** 3 * ca_i * ALPHA_NACA)
              / ((KM_NAI ** 3 + NA_O ** 3) * (KM_CA + CA_O) * (1.0 + K_SAT * ev1)))
    i_nak = (P_NAK * K_O / (K_O + K_MK) * na_i / (na_i + K_MNA)
             / (1.0 + 0.1245 * exp(-0.1 * v * FONRT) + 0.0353 * exp(-v * FONRT)))
    i_pca = G_PCA * ca_i / (K_PCA + ca_i)
    i_pk = G_PK * (v - e_k) / (1.0 + exp((25.0 - v) / 5.98))
    i_bna = G_BNA * (v - e_na)
    i_bca = G_BCA * (v - e_ca)

    dv = -(i_na + i_cal + i_to + i_kr + i_ks + i_k1 + i_naca + i_nak + i_pca + i_pk + i_bna + i_bca + i_stim)

    # ------------------------------------------------------------ calcium dynamics (mM/ms)
    k_casr = MAX_SR - (MAX_SR - MIN_SR) / (1.0 + (EC / ca_sr) ** 2)
    k1 = K1_PRIME / k_casr
    k2 = K2_PRIME * k_casr
    d_rbar = -k2 * ca_ss * r_bar + K4 * (1.0 - r_bar)
    o_ryr = k1 * ca_ss * ca_ss * r_bar / (K3 + k1 * ca_ss * ca_ss)
    i_rel = V_REL * o_ryr * (ca_sr - ca_ss)
    i_up = V_MAXUP / (1.0 + K_UP * K_UP / (ca_i * ca_i))
    i_leak = V_LEAK * (ca_sr - ca_i)
    i_xfer = V_XFER * (ca_ss - ca_i)
    buf_i = 1.0 / (1.0 + BUF_C * K_BUF_C / (ca_i + K_BUF_C) ** 2)
    buf_sr = 1.0 / (1.0 + BUF_SR * K_BUF_SR / (ca_sr + K_BUF_SR) ** 2)
    buf_ss = 1.0 / (1.0 + BUF_SS * K_BUF_SS / (ca_ss + K_BUF_SS) ** 2)
    d_cai = buf_i * (-(i_bca + i_pca - 2.0 * i_naca) * C_M / (2.0 * V_C * F_FARADAY)
                     + (i_leak - i_up) * V_SR / V_C + i_xfer)
    d_casr = buf_sr * (i_up - i_rel - i_leak)
    d_cass = buf_ss * (-i_cal * C_M / (2.0 * V_SS * F_FARADAY) + i_rel * V_SR / V_SS - i_xfer * V_C / V_SS)
    d_nai = -(i_na + i_bna + 3.0 * i_nak + 3.0 * i_naca) * C_M / (V_C * F_FARADAY)
    d_ki = -(i_k1 + i_to + i_kr + i_ks - 2.0 * i_nak + i_pk + i_stim) * C_M / (V_C * F_FARADAY)

    # ------------------------------------------------------------ gates (x_inf, tau in ms)
    m_inf = 1.0 / (1.0 + exp((-56.86 - v) / 9.03)) ** 2
    tau_m = (1.0 / (1.0 + exp((-60.0 - v) / 5.0))) * (0.1 / (1.0 + exp((v + 35.0) / 5.0))
                                                      + 0.1 / (1.0 + exp((v - 50.0) / 200.0)))
    h_inf = 1.0 / (1.0 + exp((v + 71.55) / 7.43)) ** 2
    # both branches are evaluated (an array holds cells on both sides of -40 mV); the depolarised
    # cells' a_h and a_j are 0
    depolarised = v >= -40.0
    low_v = select(depolarised, -80.0, v)  # keeps the resting-branch exponentials finite
    a_h = select(depolarised, 0.0, 0.057 * exp(-(low_v + 80.0) / 6.8))
    b_h = select(depolarised, 0.77 / (0.13 * (1.0 + exp(-(v + 10.66) / 11.1))),
                 2.7 * exp(0.079 * low_v) + 3.1e5 * exp(0.3485 * low_v))
    a_j = select(depolarised, 0.0, (-2.5428e4 * exp(0.2444 * low_v) - 6.948e-6 * exp(-0.04391 * low_v))
                 * (low_v + 37.78) / (1.0 + exp(0.311 * (low_v + 79.23))))
    b_j = select(depolarised, 0.6 * exp(0.057 * v) / (1.0 + exp(-0.1 * (v + 32.0))),
                 0.02424 * exp(-0.01052 * low_v) / (1.0 + exp(-0.1378 * (low_v + 40.14))))
    tau_h = 1.0 / (a_h + b_h)
    tau_j = 1.0 / (a_j + b_j)
    xr1_inf = 1.0 / (1.0 + exp((-26.0 - v) / 7.0))
    tau_xr1 = (450.0 / (1.0 + exp((-45.0 - v) / 10.0))) * (6.0 / (1.0 + exp((v + 30.0) / 11.5)))
    xr2_inf = 1.0 / (1.0 + exp((v + 88.0) / 24.0))
    tau_xr2 = (3.0 / (1.0 + exp((-60.0 - v) / 20.0))) * (1.12 / (1.0 + exp((v - 60.0) / 20.0)))
    xs_inf = 1.0 / (1.0 + exp((-5.0 - v) / 14.0))
    tau_xs = (1400.0 / maths.sqrt(1.0 + exp((5.0 - v) / 6.0))) * (1.0 / (1.0 + exp((v - 35.0) / 15.0))) + 80.0
    r_inf = 1.0 / (1.0 + exp((20.0 - v) / 6.0))
    tau_r = 9.5 * exp(-(v + 40.0) ** 2 / 1800.0) + 0.8
    if cell.endo_s_gate:
        s_inf = 1.0 / (1.0 + exp((v + 28.0) / 5.0))
        tau_s = 1000.0 * exp(-(v + 67.0) ** 2 / 1000.0) + 8.0
    else:
        s_inf = 1.0 / (1.0 + exp((v + 20.0) / 5.0))
        tau_s = 85.0 * exp(-(v + 45.0) ** 2 / 320.0) + 5.0 / (1.0 + exp((v - 20.0) / 5.0)) + 3.0
    d_inf = 1.0 / (1.0 + exp((-8.0 - v) / 7.5))
    tau_d = ((1.4 / (1.0 + exp((-35.0 - v) / 13.0)) + 0.25) * (1.4 / (1.0 + exp((v + 5.0) / 5.0)))
             + 1.0 / (1.0 + exp((50.0 - v) / 20.0)))
    f_inf = 1.0 / (1.0 + exp((v + 20.0) / 7.0))
    tau_f = (1102.5 * exp(-(v + 27.0) ** 2 / 225.0) + 200.0 / (1.0 + exp((13.0 - v) / 10.0))
             + 180.0 / (1.0 + exp((v + 30.0) / 10.0)) + 20.0)
    f2_inf = 0.67 / (1.0 + exp((v + 35.0) / 7.0)) + 0.33
    tau_f2 = (562.0 * exp(-(v + 27.0) ** 2 / 240.0) + 31.0 / (1.0 + exp((25.0 - v) / 10.0))
              + 80.0 / (1.0 + exp((v + 30.0) / 10.0)))
    cs = (ca_ss / 0.05) ** 2
    fcass_inf = 0.6 / (1.0 + cs) + 0.4
    tau_fcass = 80.0 / (1.0 + cs) + 2.0

    rates = [dv, d_ki, d_nai, d_cai, d_cass, d_casr, d_rbar]
    infs = [m_inf, h_inf, h_inf, xr1_inf, xr2_inf, xs_inf, r_inf, s_inf, d_inf, f_inf, f2_inf, fcass_inf]
    taus = [tau_m, tau_h, tau_j, tau_xr1, tau_xr2, tau_xs, tau_r, tau_s, tau_d, tau_f, tau_f2, tau_fcass]
    return rates, infs, taus


def tp06_rhs(t_ms: float, y: np.ndarray, cell: str = "epi", stim_pa_per_pf: float = 0.0) -> np.ndarray:
    """dy/dt of the full TP06 ODE system (units per ms), for use with generic ODE solvers."""
    rates, infs, taus = tp06_terms(y, stim_pa_per_pf, CELL_TYPES[cell])
    gates = y[N_NONGATE:]
    return np.array(rates + [(xi - x) / tau for xi, x, tau in zip(infs, gates, taus)])


def _cell(cell: str) -> CellParameters:
    try:
        return CELL_TYPES[cell]
    except KeyError:
        raise ValueError(f"unknown TP06 cell type {cell!r}; expected one of {sorted(CELL_TYPES)}") from None


def integrate_tp06(state: np.ndarray | tuple[float, ...], duration_ms: float, dt_ms: float = 0.02,
                   cell: str = "epi", stimulus: bool = True, record: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One beat of `duration_ms` from `state`: Rush–Larsen gates, forward-Euler V/concentrations,
    stimulus STIM_AMPLITUDE (pA/pF) for STIM_DURATION ms at t=0 if `stimulus`.

    Returns (time ms, V mV at each step incl. t=0 (empty unless record), final state).
    """
    params = _cell(cell)
    n = int(round(duration_ms / dt_ms))
    n_stim = int(round(STIM_DURATION / dt_ms)) if stimulus else 0
    y = [float(a) for a in state]
    ng = N_NONGATE
    vs = np.empty(n + 1) if record else np.empty(0)
    exp = math.exp
    for k in range(n):
        if record:
            vs[k] = y[0]
        rates, infs, taus = tp06_terms(y, STIM_AMPLITUDE if k < n_stim else 0.0, params)
        for i in range(ng):
            y[i] += dt_ms * rates[i]
        for i in range(len(infs)):
            xi = infs[i]
            y[ng + i] = xi + (y[ng + i] - xi) * exp(-dt_ms / taus[i])
    if record:
        vs[n] = y[0]
    return np.arange(n + 1) * dt_ms, vs, np.array(y)


def paced_state(cycle_length_ms: float = 1000.0, beats: int = 10, dt_ms: float = 0.02, cell: str = "epi",
                initial_state: np.ndarray | None = None) -> np.ndarray:
    """The TP06 state (19,) after ``beats`` paced beats: the cell at rest just before the next
    stimulus, on the pacing limit cycle for enough beats."""
    state = np.asarray(INITIAL_STATE if initial_state is None else initial_state, dtype=float)
    for _ in range(beats):
        _, _, state = integrate_tp06(state, cycle_length_ms, dt_ms, cell, record=False)
    return state


def simulate_tp06(cycle_length_ms: float = 1000.0, beats: int = 10, dt_ms: float = 0.02, cell: str = "epi",
                  initial_state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pace the TP06 cell model; return (time ms, V mV) of the last beat, t=0 at its stimulus,
    sampled every dt_ms over [0, cycle_length_ms]."""
    if beats < 1:
        raise ValueError("beats must be >= 1")
    state = paced_state(cycle_length_ms, beats - 1, dt_ms, cell, initial_state)
    t, v, _ = integrate_tp06(state, cycle_length_ms, dt_ms, cell)
    return t, v


# ==================================================================== AP measures
def ap_measures(time_ms: np.ndarray, voltage_mv: np.ndarray) -> dict[str, float]:
    """Resting potential (mV, first sample), peak (mV), max dV/dt (mV/ms), upstroke time (ms,
    at max dV/dt), peak time (ms) and APD90 (ms, upstroke to 90 % repolarisation, interpolated)."""
    t = np.asarray(time_ms, dtype=float)
    v = np.asarray(voltage_mv, dtype=float)
    rest = float(v[0])
    dvdt = np.diff(v) / np.diff(t)
    k_up = int(np.argmax(dvdt))
    t_up = 0.5 * (t[k_up] + t[k_up + 1])
    k_peak = int(np.argmax(v))
    peak = float(v[k_peak])
    v90 = peak - 0.9 * (peak - rest)
    after = np.nonzero(v[k_peak:] < v90)[0]
    if after.size == 0:
        apd90 = math.nan
    else:
        k = k_peak + int(after[0])
        t90 = t[k - 1] + (v90 - v[k - 1]) * (t[k] - t[k - 1]) / (v[k] - v[k - 1])
        apd90 = float(t90 - t_up)
    return {"resting_mv": rest, "peak_mv": peak, "max_upstroke_mv_per_ms": float(dvdt[k_up]),
            "upstroke_ms": float(t_up), "peak_ms": float(t[k_peak]), "apd90_ms": apd90}


@dataclass(frozen=True)
class ActionPotential:
    """Action-potential template U(t) (t ms after stimulus/activation, U mV), sampled at 1 ms."""

    time_ms: np.ndarray
    voltage_mv: np.ndarray
    resting_mv: float
    peak_mv: float
    apd90_ms: float
    max_upstroke_mv_per_ms: float  # from the fine-step simulation, not the 1 ms samples

    @property
    def peak_time_ms(self) -> float:
        """Time of the sampled maximum of U (ms)."""
        return float(self.time_ms[int(np.argmax(self.voltage_mv))])

    def __call__(self, t_ms: np.ndarray | float) -> np.ndarray:
        """U(t) in mV, linear between samples, held at rest outside the sampled window."""
        return np.interp(t_ms, self.time_ms, self.voltage_mv, left=self.resting_mv, right=self.resting_mv)


@functools.lru_cache(maxsize=1)
def template_cache_key() -> str:
    """The version of a cached template: a hash of this module's source (the TP06 model, its
    integrator and the sampling) and of the numpy and Python versions that compute it, so that a
    template from other code or another library is recomputed, never loaded."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"numpy {np.__version__}, python {sys.version_info[:3]}".encode())
    return digest.hexdigest()[:16]


def action_potential_template(cycle_length_ms: float = 1000.0, cache_dir: str | Path | None = None, *,
                              beats: int = 10, dt_ms: float = 0.02, cell: str = "epi") -> ActionPotential:
    """The epicardial template sampled at 1 ms; cached as .npz in cache_dir (computed once per
    :func:`template_cache_key`).

    The last paced beat is sampled at t = 0, 1, …, cycle_length−1 ms; its final TEMPLATE_PRE_MS
    samples (the approach to the next stimulus on the limit cycle) are prepended at negative times.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"tp06_{template_cache_key()}_{cell}_cl{cycle_length_ms:g}_b{beats}_dt{dt_ms:g}.npz"
        if path.exists():
            with np.load(path) as z:
                return ActionPotential(z["time_ms"], z["voltage_mv"], float(z["resting_mv"]), float(z["peak_mv"]),
                                       float(z["apd90_ms"]), float(z["max_upstroke_mv_per_ms"]))
    t, v = simulate_tp06(cycle_length_ms, beats, dt_ms, cell)
    fine = ap_measures(t, v)
    n_ms = int(math.floor(cycle_length_ms))
    grid = np.arange(-TEMPLATE_PRE_MS, n_ms, dtype=float)
    on_beat = np.interp(np.mod(grid, cycle_length_ms), t, v)
    template = ActionPotential(grid, on_beat, fine["resting_mv"], fine["peak_mv"], fine["apd90_ms"],
                               fine["max_upstroke_mv_per_ms"])
    if path is not None:
        with atomic_path(path) as temporary:  # a unique temporary: parallel jobs may share the cache
            np.savez(temporary, time_ms=template.time_ms, voltage_mv=template.voltage_mv,
                     resting_mv=template.resting_mv, peak_mv=template.peak_mv, apd90_ms=template.apd90_ms,
                     max_upstroke_mv_per_ms=template.max_upstroke_mv_per_ms)
    return template


#: resolution (ms) of the table of smoothed templates that :func:`transmembrane_potential` draws
#: the per-node upstroke spreads from
SPREAD_STEP_MS = 0.5
_FINE_STEP_MS = 0.25


def upstroke_spread_ms(tetrahedra: np.ndarray, activation_ms: np.ndarray, cap_ms: float = 25.0) -> np.ndarray:
    """Per node (N,), ms: the mean over the node's tetrahedra of their activation-time range
    (max τ − min τ of their corners), at most ``cap_ms``.

    A front crossing a P1 node's support (its hat function) does not switch the node's share of
    the tissue on at one instant: over the support, τ spans τ_a ± h·|∇τ|, and in one dimension
    the hat-weighted distribution of τ is a triangle of that half-width — which is each incident
    element's τ range. :func:`transmembrane_potential` spreads the node's upstroke over it, so a
    coarse mesh's ECG is the average of the fronts its elements hold rather than a staircase of
    nodes switching on; the spread vanishes with the element size, so the refined limit is
    unchanged (docs/methods/ecg.md)."""
    tets = np.asarray(tetrahedra, dtype=np.int64)
    tau = np.asarray(activation_ms, dtype=np.float64).reshape(-1)
    span = np.ptp(tau[tets], axis=1)
    total = np.bincount(tets.ravel(), weights=np.repeat(span, tets.shape[1]), minlength=tau.size)
    count = np.bincount(tets.ravel(), minlength=tau.size)
    return np.minimum(total / np.maximum(count, 1), cap_ms)


def smoothed_templates(template: ActionPotential, widths_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fine times (F,) ms, templates (W, F) mV): U convolved with the unit-area triangle of
    half-width w for each of ``widths_ms`` (0: U itself), on a 0.25 ms grid."""
    fine = np.arange(template.time_ms[0], template.time_ms[-1] + _FINE_STEP_MS / 2, _FINE_STEP_MS)
    base = np.interp(fine, template.time_ms, template.voltage_mv)
    rows = np.empty((len(widths_ms), fine.size))
    for k, width in enumerate(np.asarray(widths_ms, dtype=float)):
        half = int(round(width / _FINE_STEP_MS))
        if half == 0:
            rows[k] = base
            continue
        kernel = 1.0 - np.abs(np.arange(-half, half + 1)) / (half + 1)
        kernel /= kernel.sum()
        padded = np.concatenate([np.full(half, base[0]), base, np.full(half, base[-1])])
        rows[k] = np.convolve(padded, kernel, mode="valid")
    return fine, rows


@dataclass(frozen=True)
class PotentialSampler:
    """V_m = U(t − τ) of a set of nodes, prepared once (templates smoothed and tabulated, per-node
    table indices) and sampled for any block of nodes and times: :func:`transmembrane_potential`
    in pieces, so that a caller can multiply each block of nodes into a lead matrix while it is
    still in the cache instead of writing and re-reading the whole (nodes × times) array. Times
    and τ in ms, V_m in mV."""

    activation_ms: np.ndarray
    inverse_scale: np.ndarray
    peak_ms: float
    grid_ms: np.ndarray
    uniform_step_ms: float
    tables_mv: np.ndarray
    lower: np.ndarray
    fraction: np.ndarray
    resting_mv: float

    @property
    def n_nodes(self) -> int:
        return int(self.activation_ms.size)

    def sample(self, times_ms: np.ndarray, out: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """V_m (stop − start, n_times) in mV of nodes start … stop − 1 at ``times_ms``, written into
        the first values of the C-contiguous float64 buffer ``out`` (returned shaped)."""
        stop = self.n_nodes if stop is None else stop
        t = np.ascontiguousarray(times_ms, dtype=np.float64).reshape(-1)
        count = (stop - start) * t.size
        if out.dtype != np.float64 or not out.flags.c_contiguous or out.size < count:
            raise ValueError(f"out must be a C-contiguous float64 buffer of at least {count} values")
        block = out.reshape(-1)[:count].reshape(stop - start, t.size)
        _sample_potentials(self.activation_ms[start:stop], t, self.inverse_scale[start:stop], self.peak_ms,
                           self.grid_ms, self.uniform_step_ms, self.tables_mv, self.lower[start:stop],
                           self.fraction[start:stop], self.resting_mv, block)
        return block


def potential_sampler(activation_ms: np.ndarray, template: ActionPotential, apd_scale: np.ndarray | float = 1.0,
                      upstroke_ms: np.ndarray | float | None = None) -> PotentialSampler:
    """The :class:`PotentialSampler` of :func:`transmembrane_potential` (same arguments, same values)."""
    tau = np.ascontiguousarray(activation_ms, dtype=float).reshape(-1)
    scale = np.broadcast_to(np.asarray(apd_scale, dtype=float), tau.shape)
    if np.any(scale <= 0):
        raise ValueError("apd_scale must be positive")
    spread = np.zeros(tau.shape) if upstroke_ms is None else np.broadcast_to(np.asarray(upstroke_ms, float), tau.shape)
    if np.any(~np.isfinite(spread) | (spread < 0)):
        raise ValueError("upstroke_ms must be finite and >= 0")
    if np.any(spread > 0):
        grid, tables = smoothed_templates(template, np.arange(int(np.floor(spread.max() / SPREAD_STEP_MS)) + 2)
                                          * SPREAD_STEP_MS)
    else:
        grid, tables = template.time_ms, template.voltage_mv[None]
    bins = spread / SPREAD_STEP_MS
    lower = np.floor(bins).astype(np.int64)
    grid = np.ascontiguousarray(grid, dtype=float)
    steps = np.diff(grid)
    uniform_step = float(steps[0]) if np.all(np.abs(steps - steps[0]) <= 1e-9 * steps[0]) else 0.0
    return PotentialSampler(tau, np.ascontiguousarray(1.0 / scale), float(template.peak_time_ms), grid, uniform_step,
                            np.ascontiguousarray(tables, dtype=float), lower, np.ascontiguousarray(bins - lower),
                            float(template.resting_mv))


def transmembrane_potential(activation_ms: np.ndarray, times_ms: np.ndarray, template: ActionPotential,
                            apd_scale: np.ndarray | float = 1.0,
                            upstroke_ms: np.ndarray | float | None = None,
                            out: np.ndarray | None = None) -> np.ndarray:
    """V_m (n_nodes, n_times) mV = U(t − τ) with optional per-node APD scaling (repolarisation
    stretched, upstroke unchanged) and per-node upstroke spread.

    With scale a, the local time ξ = t − τ (ms) is kept up to the template's peak time t_p and
    mapped to t_p + (ξ − t_p)/a after it, so APD90 becomes ≈ a·APD90. ``upstroke_ms`` (per node,
    ms; :func:`upstroke_spread_ms`): the template is convolved with a triangle of that half-width
    (interpolated between templates tabulated every :data:`SPREAD_STEP_MS`); None or 0 keeps U.
    ``out``: a C-contiguous float64 buffer of at least n_nodes × n_times values to write into
    (returned as its first n_nodes × n_times values, shaped). Sampling block by block:
    :func:`potential_sampler`.
    """
    sampler = potential_sampler(activation_ms, template, apd_scale, upstroke_ms)
    t = np.asarray(times_ms, dtype=float).reshape(-1)
    return sampler.sample(t, np.empty((sampler.n_nodes, t.size)) if out is None else out)


@numba.njit(cache=True)
def _sample_potentials(tau: np.ndarray, times: np.ndarray, inverse_scale: np.ndarray, peak_ms: float,
                       grid: np.ndarray, uniform_step: float, tables: np.ndarray, lower: np.ndarray,
                       fraction: np.ndarray, resting: float, out: np.ndarray) -> None:
    """out[n, k] (mV) = the node's template at its local time: tables[lower[n]] and
    tables[lower[n] + 1] (mV on ``grid``, ms; linear between samples, ``resting`` mV outside)
    mixed by ``fraction[n]``; local time t − τ (``times``, ``tau``, ``peak_ms`` in ms),
    stretched by 1/scale after the peak. On a grid of ``uniform_step`` ms (> 0) a sample's
    interval is computed; otherwise (0), times increase, so each node's search walks forward
    along the grid instead of bisecting (np.interp's work per sample)."""
    last = grid.shape[0] - 1
    for n in range(tau.shape[0]):
        first_table = tables[lower[n]]
        second_table = tables[min(lower[n] + 1, tables.shape[0] - 1)]
        weight = fraction[n]
        j = 0
        for k in range(times.shape[0]):
            xi = times[k] - tau[n]
            if xi > peak_ms:
                xi = peak_ms + (xi - peak_ms) * inverse_scale[n]
            if xi < grid[0] or xi > grid[last]:
                out[n, k] = resting
                continue
            if uniform_step > 0.0:
                position = (xi - grid[0]) / uniform_step
                j = min(int(position), last - 1)
                share = position - j
            else:
                while j < last - 1 and grid[j + 1] <= xi:
                    j += 1
                while j > 0 and grid[j] > xi:
                    j -= 1
                share = (xi - grid[j]) / (grid[j + 1] - grid[j])
            first = first_table[j] + share * (first_table[j + 1] - first_table[j])
            if weight == 0.0:
                out[n, k] = first
            else:
                second = second_table[j] + share * (second_table[j + 1] - second_table[j])
                out[n, k] = (1.0 - weight) * first + weight * second
