"""Snakemake adapter: evaluate a lead-field surrogate on one test patient (see ecgcohort.surrogate)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.logs import logging_to
from ecgcohort.surrogate.jobs import evaluate_surrogate_job

import torch  # after ecgcohort: under ecgcohort.worker the job hands its script over before this

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    torch.set_num_threads(snakemake.threads)
    evaluate_surrogate_job(
        patient=snakemake.wildcards.patient, store=inputs.part, model_path=inputs.model,
        codes_csv=inputs.codes, evaluation=dict(snakemake.params.evaluation),
        conductivities=dict(snakemake.params.conductivities), duration_ms=snakemake.params.duration_ms,
        dt_ms=snakemake.params.dt_ms, cycle_length_ms=snakemake.params.cycle_length_ms,
        template_cache_dir=snakemake.params.template_cache_dir, out_json=snakemake.output.summary,
        out_npz=snakemake.output.errors)
