# From the 12-lead ECG to intracardiac activation (paper 3): per patient the 75 recording sites
# and a simulation bank (eikonal activation, V_m, the 12-lead ECG from the patient's FEM lead
# matrix); Networks I and II trained on the training patients' banks only, the best epoch picked
# on a random validation set of their samples; evaluation on another random 5 % of them (the
# paper's split, disjoint from the validation set) and on the test patients.

ECG2ACT = config["ecg2act"]
ECG2ACT_NETWORKS = ECG2ACT["networks_to_train"]


wildcard_constraints:
    network="I|II",


rule simulation_bank:
    input:
        heart=rules.assemble_anatomy.output.heart,
        torso=rules.assemble_anatomy.output.torso,
        heart_model="results/shapes/heart.npz",
        torso_model="results/shapes/torso.npz",
        fibres=rules.compute_fibres.output.fibres,
        junctions=rules.grow_purkinje.output.junctions,
        # the 12-lead's chunk only (leadfield.smk): the banks do not change with the other electrodes
        chunks=["results/patients/{patient}/leadfield/chunk-0.npz"],
    output:
        bank=directory("results/ecg2act/bank/{patient}.zarr"),
        sites="results/ecg2act/sites/{patient}.npz",
    params:
        split=lambda wildcards: "test" if wildcards.patient in TEST_PATIENTS else "train",
        bank=ECG2ACT["bank"],
        bank_mesh=bank_mesh_params(config),
        seed=config["cohort"]["seed"],
        action_potential=config["electrophysiology"]["action_potential"],
        template_cache_dir="results/cache/action_potential",
        # the shape models' resampling plans at the bank's sizes, as mesh_anatomy keeps its own
        resampling_cache_dir="results/cache/resampling",
    log:
        "results/logs/ecg2act/simulation_bank-{patient}.log",
    benchmark:
        "results/benchmarks/ecg2act/simulation_bank-{patient}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(60),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/simulation_bank.py"


rule draw_bank_sites:
    """A patient's 75 recording sites on its myocardium, off the bank's chain (pictures.patients_per_split)."""
    input:
        fibres=rules.compute_fibres.output.fibres,
        sites=rules.simulation_bank.output.sites,
    output:
        preview=report("results/ecg2act/sites/{patient}.png", caption=caption("ecg2act_sites"),
                       category="ECG to activation", subcategory="Recording sites", labels={"patient": "{patient}"}),
    log:
        "results/logs/ecg2act/draw_bank_sites-{patient}.log",
    benchmark:
        "results/benchmarks/ecg2act/draw_bank_sites-{patient}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(1500),
        runtime=scaled(10),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/draw_bank_sites.py"


TRAIN_ECG2ACT_CHAIN = ChainInputs(
    banks=(rules.simulation_bank.output.bank, TRAIN_PATIENTS),
)


rule train_ecg2act:
    input:
        unpack(TRAIN_ECG2ACT_CHAIN.input),
        # the training patients' banks only: the test patients are the held-out split
    output:
        model="results/ecg2act/network-{network}/model.pt",
        losses="results/ecg2act/network-{network}/losses.csv",
        plot=report("results/ecg2act/network-{network}/losses.png", caption=caption("ecg2act_losses"),
                    category="ECG to activation", subcategory="Training", labels={"network": "{network}"}),
    params:
        chain=TRAIN_ECG2ACT_CHAIN.params,
        section=lambda wildcards: ecg2act_network_section(ECG2ACT, wildcards.network),
        # checkpoints for resuming a killed job; not an output, so a rerun finds them
        workdir="results/ecg2act/network-{network}/checkpoints",
    log:
        "results/logs/ecg2act/train-{network}.log",
    benchmark:
        "results/benchmarks/ecg2act/train-{network}.tsv"
    threads: 2
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(240),
        gpu=lambda wildcards: gpu_resources(ECG2ACT["networks"][wildcards.network]),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/train_ecg2act.py"


EVALUATE_ECG2ACT_CHAIN = ChainInputs(
    train_banks=(rules.simulation_bank.output.bank, TRAIN_PATIENTS),
    test_banks=(rules.simulation_bank.output.bank, TEST_PATIENTS),
)


rule evaluate_ecg2act:
    input:
        unpack(EVALUATE_ECG2ACT_CHAIN.input),
        models=expand(rules.train_ecg2act.output.model, network=ECG2ACT_NETWORKS),
    output:
        metrics=report("results/ecg2act/metrics.csv", caption=caption("ecg2act_metrics"),
                       category="ECG to activation", subcategory="Evaluation", labels={"table": "metrics"}),
        summary="results/ecg2act/summary.md",
        # each network's figures only where it is trained (ecg2act.networks_to_train)
        boxes=report("results/ecg2act/site_errors.png", caption=caption("ecg2act_boxes"),
                     category="ECG to activation", subcategory="Evaluation", labels={"figure": "Fig. 3c"})
        if "I" in ECG2ACT_NETWORKS else [],
        activation_map=report("results/ecg2act/activation_map.png", caption=caption("ecg2act_map"),
                              category="ECG to activation", subcategory="Evaluation", labels={"figure": "Fig. 3b/d"})
        if "I" in ECG2ACT_NETWORKS else [],
        overlays=report("results/ecg2act/vm_overlays.png", caption=caption("ecg2act_overlays"),
                        category="ECG to activation", subcategory="Evaluation", labels={"figure": "Fig. 4a-c"})
        if "II" in ECG2ACT_NETWORKS else [],
    params:
        chain=EVALUATE_ECG2ACT_CHAIN.params,
        networks=ECG2ACT_NETWORKS,
        min_scored_samples=ECG2ACT["min_scored_samples"],
    log:
        "results/logs/ecg2act/evaluate_ecg2act.log",
    benchmark:
        "results/benchmarks/ecg2act/evaluate_ecg2act.tsv"
    threads: 1
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(30),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/evaluate_ecg2act.py"


rule ecg2act:
    """Target: the ECG -> activation stage (banks, both networks, both splits)."""
    input:
        rules.evaluate_ecg2act.output,
