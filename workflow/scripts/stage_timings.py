"""Snakemake adapter: per-rule timings of the run from the benchmark files (see ecgcohort.timings)."""

from ecgcohort.logs import logging_to
from ecgcohort.timings import stage_timings_job

with logging_to(snakemake.log[0]):
    stage_timings_job(snakemake.params.benchmarks, snakemake.params.logs, snakemake.output.table,
                      snakemake.output.plot, snakemake.output.markdown)
