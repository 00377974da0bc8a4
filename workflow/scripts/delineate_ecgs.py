"""Snakemake adapter: delineate one patient's beats and draw the clinical 12-leads (see ecgcohort.realism)."""

from ecgcohort.logs import logging_to
from ecgcohort.realism.jobs import delineate_patient_job

with logging_to(snakemake.log[0]):
    delineate_patient_job(snakemake.wildcards.patient, dict(zip(snakemake.params.scenarios, snakemake.input.ecgs)),
                          dict(snakemake.params.kinds), dict(snakemake.params.judged_as),
                          snakemake.params.cycle_length_ms, dict(snakemake.params.delineation),
                          dict(snakemake.params.features), snakemake.output.features,
                          dict(zip(snakemake.params.healthy_scenarios, snakemake.output.clinical)))
