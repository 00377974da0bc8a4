# Patients per job (config cluster.patients_per_job, ecgcohort.batches): a cohort of thousands
# plans one job per batch of K patients instead of about 17 per patient. The job runs its
# patients' data chains (parameters to dataset part, with their previews, ECG features and
# ECG -> activation banks) as a nested Snakemake of this workflow, every stage its own job in
# it, so a batch re-run redoes only the stages and patients that changed.

import os


rule patient_batch:
    """The data chains of a batch of patients (cluster.patients_per_job) as one job."""
    input:
        heart_model="results/shapes/heart.npz",
        torso_model="results/shapes/torso.npz",
    output:
        marker="results/batches/{batch}.json",
    params:
        patients=lambda wildcards: list(BATCHES[wildcards.batch]),
        # each patient's own row: a patient added to the cohort re-runs its own batch only
        records=lambda wildcards: [patient_record(COHORT, patient) for patient in BATCHES[wildcards.batch]],
        targets=batch_targets,
        # what the chains read: a batch re-runs when it changes, and its nested run re-runs the
        # stages it changes; the nested run reads the whole config (snakemake.config)
        chain=chain_config(config),
        # relative: moving the checkout re-runs no batch
        snakefile=os.path.relpath(workflow.main_snakefile),
        deployment=sorted(str(method) for method in workflow.deployment_settings.deployment_method),
    log:
        main="results/logs/batches/{batch}.log",
        nested="results/logs/batches/{batch}.nested.log",
    benchmark:
        "results/benchmarks/batches/{batch}.tsv"
    threads: 8
    resources:
        # the nested run schedules its jobs within these (about 3 GB each at 1.2 mm); the
        # runtime is the sum of the chain's per-patient limits (20 min per lead-field chunk) spread
        # over the threads
        mem_mb=lambda wildcards, threads, attempt: 3000 * threads * attempt,
        runtime=lambda wildcards, threads, attempt: -(-(260 + 20 * len(LEADFIELD_CHUNKS)) * len(BATCHES[wildcards.batch])
                                                      // threads) * attempt,
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/patient_batch.py"


rule split_batches:
    """Every batch of a split, as one file: the input of the rules that read the whole split."""
    input:
        batches=lambda wildcards: [batch_marker(batch) for batch in SPLIT_BATCHES[wildcards.split]],
    output:
        marker="results/batches/{split}.json",
    params:
        batches=lambda wildcards: SPLIT_BATCHES[wildcards.split],
    log:
        "results/logs/batches/{split}.log",
    benchmark:
        "results/benchmarks/batches/{split}.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/split_batches.py"
