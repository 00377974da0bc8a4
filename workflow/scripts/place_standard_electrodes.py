"""Snakemake adapter: place one patient's 12-lead electrodes (see ecgcohort.anatomy.electrodes)."""

from ecgcohort.anatomy.jobs import place_standard_electrodes
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    place_standard_electrodes(snakemake.wildcards.patient, snakemake.input.torso, snakemake.input.summary,
                              snakemake.params.rules, snakemake.output.electrodes)
