"""One patient's data half through the workflow, at two or more settings, timed per rule with
each rule's time split (start-up, imports, compilation, reading, computing, writing, pictures;
:mod:`ecgcohort.profiling`). Prints a table per setting and the ratios of the totals (one run,
the same machine). Not a test.

    .venv/bin/python benchmarks/patient_pipeline.py /tmp/pipeline \
        coarse=config/config.yaml,benchmarks/settings/coarse.yaml default=config/config.yaml \
        [--patient train-0000] [--warm-up train-0001|none] [--cores 2]

Each setting is ``name=configfile[,configfile...]`` and runs in its own folder below the first
argument (the repository's workflow, config and profiles linked in), from nothing: the cohort
design and the shape models are built first and left out of the per-patient sums; so is a
warm-up patient (``--warm-up``, default train-0001) run through the same jobs before the timed
one, which fills the caches a cohort computes once and every patient then reads (the TP06
action-potential template, 3.9 s; the shape models' resampling plans): the figure is what one
more patient costs a cohort (``--warm-up none``: a patient from nothing). The
per-patient jobs are the patient's parameters, anatomy, 12-lead and anterior electrodes, mesh,
fibres, Purkinje trees, activation maps, lead-field sample points and lead fields, ECGs, their
delineation, SDF samples, dataset part and ECG → activation bank, and its pictures (the anatomy
preview, ``draw_patient`` and the recording sites' ``draw_bank_sites``; a cohort draws them for ``pictures.patients_per_split`` patients of
each split), whose job time is also printed apart. Each setting's table is
also written as ``<workdir>/<name>/results/report/stage_timings.{csv,md}``, the report's
layout, for ``python -m ecgcohort.readme_results record``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("cohort", "shapes")
PICTURE_RULES = ("preview_anatomy", "draw_patient", "draw_bank_sites")


def targets(patient: str) -> list[str]:
    return [f"results/dataset/parts/{patient}.zarr", f"results/ecg2act/bank/{patient}.zarr",
            f"results/patients/{patient}/realism/features.json", f"results/patients/{patient}/anatomy/anatomy.png",
            f"results/patients/{patient}/ecg/sinus.png", f"results/ecg2act/sites/{patient}.png"]


def run_setting(folder: Path, configs: list[str], patient: str, warm_up: str | None, cores: int) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "config", "profiles", "envs", "benchmarks"):
        link = folder / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    snakemake = Path(sys.executable).with_name("snakemake")
    # the shared inputs first, so the per-patient chain's wall clock is its own
    # targets first: --quiet and --configfile take several values
    subprocess.run([str(snakemake), "results/shapes/heart.npz", "results/shapes/torso.npz", "results/cohort/cohort.csv",
                    "--cores", str(cores), "--quiet", "--configfile", *[str(ROOT / c) for c in configs]],
                   cwd=folder, check=True, stdout=subprocess.DEVNULL)
    if warm_up:
        subprocess.run([str(snakemake), *targets(warm_up), "--cores", str(cores), "--quiet", "--configfile",
                        *[str(ROOT / c) for c in configs]], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        # its benchmarks and logs out of the way: the tables read only the timed patient's
        for kind in ("benchmarks", "logs"):
            shutil.rmtree(folder / "results" / f"{kind}-warm-up", ignore_errors=True)
            (folder / "results" / kind).rename(folder / "results" / f"{kind}-warm-up")
    start = time.perf_counter()
    subprocess.run([str(snakemake), *targets(patient), "--cores", str(cores), "--quiet", "rules", "--configfile",
                    *[str(ROOT / c) for c in configs]], cwd=folder, check=True,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("settings", nargs="+", help="name=configfile[,configfile...]")
    parser.add_argument("--patient", default="train-0000")
    parser.add_argument("--warm-up", default="train-0001", help="a patient run first, untimed; 'none': no warm-up")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()

    import pandas as pd

    from ecgcohort.timings import SPLIT, stage_timings, stage_timings_markdown

    totals = {}
    for setting in args.settings:
        name, files = setting.split("=", 1)
        folder = args.workdir / name
        warm_up = None if args.warm_up.lower() == "none" else args.warm_up
        if warm_up == args.patient:
            raise SystemExit(f"--warm-up {warm_up} is the timed patient: choose another or none")
        wall = run_setting(folder, files.split(","), args.patient, warm_up, args.cores)
        table = stage_timings(folder / "results/benchmarks", folder / "results/logs")
        table = table[~table.group.isin(SHARED)]
        # the per-patient rules' table as the report writes its own, so a run can be recorded
        # (python -m ecgcohort.readme_results record <copy inside a checkout> --label ...)
        report = folder / "results/report"
        report.mkdir(parents=True, exist_ok=True)
        table.to_csv(report / "stage_timings.csv", index=False, float_format="%.4g")
        (report / "stage_timings.md").write_text(stage_timings_markdown(pd.read_csv(report / "stage_timings.csv")))
        columns = ["rule", "jobs", "total_s", "cpu_s", "max_rss_mb", *[f"{key}_s" for key in SPLIT]]
        print(f"\n## {name} ({files}): patient {args.patient} (warm-up: {warm_up}), {len(table)} rules, {int(table.jobs.sum())} jobs, "
              f"{table.total_s.sum():.1f} s of job time, {wall:.1f} s of wall clock on {args.cores} cores\n")
        print(table[columns].to_markdown(index=False, floatfmt=".1f"))
        split = table[[f"{key}_s" for key in SPLIT]].sum()
        print("\nsplit: " + ", ".join(f"{key} {split[f'{key}_s']:.1f} s ({split[f'{key}_s'] / split.sum():.0%})"
                                      for key in SPLIT))
        pictures = table[table.rule.isin(PICTURE_RULES)].total_s.sum()
        print(f"\nwithout the pictures' jobs ({', '.join(PICTURE_RULES)}: {pictures:.1f} s): "
              f"{table.total_s.sum() - pictures:.1f} s of job time")
        totals[name] = (table.total_s.sum(), wall)
    names = list(totals)
    for name in names[1:]:
        print(f"\n{name} / {names[0]}: job time {totals[name][0] / totals[names[0]][0]:.2f}x, "
              f"wall clock {totals[name][1] / totals[names[0]][1]:.2f}x")
    pd.DataFrame(totals, index=["job_s", "wall_s"]).to_csv(args.workdir / "totals.csv")


if __name__ == "__main__":
    main()
