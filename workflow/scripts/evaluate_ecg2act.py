"""Snakemake adapter: both networks on both splits (see ecgcohort.ecg2act.training)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.ecg2act.training import evaluate_ecg2act_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    evaluate_ecg2act_job(
        model_paths=dict(zip(snakemake.params.networks, inputs.models)),
        train_bank_paths=list(inputs.train_banks), test_bank_paths=list(inputs.test_banks),
        out_metrics=snakemake.output.metrics, out_summary=snakemake.output.summary, out_boxes=snakemake.output.boxes,
        out_map=snakemake.output.activation_map, out_overlays=snakemake.output.overlays,
        min_scored_samples=snakemake.params.min_scored_samples)
