"""What planning a cohort costs: ``snakemake --dry-run`` at several cohort sizes (prints a table;
not a test).

    .venv/bin/python benchmarks/planning.py --patients 100 1000 --work /tmp/planning
    .venv/bin/python benchmarks/planning.py --config config/paper.yaml --patients 110

For each size, a copy of the workflow (``src`` linked to this checkout) with the config's
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
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "envs", "profiles")


def workflow_copy(root: Path, config: dict, patients: int) -> Path:
    """A copy of the workflow in ``root`` planning ``patients`` patients."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for part in WORKFLOW_PARTS:
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy2)(REPO / part, root / part)
    (root / "src").symlink_to(REPO / "src")
    test = max(1, patients // 10)
    config = dict(config, cohort=dict(config["cohort"]))
    config["cohort"]["train"] = {"count": patients - test, "lhs_batch": min(100, patients - test)}
    config["cohort"]["test"] = {"count": test, "lhs_batch": min(100, test)}
    (root / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def dry_run(root: Path) -> tuple[float, float, int]:
    """(seconds, peak resident GB, jobs) of one ``snakemake --dry-run`` in ``root``."""
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    start = time.perf_counter()
    result = subprocess.run([snakemake, "--cores", "2", "--dry-run", "--quiet", "rules"], cwd=root,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"the dry run in {root} failed:\n{result.stderr[-3000:]}")
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
        seconds, peak_gb, jobs = dry_run(workflow_copy(arguments.work / f"p{patients}", config, patients))
        rows.append((patients, seconds))
        print(f"| {patients:,} | {jobs:,} | {seconds:.1f} | {1e3 * seconds / patients:.1f} | {peak_gb:.2f} |",
              flush=True)
    if len(rows) > 1:
        (small, small_s), (large, large_s) = rows[0], rows[-1]
        print(f"\nper-patient planning time at {large:,} against {small:,} patients: "
              f"{(large_s / large) / (small_s / small):.2f}x")


if __name__ == "__main__":
    main()
