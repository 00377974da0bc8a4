"""The simulation bank of paper 3 on one patient: many activation scenarios, each with its
12-lead ECG from the patient's FEM lead matrix and V_m at the 75 recording sites.

Each sample draws, from the patient's seed stream ``ecg2act-bank``:

* a kind (``kind_weights``): ``sinus`` (both Purkinje trees), ``lbbb`` (RV tree only),
  ``rbbb`` (LV tree only) or ``pacing`` (1 … ``max_pacing_sites`` myocardial nodes drawn
  uniformly, stimulated at times in [0, ``pacing_spread_ms``]);
* for the Purkinje kinds a fascicle speed scale (the trees' conduction times and the
  breakthroughs' times divided by it; the Purkinje-muscle junction delay, a property of the
  junction, kept: :func:`scaled_junction_times`) and a delay of the RV tree against the LV tree, ms;
* the myocardial fibre velocity (m/s) and the cross-fibre/fibre velocity ratio (the velocity
  across the sheets is the cross-fibre one times the fixed ``normal_cross_ratio``);
* the APD: a global scale and apex-to-base and endocardium-to-epicardium gradients
  (:func:`ecgcohort.conduction.scenarios.apd_scale`).

With ``repolarisation_variants`` k > 1 each activation draw is simulated with k draws of the APD,
k samples with the same activation times and different T waves: paper 3's data varied G_Kr
(0 or 50 %) and the cycle length (600 or 1000 ms) over every activation pattern, which change
repolarisation, not activation, so its random split scores activation maps its networks had
trained on with other T waves. ``activation_draw`` numbers the draws.

Activation times τ come from the compiled eikonal solver, V_m = U(t − τ) from the TP06
template stretched per node by its APD scale (:func:`~ecgcohort.conduction.transmembrane_potential`),
the nine electrode potentials φ = L V_m from the rows RA LA LL V1…V6 of the patient's lead
matrix, the 12 leads from φ, and the 75 sites' activation times as the first sample with
V_m > 0 (paper 3's definition). Units: ms, mV; ECGs in mV.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.conduction.action_potential import ActionPotential, transmembrane_potential, upstroke_spread_ms
from ecgcohort.conduction.coupling import CoupledSources, couple_points
from ecgcohort.conduction.eikonal import EikonalGrid
from ecgcohort.conduction.jobs import junction_delay_ms
from ecgcohort.conduction.repolarisation import Repolarisation, repolarisation_scale
from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_WEIGHTS, lead_electrode_indices
from ecgcohort.ecg2act.sites import RecordingSites
from ecgcohort.fibers.rule_based import MyocardialFibres
from ecgcohort.llnl import activation_times as first_positive_times

KINDS = ("sinus", "lbbb", "rbbb", "pacing")
#: Per-sample scenario parameters stored with the bank (name → unit).
PARAMETER_UNITS = {"fibre_velocity": "m/s", "cross_fibre_ratio": "1", "purkinje_speed_scale": "1",
                   "rv_delay_ms": "ms", "pacing_sites": "1", "apd_global_scale": "1", "apd_apex_to_base": "1",
                   "apd_endo_to_epi": "1", "activation_draw": "1"}


class BankError(ValueError):
    """Settings or inputs from which no bank can be simulated."""


def _check_range(name: str, value: Sequence[float], low: float = -np.inf, high: float = np.inf) -> tuple[float, float]:
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not pair[0] <= pair[1] or pair[0] < low or pair[1] > high:
        raise BankError(f"ecg2act.bank.{name} must be [low, high] with {low} <= low <= high <= {high}, got {value}")
    return pair


@dataclass(frozen=True)
class BankSpec:
    """The bank's settings (``ecg2act.bank`` in the config; docs/config.md gives each key)."""

    count: int = 64
    duration_ms: float = 500.0
    dt_ms: float = 1.0
    kind_weights: Mapping[str, float] = field(default_factory=lambda: {"sinus": 0.4, "lbbb": 0.15, "rbbb": 0.15,
                                                                       "pacing": 0.3})
    max_pacing_sites: int = 3
    pacing_spread_ms: float = 40.0
    fibre_velocity: tuple[float, float] = (0.5, 0.8)
    cross_fibre_ratio: tuple[float, float] = (0.35, 0.6)
    normal_cross_ratio: float = 0.57
    purkinje_speed_scale: tuple[float, float] = (0.7, 1.3)
    rv_delay_ms: tuple[float, float] = (-10.0, 10.0)
    apd_global_scale: tuple[float, float] = (0.85, 1.15)
    apd_apex_to_base: tuple[float, float] = (-0.2, 0.0)
    apd_endo_to_epi: tuple[float, float] = (-0.25, -0.05)
    repolarisation_variants: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise BankError(f"ecg2act.bank.count must be >= 1, got {self.count}")
        if self.repolarisation_variants < 1:
            raise BankError(f"ecg2act.bank.repolarisation_variants must be >= 1, got {self.repolarisation_variants}")
        if not (self.duration_ms > 0 and 0 < self.dt_ms <= self.duration_ms):
            raise BankError(f"ecg2act.bank needs 0 < dt_ms <= duration_ms, got {self.dt_ms} and {self.duration_ms}")
        unknown = sorted(set(self.kind_weights) - set(KINDS))
        weights = np.array([float(self.kind_weights.get(kind, 0.0)) for kind in KINDS])
        if unknown or (weights < 0).any() or weights.sum() <= 0:
            raise BankError(f"ecg2act.bank.kind_weights must give non-negative weights to {', '.join(KINDS)} "
                            f"(not all 0), got {dict(self.kind_weights)}")
        if self.max_pacing_sites < 1 or self.pacing_spread_ms < 0:
            raise BankError("ecg2act.bank.max_pacing_sites must be >= 1 and pacing_spread_ms >= 0")
        _check_range("fibre_velocity", self.fibre_velocity, 1e-3)
        _check_range("cross_fibre_ratio", self.cross_fibre_ratio, 1e-3, 1.0)
        if not 0.0 < self.normal_cross_ratio <= 1.0:
            raise BankError(f"ecg2act.bank.normal_cross_ratio must be in (0, 1], got {self.normal_cross_ratio}")
        _check_range("purkinje_speed_scale", self.purkinje_speed_scale, 1e-3)
        _check_range("rv_delay_ms", self.rv_delay_ms)
        _check_range("apd_global_scale", self.apd_global_scale, 0.2, 3.0)
        _check_range("apd_apex_to_base", self.apd_apex_to_base, -0.5, 0.5)
        _check_range("apd_endo_to_epi", self.apd_endo_to_epi, -0.5, 0.5)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "BankSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise BankError(f"unknown ecg2act.bank key(s): {', '.join(unknown)}")
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in section.items()}
        return cls(**values)

    @property
    def times_ms(self) -> np.ndarray:
        return np.arange(int(round(self.duration_ms / self.dt_ms))) * self.dt_ms

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind_weights": dict(self.kind_weights)}


