"""Snakemake adapter: one patient's 12-lead and anterior electrodes (see ecgcohort.anatomy.electrodes)."""

from ecgcohort.anatomy.jobs import place_electrodes
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    place_electrodes(snakemake.wildcards.patient, snakemake.params.seed, snakemake.input.torso,
                     snakemake.input.summary, snakemake.input.standard, snakemake.params.anterior_count,
                     snakemake.output.electrodes)
