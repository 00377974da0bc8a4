"""The cohort dataset: every patient's lead fields, electrodes, parameters, sex, age and ECGs in
one Zarr store (``cohort.zarr``, one patient per shard, ragged mesh data in per-patient groups),
assembled incrementally from per-patient parts.

Modules: :mod:`~ecgcohort.dataset.parts` (one patient's part), :mod:`~ecgcohort.dataset.assemble`
(the fan-in), :mod:`~ecgcohort.dataset.readers`, :mod:`~ecgcohort.dataset.card`,
:mod:`~ecgcohort.dataset.provenance` and :mod:`~ecgcohort.dataset.store` (the layout primitives).
"""

from ecgcohort.dataset.assemble import assemble_cohort
from ecgcohort.dataset.card import dataset_card
from ecgcohort.dataset.parts import PatientFiles, group_patient_files, write_patient_part
from ecgcohort.dataset.readers import open_cohort, open_patient_mesh
from ecgcohort.dataset.store import sharded_encoding

__all__ = ["PatientFiles", "assemble_cohort", "dataset_card", "group_patient_files", "open_cohort",
           "open_patient_mesh", "sharded_encoding", "write_patient_part"]