@dataclass(frozen=True)
class PatientElectrophysiology:
    """What a patient's bank is simulated from: its myocardium with fibres and coordinates, the
    Purkinje junctions (``lv_positions_mm``, ``lv_times_ms``, ``rv_positions_mm``,
    ``rv_times_ms``, as :func:`ecgcohort.conduction.jobs.load_junctions` reads them), the lead
    matrix rows of RA LA LL V1…V6 (9, n_nodes; electrode potential = row @ V_m), the recording
    sites and the action-potential template."""

    fibres: MyocardialFibres
    junctions: Mapping[str, np.ndarray]
    lead_rows: np.ndarray
    sites: RecordingSites
    template: ActionPotential
    #: the rest of the repolarisation model (LV-RV gradient, electrotonic lengths); the bank
    #: draws the apex-base and endo-epi gradients per sample
    repolarisation: Repolarisation = Repolarisation()
    #: the activation maps' upstroke spread (fraction of the element activation-time range)
    upstroke_spread: float = 0.0

    def __post_init__(self) -> None:
        if self.lead_rows.shape != (len(LEAD_ELECTRODES), self.fibres.n_nodes):
            raise BankError(f"the lead matrix rows must be ({len(LEAD_ELECTRODES)}, {self.fibres.n_nodes}) "
                            f"for RA LA LL V1-V6 on this myocardium, got {self.lead_rows.shape}")
        if self.sites.nodes.max() >= self.fibres.n_nodes:
            raise BankError("a recording site lies outside this myocardium")

    @functools.cached_property
    def eikonal_grid(self) -> EikonalGrid:
        """The myocardium as the eikonal solver's grid (unrefined): its numbering and node-cell
        lists are built once for every sample, only the metric changes with the velocities."""
        return EikonalGrid.refined(self.fibres.points_mm, self.fibres.tetrahedra, self.fibres.cell_structure, 0,
                                   normals=self.fibres.normal_structure)

    @functools.cached_property
    def coupled_junctions(self) -> dict[str, CoupledSources]:
        """Each tree's junctions coupled to the myocardial mesh (by position)."""
        return {tree: couple_points(self.fibres.points_mm, self.fibres.tetrahedra, self.junctions[f"{tree}_positions_mm"])
                for tree in ("lv", "rv")}


