"""From the 12-lead ECG to intracardiac activation (paper 3, Landajuela et al.).

* :mod:`ecgcohort.llnl` — the public LLNL dataset layout both ways: ``pECGData_<name>.npy``
  (T × 10 unipolar potentials RA LA LL RL V1…V6) and ``VmData_<name>.npy`` (T × 75 V_m, mV),
  paired by name; the 12 leads by :mod:`ecgcohort.ecg.leads`; activation times (first V_m > 0);
  the exporter of our bank into that layout;
* :mod:`~ecgcohort.ecg2act.networks` — Networks I (X → 75 activation times) and II
  (X → 75 × 500 V_m), 1-D SqueezeNets of fire modules with the paper's parameter counts, as
  :class:`~ecgcohort.learning.TrainableModel`\\ s; the paper's ECG and V_m normalisation;
* :mod:`~ecgcohort.ecg2act.sites` — the 75 recording sites from the ventricular coordinates;
* :mod:`~ecgcohort.ecg2act.bank` — a patient's simulation bank (eikonal, V_m, FEM lead matrix);
* :mod:`~ecgcohort.ecg2act.training` — training on the training patients' banks, both splits'
  metrics; :mod:`~ecgcohort.ecg2act.jobs` the bank's Zarr store.
"""

from ecgcohort.lazy import lazy_exports

_LLNL = "ecgcohort.llnl"
_NETWORKS = "ecgcohort.ecg2act.networks"
_SITES = "ecgcohort.ecg2act.sites"
_BANK = "ecgcohort.ecg2act.bank"
_TRAINING = "ecgcohort.ecg2act.training"
_EXPORTS = {
    "LLNLSamples": _LLNL, "LLNL_COLUMNS": _LLNL, "LLNL_DT_MS": _LLNL, "N_SITES": _LLNL,
    "activation_times": _LLNL, "export_bank": _LLNL, "llnl_name": _LLNL, "load_pair": _LLNL, "pair_files": _LLNL,
    "read_llnl": _LLNL, "twelve_leads_from_llnl": _LLNL, "write_llnl": _LLNL,
    "Ecg2ActNetwork": _NETWORKS, "Fire1d": _NETWORKS, "NetworkSpec": _NETWORKS, "PAPER_PARAMETERS": _NETWORKS,
    "VmScale": _NETWORKS, "activation_normalisation": _NETWORKS, "check_ecg": _NETWORKS,
    "count_parameters": _NETWORKS, "load_network": _NETWORKS, "normalise_ecg": _NETWORKS,
    "normalise_vm": _NETWORKS, "predict": _NETWORKS, "save_network": _NETWORKS,
    "AHA_SEGMENTS": _SITES, "RecordingSites": _SITES, "load_sites": _SITES, "recording_sites": _SITES,
    "BankError": _BANK, "BankSpec": _BANK, "PatientElectrophysiology": _BANK, "draw_sample": _BANK,
    "simulate_bank": _BANK,
    "open_banks": _TRAINING, "vm_metrics": _TRAINING, "activation_metrics": _TRAINING,
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
