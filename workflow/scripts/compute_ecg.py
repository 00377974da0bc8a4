"""Snakemake adapter: one patient's ECG for one activation scenario (see ecgcohort.ecg)."""

from ecgcohort.ecg import compute_ecg
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    compute_ecg(snakemake.wildcards.patient, snakemake.wildcards.scenario, list(snakemake.input.chunks),
                snakemake.input.activation, snakemake.input.fibres, snakemake.input.electrodes,
                snakemake.params.conductivities, snakemake.params.duration_ms, snakemake.params.dt_ms,
                snakemake.params.template_cache_dir, snakemake.output.ecg, snakemake.output.preview,
                cycle_length_ms=snakemake.params.cycle_length_ms)
