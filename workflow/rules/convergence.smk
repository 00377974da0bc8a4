# Mesh convergence of the ground truth: the patients of `convergence.patients` through the
# ladder `convergence.levels` (coarse to fine, the last the reference), every level against the
# finest. The patient (surfaces, electrodes, Purkinje junctions) is the cohort's own: only the
# meshing changes from level to level.

CONVERGENCE = config["convergence"]
# "test" stands for every test patient: the error budget's ground-truth term is measured on them
CONVERGENCE_PATIENTS = [patient for entry in CONVERGENCE["patients"]
                        for patient in ([p for p in PATIENTS if p.startswith("test-")] if entry == "test" else [entry])
                        if patient in PATIENTS]
CONVERGENCE_LEVELS = list(range(len(CONVERGENCE["levels"])))


CONVERGENCE_POINTS_CHAIN = ChainInputs(
    heart=rules.assemble_anatomy.output.heart,
    torso=rules.assemble_anatomy.output.torso,
)


rule convergence_points:
    input:
        unpack(CONVERGENCE_POINTS_CHAIN.input),
    output:
        points="results/convergence/{patient}/points.npz",
    params:
        chain=CONVERGENCE_POINTS_CHAIN.params,
        seed=config["cohort"]["seed"],
        settings={key: CONVERGENCE[key] for key in ("myocardium_points", "torso_points", "min_depth_mm",
                                                     "torso_shell_mm")},
    log:
        "results/logs/convergence/{patient}/convergence_points.log",
    benchmark:
        "results/benchmarks/convergence/{patient}/convergence_points.tsv"
    # libigl's signed distances, on the job's threads (ecgcohort sets IGL_NUM_THREADS)
    threads: 2
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/convergence_points.py"


CONVERGENCE_LEVEL_CHAIN = ChainInputs(
    heart=rules.assemble_anatomy.output.heart,
    torso=rules.assemble_anatomy.output.torso,
    # the heart's size factor (meshing.heart_element_size_follows_heart)
    anatomy=rules.assemble_anatomy.output.summary,
    # the 12-lead electrodes only: the anterior array's count re-runs no level
    electrodes=rules.place_standard_electrodes.output.electrodes,
    junctions=rules.grow_purkinje.output.junctions,
)


rule convergence_level:
    input:
        unpack(CONVERGENCE_LEVEL_CHAIN.input),
        heart_model="results/shapes/heart.npz",
        torso_model="results/shapes/torso.npz",
        points=rules.convergence_points.output.points,
    output:
        level="results/convergence/{patient}/level-{level}.npz",
    params:
        chain=CONVERGENCE_LEVEL_CHAIN.params,
        level=lambda wildcards: CONVERGENCE["levels"][int(wildcards.level)],
        physics={
            # the levels' own element sizes replace the cohort's: changing those re-runs no level
            "meshing": {key: value for key, value in config["meshing"].items()
                        if key not in ("heart_element_size_mm", "torso_element_size_mm")},
            "fibres": config["fibers"],
            "velocities": config["electrophysiology"]["velocity_m_per_s"],
            "eikonal_refinements": config["electrophysiology"]["eikonal_refinements"],
            "source_radius_edges": config["electrophysiology"]["source_radius_edges"],
            "subendocardial_layer": config["electrophysiology"]["subendocardial_layer"],
            "action_potential": config["electrophysiology"]["action_potential"],
            "conductivities": config["leadfield"]["conductivity_s_per_m"],
            "scenario": dataclasses.asdict(ACTIVATION_MAPS[CONVERGENCE["scenario"]]),
            "duration_ms": config["ecg"]["duration_ms"],
            "dt_ms": config["ecg"]["dt_ms"],
            "vm_nodes": config["ecg"]["vm_nodes"],
            "seed": config["cohort"]["seed"],
            "low_rank_tolerance": config["leadfield"]["low_rank_tolerance"],
            "template_cache": "results/cache/action_potential",
        },
    wildcard_constraints:
        level=r"\d+",
    log:
        "results/logs/convergence/{patient}/convergence_level-{level}.log",
    benchmark:
        "results/benchmarks/convergence/{patient}/convergence_level-{level}.tsv"
    # a second thread pays only at the fine levels (MUMPS, gmsh): the default's 4 and 2.5 mm
    # levels took the same 9.9-10.1 s on one thread as on two, which left a core idle
    threads: lambda wildcards: 1 if CONVERGENCE["levels"][int(wildcards.level)]["heart_mm"] >= 2.0 else 2
    resources:
        mem_mb=lambda wildcards, attempt: attempt * max(4000, int(60000 / CONVERGENCE["levels"][int(wildcards.level)]["heart_mm"] ** 3)),
        runtime=scaled(60),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/convergence_level.py"


rule convergence_summary:
    input:
        levels=lambda wildcards: expand(rules.convergence_level.output.level, patient=CONVERGENCE_PATIENTS,
            level=CONVERGENCE_LEVELS),
    output:
        table=report("results/convergence/convergence.csv", caption=caption("convergence"), category="Ground truth",
                     subcategory="Mesh convergence", labels={"table": "errors per level"}),
        markdown="results/convergence/convergence.md",
        leads=report("results/convergence/convergence_leads.csv", caption=caption("convergence"),
                     category="Ground truth", subcategory="Mesh convergence", labels={"table": "ECG errors per lead"}),
        figure=report("results/convergence/convergence.png", caption=caption("convergence"), category="Ground truth",
                      subcategory="Mesh convergence", labels={"figure": "errors against element size"}),
    params:
        level_paths={patient: expand(rules.convergence_level.output.level, patient=patient, level=CONVERGENCE_LEVELS)
                     for patient in CONVERGENCE_PATIENTS},
        cycle_length_ms=config["electrophysiology"]["action_potential"]["cycle_length_ms"],
        template_cache="results/cache/action_potential",
    log:
        "results/logs/convergence/convergence_summary.log",
    benchmark:
        "results/benchmarks/convergence/convergence_summary.tsv"
    threads: 1
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(20),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/convergence_summary.py"


rule convergence:
    """Target: the mesh-convergence table and figure of `convergence.patients` over `convergence.levels`."""
    input:
        rules.convergence_summary.output,
