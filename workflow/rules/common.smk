from ecgcohort.cohort import design_from_config, patient_ids, patient_record
from ecgcohort.cohort.sampling import PATIENT_ID_PATTERN

COHORT = design_from_config(config["cohort"])
PATIENTS = patient_ids(COHORT)


wildcard_constraints:
    patient=PATIENT_ID_PATTERN,
    organ="heart|torso",


def patient_record_params(wildcards):
    """The patient's id, split, sampled parameters and units (its own row of the table)."""
    return patient_record(COHORT, wildcards.patient)


def scaled(base):
    """A resource that grows with every retry: ``base * attempt``."""
    return lambda wildcards, attempt: base * attempt
