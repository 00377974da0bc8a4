"""A run's cluster jobs against the site's limits (ecgcohort.cluster); the same check through
the local SLURM cluster is in tests/test_slurm.py."""

from __future__ import annotations

import pytest

from ecgcohort.cluster import ClusterLimits, ClusterPlanError, Submission, check_cluster_plan

CHAIN = ("patient_parameters", "assemble_anatomy", "mesh_anatomy")


def cohort_plan(patients: int, per_job: int, mem_mb: int = 6000) -> list[Submission]:
    """A cohort's planned submissions: its patients' chains in group jobs of ``per_job``
    patients, plus the design and two shape models, one job each."""
    groups = [Submission(name="patient", group="patient", rules=CHAIN * min(per_job, patients - start), mem_mb=mem_mb)
              for start in range(0, patients, per_job)]
    singles = [Submission(name=f"{rule}-{n}", group=None, rules=(rule,), mem_mb=4000)
               for n, rule in enumerate(("sample_cohort", "build_shape_model", "build_shape_model"))]
    return groups + singles


def test_a_plan_within_the_limits_passes_and_one_job_more_is_refused_with_the_number_and_settings():
    plan = cohort_plan(10_000, 10)
    assert len(plan) == 1_003
    check_cluster_plan(plan, ClusterLimits(max_submissions=1_003), {"patient": 10}, cores=8)
    with pytest.raises(ClusterPlanError) as refused:
        check_cluster_plan(plan, ClusterLimits(max_submissions=1_002), {"patient": 10}, cores=8)
    message = str(refused.value)
    assert "1,003 cluster jobs" in message and "cluster.max_submissions = 1,002" in message
    # where the jobs come from, and the settings that change it
    assert "patient 1,000 (group-components patient=10)" in message
    # 1,000 group jobs of 10 chains into the 999 submissions the 3 single jobs leave: 11 per job
    assert "--group-components patient=K, now 10; patient=11 fits" in message
    assert "cohort.train.count" in message


def test_without_groups_the_message_says_to_group_the_chain():
    plan = [Submission(name=f"mesh-{n}", group=None, rules=("mesh_anatomy",), mem_mb=1000) for n in range(5)]
    with pytest.raises(ClusterPlanError, match="group the per-patient rules") as refused:
        check_cluster_plan(plan, ClusterLimits(max_submissions=4), {}, cores=8)
    assert "mesh_anatomy 5" in str(refused.value)


def test_a_group_job_asking_for_more_memory_than_a_node_is_refused_naming_it():
    plan = cohort_plan(30, 10, mem_mb=24_000)
    check_cluster_plan(plan, ClusterLimits(max_submissions=100, max_job_mem_mb=24_000), {"patient": 10}, cores=8)
    with pytest.raises(ClusterPlanError) as refused:
        check_cluster_plan(plan, ClusterLimits(max_submissions=100, max_job_mem_mb=16_000), {"patient": 10}, cores=8)
    message = str(refused.value)
    assert "3 cluster job(s)" in message and "24,000 MB" in message and "cluster.max_job_mem_mb = 16,000" in message
    assert "group job 'patient' (30 jobs: assemble_anatomy, mesh_anatomy, patient_parameters)" in message
    assert "cores (now 8" in message
    # unchecked without a limit
    check_cluster_plan(plan, ClusterLimits(max_submissions=100), {"patient": 10}, cores=8)
