"""Cohort sampling: Latin-hypercube designs of heart/torso shape modes and heart pose."""

from ecgcohort.cohort.sampling import (
    CohortDesign,
    Dimension,
    SplitDesign,
    column_descriptions,
    design_from_config,
    patient_ids,
    patient_parameters,
    patient_rng,
    sample_cohort,
    sample_split,
    write_cohort,
)
from ecgcohort.cohort.outputs import patient_record, write_design, write_patient_parameters
from ecgcohort.cohort.plot import plot_design

__all__ = [
    "CohortDesign",
    "Dimension",
    "SplitDesign",
    "column_descriptions",
    "design_from_config",
    "patient_ids",
    "patient_parameters",
    "patient_record",
    "patient_rng",
    "plot_design",
    "sample_cohort",
    "sample_split",
    "write_cohort",
    "write_design",
    "write_patient_parameters",
]
