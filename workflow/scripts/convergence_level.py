"""Snakemake adapter: one patient at one level of the convergence ladder (see ecgcohort.convergence)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.convergence.jobs import convergence_level_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    convergence_level_job(
        patient=snakemake.wildcards.patient, level=snakemake.params.level,
        files={key: inputs[key] for key in ("heart", "torso", "heart_model", "torso_model", "electrodes",
                                                     "junctions", "points", "anatomy")},
        physics=snakemake.params.physics, threads=snakemake.threads, out_npz=snakemake.output.level)
