"""Snakemake adapter: one inverse method in every setting and repeat (see ecgcohort.inverse)."""

from ecgcohort.inverse.jobs import reconstruct_job
from ecgcohort.inverse.methods import NEURAL_METHODS
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    if snakemake.wildcards.method in NEURAL_METHODS:
        # only the networks use torch: the classical methods' jobs skip its 3 s import
        import torch

        torch.set_num_threads(snakemake.threads)
    reconstruct_job(
        patient=snakemake.wildcards.patient, source=snakemake.wildcards.source, method=snakemake.wildcards.method,
        seed=snakemake.params.seed, surfaces_npz=snakemake.input.surfaces, dynamics_npz=snakemake.input.dynamics,
        model_npzs=dict(zip(snakemake.params.mismatches, snakemake.input.models)),
        settings=[dict(setting) for setting in snakemake.params.settings],
        noise_models={name: dict(section or {}) for name, section in snakemake.params.noise_models.items()},
        repeats=snakemake.params.repeats, method_config=dict(snakemake.params.method_config),
        dynamics=dict(snakemake.params.dynamics), workdir=snakemake.params.workdir,
        out_csv=snakemake.output.metrics, out_npz=snakemake.output.estimates)
