"""Snakemake adapter: assemble and check one patient's anatomy (see ecgcohort.anatomy)."""

from ecgcohort.anatomy.jobs import assemble
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    assemble(snakemake.wildcards.patient, snakemake.input.heart_model, snakemake.input.torso_model,
             snakemake.input.parameters, snakemake.params.placement,
             snakemake.output.heart, snakemake.output.torso, snakemake.output.summary)
