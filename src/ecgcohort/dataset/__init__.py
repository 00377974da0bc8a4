"""The cohort dataset: every patient's lead fields, electrodes, parameters and ECGs in one Zarr
store (``cohort.zarr``, one patient per shard, ragged mesh data in per-patient groups), assembled
incrementally from per-patient parts."""

from ecgcohort.dataset.assemble import (
    PatientFiles,
    assemble_cohort,
    dataset_card,
    group_patient_files,
    open_cohort,
    open_patient_mesh,
    sharded_encoding,
    write_patient_part,
)

__all__ = ["PatientFiles", "assemble_cohort", "dataset_card", "group_patient_files", "open_cohort",
           "open_patient_mesh", "sharded_encoding", "write_patient_part"]
