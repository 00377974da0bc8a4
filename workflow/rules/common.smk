from ecgcohort.batches import BATCH_ID_PATTERN, patient_batches
from ecgcohort.cluster import ClusterLimits, ClusterPlanError, Submission, check_cluster_plan
from ecgcohort.cohort import design_from_config, patient_ids, patient_record
from ecgcohort.cohort.sampling import PATIENT_ID_PATTERN
from ecgcohort.learning.splits import validation_split
from ecgcohort.surrogate.jobs import surrogate_training_patients

COHORT = design_from_config(config["cohort"])
PATIENTS = patient_ids(COHORT)
# pictures.patients_per_split: the patients whose per-patient pictures are drawn (draw_patient)
PICTURED_PATIENTS = [patient for split in ("train", "test")
                     for patient in patient_ids(COHORT, split)[:config["pictures"]["patients_per_split"]]]
# cluster.patients_per_job (workflow/rules/batches.smk): null, every stage of every patient its
# own job; K, the data chains of K patients as one job, the rules downstream taking its marker
PATIENTS_PER_JOB = config["cluster"]["patients_per_job"]
BATCHES = patient_batches(PATIENTS, PATIENTS_PER_JOB) if PATIENTS_PER_JOB else {}
BATCH_OF = {patient: batch for batch, members in BATCHES.items() for patient in members}
SPLIT_BATCHES = {split: [batch for batch in BATCHES if batch.startswith(f"{split}-")] for split in ("train", "test")}


wildcard_constraints:
    patient=PATIENT_ID_PATTERN,
    organ="heart|torso",
    batch=BATCH_ID_PATTERN,
    split="train|test",


def batch_marker(batch):
    """The file a finished batch job leaves (workflow/rules/batches.smk)."""
    return f"results/batches/{batch}.json"


def chain_markers(patients):
    """The markers that a job reading ``patients'`` data chains waits on - a split's own marker
    (``split_batches``) where it needs every batch of a split of several, else the batches' markers.
    Snakemake compares a job's needed file with every input of its producer, for every job that
    needs it: 2,800 shape-code jobs against a shape model's 900 batch inputs were half of a
    10,000-patient dry run."""
    needed = {BATCH_OF[patient] for patient in patients}
    markers = []
    for split, batches in SPLIT_BATCHES.items():
        if len(batches) > 1 and needed.issuperset(batches):
            markers.append(f"results/batches/{split}.json")
            needed.difference_update(batches)
    return sorted(markers + [batch_marker(batch) for batch in needed])


class ChainInputs:
    """A rule's inputs from the per-patient data chains, by name: a path template with
    ``{patient}`` (the job's own patient's file) or ``(template, patients)`` (a fan-in's files over
    a list of patients). Templates may be lists. Rules use
    ``input: unpack(spec.input)`` and ``params: chain=spec.params``, scripts
    ``ecgcohort.batches.resolved_inputs(snakemake.input, snakemake.params.chain)``: with every stage
    its own job the inputs are the files and ``chain`` is empty; with patients per job the inputs
    are the markers of the batches holding those patients and ``chain`` names the files."""

    def __init__(self, **named):
        self.named = named

    def _patients(self, spec, wildcards):
        if not isinstance(spec, tuple):
            return [wildcards.patient]
        return list(spec[1])

    def files(self, wildcards):
        files = {}
        for name, spec in self.named.items():
            template = spec[0] if isinstance(spec, tuple) else spec
            expanded = expand(template, patient=self._patients(spec, wildcards))
            files[name] = expanded[0] if isinstance(template, str) and not isinstance(spec, tuple) else expanded
        return files

    def input(self, wildcards):
        if not PATIENTS_PER_JOB:
            return self.files(wildcards)
        patients = {patient for spec in self.named.values() for patient in self._patients(spec, wildcards)}
        return {"chain_batches": chain_markers(patients)}

    def params(self, wildcards):
        return self.files(wildcards) if PATIENTS_PER_JOB else {}


# the per-patient rules a batch runs: their outputs for each of its patients are its targets
CHAIN_RULES = ("patient_parameters", "assemble_anatomy", "place_standard_electrodes", "place_electrodes",
               "mesh_anatomy", "compute_fibres", "grow_purkinje", "compute_activations",
               "sample_leadfield_points", "compute_lead_fields", "compute_ecgs", "delineate_ecgs", "sample_sdf",
               "simulation_bank", "dataset_part")
# drawn for PICTURED_PATIENTS only
PICTURE_RULES = ("preview_anatomy", "draw_patient", "draw_bank_sites")


def batch_targets(wildcards):
    """Every file of the batch's data chains, and the pictures of its pictured patients."""
    templates = [str(template) for name in CHAIN_RULES for template in getattr(rules, name).output]
    pictures = [str(template) for name in PICTURE_RULES for template in getattr(rules, name).output]
    pictured = [patient for patient in BATCHES[wildcards.batch] if patient in PICTURED_PATIENTS]
    # a template without {chunk} (the patient's one lead-field job) comes out of expand once per chunk
    chains = list(dict.fromkeys(expand(templates, patient=BATCHES[wildcards.batch], chunk=LEADFIELD_CHUNKS)))
    return chains + expand(pictures, patient=pictured)


