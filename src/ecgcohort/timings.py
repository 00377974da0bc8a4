"""Per-rule timings of a workflow run from Snakemake's ``benchmark:`` files (one TSV per job,
columns s, max_rss (MB), cpu_time, ...) and the jobs' time splits (:mod:`ecgcohort.profiling`,
``<log>.profile.json`` beside each log), for the report's stage-timing table and figure."""

from __future__ import annotations

import re
from pathlib import Path

from ecgcohort.io import atomic_path
from ecgcohort.profiling import CATEGORIES

#: The time split's columns: start-up, then the sampled categories
SPLIT = ("startup", *CATEGORIES)

_PATIENT = re.compile(r"^(train|test)-\d+$")
#: Top-level folders of ``results/benchmarks`` (a further folder below a patient names a rule
#: whose jobs are per something else than the patient, e.g. ``convergence/train-0000/...``).
_GROUPS = ("cohort", "shapes", "patients", "dataset", "encoding", "surrogate", "inverse", "ecg2act", "realism",
           "convergence", "report", "release")


def rule_of(path: Path, root: Path) -> str:
    """The rule a benchmark file belongs to, from its path below ``root`` (patient ids and
    wildcard suffixes such as ``-train-0000`` or ``-pca-full`` dropped)."""
    parts = [p for p in path.relative_to(root).parts if not _PATIENT.match(p)]
    if parts[0] == "shapes":
        return f"build_shape_model ({path.stem})"
    if len(parts) >= 2 and parts[-2] not in _GROUPS:
        return parts[-2]
    return path.stem.split("-")[0]


def job_split(profile_json: Path) -> dict[str, float]:
    """A job's seconds per :data:`SPLIT` column from its profile (NaN where it has none)."""
    import json

    nan = float("nan")
    if not profile_json.exists():
        return {f"{key}_s": nan for key in SPLIT}
    profile = json.loads(profile_json.read_text())
    return {f"{key}_s": nan if profile.get(f"{key}_s") is None else float(profile[f"{key}_s"]) for key in SPLIT}


def worker_resources(table, profile_json: Path):
    """A job's benchmark row with the CPU seconds and peak memory of the worker's process added
    where :mod:`ecgcohort.worker` ran it (Snakemake measured only the job's own, waiting,
    process); unchanged otherwise."""
    import json

    if not profile_json.exists():
        return table
    profile = json.loads(profile_json.read_text())
    if profile.get("worker_max_rss_mb") is None:
        return table
    return table.assign(cpu_time=table["cpu_time"] + float(profile.get("cpu_s") or 0.0),
                        max_rss=table["max_rss"].clip(lower=float(profile["worker_max_rss_mb"])))


def stage_timings(benchmark_dir: str | Path, logs_dir: str | Path | None = None):
    """One row per rule: jobs, total / mean / max wall-clock seconds, total CPU seconds, the
    largest resident memory (MB) and, with ``logs_dir``, the summed seconds of each part of the
    time split (:data:`SPLIT`; NaN for a rule whose jobs left no profile), sorted by total
    seconds."""
    import pandas as pd

    root = Path(benchmark_dir)
    frames = []
    for path in sorted(root.rglob("*.tsv")):
        if path.relative_to(root).parts[0] == "batches":
            continue  # a batch job (cluster.patients_per_job) wraps its nested jobs, counted on their own
        table = pd.read_csv(path, sep="\t")
        if table.empty or "s" not in table:
            continue
        table = table.iloc[[-1]].assign(rule=rule_of(path, root), group=path.relative_to(root).parts[0])
        if logs_dir is not None:
            log = Path(logs_dir) / path.relative_to(root).with_suffix(".log")
            profile = log.with_name(f"{log.stem}.profile.json")
            table = worker_resources(table.assign(**job_split(profile)), profile)
        frames.append(table)
    if not frames:
        raise ValueError(f"no benchmark files under {root}")
    jobs = pd.concat(frames, ignore_index=True)
    split = {f"{key}_s": (f"{key}_s", lambda values: values.sum(min_count=len(values)))
             for key in SPLIT} if logs_dir is not None else {}
    summary = jobs.groupby(["group", "rule"], sort=False).agg(
        jobs=("s", "size"), total_s=("s", "sum"), mean_s=("s", "mean"), max_s=("s", "max"),
        cpu_s=("cpu_time", "sum"), max_rss_mb=("max_rss", "max"), **split).reset_index()
    return summary.sort_values("total_s", ascending=False, ignore_index=True)


