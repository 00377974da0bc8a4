"""Where a workflow job's wall time goes: start-up (the interpreter, Snakemake's script preamble
and the script's imports, before the job's code runs), then, by sampling the main thread's
stack every few milliseconds, imports, compilation (numba, FFCx/CFFI), reading, writing,
pictures and the computation itself.

Every job script runs inside :func:`ecgcohort.logs.logging_to`, which starts a
:class:`StackSampler` and writes its split next to the job's log (``<log>.profile.json``); the
report's stage timings (:mod:`ecgcohort.timings`) read them. Sampling costs well under 1 % of a
job (one stack walk per interval, in a thread that sleeps in between).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import FrameType

#: The split's categories, in the order a stack is tested for them (an import inside a picture
#: counts as an import) and the report shows them.
CATEGORIES = ("import", "compile", "pictures", "write", "read", "compute")

#: code generators; in numba only a function named for compiling counts (compiled code holds the
#: GIL, so the sample after it lands in numba's unboxing helpers: that time is the computation's)
_COMPILE = ("/llvmlite/", "/ffcx/", "/cffi/", "/dolfinx/jit.py", "/torch/_dynamo/", "/torch/_inductor/")
_PICTURES = ("/matplotlib/", "/pyvista/", "/ecgcohort/rendering.py")
#: I/O libraries; in their frames a function named for writing makes the sample a write
_IO = ("/zarr/", "/numcodecs/", "/meshio/", "/h5py/", "/numpy/lib/_npyio_impl.py", "/numpy/lib/npyio.py",
       "/numpy/lib/format.py", "/numpy/lib/_format_impl.py", "/pandas/io/", "/xarray/backends/", "/json/",
       "/zipfile", "/wfdb/io/", "/torch/serialization.py", "/pyarrow/", "/fsspec/")
_WRITES = ("write", "save", "dump", "store", "to_", "setitem", "close", "flush")


def classify(frame: FrameType | None) -> str:
    """The category (:data:`CATEGORIES`) of a stack, given its innermost frame."""
    found: set[str] = set()
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib"):
            return "import"
        if any(part in filename for part in _COMPILE) or ("/numba/" in filename and "compile" in frame.f_code.co_name):
            found.add("compile")
        elif any(part in filename for part in _PICTURES):
            found.add("pictures")
        elif filename.endswith("/gmsh.py") and frame.f_code.co_name in ("open", "merge", "write"):
            # gmsh's API is one module: only its file calls are I/O (generate is the meshing)
            found.add("write" if frame.f_code.co_name == "write" else "read")
        elif any(part in filename for part in _IO):
            name = frame.f_code.co_name.lower()
            found.add("write" if any(word in name for word in _WRITES) else "read")
        frame = frame.f_back
    return next((category for category in CATEGORIES if category in found), "compute")


#: in a job that :mod:`ecgcohort.worker` runs, the epoch second the job's own process started
WORKER_JOB_STARTED_AT: float | None = None


def process_age_s() -> float | None:
    """Seconds since this process started (from ``/proc``; None where there is none); in a job
    the worker runs (:mod:`ecgcohort.worker`), since the job's own process started."""
    if WORKER_JOB_STARTED_AT is not None:
        return max(0.0, time.time() - WORKER_JOB_STARTED_AT)
    try:
        start_ticks = float(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


class StackSampler:
    """Samples the calling thread's stack every ``interval_s`` seconds in a daemon thread and
    adds the time since the previous sample to that sample's category."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.seconds = dict.fromkeys(CATEGORIES, 0.0)
        self.startup_s = process_age_s()
        self._target = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecgcohort-profile", daemon=True)
        self._started = time.perf_counter()
        self._cpu_started = time.process_time()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self.interval_s):
            frame = sys._current_frames().get(self._target)
            now = time.perf_counter()
            self.seconds[classify(frame)] += now - last
            last = now

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float | None]:
        """``startup_s`` (None where unknown), ``run_s`` (the sampled span), ``cpu_s`` (this
        process, start-up included), one ``<category>_s`` per category and, in a job the worker
        ran (:mod:`ecgcohort.worker`), ``worker_max_rss_mb``."""
        summary = {"startup_s": self.startup_s, "run_s": time.perf_counter() - self._started,
                   "cpu_s": time.process_time(), **{f"{key}_s": value for key, value in self.seconds.items()}}
        if WORKER_JOB_STARTED_AT is not None:
            # Snakemake's benchmark measures the job's own process, which only waited: the
            # worker's process reports its CPU time (counted from its fork) and peak memory
            import resource

            summary["worker_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return summary


def write_profile(sampler: StackSampler, path: str | Path) -> None:
    """The sampler's :meth:`~StackSampler.summary` as JSON (written whole, then renamed)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps({key: None if value is None else round(value, 4)
                                     for key, value in sampler.summary().items()}))
    temporary.replace(path)


def profile_path(log_path: str | Path) -> Path:
    """Where a job's profile goes: beside its log, ``<log stem>.profile.json``."""
    log_path = Path(log_path)
    return log_path.with_name(f"{log_path.stem}.profile.json")
