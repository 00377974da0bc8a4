"""ECGs: electrode potentials from a lead matrix and an activation map, the standard 12 leads,
and the pseudo lead field (infinite homogeneous torso) they are compared with."""

from ecgcohort.lazy import lazy_exports

_FORWARD = "ecgcohort.ecg.forward"
_INPUTS = "ecgcohort.ecg.inputs"
_LEADS = "ecgcohort.ecg.leads"
_PSEUDO = "ecgcohort.ecg.pseudo"
_EXPORTS = {
    "compute_ecgs": _FORWARD, "electrode_potentials": _FORWARD, "plot_ecg": _FORWARD, "relative_difference": _FORWARD,
    "time_grid_ms": _FORWARD,
    "ElectrodeTable": _INPUTS, "read_electrode_table": _INPUTS, "read_lead_field_chunks": _INPUTS,
    "LEAD_ELECTRODES": _LEADS, "LEAD_NAMES": _LEADS, "LEAD_WEIGHTS": _LEADS, "lead_electrode_indices": _LEADS,
    "standard_leads": _LEADS,
    "pseudo_lead_field": _PSEUDO, "pseudo_lead_field_gradient": _PSEUDO, "pseudo_lead_matrix": _PSEUDO,
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
