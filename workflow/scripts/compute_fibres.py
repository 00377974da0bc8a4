"""Snakemake adapter: rule-based fibres on one patient's myocardium (see ecgcohort.fibers)."""

from ecgcohort.fibers.jobs import compute_fibres
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    compute_fibres(snakemake.wildcards.patient, snakemake.input.mesh, snakemake.params.angles,
                   snakemake.output.fibres, vtu=snakemake.params.write_vtu)
