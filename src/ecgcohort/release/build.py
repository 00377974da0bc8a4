"""A release of the cohort (``snakemake release``): one directory others download, check and load
without ecgcohort.

Layout of ``results/release/``:

* ``cohort.zarr/`` — the store, in one of two layouts (``release.layout``): *packed*
  (:mod:`ecgcohort.release.pack`: sharded by patients, meshes as CF contiguous ragged arrays,
  crc32c on every chunk; every byte rewritten) or *linked* (:mod:`ecgcohort.release.link`: the
  working store's files hard-linked, meshes in per-patient groups; for cohorts of thousands);
* ``metadata.parquet`` — one row per patient × scenario (:mod:`ecgcohort.release.table`);
* ``croissant.json`` — the Croissant 1.0 description (:mod:`ecgcohort.release.croissant`);
* ``wfdb/<patient>/<scenario>.hea|.dat`` — every 12-lead ECG (:mod:`ecgcohort.release.wfdb_export`);
* ``llnl/<patient>/`` — the ECG → activation banks in the LLNL layout, when asked;
* ``README.md`` — the dataset card and how to load the release;
* ``sizes.json`` — files and bytes per part, files per patient;
* ``MANIFEST.sha256`` — the SHA-256 of every other file, in ``sha256sum -c`` format.

:func:`verify_release` (``python -m ecgcohort.release verify DIR``) checks the manifest, then
decodes every array patient by patient, so a corrupted chunk is reported with its array and
patient. Building a linked release checks the files it wrote and the presence of the linked
ones (their checksums come from the parts that wrote them); the command checks every byte.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from ecgcohort.dataset.card import dataset_card
from ecgcohort.dataset.readers import open_cohort
from ecgcohort.dataset.store import _quiet_consolidated, atomic_directory
from ecgcohort.io import atomic_path
from ecgcohort.io import sha256_of

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.sha256"
SIZES = "sizes.json"
#: Files a workflow manager adds to a finished directory output; never in the manifest.
IGNORED = frozenset({".snakemake_timestamp"})


@dataclass(frozen=True)
class ReleaseMetadata:
    """What the Croissant file and the card say about the release."""

    name: str = "ecgcohort-cohort"
    version: str = "0.1.0"
    license: str = "CC-BY-4.0"
    url: str = "https://github.com/ecgcohort/ecgcohort"
    citation: str = "ecgcohort: a virtual heart-torso cohort of lead fields and ECGs"
    description: str = ("Virtual heart-torso patients: lead-field gradients, electrodes, sampled shape and pose "
                        "parameters, myocardial meshes, activation maps, and unipolar and 12-lead ECGs of several "
                        "activation scenarios.")
    creator: str = ""


@dataclass(frozen=True)
class ReleaseInputs:
    """Where the release's parts come from: the working store, each patient's anatomy.json, the
    realism tables (None when the stage is off), the ECG → activation banks (patient -> bank
    store) when the LLNL export is asked for, and the checksums of each patient's part
    (patient -> :func:`ecgcohort.io.write_file_digests` file; a linked release's manifest takes
    them instead of reading the bytes)."""

    store: Path
    anatomy: Mapping[str, Path]
    features: Path | None = None
    criteria: Path | None = None
    banks: Mapping[str, Path] = field(default_factory=dict)
    digests: Mapping[str, Path] = field(default_factory=dict)


def _release_files(directory: Path) -> list[str]:
    """The relative path of every file of the release but the manifest, sorted (os.walk and
    strings: pathlib's rglob and relative_to cost 5 s at 1,000 patients' 54,000 files)."""
    found = []
    for folder, _, names in os.walk(directory):
        relative = os.path.relpath(folder, directory)
        found += [name if relative == "." else f"{relative}/{name}" for name in names if name not in IGNORED]
    return [relative for relative in sorted(found) if relative != MANIFEST]


def write_manifest(directory: str | Path, known: Mapping[tuple[int, int, int], str] | None = None) -> set[str]:
    """``MANIFEST.sha256`` of ``directory``: ``<sha256>  <relative path>`` for every file but
    itself, sorted (``sha256sum -c MANIFEST.sha256`` checks it too). A file that ``known``
    (:func:`ecgcohort.release.link.digests_by_inode`) holds is not read. Returns the relative
    paths whose checksum came from ``known``."""
    from ecgcohort.release.link import known_digest

    directory = Path(directory)
    lines, from_parts = [], set()
    for relative in _release_files(directory):
        path = os.path.join(directory, relative)
        digest = known_digest(path, known) if known else None
        if digest is None:
            digest = sha256_of(path)
        else:
            from_parts.add(relative)
        lines.append(f"{digest}  {relative}")
    with atomic_path(directory / MANIFEST) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    return from_parts


def _check_complete(cohort, inputs: ReleaseInputs, patients: Sequence[str]) -> None:
    stored = [str(p) for p in cohort.patient.values]
    missing = [p for p in patients if p not in stored]
    if missing:
        raise ValueError(f"the cohort is incomplete: {len(missing)} of {len(patients)} patients are not in "
                         f"{inputs.store}: {', '.join(missing)}; run the workflow for them before a release")
    extra = [p for p in stored if p not in patients]
    if extra:
        raise ValueError(f"{inputs.store} holds patients the configuration does not: {', '.join(extra)}")
    no_anatomy = [p for p in patients if p not in inputs.anatomy or not Path(inputs.anatomy[p]).is_file()]
    if no_anatomy:
        raise ValueError(f"the cohort is incomplete: no anatomy.json for {', '.join(no_anatomy)}")


def _load_instructions(patient: str, layout: str) -> str:
    """The card's section on reading the release with xarray, zarr and pandas alone."""
    if layout == "linked":
        opening = ["import pandas as pd, xarray as xr",
                   "cohort = xr.open_zarr(\"cohort.zarr\", consolidated=False)   # lazy; one patient per shard"]
        mesh = [f"mesh = xr.open_zarr(\"cohort.zarr\", group=\"patients/{patient}\", consolidated=False)"]
        layout_text = ("This store keeps the workflow's own layout (the release's `layout` attribute is `linked`): "
                       "every root array is one shard per patient and each patient's mesh arrays (nodes, tetrahedra, "
                       "fibres, the lead matrix, activation times) are the group `patients/<patient>`. The root has "
                       "no consolidated listing (at 10,000 patients it would be 230 MB to parse): "
                       "`consolidated=False` opens the root's own arrays. "
                       "`ecgcohort.dataset.open_patient_mesh(\"cohort.zarr\", patient)` reads it too.")
        checksum = "every chunk)."
    else:
        opening = ["import numpy as np, pandas as pd, xarray as xr",
                   "cohort = xr.open_zarr(\"cohort.zarr\")                 # lazy; one patient per inner chunk"]
        mesh = ["nodes = np.concatenate([[0], np.cumsum(cohort.node_count.values)])",
                "cells = np.concatenate([[0], np.cumsum(cohort.cell_count.values)])",
                "mesh = cohort[[\"node_position\", \"tetrahedra\", \"lead_matrix\", \"activation_time\"]].isel(",
                "    node=slice(nodes[i], nodes[i + 1]), cell=slice(cells[i], cells[i + 1]))"]
        layout_text = ("The meshes are CF contiguous ragged arrays: patient i's nodes are the `node_count[i]` entries "
                       "along `node` after those of patients 0 to i - 1 (cells likewise); `tetrahedra` index the "
                       "patient's own nodes. `ecgcohort.dataset.open_patient_mesh(\"cohort.zarr\", patient)` does the "
                       "slicing.")
        checksum = "every chunk: each carries a crc32c checksum)."
    return "\n".join([
        "## Loading this release without ecgcohort",
        "",
        "Only xarray and zarr (>= 3) are needed; pandas (with pyarrow) reads the table, wfdb the ECG records.",
        "",
        "```python",
        *opening,
        "table = pd.read_parquet(\"metadata.parquet\")          # one row per patient x scenario",
        f"i = int(table.loc[table.patient == \"{patient}\", \"zarr_index\"].iloc[0])",
        "ecg = cohort.lead_ecg.isel(patient=i).sel(scenario=\"sinus\")   # (lead, time), volts",
        *mesh,
        "```",
        "",
        layout_text,
        "",
        "Check a download: `sha256sum -c MANIFEST.sha256`, or `python -m ecgcohort.release verify .` (also decodes "
        + checksum,
    ])


