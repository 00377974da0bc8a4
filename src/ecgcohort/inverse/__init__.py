"""The inverse-ECG benchmark (paper 2, issue 13). So far: the heart-surface dynamics (the
Aliev–Panfilov model on a triangle mesh with the cotangent Laplacian) and the reconstruction
metrics RE, CC and MSE, and Tikhonov reconstruction (zeroth and second order, λ by GCV or the
L-curve from one generalised eigendecomposition); transfer matrices, STRE and the neural methods
are to come."""

from ecgcohort.lazy import lazy_exports

_EXPORTS = {
    "AlievPanfilov": "ecgcohort.inverse.surface",
    "SurfaceSimulation": "ecgcohort.inverse.surface",
    "cotangent_laplacian": "ecgcohort.inverse.surface",
    "simulate": "ecgcohort.inverse.surface",
    "relative_error": "ecgcohort.inverse.metrics",
    "correlation_coefficient": "ecgcohort.inverse.metrics",
    "mean_squared_error": "ecgcohort.inverse.metrics",
    "Tikhonov": "ecgcohort.inverse.tikhonov",
    "TikhonovResult": "ecgcohort.inverse.tikhonov",
    "tikhonov": "ecgcohort.inverse.tikhonov",
    "lcurve_corner": "ecgcohort.inverse.tikhonov",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
