"""Snakemake adapter: assemble every patient into cohort.zarr and its card (see ecgcohort.dataset)."""

from ecgcohort.dataset import assemble_cohort, group_patient_files
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    patients, scenarios = list(snakemake.params.patients), list(snakemake.params.scenarios)
    files = group_patient_files(patients, scenarios, parameters=snakemake.input.parameters,
                                electrodes=snakemake.input.electrodes, points=snakemake.input.points,
                                fibres=snakemake.input.fibres, leadfield_chunks=snakemake.input.chunks,
                                activation=snakemake.input.activation, ecg=snakemake.input.ecg,
                                sdf=snakemake.input.sdf)
    assemble_cohort(patients, files, scenarios, dict(snakemake.params.config), snakemake.output.store,
                    snakemake.output.card)
