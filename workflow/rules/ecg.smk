rule compute_ecgs:
    input:
        # the patient's lead-field chunks in electrode order (LEADFIELD_CHUNKS: leadfield.smk)
        chunks=expand("results/patients/{{patient}}/leadfield/chunk-{chunk}.npz", chunk=LEADFIELD_CHUNKS),
        activation=expand("results/patients/{{patient}}/activation/{scenario}.npz", scenario=SCENARIOS),
        fibres=rules.compute_fibres.output.fibres,
        electrodes=rules.place_electrodes.output.electrodes,
    output:
        # one job per patient: its ECGs share the start-up and the lead matrices
        ecg=expand("results/patients/{{patient}}/ecg/{scenario}.npz", scenario=SCENARIOS),
        preview=report(expand("results/patients/{{patient}}/ecg/{scenario}.png", scenario=SCENARIOS),
                       caption=caption("ecg"), category="Cohort", subcategory="ECGs", labels={"patient": "{patient}"}),
    params:
        scenarios=SCENARIOS,
        conductivities=config["leadfield"]["conductivity_s_per_m"],
        duration_ms=config["ecg"]["duration_ms"],
        dt_ms=config["ecg"]["dt_ms"],
        cycle_length_ms=config["electrophysiology"]["action_potential"]["cycle_length_ms"],
        # the TP06 template depends on no config value: computed once, shared by every job
        template_cache_dir="results/cache/action_potential",
    log:
        "results/logs/patients/{patient}/compute_ecgs.log",
    benchmark:
        "results/benchmarks/patients/{patient}/compute_ecgs.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(20),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/compute_ecgs.py"


rule ecgs:
    """Target: every patient's ECG (unipolar and 12 leads, FEM and pseudo lead field) per scenario."""
    input:
        lambda wildcards: chain_targets(list(rules.compute_ecgs.output), PATIENTS),
