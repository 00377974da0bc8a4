# The inverse-ECG benchmark (paper 2's methods) without the inverse crime: per patient the
# heart and body surfaces (and the transfer matrix of its own mesh, for the Aliev-Panfilov
# source); per patient and source the ground truth (a cohort scenario's extracellular potential
# from the 3-D solve); per patient and mismatch the inversion's own, separately meshed model;
# per patient, source and method the reconstructions in every setting (mismatch and noise) and
# repeat; the fan-in to the metrics table, the figures and the timings. The methods fit each
# patient's own body-surface maps: nothing is learned across patients.

from ecgcohort.inverse.selection import benchmark_patients

INVERSE = config["inverse"]
INVERSE_PATIENTS = benchmark_patients(INVERSE["patients"], PATIENTS)
INVERSE_SOURCES = INVERSE["dynamics"]["sources"]
INVERSE_MODEL_SOURCE = "aliev_panfilov"  # ecgcohort.inverse.dynamics.MODEL_SOURCE
INVERSE_RUNS = [(p, s, m) for p in INVERSE_PATIENTS for s in INVERSE_SOURCES for m in INVERSE["methods"]]
INVERSE_MISMATCHES = list(dict.fromkeys(setting["mismatch"] for setting in INVERSE["settings"]))
INVERSE_NOISES = list(dict.fromkeys(setting["noise"] for setting in INVERSE["settings"]))
for _setting in INVERSE["settings"]:
    for _kind, _named in (("mismatch", INVERSE["mismatches"]), ("noise", INVERSE["noise_models"])):
        if _setting[_kind] not in _named:
            raise ValueError(f"inverse.settings: {_kind} {_setting[_kind]!r} is not defined in inverse."
                             f"{'mismatches' if _kind == 'mismatch' else 'noise_models'} "
                             f"({', '.join(sorted(_named)) or 'none'})")


wildcard_constraints:
    source="|".join(INVERSE_SOURCES),
    method="tikhonov_0th|tikhonov_2nd|stre|ep_dl|eand_arn",
    mismatch="[a-z][a-z0-9_]*",


# the electrodes are the measurement points only with inverse.body.source "electrodes"
INVERSE_SURFACES_CHAIN = ChainInputs(
    mesh=rules.mesh_anatomy.output.mesh,
    **({"electrodes": rules.place_electrodes.output.electrodes} if INVERSE["body"]["source"] == "electrodes" else {}),
)


rule inverse_surfaces:
    """A patient's closed heart surface remeshed and its measurement points."""
    input:
        unpack(INVERSE_SURFACES_CHAIN.input),
    output:
        surfaces="results/inverse/{patient}/surfaces.npz",
        preview=report("results/inverse/{patient}/surfaces.png", caption=caption("inverse_surfaces"),
                       category="Inverse ECG", subcategory="Surfaces", labels={"patient": "{patient}"}),
    params:
        chain=INVERSE_SURFACES_CHAIN.params,
        heart_nodes=INVERSE["heart_nodes"],
        heart_offset_mm=INVERSE["heart_offset_mm"],
        body=INVERSE["body"],
    log:
        "results/logs/inverse/{patient}/inverse_surfaces.log",
    benchmark:
        "results/benchmarks/inverse/{patient}/inverse_surfaces.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(15),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/inverse_surfaces.py"


TRANSFER_MATRIX_CHAIN = ChainInputs(
    mesh=rules.mesh_anatomy.output.mesh,
)


rule transfer_matrix:
    """R of the patient's own mesh: the Aliev-Panfilov source's body maps are made with it."""
    input:
        unpack(TRANSFER_MATRIX_CHAIN.input),
        surfaces=rules.inverse_surfaces.output.surfaces,
    output:
        transfer="results/inverse/{patient}/transfer.npz",
        preview=report("results/inverse/{patient}/transfer.png", caption=caption("inverse_transfer"),
                       category="Inverse ECG", subcategory="Transfer matrices", labels={"patient": "{patient}"}),
    params:
        chain=TRANSFER_MATRIX_CHAIN.params,
        heart_offset_mm=INVERSE["heart_offset_mm"],
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


INVERSION_MODEL_CHAIN = ChainInputs(
    mesh=rules.mesh_anatomy.output.mesh,
)


rule inversion_model:
    """The inversion's own model of a patient under one mismatch: the heart surface moved, the
    body surface remeshed, the torso between them meshed again, R."""
    input:
        unpack(INVERSION_MODEL_CHAIN.input),
        surfaces=rules.inverse_surfaces.output.surfaces,
    output:
        model="results/inverse/{patient}/models/{mismatch}.npz",
    params:
        chain=INVERSION_MODEL_CHAIN.params,
        section=lambda wildcards: INVERSE["mismatches"][wildcards.mismatch],
        seed=config["cohort"]["seed"],
        inversion=INVERSE["inversion"],
        transfer=INVERSE["transfer"],
    log:
        "results/logs/inverse/{patient}/inversion_model-{mismatch}.log",
    benchmark:
        "results/benchmarks/inverse/{patient}/inversion_model-{mismatch}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(15),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/inversion_model.py"


