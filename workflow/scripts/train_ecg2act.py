"""Snakemake adapter: train Network I or II on the training patients' banks (see ecgcohort.ecg2act.training)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.ecg2act.training import train_ecg2act_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    train_ecg2act_job(
        network=snakemake.wildcards.network, bank_paths=list(inputs.banks), section=snakemake.params.section,
        workdir=snakemake.params.workdir, out_model=snakemake.output.model, out_losses=snakemake.output.losses,
        out_plot=snakemake.output.plot, memory_mb=snakemake.resources.mem_mb)
