"""Snakemake adapter: one (patient, scenario) activation map (see ecgcohort.conduction.jobs)."""

from ecgcohort.conduction.jobs import compute_activation
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    compute_activation(snakemake.wildcards.patient, snakemake.wildcards.scenario, snakemake.params.scenario,
                       snakemake.input.fibres, snakemake.input.heart, snakemake.input.get("junctions") or None,
                       snakemake.params.velocities, snakemake.params.action_potential, snakemake.params.seed,
                       snakemake.params.device, snakemake.output.activation, snakemake.output.preview)