rule heart_surface_dynamics:
    """The ground truth of one source: the heart-surface potentials and the clean body maps."""
    input:
        unpack(inverse_truth_inputs),
    output:
        dynamics="results/inverse/{patient}/{source}/dynamics.npz",
        preview=report("results/inverse/{patient}/{source}/dynamics.png", caption=caption("inverse_dynamics"),
                       category="Inverse ECG", subcategory="Ground truth",
                       labels={"patient": "{patient}", "source": "{source}"}),
    params:
        chain=inverse_truth_chain,
        dynamics=INVERSE["dynamics"],
        template_cache_dir="results/cache/action_potential",
        # what a cohort scenario's map is made of (that scenario's entry only): the map is an
        # ancient input (inverse_truth_inputs), so these settings re-run the ground truth when
        # its map changes, and the action potential's cycle length sets the template
        activation_map=lambda wildcards: {} if wildcards.source == INVERSE_MODEL_SOURCE else {
            "entry": dataclasses.asdict(ACTIVATION_MAPS[wildcards.source]),
            "velocities": config["electrophysiology"]["velocity_m_per_s"],
            "action_potential": config["electrophysiology"]["action_potential"],
            "seed": config["cohort"]["seed"],
            "device": config["electrophysiology"]["device"],
            "eikonal_refinements": config["electrophysiology"]["eikonal_refinements"],
            "source_radius_edges": config["electrophysiology"]["source_radius_edges"],
            "subendocardial_layer": config["electrophysiology"]["subendocardial_layer"]},
        # the lead fields' volume conductor, for a cohort scenario's 3-D solve only: the model
        # source does not re-run when it changes
        leadfield=lambda wildcards: {} if wildcards.source == INVERSE_MODEL_SOURCE else {
            "conductivities": config["leadfield"]["conductivity_s_per_m"],
            "low_rank_tolerance": config["leadfield"]["low_rank_tolerance"],
            "electrode_tolerance_mm": electrode_tolerance_mm(config["meshing"]["torso_element_size_mm"]),
            "cell_gradient": config["leadfield"]["cell_gradient"]},
    log:
        "results/logs/inverse/{patient}/heart_surface_dynamics-{source}.log",
    benchmark:
        "results/benchmarks/inverse/{patient}/heart_surface_dynamics-{source}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(20),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/heart_surface_dynamics.py"


rule reconstruct_inverse:
    input:
        surfaces=rules.inverse_surfaces.output.surfaces,
        dynamics=rules.heart_surface_dynamics.output.dynamics,
        models=expand("results/inverse/{{patient}}/models/{mismatch}.npz", mismatch=INVERSE_MISMATCHES),
    output:
        metrics="results/inverse/{patient}/{source}/{method}/metrics.csv",
        estimates="results/inverse/{patient}/{source}/{method}/estimates.npz",
    params:
        seed=config["cohort"]["seed"],
        settings=INVERSE["settings"],
        mismatches=INVERSE_MISMATCHES,
        noise_models={name: INVERSE["noise_models"][name] for name in INVERSE_NOISES},
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
        metrics=lambda wildcards: [f"results/inverse/{p}/{s}/{m}/metrics.csv" for p, s, m in INVERSE_RUNS],
        estimates=lambda wildcards: [f"results/inverse/{p}/{s}/{m}/estimates.npz" for p, s, m in INVERSE_RUNS],
        dynamics=lambda wildcards: [f"results/inverse/{p}/{s}/dynamics.npz" for p in INVERSE_PATIENTS
            for s in INVERSE_SOURCES],
        surfaces=lambda wildcards: expand(rules.inverse_surfaces.output.surfaces, patient=INVERSE_PATIENTS),
        models=lambda wildcards: [f"results/inverse/{p}/models/{m}.npz" for p in INVERSE_PATIENTS
            for m in INVERSE_MISMATCHES],
    output:
        metrics=report("results/inverse/metrics.csv", caption=caption("inverse_metrics"), category="Inverse ECG",
                       subcategory="Benchmark", labels={"table": "every run"}),
        summary=report("results/inverse/summary.csv", caption=caption("inverse_summary"), category="Inverse ECG",
                       subcategory="Benchmark", labels={"table": "mean ± sd"}),
        markdown="results/inverse/summary.md",
        timing=report("results/inverse/timing.csv", caption=caption("inverse_timing"), category="Inverse ECG",
                      subcategory="Timing", labels={"table": "timing"}),
        fig9=report("results/inverse/fig9_metrics.png", caption=caption("inverse_fig9"), category="Inverse ECG",
                    subcategory="Benchmark", labels={"figure": "metrics per setting"}),
        fig10=report("results/inverse/fig10_maps.png", caption=caption("inverse_fig10"), category="Inverse ECG",
                     subcategory="Benchmark", labels={"figure": "heart-surface maps"}),
        fig11=report("results/inverse/fig11_series.png", caption=caption("inverse_fig11"), category="Inverse ECG",
                     subcategory="Benchmark", labels={"figure": "electrograms"}),
        activation=report("results/inverse/activation_maps.png", caption=caption("inverse_activation"),
                          category="Inverse ECG", subcategory="Benchmark", labels={"figure": "activation maps"}),
        axes=report("results/inverse/axes.png", caption=caption("inverse_axes"), category="Inverse ECG",
                    subcategory="Benchmark", labels={"figure": "error per axis"}),
    params:
        runs=INVERSE_RUNS,
        dynamics_keys=[f"{p}/{s}" for p in INVERSE_PATIENTS for s in INVERSE_SOURCES],
        model_keys=[f"{p}/{m}" for p in INVERSE_PATIENTS for m in INVERSE_MISMATCHES],
        patients=INVERSE_PATIENTS,
        mismatches={name: INVERSE["mismatches"][name] for name in INVERSE_MISMATCHES},
        noise_models={name: INVERSE["noise_models"][name] for name in INVERSE_NOISES},
        time_unit_ms=INVERSE["dynamics"]["time_unit_ms"],
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
