# Lead fields (paper eq. 4) per patient: sample points once, then the lead fields of the
# patient's electrodes in chunk files. Chunk 0 is the 12-lead's nine electrodes, the others the
# anterior array. leadfield.electrodes_per_job "all" (the default): one job per patient writes
# every chunk from one factorisation of the patient's matrix. A number: one job per chunk, each
# factoring the matrix again; chunks then run in parallel on a cluster, and chunk 0, read from
# the 12-lead's own table, stays as it was when the other electrodes change, so what uses the
# 12 leads only (the ECG -> activation banks) does not re-run.

from ecgcohort.leadfield.jobs import STANDARD_ELECTRODE_COUNT, electrode_chunks, electrode_tolerance_mm

LEADFIELD_ONE_JOB = config["leadfield"]["electrodes_per_job"] == "all"
# anterior electrodes per chunk file (0: all in one)
LEADFIELD_CHUNK_SIZE = 0 if LEADFIELD_ONE_JOB else config["leadfield"]["electrodes_per_job"]
LEADFIELD_CHUNKS = list(range(len(electrode_chunks(
    STANDARD_ELECTRODE_COUNT + config["electrodes"]["anterior_count"], LEADFIELD_CHUNK_SIZE))))
LEADFIELD_CHUNK_FILE = "results/patients/{patient}/leadfield/chunk-{chunk}.npz"
# a job's name in its log and benchmark files: the patient's, or the patient's and chunk's
LEADFIELD_JOB_SUFFIX = "" if LEADFIELD_ONE_JOB else "-{chunk}"


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
        chunks=(expand(LEADFIELD_CHUNK_FILE, patient="{patient}", chunk=LEADFIELD_CHUNKS) if LEADFIELD_ONE_JOB
                else LEADFIELD_CHUNK_FILE),
    params:
        chunks=lambda wildcards: LEADFIELD_CHUNKS if LEADFIELD_ONE_JOB else [int(wildcards.chunk)],
        # chunk 0 alone holds the 12-lead's electrodes whatever the chunk size
        electrodes_per_job=lambda wildcards: 0 if wildcards.get("chunk") == "0" else LEADFIELD_CHUNK_SIZE,
        conductivities=config["leadfield"]["conductivity_s_per_m"],
        low_rank_tolerance=config["leadfield"]["low_rank_tolerance"],
        electrode_tolerance_mm=electrode_tolerance_mm(config["meshing"]["torso_element_size_mm"]),
        point_gradient=config["leadfield"]["point_gradient"],
        cell_gradient=config["leadfield"]["cell_gradient"],
        cell_gradient_electrodes=config["leadfield"]["cell_gradient_electrodes"],
    wildcard_constraints:
        chunk=r"\d+",
    log:
        f"results/logs/patients/{{patient}}/compute_lead_fields{LEADFIELD_JOB_SUFFIX}.log",
    benchmark:
        f"results/benchmarks/patients/{{patient}}/compute_lead_fields{LEADFIELD_JOB_SUFFIX}.tsv"
    # the PETSc wheel's MUMPS and BLAS are sequential: only point location and gradients (under
    # 1 s of train-0000's 8.5 s) could use a second thread, and a second one reserved for the job
    # kept the other core idle (train-0000 in-process: 8.8 / 8.5 s on one thread, 8.9 / 8.7 s on two)
    threads: 1
    resources:
        mem_mb=scaled(6000),
        # 20 min per chunk the job writes
        runtime=scaled(20 * (len(LEADFIELD_CHUNKS) if LEADFIELD_ONE_JOB else 1)),
    conda:
        "../../envs/fem.yaml"
    script:
        "../scripts/compute_lead_fields.py"


rule leadfields:
    """Target: every patient's lead-field sample points and lead-field chunks."""
    input:
        lambda wildcards: chain_targets(rules.sample_leadfield_points.output.points, PATIENTS),
        lambda wildcards: chain_targets(expand(LEADFIELD_CHUNK_FILE, patient='{patient}', chunk=LEADFIELD_CHUNKS), PATIENTS),
