from ecgcohort.cluster import ClusterLimits, ClusterPlanError, Submission, check_cluster_plan
from ecgcohort.cohort import design_from_config, patient_ids, patient_record
from ecgcohort.cohort.sampling import PATIENT_ID_PATTERN
from ecgcohort.learning.splits import validation_split

COHORT = design_from_config(config["cohort"])
PATIENTS = patient_ids(COHORT)


wildcard_constraints:
    patient=PATIENT_ID_PATTERN,
    organ="heart|torso",


def patient_record_params(wildcards):
    """The patient's id, split, sampled parameters and units (its own row of the table)."""
    return patient_record(COHORT, wildcards.patient)


def planned_submissions(dag):
    """The cluster jobs a planned run will submit: one per group job, one per other job that is
    not a local rule (Snakemake's own grouping, by the profile's groups and group-components)."""
    submissions, groups = [], {}
    for job in dag.needrun_jobs():
        if job.is_local:
            continue
        group = dag.get_job_group(job)
        if group is None:
            submissions.append(Submission(name=str(job), group=None, rules=(job.rule.name,),
                                          mem_mb=int(job.resources.get("mem_mb", 0))))
        else:
            groups[id(group)] = group
    for group in groups.values():
        submissions.append(Submission(name=group.groupid, group=group.groupid,
                                      rules=tuple(job.rule.name for job in group.jobs),
                                      mem_mb=int(group.resources.get("mem_mb", 0))))
    return submissions


def scaled(base):
    """A resource that grows with every retry: ``base * attempt``."""
    return lambda wildcards, attempt: base * attempt


# the sections read only by stages downstream of the dataset (models), or that judge the data
# without changing it (the ECG realism measure, mesh convergence), or publish it (the release),
# or say where it runs (the cluster's limits)
DOWNSTREAM_SECTIONS = ("encoding", "surrogate", "inverse", "ecg2act", "realism", "convergence", "release", "cluster")


def data_config(config):
    """The config without the downstream sections: what the cohort dataset depends on."""
    data = {key: value for key, value in config.items() if key not in DOWNSTREAM_SECTIONS}
    data["encoding"] = {"sdf": config["encoding"]["sdf"]}
    return data


def shape_role(wildcards):
    """A patient's role for the shape model (encoding.smk): train (code trained with the
    decoder), validation (held out of training) or test."""
    if wildcards.patient in SHAPE_VALIDATION_PATIENTS:
        return "validation"
    return "test" if wildcards.patient in TEST_PATIENTS else "train"


def gpu_resources(section):
    """``gpu=1`` for the scheduler when a training section asks for CUDA."""
    return 1 if section["training"]["device"] == "cuda" else 0


def surrogate_network_section(section):
    """What a trained network depends on: the section without the evaluation settings and the
    lists of models to train."""
    return {key: value for key, value in section.items() if key not in ("evaluation", "encodings", "targets")}


def caption(name):
    """A report caption file of workflow/report/ (path relative to the rules folder)."""
    return f"../report/{name}.rst"


def inverse_method_section(wildcards):
    """The config section of an inverse method (inverse.smk; both Tikhonov orders share
    ``inverse.tikhonov``)."""
    section = config["inverse"]
    return section["tikhonov" if wildcards.method.startswith("tikhonov") else wildcards.method]


def ecg2act_network_section(section, network):
    """What one trained ECG -> activation network depends on besides the banks: the split's
    seed and fraction and its own network section."""
    return {"seed": section["seed"], "validation_fraction": section["validation_fraction"],
            "networks": {network: section["networks"][network]}}


def bank_mesh_params(config):
    """The bank's own mesh settings, or None where it runs on the patient's mesh (a null heart
    size, or the patient's own sizes)."""
    sizes = config["ecg2act"]["bank_mesh"]
    own = (config["meshing"]["heart_element_size_mm"], config["meshing"]["torso_element_size_mm"])
    if sizes["heart_element_size_mm"] is None or (sizes["heart_element_size_mm"], sizes["torso_element_size_mm"]) == own:
        return None
    return {**sizes, "meshing": {key: value for key, value in config["meshing"].items()
                                 if key not in ("heart_element_size_mm", "torso_element_size_mm")},
            "fibre_angles": config["fibers"], "conductivities": config["leadfield"]["conductivity_s_per_m"]}


def inverse_truth_inputs(wildcards):
    """Inputs of the inverse benchmark's ground truth (heart_surface_dynamics in inverse.smk) -
    the model source reads the surfaces, the patient's own transfer matrix and the anatomy;
    a cohort scenario its map, the mesh and fibres it lives on and the standard electrodes (the
    reciprocity check) - not the store or the other electrodes."""
    patient = f"results/patients/{wildcards.patient}"
    inputs = {"surfaces": f"results/inverse/{wildcards.patient}/surfaces.npz",
              "anatomy": f"{patient}/anatomy/anatomy.json"}
    if wildcards.source == "aliev_panfilov":  # ecgcohort.inverse.dynamics.MODEL_SOURCE
        inputs["transfer"] = f"results/inverse/{wildcards.patient}/transfer.npz"
    else:
        inputs.update(mesh=f"{patient}/mesh/mesh.msh", fibres=f"{patient}/fibres/fibres.npz",
                      electrodes=f"{patient}/anatomy/electrodes_standard.csv",
                      activation=f"{patient}/activation/{wildcards.source}.npz")
    return inputs
