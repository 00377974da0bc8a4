"""Snakemake adapter: the cohort's DeepSDF codes in one table (see ecgcohort.encoding)."""

from ecgcohort.encoding.jobs import shape_codes_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    shape_codes_job(snakemake.input.model, list(snakemake.input.inferred), snakemake.output.codes,
                    snakemake.output.sidecar)
