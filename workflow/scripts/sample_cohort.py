"""Snakemake adapter: sample the cohort design (see ecgcohort.cohort)."""

from ecgcohort.cohort import write_design
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    write_design(
        snakemake.params.cohort,
        table_path=snakemake.output.table,
        columns_path=snakemake.output.columns,
        preview_path=snakemake.output.preview,
    )
