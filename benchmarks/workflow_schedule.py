"""A finished run's schedule from its Snakemake log: wall clock, the cores its jobs held and left
idle (per window of the run), when chosen rules first started, and the run's tail (the jobs that
ended last). With two logs, both side by side and their wall-clock ratio. Not a test.

    .venv/bin/python benchmarks/workflow_schedule.py RUN/.snakemake/log/X.snakemake.log \
        [OTHER.snakemake.log] [--cores 2] [--window 100] [--rules train_shape_model train_surrogate] [--tail 8]

A job holds its ``threads`` (the log's ``threads:`` line, 1 where absent) from the time stamp
above its block to the one above its ``Finished job``; the log stamps whole seconds. Idle
core-seconds are the cores no job held: a job that holds two cores and uses one counts as busy,
which the per-rule CPU of ``results/report/stage_timings.md`` shows instead.
"""

from __future__ import annotations

import argparse
import datetime
import re
from dataclasses import dataclass
from pathlib import Path

STAMP = re.compile(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]")
RULE = re.compile(r"(?:local)?rule (\S+):")
JOBID = re.compile(r"\s+jobid: (\d+)")
THREADS = re.compile(r"\s+threads: (\d+)")
FINISHED = re.compile(r"Finished job(?:id:)? (\d+)")


@dataclass
class Job:
    rule: str
    start_s: float
    end_s: float | None = None
    threads: int = 1


def read_schedule(log: Path) -> list[Job]:
    """The jobs of a Snakemake log, times in s from the first job's start."""
    stamp, rule, jobs, current = None, None, {}, None
    for line in log.read_text().splitlines():
        if match := STAMP.match(line):
            stamp = datetime.datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := RULE.match(line):
            rule = match.group(1)
        elif (match := JOBID.match(line)) and rule is not None:
            current = jobs[int(match.group(1))] = Job(rule, stamp.timestamp())
            rule = None
        elif (match := THREADS.match(line)) and current is not None:
            current.threads = int(match.group(1))
        elif match := FINISHED.match(line):
            job = jobs.get(int(match.group(1)))
            if job is not None:
                job.end_s = stamp.timestamp()
            current = None
    if not jobs:
        raise SystemExit(f"{log}: no jobs in this log")
    origin = min(job.start_s for job in jobs.values())
    for job in jobs.values():
        job.start_s -= origin
        job.end_s = job.start_s if job.end_s is None else job.end_s - origin
    return sorted(jobs.values(), key=lambda job: (job.start_s, job.end_s))


def idle_core_seconds(jobs: list[Job], cores: int, window_s: int) -> tuple[float, list[float]]:
    """(idle core-s in all, idle core-s per window) of a schedule on ``cores`` cores."""
    wall = int(max(job.end_s for job in jobs))
    held = [0] * (wall + 1)
    for job in jobs:
        for second in range(int(job.start_s), int(job.end_s)):
            held[second] += job.threads
    idle = [max(0, cores - min(h, cores)) for h in held[:wall]]
    return float(sum(idle)), [float(sum(idle[w:w + window_s])) for w in range(0, wall, window_s)]


def summary(log: Path, cores: int, window_s: int, rules: list[str], tail: int) -> float:
    jobs = read_schedule(log)
    wall = max(job.end_s for job in jobs)
    idle, windows = idle_core_seconds(jobs, cores, window_s)
    print(f"## {log}\n\n{len(jobs)} jobs, {wall:.0f} s of wall clock ({wall / 60:.1f} min), "
          f"{sum(job.end_s - job.start_s for job in jobs):.0f} s of job time; {idle:.0f} idle core-s on {cores} cores")
    print(f"idle core-s per {window_s} s: " + ", ".join(f"{w * window_s}-: {v:.0f}" for w, v in enumerate(windows)))
    for rule in rules:
        starts = [job for job in jobs if job.rule == rule]
        if starts:
            print(f"{rule}: {len(starts)} jobs, first started at {min(j.start_s for j in starts):.0f} s, "
                  f"last ended at {max(j.end_s for j in starts):.0f} s")
    print(f"the last {tail} jobs to end (start, end, s, threads, rule):")
    for job in sorted(jobs, key=lambda job: job.end_s)[-tail:]:
        print(f"  {job.start_s:6.0f} {job.end_s:6.0f} {job.end_s - job.start_s:5.0f} {job.threads} {job.rule}")
    print()
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--window", type=int, default=100, help="seconds per idle window")
    parser.add_argument("--rules", nargs="*", default=["sample_sdf", "train_shape_model", "train_surrogate",
                                                       "evaluate_surrogate", "convergence_level"])
    parser.add_argument("--tail", type=int, default=8)
    args = parser.parse_args()
    walls = [summary(log, args.cores, args.window, args.rules, args.tail) for log in args.logs]
    if len(walls) == 2:
        print(f"wall clock, second / first: {walls[1]:.0f} / {walls[0]:.0f} s = {walls[1] / walls[0]:.3f}")


if __name__ == "__main__":
    main()
