"""Fan-in of every patient's files into one Zarr store, ``cohort.zarr``, and its dataset card.

Layout (Zarr format 3, consolidated metadata in the root ``zarr.json``):

* the root group is one xarray Dataset over the dimensions ``patient``, ``electrode``, ``point``,
  ``component``, ``scenario``, ``time``, ``lead`` and ``parameter``: every array whose size is
  the same for all patients (sample points, ∇Z at the points, electrodes, parameters, ECGs),
  chunked one patient per chunk;
* ``patients/<id>`` holds one xarray Dataset per patient with the mesh-dependent (ragged)
  arrays over its own ``node`` and ``cell`` dimensions: myocardial nodes and tetrahedra,
  fibres, ∇Z per cell, the lead matrix and the activation maps. Per-patient groups keep every
  array dense and exact (no padding to the largest mesh, no count variables to apply).

The store is written under a temporary name beside the target and renamed when complete, so a
failed or killed job leaves no ``cohort.zarr``. SI units throughout unless ``units`` says
otherwise; every array has ``units`` and ``long_name``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ecgcohort.conduction.maps import load_activation
from ecgcohort.ecg.forward import read_electrode_table, read_lead_field_chunks
from ecgcohort.fibers.rule_based import load_fibres
from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)

COMPONENTS: tuple[str, ...] = ("x", "y", "z")
REGIONS = {1: "myocardium", 2: "torso", 3: "blood"}
#: Distributions whose versions (and declared licences) the provenance records.
SOFTWARE: tuple[str, ...] = (
    "ecgcohort", "numpy", "scipy", "pandas", "xarray", "zarr", "dask", "dolfinx-solver-real", "fenics-dolfinx",
    "petsc4py", "gmsh", "pyacvd", "pyvista", "fenicsx-ldrb", "fim-python", "fractal-tree", "networkx", "anny",
    "snakemake", "torch",
)
#: Licences of upstream code and assets the cohort is generated with (stated in the card).
UPSTREAM_LICENCES: tuple[tuple[str, str, str], ...] = (
    ("DOLFINx (FEniCSx)", "LGPL-3.0-or-later", "lead-field FEM, LDRB fibres"),
    ("gmsh", "GPL-2.0-or-later", "tetrahedral meshes"),
    ("fim-python", "AGPL-3.0", "eikonal activation times"),
    ("MakeHuman assets", "CC0-1.0", "the torso model's body shapes"),
)
#: Bytes per chunk aimed at for the large per-patient arrays (electrode blocks).
_CHUNK_BYTES = 32 * 2 ** 20


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


def _of_patient(paths: Sequence[str | Path], patient: str) -> list[Path]:
    return [Path(p) for p in paths if patient in Path(p).parts]


def group_patient_files(patients: Sequence[str], scenarios: Sequence[str], *, parameters: Sequence[str | Path],
                        electrodes: Sequence[str | Path], points: Sequence[str | Path],
                        fibres: Sequence[str | Path], leadfield_chunks: Sequence[str | Path],
                        activation: Sequence[str | Path], ecg: Sequence[str | Path],
                        sdf: Sequence[str | Path] = ()) -> dict[str, PatientFiles]:
    """Sort flat per-kind file lists into :class:`PatientFiles` by the patient directory in each
    path (``.../{patient}/...``); chunks keep their given order, activation and ECG files are
    keyed by their stem (the scenario). ``sdf`` (signed-distance samples) is optional: given,
    every patient needs one."""
    grouped = {}
    for patient in patients:
        single = {}
        kinds = [("parameters", parameters), ("electrodes", electrodes), ("points", points), ("fibres", fibres)]
        for kind, paths in kinds + ([("sdf", sdf)] if sdf else []):
            found = _of_patient(paths, patient)
            if len(found) != 1:
                raise ValueError(f"patient {patient}: expected one {kind} file, got {len(found)}")
            single[kind] = found[0]
        by_scenario = {}
        for kind, paths in (("activation", activation), ("ecg", ecg)):
            found = {p.stem: p for p in _of_patient(paths, patient)}
            missing = [s for s in scenarios if s not in found]
            if missing:
                raise ValueError(f"patient {patient}: no {kind} file for scenario(s) {', '.join(missing)}")
            by_scenario[kind] = {s: found[s] for s in scenarios}
        chunks = tuple(_of_patient(leadfield_chunks, patient))
        if not chunks:
            raise ValueError(f"patient {patient}: no lead-field chunks")
        grouped[patient] = PatientFiles(leadfield_chunks=chunks, **single, **by_scenario)
    return grouped


# ---------------------------------------------------------------- provenance
def git_revision() -> str:
    """``git rev-parse HEAD`` of the checkout holding this library, or "unknown"."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def software_versions() -> dict[str, dict[str, str]]:
    """Version and declared licence of every distribution in :data:`SOFTWARE` that is installed,
    plus Python itself."""
    found = {"python": {"version": platform.python_version(), "licence": "PSF-2.0"}}
    for name in SOFTWARE:
        try:
            meta = metadata.metadata(name)
        except metadata.PackageNotFoundError:
            continue
        licence = meta.get("License-Expression") or (meta.get("License") or "").split("\n")[0].strip()
        # some distributions paste the whole licence text (or its copyright line) into License
        if not licence or len(licence) > 60 or "copyright" in licence.lower():
            classifiers = [c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or []
                           if c.startswith("License ::")]
            licence = ", ".join(classifiers) or "see package"
        found[name] = {"version": meta["Version"], "licence": licence}
    return found