def stage_timings_markdown(summary) -> str:
    """The per-rule table (:func:`stage_timings`, or its CSV read back) as Markdown: jobs, total
    and mean wall seconds, CPU seconds, peak memory and the time split in seconds, with a total
    row."""
    import numpy as np

    split = [f"{key}_s" for key in SPLIT if f"{key}_s" in summary]
    titles = ["rule", "jobs", "total (s)", "mean (s)", "CPU (s)", "peak RSS (MB)", *[key[:-2] + " (s)" for key in split]]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]

    def seconds(value) -> str:
        return "–" if not np.isfinite(value) else f"{value:.1f}"

    for row in summary.itertuples(index=False):
        lines.append(f"| {row.rule} | {row.jobs} | {row.total_s:.1f} | {row.mean_s:.1f} | {row.cpu_s:.1f} | "
                     f"{row.max_rss_mb:,.0f} | " + " | ".join(seconds(getattr(row, key)) for key in split) + " |")
    totals = summary[split].sum(min_count=1)
    lines.append(f"| all | {summary.jobs.sum()} | {summary.total_s.sum():.1f} | – | {summary.cpu_s.sum():.1f} | – | "
                 + " | ".join(seconds(totals[key]) for key in split) + " |")
    return "\n".join(lines) + "\n"


def stage_timings_job(benchmark_dir: str | Path, logs_dir: str | Path, out_csv: str | Path,
                      out_png: str | Path, out_markdown: str | Path) -> None:
    """Write the per-rule table (CSV and Markdown) and a figure: total seconds per rule (jobs in brackets), and each
    rule's time split into start-up, imports, compilation, pictures, writing, reading and
    computing, as shares of its profiled time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    summary = stage_timings(benchmark_dir, logs_dir)
    with atomic_path(out_csv) as temporary:
        summary.to_csv(temporary, index=False, float_format="%.4g")
    import pandas as pd

    with atomic_path(out_markdown) as temporary:  # from the CSV, so the recorded table re-renders from it
        temporary.write_text(stage_timings_markdown(pd.read_csv(out_csv)))
    shown = summary.iloc[::-1]
    labels = [f"{r} ({n})" for r, n in zip(shown["rule"], shown["jobs"])]
    figure, (total_axis, split_axis) = plt.subplots(1, 2, figsize=(14, 0.3 * len(shown) + 1.8), sharey=True)
    groups = list(dict.fromkeys(summary["group"]))
    total_axis.barh(labels, shown["total_s"], color=[f"C{groups.index(g)}" for g in shown["group"]])
    total_axis.set_xscale("log")
    total_axis.set_xlabel("wall-clock seconds, summed over the rule's jobs (log scale)")
    total_axis.set_title(f"Time per rule ({summary['jobs'].sum()} jobs, "
                         f"{summary['total_s'].sum() / 60:.1f} job-minutes)")
    total_axis.grid(alpha=0.3, axis="x")
    parts = shown[[f"{key}_s" for key in SPLIT]].to_numpy(dtype=float)
    shares = parts / np.where(parts.sum(axis=1, keepdims=True) > 0, parts.sum(axis=1, keepdims=True), np.nan)
    left = np.zeros(len(shown))
    colours = plt.get_cmap("tab10")
    for k, key in enumerate(SPLIT):
        values = np.nan_to_num(shares[:, k])
        split_axis.barh(labels, 100 * values, left=100 * left, color=colours(k), label=key)
        left += values
    split_axis.set_xlim(0, 100)
    split_axis.set_xlabel("share of the rule's time (%)")
    everything = np.nansum(parts, axis=0)
    split_axis.set_title("Split: " + ", ".join(f"{key} {100 * value / everything.sum():.0f}%"
                                               for key, value in zip(SPLIT, everything)), fontsize=9)
    split_axis.legend(ncol=len(SPLIT), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.04))
    figure.tight_layout()
    with atomic_path(out_png) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    """``python -m ecgcohort.timings [RESULTS] [--out DIR]``: the stage table and figure of a run
    whose targets left out the workflow's ``stage_timings`` rule, which waits for the cohort store
    (the recorded paper run skips the store: its 110 parts would need 24 GiB), from ``RESULTS``'s
    benchmark files and logs as they are now."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecgcohort.timings", description=main.__doc__)
    parser.add_argument("results", nargs="?", default="results", help="a run's results folder (default: results)")
    parser.add_argument("--out", help="folder for stage_timings.csv/.md/.png (default: RESULTS/report)")
    arguments = parser.parse_args(argv)
    results = Path(arguments.results)
    out = Path(arguments.out) if arguments.out else results / "report"
    out.mkdir(parents=True, exist_ok=True)
    stage_timings_job(results / "benchmarks", results / "logs", out / "stage_timings.csv",
                      out / "stage_timings.png", out / "stage_timings.md")
    print(f"wrote {out / 'stage_timings.md'}")


if __name__ == "__main__":
    main()
