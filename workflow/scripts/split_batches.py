"""Snakemake adapter: a split's batch markers as one file (see ecgcohort.batches)."""

from ecgcohort.batches import write_split_marker
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    write_split_marker(split=snakemake.wildcards.split, batches=list(snakemake.params.batches),
                       markers=list(snakemake.input.batches), out_marker=snakemake.output.marker)
