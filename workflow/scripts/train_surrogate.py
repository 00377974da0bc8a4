"""Snakemake adapter: train one lead-field surrogate on cohort.zarr (see ecgcohort.surrogate)."""

import torch

from ecgcohort.logs import logging_to
from ecgcohort.surrogate.jobs import train_surrogate_job

with logging_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    train_surrogate_job(snakemake.input.store, snakemake.input.codes, snakemake.wildcards.encoding,
                        snakemake.wildcards.target, dict(snakemake.params.section), snakemake.params.sigma0,
                        snakemake.output.model, snakemake.output.losses, snakemake.output.plot,
                        snakemake.params.workdir)
