"""Workflow jobs of the ECG → activation stage: one patient's simulation bank (rule
``simulation_bank``), training (``train_ecg2act``) and evaluation (``evaluate_ecg2act``).

A patient's bank is a Zarr store ``results/ecg2act/bank/<patient>.zarr`` — one xarray Dataset
over ``sample``, ``lead`` (12), ``electrode`` (RA LA LL V1…V6), ``time`` (ms) and ``site`` (75):

* ``ecg`` (sample, lead, time) and ``unipolar_ecg`` (sample, electrode, time), mV, float32;
* ``vm`` (sample, site, time) mV, float32; ``activation_time`` (sample, site) ms (first V_m > 0);
* ``kind`` (sample) and one variable per scenario parameter (sample), with units;
* ``site_node``, ``site_position`` (site, component) mm, ``site_label``, ``site_layer``;
* attributes ``patient``, ``split``, ``seed_stream``, ``spec`` (the bank settings, JSON) and
  ``myocardium`` (JSON: its nodes and element sizes, null where it is the patient's own mesh).

It is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_NAMES, lead_electrode_indices
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
        "site_node": (("site",), sites.nodes, {"units": "1", "long_name": "node of the myocardium the bank ran on"}),
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


@dataclass(frozen=True)
class BankMesh:
    """The myocardium a bank is simulated on when it is not the patient's own mesh
    (``ecg2act.bank_mesh``): the patient meshed again at these element sizes (mm) with the
    ``meshing`` settings, LDRB fibres of those ``fibre_angles`` (degrees), and the patient's ∇Z
    (the lead fields of its own mesh) under the ``conductivities`` (S/m). The bank is an
    augmentation (paper 3): its eikonal solves cost as many nodes as its mesh has."""

    heart_element_size_mm: float
    torso_element_size_mm: float
    meshing: Mapping[str, Any]
    fibre_angles: Mapping[str, float]
    conductivities: Mapping[str, float]


@dataclass(frozen=True)
class PatientSurfaces:
    """The files that define a patient's geometry: heart and body surfaces (``.vtp``) and the
    shape models they are instances of (``.npz``)."""

    heart: Path
    torso: Path
    heart_model: Path
    torso_model: Path


def bank_myocardium(patient: str, surfaces: PatientSurfaces, mesh: BankMesh, fibres, grad_cells: np.ndarray,
                    resampling_cache_dir: str | Path | None = None):
    """The patient's myocardium at the bank's element sizes, with its fibres, and the lead
    matrix on it (E, n_nodes) from ``grad_cells`` (E, C, 3) Ω/m, the patient's ∇Z per cell of
    ``fibres`` (its own mesh), averaged over four points of each bank cell.
    ``resampling_cache_dir``: where the shape models' resampling plans at the bank's sizes are
    kept for the next patient (:func:`ecgcohort.meshing.jobs.patient_surfaces_at`; None: computed
    here, 0.5-0.9 s for the heart at 4 mm)."""
    import tempfile

    from ecgcohort.fem import locate_points
    from ecgcohort.fibers.rule_based import STRUCTURE_POINTS, FibreAngles, myocardial_fibres
    from ecgcohort.leadfield.matrix import lead_matrix
    from ecgcohort.leadfield.solver import MM
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors
    from ecgcohort.meshing.jobs import MeshSizes, mesh_patient_at

    from ecgcohort.meshing.tetra import MeshingError

    angles = mesh.fibre_angles
    with tempfile.TemporaryDirectory(prefix=f"bank-{patient}-") as workdir:
        path = Path(workdir) / "bank.msh"
        try:
            mesh_patient_at(patient, surfaces.heart, surfaces.torso, surfaces.heart_model, surfaces.torso_model,
                            MeshSizes(float(mesh.heart_element_size_mm), float(mesh.torso_element_size_mm)),
                            {**mesh.meshing, "heart_element_size_mm": mesh.heart_element_size_mm,
                             "torso_element_size_mm": mesh.torso_element_size_mm}, path, resampling_cache_dir,
                            # the bank keeps only the myocardium (its lead matrix comes from the patient's
                            # own ∇Z): the body surface only has to enclose the heart and keep its volume
                            torso_max_surface_distance_mm=math.inf)
        except (MeshingError, ValueError) as error:
            raise BankError(f"the bank's myocardium (ecg2act.bank_mesh: {mesh.heart_element_size_mm:g} / "
                            f"{mesh.torso_element_size_mm:g} mm) does not mesh: {error}") from error
        coarse = myocardial_fibres(path, FibreAngles(alpha_endo=angles["alpha_endo_deg"],
                                                     alpha_epi=angles["alpha_epi_deg"],
                                                     beta_endo=angles["beta_endo_deg"], beta_epi=angles["beta_epi_deg"]))
    targets = np.einsum("qk,ckx->cqx", STRUCTURE_POINTS, coarse.points_mm[coarse.tetrahedra]).reshape(-1, 3)
    cells, _ = locate_points(fibres.points_mm, fibres.tetrahedra, targets)
    gradients = np.asarray(grad_cells, dtype=np.float64)[:, cells].reshape(len(grad_cells), -1, len(STRUCTURE_POINTS),
                                                                            3).mean(axis=2)
    intracellular = intracellular_tensors(coarse.cell_structure, Conductivities.from_config(mesh.conductivities))
    return coarse, lead_matrix(coarse.points_mm * MM, coarse.tetrahedra, intracellular, gradients)


def draw_sites_job(patient: str, fibres_npz: str | Path, sites_npz: str | Path, out_png: str | Path) -> None:
    """The picture of a patient's 75 recording sites (rule ``draw_bank_sites``) on its own
    myocardium (fibres.npz); drawn for the pictured patients only, apart from the bank so the
    bank's job pays no rendering (pyvista's import and two views, about 1.4 s)."""
    from ecgcohort.ecg2act.figures import plot_sites
    from ecgcohort.ecg2act.sites import load_sites
    from ecgcohort.fibers.rule_based import load_fibres

    plot_sites(load_fibres(fibres_npz), load_sites(sites_npz), out_png, title=f"{patient}: 75 recording sites")


def simulation_bank_job(*, patient: str, split: str, fibres_npz: str | Path, junctions_npz: str | Path,
                        chunk_paths: Sequence[str | Path], bank: Mapping[str, Any], seed: int,
                        action_potential: Mapping[str, Any], template_cache_dir: str | Path, out_zarr: str | Path,
                        out_sites: str | Path, threads: int | None = None,
                        bank_mesh: BankMesh | None = None, surfaces: PatientSurfaces | None = None,
                        resampling_cache_dir: str | Path | None = None) -> None:
    """Place the 75 sites on one patient and simulate its bank (rule ``simulation_bank``), on
    the patient's own myocardium or, with ``bank_mesh`` (and the patient's ``surfaces``), on
    its own (:func:`bank_myocardium`, its resampling plans kept in ``resampling_cache_dir``). ``threads`` caps the BLAS threads (the rule's
    ``threads:``; None leaves them be): two 1-thread jobs on 2 cores simulated 3.6–3.8 samples/s
    each with OpenBLAS's own thread per core and 10–11 with one thread each."""
    from threadpoolctl import threadpool_limits

    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.jobs import load_junctions
    from ecgcohort.conduction.repolarisation import Repolarisation
    from ecgcohort.conduction.scenarios import ScenarioError
    from ecgcohort.dataset.store import atomic_directory
    from ecgcohort.ecg.forward import read_lead_field_chunks
    from ecgcohort.ecg2act.sites import recording_sites
    from ecgcohort.fibers.rule_based import load_fibres

    try:
        spec = BankSpec.from_config(bank)
        fibres = load_fibres(fibres_npz)
        junctions = load_junctions(junctions_npz)
        if bank_mesh is None:
            sites = recording_sites(fibres)
            chunks = read_lead_field_chunks(chunk_paths, ("lead_matrix",))
            rows = lead_rows(chunks["lead_matrix"], [str(n) for n in chunks["electrode_names"]])
        else:
            chunks = read_lead_field_chunks(chunk_paths, ("grad_cells",))
            names = [str(n) for n in chunks["electrode_names"]]
            fibres, matrix = bank_myocardium(patient, surfaces, bank_mesh, fibres,
                                             chunks["grad_cells"][lead_electrode_indices(names)], resampling_cache_dir)
            rows = lead_rows(matrix, LEAD_ELECTRODES)
            log.info("patient %s: the bank's myocardium at %g/%g mm, %d nodes", patient,
                     bank_mesh.heart_element_size_mm, bank_mesh.torso_element_size_mm, fibres.n_nodes)
            sites = recording_sites(fibres)
        template = action_potential_template(float(action_potential["cycle_length_ms"]), cache_dir=template_cache_dir)
        patient_ep = PatientElectrophysiology(fibres, junctions, rows, sites, template,
                                              Repolarisation.from_config(action_potential),
                                              float(action_potential.get("upstroke_spread", 0.0)))
    except (BankError, ScenarioError, ValueError) as error:
        raise BankError(f"patient {patient}: {error}") from None
    sites.save(out_sites)

    def progress(done: int, total: int, seconds: float) -> None:
        log.info("patient %s: %d/%d samples, %.1f s (%.1f samples/s)", patient, done, total, seconds,
                 done / max(seconds, 1e-9))

    started = time.perf_counter()
    with threadpool_limits(limits=threads, user_api="blas"):
        simulated = simulate_bank(patient_ep, spec, patient_rng(seed, patient, SEED_STREAM), progress)
    dataset = bank_dataset(patient, split, simulated, patient_ep, spec)
    dataset.attrs["myocardium"] = json.dumps(
        {"nodes": int(patient_ep.fibres.n_nodes), "heart_element_size_mm": None, "torso_element_size_mm": None}
        if bank_mesh is None else {"nodes": int(patient_ep.fibres.n_nodes),
                                   "heart_element_size_mm": bank_mesh.heart_element_size_mm,
                                   "torso_element_size_mm": bank_mesh.torso_element_size_mm})
    with atomic_directory(out_zarr) as store:
        block = min(spec.count, SAMPLES_PER_CHUNK)
        encoding = {name: {"chunks": (block, *dataset[name].shape[1:])} for name in ("ecg", "unipolar_ecg", "vm")}
        dataset.to_zarr(store, mode="w-", consolidated=True, encoding=encoding)
    kinds = {kind: int((simulated["kind"] == kind).sum()) for kind in np.unique(simulated["kind"])}
    log.info("patient %s: bank of %d samples (%s) on %d nodes, simulated in %.1f s (%.1f samples/s), written in "
             "%.1f s", patient, spec.count, json.dumps(kinds), fibres.n_nodes, simulated["seconds"],
             spec.count / simulated["seconds"], time.perf_counter() - started - simulated["seconds"])
