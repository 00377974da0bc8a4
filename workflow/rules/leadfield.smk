# Lead fields (paper eq. 4) per patient: sample points once, then one job per chunk of
# electrodes, each factoring the patient's matrix once and solving its electrodes as a block.
# Chunk 0 is the 12-lead's nine electrodes, read from their own table: what uses the 12 leads
# only (the ECG -> activation banks) does not re-run when the other electrodes change.

from ecgcohort.leadfield.jobs import STANDARD_ELECTRODE_COUNT, electrode_chunks, electrode_tolerance_mm

LEADFIELD_CHUNKS = list(range(len(electrode_chunks(
    STANDARD_ELECTRODE_COUNT + config["electrodes"]["anterior_count"], config["leadfield"]["electrodes_per_job"]))))


rule sample_leadfield_points:
    input:
        mesh=rules.mesh_anatomy.output.mesh,
    output:
        points="results/patients/{patient}/leadfield/points.npz",
    params:
        sample_points=config["leadfield"]["sample_points"],
        near_fraction=config["leadfield"]["near_interface_fraction"],
        near_mm=config["leadfield"]["near_interface_mm"],
        seed=config["cohort"]["seed"],
    log:
        "results/logs/patients/{patient}/sample_leadfield_points.log",
    benchmark:
        "results/benchmarks/patients/{patient}/sample_leadfield_points.tsv"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=scaled(10),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/sample_leadfield_points.py"


rule compute_lead_fields:
    input:
        mesh=rules.mesh_anatomy.output.mesh,
        fibres=rules.compute_fibres.output.fibres,
        electrodes=leadfield_electrodes,
        points=rules.sample_leadfield_points.output.points,
    output:
        chunk="results/patients/{patient}/leadfield/chunk-{chunk}.npz",
    params:
        # chunk 0 holds the 12-lead's electrodes whatever the chunk size
        electrodes_per_job=lambda wildcards: 0 if wildcards.chunk == "0" else config["leadfield"]["electrodes_per_job"],
        conductivities=config["leadfield"]["conductivity_s_per_m"],
        low_rank_tolerance=config["leadfield"]["low_rank_tolerance"],
        electrode_tolerance_mm=electrode_tolerance_mm(config["meshing"]["torso_element_size_mm"]),
        point_gradient=config["leadfield"]["point_gradient"],
        cell_gradient=config["leadfield"]["cell_gradient"],
    wildcard_constraints:
        chunk=r"\d+",
    log:
        "results/logs/patients/{patient}/compute_lead_fields-{chunk}.log",
    benchmark:
        "results/benchmarks/patients/{patient}/compute_lead_fields-{chunk}.tsv"
    # point location and gradients use both; the PETSc wheel's MUMPS and BLAS are sequential
    threads: 2
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(20),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/compute_lead_fields.py"


rule leadfields:
    """Target: every patient's lead-field sample points and lead-field chunks."""
    input:
        lambda wildcards: chain_targets(rules.sample_leadfield_points.output.points, PATIENTS),
        lambda wildcards: chain_targets(expand(rules.compute_lead_fields.output.chunk, patient='{patient}', chunk=LEADFIELD_CHUNKS), PATIENTS),
