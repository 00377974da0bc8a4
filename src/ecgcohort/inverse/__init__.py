"""The inverse-ECG benchmark (paper 2's methods) on the cohort's patients, without the inverse crime.

* :mod:`~ecgcohort.inverse.surfaces` — the closed heart surface (epicardium + base + valve caps)
  and the body surface of a patient's mesh, remeshed with pyacvd;
* :mod:`~ecgcohort.inverse.extracellular` — the ground truth of a cohort scenario: the
  extracellular potential of its V_m on the heart–torso mesh, reciprocal to the lead-field ECG;
* :mod:`~ecgcohort.inverse.models` — the inversion's own model: a separately meshed torso, the
  heart moved or the electrodes misplaced as a mismatch says;
* :mod:`~ecgcohort.inverse.transfer` — the FEM transfer matrix R between the surfaces (one MUMPS
  factorisation, one block solve, R·1 = 1 checked);
* :mod:`~ecgcohort.inverse.surface` and :mod:`~ecgcohort.inverse.dynamics` — the Aliev–Panfilov
  model on the heart surface (cotangent Laplacian, IMEX Euler), paper 2's own source;
* :mod:`~ecgcohort.inverse.noise` — measurement noise by signal-to-noise ratio (white,
  correlated, baseline wander);
* the methods, one signature each (:mod:`~ecgcohort.inverse.methods`): Tikhonov of zeroth and
  second order (:mod:`~ecgcohort.inverse.tikhonov`), STRE (:mod:`~ecgcohort.inverse.stre`),
  EP-DL and EAND-ARN (:mod:`~ecgcohort.inverse.neural`, on the training backbone), which
  reconstruct the normalised transmembrane potential through the equivalent double layer
  (:mod:`~ecgcohort.inverse.double_layer`), stop and are failed at the zero map by
  :mod:`~ecgcohort.inverse.training_checks`;
* the metrics (:mod:`~ecgcohort.inverse.metrics`): paper 2's RE, CC and MSE, spatial and temporal
  correlation, activation times from the electrograms, pacing-site localisation; the workflow
  jobs, the summary and the figures (:mod:`~ecgcohort.inverse.jobs`, :mod:`~ecgcohort.inverse.report`).
"""

from ecgcohort.lazy import lazy_exports

_EXPORTS = {
    "InverseError": "ecgcohort.inverse.problem",
    "SurfaceMesh": "ecgcohort.inverse.problem",
    "Reconstruction": "ecgcohort.inverse.problem",
    "InverseSurfaces": "ecgcohort.inverse.surfaces",
    "inverse_surfaces": "ecgcohort.inverse.surfaces",
    "load_surfaces": "ecgcohort.inverse.surfaces",
    "transfer_matrix": "ecgcohort.inverse.transfer",
    "patient_transfer_matrix": "ecgcohort.inverse.transfer",
    "AlievPanfilov": "ecgcohort.inverse.surface",
    "SurfaceSimulation": "ecgcohort.inverse.surface",
    "cotangent_laplacian": "ecgcohort.inverse.surface",
    "simulate": "ecgcohort.inverse.surface",
    "DynamicsSpec": "ecgcohort.inverse.dynamics",
    "HeartDynamics": "ecgcohort.inverse.dynamics",
    "aliev_panfilov_dynamics": "ecgcohort.inverse.dynamics",
    "noisy_bspm": "ecgcohort.inverse.dynamics",
    "METHODS": "ecgcohort.inverse.methods",
    "reconstruct": "ecgcohort.inverse.methods",
    "relative_error": "ecgcohort.inverse.metrics",
    "correlation_coefficient": "ecgcohort.inverse.metrics",
    "mean_squared_error": "ecgcohort.inverse.metrics",
    "Tikhonov": "ecgcohort.inverse.tikhonov",
    "TikhonovResult": "ecgcohort.inverse.tikhonov",
    "tikhonov": "ecgcohort.inverse.tikhonov",
    "lcurve_corner": "ecgcohort.inverse.tikhonov",
    "load_dynamics": "ecgcohort.inverse.jobs",
    "load_model": "ecgcohort.inverse.jobs",
    "ExtracellularSolver": "ecgcohort.inverse.extracellular",
    "Myocardium": "ecgcohort.inverse.extracellular",
    "scenario_truth": "ecgcohort.inverse.extracellular",
    "Mismatch": "ecgcohort.inverse.models",
    "inversion_model": "ecgcohort.inverse.models",
    "NoiseModel": "ecgcohort.inverse.noise",
    "noisy_maps": "ecgcohort.inverse.noise",
    "load_transfer": "ecgcohort.inverse.jobs",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
