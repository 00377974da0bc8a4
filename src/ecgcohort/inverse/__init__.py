"""The inverse-ECG benchmark (paper 2, issue 13). So far: the heart-surface dynamics (the
Aliev–Panfilov model on a triangle mesh with the cotangent Laplacian) and the reconstruction
metrics RE, CC and MSE; transfer matrices and the reconstruction methods are to come."""

from ecgcohort.lazy import lazy_exports

_EXPORTS = {
    "AlievPanfilov": "ecgcohort.inverse.surface",
    "SurfaceSimulation": "ecgcohort.inverse.surface",
    "cotangent_laplacian": "ecgcohort.inverse.surface",
    "simulate": "ecgcohort.inverse.surface",
    "relative_error": "ecgcohort.inverse.metrics",
    "correlation_coefficient": "ecgcohort.inverse.metrics",
    "mean_squared_error": "ecgcohort.inverse.metrics",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
