"""Cohort sampling: Latin-hypercube designs of heart/torso shape modes and heart pose."""

import importlib
from typing import Any

# Imported on first use: a job that needs one function should not pay for the package's
# pandas / matplotlib / igl imports.
_EXPORTS = {
    "CohortDesign": "ecgcohort.cohort.sampling",
    "Dimension": "ecgcohort.cohort.sampling",
    "SplitDesign": "ecgcohort.cohort.sampling",
    "column_descriptions": "ecgcohort.cohort.sampling",
    "design_from_config": "ecgcohort.cohort.sampling",
    "patient_ids": "ecgcohort.cohort.sampling",
    "patient_parameters": "ecgcohort.cohort.sampling",
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


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
