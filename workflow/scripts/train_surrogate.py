"""Snakemake adapter: train one lead-field surrogate on the training patients' lead fields (see ecgcohort.surrogate)."""

import torch

from ecgcohort.logs import logging_to
from ecgcohort.surrogate.jobs import group_lead_field_files, train_surrogate_job

with logging_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    patients = group_lead_field_files(snakemake.params.patients, points=snakemake.input.points,
                                      electrodes=snakemake.input.electrodes, fibres=snakemake.input.fibres,
                                      chunks=snakemake.input.chunks)
    train_surrogate_job(patients, snakemake.input.codes, snakemake.wildcards.encoding,
                        snakemake.wildcards.target, dict(snakemake.params.section), snakemake.params.sigma0,
                        snakemake.output.model, snakemake.output.losses, snakemake.output.plot,
                        snakemake.params.workdir)
