"""Patients per job (ecgcohort.batches): batch membership, the scripts' inputs, a failed batch.

The workflow side (a finished run switched to batches re-runs no stage; a batch's nested run is
the per-stage run) is checked on the end-to-end run of tests/test_workflow_anatomy.py."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO
from ecgcohort.batches import (NESTED_JOB_RATE, ResolvedInputs, nested_snakemake_command, patient_batches,
                               resolved_inputs, run_patient_batch)


def test_a_patients_batch_follows_from_its_number_so_growing_the_cohort_moves_no_one():
    cohort = [f"train-{n:04d}" for n in range(25)] + [f"test-{n:04d}" for n in range(5)]
    batches = patient_batches(cohort, 10)
    assert list(batches) == ["test-0000-0009", "train-0000-0009", "train-0010-0019", "train-0020-0029"]
    assert batches["train-0010-0019"] == tuple(f"train-{n:04d}" for n in range(10, 20))
    assert batches["train-0020-0029"] == tuple(f"train-{n:04d}" for n in range(20, 25))
    grown = patient_batches(cohort + ["train-0025"], 10)
    changed = {batch for batch in grown if grown[batch] != batches.get(batch)}
    assert changed == {"train-0020-0029"}  # the new patient's batch only
    # by number, not by string: test-10000 comes after test-9999, in a batch of its own
    large = patient_batches(["test-9999", "test-10000", "test-9990"], 10)
    assert large == {"test-9990-9999": ("test-9990", "test-9999"), "test-10000-10009": ("test-10000",)}


@pytest.mark.parametrize("size", [0, -3, True, 2.5, "10"])
def test_a_bad_batch_size_names_the_key(size):
    with pytest.raises(ValueError, match="cluster.patients_per_job"):
        patient_batches(["train-0000"], size)


def test_a_patient_id_outside_the_cohorts_pattern_is_refused():
    with pytest.raises(ValueError, match="'validation-0001'"):
        patient_batches(["train-0000", "validation-0001"], 10)


class _Inputs(dict):
    """What a script's snakemake.input offers: names as attributes and keys."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def test_a_script_sees_its_inputs_under_their_names_in_either_mode():
    per_stage = _Inputs(mesh="results/patients/test-0000/mesh/mesh.msh", surfaces="s.npz")
    assert resolved_inputs(per_stage, {}) is per_stage
    batched = resolved_inputs(_Inputs(chain_batches=["results/batches/test-0000-0009.json"], surfaces="s.npz"),
                              {"mesh": "results/patients/test-0000/mesh/mesh.msh", "parts": ["a.zarr", "b.zarr"]})
    assert isinstance(batched, ResolvedInputs)
    assert batched.mesh == batched["mesh"] == per_stage.mesh and batched.parts == ["a.zarr", "b.zarr"]
    assert batched.surfaces == batched["surfaces"] == "s.npz"  # not from the chain: as Snakemake gives it
    assert batched.get("electrodes") is None and batched.get("mesh") == per_stage.mesh
    assert sorted(batched.keys()) == ["mesh", "parts", "surfaces"]  # the markers are not an input of the script
    with pytest.raises(AttributeError):
        batched.electrodes


def test_a_failed_batch_names_its_patients_and_leaves_no_marker(tmp_path):
    marker, log = tmp_path / "batches/train-0000-0009.json", tmp_path / "nested.log"
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"cluster": {"patients_per_job": None}}))
    with pytest.raises(RuntimeError, match=r"batch train-0000-0009 \(patients train-0000, train-0001\).*nested.log"):
        run_patient_batch(batch="train-0000-0009", patients=["train-0000", "train-0001"],
                          targets=["results/patients/train-0000/parameters.json"],
                          snakefile=tmp_path / "no-such-Snakefile", threads=1, mem_mb=1000, configfile=config,
                          deployment=[], out_marker=marker, log_path=log)
    assert not marker.exists() and not list(marker.parent.glob("*"))
    assert "no-such-Snakefile" in log.read_text()


def test_a_splits_marker_gathers_its_batches_and_refuses_a_missing_one(tmp_path):
    """The split marker the fan-ins over a whole split wait on: its batches in order, their
    patients and seconds; markers that are not the split's batches are refused, naming both."""
    from ecgcohort.batches import write_split_marker

    markers = []
    for batch, patients, seconds in (("train-0000-0001", ["train-0000", "train-0001"], 10.0),
                                     ("train-0002-0003", ["train-0002"], 5.5)):
        markers.append(tmp_path / f"{batch}.json")
        markers[-1].write_text(json.dumps({"batch": batch, "patients": patients, "seconds": seconds}))
    out = tmp_path / "train.json"
    write_split_marker(split="train", batches=["train-0000-0001", "train-0002-0003"], markers=markers, out_marker=out)
    assert json.loads(out.read_text()) == {"split": "train", "batches": ["train-0000-0001", "train-0002-0003"],
                                           "patients": ["train-0000", "train-0001", "train-0002"], "seconds": 15.5}
    out.unlink()
    with pytest.raises(ValueError, match=r"train-0004-0005"):
        write_split_marker(split="train", batches=["train-0000-0001", "train-0004-0005"], markers=markers,
                           out_marker=out)
    assert not out.exists()


def test_the_nested_run_limits_job_starts_as_make_run_does_with_a_timer_that_ends_soon():
    """A batch's nested run passes profiles/local's ``max-jobs-per-timespan``, which never binds
    (at least 10 job starts a second) and whose timespan, the time Snakemake outlives its last job
    by (benchmarks/rate_limiter_exit.py: 8 s at 200/10s, 58 s at 1000/1m), is at most 10 s."""
    from snakemake.settings.types import MaxJobsPerTimespan

    profile = yaml.safe_load((REPO / "profiles/local/config.yaml").read_text())
    assert profile["max-jobs-per-timespan"] == NESTED_JOB_RATE
    command = nested_snakemake_command(targets=["a.txt"], snakefile="Snakefile", threads=2, mem_mb=1000,
                                       configfile="c.yaml", deployment=[])
    assert command[command.index("--max-jobs-per-timespan") + 1] == NESTED_JOB_RATE
    limit = MaxJobsPerTimespan.parse_choice(NESTED_JOB_RATE)
    assert limit.timespan <= 10 and limit.max_jobs / limit.timespan >= 10
