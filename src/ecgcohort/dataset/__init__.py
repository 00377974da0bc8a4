"""The cohort dataset: every patient's lead fields, electrodes, parameters and ECGs in one Zarr
store (``cohort.zarr``, one patient per chunk, ragged mesh data in per-patient groups)."""

from ecgcohort.dataset.assemble import (
    PatientFiles,
    assemble_cohort,
    dataset_card,
    group_patient_files,
    open_cohort,
    open_patient_mesh,
)

__all__ = ["PatientFiles", "assemble_cohort", "dataset_card", "group_patient_files", "open_cohort",
           "open_patient_mesh"]
