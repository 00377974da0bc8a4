"""Snakemake adapter: Chamfer distances of one patient's decoded surfaces (see ecgcohort.encoding)."""

import torch

from ecgcohort.encoding.jobs import evaluate_shape_code_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    evaluate_shape_code_job(snakemake.wildcards.patient, snakemake.params.role, snakemake.input.model,
                            snakemake.input.codes, snakemake.input.heart, snakemake.input.torso,
                            dict(snakemake.params.deepsdf), snakemake.output.chamfer, snakemake.output.slices)
