"""Patient anatomy: a body and a heart for the patient's sex and age, the heart placed in the torso,
checks, and ECG electrodes."""

from ecgcohort.lazy import lazy_exports

_EXPORTS = {
    "Anatomy": "ecgcohort.anatomy.assembly",
    "AnatomyError": "ecgcohort.anatomy.assembly",
    "HeartFrame": "ecgcohort.anatomy.assembly",
    "PlacementSettings": "ecgcohort.anatomy.assembly",
    "Surface": "ecgcohort.anatomy.assembly",
    "assemble_patient": "ecgcohort.anatomy.assembly",
    "check_anatomy": "ecgcohort.anatomy.assembly",
    "heart_frame": "ecgcohort.anatomy.assembly",
    "place_heart": "ecgcohort.anatomy.assembly",
    "sex_sized_heart": "ecgcohort.anatomy.assembly",
    "HeartNorms": "ecgcohort.anatomy.heart_norms",
    "STANDARD_ELECTRODES": "ecgcohort.anatomy.electrodes",
    "ElectrodeError": "ecgcohort.anatomy.electrodes",
    "ElectrodeRules": "ecgcohort.anatomy.electrodes",
    "anterior_electrodes": "ecgcohort.anatomy.electrodes",
    "electrode_table": "ecgcohort.anatomy.electrodes",
    "normalised_coordinates": "ecgcohort.anatomy.electrodes",
    "standard_electrodes": "ecgcohort.anatomy.electrodes",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
