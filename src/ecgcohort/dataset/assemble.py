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
chunks of a few MB, Blosc LZ4 (byte shuffle) and a crc32c checksum on every inner chunk, so a
corrupted byte fails the read instead of returning wrong numbers.

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

import datetime
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.dataset.card import _parameter_descriptions, dataset_card
from ecgcohort.dataset.parts import _PART_SUMMARY, _SHARED_COORDS, _same
from ecgcohort.dataset.provenance import git_revision, hardware, software_versions
from ecgcohort.dataset.store import _METADATA_FILE, _attrs, _link, _quiet_consolidated, _store_bytes, atomic_directory
from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)


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


def _template(first, summaries: Sequence[Mapping[str, Any]], patients: Sequence[str],
              parameter_descriptions: Sequence[str], attrs: Mapping[str, Any]):
    """The root Dataset of the cohort: coordinates (the patients' split and sex from their parts'
    ``summaries``, in ``patients`` order), attributes, and every patient-dimension array as
    a zero-strided placeholder of its shape and dtype (no memory; its values are the parts')."""
    import xarray as xr

    n = len(patients)
    data_vars = {name: (v.dims, np.broadcast_to(np.zeros((), dtype=v.dtype), (n, *v.shape[1:])), dict(v.attrs))
                 for name, v in first.data_vars.items()}
    coords = {name: (c.dims, c.values, dict(c.attrs)) for name, c in first.coords.items() if "patient" not in c.dims}
    coords["patient"] = ("patient", np.array(patients, dtype=str), dict(first.patient.attrs))
    coords["split"] = ("patient", np.array([s["split"] for s in summaries], dtype=str), dict(first.split.attrs))
    coords["sex"] = ("patient", np.array([s["sex"] for s in summaries], dtype=str), dict(first.sex.attrs))
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
        "summary": "Per patient: sex, age, lead-field gradients at sample points, electrodes, sampled shape/pose "
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
    template = _template(first, [summaries[p] for p in patients], patients,
                         [descriptions.get(str(n), {}).get("description", "") for n in first.parameter.values], attrs)
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