def hardware() -> dict[str, Any]:
    """CPU model, logical cores (all and usable), physical memory (bytes) and the platform."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_model": model, "logical_cores": os.cpu_count(), "usable_cores": usable, "memory_bytes": memory,
            "platform": platform.platform()}


# ---------------------------------------------------------------- reading one patient
def _attrs(units: str, long_name: str, **extra: Any) -> dict[str, Any]:
    return {"units": units, "long_name": long_name, **extra}


def _read_parameters(path: Path) -> dict[str, Any]:
    record = json.loads(Path(path).read_text())
    for key in ("patient", "split", "parameters", "units"):
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


def _electrode_block(n_electrodes: int, bytes_per_electrode: int) -> int:
    return int(np.clip(_CHUNK_BYTES // max(bytes_per_electrode, 1), 1, max(n_electrodes, 1)))


def _same(what: str, patient: str, expected: Any, got: Any) -> None:
    if not np.array_equal(np.asarray(expected), np.asarray(got)):
        raise ValueError(f"patient {patient}: {what} differs from the first patient's; every patient of a "
                         f"cohort must share it (expected {np.asarray(expected)!r:.200}, got {np.asarray(got)!r:.200})")


# ---------------------------------------------------------------- the store
@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; move it onto ``path`` only on success (an
    existing ``path`` is replaced). A failure removes the temporary; a killed job leaves only a
    hidden ``.<name>.part-*`` directory, never ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.part-", dir=target.parent))
    try:
        yield temporary
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(temporary, target)
            shutil.rmtree(old)
        else:
            os.replace(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


@contextlib.contextmanager
def _quiet_consolidated() -> Iterator[None]:
    # consolidated metadata is a zarr-python extension of format 3; the card says so
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        yield


def _template(patients: Sequence[str], splits: Sequence[str], electrodes, n_points: int, scenarios: Sequence[str],
              time_s: np.ndarray, lead_names: Sequence[str], parameter_names: Sequence[str],
              parameter_units: Sequence[str], parameter_descriptions: Sequence[str], attrs: Mapping[str, Any],
              sdf_layout: tuple[int, Sequence[str]] | None = None):
    """The root Dataset with lazy (never computed) patient-dimension arrays: writing it with
    ``compute=False`` lays out every array and writes only the coordinates."""
    import dask.array
    import xarray as xr

    n_p, n_e, n_s, n_t, n_l = len(patients), len(electrodes.names), len(scenarios), len(time_s), len(lead_names)

    def lazy(shape, dtype):
        return dask.array.zeros(shape, dtype=dtype, chunks=(1, *shape[1:]))

    ecg_dims = ("patient", "scenario", "electrode", "time")
    lead_dims = ("patient", "scenario", "lead", "time")
    data_vars = {
        "parameters": (("patient", "parameter"), lazy((n_p, len(parameter_names)), np.float64),
                       _attrs("see parameter_units", "sampled patient parameters (shape modes, heart pose)")),
        "sample_points": (("patient", "point", "component"), lazy((n_p, n_points, 3), np.float64),
                          _attrs("m", "lead-field sample points in the body")),
        "sample_region": (("patient", "point"), lazy((n_p, n_points), np.int8),
                          _attrs("1", "region of the sample point", flag_values=list(REGIONS),
                                 flag_meanings=" ".join(REGIONS.values()))),
        "distance_to_heart": (("patient", "point"), lazy((n_p, n_points), np.float64),
                              _attrs("m", "distance from the sample point to the heart surface")),
        "grad_lead_field": (("patient", "electrode", "point", "component"), lazy((n_p, n_e, n_points, 3), np.float32),
                            _attrs("ohm/m", "gradient of the FEM lead field Z of the electrode at the sample points")),
        "electrode_position": (("patient", "electrode", "component"), lazy((n_p, n_e, 3), np.float64),
                               _attrs("m", "electrode position on the body surface")),
        "electrode_normalised_position": (
            ("patient", "electrode", "component"), lazy((n_p, n_e, 3), np.float64),
            _attrs("1", "normalised torso coordinates of the electrode: x in [-1, 1] right to left, "
                        "y in [0, 1] posterior to anterior, z in [0, 1] superior to inferior")),
        "unipolar_ecg": (ecg_dims, lazy((n_p, n_s, n_e, n_t), np.float64),
                         _attrs("V", "electrode potential from the FEM lead field (zero mean on the body surface)")),
        "lead_ecg": (lead_dims, lazy((n_p, n_s, n_l, n_t), np.float64),
                     _attrs("V", "standard 12-lead ECG from the FEM lead field")),
        "pseudo_unipolar_ecg": (ecg_dims, lazy((n_p, n_s, n_e, n_t), np.float64),
                                _attrs("V", "electrode potential from the pseudo lead field 1/(4 pi sigma0 |e - x|)")),
        "pseudo_lead_ecg": (lead_dims, lazy((n_p, n_s, n_l, n_t), np.float64),
                            _attrs("V", "standard 12-lead ECG from the pseudo lead field")),
        "activation_duration": (("patient", "scenario"), lazy((n_p, n_s), np.float64),
                                _attrs("s", "time from the first to the last activated myocardial node")),
        "node_count": (("patient",), lazy((n_p,), np.int64),
                       _attrs("1", "myocardial mesh nodes (size of node in patients/<id>)")),
        "cell_count": (("patient",), lazy((n_p,), np.int64),
                       _attrs("1", "myocardial tetrahedra (size of cell in patients/<id>)")),
    }
    coords = {
        "patient": ("patient", np.array(patients, dtype=str), _attrs("1", "patient id (<split>-<index>)")),
        "split": ("patient", np.array(splits, dtype=str), _attrs("1", "train or test split of the patient")),
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
        "parameter_units": ("parameter", np.array(parameter_units, dtype=str), _attrs("1", "units of the parameter")),
        "parameter_description": ("parameter", np.array(parameter_descriptions, dtype=str),
                                  _attrs("1", "meaning of the parameter")),
    }
    if sdf_layout is not None:
        n_sdf, surfaces = sdf_layout
        data_vars |= {
            "sdf_points": (("patient", "sdf_point", "component"), lazy((n_p, n_sdf, 3), np.float32),
                           _attrs("m", "signed-distance sample points (near the four surfaces and uniform in the "
                                       "torso's bounding box)")),
            "sdf": (("patient", "surface", "sdf_point"), lazy((n_p, len(surfaces), n_sdf), np.float32),
                    _attrs("m", "signed distance to the closed surface at the sample point, negative inside")),
            "sdf_point_kind": (("patient", "sdf_point"), lazy((n_p, n_sdf), np.int8),
                               _attrs("1", "how the point was drawn: 0 uniform in the box, k near surface k - 1",
                                      flag_values=list(range(len(surfaces) + 1)),
                                      flag_meanings=" ".join(["uniform", *(f"near_{s}" for s in surfaces)]))),
        }
        coords["surface"] = ("surface", np.array(surfaces, dtype=str),
                             _attrs("1", "closed surface: the body surface, the LV and RV cavities (endocardium "
                                         "closed by the base plane) and the epicardial envelope"))
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))


def _patient_group(patient: str, split: str, files: PatientFiles, electrodes: Sequence[str], scenarios: Sequence[str],
                   chunks: Mapping[str, np.ndarray]):
    """The ragged per-patient Dataset (mesh, fibres, ∇Z per cell, lead matrix, activation) and its
    chunk encoding."""
    import xarray as xr

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
            "tetrahedra": (("cell", "corner"), fibres.tetrahedra.astype(np.int64),
                           _attrs("1", "0-based node indices of each myocardial tetrahedron")),
            "fibre_direction": (("cell", "component"), fibres.fibre_cell,
                                _attrs("1", "unit fibre direction at the centroid of each tetrahedron (axial: f and "
                                            "-f are the same)")),
            "fibre_structure": (("cell", "component", "component_column"), fibres.cell_structure,
                                _attrs("1", "mean of f f^T over each tetrahedron (trace 1): a conductivity with "
                                            "values a along and b across the fibres is b I + (a - b) times this")),
            "grad_lead_field_cell": (("electrode", "cell", "component"), grad_cells.astype(np.float32),
                                     _attrs("ohm/m", "gradient of the FEM lead field Z per myocardial tetrahedron")),
            "lead_matrix": (("electrode", "node"), lead.astype(np.float64),
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
    block = _electrode_block(len(electrodes), max(n_cells * 3 * 4, n_nodes * 8))
    encoding = {"grad_lead_field_cell": {"chunks": (block, n_cells, 3)},
                "lead_matrix": {"chunks": (block, n_nodes)}}
    return group, encoding, np.array([np.ptp(a.activation_ms) * 1e-3 for a in activation]), n_nodes, n_cells


def _store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def assemble_cohort(patients: Sequence[str], files: Mapping[str, PatientFiles], scenarios: Sequence[str],
                    config: Mapping[str, Any], out_zarr: str | Path, out_card: str | Path) -> None:
    """Assemble ``out_zarr`` (see the module doc) and its dataset card ``out_card`` (markdown).

    ``config`` is the validated workflow configuration, stored as JSON in the provenance; the
    split of each patient comes from its ``parameters.json``. Inconsistent inputs (electrode
    names, sample-point counts, time axes or parameters differing between patients; mesh sizes
    not matching the lead field) fail with a message naming the patient.
    """
    import xarray as xr
    import zarr

    if not patients or not scenarios:
        raise ValueError("a cohort needs at least one patient and one scenario")
    if len(set(patients)) != len(patients) or len(set(scenarios)) != len(scenarios):
        raise ValueError("patients and scenarios must be unique")
    records = {p: _read_parameters(files[p].parameters) for p in patients}
    first = patients[0]
    parameter_names = list(records[first]["parameters"])
    for patient, record in records.items():
        if record["patient"] != patient:
            raise ValueError(f"patient {patient}: {files[patient].parameters} is patient '{record['patient']}'")
        _same("the parameter names", patient, parameter_names, list(record["parameters"]))
    electrodes = read_electrode_table(files[first].electrodes)
    n_points = _read_points(files[first].points, first)["points_m"].shape[0]
    ecg0 = _read_ecg(files[first].ecg[scenarios[0]], first, electrodes.names)
    with_sdf = files[first].sdf is not None
    if any((files[p].sdf is not None) != with_sdf for p in patients):
        raise ValueError("either every patient has signed-distance samples or none has")
    sdf0 = _read_sdf(files[first].sdf, first) if with_sdf else None
    sdf_layout = (sdf0["points_mm"].shape[0], [str(s) for s in sdf0["surfaces"]]) if with_sdf else None
    time_s, lead_names = ecg0["time_s"], [str(n) for n in ecg0["lead_names"]]
    descriptions = _parameter_descriptions(config)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    provenance = {"software": software_versions(), "hardware": hardware(), "git_revision": git_revision(),
                  "created": created}
    attrs = {
        "title": "ecgcohort virtual heart-torso cohort: lead fields and ECGs",
        "summary": "Per patient: lead-field gradients at sample points, electrodes, sampled shape/pose "
                   "parameters, unipolar and 12-lead ECGs (FEM and pseudo lead field) per activation scenario; "
                   "mesh-dependent arrays in the groups patients/<id>.",
        "units_convention": "SI unless a variable's units attribute says otherwise",
        "mesh_groups": "patients/<patient id>",
        "created": created,
        "git_revision": provenance["git_revision"],
        "config": json.dumps(config, sort_keys=True, default=str),
        "software": json.dumps(provenance["software"], sort_keys=True),
        "hardware": json.dumps(provenance["hardware"], sort_keys=True),
    }
    template = _template(patients, [records[p]["split"] for p in patients], electrodes, n_points, scenarios, time_s,
                         lead_names, parameter_names, [records[first]["units"].get(n, "") for n in parameter_names],
                         [descriptions.get(n, {}).get("description", "") for n in parameter_names], attrs,
                         sdf_layout)
    meshes: dict[str, tuple[int, int]] = {}
    out_zarr = Path(out_zarr)
    with atomic_directory(out_zarr) as store, _quiet_consolidated():
        template.to_zarr(store, mode="w-", compute=False, consolidated=False)
        for index, patient in enumerate(patients):
            patient_files = files[patient]
            table = read_electrode_table(patient_files.electrodes)
            _same("the electrode names", patient, electrodes.names, table.names)
            _same("the electrode kinds", patient, electrodes.kinds, table.kinds)
            points = _read_points(patient_files.points, patient)
            _same("the number of sample points", patient, n_points, points["points_m"].shape[0])
            chunks = read_lead_field_chunks(patient_files.leadfield_chunks, ("electrode_positions_m", "grad_points",
                                                                             "grad_cells", "lead_matrix", "stats_json"))
            _same("the lead-field electrodes", patient, electrodes.names, chunks["electrode_names"])
            if chunks["grad_points"].shape != (len(electrodes.names), n_points, 3):
                raise ValueError(f"patient {patient}: grad_points is {chunks['grad_points'].shape}, expected "
                                 f"{(len(electrodes.names), n_points, 3)}")
            ecgs = [_read_ecg(patient_files.ecg[s], patient, electrodes.names) for s in scenarios]
            for ecg in ecgs:
                _same("the ECG time axis", patient, time_s, ecg["time_s"])
                _same("the lead names", patient, lead_names, ecg["lead_names"].astype(str))
            group, encoding, durations, n_nodes, n_cells = _patient_group(
                patient, records[patient]["split"], patient_files, electrodes.names, scenarios, chunks)
            group.to_zarr(store, group=f"patients/{patient}", mode="w-", consolidated=False, encoding=encoding)

            def stack(key: str) -> np.ndarray:
                return np.stack([ecg[key] for ecg in ecgs])[None].astype(np.float64)

            row = xr.Dataset({
                "parameters": (("patient", "parameter"),
                               np.array([[records[patient]["parameters"][n] for n in parameter_names]], dtype=float)),
                "sample_points": (("patient", "point", "component"), points["points_m"][None].astype(np.float64)),
                "sample_region": (("patient", "point"), points["region"][None].astype(np.int8)),
                "distance_to_heart": (("patient", "point"), points["distance_to_heart_m"][None].astype(np.float64)),
                "grad_lead_field": (("patient", "electrode", "point", "component"),
                                    chunks["grad_points"][None].astype(np.float32)),
                # the positions the lead field was solved for
                "electrode_position": (("patient", "electrode", "component"),
                                       chunks["electrode_positions_m"][None].astype(np.float64)),
                "electrode_normalised_position": (("patient", "electrode", "component"), table.normalised[None]),
                "unipolar_ecg": (("patient", "scenario", "electrode", "time"), stack("unipolar_v")),
                "lead_ecg": (("patient", "scenario", "lead", "time"), stack("leads_v")),
                "pseudo_unipolar_ecg": (("patient", "scenario", "electrode", "time"), stack("pseudo_unipolar_v")),
                "pseudo_lead_ecg": (("patient", "scenario", "lead", "time"), stack("pseudo_leads_v")),
                "activation_duration": (("patient", "scenario"), durations[None]),
                "node_count": (("patient",), np.array([n_nodes], dtype=np.int64)),
                "cell_count": (("patient",), np.array([n_cells], dtype=np.int64)),
            })
            if with_sdf:
                sdf = _read_sdf(patient_files.sdf, patient)
                _same("the signed-distance surfaces", patient, sdf_layout[1], sdf["surfaces"].astype(str))
                _same("the number of signed-distance points", patient, sdf_layout[0], sdf["points_mm"].shape[0])
                row["sdf_points"] = (("patient", "sdf_point", "component"),
                                     (sdf["points_mm"].astype(np.float64) * 1e-3).astype(np.float32)[None])
                row["sdf"] = (("patient", "surface", "sdf_point"),
                              (sdf["sdf_mm"].astype(np.float64) * 1e-3).astype(np.float32)[None])
                row["sdf_point_kind"] = (("patient", "sdf_point"), sdf["kind"].astype(np.int8)[None])
            row.to_zarr(store, region={"patient": slice(index, index + 1)}, consolidated=False)
            meshes[patient] = (n_nodes, n_cells)
            log.info("patient %s (%d/%d): %d electrodes, %d points, %d nodes, %d cells, %d scenarios",
                     patient, index + 1, len(patients), len(electrodes.names), n_points, n_nodes, n_cells,
                     len(scenarios))
        zarr.consolidate_metadata(str(store))
        size = _store_bytes(store)
        card = dataset_card(store, config, meshes, size)
    with atomic_path(out_card) as temporary:
        temporary.write_text(card)
    log.info("cohort of %d patients: %s (%.1f MB), card %s", len(patients), out_zarr, size / 1e6, out_card)


# ---------------------------------------------------------------- reading
def open_cohort(path: str | Path):
    """The root Dataset of ``cohort.zarr``, lazy (dask arrays, one patient per chunk)."""
    import xarray as xr

    with _quiet_consolidated():
        return xr.open_zarr(path, consolidated=True)


def open_patient_mesh(path: str | Path, patient: str):
    """The lazy per-patient Dataset ``patients/<patient>`` of ``cohort.zarr`` (nodes, tetrahedra,
    fibres, ∇Z per cell, lead matrix, activation times)."""
    import xarray as xr
    import zarr

    with _quiet_consolidated():
        root = zarr.open_consolidated(str(path), mode="r")
        if f"patients/{patient}" not in root:
            raise KeyError(f"patient '{patient}' is not in {path}")
        return xr.open_zarr(path, group=f"patients/{patient}", consolidated=True)


# ---------------------------------------------------------------- the card
def _parameter_descriptions(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> description, units, range of the sampled parameters, from the cohort design."""
    if "cohort" not in config:
        return {}
    from ecgcohort.cohort.sampling import design_from_config

    return {d.name: {"description": d.description, "units": d.unit, "range": (d.low, d.high)}
            for d in design_from_config(config["cohort"]).dimensions}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")  # a bare | would split the markdown table cell


