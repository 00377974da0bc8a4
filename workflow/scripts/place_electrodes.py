"""Snakemake adapter: place one patient's electrodes (see ecgcohort.anatomy.electrodes)."""

from ecgcohort.anatomy.jobs import place_electrodes
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    place_electrodes(snakemake.wildcards.patient, snakemake.params.seed, snakemake.input.torso,
                     snakemake.input.summary, snakemake.params.anterior_count, snakemake.params.rules,
                     snakemake.output.electrodes)
