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
    params:
        scenarios=SCENARIOS,
        conductivities=config["leadfield"]["conductivity_s_per_m"],
        duration_ms=config["ecg"]["duration_ms"],
        dt_ms=config["ecg"]["dt_ms"],
        cycle_length_ms=config["electrophysiology"]["action_potential"]["cycle_length_ms"],
        vm_nodes=config["ecg"]["vm_nodes"],
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


rule draw_patient:
    """A patient's pictures from its stored data, off the data chain (pictures.patients_per_split)."""
    input:
        fibres=rules.compute_fibres.output.fibres,
        heart=rules.assemble_anatomy.output.heart,
        lv_tree=rules.grow_purkinje.output.lv_tree,
        rv_tree=rules.grow_purkinje.output.rv_tree,
        activation=rules.compute_activations.output.activation,
        ecg=rules.compute_ecgs.output.ecg,
        sdf="results/patients/{patient}/encoding/sdf.npz",  # rules.sample_sdf: encoding.smk, included later
    output:
        fibres="results/patients/{patient}/fibres/fibres.png",
        purkinje="results/patients/{patient}/purkinje/purkinje.png",
        activation=expand("results/patients/{{patient}}/activation/{scenario}.png", scenario=SCENARIOS),
        ecg=report(expand("results/patients/{{patient}}/ecg/{scenario}.png", scenario=SCENARIOS),
                   caption=caption("ecg"), category="Cohort", subcategory="ECGs", labels={"patient": "{patient}"}),
        sdf="results/patients/{patient}/encoding/sdf.png",
    params:
        scenarios=SCENARIOS,
    log:
        "results/logs/patients/{patient}/draw_patient.log",
    benchmark:
        "results/benchmarks/patients/{patient}/draw_patient.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/draw_patient.py"


rule pictures:
    """Target: the per-patient pictures of the patients pictures.patients_per_split picks."""
    input:
        picture_targets,
