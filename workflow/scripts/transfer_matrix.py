"""Snakemake adapter: the transfer matrix of a patient's own mesh (see ecgcohort.inverse)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.inverse.jobs import transfer_matrix_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    transfer_matrix_job(
        patient=snakemake.wildcards.patient, mesh_path=inputs.mesh, surfaces_npz=inputs.surfaces, heart_offset_mm=snakemake.params.heart_offset_mm,
        transfer=dict(snakemake.params.transfer), out_transfer=snakemake.output.transfer,
        out_preview=snakemake.output.preview)
