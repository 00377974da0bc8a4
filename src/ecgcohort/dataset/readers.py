"""Reading the cohort store lazily: the root Dataset of ``cohort.zarr`` (or of one patient's
part) and one patient's ragged mesh arrays, from a working store or a release's packed one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ecgcohort.dataset.parts import _PART_SUMMARY
from ecgcohort.dataset.store import _METADATA_FILE, _quiet_consolidated


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
