"""Snakemake adapter: the cohort's feature table, criteria, pass rates and distributions (see ecgcohort.realism)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.logs import logging_to
from ecgcohort.realism.jobs import realism_summary_job

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    realism_summary_job(list(inputs.features), list(inputs.anatomy), dict(snakemake.params.criteria),
                        dict(snakemake.output))
