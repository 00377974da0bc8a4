"""Patient anatomy: heart placed in the torso, checks, and ECG electrodes."""

from ecgcohort.anatomy.assembly import (
    Anatomy,
    AnatomyError,
    HeartFrame,
    PlacementSettings,
    Surface,
    assemble_patient,
    check_anatomy,
    heart_frame,
    place_heart,
    remesh,
)
from ecgcohort.anatomy.electrodes import (
    STANDARD_ELECTRODES,
    ElectrodeError,
    ElectrodeRules,
    anterior_electrodes,
    electrode_table,
    normalised_coordinates,
    standard_electrodes,
)

__all__ = [
    "STANDARD_ELECTRODES", "Anatomy", "AnatomyError", "ElectrodeError", "ElectrodeRules", "HeartFrame",
    "PlacementSettings", "Surface", "anterior_electrodes", "assemble_patient", "check_anatomy",
    "electrode_table", "heart_frame", "normalised_coordinates", "place_heart", "remesh",
    "standard_electrodes",
]
