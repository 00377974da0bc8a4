"""Snakemake adapter: Table 1, the figures and the timing table of the surrogates (see ecgcohort.surrogate)."""

from ecgcohort.logs import logging_to
from ecgcohort.surrogate.report import summarize_surrogate_job

with logging_to(snakemake.log[0]):
    summarize_surrogate_job(list(snakemake.input.summaries), list(snakemake.input.errors),
                            dict(snakemake.params.evaluation), dict(snakemake.output),
                            models=list(snakemake.input.models),
                            ground_truth=list(snakemake.input.ground_truth),
                            losses=list(snakemake.input.losses))
