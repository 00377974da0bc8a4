"""Snakemake adapter: signed-distance samples of one patient's surfaces (see ecgcohort.encoding)."""

from ecgcohort.encoding.jobs import sample_sdf_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    sample_sdf_job(snakemake.wildcards.patient, snakemake.input.heart, snakemake.input.torso,
                   dict(snakemake.params.sampling), snakemake.params.seed, snakemake.output.sdf)
