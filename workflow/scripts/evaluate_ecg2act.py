"""Snakemake adapter: both networks on both splits (see ecgcohort.ecg2act.training)."""

from ecgcohort.ecg2act.training import evaluate_ecg2act_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    evaluate_ecg2act_job(
        model_paths=dict(zip(snakemake.params.networks, snakemake.input.models)),
        train_bank_paths=list(snakemake.input.train_banks), test_bank_paths=list(snakemake.input.test_banks),
        out_metrics=snakemake.output.metrics, out_summary=snakemake.output.summary, out_boxes=snakemake.output.boxes,
        out_map=snakemake.output.activation_map, out_overlays=snakemake.output.overlays)
