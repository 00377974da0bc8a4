"""Snakemake adapter: link every patient's part into cohort.zarr and write its card (see ecgcohort.dataset)."""

from ecgcohort.dataset import assemble_cohort
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    patients = list(snakemake.params.patients)
    assemble_cohort(patients, dict(zip(patients, snakemake.input.parts)), dict(snakemake.params.config),
                    snakemake.output.store, snakemake.output.card)
