"""Snakemake adapter: PNG preview of one patient's anatomy and electrodes."""

from ecgcohort.anatomy.jobs import preview
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    preview(snakemake.wildcards.patient, snakemake.input.heart, snakemake.input.torso,
            snakemake.input.electrodes, snakemake.output.preview)
