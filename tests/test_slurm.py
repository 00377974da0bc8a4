"""The workflow through a real single-node SLURM cluster (tests/cluster/start-slurm.sh).

Runs wherever root can install and start SLURM (CI does); skips with the reason elsewhere.
Snakemake runs under `timeout -s INT`, so a stuck status poll fails the test with the tail
of the SLURM logs instead of hanging it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, SNAKEMAKE, WorkflowCopy

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

CLUSTER = REPO / "tests" / "cluster"
STATE = Path(os.environ.get("ECGCOHORT_SLURM_STATE", "/tmp/ecgcohort-slurm"))
SNAKEMAKE_TIMEOUT_S = 400


def why_not_here() -> str | None:
    if os.geteuid() != 0:
        return "needs root to install SLURM (apt-get), write /etc/slurm/slurm.conf and start daemons"
    installed = all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not installed and shutil.which("apt-get") is None:
        return "SLURM is not installed and there is no apt-get to install it"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and "written by ecgcohort" not in conf.read_text(errors="replace"):
        return "this machine has its own /etc/slurm/slurm.conf (a real cluster): not replacing it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = why_not_here()
    if reason:
        pytest.skip(reason)
    start = time.perf_counter()
    started = subprocess.run([str(CLUSTER / "start-slurm.sh")], capture_output=True, text=True, timeout=900)
    assert started.returncode == 0, f"SLURM did not start:\n{started.stdout}\n{started.stderr}"
    print(f"SLURM cluster started in {time.perf_counter() - start:.1f} s: {started.stderr.strip()}")
    yield
    subprocess.run([str(CLUSTER / "stop-slurm.sh")], capture_output=True, timeout=120)


def slurm_log_tail(lines: int = 40) -> str:
    parts = []
    for log in sorted((STATE / "log").glob("*")):
        parts.append(f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(parts)


def through_slurm(workflow_copy, *targets: str) -> tuple[subprocess.CompletedProcess, float]:
    command = ["timeout", "-s", "INT", "-k", "30", str(SNAKEMAKE_TIMEOUT_S), SNAKEMAKE,
               "--profile", "profiles/slurm", "--workflow-profile", str(CLUSTER / "profile"),
               "--verbose", *targets]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=workflow_copy.root, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode in (124, 137) or elapsed > SNAKEMAKE_TIMEOUT_S:
        pytest.fail(f"Snakemake through SLURM did not finish in {SNAKEMAKE_TIMEOUT_S} s.\n"
                    f"Snakemake:\n{result.stderr[-3000:]}\nSLURM logs:\n{slurm_log_tail()}")
    return result, elapsed


def sbatch_requests(log: str) -> list[tuple[str, int, int, int]]:
    """(rule, runtime min, mem MB, cpus) of every sbatch call in a verbose Snakemake log."""
    calls = re.findall(r"sbatch call: sbatch .*?--comment rule_(\w+?)(?:_wildcards_\S+)?\s.*?"
                       r"-t (\d+) --mem (\d+) .*?--cpus-per-task=(\d+)", log)
    return sorted((rule, int(t), int(mem), int(cpus)) for rule, t, mem, cpus in calls)


def slurm_jobs(log: str) -> list[dict[str, str]]:
    """What SLURM itself recorded for every job Snakemake submitted (kept for MinJobAge)."""
    recorded = []
    for job in re.findall(r"has been submitted with SLURM jobid (\d+)", log):
        shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                               check=True).stdout
        fields = dict(re.findall(r"(\w+)=(\S+)", shown))
        rule = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", fields["Comment"])
        fields["rule"] = rule.group(1) if rule else fields["Comment"]
        recorded.append(fields)
    return sorted(recorded, key=lambda f: int(f["JobId"]))


FAILING_RULE = '''

rule always_fails:
    output:
        "results/failing/never.txt",
    log:
        "results/logs/failing/always_fails.log",
    resources:
        mem_mb=scaled(100),
        runtime=scaled(1),
    shell:
        "echo 'failing on purpose' > {log}; exit 1"
'''


def test_a_failing_job_is_retried_with_more_memory_and_reported(slurm_cluster, workflow_copy):
    with open(workflow_copy.root / "Snakefile", "a") as snakefile:
        snakefile.write(FAILING_RULE)
    # one retry instead of the profile's two: each failed attempt lengthens the plugin's poll
    # interval by 10 s, and the second attempt already shows the resources scaling with it
    result, elapsed = through_slurm(workflow_copy, "--retries", "1", "results/failing/never.txt")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule always_fails" in log
    print(f"failing rule, two attempts through SLURM: {elapsed:.1f} s")

    assert sbatch_requests(log) == [("always_fails", 1, 100, 1), ("always_fails", 2, 200, 1)]
    jobs = slurm_jobs(log)
    assert [(j["MinMemoryNode"], j["TimeLimit"], j["JobState"]) for j in jobs] == [
        ("100M", "00:01:00", "FAILED"), ("200M", "00:02:00", "FAILED")]
    assert not (workflow_copy.root / "results/failing/never.txt").exists()


def test_a_patients_chain_runs_grouped_in_one_submission_and_equals_one_job_per_rule(
        slurm_cluster, workflow_copy, workflow_config, tmp_path):
    """The cohort stages and the profile's `patient` group through SLURM: the cohort design and
    the shape models one SLURM job each, two patients' parameters, anatomy and 12-lead
    electrodes (six jobs) in one, sized from its jobs; what SLURM recorded for each job; every
    output equal, byte for byte, to a local run's, which runs one job per rule (groups are
    ignored locally)."""
    config = workflow_config.copy()
    config["cohort"] = {**workflow_config["cohort"], "train": {"count": 1, "lhs_batch": 1},
                        "test": {"count": 1, "lhs_batch": 1}}
    patients = ["train-0000", "test-0000"]
    targets = ["cohort", *(f"results/patients/{patient}/anatomy/electrodes_standard.csv" for patient in patients)]
    workflow_copy.write_config(config)
    result, elapsed = through_slurm(workflow_copy, *targets)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:] + slurm_log_tail()
    print(f"cohort stages and two grouped patient chains through SLURM: {elapsed:.1f} s")

    # (comment, minutes, MB, CPUs) per submission: the group asks for its two anatomy jobs at
    # once (2 CPUs, 2 x 2,000 MB) and its three layers in series (2 + 10 + 5 min)
    group = "rule_patient_assemble_anatomy_patient_parameters_place_standard_electrodes"
    requests = sorted((comment, int(t), int(mem), int(cpus)) for comment, t, mem, cpus in re.findall(
        r"sbatch call: sbatch .*?--comment (\S+)\s.*?-t (\d+) --mem (\d+) .*?--cpus-per-task=(\d+)", log))
    assert requests == sorted([("rule_build_shape_model_wildcards_heart", 20, 4000, 1),
                               ("rule_build_shape_model_wildcards_torso", 20, 4000, 1),
                               ("rule_sample_cohort", 5, 1000, 1), (group, 17, 4000, 2)])
    jobs = slurm_jobs(log)
    assert len(jobs) == 4
    for job in jobs:
        assert job["JobState"] == "COMPLETED", job
        request = next(r for r in requests if r[0] == job["Comment"])
        assert (job["MinMemoryNode"], job["TimeLimit"], job["NumCPUs"]) == (
            f"{request[2]}M", f"00:{request[1]:02d}:00", str(request[3])), job
    assert list(pd.read_csv(workflow_copy.root / "results/cohort/cohort.csv").patient) == patients

    local = WorkflowCopy(tmp_path / "local")
    local.write_config(config)
    ran = local.snakemake(*targets)
    assert ran.returncode == 0, ran.stderr[-3000:]
    produced = sorted(path.relative_to(local.root / "results") for folder in ("cohort", "patients")
                      for path in (local.root / "results" / folder).rglob("*") if path.is_file())
    # the design and, per patient, parameters, heart, torso, anatomy summary and electrodes
    assert len(produced) >= 1 + 2 * 5
    for path in produced:
        assert (workflow_copy.root / "results" / path).read_bytes() == (local.root / "results" / path).read_bytes(), path


#: A value that is a run's clock, not a result: it differs between two runs of the same job.
CLOCK_KEY = re.compile(r"(^|_)s$|seconds|peak_rss|per_s$")


def _without_clocks(value):
    """``value`` (JSON) with every clock entry dropped, JSON held in strings included."""
    if isinstance(value, dict):
        return {key: _without_clocks(item) for key, item in value.items() if not CLOCK_KEY.search(key)}
    if isinstance(value, list):
        return [_without_clocks(item) for item in value]
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return _without_clocks(json.loads(value))
        except ValueError:
            return value
    return value


def differences(produced: Path, reference: Path) -> list[str]:
    """What differs between two runs' copies of one output (a file or a Zarr folder) apart from
    run clocks and file identities: arrays bit for bit (a mesh as its canonically numbered nodes, tetrahedra and
    tags, whose file's node blocks are in no fixed order), JSON without clocks, anything else
    byte for byte."""
    import numpy as np

    from ecgcohort.meshing.tetra import read_tagged_mesh

    if produced.is_dir():
        files = sorted(path.relative_to(produced) for path in produced.rglob("*") if path.is_file())
        assert files == sorted(path.relative_to(reference) for path in reference.rglob("*") if path.is_file())
        return [found for name in files for found in differences(produced / name, reference / name)]
    if produced.suffix == ".msh":
        mine, theirs = read_tagged_mesh(produced), read_tagged_mesh(reference)
        arrays = [("points_mm", mine.points_mm, theirs.points_mm), ("tetrahedra", mine.tetrahedra, theirs.tetrahedra),
                  ("cell_tags", mine.cell_tags, theirs.cell_tags)]
        assert sorted(mine.facets) == sorted(theirs.facets), produced
        arrays += [(f"facets {tag}", mine.facets[tag], theirs.facets[tag]) for tag in mine.facets]
        return [f"{produced}: {name}" for name, one, other in arrays if not np.array_equal(one, other)]
    if produced.suffix == ".npz":
        with np.load(produced) as mine, np.load(reference) as theirs:
            assert mine.files == theirs.files, produced
            return [f"{produced}: {name}" for name in mine.files if not CLOCK_KEY.search(name) and not (
                    _without_clocks(mine[name].item()) == _without_clocks(theirs[name].item())
                    if mine[name].dtype.kind == "U" and mine[name].ndim == 0
                    else np.array_equal(mine[name], theirs[name]))]
    if produced.name.endswith(".sha256.json"):
        # a part's checksums: inode and time are the file system's, and its metadata files hold
        # run clocks (compared above without them); its chunk files' checksums must agree
        mine, theirs = (json.loads(path.read_text())["files"] for path in (produced, reference))
        chunks = {name: entry[:2] for name, entry in mine.items() if not name.endswith("zarr.json")}
        same = mine.keys() == theirs.keys() and chunks == {name: theirs[name][:2] for name in chunks}
        return [] if same else [str(produced)]
    if produced.suffix == ".json":
        same = _without_clocks(json.loads(produced.read_text())) == _without_clocks(json.loads(reference.read_text()))
        return [] if same else [str(produced)]
    return [] if produced.read_bytes() == reference.read_bytes() else [str(produced)]


def test_a_batch_of_patients_runs_as_one_submission_and_equals_one_job_per_rule(
        slurm_cluster, workflow_copy, workflow_config, tmp_path):
    """cluster.patients_per_job: a patient's whole data chain (parameters to dataset part, 18
    stages) as one SLURM job, ``patient_batch``, sized from the profile's cores, whose nested
    Snakemake runs the stages; every file it made equal to a local run's of the same files, one
    job per rule, apart from run clocks."""
    config = workflow_config.copy()
    config["cohort"] = {**workflow_config["cohort"], "train": {"count": 1, "lhs_batch": 1},
                        "test": {"count": 1, "lhs_batch": 1}}
    # the chain run twice (through SLURM, then locally), so a cheaper one: one scenario, a
    # bank of 4 samples (every stage still runs)
    config["electrophysiology"] = {**workflow_config["electrophysiology"],
                                   "scenarios": [{"name": "sinus", "kind": "sinus"}]}
    config["ecg2act"] = {"bank": {"count": 4}}
    workflow_copy.write_config({**config, "cluster": {"patients_per_job": 1}})
    # the shape models first (locally: copied from the cache), so the batch is the only job
    ready = workflow_copy.snakemake("results/shapes/heart.npz", "results/shapes/torso.npz")
    assert ready.returncode == 0, ready.stderr[-3000:]
    result, elapsed = through_slurm(workflow_copy, "results/batches/train-0000-0000.json")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:] + slurm_log_tail()
    print(f"one patient's data chain as one batch job through SLURM: {elapsed:.1f} s")

    # 2 cores (the test profile's), 3,000 MB per core, 300 min per patient (two lead-field
    # chunks) spread over the cores
    assert sbatch_requests(log) == [("patient_batch", 150, 6000, 2)]
    jobs = slurm_jobs(log)
    assert [(job["rule"], job["JobState"]) for job in jobs] == [("patient_batch", "COMPLETED")]
    marker = json.loads((workflow_copy.root / "results/batches/train-0000-0000.json").read_text())
    assert marker["patients"] == ["train-0000"]
    files = marker["files"]
    assert "results/dataset/parts/train-0000.zarr" in files and len(files) > 30

    local = WorkflowCopy(tmp_path / "local")
    local.write_config(config)
    ran = local.snakemake(*files)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "patient_batch" not in ran.stdout + ran.stderr
    differing = [found for name in files for found in differences(workflow_copy.root / name, local.root / name)]
    assert not differing, differing


def test_a_cohort_too_large_for_the_sites_limits_is_refused_before_anything_is_submitted(
        slurm_cluster, workflow_copy, workflow_config):
    """The plan of the grouped test above needs 4 submissions and a group job of 4,000 MB: one
    submission fewer, or a node of 3,000 MB, and the run stops when it starts, naming the
    number and the setting, with nothing submitted and nothing written to results/."""
    config = workflow_config.copy()
    config["cohort"] = {**workflow_config["cohort"], "train": {"count": 1, "lhs_batch": 1},
                        "test": {"count": 1, "lhs_batch": 1}}
    targets = ["cohort", *(f"results/patients/{patient}/anatomy/electrodes_standard.csv"
                           for patient in ("train-0000", "test-0000"))]
    for limits, expected in (
            ({"max_submissions": 3}, "would submit 4 cluster jobs, more than cluster.max_submissions = 3"),
            ({"max_job_mem_mb": 3000}, "asks for 4,000 MB")):
        workflow_copy.write_config({**config, "cluster": limits})
        result, _ = through_slurm(workflow_copy, *targets)
        log = result.stdout + result.stderr
        assert result.returncode != 0
        assert "refused before submitting anything" in log and expected in log, log[-3000:]
        assert "sbatch call" not in log
        assert not (workflow_copy.root / "results/cohort").exists()


def test_a_killed_group_job_keeps_its_finished_jobs_and_the_rerun_redoes_only_the_rest(
        slurm_cluster, workflow_copy, workflow_config):
    """Two patients' parameters, anatomy and electrodes as one SLURM group job, cancelled
    (scancel) as soon as a parameters file exists: the finished jobs' outputs stay (the
    profile's keep-incomplete; every output is written under a temporary name and renamed, so
    nothing half-written can look complete), no temporary file looks like an output, and the
    re-run plans only the jobs whose outputs are missing. (Waiting for both patients' parameters
    let a loaded machine finish the first patient's anatomy before the cancel.)"""
    config = workflow_config.copy()
    config["cohort"] = {**workflow_config["cohort"], "train": {"count": 1, "lhs_batch": 1},
                        "test": {"count": 1, "lhs_batch": 1}}
    workflow_copy.write_config(config)
    patients = ("train-0000", "test-0000")
    targets = [f"results/patients/{patient}/anatomy/electrodes_standard.csv" for patient in patients]
    # the cohort and the shape models first (locally: quicker), so the group job is the only one
    ready = workflow_copy.snakemake("results/cohort/cohort.csv", "results/shapes/heart.npz", "results/shapes/torso.npz")
    assert ready.returncode == 0, ready.stderr[-3000:]

    command = [SNAKEMAKE, "--profile", "profiles/slurm", "--workflow-profile", str(CLUSTER / "profile"),
               "--retries", "0", *targets]
    # a file, not a pipe: a full pipe would stall Snakemake while the test polls
    output = (workflow_copy.root / "cancelled-run.log").open("w+")
    running = subprocess.Popen(command, cwd=workflow_copy.root, stdout=output, stderr=subprocess.STDOUT, text=True)
    parameters = [workflow_copy.root / f"results/patients/{patient}/parameters.json" for patient in patients]
    anatomy = [workflow_copy.root / f"results/patients/{patient}/anatomy/heart.vtp" for patient in patients]
    deadline = time.monotonic() + SNAKEMAKE_TIMEOUT_S
    while not any(path.exists() for path in parameters):
        assert running.poll() is None and time.monotonic() < deadline, "the group job ended before it was cancelled"
        time.sleep(0.05)
    cancelled = subprocess.run(["scancel", "--user", "root"], capture_output=True, text=True)
    assert cancelled.returncode == 0, cancelled.stderr
    running.wait(timeout=SNAKEMAKE_TIMEOUT_S)
    output.seek(0)
    log = output.read()
    output.close()
    assert running.returncode != 0, log[-3000:]
    assert not any(path.exists() for path in anatomy), "the group job finished before it was cancelled"

    kept = [path for path in parameters if path.exists()]
    assert kept, log[-3000:]
    written = [path for path in (workflow_copy.root / "results/patients").rglob("*") if path.is_file()]
    assert not [path for path in written if ".part" in path.name], written

    plan = workflow_copy.snakemake("-n", *targets, "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout + plan.stderr, re.M))
    planned.pop("total", None)
    expected = {"assemble_anatomy": "2", "place_standard_electrodes": "2"}
    if len(kept) < len(parameters):
        expected["patient_parameters"] = str(len(parameters) - len(kept))
    assert planned == expected, plan.stdout + plan.stderr
