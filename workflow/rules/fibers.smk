rule compute_fibres:
    input:
        mesh=rules.mesh_anatomy.output.mesh,
    output:
        fibres="results/patients/{patient}/fibres/fibres.npz",
        # the ParaView file only where asked for: no rule reads it
        **({"grid": "results/patients/{patient}/fibres/fibres.vtu"} if config["fibers"]["write_vtu"] else {}),
    params:
        angles=config["fibers"],
        write_vtu=config["fibers"]["write_vtu"],
    log:
        "results/logs/patients/{patient}/compute_fibres.log",
    benchmark:
        "results/benchmarks/patients/{patient}/compute_fibres.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(20),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/compute_fibres.py"


rule fibres:
    """Target: every patient's fibres and ventricular coordinates (the previews: ``pictures``)."""
    input:
        lambda wildcards: chain_targets(list(rules.compute_fibres.output), PATIENTS),
