"""Snakemake adapter: train the DeepSDF auto-decoder on cohort.zarr (see ecgcohort.encoding)."""

import torch

from ecgcohort.encoding.jobs import train_shape_model_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    train_shape_model_job(snakemake.input.store, dict(snakemake.params.deepsdf), snakemake.output.model,
                          snakemake.output.losses, snakemake.output.plot, snakemake.params.workdir)
