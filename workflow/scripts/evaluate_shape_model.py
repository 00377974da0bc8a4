"""Snakemake adapter: the Chamfer table and heat map of the shape model (see ecgcohort.encoding)."""

from ecgcohort.encoding.jobs import summarize_shape_model_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    summarize_shape_model_job(list(snakemake.input.chamfer), snakemake.output.table, snakemake.output.heatmap,
                              snakemake.output.summary)
