"""What planning a cohort costs: ``snakemake --dry-run`` at several cohort sizes (prints a table;
not a test).

    .venv/bin/python benchmarks/planning.py --patients 100 1000 --work /tmp/planning
    .venv/bin/python benchmarks/planning.py --config config/paper.yaml --patients 110
    .venv/bin/python benchmarks/planning.py --patients 1000 10000 --overlay config/large.yaml

For each size, the workflow linked into ``--work`` and planned with the config's
``cohort.train.count`` set to 90 % of the patients and ``cohort.test.count`` to the rest, Latin
hypercube batches of at most 100, then ``snakemake --cores 2 --dry-run --quiet rules`` timed as a
fresh process: wall clock, peak memory (the process's maximum resident set), jobs planned, and
per patient; then one job's start-up, what every cluster job pays before its work: the dry run of
one patient's parameters (reading the Snakefile, the DAG of that job), or with
``cluster.patients_per_job`` set (e.g. by ``--overlay config/large.yaml``, merged over ``--config``) of
the first batch's marker; then the ratio of the
per-patient times of the largest and the smallest size (1.0: planning grows with the cohort, not
faster).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def scaled_config(folder: Path, config: dict, patients: int) -> Path:
    """A folder planning ``patients`` patients: the workflow linked (as benchmarks/patient_pipeline.py
    does) and the scaled config written beside it; returns the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "profiles", "envs"):
        if not (folder / name).exists():
            (folder / name).symlink_to(REPO / name)
    test = max(1, patients // 10)
    config = dict(config, cohort=dict(config["cohort"]))
    config["cohort"]["train"] = {"count": patients - test, "lhs_batch": min(100, patients - test)}
    config["cohort"]["test"] = {"count": test, "lhs_batch": min(100, test)}
    path = folder / f"planning-{patients}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def timed(command: list[str], folder: Path) -> tuple[float, float, str]:
    """(seconds, peak resident GB, stdout + stderr) of ``command`` run in ``folder``, the peak of
    that process alone."""
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=folder, stdout=output, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        output.seek(0)
        text = output.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{text[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024**2, text


def dry_run(folder: Path, config: Path, *targets: str) -> tuple[float, float, int]:
    """(seconds, peak resident GB, jobs) of one ``snakemake --dry-run`` of ``config`` in ``folder``."""
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    elapsed, peak_gb, output = timed([snakemake, *targets, "--cores", "2", "--dry-run", "--configfile", str(config),
                                      "--quiet", "rules"], folder)
    total = re.search(r"^total\s+(\d+)\s*$", output.split("Job stats:", 1)[-1], re.M)
    return elapsed, peak_gb, int(total.group(1)) if total else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml", help="the config to scale (default: the default)")
    parser.add_argument("--patients", type=int, nargs="+", default=[100, 1000], help="cohort sizes to plan")
    parser.add_argument("--overlay", default=None, help="a config merged over --config (e.g. config/large.yaml)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ecgcohort-planning"), help="scratch folder")
    arguments = parser.parse_args()
    config = yaml.safe_load((REPO / arguments.config).read_text())
    if arguments.overlay:
        for section, values in yaml.safe_load((REPO / arguments.overlay).read_text()).items():
            config[section] = {**config.get(section, {}), **values}
    rows = []
    print("| patients | jobs | dry run (s) | per patient (ms) | peak memory (GB) | one job's start-up (s, GB) |\n"
          "|---|---|---|---|---|---|")
    for patients in sorted(arguments.patients):
        per_job = config.get("cluster", {}).get("patients_per_job")
        scaled = scaled_config(arguments.work, config, patients)
        seconds, peak_gb, jobs = dry_run(arguments.work, scaled)
        one_job = (f"results/batches/train-0000-{per_job - 1:04d}.json" if per_job
                   else "results/patients/train-0000/parameters.json")
        startup_s, startup_gb, _ = dry_run(arguments.work, scaled, one_job)
        rows.append((patients, seconds))
        print(f"| {patients:,} | {jobs:,} | {seconds:.1f} | {1e3 * seconds / patients:.1f} | {peak_gb:.2f} | "
              f"{startup_s:.1f}, {startup_gb:.2f} |", flush=True)
    if len(rows) > 1:
        (small, small_s), (large, large_s) = rows[0], rows[-1]
        print(f"\nper-patient planning time at {large:,} against {small:,} patients: "
              f"{(large_s / large) / (small_s / small):.2f}x")


if __name__ == "__main__":
    main()
