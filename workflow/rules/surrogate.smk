# The lead-field surrogate (paper 1, sections 2.3 and 2.6): one network per encoding and target
# form trained on the training patients' lead fields, evaluated per test patient against FEM
# and the pseudo lead field, and the fan-in to Table 1, the figures and the timing table.

SURROGATE = config["surrogate"]
SURROGATE_MODELS = [(e, t) for e in SURROGATE["encodings"] for t in SURROGATE["targets"]]
CODES = {"pca": rules.pca_codes.output.codes, "deepsdf": rules.shape_codes.output.codes}
try:
    SURROGATE_TRAIN_PATIENTS = surrogate_training_patients(TRAIN_PATIENTS, SURROGATE["training_patients"])
except ValueError as error:
    raise WorkflowError(str(error)) from None


wildcard_constraints:
    encoding="pca|deepsdf",
    target="full|pseudo_residual",


TRAIN_SURROGATE_CHAIN = ChainInputs(
    points=(rules.sample_leadfield_points.output.points, SURROGATE_TRAIN_PATIENTS),
    electrodes=(rules.place_electrodes.output.electrodes, SURROGATE_TRAIN_PATIENTS),
    fibres=(rules.compute_fibres.output.fibres, SURROGATE_TRAIN_PATIENTS),
    chunks=(expand("results/patients/{{patient}}/leadfield/chunk-{chunk}.npz", chunk=LEADFIELD_CHUNKS),
            SURROGATE_TRAIN_PATIENTS),
)


rule train_surrogate:
    input:
        unpack(TRAIN_SURROGATE_CHAIN.input),
        # the training patients' lead-field files, not the assembled store: a scenario, a test
        # patient or a shape-only change trains no surrogate again
        codes=lambda wildcards: CODES[wildcards.encoding],
    output:
        model="results/surrogate/{encoding}/{target}/model.pt",
        losses="results/surrogate/{encoding}/{target}/losses.csv",
        plot=report("results/surrogate/{encoding}/{target}/losses.png", caption=caption("surrogate_losses"),
                    category="Lead-field surrogate", subcategory="Training",
                    labels={"encoding": "{encoding}", "target": "{target}", "figure": "losses"}),
    params:
        chain=TRAIN_SURROGATE_CHAIN.params,
        section=surrogate_network_section(SURROGATE),
        patients=SURROGATE_TRAIN_PATIENTS,
        sigma0=config["leadfield"]["conductivity_s_per_m"]["torso"],
        # the evaluation's heart region, where the model file records the fitting patients' angle
        heart_margin_mm=SURROGATE["evaluation"]["heart_margin_mm"],
        # checkpoints for resuming a killed job; not an output, so a rerun finds them
        workdir="results/surrogate/{encoding}/{target}/checkpoints",
    log:
        "results/logs/surrogate/train_surrogate-{encoding}-{target}.log",
    benchmark:
        "results/benchmarks/surrogate/train_surrogate-{encoding}-{target}.tsv"
    threads: 2
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(240),
        gpu=gpu_resources(SURROGATE),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/train_surrogate.py"


EVALUATE_SURROGATE_CHAIN = ChainInputs(
    part=rules.dataset_part.output.part,
)


rule evaluate_surrogate:
    input:
        unpack(EVALUATE_SURROGATE_CHAIN.input),
        # the test patient's own part, not the assembled store: another patient's data is not read
        model=rules.train_surrogate.output.model,
        codes=lambda wildcards: CODES[wildcards.encoding],
    output:
        summary="results/surrogate/{encoding}/{target}/evaluation/{patient}.json",
        errors="results/surrogate/{encoding}/{target}/evaluation/{patient}.npz",
    params:
        chain=EVALUATE_SURROGATE_CHAIN.params,
        evaluation=SURROGATE["evaluation"],
        conductivities=config["leadfield"]["conductivity_s_per_m"],
        duration_ms=config["ecg"]["duration_ms"],
        dt_ms=config["ecg"]["dt_ms"],
        cycle_length_ms=config["electrophysiology"]["action_potential"]["cycle_length_ms"],
        template_cache_dir="results/cache/action_potential",
    wildcard_constraints:
        patient="|".join(TEST_PATIENTS) or "no-patient",
    log:
        "results/logs/surrogate/evaluate_surrogate-{encoding}-{target}-{patient}.log",
    benchmark:
        "results/benchmarks/surrogate/evaluate_surrogate-{encoding}-{target}-{patient}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/evaluate_surrogate.py"


# The convergence level meshed as the dataset (the FEM the surrogates learn) and its reference
# (the finest level): the budget's ground-truth term on the test patients that the convergence
# stage takes through its ladder (convergence.patients; "test" is all of them).
DATASET_LEVEL = next((k for k, level in enumerate(CONVERGENCE["levels"][:-1])
                      if (level["heart_mm"], level["torso_mm"]) == (config["meshing"]["heart_element_size_mm"],
                                                                    config["meshing"]["torso_element_size_mm"])), None)
GROUND_TRUTH_PATIENTS = [p for p in TEST_PATIENTS if p in CONVERGENCE_PATIENTS] if DATASET_LEVEL is not None else []


