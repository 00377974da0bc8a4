"""Patients per job: a large cohort's per-patient data chains run as batch jobs (config
``cluster.patients_per_job``).

With every stage of every patient its own job, a 10,000-patient cohort is about 180,000 jobs,
and Snakemake spends about 5 ms planning each one (a 16-minute dry run). With ``K`` patients per
job the workflow plans one job per batch of ``K`` patients, ``patient_batch``, whose output is
a small marker file; the job runs the batch's data chains (parameters to dataset part) with a
nested Snakemake of this same workflow, every stage its own job inside it, so reruns inside a
batch stay per stage and per patient. The rules downstream (fan-ins, per-test-patient stages)
take the batch markers as inputs and their per-patient files as ``params.chain``
(:func:`resolved_inputs` gives a script the files under their usual names).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)

#: a batch id: the split and the first and last patient number it can hold (train-0010-0019)
BATCH_ID_PATTERN = r"(train|test)-[0-9]+-[0-9]+"


def patient_batches(patients: Sequence[str], size: int) -> dict[str, tuple[str, ...]]:
    """The batches of ``size`` patients: batch id -> its patients, in id order. A patient's batch
    follows from its split and number alone (train-0013 is in train-0010-0019 at size 10), so
    adding patients to a cohort leaves every other patient's batch as it was."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"cluster.patients_per_job: {size!r} is not a positive number of patients")
    batches: dict[str, list[str]] = {}
    for patient in patients:
        split, _, number = patient.partition("-")
        if not re.fullmatch(r"(train|test)", split) or not number.isdigit():
            raise ValueError(f"patient id '{patient}' is not <train|test>-<number>")
        first = int(number) // size * size
        batches.setdefault(f"{split}-{first:04d}-{first + size - 1:04d}", []).append(patient)
    return {batch: tuple(sorted(members, key=lambda p: int(p.partition("-")[2])))
            for batch, members in sorted(batches.items(), key=lambda item: (item[0].split("-")[0],
                                                                              int(item[0].split("-")[1])))}


#: The nested run's job rate limit, as profiles/local's: Snakemake's default (100/1s) re-runs the
#: job selection every second while jobs wait for cores (the scheduler's CPU in `make run` 179 s
#: against 18 s at 1000/1m), and the limiter's timer outlives the run by up to its timespan
#: (a batch's nested run ended 58 s after its last job at 1000/1m); docs/changelog.md, "Snakemake's
#: scheduler at rest between jobs" and "The job rate limiter's timer at the end of a run".
NESTED_JOB_RATE = "200/10s"


class ResolvedInputs:
    """A script's ``snakemake.input`` with the per-patient chain files put back under their names
    (``chain``: name -> path or list of paths, empty when every stage runs as its own job)."""

    def __init__(self, inputs: Any, chain: Mapping[str, Any]):
        self._inputs = inputs
        self._chain = dict(chain)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._chain[name] if name in self._chain else getattr(self._inputs, name)

    def __getitem__(self, key: Any) -> Any:
        return self._chain[key] if isinstance(key, str) and key in self._chain else self._inputs[key]

    def get(self, name: str, default: Any = None) -> Any:
        return self._chain[name] if name in self._chain else self._inputs.get(name, default)

    def keys(self) -> list[str]:
        return [*(name for name in self._inputs.keys() if name != "chain_batches"), *self._chain]


def resolved_inputs(inputs: Any, chain: Mapping[str, Any] | None) -> Any:
    """``inputs`` (a script's ``snakemake.input``) as the script expects it in either mode: as is
    when ``chain`` is empty, else with ``chain``'s names (the files behind the batch markers)."""
    return ResolvedInputs(inputs, chain) if chain else inputs


def nested_snakemake_command(*, targets: Sequence[str], snakefile: str | Path, threads: int, mem_mb: int,
                             configfile: str | Path, deployment: Sequence[str]) -> list[str]:
    """The command of a batch's nested Snakemake: ``targets`` (the batch's per-patient files)
    with ``configfile`` (the outer run's whole config, ``cluster.patients_per_job: null``: every
    stage its own job), at most ``threads`` cores and ``mem_mb`` MB at once. No lock: the outer
    run holds the directory and gives each batch its own patients' files. The nested jobs are
    forked from one process that imported their libraries once (:mod:`ecgcohort.worker`). Its
    rate limit, as profiles/local's, keeps Snakemake from redoing its job selection every second
    while the chains' jobs wait for the batch's cores."""
    command = [sys.executable, "-m", "ecgcohort.worker", "run", "--",
               sys.executable, "-m", "snakemake", *targets, "--snakefile", str(snakefile), "--cores", str(threads),
               "--resources", f"mem_mb={mem_mb}", "--nolock", "--keep-going", "--rerun-incomplete",
               "--max-jobs-per-timespan", NESTED_JOB_RATE, "--configfile", str(configfile)]
    if deployment:
        command.extend(["--software-deployment-method", *deployment])
    return command


def run_patient_batch(*, batch: str, patients: Sequence[str], targets: Sequence[str], snakefile: str | Path,
                      threads: int, mem_mb: int, configfile: str | Path, deployment: Sequence[str],
                      out_marker: str | Path, log_path: str | Path) -> None:
    """Run one batch's data chains (a nested Snakemake of ``targets``,
    :func:`nested_snakemake_command`, its output in ``log_path``) and write its marker
    ``out_marker`` (JSON: the batch, its patients, seconds, the files it made) once every target
    exists. A failure names the batch and its patients and leaves no marker: the next run re-runs
    the batch, whose nested run redoes only what is missing."""
    command = nested_snakemake_command(targets=targets, snakefile=snakefile, threads=threads, mem_mb=mem_mb,
                                       configfile=configfile, deployment=deployment)
    start = time.perf_counter()
    log.info("batch %s: %d patients (%s), %d files, a nested run on %d cores (its log: %s)", batch, len(patients),
             ", ".join(patients), len(targets), threads, log_path)
    with open(log_path, "w") as stream:
        status = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"batch {batch} (patients {', '.join(patients)}): the nested Snakemake run failed with "
                           f"exit status {status} after {seconds:.0f} s (its log: {log_path}). What finished is kept; "
                           "the next run re-runs the rest")
    missing = [target for target in targets if not os.path.exists(target)]
    if missing:
        raise RuntimeError(f"batch {batch}: the nested run left {len(missing)} of its files missing, e.g. {missing[0]}")
    with atomic_path(out_marker) as temporary:
        temporary.write_text(json.dumps({"batch": batch, "patients": list(patients), "seconds": round(seconds, 1),
                                         "files": list(targets)}, indent=1))
    log.info("batch %s: done in %.0f s", batch, seconds)


def write_split_marker(*, split: str, batches: Sequence[str], markers: Sequence[str | Path],
                       out_marker: str | Path) -> None:
    """Write a split's marker (JSON: the split, its batches, its patients, the batches' seconds)
    from its batch markers ``markers``, one per batch of ``batches`` in that order."""
    records = [json.loads(Path(marker).read_text()) for marker in markers]
    found = [record.get("batch") for record in records]
    if found != list(batches):
        raise ValueError(f"split {split}: the batch markers hold batches {found}, expected {list(batches)}")
    with atomic_path(out_marker) as temporary:
        temporary.write_text(json.dumps({"split": split, "batches": list(batches),
                                         "patients": [patient for record in records for patient in record["patients"]],
                                         "seconds": round(sum(record.get("seconds", 0.0) for record in records), 1)},
                                        indent=1))
    log.info("split %s: %d batches, %d patients", split, len(batches), sum(len(r["patients"]) for r in records))
