"""Snakemake adapter: one patient's activation maps (see ecgcohort.conduction.jobs)."""

from ecgcohort.conduction.jobs import MapSettings, compute_activations
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    compute_activations(
        snakemake.wildcards.patient, snakemake.params.scenarios, snakemake.input.fibres, snakemake.input.heart,
        snakemake.input.junctions,
        MapSettings(velocities=snakemake.params.velocities, action_potential=snakemake.params.action_potential,
                    seed=snakemake.params.seed, device=snakemake.params.device,
                    template_cache_dir=snakemake.params.template_cache_dir,
                    eikonal_refinements=snakemake.params.eikonal_refinements,
                    source_radius_edges=snakemake.params.source_radius_edges,
                    subendocardial_layer=snakemake.params.subendocardial_layer),
        {name: (snakemake.output.activation[k], None) for k, name in enumerate(snakemake.params.scenarios)},
        threads=snakemake.threads)
