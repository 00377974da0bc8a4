"""Snakemake adapter: one patient's convergence evaluation points (see ecgcohort.convergence)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.convergence.level import write_evaluation_points
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    write_evaluation_points(snakemake.wildcards.patient, inputs.heart, inputs.torso,
                            snakemake.params.seed, snakemake.params.settings, snakemake.output.points)
