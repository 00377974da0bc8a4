rule build_shape_model:
    output:
        model="results/shapes/{organ}.npz",
    params:
        spec=lambda wildcards: config["shapes"][wildcards.organ],
    log:
        "results/logs/shapes/{organ}.log",
    benchmark:
        "results/benchmarks/shapes/{organ}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(20),
    conda:
        "../../envs/geometry.yaml"
    script:
        "../scripts/build_shape_model.py"


rule assemble_anatomy:
    input:
        heart_model="results/shapes/heart.npz",
        torso_model="results/shapes/torso.npz",
        parameters=rules.patient_parameters.output.parameters,
    output:
        heart="results/patients/{patient}/anatomy/heart.vtp",
        torso="results/patients/{patient}/anatomy/torso.vtp",
        summary="results/patients/{patient}/anatomy/anatomy.json",
    params:
        placement=config["anatomy"],
    log:
        "results/logs/patients/{patient}/assemble_anatomy.log",
    benchmark:
        "results/benchmarks/patients/{patient}/assemble_anatomy.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    conda:
        "../../envs/geometry.yaml"
    script:
        "../scripts/assemble_anatomy.py"


rule place_standard_electrodes:
    """The 12-lead electrodes apart from the anterior array: the convergence ladder reads only
    these, so a change of ``electrodes.anterior_count`` leaves it alone."""
    input:
        torso=rules.assemble_anatomy.output.torso,
        summary=rules.assemble_anatomy.output.summary,
    output:
        electrodes="results/patients/{patient}/anatomy/electrodes_standard.csv",
    params:
        rules={key: value for key, value in config["electrodes"].items() if key != "anterior_count"},
    log:
        "results/logs/patients/{patient}/place_standard_electrodes.log",
    benchmark:
        "results/benchmarks/patients/{patient}/place_standard_electrodes.tsv"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    conda:
        "../../envs/geometry.yaml"
    script:
        "../scripts/place_standard_electrodes.py"


rule place_electrodes:
    input:
        torso=rules.assemble_anatomy.output.torso,
        summary=rules.assemble_anatomy.output.summary,
        standard=rules.place_standard_electrodes.output.electrodes,
    output:
        electrodes="results/patients/{patient}/anatomy/electrodes.csv",
    params:
        seed=config["cohort"]["seed"],
        anterior_count=config["electrodes"]["anterior_count"],
    log:
        "results/logs/patients/{patient}/place_electrodes.log",
    benchmark:
        "results/benchmarks/patients/{patient}/place_electrodes.tsv"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(5),
    conda:
        "../../envs/geometry.yaml"
    script:
        "../scripts/place_electrodes.py"


rule preview_anatomy:
    input:
        heart=rules.assemble_anatomy.output.heart,
        torso=rules.assemble_anatomy.output.torso,
        electrodes=rules.place_electrodes.output.electrodes,
    output:
        preview=report("results/patients/{patient}/anatomy/anatomy.png", caption=caption("anatomy"),
                       category="Cohort", subcategory="Anatomies", labels={"patient": "{patient}"}),
    log:
        "results/logs/patients/{patient}/preview_anatomy.log",
    benchmark:
        "results/benchmarks/patients/{patient}/preview_anatomy.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(5),
    conda:
        "../../envs/geometry.yaml"
    script:
        "../scripts/preview_anatomy.py"


rule anatomy:
    """Target: every patient's surfaces and electrodes, and the pictured patients' previews."""
    input:
        lambda wildcards: chain_targets(rules.place_electrodes.output.electrodes, PATIENTS),
        lambda wildcards: chain_targets(rules.preview_anatomy.output.preview, PICTURED_PATIENTS),
