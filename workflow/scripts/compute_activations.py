"""Snakemake adapter: one patient's activation maps (see ecgcohort.conduction.jobs)."""

from ecgcohort.conduction.jobs import compute_activations
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    compute_activations(
        snakemake.wildcards.patient, snakemake.params.scenarios, snakemake.input.fibres, snakemake.input.heart,
        snakemake.input.junctions, snakemake.params.velocities, snakemake.params.action_potential,
        snakemake.params.seed, snakemake.params.device, snakemake.params.template_cache_dir,
        {name: (snakemake.output.activation[k], snakemake.output.preview[k])
         for k, name in enumerate(snakemake.params.scenarios)},
        snakemake.params.eikonal_refinements, snakemake.params.source_radius_edges)