def lead_rows(lead_matrix: np.ndarray, electrode_names: Sequence[str]) -> np.ndarray:
    """The rows of RA LA LL V1…V6 of a lead matrix (E, n_nodes)."""
    return np.asarray(lead_matrix, dtype=np.float64)[lead_electrode_indices(electrode_names)]


@dataclass(frozen=True)
class Sample:
    """One simulated sample: ``kind``, its parameters, the 9 electrode potentials and the 12
    leads (mV, (9, T) and (12, T)), V_m at the sites (75, T) mV, the sites' activation times
    (75,) ms, and the myocardium's total activation time, ms."""

    kind: str
    parameters: dict[str, float]
    unipolar: np.ndarray
    leads: np.ndarray
    vm: np.ndarray
    site_activation_ms: np.ndarray
    total_activation_ms: float


def draw_sample(patient: PatientElectrophysiology, spec: BankSpec, rng: np.random.Generator) -> Sample:
    """Draw one scenario (module docstring) and simulate it."""
    return draw_samples(patient, spec, rng, 1)[0]


def draw_samples(patient: PatientElectrophysiology, spec: BankSpec, rng: np.random.Generator,
                 variants: int) -> list[Sample]:
    """Draw one activation scenario (module docstring) and simulate it with ``variants`` draws of
    the APD (the first drawn with the activation, as :func:`draw_sample` does): samples with the
    same activation times."""
    weights = np.array([float(spec.kind_weights.get(kind, 0.0)) for kind in KINDS])
    kind = KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))]
    parameters = {"fibre_velocity": rng.uniform(*spec.fibre_velocity),
                  "cross_fibre_ratio": rng.uniform(*spec.cross_fibre_ratio),
                  "purkinje_speed_scale": np.nan, "rv_delay_ms": np.nan, "pacing_sites": 0.0,
                  "apd_global_scale": rng.uniform(*spec.apd_global_scale),
                  "apd_apex_to_base": rng.uniform(*spec.apd_apex_to_base),
                  "apd_endo_to_epi": rng.uniform(*spec.apd_endo_to_epi)}
    v_fibre = parameters["fibre_velocity"]
    v_cross = v_fibre * parameters["cross_fibre_ratio"]
    v_normal = v_cross * spec.normal_cross_ratio
    junctions = patient.junctions
    if kind == "pacing":
        count = int(rng.integers(1, spec.max_pacing_sites + 1))
        nodes = rng.choice(patient.fibres.n_nodes, size=count, replace=False)
        times = np.concatenate([[0.0], rng.uniform(0.0, spec.pacing_spread_ms, count - 1)])
        parameters["pacing_sites"] = float(count)
    else:
        scale = rng.uniform(*spec.purkinje_speed_scale)
        delay = rng.uniform(*spec.rv_delay_ms)
        parameters |= {"purkinje_speed_scale": scale, "rv_delay_ms": delay}
        junction_times = {"lv": scaled_junction_times(junctions, "lv", scale),
                          "rv": scaled_junction_times(junctions, "rv", scale) + delay}
        trees = {"sinus": ("lv", "rv"), "lbbb": ("rv",), "rbbb": ("lv",)}[kind]
        coupled = patient.coupled_junctions
        nodes = np.concatenate([coupled[tree].nodes for tree in trees])
        times = np.concatenate([coupled[tree].node_times(junction_times[tree], patient.fibres.cell_structure,
                                                         v_fibre, v_cross, patient.fibres.normal_structure, v_normal)
                                for tree in trees])
        times = times - times.min()
    tau = patient.eikonal_grid.activation_times(v_fibre, v_cross, nodes, times, device="cpu", v_normal=v_normal)
    samples = [_repolarised(patient, spec, kind, parameters, tau)]
    for _ in range(variants - 1):
        samples.append(_repolarised(patient, spec, kind, parameters | {
            "apd_global_scale": rng.uniform(*spec.apd_global_scale),
            "apd_apex_to_base": rng.uniform(*spec.apd_apex_to_base),
            "apd_endo_to_epi": rng.uniform(*spec.apd_endo_to_epi)}, tau))
    return samples