def build_release(inputs: ReleaseInputs, out_dir: str | Path, *, patients: Sequence[str],
                  metadata: ReleaseMetadata = ReleaseMetadata(), shard_bytes: int | None = None,
                  wfdb_source: str | None = "fem", threads: int = 1, layout: str = "packed") -> dict[str, Any]:
    """Build the release ``out_dir`` (see the module doc) from ``inputs`` for the configured
    ``patients``; refuse an incomplete cohort naming the missing patients. ``layout``: the
    store ``packed`` (every byte rewritten) or ``linked`` (the working store's files hard-linked,
    their checksums taken from ``inputs.digests``). Written under a temporary name and renamed
    when complete and verified. Returns the size report."""
    from ecgcohort.release.croissant import croissant_metadata, write_croissant
    from ecgcohort.release.pack import DEFAULT_SHARD_BYTES, pack_store
    from ecgcohort.release.table import (column_descriptions, metadata_table, read_anatomy_measures,
                                         read_realism_csv, write_table)
    from ecgcohort.release.wfdb_export import export_wfdb

    import xarray as xr

    from ecgcohort.release.link import LAYOUTS, digests_by_inode, link_store

    if layout not in LAYOUTS:
        raise ValueError(f"release layout '{layout}' is not one of {', '.join(LAYOUTS)}")
    # the root's own metadata files: the consolidated listing of every patient's group costs 6 s
    # to parse at 1,000 patients, and the release reads none of the groups; no dask: an array of
    # one shard per patient is one zarr read, not a task per patient
    with _quiet_consolidated():
        cohort = xr.open_zarr(inputs.store, consolidated=False, chunks=None)
    _check_complete(cohort, inputs, patients)
    known = {}
    if layout == "linked":
        no_digests = [p for p in patients if p not in inputs.digests]
        if no_digests:
            raise ValueError(f"a linked release takes its checksums from the parts: none given for "
                             f"{', '.join(no_digests[:10])}")
        known = digests_by_inode(inputs.digests)
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as release:
        if layout == "linked":
            store_layout = link_store(inputs.store, release / "cohort.zarr", patients=len(patients))
        else:
            store_layout = pack_store(inputs.store, release / "cohort.zarr",
                                      shard_bytes=shard_bytes or DEFAULT_SHARD_BYTES, threads=threads)
        table = metadata_table(cohort, anatomy={p: read_anatomy_measures(inputs.anatomy[p]) for p in patients},
                               features=read_realism_csv(inputs.features), criteria=read_realism_csv(inputs.criteria))
        if wfdb_source is None:
            table = table.drop(columns="wfdb_record")
        descriptions = column_descriptions(table, cohort)
        write_table(table, release / "metadata.parquet", descriptions=descriptions,
                    metadata={"git_revision": str(cohort.attrs.get("git_revision", ""))})
        if wfdb_source is not None:
            export_wfdb(cohort, release / "wfdb", source=wfdb_source)
        for patient, bank in sorted(inputs.banks.items()):
            from ecgcohort.llnl import export_bank

            export_bank(bank, release / "llnl" / patient)
        created = datetime.date.today().isoformat()
        write_croissant(croissant_metadata(
            name=metadata.name, description=metadata.description, version=metadata.version, license=metadata.license,
            url=metadata.url, citation=metadata.citation, table_path=release / "metadata.parquet", table=table,
            descriptions=descriptions, store_path=release / "cohort.zarr", store_layout=layout,
            wfdb_dir=release / "wfdb" if wfdb_source is not None else None, date_published=created,
            creator={"@type": "Organization", "name": metadata.creator} if metadata.creator else None,
            root=release), release / "croissant.json")
        sizes = _size_report(release, patients, store_layout)
        (release / SIZES).write_text(json.dumps(sizes, indent=2) + "\n")
        packed = open_cohort(release / "cohort.zarr") if layout == "packed" else cohort
        meshes = {str(p): (int(n), int(c)) for p, n, c in zip(packed.patient.values, packed.node_count.values,
                                                               packed.cell_count.values)}
        card = dataset_card(release / "cohort.zarr", json.loads(cohort.attrs.get("config", "{}")), meshes,
                            store_layout["bytes"], root=packed)
        (release / "README.md").write_text(
            card.replace("# ecgcohort cohort:", f"# {metadata.name} {metadata.version}:", 1)
            + "\n" + _release_section(sizes, metadata, layout) + "\n\n" + _load_instructions(patients[0], layout)
            + "\n")
        from_parts = write_manifest(release, known)
        # a linked release's store is the parts' bytes, checked when each part was written
        report = verify_release(release, trusted=from_parts, decode=layout == "packed")
        if report.problems:
            raise RuntimeError(f"the release in {release} does not verify: " + "; ".join(report.problems[:5]))
    log.info("release %s (%s): %d files, %.1f MB, %.1f files per patient in the store", out_dir, layout,
             sizes["files"], sizes["bytes"] / 1e6, sizes["store_files_per_patient"])
    return sizes


