"""Snakemake adapter: write one patient's sampled parameters (see ecgcohort.cohort)."""

from ecgcohort.cohort import write_patient_parameters
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    write_patient_parameters(snakemake.params.record, snakemake.output.parameters)
