"""Snakemake adapter: build and verify results/release (see ecgcohort.release)."""

from pathlib import Path

from ecgcohort.logs import logging_to
from ecgcohort.release import ReleaseInputs, ReleaseMetadata, build_release

with logging_to(snakemake.log[0]):
    patients = list(snakemake.params.patients)
    inputs = ReleaseInputs(store=Path(snakemake.input.store),
                           anatomy=dict(zip(patients, map(Path, snakemake.input.anatomy))),
                           features=Path(snakemake.input.features), criteria=Path(snakemake.input.criteria),
                           banks=dict(zip(patients, map(Path, snakemake.input.banks))))
    build_release(inputs, snakemake.output.release, patients=patients,
                  metadata=ReleaseMetadata(**snakemake.params.metadata),
                  shard_bytes=int(snakemake.params.shard_mb * 2 ** 20),
                  wfdb_source=None if snakemake.params.wfdb == "none" else snakemake.params.wfdb,
                  threads=snakemake.threads)
