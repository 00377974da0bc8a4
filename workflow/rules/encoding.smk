# Geometry encodings (paper 1, sections 2.4-2.6): SDF samples per patient (into the dataset),
# PCA codes, the DeepSDF auto-decoder trained on the training patients' SDF samples, codes of
# held-out patients by MAP inference, and Chamfer distances per patient. Each job reads the
# per-patient files it uses, not the assembled store: a lead field, an electrode or a scenario
# changes no shape model.

DEEPSDF = config["encoding"]["deepsdf"]
TRAIN_PATIENTS = [p for p in PATIENTS if p.startswith("train-")]
TEST_PATIENTS = [p for p in PATIENTS if p.startswith("test-")]
SHAPE_FIT_PATIENTS, SHAPE_VALIDATION_PATIENTS = validation_split(TRAIN_PATIENTS, DEEPSDF["validation_fraction"],
                                                                 DEEPSDF["seed"])
INFERRED_PATIENTS = SHAPE_VALIDATION_PATIENTS + TEST_PATIENTS
SHAPE_EVALUATED_PATIENTS = PATIENTS if DEEPSDF["evaluation"]["fitted_patients"] else INFERRED_PATIENTS


rule sample_sdf:
    input:
        heart=rules.assemble_anatomy.output.heart,
        torso=rules.assemble_anatomy.output.torso,
    output:
        # its preview (sdf.png) is drawn by draw_patient, off the data chain
        sdf="results/patients/{patient}/encoding/sdf.npz",
    params:
        sampling=config["encoding"]["sdf"],
        seed=config["cohort"]["seed"],
    log:
        "results/logs/patients/{patient}/sample_sdf.log",
    benchmark:
        "results/benchmarks/patients/{patient}/sample_sdf.tsv"
    # the DeepSDF chain's first step: a priority only on train_shape_model left these 2-3 s jobs
    # to the scheduler's end, so the chain started at minute 18 of a 23-minute fresh default run
    # with one core idle beside it
    priority: 10
    # libigl's closest-point queries, on the job's threads (ecgcohort sets IGL_NUM_THREADS)
    threads: 2
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(15),
    conda:
        "../../envs/geometry.yaml"
    script:
        "../scripts/sample_sdf.py"


PCA_CODES_CHAIN = ChainInputs(
    parameters=(rules.patient_parameters.output.parameters, PATIENTS),
)


rule pca_codes:
    input:
        unpack(PCA_CODES_CHAIN.input),
    output:
        codes="results/encoding/pca/codes.csv",
        sidecar="results/encoding/pca/codes.json",
    params:
        chain=PCA_CODES_CHAIN.params,
        include_translation=config["encoding"]["pca"]["include_translation"],
    log:
        "results/logs/encoding/pca_codes.log",
    benchmark:
        "results/benchmarks/encoding/pca_codes.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/pca_codes.py"


SHAPE_MODEL_CHAIN = ChainInputs(
    samples=(rules.sample_sdf.output.sdf, SHAPE_FIT_PATIENTS),
)


rule train_shape_model:
    input:
        unpack(SHAPE_MODEL_CHAIN.input),
        # the fitting patients' samples only: the validation patients are held out of training
    output:
        model="results/encoding/deepsdf/model.pt",
        losses="results/encoding/deepsdf/losses.csv",
        plot=report("results/encoding/deepsdf/losses.png", caption=caption("deepsdf_losses"),
                    category="Geometry encodings", subcategory="DeepSDF training", labels={"figure": "losses"}),
    params:
        chain=SHAPE_MODEL_CHAIN.params,
        deepsdf={key: value for key, value in DEEPSDF.items() if key not in ("inference", "evaluation")},
        fit_patients=SHAPE_FIT_PATIENTS,
        validation_patients=SHAPE_VALIDATION_PATIENTS,
        sdf_sampling=config["encoding"]["sdf"],
        # checkpoints for resuming a killed job; not an output, so a rerun finds them
        workdir="results/encoding/deepsdf/checkpoints",
    log:
        "results/logs/encoding/train_shape_model.log",
    benchmark:
        "results/benchmarks/encoding/train_shape_model.tsv"
    # the DeepSDF chain (this, the codes, then its surrogate) is the longest path to the end of
    # a run: started as soon as the training patients' samples exist, not after the patients'
    # data (a fresh default run ended 3 min after it started at minute 12)
    priority: 10
    threads: 2
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(120),
        gpu=gpu_resources(DEEPSDF),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/train_shape_model.py"


