"""ECGs: electrode potentials from a lead matrix and an activation map, the standard 12 leads,
and the pseudo lead field (infinite homogeneous torso) they are compared with."""

from ecgcohort.ecg.forward import (
    ElectrodeTable,
    compute_ecg,
    electrode_potentials,
    plot_ecg,
    read_electrode_table,
    read_lead_field_chunks,
    relative_difference,
    time_grid_ms,
)
from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_NAMES, LEAD_WEIGHTS, lead_electrode_indices, standard_leads
from ecgcohort.ecg.pseudo import pseudo_lead_field, pseudo_lead_field_gradient, pseudo_lead_matrix

__all__ = [
    "LEAD_ELECTRODES", "LEAD_NAMES", "LEAD_WEIGHTS", "ElectrodeTable", "compute_ecg", "electrode_potentials",
    "lead_electrode_indices", "plot_ecg", "pseudo_lead_field", "pseudo_lead_field_gradient", "pseudo_lead_matrix",
    "read_electrode_table", "read_lead_field_chunks", "relative_difference", "standard_leads", "time_grid_ms",
]
