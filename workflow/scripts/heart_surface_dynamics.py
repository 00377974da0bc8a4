"""Snakemake adapter: the ground truth of one source (see ecgcohort.inverse)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.inverse.jobs import heart_surface_dynamics_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    scenario = None if "activation" not in inputs.keys() else {
        "mesh": inputs.mesh, "fibres": inputs.fibres, "activation": inputs.activation,
        "electrodes": inputs.electrodes, **dict(snakemake.params.leadfield), **dict(snakemake.params.activation_map)}
    heart_surface_dynamics_job(
        patient=snakemake.wildcards.patient, source=snakemake.wildcards.source, surfaces_npz=inputs.surfaces,
        transfer_npz=inputs.get("transfer"), anatomy_json=inputs.anatomy, scenario=scenario,
        dynamics=dict(snakemake.params.dynamics), template_cache_dir=snakemake.params.template_cache_dir,
        out_npz=snakemake.output.dynamics, out_preview=snakemake.output.preview)