INFER_SHAPE_CODE_CHAIN = ChainInputs(
    samples=rules.sample_sdf.output.sdf,
)


rule infer_shape_code:
    input:
        unpack(INFER_SHAPE_CODE_CHAIN.input),
        model=rules.train_shape_model.output.model,
    output:
        code="results/encoding/deepsdf/codes/{patient}.json",
    params:
        chain=INFER_SHAPE_CODE_CHAIN.params,
        deepsdf={key: value for key, value in DEEPSDF.items() if key != "evaluation"},
        seed=config["cohort"]["seed"],
        role=shape_role,
    wildcard_constraints:
        patient="|".join(INFERRED_PATIENTS) or "no-patient",
    log:
        "results/logs/encoding/infer_shape_code-{patient}.log",
    benchmark:
        "results/benchmarks/encoding/infer_shape_code-{patient}.tsv"
    priority: 10  # the DeepSDF chain (train_shape_model)
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(20),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/infer_shape_code.py"


rule shape_codes:
    input:
        model=rules.train_shape_model.output.model,
        inferred=lambda wildcards: expand(rules.infer_shape_code.output.code, patient=INFERRED_PATIENTS),
    output:
        codes="results/encoding/deepsdf/codes.csv",
        sidecar="results/encoding/deepsdf/codes.json",
    log:
        "results/logs/encoding/shape_codes.log",
    benchmark:
        "results/benchmarks/encoding/shape_codes.tsv"
    priority: 10  # the DeepSDF chain (train_shape_model)
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/shape_codes.py"


EVALUATE_SHAPE_CODE_CHAIN = ChainInputs(
    heart=rules.assemble_anatomy.output.heart,
    torso=rules.assemble_anatomy.output.torso,
)


rule evaluate_shape_code:
    input:
        unpack(EVALUATE_SHAPE_CODE_CHAIN.input),
        model=rules.train_shape_model.output.model,
        codes=rules.shape_codes.output.codes,
    output:
        chamfer="results/encoding/deepsdf/chamfer/{patient}.json",
        slices="results/encoding/deepsdf/chamfer/{patient}.png",
    params:
        chain=EVALUATE_SHAPE_CODE_CHAIN.params,
        deepsdf=DEEPSDF,
        role=shape_role,
    log:
        "results/logs/encoding/evaluate_shape_code-{patient}.log",
    benchmark:
        "results/benchmarks/encoding/evaluate_shape_code-{patient}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(20),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/evaluate_shape_code.py"


rule evaluate_shape_model:
    input:
        chamfer=lambda wildcards: expand(rules.evaluate_shape_code.output.chamfer, patient=SHAPE_EVALUATED_PATIENTS),
    output:
        table=report("results/encoding/deepsdf/chamfer.csv", caption=caption("chamfer_table"),
                     category="Geometry encodings", subcategory="Chamfer distances", labels={"table": "per patient"}),
        heatmap=report("results/encoding/deepsdf/chamfer.png", caption=caption("chamfer"),
                       category="Geometry encodings", subcategory="Chamfer distances", labels={"figure": "heat map"}),
        summary=report("results/encoding/deepsdf/chamfer.md", caption=caption("chamfer_summary"),
                       category="Geometry encodings", subcategory="Chamfer distances", labels={"table": "by role"}),
    log:
        "results/logs/encoding/evaluate_shape_model.log",
    benchmark:
        "results/benchmarks/encoding/evaluate_shape_model.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/evaluate_shape_model.py"


rule encodings:
    """Target: SDF samples, PCA codes, the DeepSDF model, every patient's code and the Chamfer table."""
    input:
        lambda wildcards: chain_targets(list(rules.sample_sdf.output), PATIENTS),
        rules.pca_codes.output,
        rules.train_shape_model.output,
        rules.shape_codes.output,
        rules.evaluate_shape_model.output,
