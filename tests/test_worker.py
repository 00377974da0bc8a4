"""The fork server for workflow jobs (ecgcohort.worker): a job run through it exits as it would
alone, sees its own directory, environment, command line and streams, and dies with its own
process; without a server the script runs where it is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ecgcohort.timings import worker_resources
from ecgcohort.worker import JOB_ENV, SOCKET_ENV, STARTUP_FOLDER, source_fingerprint

#: a Snakemake script as Snakemake writes it: its preamble defines `snakemake` and `__real_file__`
SCRIPT = """
snakemake = object()
__real_file__ = __file__
import json, os, sys, time, signal
import ecgcohort
from ecgcohort import profiling
report = {"pid": os.getpid(), "in_worker": os.environ.get("%s"), "cwd": os.getcwd(), "argv": sys.argv[1:],
          "marker": os.environ.get("MARKER"), "started_at": profiling.WORKER_JOB_STARTED_AT,
          "age_s": profiling.process_age_s()}
print(json.dumps(report))
print("to stderr", file=sys.stderr)
if os.environ.get("SUICIDE"):
    os.kill(os.getpid(), signal.SIGKILL)
if os.environ.get("SLOW"):
    open(os.environ["STARTED"], "w").write(str(os.getpid()))
    time.sleep(float(os.environ["SLOW"]))
    open(os.environ["FINISHED"], "w").write("done")
