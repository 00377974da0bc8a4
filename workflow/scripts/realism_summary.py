"""Snakemake adapter: the cohort's feature table, criteria, pass rates and distributions (see ecgcohort.realism)."""

from ecgcohort.logs import logging_to
from ecgcohort.realism.jobs import realism_summary_job

with logging_to(snakemake.log[0]):
    realism_summary_job(list(snakemake.input.features), list(snakemake.input.anatomy), dict(snakemake.params.criteria),
                        dict(snakemake.output))
