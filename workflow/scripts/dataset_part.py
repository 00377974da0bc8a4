"""Snakemake adapter: one patient's part of cohort.zarr (see ecgcohort.dataset.write_patient_part)."""

from ecgcohort.dataset import group_patient_files, write_patient_part
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    patient, scenarios = snakemake.wildcards.patient, list(snakemake.params.scenarios)
    files = group_patient_files([patient], scenarios, parameters=[snakemake.input.parameters],
                                electrodes=[snakemake.input.electrodes], points=[snakemake.input.points],
                                fibres=[snakemake.input.fibres], leadfield_chunks=snakemake.input.chunks,
                                activation=snakemake.input.activation, ecg=snakemake.input.ecg,
                                sdf=[snakemake.input.sdf])
    write_patient_part(patient, files[patient], scenarios, snakemake.output.part, snakemake.output.digests)
