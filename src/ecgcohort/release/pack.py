"""The release's store: the cohort repacked so that a paper-scale cohort is a few files per patient.

The working store (``results/dataset/cohort.zarr``) keeps one shard per patient per array and
one group per patient, so that adding or changing a patient rewrites that patient only; that
costs some 45 files per patient. A release is written once and downloaded many times, so its
store (``cohort.zarr`` of the release) packs instead:

* the root arrays with a ``patient`` dimension are sharded by *several* patients (as many as
  fit in ``shard_bytes``; the inner chunks stay one patient each, so reading one patient reads
  only its own chunks);
* the per-patient mesh arrays become CF *contiguous ragged arrays* (CF conventions 1.11,
  section 9.3.3): every patient's nodes one after the other along one ``node`` dimension, its
  tetrahedra along ``cell``, with ``node_count`` and ``cell_count`` (attribute
  ``sample_dimension``) saying how many belong to each patient, in the ``patient`` order.
  ``tetrahedra`` keeps node indices within the patient. ``leadfield_stats`` (one JSON text per
  patient) holds what the groups' attribute held.

Both layouts hold the same arrays with the same values, units and attributes;
:func:`ecgcohort.dataset.open_patient_mesh` reads either.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ecgcohort.dataset.readers import open_cohort, open_patient_mesh
from ecgcohort.dataset.store import _INNER_CHUNK_BYTES, _codecs, _quiet_consolidated, atomic_directory, sharded_encoding

log = logging.getLogger(__name__)

#: Bytes of one shard aimed at: large enough that a paper-scale cohort is a few files per
#: patient, small enough to download, check and rewrite one at a time.
DEFAULT_SHARD_BYTES = 2 ** 30
RAGGED_DIMENSIONS = ("node", "cell")
_KEY_ENCODING = {"name": "default", "configuration": {"separator": "."}}


def _root_encoding(variable, n_patients: int, shard_bytes: int) -> tuple[dict[str, Any], int]:
    """Encoding of a patient-dimension array sharded by patients, and the patients per shard."""
    per_patient = sharded_encoding((1, *variable.shape[1:]), variable.dtype.itemsize,
                                   blocked_axis=min(1, variable.ndim - 1))
    patient_bytes = variable.dtype.itemsize * int(np.prod(per_patient["shards"][1:], dtype=np.int64))
    per_shard = int(np.clip(shard_bytes // max(patient_bytes, 1), 1, n_patients))
    return {**per_patient, "shards": (per_shard, *per_patient["shards"][1:])}, per_shard


def _ragged_encoding(variable, shard_bytes: int) -> dict[str, Any]:
    """Encoding of a contiguous ragged array: inner chunks and shards split its node or cell axis."""
    axis = next(variable.dims.index(d) for d in RAGGED_DIMENSIONS if d in variable.dims)
    extent = max(variable.shape[axis], 1)
    row_bytes = variable.dtype.itemsize * int(np.prod([n for i, n in enumerate(variable.shape) if i != axis],
                                                      dtype=np.int64))
    block = int(np.clip(_INNER_CHUNK_BYTES // max(row_bytes, 1), 1, extent))
    blocks = int(np.clip(shard_bytes // max(row_bytes * block, 1), 1, -(-extent // block)))
    chunks = tuple(block if i == axis else max(n, 1) for i, n in enumerate(variable.shape))
    shards = tuple(block * blocks if i == axis else max(n, 1) for i, n in enumerate(variable.shape))
    return {"chunks": chunks, "shards": shards, "compressors": _codecs(), "chunk_key_encoding": _KEY_ENCODING}


def packed_dataset(store: str | Path):
    """The working store ``store`` as one lazy Dataset in the release's layout (see the module
    doc): the root arrays as they are, every patient's mesh arrays concatenated."""
    import dask.array
    import xarray as xr

    cohort = open_cohort(store)
    patients = [str(p) for p in cohort.patient.values]
    meshes = [open_patient_mesh(store, p) for p in patients]
    nodes = [m.sizes["node"] for m in meshes]
    cells = [m.sizes["cell"] for m in meshes]
    if nodes != cohort.node_count.values.tolist() or cells != cohort.cell_count.values.tolist():
        raise ValueError(f"{store}: node_count / cell_count differ from the patients' mesh groups")
    ragged = {}
    for name, variable in meshes[0].data_vars.items():
        dims = variable.dims
        (dim,) = [d for d in RAGGED_DIMENSIONS if d in dims]
        for patient, mesh in zip(patients, meshes):
            if mesh[name].dims != dims:
                raise ValueError(f"patient {patient}: '{name}' has dimensions {mesh[name].dims}, expected {dims}")
        data = dask.array.concatenate([m[name].data for m in meshes], axis=dims.index(dim))
        ragged[name] = xr.Variable(dims, data, dict(variable.attrs))
    packed = cohort.assign(ragged)
    packed = packed.assign_coords({name: meshes[0][name] for name in meshes[0].coords if name not in packed.coords})
    packed["leadfield_stats"] = ("patient", np.array([m.attrs["leadfield_stats"] for m in meshes], dtype=str),
                                 {"units": "1", "long_name": "timings and sizes of the patient's lead-field solve "
                                                             "(JSON, one object per electrode chunk)"})
    for count, dim in (("node_count", "node"), ("cell_count", "cell")):
        packed[count].attrs |= {"sample_dimension": dim,
                                "long_name": f"number of the patient's elements of the {dim} dimension (CF "
                                             "contiguous ragged array: patient i's are the next "
                                             f"{count} along {dim} after those of patients 0 to i - 1)"}
    packed["tetrahedra"].attrs["long_name"] = ("0-based indices of each myocardial tetrahedron's nodes among its "
                                               "own patient's nodes")
    packed.attrs = {**cohort.attrs, "layout": "packed",
                    "mesh_arrays": "CF contiguous ragged arrays along node and cell; node_count and cell_count "
                                   "per patient (sample_dimension)",
                    "Conventions": "CF-1.11"}
    packed.attrs.pop("mesh_groups", None)
    return packed


