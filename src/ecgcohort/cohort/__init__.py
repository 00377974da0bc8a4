"""Cohort sampling: Latin-hypercube designs of sex, age, heart/torso shape modes and heart pose."""

from ecgcohort.lazy import lazy_exports

_EXPORTS = {
    "BODY_MODEL_AGE_YEARS": "ecgcohort.cohort.sampling",
    "CohortDesign": "ecgcohort.cohort.sampling",
    "Demographics": "ecgcohort.cohort.sampling",
    "Person": "ecgcohort.cohort.sampling",
    "SEXES": "ecgcohort.cohort.sampling",
    "Dimension": "ecgcohort.cohort.sampling",
    "SplitDesign": "ecgcohort.cohort.sampling",
    "column_descriptions": "ecgcohort.cohort.sampling",
    "design_from_config": "ecgcohort.cohort.sampling",
    "patient_ids": "ecgcohort.cohort.sampling",
    "patient_parameters": "ecgcohort.cohort.sampling",
    "patient_person": "ecgcohort.cohort.sampling",
    "patient_rng": "ecgcohort.cohort.sampling",
    "sample_cohort": "ecgcohort.cohort.sampling",
    "sample_split": "ecgcohort.cohort.sampling",
    "write_cohort": "ecgcohort.cohort.sampling",
    "patient_record": "ecgcohort.cohort.outputs",
    "write_design": "ecgcohort.cohort.outputs",
    "write_patient_parameters": "ecgcohort.cohort.outputs",
    "plot_design": "ecgcohort.cohort.plot",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
