"""Snakemake adapter: one held-out patient's DeepSDF code by MAP inference (see ecgcohort.encoding)."""

import torch

from ecgcohort.encoding.jobs import infer_shape_code_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    infer_shape_code_job(snakemake.wildcards.patient, snakemake.input.samples, snakemake.input.model,
                         dict(snakemake.params.deepsdf), snakemake.params.seed, snakemake.params.role,
                         snakemake.output.code)