sys.exit(int(os.environ.get("CODE", "0")))
""" % JOB_ENV


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("worker")
    socket_path = folder / "worker.sock"
    # a small preload: what is measured here is the protocol, not the imports
    process = subprocess.Popen([sys.executable, "-c", "import sys; from ecgcohort.worker import serve; "
                                f"serve({str(socket_path)!r}, ('numpy', 'ecgcohort.profiling'))"],
                               env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not socket_path.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)
    yield socket_path
    process.terminate()
    process.wait(timeout=30)


def run_script(tmp_path: Path, socket_path: Path | None, *args: str, **environment: str) -> subprocess.CompletedProcess:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, **environment}
    env.pop(SOCKET_ENV, None)
    env.pop(JOB_ENV, None)
    if socket_path is not None:
        env[SOCKET_ENV] = str(socket_path)
    return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_job_runs_in_the_worker_with_its_own_directory_environment_arguments_and_streams(server, tmp_path):
    ran = run_script(tmp_path, server, "a", "b c", MARKER="seen")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["in_worker"] == "1" and report["cwd"] == str(tmp_path)
    assert report["argv"] == ["a", "b c"] and report["marker"] == "seen"
    assert "to stderr" in ran.stderr
    # the profile's start-up counts from the job's own process, not the fork
    assert report["started_at"] is not None and 0 < report["age_s"] < 60


#: a script as Snakemake writes it for a job: its preamble's first line, then code that imports
#: neither Snakemake nor this package, and says where it ran and what its interpreter imported
EARLY_SCRIPT = """######## snakemake preamble start (automatically inserted, do not edit) ########
import json, os, sys
print(json.dumps({"in_worker": os.environ.get("%s"), "argv": sys.argv[1:], "pid": os.getpid()}))
""" % JOB_ENV


@pytest.mark.parametrize("folder, delegated", [(".snakemake/scripts", True), ("elsewhere", False)])
def test_a_snakemake_scripts_file_goes_to_the_worker_as_its_interpreter_starts(server, tmp_path, folder, delegated):
    """The worker's sitecustomize (on the PYTHONPATH `worker run` gives its command) hands a file
    under .snakemake/scripts to the server before the file's first line runs; another file
    runs where it is."""
    script = tmp_path / folder / "tmpabc.job.py"
    script.parent.mkdir(parents=True)
    script.write_text(EARLY_SCRIPT)
    env = {**os.environ, SOCKET_ENV: str(server), "PYTHONPATH": str(STARTUP_FOLDER)}
    env.pop(JOB_ENV, None)
    ran = subprocess.run([sys.executable, str(script), "x"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["argv"] == ["x"] and report["in_worker"] == ("1" if delegated else None)


def test_the_jobs_exit_status_is_its_own_processs(server, tmp_path):
    assert run_script(tmp_path, server, CODE="3").returncode == 3
    # killed by a signal: 128 + the signal, as a shell reports it
    assert run_script(tmp_path, server, SUICIDE="1").returncode == 128 + signal.SIGKILL


def test_without_a_server_the_script_runs_in_its_own_process(tmp_path):
    ran = run_script(tmp_path, tmp_path / "no-such.sock", "x")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["in_worker"] is None and report["argv"] == ["x"] and report["started_at"] is None


def test_a_server_slow_to_start_delays_the_command_by_the_timeout_and_no_more(tmp_path, capfd):
    """On a loaded machine the server may not listen within the time allowed: the command runs
    anyway (its jobs in their own processes) and its exit status is returned, not an error."""
    from ecgcohort.worker import run_with_worker

    marker = tmp_path / "ran"
    started = time.monotonic()
    code = run_with_worker([sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x'); raise SystemExit(3)"],
                           wait=True, start_timeout_s=0.0)
    assert code == 3 and marker.read_text() == "x" and time.monotonic() - started < 60
    assert "starting the command anyway" in capfd.readouterr().err


def test_a_job_whose_own_process_is_killed_dies_before_it_writes(server, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    started, finished = tmp_path / "started", tmp_path / "finished"
    env = {**os.environ, SOCKET_ENV: str(server), "SLOW": "5", "STARTED": str(started), "FINISHED": str(finished)}
    env.pop(JOB_ENV, None)
    client = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job = int(started.read_text())
    assert job != client.pid  # the script runs in the worker's process
    client.send_signal(signal.SIGTERM)  # as Snakemake ends a job
    client.wait(timeout=30)
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(job, 0)
    time.sleep(5)
    assert not finished.exists()


def test_the_sources_fingerprint_changes_with_a_modules_time_or_size(tmp_path):
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    module = package / "sub" / "module.py"
    module.write_text("x = 1\n")
    before = source_fingerprint(package)
    os.utime(module, ns=(module.stat().st_atime_ns, module.stat().st_mtime_ns + 1_000_000_000))
    touched = source_fingerprint(package)
    module.write_text("x = 10\n")
    assert len({before, touched, source_fingerprint(package)}) == 3


def test_a_worker_jobs_cpu_and_memory_come_from_its_profile(tmp_path):
    row = pd.DataFrame({"s": [10.0], "cpu_time": [0.2], "max_rss": [30.0]})
    profile = tmp_path / "job.profile.json"
    profile.write_text(json.dumps({"cpu_s": 9.5, "worker_max_rss_mb": 812.0}))
    measured = worker_resources(row, profile)
    assert measured.cpu_time.item() == pytest.approx(9.7) and measured.max_rss.item() == 812.0
    profile.write_text(json.dumps({"cpu_s": 9.5}))  # a job in its own process: Snakemake measured it
    assert worker_resources(row, profile).equals(row)


def test_the_servers_preload_leaves_one_thread_no_mpi_and_what_the_jobs_import_on_first_use():
    """:data:`PRELOAD` as the server imports it: one thread and no MPI after it (else the server
    refuses to fork), and the modules the jobs' libraries used to import on first use loaded:
    torch's optimisers' torch._dynamo, numba's CPU target's implementations."""
    from ecgcohort.worker import _SERVER_ENV

    probe = ("import json, os, sys; from ecgcohort.worker import preload; loaded = preload(); "
             "print(json.dumps({'threads': len(os.listdir('/proc/self/task')), 'modules': sorted(sys.modules)}))")
    ran = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **_SERVER_ENV}, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert report["threads"] == 1
    modules = set(report["modules"])
    assert not modules & {"mpi4py", "petsc4py", "dolfinx"}
    assert {"torch._dynamo", "lightning.pytorch", "dask.array", "ffcx.codegeneration.jit",
            "numba.np.arraymath"} <= modules
