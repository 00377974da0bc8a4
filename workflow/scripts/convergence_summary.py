"""Snakemake adapter: the mesh-convergence table and figure (see ecgcohort.convergence)."""

from ecgcohort.convergence.jobs import convergence_summary_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    convergence_summary_job(level_paths=snakemake.params.level_paths, cycle_length_ms=snakemake.params.cycle_length_ms,
                            template_cache=snakemake.params.template_cache, table_out=snakemake.output.table,
                            markdown_out=snakemake.output.markdown, leads_out=snakemake.output.leads,
                            figure_out=snakemake.output.figure)
