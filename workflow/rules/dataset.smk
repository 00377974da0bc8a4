rule assemble_dataset:
    input:
        parameters=expand(rules.patient_parameters.output.parameters, patient=PATIENTS),
        electrodes=expand(rules.place_electrodes.output.electrodes, patient=PATIENTS),
        points=expand("results/patients/{patient}/leadfield/points.npz", patient=PATIENTS),
        fibres=expand(rules.compute_fibres.output.fibres, patient=PATIENTS),
        # patient-major, chunks in electrode order within a patient
        chunks=expand("results/patients/{patient}/leadfield/chunk-{chunk}.npz", patient=PATIENTS,
                      chunk=LEADFIELD_CHUNKS),
        activation=expand("results/patients/{patient}/activation/{scenario}.npz", patient=PATIENTS,
                          scenario=SCENARIOS),
        ecg=expand("results/patients/{patient}/ecg/{scenario}.npz", patient=PATIENTS, scenario=SCENARIOS),
        sdf=expand("results/patients/{patient}/encoding/sdf.npz", patient=PATIENTS),
    output:
        store=directory("results/dataset/cohort.zarr"),
        card="results/dataset/README.md",
    params:
        # the data half of the validated config is the dataset's provenance: a change there
        # re-assembles it; the downstream sections (models trained from it, the realism measure) do not
        config=data_config(config),
        patients=PATIENTS,
        scenarios=SCENARIOS,
    log:
        "results/logs/dataset/assemble_dataset.log",
    benchmark:
        "results/benchmarks/dataset/assemble_dataset.tsv"
    threads: 1
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(60),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/assemble_dataset.py"


rule dataset:
    """Target: the cohort's Zarr store and its dataset card."""
    input:
        rules.assemble_dataset.output,
