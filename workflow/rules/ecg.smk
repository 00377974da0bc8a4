rule compute_ecg:
    input:
        # the patient's lead-field chunks in electrode order (LEADFIELD_CHUNKS: leadfield.smk)
        chunks=expand("results/patients/{{patient}}/leadfield/chunk-{chunk}.npz", chunk=LEADFIELD_CHUNKS),
        activation="results/patients/{patient}/activation/{scenario}.npz",
        fibres=rules.compute_fibres.output.fibres,
        electrodes=rules.place_electrodes.output.electrodes,
    output:
        ecg="results/patients/{patient}/ecg/{scenario}.npz",
        preview=report("results/patients/{patient}/ecg/{scenario}.png", caption=caption("ecg"), category="Cohort",
                       subcategory="ECGs", labels={"patient": "{patient}", "scenario": "{scenario}"}),
    params:
        conductivities=config["leadfield"]["conductivity_s_per_m"],
        duration_ms=config["ecg"]["duration_ms"],
        dt_ms=config["ecg"]["dt_ms"],
        cycle_length_ms=config["electrophysiology"]["action_potential"]["cycle_length_ms"],
        # the TP06 template depends on no config value: computed once, shared by every job
        template_cache_dir="results/cache/action_potential",
    log:
        "results/logs/patients/{patient}/compute_ecg/{scenario}.log",
    benchmark:
        "results/benchmarks/patients/{patient}/compute_ecg/{scenario}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(20),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/compute_ecg.py"


rule ecgs:
    """Target: every patient's ECG (unipolar and 12 leads, FEM and pseudo lead field) per scenario."""
    input:
        expand(rules.compute_ecg.output, patient=PATIENTS, scenario=SCENARIOS),
