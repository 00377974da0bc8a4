"""Snakemake adapter: the lead fields of one chunk of a patient's electrodes (see ecgcohort.leadfield)."""

from ecgcohort.leadfield.jobs import compute_lead_field_chunk
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    compute_lead_field_chunk(snakemake.wildcards.patient, snakemake.input.mesh, snakemake.input.fibres,
                             snakemake.input.electrodes, snakemake.input.points, int(snakemake.wildcards.chunk),
                             snakemake.params.electrodes_per_job, snakemake.params.conductivities,
                             snakemake.output.chunk, threads=snakemake.threads,
                             low_rank_tolerance=snakemake.params.low_rank_tolerance,
                             electrode_tolerance_mm=snakemake.params.electrode_tolerance_mm,
                             point_gradient=snakemake.params.point_gradient,
                             cell_gradient=snakemake.params.cell_gradient)
