"""Snakemake adapter: a patient's inverse-problem surfaces (see ecgcohort.inverse)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.inverse.jobs import inverse_surfaces_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    inverse_surfaces_job(
        patient=snakemake.wildcards.patient, mesh_path=inputs.mesh,
        electrodes_csv=inputs.get("electrodes") or None, heart_nodes=snakemake.params.heart_nodes, heart_offset_mm=snakemake.params.heart_offset_mm,
        body=dict(snakemake.params.body), out_surfaces=snakemake.output.surfaces, out_preview=snakemake.output.preview)
