rule sample_cohort:
    output:
        table=report("results/cohort/cohort.csv", caption=caption("cohort_table"), category="Cohort",
                     subcategory="Sampling", labels={"table": "parameters"}),
        columns="results/cohort/cohort.json",
        preview=report("results/cohort/cohort.png", caption=caption("cohort"), category="Cohort",
                       subcategory="Sampling", labels={"figure": "parameters"}),
    params:
        cohort=config["cohort"],
    log:
        "results/logs/cohort/sample_cohort.log",
    benchmark:
        "results/benchmarks/cohort/sample_cohort.tsv"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/sample_cohort.py"


# A patient depends on its own row only (recomputed from the config by the same function
# that fills the table): growing the cohort leaves existing patients alone, and changing a
# range changes every row, so every patient re-runs.
rule patient_parameters:
    output:
        parameters="results/patients/{patient}/parameters.json",
    params:
        record=patient_record_params,
    log:
        "results/logs/patients/{patient}/patient_parameters.log",
    benchmark:
        "results/benchmarks/patients/{patient}/patient_parameters.tsv"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=scaled(2),
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/patient_parameters.py"


rule cohort:
    """Target: the cohort table and every patient's parameters."""
    input:
        rules.sample_cohort.output,
        lambda wildcards: chain_targets(rules.patient_parameters.output.parameters, PATIENTS),
