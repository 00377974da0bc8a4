"""Snakemake adapter: one patient's recording-site picture (see ecgcohort.ecg2act.jobs)."""

from ecgcohort.ecg2act.jobs import draw_sites_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    draw_sites_job(snakemake.wildcards.patient, snakemake.input.fibres, snakemake.input.sites, snakemake.output.preview)
