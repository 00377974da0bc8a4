"""Snakemake adapter: one patient's convergence evaluation points (see ecgcohort.convergence)."""

from ecgcohort.convergence.level import write_evaluation_points
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    write_evaluation_points(snakemake.wildcards.patient, snakemake.input.heart, snakemake.input.torso,
                            snakemake.params.seed, snakemake.params.settings, snakemake.output.points)
