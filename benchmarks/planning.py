"""What planning a cohort costs: ``snakemake --dry-run`` at several cohort sizes (prints a table;
not a test).

    .venv/bin/python benchmarks/planning.py --patients 100 1000 --work /tmp/planning
    .venv/bin/python benchmarks/planning.py --config config/paper.yaml --patients 110

For each size, the workflow linked into ``--work`` and planned with the config's
``cohort.train.count`` set to 90 % of the patients and ``cohort.test.count`` to the rest, Latin
hypercube batches of at most 100, then ``snakemake --cores 2 --dry-run --quiet rules`` timed as a
fresh process: wall clock, peak memory (the child's maximum resident set), jobs planned, and
per patient; then the ratio of the per-patient times of the largest and the smallest size (1.0:
planning grows with the cohort, not faster).
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
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


def dry_run(folder: Path, config: Path) -> tuple[float, float, int]:
    """(seconds, peak resident GB, jobs) of one ``snakemake --dry-run`` of ``config`` in ``folder``."""
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    start = time.perf_counter()
    result = subprocess.run([snakemake, "--cores", "2", "--dry-run", "--configfile", str(config), "--quiet", "rules"],
                            cwd=folder, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"the dry run of {config} failed:\n{result.stderr[-3000:]}")
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    output = result.stdout + result.stderr
    total = re.search(r"^total\s+(\d+)\s*$", output.split("Job stats:", 1)[-1], re.M)
    return elapsed, peak_gb, int(total.group(1)) if total else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/config.yaml", help="the config to scale (default: the default)")
    parser.add_argument("--patients", type=int, nargs="+", default=[100, 1000], help="cohort sizes to plan")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ecgcohort-planning"), help="scratch folder")
    arguments = parser.parse_args()
    config = yaml.safe_load((REPO / arguments.config).read_text())
    rows = []
    print("| patients | jobs | dry run (s) | per patient (ms) | peak memory (GB) |\n|---|---|---|---|---|")
    for patients in sorted(arguments.patients):
        # the peak is the largest child so far: the sizes run from the smallest up
        seconds, peak_gb, jobs = dry_run(arguments.work, scaled_config(arguments.work, config, patients))
        rows.append((patients, seconds))
        print(f"| {patients:,} | {jobs:,} | {seconds:.1f} | {1e3 * seconds / patients:.1f} | {peak_gb:.2f} |",
              flush=True)
    if len(rows) > 1:
        (small, small_s), (large, large_s) = rows[0], rows[-1]
        print(f"\nper-patient planning time at {large:,} against {small:,} patients: "
              f"{(large_s / large) / (small_s / small):.2f}x")


if __name__ == "__main__":
    main()
