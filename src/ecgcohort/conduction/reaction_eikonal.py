"""Reaction–eikonal repolarisation: the check on the diffused repolarisation times.

The cohort's repolarisation (:mod:`ecgcohort.conduction.repolarisation`) smooths the intrinsic
repolarisation times by one Helmholtz solve whose electrotonic lengths are calibrated. This
module computes the same quantity with a tissue model instead, after the reaction–eikonal idea
of Neic et al. 2017 (J Comput Phys 346:191): the monodomain equation with a two-variable
ionic model, every node forced to depolarise at its eikonal activation time τ, so that the
activation sequence is the eikonal's and the repolarisation comes from the reaction and the
electrotonic currents between cells,

    ∂v/∂t = ∇·(D ∇v) + h v² (1 − v)/τ_in − v/τ_out + J_stim(x, t),
    dh/dt = (1 − h)/τ_open  (v < v_gate),    −h/τ_close(x)  (v ≥ v_gate),

the Mitchell–Schaeffer model (Bull Math Biol 65:767, 2003; v dimensionless, 0 at rest and
about 1 at the peak), or the same with the TP06 human ventricular cell
(:mod:`ecgcohort.conduction.action_potential`, V in mV, I_ion in pA/pF = mV/ms) whose action
potential is the cohort's template; D = D_t I + (D_f − D_t) f fᵀ (mm²/ms) per cell, no flux on
the boundary. Each node gets the cell parameter (Mitchell–Schaeffer's τ_close, or a common
factor on TP06's G_Kr and G_Ks) that gives its isolated cell the intrinsic APD the cohort gives
it (:func:`cell_parameters_for_apd`); the coupled repolarisation time is then the time V falls
through the model's 90 % repolarisation level after the node's stimulus. P1 elements with a
lumped mass, explicit diffusion (sub-stepped below its stability limit), forward Euler for the
voltage and concentrations and Rush–Larsen for the gates. Times ms, lengths mm.

The two cells differ where it matters here: Mitchell–Schaeffer's plateau is held by a current
with a 0.3 ms time constant, so neighbours barely pull on it, while TP06's plateau is a balance
of small currents that electrotonic currents can shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

@dataclass(frozen=True)
class MitchellSchaeffer:
    """Mitchell & Schaeffer 2003's time constants (ms) and gate threshold; the per-node cell
    parameter is τ_close (ms). v is dimensionless."""

    tau_in_ms: float = 0.3
    tau_out_ms: float = 6.0
    tau_open_ms: float = 120.0
    v_gate: float = 0.13
    stimulus_per_ms: float = 0.5
    stimulus_ms: float = 1.0
    depolarised: float = 0.5  # v rising through it: depolarised
    repolarised: float = 0.1  # v falling through it: 90 % repolarised
    parameter_range: tuple[float, float] = (25.0, 450.0)  # τ_close (ms) of the APD table

    def initial_state(self, n: int) -> np.ndarray:
        """(2, n): v = 0, h = 1."""
        return np.vstack([np.zeros(n), np.ones(n)])

    def voltage(self, state: np.ndarray) -> np.ndarray:
        return state[0]

    def step(self, state: np.ndarray, parameter: np.ndarray, stimulated: np.ndarray, dt_ms: float) -> np.ndarray:
        """The state after one reaction step of ``dt_ms`` (``stimulated``: bool per node)."""
        v, h = state
        dv = h * v * v * (1.0 - v) / self.tau_in_ms - v / self.tau_out_ms + self.stimulus_per_ms * stimulated
        h = np.where(v < self.v_gate, 1.0 - (1.0 - h) * np.exp(-dt_ms / self.tau_open_ms),
                     h * np.exp(-dt_ms / parameter))
        return np.vstack([v + dt_ms * dv, h])


@dataclass(frozen=True)
class TenTusscher:
    """The TP06 epicardial cell from ``initial`` (19 states, default: the model's published
    initial state; pass the paced limit cycle's for steady beats); the per-node cell parameter
    multiplies G_Kr and G_Ks."""

    initial: tuple[float, ...] | None = None
    stimulus_ms: float = 1.0
    depolarised: float = -40.0  # mV
    repolarised: float = -74.0  # mV, about 90 % of the way from the peak back to rest
    parameter_range: tuple[float, float] = (0.3, 3.0)

    def initial_state(self, n: int) -> np.ndarray:
        from ecgcohort.conduction.action_potential import INITIAL_STATE

        return np.repeat(np.asarray(self.initial or INITIAL_STATE, dtype=np.float64)[:, None], n, axis=1)

    def voltage(self, state: np.ndarray) -> np.ndarray:
        return state[0]

    def step(self, state: np.ndarray, parameter: np.ndarray, stimulated: np.ndarray, dt_ms: float) -> np.ndarray:
        from ecgcohort.conduction.action_potential import (CELL_TYPES, N_NONGATE, STIM_AMPLITUDE, CellParameters,
                                                           tp06_terms_array)

        epi = CELL_TYPES["epi"]
        cell = CellParameters(epi.g_to, epi.g_ks * parameter, epi.endo_s_gate, parameter)
        rates, infs, taus = tp06_terms_array(state, STIM_AMPLITUDE * stimulated, cell)
        out = np.empty_like(state)
        out[:N_NONGATE] = state[:N_NONGATE] + dt_ms * np.asarray(rates)
        infs, taus = np.asarray(infs), np.asarray(taus)
        out[N_NONGATE:] = infs + (state[N_NONGATE:] - infs) * np.exp(-dt_ms / taus)
        return out


CellModel = MitchellSchaeffer | TenTusscher


def isolated_cell_apd(model: CellModel, parameters: np.ndarray, dt_ms: float = 0.05,
                      duration_ms: float = 1000.0) -> np.ndarray:
    """APD (ms from the stimulus to the voltage falling through ``model.repolarised``) of isolated
    cells, one per cell parameter, stimulated at t = 0 from the model's initial state."""
    parameter = np.asarray(parameters, dtype=np.float64).reshape(-1)
    state = model.initial_state(parameter.size)
    apd = np.full(parameter.shape, np.nan)
    depolarised = np.zeros(parameter.shape, dtype=bool)
    stimulated = np.ones(parameter.shape)
    for k in range(int(np.ceil(duration_ms / dt_ms))):
        t = k * dt_ms
        previous = model.voltage(state)
        state = model.step(state, parameter, stimulated * (t < model.stimulus_ms), dt_ms)
        v = model.voltage(state)
        depolarised |= v >= model.depolarised
        falls = depolarised & np.isnan(apd) & (previous >= model.repolarised) & (v < model.repolarised)
        apd[falls] = t + dt_ms * (previous[falls] - model.repolarised) / (previous[falls] - v[falls])
        if not np.isnan(apd).any():
            break
    return apd


def cell_parameters_for_apd(model: CellModel, apd_ms: np.ndarray, dt_ms: float = 0.05,
                            table_size: int = 81) -> np.ndarray:
    """The cell parameter per node whose isolated cell has APD ``apd_ms`` (ms), by interpolation in
    a table of :func:`isolated_cell_apd` over ``model.parameter_range`` (geometric spacing; the
    APD must be monotonic in the parameter)."""
    target = np.asarray(apd_ms, dtype=np.float64)
    parameters = np.geomspace(*model.parameter_range, table_size)
    apd = isolated_cell_apd(model, parameters, dt_ms)
    if np.any(~np.isfinite(apd)):
        raise RuntimeError(f"{type(model).__name__}: some cells of the APD table did not repolarise")
    order = np.argsort(apd)
    apd, parameters = apd[order], parameters[order]
    if np.any(np.diff(apd) <= 0):
        raise RuntimeError(f"{type(model).__name__}: the APD table is not monotonic in the cell parameter")
    if target.min() < apd[0] or target.max() > apd[-1]:
        raise ValueError(f"APDs {target.min():.0f}-{target.max():.0f} ms are outside what {type(model).__name__} "
                         f"reaches ({apd[0]:.0f}-{apd[-1]:.0f} ms)")
    return np.interp(target, apd, parameters)


@dataclass(frozen=True)
class TissueTimes:
    """Per node: the time the voltage first rises through the model's depolarised level and the
    time it then falls through its repolarised level (ms); the time steps and diffusion sub-steps
    taken; and, when asked for, the voltage (n, k) at ``sample_times_ms`` (k,)."""

    depolarisation_ms: np.ndarray
    repolarisation_ms: np.ndarray
    steps: int
    diffusion_substeps: int
    sample_times_ms: np.ndarray | None = None
    voltage: np.ndarray | None = None


def _diffusion_operator(points_mm: np.ndarray, tetrahedra: np.ndarray, structure: np.ndarray,
                        diffusion_mm2_per_ms: tuple[float, float]):
    """(M_L⁻¹ K as CSR, its Gershgorin bound on the largest eigenvalue, 1/ms)."""
    import scipy.sparse

    from ecgcohort.fem import mass_matrix, p1_gradients, stiffness_matrix

    along, across = diffusion_mm2_per_ms
    grads, volumes = p1_gradients(points_mm, tetrahedra)
    n = len(points_mm)
    tensors = across * np.eye(3)[None] + (along - across) * structure
    stiffness = stiffness_matrix(tetrahedra, grads, volumes, tensors, n).tocsr()
    lumped = np.asarray(mass_matrix(tetrahedra, volumes, n).sum(axis=1)).ravel()
    operator = scipy.sparse.diags(1.0 / lumped) @ stiffness
    bound = float(np.abs(operator).sum(axis=1).max()) if operator.nnz else 0.0
    return operator.tocsr(), bound


def reaction_eikonal_times(points_mm: np.ndarray, tetrahedra: np.ndarray, fibre_cell: np.ndarray,
                           activation_ms: np.ndarray, apd_ms: np.ndarray, *,
                           diffusion_mm2_per_ms: tuple[float, float] = (0.11, 0.017),
                           model: CellModel = MitchellSchaeffer(), dt_ms: float = 0.05,
                           margin_ms: float = 100.0, sample_every_ms: float | None = None) -> TissueTimes:
    """Depolarisation and repolarisation times (ms per node) of the reaction–eikonal model (module
    notes) on a myocardial mesh (``points_mm`` (n, 3), ``tetrahedra`` (m, 4), fibres or structure
    tensors per cell), each node stimulated at its ``activation_ms`` with the cell parameter that
    gives its isolated cell ``apd_ms``. ``diffusion_mm2_per_ms``: D along and across the fibres
    (0, 0: uncoupled cells). Runs until every node has repolarised or ``margin_ms`` past the latest
    isolated repolarisation. ``sample_every_ms`` (a multiple of ``dt_ms``): also keep every node's
    voltage that often, from the earliest activation time on."""
    from ecgcohort.structure_tensors import fibre_structure

    tau = np.asarray(activation_ms, dtype=np.float64)
    target = np.asarray(apd_ms, dtype=np.float64)
    if tau.shape != target.shape or tau.shape != (len(points_mm),):
        raise ValueError(f"activation {tau.shape} and APD {target.shape} must be given per node ({len(points_mm)})")
    if not (np.all(np.isfinite(tau)) and np.all(np.isfinite(target))):
        raise ValueError("activation times and APDs must be finite")
    if min(diffusion_mm2_per_ms) < 0:
        raise ValueError(f"diffusion coefficients must be >= 0 mm^2/ms, got {diffusion_mm2_per_ms}")
    parameter = cell_parameters_for_apd(model, target, dt_ms)
    operator, bound = _diffusion_operator(np.asarray(points_mm, dtype=np.float64), np.asarray(tetrahedra),
                                          fibre_structure(fibre_cell), diffusion_mm2_per_ms)
    substeps = max(1, int(np.ceil(dt_ms * bound / 1.8)))  # forward Euler is stable below 2/λ_max
    start = float(tau.min())
    tau = tau - start
    end = float((tau + target).max()) + margin_ms
    state = model.initial_state(tau.size)
    depolarised = np.full(tau.shape, np.nan)
    repolarised = np.full(tau.shape, np.nan)
    every = None if sample_every_ms is None else int(round(sample_every_ms / dt_ms))
    if every is not None and (every < 1 or not np.isclose(every * dt_ms, sample_every_ms)):
        raise ValueError(f"the sampling interval {sample_every_ms} ms must be a multiple of the step {dt_ms} ms")
    samples = []
    steps = 0
    while steps * dt_ms < end and np.isnan(repolarised).any():
        if every is not None and steps % every == 0:
            samples.append(model.voltage(state).copy())
        t = steps * dt_ms
        previous = model.voltage(state).copy()
        stimulated = ((t >= tau) & (t < tau + model.stimulus_ms)).astype(np.float64)
        state = model.step(state, parameter, stimulated, dt_ms)
        for _ in range(substeps):
            state[0] -= (dt_ms / substeps) * (operator @ state[0])
        v = model.voltage(state)
        rises = np.isnan(depolarised) & (previous < model.depolarised) & (v >= model.depolarised)
        depolarised[rises] = t + dt_ms * (model.depolarised - previous[rises]) / (v[rises] - previous[rises])
        falls = (~np.isnan(depolarised) & np.isnan(repolarised) & (previous >= model.repolarised)
                 & (v < model.repolarised))
        repolarised[falls] = t + dt_ms * (previous[falls] - model.repolarised) / (previous[falls] - v[falls])
        steps += 1
    if np.isnan(repolarised).any():
        raise RuntimeError(f"{int(np.isnan(repolarised).sum())} nodes did not repolarise within {end:.0f} ms")
    if every is None:
        return TissueTimes(depolarised + start, repolarised + start, steps, substeps)
    return TissueTimes(depolarised + start, repolarised + start, steps, substeps,
                       start + every * dt_ms * np.arange(len(samples)), np.stack(samples, axis=1))