def _variable_table(dataset) -> list[str]:
    lines = ["| variable | dims | dtype | units | long_name |", "|---|---|---|---|---|"]
    for name in list(dataset.coords) + list(dataset.data_vars):
        v = dataset[name]
        lines.append(f"| `{name}` | ({', '.join(v.dims)}) | {v.dtype} | {_cell(v.attrs.get('units', ''))} | "
                     f"{_cell(v.attrs.get('long_name', ''))} |")
    return lines


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def dataset_card(store: str | Path, config: Mapping[str, Any], meshes: Mapping[str, tuple[int, int]],
                 size_bytes: int) -> str:
    """The dataset card (markdown) of a complete store: variables, sizes, parameter ranges,
    generation time, hardware, software versions and upstream licences."""
    ds = open_cohort(store)
    patients = [str(p) for p in ds.patient.values]
    group = open_patient_mesh(store, patients[0])
    software = json.loads(ds.attrs["software"])
    machine = json.loads(ds.attrs["hardware"])
    splits = {s: int((ds.split.values == s).sum()) for s in sorted(set(ds.split.values.tolist()))}
    kinds = {k: int((ds.electrode_kind.values == k).sum()) for k in sorted(set(ds.electrode_kind.values.tolist()))}
    nodes = [n for n, _ in meshes.values()]
    cells = [c for _, c in meshes.values()]
    groups_bytes = _store_bytes(Path(store) / "patients")
    dt = float(np.diff(ds.time.values[:2])[0]) if ds.sizes["time"] > 1 else float("nan")
    lines = [
        "# ecgcohort cohort: lead fields and ECGs of virtual heart-torso patients",
        "",
        f"Generated {ds.attrs['created']} from ecgcohort revision `{ds.attrs['git_revision']}`. "
        "Every array carries `units` and `long_name`; units are SI unless stated.",
        "",
        "```python",
        "from ecgcohort.dataset import open_cohort, open_patient_mesh",
        "cohort = open_cohort(\"cohort.zarr\")            # lazy, one patient per chunk",
        f"mesh = open_patient_mesh(\"cohort.zarr\", \"{patients[0]}\")  # ragged per-patient arrays",
        "```",
        "",
        "## Layout",
        "",
        "* Root group: one xarray Dataset with dimensions "
        + ", ".join(f"`{d}` ({n})" for d, n in ds.sizes.items())
        + "; arrays with a `patient` dimension are chunked one patient per chunk.",
        "* `patients/<id>`: one group per patient with the mesh-dependent arrays over its own `node` and "
        "`cell` dimensions (myocardial mesh, fibres, grad Z per cell, lead matrix, activation times). "
        "Meshes differ between patients, so these arrays cannot share a dimension; separate groups keep them "
        "dense and exact (no padding, no count variables). `node_count` and `cell_count` in the root give "
        "their sizes.",
        "* Zarr format 3; consolidated metadata (a zarr-python extension of format 3) in the root `zarr.json`. "
        "Without it: `xarray.open_zarr(path, consolidated=False)`.",
        "* Parameters keep the units they are sampled in (`parameter_units`: standard deviations, degree, mm).",
        "",
        "## Sizes",
        "",
        "| what | count |",
        "|---|---|",
        f"| patients | {len(patients)} ({', '.join(f'{k}: {v}' for k, v in splits.items())}) |",
        f"| electrodes | {ds.sizes['electrode']} ({', '.join(f'{k}: {v}' for k, v in kinds.items())}) |",
        f"| lead-field sample points per patient | {ds.sizes['point']} |",
        f"| scenarios | {ds.sizes['scenario']} ({', '.join(str(s) for s in ds.scenario.values)}) |",
        f"| time steps | {ds.sizes['time']} (dt {dt * 1e3:g} ms) |",
        f"| myocardial nodes per patient | {min(nodes)} to {max(nodes)} |",
        f"| myocardial tetrahedra per patient | {min(cells)} to {max(cells)} |",
        f"| bytes on disk | {size_bytes} ({_mb(size_bytes)}; per-patient groups {_mb(groups_bytes)}) |",
        "",
        "## Variables (root)",
        "",
        *_variable_table(ds),
        "",
        f"## Variables (per patient, `patients/{patients[0]}`)",
        "",
        *_variable_table(group),
        "",
        "## Sampled parameters",
        "",
        "| parameter | units | range | description |",
        "|---|---|---|---|",
    ]
    described = _parameter_descriptions(config)
    for name, units in zip(ds.parameter.values, ds.parameter_units.values):
        entry = described.get(str(name))
        span = f"[{entry['range'][0]:g}, {entry['range'][1]:g}]" if entry else "not in the cohort design"
        lines.append(f"| `{name}` | {units} | {span} | {entry['description'] if entry else ''} |")
    if "cohort" in config:
        lines += ["", f"Latin-hypercube design, seed {config['cohort'].get('seed')}, uniform in every range."]
    physics = {key: config[key] for key in ("leadfield", "ecg", "meshing", "fibers") if key in config}
    if physics:
        lines += ["", "## Settings", "", "```json", json.dumps(physics, indent=2, sort_keys=True, default=str), "```",
                  "", "The whole configuration is in the root attribute `config` (JSON)."]
    memory = machine.get("memory_bytes")
    lines += [
        "",
        "## Generation",
        "",
        f"* time: {ds.attrs['created']}",
        f"* hardware (assembly job): {machine.get('cpu_model')}, {machine.get('logical_cores')} logical cores "
        f"({machine.get('usable_cores')} usable), {(memory or 0) / 2 ** 30:.1f} GiB RAM, {machine.get('platform')}",
        f"* git revision: `{ds.attrs['git_revision']}`",
        "",
        "| software | version | licence (package metadata) |",
        "|---|---|---|",
        *(f"| {name} | {entry['version']} | {entry['licence']} |" for name, entry in sorted(software.items())),
        "",
        "## Licences of upstream software and assets",
        "",
        "| upstream | licence | used for |",
        "|---|---|---|",
        *(f"| {name} | {licence} | {use} |" for name, licence, use in UPSTREAM_LICENCES),
        "",
        "The generated data are derived from these tools' outputs; check their terms before redistribution.",
        "",
    ]
    return "\n".join(lines)

