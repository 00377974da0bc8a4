"""Snakemake adapter: one batch's data chains as a nested run (see ecgcohort.batches)."""

from pathlib import Path

import yaml

from ecgcohort.batches import run_patient_batch
from ecgcohort.logs import logging_to

with logging_to(snakemake.log.main):
    # the nested run reads this run's whole config, every stage its own job
    configfile = Path(snakemake.output.marker).with_name(f".{snakemake.wildcards.batch}.config.yaml")
    config = {**snakemake.config, "cluster": {**snakemake.config["cluster"], "patients_per_job": None}}
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        run_patient_batch(batch=snakemake.wildcards.batch, patients=list(snakemake.params.patients),
                          targets=list(snakemake.params.targets), snakefile=snakemake.params.snakefile,
                          threads=snakemake.threads, mem_mb=int(snakemake.resources.mem_mb), configfile=configfile,
                          deployment=list(snakemake.params.deployment), out_marker=snakemake.output.marker,
                          log_path=snakemake.log.nested)
    finally:
        configfile.unlink(missing_ok=True)
