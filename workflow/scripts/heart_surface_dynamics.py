"""Snakemake adapter: ground-truth heart-surface potentials of one source (see ecgcohort.inverse)."""

from ecgcohort.inverse.jobs import heart_surface_dynamics_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    heart_surface_dynamics_job(
        patient=snakemake.wildcards.patient, source=snakemake.wildcards.source,
        surfaces_npz=snakemake.input.surfaces, transfer_npz=snakemake.input.transfer,
        anatomy_json=snakemake.input.anatomy, fibres_npz=snakemake.input.fibres or None,
        activation_npz=snakemake.input.activation or None, dynamics=dict(snakemake.params.dynamics),
        cycle_length_ms=snakemake.params.cycle_length_ms, template_cache_dir=snakemake.params.template_cache_dir,
        out_npz=snakemake.output.dynamics, out_preview=snakemake.output.preview)
