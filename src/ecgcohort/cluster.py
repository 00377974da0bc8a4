"""What a run submits to a cluster, checked against the site's limits before anything is submitted.

A cohort too large for the profile (more SLURM jobs than the site lets one user queue, or a group
job asking for more memory than a node has) is refused when the run starts, with the number and
the setting to change, instead of failing after part of it was queued.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class ClusterPlanError(ValueError):
    """A planned run that the cluster's limits (config section ``cluster``) do not allow."""


@dataclass(frozen=True)
class Submission:
    """One cluster job of a planned run: a group job (``group`` is its group's name) or one
    workflow job (``group`` is None); ``rules`` the rules of the jobs it holds, ``mem_mb`` the
    memory it asks for (MB)."""

    name: str
    group: str | None
    rules: tuple[str, ...]
    mem_mb: int


@dataclass(frozen=True)
class ClusterLimits:
    """The site's limits: ``max_submissions`` cluster jobs per run (the site's MaxSubmitJobs),
    ``max_job_mem_mb`` memory per job (MB; None: not checked)."""

    max_submissions: int
    max_job_mem_mb: int | None = None


def _count_lines(submissions: Sequence[Submission], group_components: Mapping[str, int]) -> list[str]:
    """The largest shares of the submissions, one phrase each: "patient 1,000 (group-components
    patient=10)", "sample_cohort 1"."""
    by_kind = Counter(submission.group or submission.rules[0] for submission in submissions)
    shown = by_kind.most_common(4)
    phrases = [f"{kind} {count:,}"
               + (f" (group-components {kind}={group_components[kind]})" if kind in group_components else "")
               for kind, count in shown]
    if len(by_kind) > len(shown):
        phrases.append(f"other {sum(by_kind.values()) - sum(count for _, count in shown):,}")
    return phrases


def check_cluster_plan(submissions: Sequence[Submission], limits: ClusterLimits,
                       group_components: Mapping[str, int], cores: int | None = None) -> None:
    """Raise :class:`ClusterPlanError` when ``submissions`` (the run's cluster jobs) exceed
    ``limits``; the message gives the planned number, where it comes from and the settings to
    change (``group_components`` and ``cores`` are the profile's, named in it)."""
    problems = []
    if len(submissions) > limits.max_submissions:
        by_group = Counter(s.group for s in submissions if s.group in group_components)
        if by_group:
            kind, jobs = by_group.most_common(1)[0]
            room = limits.max_submissions - (len(submissions) - jobs)
            fits = (f"; {kind}={-(-jobs * group_components[kind] // room)} fits" if room > 0 else "")
            more = f"put more in one job (--group-components {kind}=K, now {group_components[kind]}{fits}), "
        else:
            more = "group the per-patient rules (the profile's groups: and group-components:), "
        problems.append(
            f"this run would submit {len(submissions):,} cluster jobs, more than cluster.max_submissions = "
            f"{limits.max_submissions:,} ({'; '.join(_count_lines(submissions, group_components))}): "
            f"{more}run the cohort in parts (cohort.train.count / cohort.test.count), or raise "
            f"cluster.max_submissions to what your site allows "
            f"(sacctmgr show assoc user=$USER format=MaxSubmitJobs)")
    if limits.max_job_mem_mb is not None:
        too_big = sorted((s for s in submissions if s.mem_mb > limits.max_job_mem_mb), key=lambda s: -s.mem_mb)
        if too_big:
            largest = too_big[0]
            what = (f"group job {largest.name!r} ({len(largest.rules)} jobs: {', '.join(sorted(set(largest.rules)))})"
                    if largest.group else f"job {largest.name!r}")
            fewer = (f"lower the profile's cores (now {cores}: fewer of a group's jobs run at once) or "
                     f"--group-components {largest.group}=K, " if largest.group else
                     f"give rule {largest.rules[0]} a smaller mem_mb (set-resources), ")
            problems.append(
                f"{len(too_big):,} cluster job(s) ask for more memory than cluster.max_job_mem_mb = "
                f"{limits.max_job_mem_mb:,} MB; the largest, {what}, asks for {largest.mem_mb:,} MB: "
                f"{fewer}or raise cluster.max_job_mem_mb to what your site's nodes have")
    if problems:
        raise ClusterPlanError("refused before submitting anything: " + "; and ".join(problems))
