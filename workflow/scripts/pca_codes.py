"""Snakemake adapter: the cohort's PCA codes from the patients' parameters (see ecgcohort.encoding.pca)."""

from ecgcohort.batches import resolved_inputs
from ecgcohort.encoding.jobs import pca_codes_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    pca_codes_job(inputs.parameters, snakemake.params.include_translation, snakemake.output.codes,
                  snakemake.output.sidecar)
