"""Snakemake adapter: link every patient's part into cohort.zarr and write its card (see ecgcohort.dataset)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.dataset import assemble_cohort
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    patients = list(snakemake.params.patients)
    assemble_cohort(patients, dict(zip(patients, inputs.parts)), dict(snakemake.params.config),
                    snakemake.output.store, snakemake.output.card)
