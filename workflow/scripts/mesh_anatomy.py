"""Snakemake adapter: tetrahedral mesh of one patient's anatomy (see ecgcohort.meshing)."""

from ecgcohort.logs import logging_to
from ecgcohort.meshing.jobs import mesh_patient

with logging_to(snakemake.log[0]):
    mesh_patient(snakemake.wildcards.patient, snakemake.input.heart, snakemake.input.torso,
                 snakemake.input.heart_model, snakemake.input.torso_model, snakemake.params.settings,
                 snakemake.output.mesh, snakemake.output.quality,
                 resampling_cache_dir=snakemake.params.resampling_cache_dir, anatomy_json=snakemake.input.anatomy)
