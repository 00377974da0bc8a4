"""Snakemake adapter: the cohort's PCA codes from the patients' parameters (see ecgcohort.encoding.pca)."""

from ecgcohort.encoding.jobs import pca_codes_job
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    pca_codes_job(snakemake.input.parameters, snakemake.params.include_translation, snakemake.output.codes,
                  snakemake.output.sidecar)
