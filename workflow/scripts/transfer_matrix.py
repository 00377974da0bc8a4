"""Snakemake adapter: the transfer matrix of a patient's own mesh (see ecgcohort.inverse)."""

from ecgcohort.inverse.jobs import transfer_matrix_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    transfer_matrix_job(
        patient=snakemake.wildcards.patient, mesh_path=snakemake.input.mesh, surfaces_npz=snakemake.input.surfaces, heart_offset_mm=snakemake.params.heart_offset_mm,
        transfer=dict(snakemake.params.transfer), out_transfer=snakemake.output.transfer,
        out_preview=snakemake.output.preview)
