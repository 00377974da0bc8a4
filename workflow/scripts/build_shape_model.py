"""Snakemake adapter: build or load one organ's shape model (see ecgcohort.shapes)."""

from ecgcohort.io import user_cache_dir
from ecgcohort.logs import logging_to
from ecgcohort.shapes.catalog import write_shape_model

with logging_to(snakemake.log[0]):
    write_shape_model(snakemake.wildcards.organ, snakemake.params.spec, snakemake.output.model,
                      cache_dir=user_cache_dir("shapes"))
