"""Snakemake adapter: train one lead-field surrogate on the training patients' lead fields (see ecgcohort.surrogate)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.logs import logging_to
from ecgcohort.surrogate.jobs import group_lead_field_files, train_surrogate_job

import torch  # after ecgcohort: under ecgcohort.worker the job hands its script over before this

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    torch.set_num_threads(snakemake.threads)
    patients = group_lead_field_files(snakemake.params.patients, points=inputs.points,
                                      electrodes=inputs.electrodes, fibres=inputs.fibres,
                                      chunks=inputs.chunks)
    train_surrogate_job(patients, inputs.codes, snakemake.wildcards.encoding,
                        snakemake.wildcards.target, dict(snakemake.params.section), snakemake.params.sigma0,
                        snakemake.output.model, snakemake.output.losses, snakemake.output.plot,
                        snakemake.params.workdir, heart_margin_mm=snakemake.params.heart_margin_mm,
                        memory_mb=snakemake.resources.mem_mb)
