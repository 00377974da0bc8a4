"""Snakemake adapter: train the DeepSDF auto-decoder on the training patients' SDF samples (see ecgcohort.encoding)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.encoding.jobs import train_shape_model_job
from ecgcohort.logs import logging_to

import torch  # after ecgcohort: under ecgcohort.worker the job hands its script over before this

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    torch.set_num_threads(snakemake.threads)
    train_shape_model_job(list(inputs.samples), list(snakemake.params.fit_patients),
                          list(snakemake.params.validation_patients), dict(snakemake.params.deepsdf),
                          dict(snakemake.params.sdf_sampling), snakemake.output.model, snakemake.output.losses,
                          snakemake.output.plot, snakemake.params.workdir, memory_mb=snakemake.resources.mem_mb)
