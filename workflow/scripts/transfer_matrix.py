"""Snakemake adapter: a patient's inverse-problem surfaces and transfer matrix (see ecgcohort.inverse)."""

from ecgcohort.inverse.jobs import transfer_matrix_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    transfer_matrix_job(
        patient=snakemake.wildcards.patient, mesh_path=snakemake.input.mesh, electrodes_csv=snakemake.input.electrodes or None,
        heart_nodes=snakemake.params.heart_nodes, body=dict(snakemake.params.body),
        transfer=dict(snakemake.params.transfer), out_surfaces=snakemake.output.surfaces,
        out_transfer=snakemake.output.transfer, out_preview=snakemake.output.preview)
