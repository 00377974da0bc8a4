"""Snakemake adapter: Chamfer distances of one patient's decoded surfaces (see ecgcohort.encoding)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.encoding.jobs import evaluate_shape_code_job
from ecgcohort.logs import logging_to

import torch  # after ecgcohort: under ecgcohort.worker the job hands its script over before this

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    torch.set_num_threads(snakemake.threads)
    evaluate_shape_code_job(snakemake.wildcards.patient, snakemake.params.role, inputs.model,
                            inputs.codes, inputs.heart, inputs.torso,
                            dict(snakemake.params.deepsdf), snakemake.output.chamfer, snakemake.output.slices)
