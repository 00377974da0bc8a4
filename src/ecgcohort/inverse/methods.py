"""The benchmark's methods behind one signature (see :mod:`ecgcohort.inverse.problem`):

    method(transfer (m, n), bspm (m, T), surface, times (T,), config) -> Reconstruction

* ``tikhonov_0th`` / ``tikhonov_2nd`` — Γ = I or the surface Laplacian M⁻¹K (cotangent
  stiffness over lumped mass), λ by GCV, robust GCV (``rgcv_gamma``) or the L-curve
  (``lambda_choice``), per instant or one for the record (``per_time``); one generalised
  eigendecomposition for every λ;
* ``stre`` — spatiotemporal regularisation over sliding windows (:mod:`ecgcohort.inverse.stre`);
* ``ep_dl`` / ``eand_arn`` — the EP-informed networks (:mod:`ecgcohort.inverse.neural`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np

from ecgcohort.inverse.problem import InverseError, Reconstruction, SurfaceMesh
from ecgcohort.inverse.surface import cotangent_laplacian
from ecgcohort.inverse.stre import stre_estimate
from ecgcohort.inverse.tikhonov import RGCV_GAMMA, tikhonov

Method = Callable[[np.ndarray, np.ndarray, SurfaceMesh, np.ndarray, Mapping[str, Any]], Reconstruction]


def surface_laplacian(surface: SurfaceMesh) -> np.ndarray:
    """The dense surface Laplacian M⁻¹K (n, n), in 1/length² of the surface's unit."""
    stiffness, mass = cotangent_laplacian(surface.points, surface.faces)
    return stiffness.toarray() / mass[:, None]


def lambda_grid(transfer: np.ndarray, points: int = 60) -> np.ndarray:
    """λ values log-spaced over 10⁻⁸…10² times the largest singular value of R."""
    return np.linalg.norm(transfer, 2) * np.logspace(-8, 2, points)


def _tikhonov(order: int) -> Method:
    def method(transfer, bspm, surface, times, config) -> Reconstruction:
        start = time.perf_counter()
        regulariser = np.eye(len(surface.points)) if order == 0 else surface_laplacian(surface)
        result = tikhonov(transfer, bspm, regulariser, choice=config.get("lambda_choice", "rgcv"),
                          per_time=bool(config.get("per_time", False)),
                          grid=lambda_grid(transfer, int(config.get("grid_points", 60))),
                          gamma=float(config.get("rgcv_gamma", RGCV_GAMMA)))
        return Reconstruction(result.estimate, info={"lambda_median": float(np.median(result.lambdas))},
                              seconds=time.perf_counter() - start)

    method.__doc__ = (f"Tikhonov of order {order} (Γ = {'I' if order == 0 else 'M⁻¹K'}), λ by GCV, robust GCV or "
                      "the L-curve.")
    return method


tikhonov_0th = _tikhonov(0)
tikhonov_2nd = _tikhonov(2)


def stre(transfer, bspm, surface, times, config) -> Reconstruction:
    """STRE: λ_s second-order Tikhonov's choice over the record by ``lambda_choice`` (robust GCV
    by default, as the Tikhonov methods': GCV's λ_s collapsed with less white noise than model
    error), λ_t by GCV, windows of 2·``half_width`` + 1 instants."""
    start = time.perf_counter()
    laplacian = surface_laplacian(surface)
    spatial = tikhonov(transfer, bspm, laplacian, choice=config.get("lambda_choice", "rgcv"), per_time=False,
                       grid=lambda_grid(transfer, int(config.get("grid_points", 60))),
                       gamma=float(config.get("rgcv_gamma", RGCV_GAMMA)))
    spatial_lambda = float(spatial.lambdas[0])
    top = np.linalg.norm(transfer, 2)
    estimate, temporal_lambda = stre_estimate(
        transfer, bspm, laplacian, spatial_lambda=spatial_lambda, half_width=int(config.get("half_width", 5)),
        temporal_grid=top * np.logspace(-4, 1, int(config.get("grid_points", 60)) // 2))
    return Reconstruction(estimate, info={"spatial_lambda": spatial_lambda, "temporal_lambda": temporal_lambda},
                          seconds=time.perf_counter() - start)


def ep_dl(transfer, bspm, surface, times, config) -> Reconstruction:
    """EP-DL (paper 2 ref. 19, section IV-A): an MLP with AP residuals by automatic differentiation."""
    from ecgcohort.inverse.neural import ep_dl as method

    return method(transfer, bspm, surface, times, config)


def eand_arn(transfer, bspm, surface, times, config) -> Reconstruction:
    """EAND-ARN (paper 2 section III): adaptive residual blocks, numerical differentiation."""
    from ecgcohort.inverse.neural import eand_arn as method

    return method(transfer, bspm, surface, times, config)


METHODS: dict[str, Method] = {"tikhonov_0th": tikhonov_0th, "tikhonov_2nd": tikhonov_2nd, "stre": stre,
                              "ep_dl": ep_dl, "eand_arn": eand_arn}
NEURAL_METHODS: tuple[str, ...] = ("ep_dl", "eand_arn")


def reconstruct(method: str, transfer: np.ndarray, bspm: np.ndarray, surface: SurfaceMesh, times: np.ndarray,
                config: Mapping[str, Any]) -> Reconstruction:
    """Run ``method`` (a key of :data:`METHODS`) after checking the shapes of its inputs."""
    if method not in METHODS:
        raise InverseError(f"unknown inverse method {method!r}; known: {', '.join(METHODS)}")
    transfer, bspm = np.asarray(transfer, dtype=np.float64), np.asarray(bspm, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    m, n = transfer.shape
    if bspm.shape != (m, len(times)) or len(surface.points) != n:
        raise InverseError(f"{method}: R is {transfer.shape}, the BSPM {bspm.shape}, the heart surface has "
                           f"{len(surface.points)} nodes and there are {len(times)} instants: they do not match")
    if not (np.isfinite(transfer).all() and np.isfinite(bspm).all()):
        raise InverseError(f"{method}: the transfer matrix or the BSPM has non-finite values")
    return METHODS[method](transfer, bspm, surface, times, config)
