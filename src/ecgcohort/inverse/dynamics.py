"""Ground-truth heart-surface potentials (HSP) of the inverse benchmark and their body-surface
potential maps (BSPM).

Two kinds of source, each giving u on the n heart-surface nodes at T instants:

* ``aliev_panfilov`` — paper 2's model (eqs. 1–3) on the heart-surface mesh
  (:func:`ecgcohort.inverse.surface.simulate`), paced from a site of the heart. u, v and t are
  dimensionless; lengths enter through ``length_unit_mm``: D = 10 applies to coordinates in
  that unit. With the default 5 mm the planar front speed √(Dk/2)(1 − 2a) = 5.06 units per time
  unit is 25.3 mm per time unit, a paced heart activates in about 6 time units and the action
  potential lasts about 24 (test-0000 of the default cohort, 1094 nodes) — with Aliev and
  Panfilov's 12.9 ms per time unit, 77 ms and 310 ms. A 10 mm unit leaves a 12 mm pacing disc
  below the critical nucleus (no propagation) and the edge of a 1094-node heart (6 mm) must
  resolve a front √(D/k) = 1.1 units wide.
* a cohort scenario (``sinus``, ``lbbb``, …) — the extracellular potential of the patient's own
  V_m on the heart–torso mesh (:func:`ecgcohort.inverse.extracellular.scenario_truth`), in mV.
  Times are converted to the model's time unit with ``time_unit_ms`` so the EP-informed
  methods see the same time axis.

BSPM of the model source: y = R u with R the transfer matrix on the patient's own mesh; of a
scenario: φ at the measurement points from the same 3-D solve. Noise by signal-to-noise ratio
(:mod:`ecgcohort.inverse.noise`); :func:`noisy_bspm` adds paper 2's absolute σ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ecgcohort.inverse.problem import InverseError, SurfaceMesh
from ecgcohort.inverse.surface import AlievPanfilov, simulate

MODEL_SOURCE = "aliev_panfilov"
PACING_SITES: tuple[str, ...] = ("apex", "lv_lateral", "rv_lateral", "base")


@dataclass(frozen=True)
class DynamicsSpec:
    """The ``inverse.dynamics`` config section: model parameters, units and time grid.
    ``duration`` and ``dt`` in model time units; ``pacing_radius_mm`` the stimulated disc."""

    model: AlievPanfilov = field(default_factory=AlievPanfilov)
    length_unit_mm: float = 5.0
    time_unit_ms: float = 12.9
    duration: float = 40.0
    dt: float = 0.02
    samples: int = 661
    pacing_site: str = "apex"
    pacing_radius_mm: float = 12.0

    def __post_init__(self) -> None:
        if self.samples < 5:
            raise InverseError(f"inverse.dynamics.samples must be at least 5 (the fourth-order time stencil), "
                               f"got {self.samples}")
        if self.pacing_site not in PACING_SITES:
            raise InverseError(f"inverse.dynamics.pacing_site must be one of {', '.join(PACING_SITES)}, "
                               f"got {self.pacing_site!r}")
        for name in ("length_unit_mm", "time_unit_ms", "duration", "dt", "pacing_radius_mm"):
            if not getattr(self, name) > 0:
                raise InverseError(f"inverse.dynamics.{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "DynamicsSpec":
        model = AlievPanfilov(**section.get("model", {}))
        names = set(cls.__dataclass_fields__) - {"model"}
        return cls(model=model, **{k: v for k, v in section.items() if k in names})

    @property
    def times(self) -> np.ndarray:
        """The T sample instants in model time units."""
        return np.linspace(0.0, self.duration, self.samples)


@dataclass(frozen=True)
class HeartDynamics:
    """The ground truth on the heart surface: ``u`` (n, T) at ``times`` (T,) in model time
    units, in ``units`` — "1" for the Aliev–Panfilov model's and the normalised transmembrane
    potentials, "mV" for the extracellular potential of a cohort scenario; ``activation`` (n,)
    in model time units (the model's first crossing of u = 0.5, or the activation map's τ);
    ``v`` (n, T) for the model source, else None. ``polarity`` says how activation shows in u
    ("transmembrane": an upstroke; "extracellular": a downstroke), ``electrogram_activation``
    (n,) the activation times the benchmark's detector reads from u itself (model time units),
    ``sites_mm`` (k, 3) the stimulus sites of a paced scenario (empty otherwise).
    ``excitation`` (n, T) is what the EP-informed methods reconstruct, the normalised
    transmembrane potential in [0, 1]: ``u`` itself for the model source, for a cohort scenario
    the V_m of the myocardial boundary nearest each node, (V_m − rest)/(peak − rest); None in a
    file written before it existed."""

    source: str
    times: np.ndarray
    u: np.ndarray
    activation: np.ndarray
    v: np.ndarray | None = None
    units: str = "1"
    polarity: str = "transmembrane"
    electrogram_activation: np.ndarray | None = None
    sites_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    excitation: np.ndarray | None = None

    @property
    def normalised_vm(self) -> np.ndarray:
        """The excitation the EP-informed methods reconstruct (n, T), dimensionless: ``excitation``,
        or ``u`` where the truth is the model's own u."""
        if self.excitation is not None:
            return self.excitation
        if self.units == "1":
            return self.u
        raise InverseError(f"source {self.source}: this ground truth has no normalised transmembrane potential "
                           "(a file written before it was stored: run heart_surface_dynamics again)")