def pack_store(store: str | Path, out_store: str | Path, *, shard_bytes: int = DEFAULT_SHARD_BYTES,
               threads: int = 1) -> dict[str, Any]:
    """Write the release's store ``out_store`` from the working store ``store`` (see the module
    doc), under a temporary name renamed when complete. Returns the layout: patients per shard
    of the root arrays, files, bytes."""
    import dask
    import dask.array  # noqa: F401

    if shard_bytes < _INNER_CHUNK_BYTES:
        raise ValueError(f"shard_bytes {shard_bytes} is below one inner chunk ({_INNER_CHUNK_BYTES} bytes)")
    packed = packed_dataset(store)
    n_patients = packed.sizes["patient"]
    encoding, per_shard = {}, {}
    for name, variable in packed.data_vars.items():
        if variable.dtype.kind in "US":
            continue
        if variable.dims and variable.dims[0] == "patient":
            encoding[name], per_shard[name] = _root_encoding(variable, n_patients, shard_bytes)
        else:
            encoding[name] = _ragged_encoding(variable, shard_bytes)
        # one dask chunk per shard: each shard is written once, by one task
        packed[name] = variable.chunk(dict(zip(variable.dims, encoding[name]["shards"])))
    with atomic_directory(out_store) as temporary, _quiet_consolidated(), \
            dask.config.set(scheduler="threads", num_workers=max(1, threads)):
        packed.to_zarr(temporary, mode="w-", encoding=encoding, consolidated=True)
    files = sum(1 for f in Path(out_store).rglob("*") if f.is_file())
    size = sum(f.stat().st_size for f in Path(out_store).rglob("*") if f.is_file())
    layout = {"patients": n_patients, "files": files, "bytes": size,
              "patients_per_shard": min(per_shard.values()) if per_shard else n_patients,
              "shard_bytes": shard_bytes}
    log.info("packed %s into %s: %d patients, %d files (%.1f per patient), %.1f MB", store, out_store, n_patients,
             files, files / max(n_patients, 1), size / 1e6)
    return layout
