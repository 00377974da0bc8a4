"""The lead-field surrogate (paper 1, sec. 2.3 and 2.6): a network NN_LF(x, ẽ, z) → ∇Z
conditioned on a geometry code, trained on FEM lead fields in units of the pseudo lead field
(``target: full | pseudo_residual``), batched prediction of ∇Z in Ω/m, trained models as a
library (``load_surrogate``: ∇Z, lead matrices and ECGs of any patient from its code), and the
error measures of lead fields and ECGs."""

from ecgcohort.lazy import lazy_exports

_EXPORTS = {
    "TARGETS": "ecgcohort.surrogate.network",
    "SurrogateSpec": "ecgcohort.surrogate.network",
    "LeadFieldNetwork": "ecgcohort.surrogate.network",
    "SurrogateModel": "ecgcohort.surrogate.network",
    "reference_magnitude": "ecgcohort.surrogate.network",
    "pseudo_direction": "ecgcohort.surrogate.network",
    "normalise_target": "ecgcohort.surrogate.network",
    "denormalise_target": "ecgcohort.surrogate.network",
    "check_electrodes": "ecgcohort.surrogate.network",
    "check_code": "ecgcohort.surrogate.network",
    "training_rows": "ecgcohort.surrogate.network",
    "predict_gradient": "ecgcohort.surrogate.network",
    "predict_gradient_tensor": "ecgcohort.surrogate.network",
    "CodeTable": "ecgcohort.surrogate.model",
    "TrainedSurrogate": "ecgcohort.surrogate.model",
    "read_code_table": "ecgcohort.surrogate.model",
    "load_surrogate": "ecgcohort.surrogate.model",
    "normalised_electrodes": "ecgcohort.surrogate.model",
    "ecg_from_lead_matrix": "ecgcohort.surrogate.model",
    "ecg_from_potentials": "ecgcohort.surrogate.model",
    "angular_error_deg": "ecgcohort.surrogate.metrics",
    "relative_magnitude_error": "ecgcohort.surrogate.metrics",
    "relative_l2": "ecgcohort.surrogate.metrics",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
