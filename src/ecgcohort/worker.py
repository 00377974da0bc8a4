"""A fork server for the workflow's Python jobs on one machine: the imports paid once per run.

Every Snakemake ``script:`` job is a fresh interpreter that imports numpy, scipy, torch, pyvista
and this package before its first line of work: 117 s of start-up and 256 s of imports in the
default ``make run``'s 2,160 s of job time (2026-11-28). ``python -m ecgcohort.worker run --
COMMAND`` starts a server that imports those modules once (:data:`PRELOAD`), then runs COMMAND
(``make run``'s Snakemake) with :data:`SOCKET_ENV` naming the server's socket and
:data:`STARTUP_FOLDER` on its PYTHONPATH. A job's interpreter imports that folder's
``sitecustomize`` as it starts (:func:`delegate_at_startup`; a job whose script's own
``import ecgcohort`` comes first falls back on :func:`delegate_snakemake_script`), which hands the
script to the server, which forks a process with the modules already loaded, gives it the job's working
directory, environment, command line and standard streams, and runs the script there; the job's
own process waits and exits with the script's exit status.

Faults: the job runs in its own process group under a supervisor that kills it when the job's
own process ends first (Snakemake killed the job: nothing of it keeps running or writing); a job
that crashes or is killed reports 128 + the signal, as a shell would. Where the socket is not set,
not there or refuses (the package's sources or the installed libraries changed since the server
loaded them), the script runs in its own process as before. POSIX only (fork, Unix sockets); a
cluster job that is one rule's job runs alone, a batch job's nested run has a server of its own.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

#: where a job finds the server's socket (set by :func:`run_with_worker`)
SOCKET_ENV = "ECGCOHORT_WORKER_SOCKET"
#: set in a job the server runs: the processes it starts run their scripts themselves
JOB_ENV = "ECGCOHORT_WORKER_JOB"
#: set in a process whose script the server refused, so that it asks once
_REFUSED_ENV = "ECGCOHORT_WORKER_REFUSED"
#: on PYTHONPATH of the command :func:`run_with_worker` runs: its ``sitecustomize`` hands a
#: Snakemake script to the server as the interpreter starts (:func:`delegate_at_startup`)
STARTUP_FOLDER = Path(__file__).resolve().parent / "_startup"

#: imported once by the server: what the workflow's scripts import at their start, and what their
#: libraries import on first use (a job's own imports, listed per job from ``sys.modules`` on
#: 2026-11-29: torch's optimisers import torch._dynamo, sympy and triton, 2 s in every training
#: job; the DeepSDF and surrogate trainings Lightning; xarray and zarr dask; the FEM jobs UFL,
#: FFCx and basix). Nothing that initialises MPI (dolfinx, petsc4py) and nothing that starts a
#: thread: a job forked from a process with other threads may inherit their locks held.
#: triton's LLVM before any picture's Mesa LLVM (:func:`ecgcohort.rendering.offscreen_plotter`).
PRELOAD = (
    "numpy", "scipy.sparse", "scipy.sparse.linalg", "scipy.spatial", "scipy.signal", "scipy.stats", "scipy.ndimage",
    "scipy.interpolate", "scipy.optimize", "scipy.fftpack", "numba", "pandas", "xarray", "zarr", "dask", "dask.array",
    "jinja2", "psutil", "matplotlib", "matplotlib.pyplot", "PIL.Image",
    "torch", "torch._dynamo", "triton._C.libtriton", "lightning.pytorch", "torchmetrics",
    "ufl", "basix.ufl", "ffcx", "cffi", "pycparser",
    "ffcx.codegeneration.jit", "ffcx.ir.representation", "ffcx.analysis",
    "pyvista", "pyvista.plotting", "vtkmodules.vtkIOXML", "matplotlib.backends.backend_agg", "pyarrow.pandas_compat",
    "snakemake.script", "snakemake.iocontainers", "snakemake.logging",
    "ecgcohort.learning.backbone", "ecgcohort.conduction.eikonal_compiled", "ecgcohort.fibers.frames",
    "ecgcohort.ecg.forward", "ecgcohort.ecg.pseudo", "ecgcohort.ecg.inputs", "ecgcohort.leadfield.matrix",
    "ecgcohort.leadfield.solver", "ecgcohort.leadfield.tensors", "ecgcohort.shapes.heart",
    "ecgcohort.anatomy.electrode_csv",
    "ecgcohort.anatomy.jobs", "ecgcohort.meshing.jobs", "ecgcohort.fibers.jobs", "ecgcohort.conduction.jobs",
    "ecgcohort.conduction.purkinje_jobs", "ecgcohort.leadfield.jobs", "ecgcohort.ecg.jobs", "ecgcohort.realism.jobs",
    "ecgcohort.encoding.jobs", "ecgcohort.dataset.assemble", "ecgcohort.ecg2act.jobs", "ecgcohort.surrogate.jobs",
    "ecgcohort.inverse.jobs",
)
#: the server's own thread settings while it imports: one thread everywhere, so no library starts a pool
_SERVER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
_ACCEPTED = "accepted"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: how often a supervisor looks at its job (s)
_POLL_S = 0.02


class WorkerError(RuntimeError):
    """The server could not start or lost a job."""


def _send_line(connection: socket.socket, message: Any, fds: Sequence[int] = ()) -> None:
    payload = (json.dumps(message) + "\n").encode()
    sent = socket.send_fds(connection, [payload], list(fds)) if fds else connection.send(payload)
    if sent < len(payload):
        connection.sendall(payload[sent:])


def _receive_line(connection: socket.socket, max_fds: int = 0) -> tuple[Any, list[int]]:
    """One JSON line (and up to ``max_fds`` file descriptors sent with its first bytes)."""
    chunks, fds = [], []
    while True:
        if max_fds and not fds and not chunks:
            data, fds, _, _ = socket.recv_fds(connection, 1 << 16, max_fds)
        else:
            data = connection.recv(1 << 16)
        if not data:
            raise WorkerError("connection closed before a whole message")
        chunks.append(data)
        if data.endswith(b"\n"):
            return json.loads(b"".join(chunks)), list(fds)


def source_fingerprint(root: str | Path | None = None) -> str:
    """The size and modification time of every module below ``root`` (default: this package) and
    of the folder the installed libraries are in (an install or removal changes it), as one
    string: the server refuses jobs once it differs from what it loaded."""
    root = Path(__file__).resolve().parent if root is None else Path(root)
    stats = sorted((str(path.relative_to(root)), path.stat().st_size, path.stat().st_mtime_ns)
                   for path in root.rglob("*.py"))
    libraries = Path(sysconfig.get_paths()["purelib"])
    return json.dumps([stats, libraries.stat().st_mtime_ns if libraries.exists() else None])


# ---------------------------------------------------------------------------------------------
# the job's own process


def delegate_snakemake_script() -> None:
    """Run the Snakemake script this process runs in the server named by :data:`SOCKET_ENV`
    and exit with its status; return (run it here) where there is no server, it refuses, or this
    process is not a Snakemake script (its ``__main__`` has no ``snakemake`` and
    ``__real_file__``) or already a job of the server."""
    main = sys.modules.get("__main__")
    if main is None or not hasattr(main, "snakemake") or not hasattr(main, "__real_file__"):
        return
    _delegate(os.path.abspath(main.__real_file__))


#: the first line Snakemake writes into a ``script:`` job's file
_PREAMBLE_START = b"######## snakemake preamble start"


def delegate_at_startup() -> None:
    """:func:`delegate_snakemake_script` as the interpreter starts (the worker's
    ``sitecustomize``, :data:`STARTUP_FOLDER`): when this process runs a file Snakemake wrote for
    a ``script:`` job (under ``.snakemake/scripts``, beginning with Snakemake's preamble), the
    server runs it before the preamble here imports Snakemake (0.13 s a job)."""
    if not sys.argv or not sys.argv[0]:
        return
    script = os.path.abspath(sys.argv[0])
    if f"{os.sep}.snakemake{os.sep}scripts{os.sep}" not in script:
        return
    try:
        with open(script, "rb") as handle:
            if handle.read(len(_PREAMBLE_START)) != _PREAMBLE_START:
                return
    except OSError:
        return
    _delegate(script)


def _delegate(script: str) -> None:
    """Have the server run ``script`` (with this process's command line, directory, environment
    and streams) and exit with its status; return where there is no server or it refuses."""
    socket_path = os.environ.get(SOCKET_ENV)
    if not socket_path or os.environ.get(JOB_ENV):
        return
    from ecgcohort.profiling import process_age_s

    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(socket_path)
        _send_line(connection, {"script": script, "argv": sys.argv, "cwd": os.getcwd(), "environ": dict(os.environ),
                                "started_at": time.time() - (process_age_s() or 0.0)}, fds=(0, 1, 2))
        answer, _ = _receive_line(connection)
    except (OSError, WorkerError, ValueError):
        connection.close()
        return
    if answer != _ACCEPTED:
        connection.close()
        # refused (the sources changed): the script runs here, and its own `import ecgcohort`
        # need not ask again
        os.environ[_REFUSED_ENV] = "1"
        return
    # the script runs in the server from here: its status is this process's
    try:
        status, _ = _receive_line(connection)
        code = int(status["exit"])
    except (OSError, WorkerError, ValueError, KeyError, TypeError):
        print(f"ecgcohort.worker: the server at {socket_path} lost the job {script}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ---------------------------------------------------------------------------------------------
# the server


def preload(modules: Sequence[str] = PRELOAD) -> list[str]:
    """Import ``modules`` (those that do not import are skipped) and return the imported ones;
    WorkerError if the process has more than one thread afterwards."""
    import importlib

    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    if "numba" in sys.modules:
        # numba's CPU target imports and registers its implementations at its first compilation
        # or cache load (0.5 s, 72 modules): once here instead of in every job that calls numba
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise WorkerError(f"the worker has {threads} threads after importing {', '.join(loaded)}: forking it is unsafe")
    for name in ("mpi4py", "petsc4py"):
        if name in sys.modules:
            raise WorkerError(f"the worker imported {name}: MPI must be initialised in each job, not the server")
    return loaded


def serve(socket_path: str | Path, modules: Sequence[str] = PRELOAD) -> None:
    """Import ``modules``, then listen on ``socket_path`` and run each job that connects in a
    forked process (see the module's docstring). Runs until SIGTERM or SIGINT."""
    preload(modules)
    # the imported modules' objects out of the collector's reach: a job's full collections would
    # otherwise walk them all and write to every page of them (copied on write after the fork)
    gc.collect()
    gc.freeze()
    fingerprint = source_fingerprint()
    socket_path = Path(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bound under another name and renamed: a job sees the socket only once it accepts
    staging = socket_path.with_name(f".{socket_path.name}.{os.getpid()}")
    staging.unlink(missing_ok=True)
    listener.bind(str(staging))
    listener.listen(64)
    staging.replace(socket_path)

    def stop(*_: Any) -> None:
        socket_path.unlink(missing_ok=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the supervisors are reaped by the kernel
    while True:
        try:
            connection, _ = listener.accept()
        except InterruptedError:
            continue
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _supervise(connection, fingerprint)
        connection.close()


def _supervise(connection: socket.socket, fingerprint: str) -> None:
    """A forked supervisor: read the job's request, fork the job, report its exit status, or
    kill its process group if the job's own process ends first. Never returns."""
    job = 0

    def end(*_: Any) -> None:
        # the supervisor is in the terminal's process group (an interrupt reaches it), the job
        # in its own: whatever ends the supervisor ends the job first
        if job:
            os.killpg(job, signal.SIGKILL)
            os.waitpid(job, 0)
        os._exit(0)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, end)
    try:
        request, fds = _receive_line(connection, max_fds=3)
        if len(fds) != 3:
            _send_line(connection, "refused: the job's standard streams did not arrive")
            os._exit(0)
        if source_fingerprint() != fingerprint:
            _send_line(connection, "refused: the ecgcohort sources or the installed libraries changed since the server loaded them")
            os._exit(0)
        _send_line(connection, _ACCEPTED)
        job = os.fork()
        if job == 0:
            connection.close()
            _run_job(request, fds)
        for fd in fds:
            os.close(fd)
        while True:
            # the job's own process never writes after its request: readable means it ended
            ready, _, _ = select.select([connection], [], [], _POLL_S)
            if ready:
                end()
            ended, status = os.waitpid(job, os.WNOHANG)
            if ended:
                break
        job = 0
        code = os.waitstatus_to_exitcode(status)
        _send_line(connection, {"exit": code if code >= 0 else 128 - code})
    except BaseException:  # noqa: BLE001 - a supervisor never returns into the server's loop
        pass
    os._exit(0)


def _apply_thread_limits(environ: dict[str, str]) -> None:
    """The job's thread counts (Snakemake sets OMP_NUM_THREADS and the BLAS variables to the
    job's threads) in the libraries the server loaded with one thread each."""
    threads = int(environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _run_job(request: dict[str, Any], fds: list[int]) -> None:
    """A forked job: the request's streams, directory, environment and command line, then its
    script as ``__main__``; exits with the script's status. Never returns."""
    import runpy
    import traceback

    code = 1
    try:
        os.setpgrp()
        for signum in _STOP_SIGNALS:
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environ"])
        os.environ[JOB_ENV] = "1"
        from ecgcohort import profiling

        profiling.WORKER_JOB_STARTED_AT = float(request["started_at"])
        sys.argv = list(request["argv"])
        sys.path[0] = os.path.dirname(request["script"])
        _apply_thread_limits(os.environ)
        code = 0
        runpy.run_path(request["script"], run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, (int, type(None))):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported as the script's own process would
        traceback.print_exc()
        code = 1
    finally:
        import logging

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    os._exit(code)


# ---------------------------------------------------------------------------------------------
# a command with a server beside it


def run_with_worker(command: Sequence[str], wait: bool = False, start_timeout_s: float = 120.0) -> int:
    """Run ``command`` with a server (:func:`serve`) beside it for its Python jobs; returns the
    command's exit status. The command starts at once (jobs that start before the server has
    imported its modules run in their own processes) or, with ``wait``, once the server listens;
    if it has not within ``start_timeout_s`` seconds (a machine loaded by other work) or has
    exited, the command starts anyway, with a warning, and its jobs run in their own processes
    until the server listens."""
    with tempfile.TemporaryDirectory(prefix="ecgcohort-worker-") as folder:
        socket_path = Path(folder) / "worker.sock"
        server = subprocess.Popen([sys.executable, "-m", "ecgcohort.worker", "serve", str(socket_path)],
                                  env={**os.environ, **_SERVER_ENV}, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + start_timeout_s
            while wait and not socket_path.exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    state = (f"exited with status {server.poll()}" if server.poll() is not None
                             else f"not listening after {start_timeout_s:g} s")
                    print(f"ecgcohort.worker: the server is {state}: starting the command anyway, its jobs in "
                          "their own processes until the server listens", file=sys.stderr, flush=True)
                    break
                time.sleep(0.05)
            # a command started by a worker's job (a batch's nested run) has a server of its own
            environment = {key: value for key, value in os.environ.items() if key not in (JOB_ENV, _REFUSED_ENV)}
            python_path = os.pathsep.join([str(STARTUP_FOLDER)] + [entry for entry in
                                                                   environment.get("PYTHONPATH", "").split(os.pathsep)
                                                                   if entry and entry != str(STARTUP_FOLDER)])
            return subprocess.call(list(command), env={**environment, SOCKET_ENV: str(socket_path),
                                                       "PYTHONPATH": python_path})
        finally:
            server.terminate()
            try:
                server.wait(timeout=start_timeout_s)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecgcohort.worker", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="what", required=True)
    run = commands.add_parser("run", help="run a command (e.g. snakemake ...) with a server for its jobs")
    run.add_argument("--wait", action="store_true", help="start the command once the server listens")
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    served = commands.add_parser("serve", help="the server alone, on a socket path")
    served.add_argument("socket")
    args = parser.parse_args(argv)
    if args.what == "serve":
        serve(args.socket)
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command after --")
    return run_with_worker(command, wait=args.wait)


if __name__ == "__main__":
    sys.exit(main())