SURROGATE_GROUND_TRUTH_CHAIN = ChainInputs(
    electrodes=rules.place_electrodes.output.electrodes,
    chunks=expand("results/patients/{{patient}}/leadfield/chunk-{chunk}.npz", chunk=LEADFIELD_CHUNKS),
)


rule surrogate_ground_truth:
    input:
        unpack(SURROGATE_GROUND_TRUTH_CHAIN.input),
        # the electrodes as the surrogate saw them (not the patient's part: a scenario leaves it alone)
        model=rules.train_surrogate.output.model,
        codes=lambda wildcards: CODES[wildcards.encoding],
        points=rules.convergence_points.output.points,
        dataset_level=f"results/convergence/{{patient}}/level-{DATASET_LEVEL}.npz",
        reference_level=f"results/convergence/{{patient}}/level-{len(CONVERGENCE_LEVELS) - 1}.npz",
    output:
        summary="results/surrogate/{encoding}/{target}/ground_truth/{patient}.json",
    params:
        chain=SURROGATE_GROUND_TRUTH_CHAIN.params,
        device=SURROGATE["evaluation"]["device"],
    wildcard_constraints:
        patient="|".join(GROUND_TRUTH_PATIENTS) or "no-patient",
    log:
        "results/logs/surrogate/surrogate_ground_truth-{encoding}-{target}-{patient}.log",
    benchmark:
        "results/benchmarks/surrogate/surrogate_ground_truth-{encoding}-{target}-{patient}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(10),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/surrogate_ground_truth.py"


rule summarize_surrogate:
    input:
        summaries=lambda wildcards: [f"results/surrogate/{e}/{t}/evaluation/{p}.json"
            for e, t in SURROGATE_MODELS for p in TEST_PATIENTS],
        errors=lambda wildcards: [f"results/surrogate/{e}/{t}/evaluation/{p}.npz" for e, t in SURROGATE_MODELS
            for p in TEST_PATIENTS],
        models=[f"results/surrogate/{e}/{t}/model.pt" for e, t in SURROGATE_MODELS],
        losses=[f"results/surrogate/{e}/{t}/losses.csv" for e, t in SURROGATE_MODELS],
        ground_truth=lambda wildcards: [f"results/surrogate/{e}/{t}/ground_truth/{p}.json" for e, t in SURROGATE_MODELS
                      for p in GROUND_TRUTH_PATIENTS],
    output:
        table=report("results/surrogate/table1.csv", caption=caption("table1"), category="Lead-field surrogate",
                     subcategory="Table 1", labels={"table": "Table 1"}),
        markdown="results/surrogate/table1.md",
        errors=report("results/surrogate/errors.csv", caption=caption("surrogate_errors"),
                      category="Lead-field surrogate", subcategory="Table 1", labels={"table": "per patient"}),
        timing=report("results/surrogate/timing.csv", caption=caption("surrogate_timing"),
                      category="Lead-field surrogate", subcategory="Timing", labels={"table": "timing"}),
        transfer=report("results/surrogate/ecg_transfer.csv", caption=caption("surrogate_transfer"),
                        category="Lead-field surrogate", subcategory="ECG errors", labels={"table": "ECG transfer"}),
        transfer_markdown="results/surrogate/ecg_transfer.md",
        budget=report("results/surrogate/error_budget.csv", caption=caption("surrogate_budget"),
                      category="Lead-field surrogate", subcategory="ECG errors", labels={"table": "error budget"}),
        budget_markdown="results/surrogate/error_budget.md",
        budget_figure=report("results/surrogate/error_budget.png", caption=caption("surrogate_budget"),
                             category="Lead-field surrogate", subcategory="ECG errors",
                             labels={"figure": "error budget"}),
        cdf=report("results/surrogate/fig6_error_cdf.png", caption=caption("fig6"), category="Lead-field surrogate",
                   subcategory="Lead-field errors", labels={"figure": "Fig. 6 error CDFs"}),
        electrodes=report("results/surrogate/fig7_electrode_errors.png", caption=caption("fig7"),
                          category="Lead-field surrogate", subcategory="Lead-field errors",
                          labels={"figure": "Fig. 7 per electrode"}),
        torso_map=report("results/surrogate/fig8_torso_maps.png", caption=caption("fig8"),
                         category="Lead-field surrogate", subcategory="ECG errors",
                         labels={"figure": "Fig. 8 torso maps"}),
        ecg=report("results/surrogate/fig9_ecg.png", caption=caption("fig9"), category="Lead-field surrogate",
                   subcategory="ECG errors", labels={"figure": "Fig. 9 ECG overlays"}),
    params:
        evaluation=SURROGATE["evaluation"],
    log:
        "results/logs/surrogate/summarize_surrogate.log",
    benchmark:
        "results/benchmarks/surrogate/summarize_surrogate.tsv"
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(15),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/summarize_surrogate.py"


rule surrogates:
    """Target: the trained surrogates, their evaluation on the test patients, Table 1 and figures."""
    input:
        rules.summarize_surrogate.output,