def _size_report(release: Path, patients: Sequence[str], layout: Mapping[str, Any]) -> dict[str, Any]:
    parts: dict[str, dict[str, int]] = {}
    for relative in _release_files(release):
        entry = parts.setdefault(relative.split("/", 1)[0], {"files": 0, "bytes": 0})
        entry["files"] += 1
        entry["bytes"] += os.stat(os.path.join(release, relative)).st_size
    store = parts.get("cohort.zarr", {"files": 0})
    return {"patients": len(patients), "files": sum(p["files"] for p in parts.values()) + 1,  # + the manifest
            "bytes": sum(p["bytes"] for p in parts.values()), "parts": parts,
            "store_files_per_patient": store["files"] / max(len(patients), 1),
            "files_per_patient": (sum(p["files"] for p in parts.values()) + 1) / max(len(patients), 1),
            "store_patients_per_shard": layout["patients_per_shard"], "shard_bytes": layout["shard_bytes"],
            "store_files_linked": layout.get("linked", 0)}


def _release_section(sizes: Mapping[str, Any], metadata: ReleaseMetadata, layout: str) -> str:
    rows = [f"| `{name}` | {entry['files']} | {entry['bytes'] / 1e6:.1f} MB |"
            for name, entry in sorted(sizes["parts"].items())]
    return "\n".join([
        "## This release",
        "",
        f"Licence of the data: {metadata.license}. Cite: {metadata.citation}.",
        "",
        "| part | files | size |", "|---|---|---|", *rows,
        f"| `{MANIFEST}` | 1 | |",
        "",
        f"{sizes['patients']} patients: {sizes['store_files_per_patient']:.1f} files per patient in the store "
        f"({sizes['store_patients_per_shard']} patients per shard of the root arrays), "
        f"{sizes['files_per_patient']:.1f} in the whole release.",
        "",
        ("In this release's `cohort.zarr` the meshes are not in per-patient groups (as in the workflow's working "
         "store) but CF contiguous ragged arrays in the root (see Layout and below)." if layout == "packed" else
         "This release's `cohort.zarr` keeps the workflow's working layout (its files hard-linked, not rewritten): "
         "one shard per patient for every root array, each patient's meshes in the group `patients/<patient>`."),
    ])


