"""Snakemake adapter: one patient's Purkinje trees (see ecgcohort.conduction.purkinje_jobs)."""

from ecgcohort.conduction.purkinje_jobs import grow_purkinje
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    grow_purkinje(snakemake.wildcards.patient, snakemake.input.heart, snakemake.params.settings, snakemake.params.seed,
                  snakemake.output.lv_tree, snakemake.output.rv_tree, snakemake.output.junctions)
