"""Snakemake adapter: one patient's ECGs, one per activation scenario (see ecgcohort.ecg)."""

from ecgcohort.ecg import compute_ecgs
from ecgcohort.logs import logging_to

with logging_to(snakemake.log[0]):
    compute_ecgs(snakemake.wildcards.patient, dict(zip(snakemake.params.scenarios, snakemake.input.activation)),
                 list(snakemake.input.chunks), snakemake.input.fibres, snakemake.input.electrodes,
                 snakemake.params.conductivities, snakemake.params.duration_ms, snakemake.params.dt_ms,
                 snakemake.params.template_cache_dir,
                 {name: (snakemake.output.ecg[k], None) for k, name in enumerate(snakemake.params.scenarios)},
                 cycle_length_ms=snakemake.params.cycle_length_ms, vm_nodes=snakemake.params.vm_nodes)