# ---------------------------------------------------------------- verify
@dataclass
class VerifyReport:
    """What :func:`verify_release` found: files checked, arrays decoded, problems (empty: the
    release is intact)."""

    files: int = 0
    arrays: int = 0
    problems: list[str] = field(default_factory=list)


def _patients_of_shard(store: Path, relative: Path, cohort) -> str:
    """The array and the patients a chunk file of the packed store holds (for a checksum
    mismatch found in the manifest)."""
    array, key = relative.parts[0], relative.parts[-1]
    if array == "patients" and len(relative.parts) > 3:
        return f"'{relative.parts[2]}' (patient {relative.parts[1]})"
    if array not in cohort.variables or not key.startswith("c."):
        return f"'{array}'"
    index = [int(k) for k in key.split(".")[1:]]
    meta = json.loads((store / array / "zarr.json").read_text())
    shard = meta["chunk_grid"]["configuration"]["chunk_shape"]
    dims = cohort[array].dims
    patients = [str(p) for p in cohort.patient.values]
    if dims and dims[0] == "patient":
        chosen = patients[index[0] * shard[0]:(index[0] + 1) * shard[0]]
    else:
        (dim,) = [d for d in ("node", "cell") if d in dims]
        axis = dims.index(dim)
        start, stop = index[axis] * shard[axis], (index[axis] + 1) * shard[axis]
        counts = cohort[f"{dim}_count"].values
        ends = np.cumsum(counts)
        chosen = [p for p, end, n in zip(patients, ends, counts) if end > start and end - n < stop]
    return f"'{array}' (patients {', '.join(chosen)})"


