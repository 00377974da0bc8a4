"""Per-rule timings of a workflow run from Snakemake's ``benchmark:`` files (one TSV per job,
columns s, max_rss (MB), cpu_time, ...), for the report's stage-timing table and figure."""

from __future__ import annotations

import re
from pathlib import Path

from ecgcohort.io import atomic_path

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


def stage_timings(benchmark_dir: str | Path):
    """One row per rule: jobs, total / mean / max wall-clock seconds, total CPU seconds and the
    largest resident memory (MB), sorted by total seconds."""
    import pandas as pd

    root = Path(benchmark_dir)
    frames = []
    for path in sorted(root.rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if table.empty or "s" not in table:
            continue
        table = table.iloc[[-1]].assign(rule=rule_of(path, root), group=path.relative_to(root).parts[0])
        frames.append(table)
    if not frames:
        raise ValueError(f"no benchmark files under {root}")
    jobs = pd.concat(frames, ignore_index=True)
    summary = jobs.groupby(["group", "rule"], sort=False).agg(
        jobs=("s", "size"), total_s=("s", "sum"), mean_s=("s", "mean"), max_s=("s", "max"),
        cpu_s=("cpu_time", "sum"), max_rss_mb=("max_rss", "max")).reset_index()
    return summary.sort_values("total_s", ascending=False, ignore_index=True)


def stage_timings_job(benchmark_dir: str | Path, out_csv: str | Path, out_png: str | Path) -> None:
    """Write the per-rule table and a bar chart of total seconds per rule (jobs in brackets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = stage_timings(benchmark_dir)
    with atomic_path(out_csv) as temporary:
        summary.to_csv(temporary, index=False, float_format="%.4g")
    shown = summary.iloc[::-1]
    figure, axis = plt.subplots(figsize=(9, 0.3 * len(shown) + 1.5))
    groups = list(dict.fromkeys(summary["group"]))
    axis.barh([f"{r} ({n})" for r, n in zip(shown["rule"], shown["jobs"])], shown["total_s"],
              color=[f"C{groups.index(g)}" for g in shown["group"]])
    axis.set_xscale("log")
    axis.set_xlabel("wall-clock seconds, summed over the rule's jobs (log scale)")
    axis.set_title(f"Time per rule ({summary['jobs'].sum()} jobs, {summary['total_s'].sum() / 60:.1f} job-minutes)")
    axis.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    with atomic_path(out_png) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)
