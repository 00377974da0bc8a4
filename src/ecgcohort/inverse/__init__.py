"""The inverse-ECG benchmark (paper 2) on the cohort's patients.

* :mod:`~ecgcohort.inverse.surfaces` — the closed heart surface (epicardium + base + valve caps)
  and the body surface of a patient's mesh, remeshed with pyacvd;
* :mod:`~ecgcohort.inverse.transfer` — the FEM transfer matrix R between them (one MUMPS
  factorisation, one block solve, R·1 = 1 checked);
* :mod:`~ecgcohort.inverse.surface` and :mod:`~ecgcohort.inverse.dynamics` — the Aliev–Panfilov
  model on the heart surface (cotangent Laplacian, IMEX Euler) and the cohort's own activation
  scenarios as ground truths, noisy body-surface maps;
* the methods, one signature each (:mod:`~ecgcohort.inverse.methods`): Tikhonov of zeroth and
  second order (:mod:`~ecgcohort.inverse.tikhonov`), STRE (:mod:`~ecgcohort.inverse.stre`),
  EP-DL and EAND-ARN (:mod:`~ecgcohort.inverse.neural`, on the training backbone);
* RE, CC and MSE of paper 2 (:mod:`~ecgcohort.inverse.metrics`), the workflow jobs, the summary
  and Figs. 9–11 (:mod:`~ecgcohort.inverse.jobs`, :mod:`~ecgcohort.inverse.report`).
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
    "physiological_dynamics": "ecgcohort.inverse.dynamics",
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
    "load_transfer": "ecgcohort.inverse.jobs",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