def pacing_site(heart_mm: SurfaceMesh, site: str, frame: Mapping[str, Any]) -> np.ndarray:
    """The heart-surface point (mm) nearest to ``site`` of the heart frame (``apex_mm``,
    ``base_centre_mm``, ``lv_rv_axis`` of the anatomy's measures)."""
    apex, base = np.asarray(frame["apex_mm"], float), np.asarray(frame["base_centre_mm"], float)
    lv_rv = np.asarray(frame["lv_rv_axis"], float)
    middle = 0.5 * (apex + base)
    # lv_rv_axis points from the LV to the RV
    target = {"apex": apex, "base": base, "lv_lateral": middle - 200.0 * lv_rv,
              "rv_lateral": middle + 200.0 * lv_rv}[site]
    return heart_mm.points[int(np.argmin(np.linalg.norm(heart_mm.points - target, axis=1)))]


def pacing_nodes(heart_mm: SurfaceMesh, centre_mm: np.ndarray, radius_mm: float) -> np.ndarray:
    """The stimulated nodes (boolean): those within ``radius_mm`` of ``centre_mm`` and always
    the nearest node's one-ring, so that a coarse surface (nodes further apart than the disc
    is wide) still gets a patch above the critical nucleus rather than one node that the first
    diffusion step smears out."""
    distance = np.linalg.norm(heart_mm.points - centre_mm, axis=1)
    nearest = int(np.argmin(distance))
    ring = heart_mm.faces[(heart_mm.faces == nearest).any(axis=1)].ravel()
    stimulated = distance <= radius_mm
    stimulated[ring] = True
    stimulated[nearest] = True
    return stimulated


def aliev_panfilov_dynamics(heart_mm: SurfaceMesh, spec: DynamicsSpec, frame: Mapping[str, Any]) -> HeartDynamics:
    """Paper 2's ground truth: the model on the heart surface (mm, scaled to the model's
    length unit) paced at ``spec.pacing_site`` over a disc of ``pacing_radius_mm``."""
    stimulated = pacing_nodes(heart_mm, pacing_site(heart_mm, spec.pacing_site, frame), spec.pacing_radius_mm)
    simulation = simulate(heart_mm.points / spec.length_unit_mm, heart_mm.faces, spec.model, stimulated,
                          duration=spec.duration, dt=spec.dt, samples=spec.samples)
    if np.isnan(simulation.activation).any():
        missing = int(np.isnan(simulation.activation).sum())
        raise InverseError(f"the Aliev–Panfilov front did not reach {missing} of {len(heart_mm.points)} heart nodes "
                           f"within {spec.duration} time units (pacing disc {spec.pacing_radius_mm} mm, length unit "
                           f"{spec.length_unit_mm} mm): raise inverse.dynamics.duration or pacing_radius_mm")
    return HeartDynamics(MODEL_SOURCE, simulation.times, simulation.u.T.copy(), simulation.activation,
                         simulation.v.T.copy())


def myocardial_boundary(tetrahedra: np.ndarray) -> np.ndarray:
    """The boundary triangles (F, 3) of a tetrahedral myocardium."""
    tetrahedra = np.asarray(tetrahedra, dtype=np.int64)
    faces = np.sort(tetrahedra[:, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]].reshape(-1, 3), axis=1)
    # one int64 key per sorted face, ordered as the rows are lexicographically: np.unique of
    # rows (axis=0) costs ten times as much (1 s on a default patient's myocardium)
    base = int(tetrahedra.max(initial=0)) + 1
    if base ** 3 >= 2 ** 63:
        raise ValueError(f"{base} nodes are too many for one int64 key per face")
    keys, counts = np.unique((faces[:, 0] * base + faces[:, 1]) * base + faces[:, 2], return_counts=True)
    once = keys[counts == 1]
    return np.stack([once // (base * base), once // base % base, once % base], axis=1)


def noisy_bspm(transfer: np.ndarray, u: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """y = R u + N(0, σ²) (m, T) for u (n, T); σ > 0 absolute, in the units of u."""
    if not sigma > 0:
        raise InverseError(f"the noise σ must be positive, got {sigma}")
    clean = np.asarray(transfer) @ np.asarray(u)
    return clean + rng.normal(0.0, sigma, size=clean.shape)
