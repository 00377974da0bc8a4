"""Snakemake adapter: one patient's lead-field sample points (see ecgcohort.leadfield)."""

from ecgcohort.leadfield.jobs import write_sample_points
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    write_sample_points(snakemake.wildcards.patient, snakemake.input.mesh, snakemake.params.sample_points,
                        snakemake.params.near_fraction, snakemake.params.near_mm, snakemake.params.seed,
                        snakemake.output.points)