def scaled_junction_times(junctions: Mapping[str, np.ndarray], tree: str, scale: float) -> np.ndarray:
    """A tree's stimulus times (ms) with its fascicles ``scale`` times as fast: each tree
    junction's conduction time divided by ``scale`` and its Purkinje-muscle delay
    (``junction_delay_ms``) added unchanged; the breakthroughs, which follow the tree junctions
    in ``{tree}_times_ms``, divided by ``scale``."""
    times = np.asarray(junctions[f"{tree}_times_ms"], dtype=np.float64) / scale
    tree_junctions = len(junctions.get(f"{tree}_junction_tree_nodes", ()))
    delay = junction_delay_ms(junctions)
    times[:tree_junctions] += delay - delay / scale
    return times


def _repolarised(patient: PatientElectrophysiology, spec: BankSpec, kind: str, parameters: Mapping[str, float],
                 tau: np.ndarray) -> Sample:
    """The sample of activation times ``tau`` (n_nodes,) ms with the APD of ``parameters``."""
    fibres = patient.fibres
    repolarisation = dataclasses.replace(patient.repolarisation, apex_to_base=parameters["apd_apex_to_base"],
                                         endo_to_epi=parameters["apd_endo_to_epi"])
    scale = repolarisation_scale(fibres, tau, repolarisation, patient.template, parameters["apd_global_scale"])
    vm = transmembrane_potential(tau, spec.times_ms, patient.template, scale,
                                 upstroke_ms=patient.upstroke_spread * upstroke_spread_ms(fibres.tetrahedra, tau))
    unipolar = patient.lead_rows @ vm
    site_vm = vm[patient.sites.nodes]
    return Sample(kind=kind, parameters={k: float(v) for k, v in parameters.items()}, unipolar=unipolar,
                  leads=LEAD_WEIGHTS @ unipolar, vm=site_vm,
                  site_activation_ms=first_positive_times(site_vm, spec.dt_ms),
                  total_activation_ms=float(np.ptp(tau)))


def simulate_bank(patient: PatientElectrophysiology, spec: BankSpec, rng: np.random.Generator,
                  progress: Any = None) -> dict[str, Any]:
    """``spec.count`` samples as stacked arrays: ``kind`` (S,), ``parameters`` {name: (S,)} (with
    ``activation_draw``, the index of each sample's activation draw), ``unipolar`` (S, 9, T),
    ``leads`` (S, 12, T), ``vm`` (S, 75, T) float32 mV, ``site_activation_ms`` (S, 75),
    ``total_activation_ms`` (S,), and ``seconds``."""
    start = time.perf_counter()
    samples: list[Sample] = []
    draw = 0
    step = max(1, spec.count // 10)
    while len(samples) < spec.count:
        group = draw_samples(patient, spec, rng, min(spec.repolarisation_variants, spec.count - len(samples)))
        samples += [dataclasses.replace(s, parameters={**s.parameters, "activation_draw": float(draw)}) for s in group]
        draw += 1
        if progress is not None and (len(samples) // step > (len(samples) - len(group)) // step
                                     or len(samples) == spec.count):
            progress(len(samples), spec.count, time.perf_counter() - start)
    return {"kind": np.array([s.kind for s in samples]),
            "parameters": {name: np.array([s.parameters[name] for s in samples]) for name in PARAMETER_UNITS},
            "unipolar": np.stack([s.unipolar for s in samples]).astype(np.float32),
            "leads": np.stack([s.leads for s in samples]).astype(np.float32),
            "vm": np.stack([s.vm for s in samples]).astype(np.float32),
            "site_activation_ms": np.stack([s.site_activation_ms for s in samples]),
            "total_activation_ms": np.array([s.total_activation_ms for s in samples]),
            "seconds": time.perf_counter() - start}