def chain_targets(template, patients):
    """A target rule's files of the data chains: ``template`` over ``patients``, or with patients
    per job the markers of their batches (:func:`chain_markers`)."""
    if PATIENTS_PER_JOB:
        return chain_markers(patients)
    return expand(template, patient=patients)


def picture_targets(wildcards):
    """Every per-patient picture of the patients pictures.patients_per_split picks (the rules
    are looked up when the DAG is built: they are defined after this module)."""
    return [*chain_targets(rules.preview_anatomy.output.preview, PICTURED_PATIENTS),
            *chain_targets(list(rules.draw_patient.output), PICTURED_PATIENTS),
            *chain_targets(rules.draw_bank_sites.output.preview, PICTURED_PATIENTS)]


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


def chain_config(config):
    """What the per-patient data chains read besides each patient's own row (a batch job re-runs
    when it changes): the data config without the cohort's design (its seed only), the ECG
    delineation and the ECG -> activation banks' settings."""
    chain = data_config(config)
    chain["cohort"] = {"seed": config["cohort"]["seed"]}
    chain["realism"] = {key: config["realism"][key] for key in ("judged_as", "delineation", "features")}
    chain["ecg2act"] = {key: config["ecg2act"][key] for key in ("bank", "bank_mesh")}
    return chain


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
    """What one trained ECG -> activation network depends on besides the banks: the three-way
    split's seed and fractions, the smallest scored set and its own network section."""
    return {"seed": section["seed"], "validation_fraction": section["validation_fraction"],
            "scored_fraction": section["scored_fraction"], "min_scored_samples": section["min_scored_samples"],
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


def _inverse_truth_chain(wildcards):
    """The data-chain part of the inverse ground truth's inputs (heart_surface_dynamics)."""
    patient = "results/patients/{patient}"
    named = {"anatomy": f"{patient}/anatomy/anatomy.json"}
    if wildcards.source != "aliev_panfilov":  # ecgcohort.inverse.dynamics.MODEL_SOURCE
        # checked when the benchmark is planned, not when the workflow is read: a run of other
        # targets with other scenarios is not refused for a setting it does not use
        if wildcards.source not in ACTIVATION_MAPS:
            raise WorkflowError(f"inverse.dynamics.sources: {wildcards.source!r} is neither aliev_panfilov nor one "
                                f"of the cohort's activation maps ({', '.join(ACTIVATION_MAPS)})")
        # the scenario's map is read from the patient's activation job, which writes every
        # scenario: inverse_truth_inputs marks it ancient, and what the map is made of (fibres,
        # heart surface, Purkinje junctions; params.activation_map) re-runs the benchmark instead,
        # so an edit of another scenario does not
        named.update(mesh=f"{patient}/mesh/mesh.msh", fibres=f"{patient}/fibres/fibres.npz",
                     electrodes=f"{patient}/anatomy/electrodes_standard.csv",
                     heart=f"{patient}/anatomy/heart.vtp", junctions=f"{patient}/purkinje/junctions.npz",
                     activation=f"{patient}/activation/{wildcards.source}.npz")
    return ChainInputs(**named)


def inverse_truth_inputs(wildcards):
    """Inputs of the inverse benchmark's ground truth (heart_surface_dynamics in inverse.smk) -
    the model source reads the surfaces, the patient's own transfer matrix and the anatomy;
    a cohort scenario its map (ancient: its mtime re-runs nothing), what the map is computed
    from (fibres, heart surface, Purkinje junctions: they re-run it), the mesh and the standard
    electrodes (the reciprocity check) - not the store, the other electrodes or the other
    scenarios' maps."""
    inputs = {"surfaces": f"results/inverse/{wildcards.patient}/surfaces.npz",
              **_inverse_truth_chain(wildcards).input(wildcards)}
    if "activation" in inputs:
        # written again, unchanged, whenever another scenario's map is edited
        inputs["activation"] = ancient(inputs["activation"])
    if wildcards.source == "aliev_panfilov":
        inputs["transfer"] = f"results/inverse/{wildcards.patient}/transfer.npz"
    return inputs


def inverse_truth_chain(wildcards):
    """``params.chain`` of the inverse ground truth (see :class:`ChainInputs`)."""
    return _inverse_truth_chain(wildcards).params(wildcards)


def leadfield_electrodes(wildcards):
    """The electrode table a lead-field job reads: the 12-lead's own for chunk 0 alone (one job
    per chunk), the patient's whole table otherwise."""
    if wildcards.get("chunk") == "0":
        return rules.place_standard_electrodes.output.electrodes.format(patient=wildcards.patient)
    return rules.place_electrodes.output.electrodes.format(patient=wildcards.patient)
