"""Workflow jobs of the ECG → activation stage: one patient's simulation bank (rule
``simulation_bank``), training (``train_ecg2act``) and evaluation (``evaluate_ecg2act``).

A patient's bank is a Zarr store ``results/ecg2act/bank/<patient>.zarr`` — one xarray Dataset
over ``sample``, ``lead`` (12), ``electrode`` (RA LA LL V1…V6), ``time`` (ms) and ``site`` (75):

* ``ecg`` (sample, lead, time) and ``unipolar_ecg`` (sample, electrode, time), mV, float32;
* ``vm`` (sample, site, time) mV, float32; ``activation_time`` (sample, site) ms (first V_m > 0);
* ``kind`` (sample) and one variable per scenario parameter (sample), with units;
* ``site_node``, ``site_position`` (site, component) mm, ``site_label``, ``site_layer``;
* attributes ``patient``, ``split``, ``seed_stream`` and ``spec`` (the bank settings, JSON).

It is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_NAMES
from ecgcohort.ecg2act.bank import PARAMETER_UNITS, BankError, BankSpec, PatientElectrophysiology, lead_rows, \
    simulate_bank

log = logging.getLogger(__name__)

SEED_STREAM = "ecg2act-bank"
#: Samples per Zarr chunk of the record arrays (V_m: 64 × 75 × 500 float32 = 9.6 MB).
SAMPLES_PER_CHUNK = 64


def bank_dataset(patient: str, split: str, bank: Mapping[str, Any], electrophysiology: PatientElectrophysiology,
                 spec: BankSpec):
    """The xarray Dataset of one patient's bank (module docstring)."""
    import xarray as xr

    sites = electrophysiology.sites
    count = len(bank["kind"])
    data = {
        "ecg": (("sample", "lead", "time"), bank["leads"], {"units": "mV", "long_name": "12-lead ECG"}),
        "unipolar_ecg": (("sample", "electrode", "time"), bank["unipolar"],
                         {"units": "mV", "long_name": "electrode potential against the volume conductor's zero"}),
        "vm": (("sample", "site", "time"), bank["vm"], {"units": "mV", "long_name": "transmembrane potential"}),
        "activation_time": (("sample", "site"), bank["site_activation_ms"],
                            {"units": "ms", "long_name": "first time with V_m > 0 mV (paper 3)"}),
        "total_activation_time": (("sample",), bank["total_activation_ms"],
                                  {"units": "ms", "long_name": "latest minus earliest myocardial activation"}),
        "kind": (("sample",), bank["kind"].astype(str), {"units": "1", "long_name": "scenario kind"}),
        "site_node": (("site",), sites.nodes, {"units": "1", "long_name": "myocardial node of fibres.npz"}),
        "site_position": (("site", "component"), sites.positions_mm, {"units": "mm", "long_name": "site position"}),
        "site_label": (("site",), np.array(sites.labels), {"units": "1", "long_name": "site"}),
        "site_layer": (("site",), np.array(sites.layer), {"units": "1", "long_name": "endo, epi or mid"}),
    }
    for name, unit in PARAMETER_UNITS.items():
        data[name] = (("sample",), bank["parameters"][name], {"units": unit, "long_name": f"scenario {name}"})
    return xr.Dataset(
        data,
        coords={"sample": ("sample", np.array([f"{patient}/{i:05d}" for i in range(count)])),
                "lead": ("lead", np.array(LEAD_NAMES)), "electrode": ("electrode", np.array(LEAD_ELECTRODES)),
                "time": ("time", spec.times_ms, {"units": "ms"}), "component": ("component", np.array(["x", "y", "z"]))},
        attrs={"patient": patient, "split": split, "seed_stream": SEED_STREAM, "spec": json.dumps(spec.as_dict()),
               "seconds": float(bank["seconds"])},
    )


def simulation_bank_job(*, patient: str, split: str, fibres_npz: str | Path, junctions_npz: str | Path,
                        chunk_paths: Sequence[str | Path], bank: Mapping[str, Any], seed: int,
                        action_potential: Mapping[str, Any], template_cache_dir: str | Path, out_zarr: str | Path,
                        out_sites: str | Path, out_sites_preview: str | Path, threads: int | None = None) -> None:
    """Place the 75 sites on one patient and simulate its bank (rule ``simulation_bank``).
    ``threads`` caps the BLAS threads (the rule's ``threads:``; None leaves them be): two 1-thread
    jobs on 2 cores simulated 3.6–3.8 samples/s each with OpenBLAS's own thread per core and
    10–11 with one thread each."""
    from threadpoolctl import threadpool_limits

    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.jobs import load_junctions
    from ecgcohort.conduction.repolarisation import Repolarisation
    from ecgcohort.conduction.scenarios import ScenarioError
    from ecgcohort.dataset.assemble import atomic_directory
    from ecgcohort.ecg.forward import read_lead_field_chunks
    from ecgcohort.ecg2act.figures import plot_sites
    from ecgcohort.ecg2act.sites import recording_sites
    from ecgcohort.fibers.rule_based import load_fibres

    try:
        spec = BankSpec.from_config(bank)
        fibres = load_fibres(fibres_npz)
        sites = recording_sites(fibres)
        junctions = load_junctions(junctions_npz)
        chunks = read_lead_field_chunks(chunk_paths, ("lead_matrix",))
        rows = lead_rows(chunks["lead_matrix"], [str(n) for n in chunks["electrode_names"]])
        template = action_potential_template(float(action_potential["cycle_length_ms"]), cache_dir=template_cache_dir)
        patient_ep = PatientElectrophysiology(fibres, junctions, rows, sites, template,
                                              Repolarisation.from_config(action_potential),
                                              float(action_potential.get("upstroke_spread", 0.0)))
    except (BankError, ScenarioError, ValueError) as error:
        raise BankError(f"patient {patient}: {error}") from None
    sites.save(out_sites)
    plot_sites(fibres, sites, out_sites_preview, title=f"{patient}: 75 recording sites")

    def progress(done: int, total: int, seconds: float) -> None:
        log.info("patient %s: %d/%d samples, %.1f s (%.1f samples/s)", patient, done, total, seconds,
                 done / max(seconds, 1e-9))

    started = time.perf_counter()
    with threadpool_limits(limits=threads, user_api="blas"):
        simulated = simulate_bank(patient_ep, spec, patient_rng(seed, patient, SEED_STREAM), progress)
    dataset = bank_dataset(patient, split, simulated, patient_ep, spec)
    with atomic_directory(out_zarr) as store:
        block = min(spec.count, SAMPLES_PER_CHUNK)
        encoding = {name: {"chunks": (block, *dataset[name].shape[1:])} for name in ("ecg", "unipolar_ecg", "vm")}
        dataset.to_zarr(store, mode="w-", consolidated=True, encoding=encoding)
    kinds = {kind: int((simulated["kind"] == kind).sum()) for kind in np.unique(simulated["kind"])}
    log.info("patient %s: bank of %d samples (%s) on %d nodes, simulated in %.1f s (%.1f samples/s), written in "
             "%.1f s", patient, spec.count, json.dumps(kinds), fibres.n_nodes, simulated["seconds"],
             spec.count / simulated["seconds"], time.perf_counter() - started - simulated["seconds"])
