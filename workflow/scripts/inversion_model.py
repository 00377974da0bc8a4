"""Snakemake adapter: the inversion's own model of one patient under one mismatch (see ecgcohort.inverse)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.inverse.jobs import inversion_model_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    inversion_model_job(
        patient=snakemake.wildcards.patient, mismatch=snakemake.wildcards.mismatch,
        section=snakemake.params.section, seed=snakemake.params.seed, surfaces_npz=inputs.surfaces,
        mesh_path=inputs.mesh, inversion=dict(snakemake.params.inversion),
        transfer=dict(snakemake.params.transfer), out_npz=snakemake.output.model)
