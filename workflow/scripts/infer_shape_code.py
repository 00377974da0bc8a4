"""Snakemake adapter: one held-out patient's DeepSDF code by MAP inference (see ecgcohort.encoding)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.encoding.jobs import infer_shape_code_job
from ecgcohort.logs import logging_to

import torch  # after ecgcohort: under ecgcohort.worker the job hands its script over before this

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    torch.set_num_threads(snakemake.threads)
    infer_shape_code_job(snakemake.wildcards.patient, inputs.samples, inputs.model,
                         dict(snakemake.params.deepsdf), snakemake.params.seed, snakemake.params.role,
                         snakemake.output.code)
