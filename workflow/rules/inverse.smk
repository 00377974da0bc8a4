# The inverse-ECG benchmark (paper 2): per patient a transfer matrix from the FEM volume
# conductor between the closed heart surface and the body surface; per patient and source the
# ground-truth heart-surface potentials; per patient, source and method the reconstructions at
# every noise level and repeat; the fan-in to the metrics table, Figs. 9-11 and the timings.
# The methods fit each patient's own body-surface maps: nothing is learned across patients.

INVERSE = config["inverse"]
INVERSE_PATIENTS = TEST_PATIENTS if INVERSE["patients"] == "test" else PATIENTS
INVERSE_SOURCES = INVERSE["dynamics"]["sources"]
INVERSE_MODEL_SOURCE = "aliev_panfilov"  # ecgcohort.inverse.dynamics.MODEL_SOURCE
INVERSE_RUNS = [(p, s, m) for p in INVERSE_PATIENTS for s in INVERSE_SOURCES for m in INVERSE["methods"]]


wildcard_constraints:
    source="|".join(INVERSE_SOURCES),
    method="tikhonov_0th|tikhonov_2nd|stre|ep_dl|eand_arn",


rule transfer_matrix:
    input:
        mesh=rules.mesh_anatomy.output.mesh,
        # the electrodes are the measurement points only with inverse.body.source "electrodes"
        electrodes=rules.place_electrodes.output.electrodes if INVERSE["body"]["source"] == "electrodes" else [],
    output:
        surfaces="results/inverse/{patient}/surfaces.npz",
        transfer="results/inverse/{patient}/transfer.npz",
        preview=report("results/inverse/{patient}/transfer.png", caption=caption("inverse_transfer"),
                       category="Inverse ECG", subcategory="Transfer matrices", labels={"patient": "{patient}"}),
    params:
        heart_nodes=INVERSE["heart_nodes"],
        body=INVERSE["body"],
        transfer=INVERSE["transfer"],
    log:
        "results/logs/inverse/{patient}/transfer_matrix.log",
    benchmark:
        "results/benchmarks/inverse/{patient}/transfer_matrix.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/transfer_matrix.py"


rule heart_surface_dynamics:
    input:
        surfaces=rules.transfer_matrix.output.surfaces,
        transfer=rules.transfer_matrix.output.transfer,
        anatomy=rules.assemble_anatomy.output.summary,
        # a cohort scenario's map and the mesh it lives on (the Aliev-Panfilov source reads
        # neither), not the store or the patient's part: another patient, an electrode or
        # another variable leaves the inverse benchmark alone
        fibres=lambda wildcards: [] if wildcards.source == INVERSE_MODEL_SOURCE else rules.compute_fibres.output.fibres,
        activation=lambda wildcards: [] if wildcards.source == INVERSE_MODEL_SOURCE
        else f"results/patients/{wildcards.patient}/activation/{wildcards.source}.npz",
    output:
        dynamics="results/inverse/{patient}/{source}/dynamics.npz",
        preview=report("results/inverse/{patient}/{source}/dynamics.png", caption=caption("inverse_dynamics"),
                       category="Inverse ECG", subcategory="Ground truth",
                       labels={"patient": "{patient}", "source": "{source}"}),
    params:
        dynamics=INVERSE["dynamics"],
        cycle_length_ms=config["electrophysiology"]["action_potential"]["cycle_length_ms"],
        template_cache_dir="results/cache/action_potential",
    log:
        "results/logs/inverse/{patient}/heart_surface_dynamics-{source}.log",
    benchmark:
        "results/benchmarks/inverse/{patient}/heart_surface_dynamics-{source}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(20),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/heart_surface_dynamics.py"


rule reconstruct_inverse:
    input:
        surfaces=rules.transfer_matrix.output.surfaces,
        transfer=rules.transfer_matrix.output.transfer,
        dynamics=rules.heart_surface_dynamics.output.dynamics,
    output:
        metrics="results/inverse/{patient}/{source}/{method}/metrics.csv",
        estimates="results/inverse/{patient}/{source}/{method}/estimates.npz",
    params:
        seed=config["cohort"]["seed"],
        noise_levels=INVERSE["noise_levels"],
        repeats=INVERSE["repeats"],
        method_config=inverse_method_section,
        dynamics=INVERSE["dynamics"],
        # checkpoints for resuming a killed job; not an output, so a rerun finds them
        workdir="results/inverse/{patient}/{source}/{method}/checkpoints",
    log:
        "results/logs/inverse/{patient}/reconstruct-{source}-{method}.log",
    benchmark:
        "results/benchmarks/inverse/{patient}/reconstruct-{source}-{method}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(120),
        gpu=lambda wildcards: gpu_resources(inverse_method_section(wildcards)) if "training" in inverse_method_section(wildcards) else 0,
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/reconstruct_inverse.py"


rule inverse_benchmark:
    input:
        metrics=[f"results/inverse/{p}/{s}/{m}/metrics.csv" for p, s, m in INVERSE_RUNS],
        estimates=[f"results/inverse/{p}/{s}/{m}/estimates.npz" for p, s, m in INVERSE_RUNS],
        dynamics=[f"results/inverse/{p}/{s}/dynamics.npz" for p in INVERSE_PATIENTS for s in INVERSE_SOURCES],
        surfaces=expand(rules.transfer_matrix.output.surfaces, patient=INVERSE_PATIENTS),
        transfer=expand(rules.transfer_matrix.output.transfer, patient=INVERSE_PATIENTS),
    output:
        metrics=report("results/inverse/metrics.csv", caption=caption("inverse_metrics"), category="Inverse ECG",
                       subcategory="Benchmark", labels={"table": "every run"}),
        summary=report("results/inverse/summary.csv", caption=caption("inverse_summary"), category="Inverse ECG",
                       subcategory="Benchmark", labels={"table": "mean ± sd"}),
        markdown="results/inverse/summary.md",
        timing=report("results/inverse/timing.csv", caption=caption("inverse_timing"), category="Inverse ECG",
                      subcategory="Timing", labels={"table": "timing"}),
        fig9=report("results/inverse/fig9_metrics.png", caption=caption("inverse_fig9"), category="Inverse ECG",
                    subcategory="Benchmark", labels={"figure": "Fig. 9 metrics"}),
        fig10=report("results/inverse/fig10_maps.png", caption=caption("inverse_fig10"), category="Inverse ECG",
                     subcategory="Benchmark", labels={"figure": "Fig. 10 heart-surface maps"}),
        fig11=report("results/inverse/fig11_series.png", caption=caption("inverse_fig11"), category="Inverse ECG",
                     subcategory="Benchmark", labels={"figure": "Fig. 11 time series"}),
    params:
        runs=INVERSE_RUNS,
        dynamics_keys=[f"{p}/{s}" for p in INVERSE_PATIENTS for s in INVERSE_SOURCES],
        patients=INVERSE_PATIENTS,
    log:
        "results/logs/inverse/inverse_benchmark.log",
    benchmark:
        "results/benchmarks/inverse/inverse_benchmark.tsv"
    threads: 1
    resources:
        mem_mb=scaled(3000),
        runtime=scaled(15),
    conda:
        "../../envs/learning.yaml"
    script:
        "../scripts/inverse_benchmark.py"


rule inverse:
    """Target: the inverse-ECG benchmark (metrics, figures, timings)."""
    input:
        rules.inverse_benchmark.output,
