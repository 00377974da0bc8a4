"""Snakemake adapter: the lead fields of one patient's chunks of electrodes, from one
factorisation (see ecgcohort.leadfield.jobs)."""

from ecgcohort.leadfield.jobs import compute_lead_field_chunks
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    compute_lead_field_chunks(snakemake.wildcards.patient, snakemake.input.mesh, snakemake.input.fibres,
                              snakemake.input.electrodes, snakemake.input.points, chunks=snakemake.params.chunks,
                              electrodes_per_job=snakemake.params.electrodes_per_job,
                              conductivities=snakemake.params.conductivities, out_npzs=list(snakemake.output),
                              threads=snakemake.threads, low_rank_tolerance=snakemake.params.low_rank_tolerance,
                              electrode_tolerance_mm=snakemake.params.electrode_tolerance_mm,
                              point_gradient=snakemake.params.point_gradient,
                              cell_gradient=snakemake.params.cell_gradient,
                              cell_gradient_electrodes=snakemake.params.cell_gradient_electrodes)
