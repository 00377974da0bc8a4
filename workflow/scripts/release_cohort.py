"""Snakemake adapter: build and verify results/release (see ecgcohort.release)."""

from pathlib import Path

from ecgcohort.batches import resolved_inputs
from ecgcohort.logs import logging_to
from ecgcohort.release import ReleaseInputs, ReleaseMetadata, build_release

with logging_to(snakemake.log[0]):
    inputs = resolved_inputs(snakemake.input, snakemake.params.chain)
    patients = list(snakemake.params.patients)
    files = ReleaseInputs(store=Path(inputs.store), anatomy=dict(zip(patients, map(Path, inputs.anatomy))),
                          features=Path(inputs.features), criteria=Path(inputs.criteria),
                          banks=dict(zip(patients, map(Path, inputs.banks))),
                          digests=dict(zip(patients, map(Path, inputs.digests))))
    build_release(files, snakemake.output.release, patients=patients,
                  metadata=ReleaseMetadata(**snakemake.params.metadata),
                  shard_bytes=int(snakemake.params.shard_mb * 2 ** 20),
                  wfdb_source=None if snakemake.params.wfdb == "none" else snakemake.params.wfdb,
                  threads=snakemake.threads, layout=snakemake.params.layout)
