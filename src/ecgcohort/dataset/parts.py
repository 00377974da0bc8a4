"""One patient's part of the cohort store: its files gathered and read, its slice of every root
array (sampled parameters, sex and age, sample points, lead-field gradients, electrodes, ECGs)
and its ragged group (mesh, fibres, lead matrix, activation), written as a small Zarr store
that the fan-in links into the cohort (:mod:`ecgcohort.dataset.assemble`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.dataset.store import _attrs, _row_encoding, _store_bytes, atomic_directory, sharded_encoding
from ecgcohort.io import write_file_digests

log = logging.getLogger(__name__)


COMPONENTS: tuple[str, ...] = ("x", "y", "z")


REGIONS = {1: "myocardium", 2: "torso", 3: "blood"}


@dataclass(frozen=True)
class PatientFiles:
    """The input files of one patient (paths as Snakemake lists them)."""

    parameters: Path
    electrodes: Path
    points: Path
    fibres: Path
    leadfield_chunks: tuple[Path, ...]
    activation: Mapping[str, Path]
    ecg: Mapping[str, Path]
    sdf: Path | None = None


def files_by_patient(paths: Sequence[str | Path], patients: Sequence[str]) -> dict[str, list[Path]]:
    """The paths of ``paths`` (a rule's flat list of every patient's files) inside a folder named
    after each of ``patients``, in the order given, in one pass over ``paths`` (a patient at a
    time was quadratic: 9,000 patients' files took more than 20 minutes to sort)."""
    wanted = set(patients)
    found: dict[str, list[Path]] = {patient: [] for patient in patients}
    for path in map(Path, paths):
        for patient in wanted.intersection(path.parts):
            found[patient].append(path)
    return found


def group_patient_files(patients: Sequence[str], scenarios: Sequence[str], *, parameters: Sequence[str | Path],
                        electrodes: Sequence[str | Path], points: Sequence[str | Path],
                        fibres: Sequence[str | Path], leadfield_chunks: Sequence[str | Path],
                        activation: Sequence[str | Path], ecg: Sequence[str | Path],
                        sdf: Sequence[str | Path] = ()) -> dict[str, PatientFiles]:
    """Sort flat per-kind file lists into :class:`PatientFiles` by the patient directory in each
    path (``.../{patient}/...``); chunks keep their given order, activation and ECG files are
    keyed by their stem (the scenario). ``sdf`` (signed-distance samples) is optional: given,
    every patient needs one."""
    kinds = [("parameters", parameters), ("electrodes", electrodes), ("points", points), ("fibres", fibres)]
    kinds += [("sdf", sdf)] if sdf else []
    indexed = {kind: files_by_patient(paths, patients) for kind, paths in
               kinds + [("activation", activation), ("ecg", ecg), ("chunks", leadfield_chunks)]}
    grouped = {}
    for patient in patients:
        single = {}
        for kind, _ in kinds:
            found = indexed[kind][patient]
            if len(found) != 1:
                raise ValueError(f"patient {patient}: expected one {kind} file, got {len(found)}")
            single[kind] = found[0]
        by_scenario = {}
        for kind, paths in (("activation", activation), ("ecg", ecg)):
            found = {p.stem: p for p in indexed[kind][patient]}
            missing = [s for s in scenarios if s not in found]
            if missing:
                raise ValueError(f"patient {patient}: no {kind} file for scenario(s) {', '.join(missing)}")
            by_scenario[kind] = {s: found[s] for s in scenarios}
        chunks = tuple(indexed["chunks"][patient])
        if not chunks:
            raise ValueError(f"patient {patient}: no lead-field chunks")
        grouped[patient] = PatientFiles(leadfield_chunks=chunks, **single, **by_scenario)
    return grouped


def _read_parameters(path: Path) -> dict[str, Any]:
    record = json.loads(Path(path).read_text())
    for key in ("patient", "split", "sex", "age_years", "parameters", "units"):
        if key not in record:
            raise ValueError(f"{path}: no '{key}'")
    return record


def _read_points(path: Path, patient: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        arrays = {name: data[name] for name in ("points_m", "region", "distance_to_heart_m")}
    n = arrays["points_m"].shape[0]
    if (arrays["points_m"].shape != (n, 3) or arrays["region"].shape != (n,)
            or arrays["distance_to_heart_m"].shape != (n,)):
        raise ValueError(f"patient {patient}: {path} must hold points_m (P, 3), region (P,), distance_to_heart_m (P,)")
    unknown = sorted(set(np.unique(arrays["region"]).tolist()) - set(REGIONS))
    if unknown:
        raise ValueError(f"patient {patient}: {path} has region values {unknown}, expected {sorted(REGIONS)}")
    return arrays


def _read_ecg(path: Path, patient: str, electrodes: Sequence[str]) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        ecg = {name: data[name] for name in ("time_s", "electrode_names", "lead_names", "unipolar_v", "leads_v",
                                             "pseudo_unipolar_v", "pseudo_leads_v")}
        # ECGs written before V_m was carried on the eikonal grid carried it at the mesh's nodes
        ecg["mesh_vm_leads_v"] = data["mesh_vm_leads_v"] if "mesh_vm_leads_v" in data.files else ecg["leads_v"]
    if list(ecg["electrode_names"].astype(str)) != list(electrodes):
        raise ValueError(f"patient {patient}: the electrodes of {path} differ from the patient's electrodes.csv")
    return ecg


def _read_sdf(path: Path, patient: str) -> dict[str, np.ndarray]:
    """Signed-distance samples (``ecgcohort.encoding`` writes them): points (P, 3) and distances
    (S, P) in mm, the kind of each point, the surface names."""
    with np.load(path) as data:
        sdf = {name: data[name] for name in ("points_mm", "sdf_mm", "kind", "surfaces")}
    n = sdf["points_mm"].shape[0]
    if sdf["points_mm"].shape != (n, 3) or sdf["sdf_mm"].shape != (len(sdf["surfaces"]), n) or sdf["kind"].shape != (n,):
        raise ValueError(f"patient {patient}: {path} must hold points_mm (P, 3), sdf_mm (S, P) and kind (P,)")
    if not (np.isfinite(sdf["points_mm"]).all() and np.isfinite(sdf["sdf_mm"]).all()):
        raise ValueError(f"patient {patient}: {path} has non-finite signed distances or points")
    return sdf


def _same(what: str, patient: str, expected: Any, got: Any) -> None:
    if not np.array_equal(np.asarray(expected), np.asarray(got)):
        raise ValueError(f"patient {patient}: {what} differs from the first patient's; every patient of a "
                         f"cohort must share it (expected {np.asarray(expected)!r:.200}, got {np.asarray(got)!r:.200})")


def _patient_row(patient: str, record: Mapping[str, Any], files: PatientFiles, scenarios: Sequence[str],
                 electrodes, chunks: Mapping[str, np.ndarray], durations: np.ndarray, mesh_size: tuple[int, int]):
    """The patient's slice (``patient`` of size 1) of every root array, with the coordinates
    and the attributes every root array carries."""
    import xarray as xr

    points = _read_points(files.points, patient)
    n_points = points["points_m"].shape[0]
    if chunks["grad_points"].shape != (len(electrodes.names), n_points, 3):
        raise ValueError(f"patient {patient}: grad_points is {chunks['grad_points'].shape}, expected "
                         f"{(len(electrodes.names), n_points, 3)}")
    ecgs = [_read_ecg(files.ecg[s], patient, electrodes.names) for s in scenarios]
    time_s, lead_names = ecgs[0]["time_s"], [str(n) for n in ecgs[0]["lead_names"]]
    for scenario, ecg in zip(scenarios, ecgs):
        _same(f"the time axis of {scenario}", patient, time_s, ecg["time_s"])
        _same(f"the lead names of {scenario}", patient, lead_names, ecg["lead_names"].astype(str))
    parameter_names = list(record["parameters"])

    def stack(key: str) -> np.ndarray:
        return np.stack([ecg[key] for ecg in ecgs])[None].astype(np.float64, copy=False)

    ecg_dims = ("patient", "scenario", "electrode", "time")
    lead_dims = ("patient", "scenario", "lead", "time")
    data_vars = {
        "parameters": (("patient", "parameter"),
                       np.array([[record["parameters"][n] for n in parameter_names]], dtype=np.float64),
                       _attrs("see parameter_units", "sampled patient parameters (shape modes, heart pose)")),
        "sample_points": (("patient", "point", "component"), points["points_m"][None].astype(np.float64, copy=False),
                          _attrs("m", "lead-field sample points in the body")),
        "sample_region": (("patient", "point"), points["region"][None].astype(np.int8),
                          _attrs("1", "region of the sample point", flag_values=list(REGIONS),
                                 flag_meanings=" ".join(REGIONS.values()))),
        "distance_to_heart": (("patient", "point"), points["distance_to_heart_m"][None].astype(np.float64, copy=False),
                              _attrs("m", "distance from the sample point to the heart surface")),
        "grad_lead_field": (("patient", "electrode", "point", "component"),
                            chunks["grad_points"][None].astype(np.float32, copy=False),
                            _attrs("ohm/m", "gradient of the FEM lead field Z of the electrode at the sample points")),
        # the positions the lead field was solved for
        "electrode_position": (("patient", "electrode", "component"),
                               chunks["electrode_positions_m"][None].astype(np.float64, copy=False),
                               _attrs("m", "electrode position on the body surface")),
        "electrode_normalised_position": (
            ("patient", "electrode", "component"), electrodes.normalised[None].astype(np.float64),
            _attrs("1", "normalised torso coordinates of the electrode: x in [-1, 1] right to left, "
                        "y in [0, 1] posterior to anterior, z in [0, 1] superior to inferior")),
        "unipolar_ecg": (ecg_dims, stack("unipolar_v"),
                         _attrs("V", "electrode potential from the FEM lead field (zero mean on the body surface)")),
        "lead_ecg": (lead_dims, stack("leads_v"), _attrs("V", "standard 12-lead ECG from the FEM lead field, V_m "
                                                              "carried on the eikonal grid (ecg.vm_nodes)")),
        "lead_ecg_mesh_vm": (lead_dims, stack("mesh_vm_leads_v"),
                             _attrs("V", "standard 12-lead ECG from the FEM lead field with V_m at the mesh's nodes: "
                                         "lead_matrix @ V_m(activation_time) exactly")),
        "pseudo_unipolar_ecg": (ecg_dims, stack("pseudo_unipolar_v"),
                                _attrs("V", "electrode potential from the pseudo lead field 1/(4 pi sigma0 |e - x|)")),
        "pseudo_lead_ecg": (lead_dims, stack("pseudo_leads_v"),
                            _attrs("V", "standard 12-lead ECG from the pseudo lead field")),
        "activation_duration": (("patient", "scenario"), durations[None].astype(np.float64),
                                _attrs("s", "time from the first to the last activated myocardial node")),
        "age": (("patient",), np.array([record["age_years"]], dtype=np.float64), _attrs("year", "age of the patient")),
        "node_count": (("patient",), np.array([mesh_size[0]], dtype=np.int64),
                       _attrs("1", "myocardial mesh nodes (size of node in patients/<id>)")),
        "cell_count": (("patient",), np.array([mesh_size[1]], dtype=np.int64),
                       _attrs("1", "myocardial tetrahedra (size of cell in patients/<id>)")),
    }
    units = record["units"]
    coords = {
        "patient": ("patient", np.array([patient], dtype=str), _attrs("1", "patient id (<split>-<index>)")),
        "split": ("patient", np.array([record["split"]], dtype=str), _attrs("1", "train or test split of the patient")),
        "sex": ("patient", np.array([record["sex"]], dtype=str), _attrs("1", "sex of the patient (female or male)")),
        "electrode": ("electrode", np.array(electrodes.names, dtype=str), _attrs("1", "electrode name")),
        "electrode_kind": ("electrode", np.array(electrodes.kinds, dtype=str),
                           _attrs("1", "standard (12-lead ECG) or anterior (unipolar, over the anterior torso)")),
        "component": ("component", np.array(COMPONENTS),
                      _attrs("1", "Cartesian component: x right to left, y posterior to anterior, "
                                  "z superior to inferior")),
        "scenario": ("scenario", np.array(scenarios, dtype=str), _attrs("1", "activation scenario")),
        "time": ("time", np.asarray(time_s, dtype=np.float64), _attrs("s", "time since the beat's time origin")),
        "lead": ("lead", np.array(lead_names, dtype=str), _attrs("1", "lead of the standard 12-lead ECG")),
        "parameter": ("parameter", np.array(parameter_names, dtype=str), _attrs("1", "sampled patient parameter")),
        "parameter_units": ("parameter", np.array([units.get(n, "") for n in parameter_names], dtype=str),
                            _attrs("1", "units of the parameter")),
    }
    if files.sdf is not None:
        sdf = _read_sdf(files.sdf, patient)
        surfaces = [str(s) for s in sdf["surfaces"]]
        data_vars |= {
            "sdf_points": (("patient", "sdf_point", "component"),
                           (sdf["points_mm"].astype(np.float64) * 1e-3).astype(np.float32)[None],
                           _attrs("m", "signed-distance sample points (near the four surfaces and uniform in the "
                                       "torso's bounding box)")),
            "sdf": (("patient", "surface", "sdf_point"), (sdf["sdf_mm"].astype(np.float64) * 1e-3).astype(np.float32)[None],
                    _attrs("m", "signed distance to the closed surface at the sample point, negative inside")),
            "sdf_point_kind": (("patient", "sdf_point"), sdf["kind"].astype(np.int8)[None],
                               _attrs("1", "how the point was drawn: 0 uniform in the box, k near surface k - 1",
                                      flag_values=list(range(len(surfaces) + 1)),
                                      flag_meanings=" ".join(["uniform", *(f"near_{s}" for s in surfaces)]))),
        }
        coords["surface"] = ("surface", np.array(surfaces, dtype=str),
                             _attrs("1", "closed surface: the body surface, the LV and RV cavities (endocardium "
                                         "closed by the base plane) and the epicardial envelope"))
    return xr.Dataset(data_vars, coords=coords)


def _patient_group(patient: str, split: str, files: PatientFiles, electrodes: Sequence[str], scenarios: Sequence[str],
                   chunks: Mapping[str, np.ndarray]):
    """The ragged per-patient Dataset (mesh, fibres, ∇Z per cell, lead matrix, activation) and its
    chunk encoding."""
    import xarray as xr

    from ecgcohort.conduction.maps import load_activation
    from ecgcohort.fibers.rule_based import load_fibres

    fibres = load_fibres(files.fibres)
    n_nodes, n_cells = fibres.n_nodes, fibres.n_cells
    grad_cells, lead = chunks["grad_cells"], chunks["lead_matrix"]
    if grad_cells.shape != (len(electrodes), n_cells, 3) or lead.shape != (len(electrodes), n_nodes):
        raise ValueError(f"patient {patient}: lead-field chunks give grad_cells {grad_cells.shape} and lead_matrix "
                         f"{lead.shape} for {len(electrodes)} electrodes on {n_cells} cells / {n_nodes} nodes")
    activation = [load_activation(files.activation[s]) for s in scenarios]
    for scenario, amap in zip(scenarios, activation):
        if amap.activation_ms.shape != (n_nodes,):
            raise ValueError(f"patient {patient}, {scenario}: {amap.activation_ms.shape[0]} activation times "
                             f"for {n_nodes} nodes")
    group = xr.Dataset(
        {
            "node_position": (("node", "component"), fibres.points_mm * 1e-3, _attrs("m", "myocardial mesh node")),
            "tetrahedra": (("cell", "corner"), fibres.tetrahedra.astype(np.int64, copy=False),
                           _attrs("1", "0-based node indices of each myocardial tetrahedron")),
            "fibre_direction": (("cell", "component"), fibres.fibre_cell,
                                _attrs("1", "unit fibre direction at the centroid of each tetrahedron (axial: f and "
                                            "-f are the same)")),
            "fibre_structure": (("cell", "component", "component_column"), fibres.cell_structure,
                                _attrs("1", "mean of f f^T over each tetrahedron (trace 1): a conductivity with "
                                            "values a along and b across the fibres is b I + (a - b) times this")),
            "grad_lead_field_cell": (("electrode", "cell", "component"), grad_cells.astype(np.float32, copy=False),
                                     _attrs("ohm/m", "gradient of the FEM lead field Z per myocardial tetrahedron (NaN "
                                                     "for the electrodes whose per-cell gradient was not kept: "
                                                     "leadfield.cell_gradient_electrodes)")),
            "lead_matrix": (("electrode", "node"), lead.astype(np.float64, copy=False),
                            _attrs("1", "lead matrix: electrode potential (V) = lead_matrix @ V_m at the nodes (V)")),
            "activation_time": (("scenario", "node"), np.stack([a.activation_ms for a in activation]) * 1e-3,
                                _attrs("s", "local activation time of the myocardial node")),
            "apd_scale": (("scenario", "node"),
                          np.stack([np.broadcast_to(a.apd_scale, (n_nodes,)) for a in activation]),
                          _attrs("1", "action-potential-duration scale of the node")),
            "upstroke_spread": (("scenario", "node"),
                                np.stack([np.zeros(n_nodes) if a.upstroke_ms is None else a.upstroke_ms
                                          for a in activation]) * 1e-3,
                                _attrs("s", "half-width of the triangle the node's action-potential upstroke is "
                                            "spread over (electrophysiology.action_potential.upstroke_spread)")),
        },
        coords={"electrode": ("electrode", np.array(electrodes, dtype=str), _attrs("1", "electrode name")),
                "component": ("component", np.array(COMPONENTS), _attrs("1", "Cartesian component")),
                "component_column": ("component_column", np.array(COMPONENTS),
                                     _attrs("1", "Cartesian component (the tensor's second index)")),
                "scenario": ("scenario", np.array(scenarios, dtype=str), _attrs("1", "activation scenario"))},
        attrs={"patient": patient, "split": split,
               "leadfield_stats": json.dumps([json.loads(str(s)) for s in chunks["stats_json"]])},
    )
    encoding = {name: sharded_encoding(v.shape, v.dtype.itemsize, blocked_axis=0) for name, v in group.data_vars.items()}
    return group, encoding, np.array([np.ptp(a.activation_ms) * 1e-3 for a in activation]), n_nodes, n_cells


#: Root attribute of a part: what the fan-in needs to check and place it, readable from the
#: part's root zarr.json alone (opening 28 parts with xarray costs more than linking them).
_PART_SUMMARY = "ecgcohort_part"


_SHARED_COORDS = ("electrode", "electrode_kind", "scenario", "time", "lead", "parameter", "parameter_units", "surface")


def _part_summary(row) -> dict[str, Any]:
    return {"patient": str(row.patient.values[0]), "split": str(row.split.values[0]),
            "sex": str(row.sex.values[0]),
            "arrays": sorted(row.data_vars),
            "coords": {name: row[name].values.tolist() for name in _SHARED_COORDS if name in row.coords},
            "sizes": {dim: int(row.sizes[dim]) for dim in ("point", "sdf_point") if dim in row.sizes},
            "node_count": int(row.node_count.values[0]), "cell_count": int(row.cell_count.values[0])}


def write_patient_part(patient: str, files: PatientFiles, scenarios: Sequence[str], out_part: str | Path,
                       out_digests: str | Path | None = None) -> None:
    """Write one patient's part of the cohort store, ``out_part`` (a Zarr store): its slice of
    every root array (a ``patient`` dimension of size 1, one shard per array) and its ragged
    group ``patients/<patient>``. :func:`assemble_cohort` links parts into the cohort without
    rewriting their bytes. Inconsistent inputs fail naming the patient; the part is written
    under a temporary name and renamed when complete. ``out_digests``: the SHA-256 of each of
    the part's files (:func:`ecgcohort.io.write_file_digests`), which a linked release lists
    without reading the bytes again."""
    import zarr

    if not scenarios or len(set(scenarios)) != len(scenarios):
        raise ValueError(f"patient {patient}: scenarios must be unique and at least one, got {list(scenarios)}")
    record = _read_parameters(files.parameters)
    if record["patient"] != patient:
        raise ValueError(f"patient {patient}: {files.parameters} is patient '{record['patient']}'")
    # the per-patient readers live with the physics (numba, scipy.sparse: 0.3 s to import);
    # the fan-in and every reader of the store need none of it
    from ecgcohort.ecg.inputs import read_electrode_table, read_lead_field_chunks

    electrodes = read_electrode_table(files.electrodes)
    chunks = read_lead_field_chunks(files.leadfield_chunks, ("electrode_positions_m", "grad_points", "grad_cells",
                                                             "lead_matrix", "stats_json"))
    _same("the lead-field electrodes (against electrodes.csv)", patient, electrodes.names, chunks["electrode_names"])
    group, group_encoding, durations, n_nodes, n_cells = _patient_group(
        patient, record["split"], files, electrodes.names, scenarios, chunks)
    row = _patient_row(patient, record, files, scenarios, electrodes, chunks, durations, (n_nodes, n_cells))
    row.attrs[_PART_SUMMARY] = json.dumps(_part_summary(row))
    # not consolidated: only the fan-in reads a part, from its metadata files
    with atomic_directory(out_part) as store:
        row.to_zarr(store, mode="w-", consolidated=False, encoding=_row_encoding(row))
        group.to_zarr(store, group=f"patients/{patient}", mode="w-", consolidated=False, encoding=group_encoding)
    log.info("patient %s: part %s (%d electrodes, %d points, %d nodes, %d cells, %d scenarios, %.1f MB)", patient,
             out_part, len(electrodes.names), row.sizes["point"], n_nodes, n_cells, len(scenarios),
             _store_bytes(Path(out_part)) / 1e6)
    if out_digests is not None:
        write_file_digests(out_part, out_digests)
