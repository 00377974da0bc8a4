rule dataset_part:
    """One patient's part of the cohort store: its slice of every root array and its mesh group,
    one shard per array. A changed or added patient re-runs its own part only."""
    input:
        parameters=rules.patient_parameters.output.parameters,
        electrodes=rules.place_electrodes.output.electrodes,
        points="results/patients/{patient}/leadfield/points.npz",
        fibres=rules.compute_fibres.output.fibres,
        # chunks in electrode order
        chunks=expand("results/patients/{{patient}}/leadfield/chunk-{chunk}.npz", chunk=LEADFIELD_CHUNKS),
        activation=expand("results/patients/{{patient}}/activation/{scenario}.npz", scenario=SCENARIOS),
        ecg=expand("results/patients/{{patient}}/ecg/{scenario}.npz", scenario=SCENARIOS),
        sdf="results/patients/{patient}/encoding/sdf.npz",
    output:
        part=directory("results/dataset/parts/{patient}.zarr"),
        # the SHA-256 of the part's files, for a linked release's manifest (release.layout)
        digests="results/dataset/parts/{patient}.sha256.json",
    params:
        scenarios=SCENARIOS,
    log:
        "results/logs/dataset/dataset_part-{patient}.log",
    benchmark:
        "results/benchmarks/dataset/dataset_part-{patient}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/dataset_part.py"


ASSEMBLE_DATASET_CHAIN = ChainInputs(
    parts=(rules.dataset_part.output.part, PATIENTS),
)


rule assemble_dataset:
    """The cohort store from the parts: root metadata written, each part's shards hard-linked
    into place (no array bytes rewritten), metadata consolidated, the dataset card."""
    input:
        unpack(ASSEMBLE_DATASET_CHAIN.input),
    output:
        store=directory("results/dataset/cohort.zarr"),
        card="results/dataset/README.md",
    params:
        chain=ASSEMBLE_DATASET_CHAIN.params,
        # the data half of the validated config is the dataset's provenance: a change there
        # re-assembles it; the downstream sections (models trained from it, the realism measure) do not
        config=data_config(config),
        patients=PATIENTS,
    log:
        "results/logs/dataset/assemble_dataset.log",
    benchmark:
        "results/benchmarks/dataset/assemble_dataset.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(30),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/assemble_dataset.py"


rule dataset:
    """Target: the cohort's Zarr store and its dataset card."""
    input:
        rules.assemble_dataset.output,
