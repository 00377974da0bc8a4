"""Fan-in of every patient's files into one Zarr store, ``cohort.zarr``, and its dataset card.

Layout (Zarr format 3, consolidated metadata in the root ``zarr.json``):

* the root group is one xarray Dataset over the dimensions ``patient``, ``electrode``, ``point``,
  ``component``, ``scenario``, ``time``, ``lead`` and ``parameter``: every array whose size is
  the same for all patients (sample points, ∇Z at the points, electrodes, parameters, ECGs),
  one patient per shard;
* ``patients/<id>`` holds one xarray Dataset per patient with the mesh-dependent (ragged)
  arrays over its own ``node`` and ``cell`` dimensions: myocardial nodes and tetrahedra,
  fibres, ∇Z per cell, the lead matrix and the activation maps. Per-patient groups keep every
  array dense and exact (no padding to the largest mesh, no count variables to apply).

Every array is sharded (Zarr v3 ``sharding_indexed``): one file per patient per array, inner
chunks of a few MB, zstd and a crc32c checksum on every inner chunk, so a corrupted byte fails
the read instead of returning wrong numbers.

Assembly is incremental. Each patient's job writes a *part* (:func:`write_patient_part`): a
small store with the patient's slice of every root array and its group. The fan-in
(:func:`assemble_cohort`) lays out the root metadata and hard-links each part's shard files
into place — shards do not depend on where they sit — so it rewrites no array bytes, and
adding or changing a patient costs that patient's part plus file-system operations.

Parts and the store are written under a temporary name beside the target and renamed when
complete, so a failed or killed job leaves nothing that looks complete. SI units throughout
unless ``units`` says otherwise; every array has ``units`` and ``long_name``.
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

from ecgcohort.io import atomic_path, write_file_digests

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
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp's 0700 would hide a published store from others
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


# ---------------------------------------------------------------- layout of one array
#: Bytes of one inner chunk aimed at: what a reader decompresses to get a block of electrodes,
#: points or nodes. Every array of a patient is one shard (one file).
_INNER_CHUNK_BYTES = 4 * 2 ** 20
#: Metadata files are copied into the cohort store, never linked: consolidation rewrites them.
_METADATA_FILE = "zarr.json"


def _codecs() -> tuple:
    from zarr.codecs import Crc32cCodec, ZstdCodec

    # crc32c after compression: a flipped byte in any stored chunk fails the read with a
    # checksum error instead of returning wrong numbers (the shard index has its own crc32c)
    return ZstdCodec(), Crc32cCodec()


def sharded_encoding(shape: Sequence[int], itemsize: int, blocked_axis: int) -> dict[str, Any]:
    """xarray ``to_zarr`` encoding that stores an array of ``shape`` as one shard: inner chunks
    split ``blocked_axis`` into blocks of about :data:`_INNER_CHUNK_BYTES` (the axes before it
    are 1 per chunk, the axes after it whole), zstd + crc32c on every inner chunk. The shard
    covers the whole array (rounded up to whole blocks), so the encoding depends only on the
    shape and the item size."""
    shape = tuple(int(n) for n in shape)
    row_bytes = itemsize * int(np.prod(shape[blocked_axis + 1:], dtype=np.int64))
    extent = max(shape[blocked_axis], 1)
    block = int(np.clip(_INNER_CHUNK_BYTES // max(row_bytes, 1), 1, extent))
    chunks = (*(1 for _ in shape[:blocked_axis]), block, *(max(n, 1) for n in shape[blocked_axis + 1:]))
    shards = (*(1 for _ in shape[:blocked_axis]), -(-extent // block) * block,
              *(max(n, 1) for n in shape[blocked_axis + 1:]))
    # "." keys (c.0.0.0) keep every shard of an array in the array's folder: no nested folders to
    # create, link into and remove per patient
    return {"chunks": chunks, "shards": shards, "compressors": _codecs(),
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}}}


def _row_encoding(dataset) -> dict[str, dict[str, Any]]:
    """Encoding of the patient-dimension arrays (patient first, one patient per shard)."""
    return {name: sharded_encoding((1, *v.shape[1:]), v.dtype.itemsize, blocked_axis=min(1, v.ndim - 1))
            for name, v in dataset.data_vars.items()}


# ---------------------------------------------------------------- one patient's part
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
        return np.stack([ecg[key] for ecg in ecgs])[None].astype(np.float64)

    ecg_dims = ("patient", "scenario", "electrode", "time")
    lead_dims = ("patient", "scenario", "lead", "time")
    data_vars = {
        "parameters": (("patient", "parameter"),
                       np.array([[record["parameters"][n] for n in parameter_names]], dtype=np.float64),
                       _attrs("see parameter_units", "sampled patient parameters (shape modes, heart pose)")),
        "sample_points": (("patient", "point", "component"), points["points_m"][None].astype(np.float64),
                          _attrs("m", "lead-field sample points in the body")),
        "sample_region": (("patient", "point"), points["region"][None].astype(np.int8),
                          _attrs("1", "region of the sample point", flag_values=list(REGIONS),
                                 flag_meanings=" ".join(REGIONS.values()))),
        "distance_to_heart": (("patient", "point"), points["distance_to_heart_m"][None].astype(np.float64),
                              _attrs("m", "distance from the sample point to the heart surface")),
        "grad_lead_field": (("patient", "electrode", "point", "component"),
                            chunks["grad_points"][None].astype(np.float32),
                            _attrs("ohm/m", "gradient of the FEM lead field Z of the electrode at the sample points")),
        # the positions the lead field was solved for
        "electrode_position": (("patient", "electrode", "component"),
                               chunks["electrode_positions_m"][None].astype(np.float64),
                               _attrs("m", "electrode position on the body surface")),
        "electrode_normalised_position": (
            ("patient", "electrode", "component"), electrodes.normalised[None].astype(np.float64),
            _attrs("1", "normalised torso coordinates of the electrode: x in [-1, 1] right to left, "
                        "y in [0, 1] posterior to anterior, z in [0, 1] superior to inferior")),
        "unipolar_ecg": (ecg_dims, stack("unipolar_v"),
                         _attrs("V", "electrode potential from the FEM lead field (zero mean on the body surface)")),
        "lead_ecg": (lead_dims, stack("leads_v"), _attrs("V", "standard 12-lead ECG from the FEM lead field")),
        "pseudo_unipolar_ecg": (ecg_dims, stack("pseudo_unipolar_v"),
                                _attrs("V", "electrode potential from the pseudo lead field 1/(4 pi sigma0 |e - x|)")),
        "pseudo_lead_ecg": (lead_dims, stack("pseudo_leads_v"),
                            _attrs("V", "standard 12-lead ECG from the pseudo lead field")),
        "activation_duration": (("patient", "scenario"), durations[None].astype(np.float64),
                                _attrs("s", "time from the first to the last activated myocardial node")),
        "node_count": (("patient",), np.array([mesh_size[0]], dtype=np.int64),
                       _attrs("1", "myocardial mesh nodes (size of node in patients/<id>)")),
        "cell_count": (("patient",), np.array([mesh_size[1]], dtype=np.int64),
                       _attrs("1", "myocardial tetrahedra (size of cell in patients/<id>)")),
    }
    units = record["units"]
    coords = {
        "patient": ("patient", np.array([patient], dtype=str), _attrs("1", "patient id (<split>-<index>)")),
        "split": ("patient", np.array([record["split"]], dtype=str), _attrs("1", "train or test split of the patient")),
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
    encoding = {name: sharded_encoding(v.shape, v.dtype.itemsize, blocked_axis=0) for name, v in group.data_vars.items()}
    return group, encoding, np.array([np.ptp(a.activation_ms) * 1e-3 for a in activation]), n_nodes, n_cells


def _store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


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
    from ecgcohort.ecg.forward import read_electrode_table, read_lead_field_chunks

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


# ---------------------------------------------------------------- the cohort from parts
#: Root attribute of a part: what the fan-in needs to check and place it, readable from the
#: part's root zarr.json alone (opening 28 parts with xarray costs more than linking them).
_PART_SUMMARY = "ecgcohort_part"
_SHARED_COORDS = ("electrode", "electrode_kind", "scenario", "time", "lead", "parameter", "parameter_units", "surface")


def _part_summary(row) -> dict[str, Any]:
    return {"patient": str(row.patient.values[0]), "split": str(row.split.values[0]),
            "arrays": sorted(row.data_vars),
            "coords": {name: row[name].values.tolist() for name in _SHARED_COORDS if name in row.coords},
            "sizes": {dim: int(row.sizes[dim]) for dim in ("point", "sdf_point") if dim in row.sizes},
            "node_count": int(row.node_count.values[0]), "cell_count": int(row.cell_count.values[0])}


def _read_part_summary(part: Path, patient: str) -> dict[str, Any]:
    try:
        root = json.loads((part / _METADATA_FILE).read_text())
        summary = json.loads(root["attributes"][_PART_SUMMARY])
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"patient {patient}: {part} is not a complete part of the cohort store ({error!r}); "
                         "re-run its dataset_part job") from error
    if summary["patient"] != patient:
        raise ValueError(f"patient {patient}: its part {part} holds patient {summary['patient']}")
    return summary


def _open_part(path: Path):
    import xarray as xr

    # lazy without dask: the fan-in reads coordinates and metadata only (dask costs 0.5 s to import)
    return xr.open_zarr(path, consolidated=False, chunks=None)


def _template(first, splits: Sequence[str], patients: Sequence[str], parameter_descriptions: Sequence[str],
              attrs: Mapping[str, Any]):
    """The root Dataset of the cohort: coordinates, attributes, and every patient-dimension array
    as a zero-strided placeholder of its shape and dtype (no memory; its values are the parts')."""
    import xarray as xr

    n = len(patients)
    data_vars = {name: (v.dims, np.broadcast_to(np.zeros((), dtype=v.dtype), (n, *v.shape[1:])), dict(v.attrs))
                 for name, v in first.data_vars.items()}
    coords = {name: (c.dims, c.values, dict(c.attrs)) for name, c in first.coords.items() if "patient" not in c.dims}
    coords["patient"] = ("patient", np.array(patients, dtype=str), dict(first.patient.attrs))
    coords["split"] = ("patient", np.array(splits, dtype=str), dict(first.split.attrs))
    coords["parameter_description"] = ("parameter", np.array(parameter_descriptions, dtype=str),
                                       _attrs("1", "meaning of the parameter"))
    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs))


