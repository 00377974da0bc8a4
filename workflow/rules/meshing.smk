rule mesh_anatomy:
    input:
        heart=rules.assemble_anatomy.output.heart,
        torso=rules.assemble_anatomy.output.torso,
        # the heart's size factor (meshing.heart_element_size_follows_heart)
        anatomy=rules.assemble_anatomy.output.summary,
        heart_model="results/shapes/heart.npz",
        torso_model="results/shapes/torso.npz",
    output:
        mesh="results/patients/{patient}/mesh/mesh.msh",
        quality="results/patients/{patient}/mesh/quality.json",
    params:
        settings=config["meshing"],
        # the shape models' resampling plans (1.2 s for the heart at 1.2 mm): computed once per
        # model and element size, kept with the hash of their inputs and code
        resampling_cache_dir="results/cache/resampling",
    log:
        "results/logs/patients/{patient}/mesh_anatomy.log",
    benchmark:
        "results/benchmarks/patients/{patient}/mesh_anatomy.tsv"
    threads: config["meshing"]["threads"] if config["meshing"]["algorithm_3d"] == "hxt" else 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    conda:
        "../../envs/geometry.yaml"
    script:
        "../scripts/mesh_anatomy.py"


rule meshes:
    """Target: every patient's tagged tetrahedral mesh and its quality report."""
    input:
        lambda wildcards: chain_targets(list(rules.mesh_anatomy.output), PATIENTS),