def _decode_every_array(store: Path, report: VerifyReport) -> None:
    """Read every array patient by patient: a chunk that fails its crc32c is reported with the
    array and the patient."""
    from ecgcohort.dataset import open_patient_mesh

    with _quiet_consolidated():
        cohort = open_cohort(store)
    patients = [str(p) for p in cohort.patient.values]
    for name, variable in cohort.variables.items():
        report.arrays += 1
        if variable.dims and variable.dims[0] == "patient":
            for index, patient in enumerate(patients):
                try:
                    np.asarray(variable[index].values)
                except Exception as error:  # noqa: BLE001 - any decode failure is a finding
                    report.problems.append(f"array '{name}', patient {patient}: {type(error).__name__}: {error}")
        elif not {"node", "cell"} & set(variable.dims):
            try:
                np.asarray(variable.values)
            except Exception as error:  # noqa: BLE001
                report.problems.append(f"array '{name}': {type(error).__name__}: {error}")
    for number, patient in enumerate(patients):
        # the packed store's ragged arrays sliced, or the linked store's group of the patient
        mesh = open_patient_mesh(store, patient)
        if number == 0 and "patients" in cohort.attrs.get("mesh_groups", ""):
            report.arrays += len(mesh.data_vars)
        for name in mesh.data_vars:
            try:
                np.asarray(mesh[name].values)
            except Exception as error:  # noqa: BLE001
                report.problems.append(f"array '{name}', patient {patient}: {type(error).__name__}: {error}")


def verify_release(directory: str | Path, *, trusted: Collection[str] = (), decode: bool = True) -> VerifyReport:
    """Check a release: every file of the manifest present with its SHA-256 (a mismatch in the
    store names the array and the patients of the file), no file outside the manifest, then
    every array decoded patient by patient (crc32c on every chunk). ``trusted`` (relative
    paths) are checked for presence only, and ``decode=False`` skips the decoding: what building
    a linked release checks of the bytes it did not write."""
    directory = Path(directory)
    report = VerifyReport()
    manifest = directory / MANIFEST
    if not manifest.is_file():
        report.problems.append(f"{directory}: no {MANIFEST}")
        return report
    listed = {}
    for line in manifest.read_text().splitlines():
        digest, _, relative = line.partition("  ")
        listed[relative] = digest
    store = directory / "cohort.zarr"
    cohort = None
    for relative, digest in listed.items():
        path = os.path.join(directory, relative)
        report.files += 1
        if not os.path.isfile(path):
            report.problems.append(f"missing: {relative}")
        elif relative not in trusted and sha256_of(path) != digest:
            where = ""
            if relative.startswith("cohort.zarr/"):
                if cohort is None:
                    with _quiet_consolidated():
                        cohort = open_cohort(store)
                where = " — array " + _patients_of_shard(store, Path(relative).relative_to("cohort.zarr"), cohort)
            report.problems.append(f"checksum mismatch: {relative}{where}")
    unlisted = [relative for relative in _release_files(directory) if relative not in listed]
    report.problems += [f"not in the manifest: {relative}" for relative in unlisted]
    if store.is_dir() and decode:
        try:
            _decode_every_array(store, report)
        except Exception as error:  # noqa: BLE001 - an unreadable store is a finding, not a crash
            report.problems.append(f"cohort.zarr cannot be opened: {type(error).__name__}: {error}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ecgcohort.release verify DIR``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecgcohort.release", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="check a release's manifest and decode every array")
    check.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    report = verify_release(args.directory)
    for problem in report.problems:
        print(problem)
    verdict = "FAILED" if report.problems else "OK"
    print(f"{args.directory}: {report.files} files checked against {MANIFEST}, {report.arrays} arrays decoded: "
          f"{verdict} ({len(report.problems)} problems)")
    return 1 if report.problems else 0

