"""How long Snakemake stays alive after its last job at a given ``--max-jobs-per-timespan``.

    .venv/bin/python benchmarks/rate_limiter_exit.py                 # the local profile's rate and 1000/1m
    .venv/bin/python benchmarks/rate_limiter_exit.py 100/1s 200/10s

Snakemake's job rate limiter re-runs the job selection after every timespan in a timer thread
that the interpreter waits for at exit: a run ends up to one timespan after its last job (make
run, and every batch job's nested run, ecgcohort.batches.NESTED_JOB_RATE). Each rate runs a
one-job workflow (a 3 s sleep) in a temporary folder and prints, per rate, the process's wall
time, Snakemake's own "Elapsed time" and their difference: the time after the run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

SNAKEFILE = '''
rule sleep:
    output: "slept.txt"
    shell: "sleep 3; touch {output}"
'''


def local_profile_rate() -> str:
    """The ``max-jobs-per-timespan`` of profiles/local (what `make run` uses)."""
    return str(yaml.safe_load((REPO / "profiles/local/config.yaml").read_text())["max-jobs-per-timespan"])


def time_after_the_run(rate: str) -> tuple[float, float]:
    """(wall s, Snakemake's elapsed s) of the one-job workflow at ``rate``."""
    with tempfile.TemporaryDirectory(prefix="rate-limiter-") as folder:
        Path(folder, "Snakefile").write_text(SNAKEFILE)
        start = time.perf_counter()
        ran = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--max-jobs-per-timespan", rate],
                             cwd=folder, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
    hours, minutes, seconds = re.search(r"Elapsed time: (\d+):(\d+):([\d.]+)", ran.stderr).groups()
    return wall, 3600 * int(hours) + 60 * int(minutes) + float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rates", nargs="*", help="Snakemake rates, N/timespan (default: the local profile's, 1000/1m)")
    rates = parser.parse_args().rates or [local_profile_rate(), "1000/1m"]
    print("| --max-jobs-per-timespan | wall (s) | Snakemake's elapsed (s) | after the run (s) |")
    print("|---|---|---|---|")
    for rate in rates:
        wall, elapsed = time_after_the_run(rate)
        print(f"| {rate} | {wall:.1f} | {elapsed:.1f} | {wall - elapsed:.1f} |", flush=True)


if __name__ == "__main__":
    main()