def _write_root(store: Path, template, first_part: Path, arrays: Sequence[str]) -> None:
    """Lay out the cohort's root in ``store``: the group's metadata (``template``'s attributes),
    every patient-dimension array's metadata (the first part's with the cohort's shape and
    coordinates: every part's shards fit it), the coordinates every part shares linked from the
    first part, the patient coordinates and the parameter descriptions written. What
    ``template.to_zarr(compute=False)`` writes, at a tenth of its cost (a test checks)."""
    import zarr

    (store / _METADATA_FILE).write_text(json.dumps({"zarr_format": 3, "node_type": "group",
                                                    "attributes": dict(template.attrs)}, indent=2))
    auxiliary = [c for c in template.coords if c not in template.dims]
    for name in arrays:
        metadata = json.loads((first_part / name / _METADATA_FILE).read_text())
        metadata["shape"][0] = template.sizes["patient"]
        # xarray's convention: a variable lists the non-index coordinates whose dims it has
        coordinates = sorted(c for c in auxiliary if set(template[c].dims) <= set(template[name].dims))
        metadata["attributes"].pop("coordinates", None)
        if coordinates:
            metadata["attributes"]["coordinates"] = " ".join(coordinates)
        (store / name).mkdir()
        (store / name / _METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    group = zarr.open_group(str(store), mode="r+")
    for name, coordinate in template.coords.items():
        if "patient" in coordinate.dims or not (first_part / name).is_dir():
            values = np.asarray(coordinate.values)
            array = group.create_array(name, shape=values.shape, dtype=values.dtype, chunks=values.shape,
                                       dimension_names=list(coordinate.dims), attributes=dict(coordinate.attrs))
            array[...] = values
            continue
        for folder, _, names in os.walk(first_part / name):  # the same in every part (checked)
            target = store / name / Path(folder).relative_to(first_part / name)
            target.mkdir(parents=True, exist_ok=True)
            for file_name in names:
                if file_name == _METADATA_FILE:
                    shutil.copyfile(Path(folder) / file_name, target / file_name)
                else:
                    _link(os.path.join(folder, file_name), os.path.join(target, file_name))
    group.require_group("patients")


def _check_parts_agree(summaries: Mapping[str, Mapping[str, Any]], patients: Sequence[str]) -> None:
    first_patient = patients[0]
    first = summaries[first_patient]
    labels = {"electrode": "electrode names", "electrode_kind": "electrode kinds", "parameter": "parameter names",
              "scenario": "scenarios", "time": "ECG time axis", "lead": "lead names", "surface": "signed-distance surfaces",
              "parameter_units": "parameter units"}
    for patient in patients[1:]:
        summary = summaries[patient]
        if summary["arrays"] != first["arrays"]:
            different = sorted(set(first["arrays"]) ^ set(summary["arrays"]))
            raise ValueError(f"patient {patient}: its part's arrays differ from {first_patient}'s ({different}); "
                             "either every patient has signed-distance samples or none has")
        for name in _SHARED_COORDS:
            _same(f"the {labels[name]}", patient, first["coords"].get(name), summary["coords"].get(name))
        for dim in first["sizes"].keys() | summary["sizes"].keys():
            _same(f"the number of {dim.replace('_', ' ')}s", patient, first["sizes"].get(dim), summary["sizes"].get(dim))


def _link(source: str, target: str) -> bool:
    """Hard-link ``source`` to ``target`` (copy where the file system refuses); True if linked.
    The target's folder must exist."""
    try:
        os.link(source, target)
        return True
    except OSError:
        shutil.copy2(source, target)
        return False


def _check_layouts(parts: Mapping[str, Path], arrays: Sequence[str]) -> None:
    """Every part's arrays are encoded as the first part's (whose metadata the cohort's root
    copies): their metadata files agree byte for byte (parts hold one patient each)."""
    first_patient, first_part = next(iter(parts.items()))
    reference = {name: (first_part / name / _METADATA_FILE).read_bytes() for name in arrays}
    for patient, part in parts.items():
        for name in arrays:
            if (part / name / _METADATA_FILE).read_bytes() != reference[name]:
                raise ValueError(f"patient {patient}: the metadata of '{name}' in its part {part} differs from "
                                 f"{first_patient}'s part (written by another ecgcohort or zarr version? re-run its "
                                 "dataset_part)")


def _place_part(part: Path, store: Path, patient: str, index: int, arrays: Sequence[str]) -> tuple[int, int]:
    """Put ``patient``'s part into ``store`` at ``index`` of the patient dimension: its shard of
    every root array and its whole ragged group, chunk files hard-linked, metadata copied.
    Returns (files linked, files copied)."""
    linked = copied = 0
    for name in arrays:
        for file_name in os.listdir(os.path.join(part, name)):
            if file_name.startswith("c."):
                # the part's chunk key is 0 along the patient axis (c.0.…), the cohort's the patient's index
                key = file_name.split(".")
                key[1] = str(index)
                done = _link(os.path.join(part, name, file_name), os.path.join(store, name, ".".join(key)))
                linked, copied = linked + done, copied + (not done)
    group = os.path.join(part, "patients", patient)
    for folder, _, names in os.walk(group):
        target = os.path.join(store, "patients", patient, os.path.relpath(folder, group))
        os.makedirs(target, exist_ok=True)
        for file_name in names:
            if file_name == _METADATA_FILE:
                shutil.copyfile(os.path.join(folder, file_name), os.path.join(target, file_name))
                copied += 1
            else:
                done = _link(os.path.join(folder, file_name), os.path.join(target, file_name))
                linked, copied = linked + done, copied + (not done)
    return linked, copied


def _consolidate(store: Path, parts: Mapping[str, Path], patients: Sequence[str]) -> None:
    """Write the store's consolidated metadata from the metadata files of the root and of the
    parts' groups: what ``zarr.consolidate_metadata`` writes (a test checks), without zarr
    parsing every node of every patient (a second per 30 patients)."""
    listing: dict[str, Any] = {}
    for child in sorted(store.iterdir()):
        if child.is_dir() and (child / _METADATA_FILE).is_file() and child.name != "patients":
            listing[child.name] = json.loads((child / _METADATA_FILE).read_text())
    listing["patients"] = json.loads((store / "patients" / _METADATA_FILE).read_text())
    listing["patients"]["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": {}}
    for patient in patients:
        group = Path(parts[patient]) / "patients" / patient
        for folder, _, names in os.walk(group):
            if _METADATA_FILE in names:
                key = Path("patients", patient, Path(folder).relative_to(group)).as_posix().removesuffix("/.")
                node = json.loads((Path(folder) / _METADATA_FILE).read_text())
                if node["node_type"] == "group":
                    node["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": {}}
                listing[key] = node
    root = json.loads((store / _METADATA_FILE).read_text())
    root["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": listing}
    (store / _METADATA_FILE).write_text(json.dumps(root, indent=2))


def assemble_cohort(patients: Sequence[str], parts: Mapping[str, str | Path], config: Mapping[str, Any],
                    out_zarr: str | Path, out_card: str | Path) -> None:
    """Assemble ``out_zarr`` (see the module doc) from the patients' parts
    (:func:`write_patient_part`) and write its dataset card ``out_card`` (markdown).

    No array bytes are rewritten: each part's shards are hard-linked into place (copied where
    the file system has no hard links), so assembling costs file-system operations, not data
    throughput, and adding a patient costs its own part. ``config`` is the validated workflow
    configuration, stored as JSON in the provenance. Parts that disagree (electrodes, sample
    points, time axis, parameters, array layout) fail naming the patient.
    """
    import xarray as xr
    import zarr

    if not patients:
        raise ValueError("a cohort needs at least one patient")
    if len(set(patients)) != len(patients):
        raise ValueError("patients must be unique")
    missing = [p for p in patients if p not in parts or not Path(parts[p]).is_dir()]
    if missing:
        raise ValueError(f"no part for patient(s) {', '.join(missing)}")
    summaries = {p: _read_part_summary(Path(parts[p]), p) for p in patients}
    _check_parts_agree(summaries, patients)
    first = _open_part(Path(parts[patients[0]]))
    first.attrs.pop(_PART_SUMMARY, None)
    descriptions = _parameter_descriptions(config)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    provenance = {"software": software_versions(), "hardware": hardware(), "git_revision": git_revision()}
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
    template = _template(first, [summaries[p]["split"] for p in patients], patients, [descriptions.get(str(n), {}).get("description", "")
                                          for n in first.parameter.values], attrs)
    arrays = list(first.data_vars)
    meshes = {p: (summaries[p]["node_count"], summaries[p]["cell_count"]) for p in patients}
    linked = copied = 0
    out_zarr = Path(out_zarr)
    with atomic_directory(out_zarr) as store, _quiet_consolidated():
        _write_root(store, template, Path(parts[patients[0]]), arrays)
        _check_layouts({p: Path(parts[p]) for p in patients}, arrays)
        for index, patient in enumerate(patients):
            done = _place_part(Path(parts[patient]), store, patient, index, arrays)
            linked, copied = linked + done[0], copied + done[1]
            log.info("patient %s (%d/%d): %d nodes, %d cells", patient, index + 1, len(patients), *meshes[patient])
        _consolidate(store, parts, patients)
        size = _store_bytes(store)
        card = dataset_card(store, config, meshes, size, root=template,
                            group=xr.open_zarr(parts[patients[0]], group=f"patients/{patients[0]}", consolidated=False,
                                               chunks=None))
    with atomic_path(out_card) as temporary:
        temporary.write_text(card)
    log.info("cohort of %d patients: %s (%.1f MB; %d files hard-linked from the parts, %d copied), card %s",
             len(patients), out_zarr, size / 1e6, linked, copied, out_card)


# ---------------------------------------------------------------- reading
def is_part(path: str | Path) -> bool:
    """Whether ``path`` is one patient's part of the cohort store (:func:`write_patient_part`)."""
    try:
        return _PART_SUMMARY in json.loads((Path(path) / _METADATA_FILE).read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False


def open_cohort(path: str | Path):
    """The root Dataset of ``cohort.zarr``, or of one patient's part of it (the same arrays with a
    ``patient`` dimension of size 1: what a per-patient job reads), lazy (dask arrays, one
    patient per chunk)."""
    import xarray as xr

    if is_part(path):
        return xr.open_zarr(path, consolidated=False)
    with _quiet_consolidated():
        try:
            return xr.open_zarr(path, consolidated=True)
        except (KeyError, ValueError):  # a linked release's store: no consolidated listing
            return xr.open_zarr(path, consolidated=False)


def open_patient_mesh(path: str | Path, patient: str):
    """The lazy per-patient Dataset of ``patient`` (nodes, tetrahedra, fibres, ∇Z per cell, lead
    matrix, activation times): the group ``patients/<patient>`` of a working store, or the
    patient's slice of the contiguous ragged arrays of a release's packed store."""
    import xarray as xr
    import zarr

    if (Path(path) / "patients" / patient / _METADATA_FILE).is_file():
        # the group's own metadata files: parsing the root's listing of every patient costs more
        return xr.open_zarr(path, group=f"patients/{patient}", consolidated=False)
    with _quiet_consolidated():
        root = zarr.open_consolidated(str(path), mode="r")
        if "node_position" not in root:
            raise KeyError(f"patient '{patient}' is not in {path}")
        cohort = xr.open_zarr(path, consolidated=True)
    patients = [str(p) for p in cohort.patient.values]
    if patient not in patients:
        raise KeyError(f"patient '{patient}' is not in {path}")
    index = patients.index(patient)
    nodes = np.concatenate([[0], np.cumsum(cohort.node_count.values)])
    cells = np.concatenate([[0], np.cumsum(cohort.cell_count.values)])
    names = [name for name, v in cohort.data_vars.items() if {"node", "cell"} & set(v.dims)]
    mesh = cohort[names].isel(node=slice(nodes[index], nodes[index + 1]), cell=slice(cells[index], cells[index + 1]))
    dims = {d for name in names for d in cohort[name].dims}
    mesh = mesh.drop_vars([c for c in mesh.coords if not set(mesh[c].dims) <= dims])
    mesh.attrs = {"patient": patient, "split": str(cohort.split.values[index]),
                  "leadfield_stats": str(cohort.leadfield_stats.values[index])}
    return mesh


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
                 size_bytes: int, *, root=None, group=None) -> str:
    """The dataset card (markdown) of a complete store: variables, sizes, parameter ranges,
    generation time, hardware, software versions and upstream licences. ``root`` and ``group``
    (the root Dataset and the first patient's group), when given, spare reading them back."""
    import xarray as xr

    # the root's and one group's own metadata files are faster to read than the consolidated
    # listing of every patient's nodes
    ds = root if root is not None else xr.open_zarr(store, consolidated=False)
    patients = [str(p) for p in ds.patient.values]
    packed = ds.attrs.get("layout") == "packed"
    if group is None:
        group = open_patient_mesh(store, patients[0])
    software = json.loads(ds.attrs["software"])
    machine = json.loads(ds.attrs["hardware"])
    splits = {s: int((ds.split.values == s).sum()) for s in sorted(set(ds.split.values.tolist()))}
    kinds = {k: int((ds.electrode_kind.values == k).sum()) for k in sorted(set(ds.electrode_kind.values.tolist()))}
    nodes = [n for n, _ in meshes.values()]
    cells = [c for _, c in meshes.values()]
    mesh_names = [name for name in group.data_vars]
    groups_bytes = (sum(_store_bytes(Path(store) / name) for name in mesh_names) if packed
                    else _store_bytes(Path(store) / "patients"))
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
        + ("; arrays with a `patient` dimension are sharded by several patients, one patient per inner chunk."
           if packed else "; arrays with a `patient` dimension are stored one patient per shard."),
        *(["* The mesh-dependent arrays (myocardial mesh, fibres, grad Z per cell, lead matrix, activation times) "
           "are CF contiguous ragged arrays (CF 1.11, 9.3.3) in the root: every patient's nodes one after another "
           "along `node`, its tetrahedra along `cell`; `node_count` and `cell_count` (attribute `sample_dimension`) "
           "give each patient's share in the `patient` order, and `tetrahedra` index the patient's own nodes."]
          if packed else
          ["* `patients/<id>`: one group per patient with the mesh-dependent arrays over its own `node` and "
           "`cell` dimensions (myocardial mesh, fibres, grad Z per cell, lead matrix, activation times). "
           "Meshes differ between patients, so these arrays cannot share a dimension; separate groups keep them "
           "dense and exact (no padding, no count variables). `node_count` and `cell_count` in the root give "
           "their sizes."]),
        "* Zarr format 3; consolidated metadata (a zarr-python extension of format 3) in the root `zarr.json`. "
        "Without it: `xarray.open_zarr(path, consolidated=False)`.",
        "* Every array is sharded (`sharding_indexed`"
        + ("" if packed else ": one file per patient per array")
        + ", inner chunks of a few MB) with zstd and a crc32c checksum on every inner chunk: a corrupted byte "
        "fails the read.",
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
        f"| bytes on disk | {size_bytes} ({_mb(size_bytes)}; {'mesh arrays' if packed else 'per-patient groups'} "
        f"{_mb(groups_bytes)}) |",
        "",
        "## Variables (root)",
        "",
        *_variable_table(ds),
        "",
        (f"## Variables (per patient: `open_patient_mesh(store, \"{patients[0]}\")`)" if packed
         else f"## Variables (per patient, `patients/{patients[0]}`)"),
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

