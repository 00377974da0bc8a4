"""ecgcohort: a cohort of virtual heart-torso patients, their lead fields and ECGs.

    snakemake --cores N                      # workstation (or: make run)
    snakemake --profile profiles/slurm       # SLURM cluster
    snakemake --report results/report.html   # the HTML report of a finished run (or: make report)
    snakemake release --cores N              # results/release/: the cohort packed, described and verified
"""

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# Parse-time code imports this checkout's library; Snakemake hands this search path on to
# every script job, also inside conda envs.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from ecgcohort.config import ConfigError, load_schema, release_layout, validate_config  # noqa: E402


configfile: "config/config.yaml"


try:
    config.update(validate_config(config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")))
except ConfigError as error:
    raise WorkflowError(f"invalid configuration: {error}") from None


include: "workflow/rules/common.smk"


onstart:
    # on a cluster, the planned submissions against the site's limits before any is submitted
    if not workflow.local_exec and not workflow.remote_exec:
        try:
            limits = ClusterLimits(config["cluster"]["max_submissions"], config["cluster"]["max_job_mem_mb"])
            check_cluster_plan(planned_submissions(workflow.dag), limits, dict(workflow.group_settings.group_components),
                               cores=workflow.resource_settings.cores)
        except ClusterPlanError as error:
            raise WorkflowError(str(error)) from None

include: "workflow/rules/cohort.smk"
include: "workflow/rules/anatomy.smk"
include: "workflow/rules/meshing.smk"
include: "workflow/rules/fibers.smk"
include: "workflow/rules/electrophysiology.smk"
include: "workflow/rules/leadfield.smk"
include: "workflow/rules/ecg.smk"
include: "workflow/rules/convergence.smk"
include: "workflow/rules/realism.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/encoding.smk"
include: "workflow/rules/surrogate.smk"
include: "workflow/rules/inverse.smk"
include: "workflow/rules/ecg2act.smk"
include: "workflow/rules/batches.smk"
include: "workflow/rules/release.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.cohort.input,
        rules.anatomy.input,
        rules.meshes.input,
        rules.fibres.input,
        rules.activations.input,
        rules.leadfields.input,
        rules.ecgs.input,
        rules.pictures.input,
        rules.convergence.input,
        rules.realism.input,
        rules.dataset.input,
        rules.encodings.input,
        rules.surrogates.input,
        rules.inverse.input,
        rules.ecg2act.input,
        rules.stage_timings.output,
    default_target: True
