"""Croissant 1.0 (JSON-LD) description of a cohort release, so ML tooling can find and load it.

A release directory ``REL/`` holds ``croissant.json``, ``metadata.parquet`` (the metadata
table), ``cohort.zarr/`` and, optionally, ``wfdb/``. Every ``contentUrl`` and ``includes`` glob
is relative to the directory of the Croissant file (``root``), which is how mlcroissant resolves
local files.

Distribution:

* ``metadata.parquet``: a FileObject, ``application/x-parquet`` (the MIME type mlcroissant reads
  Parquet by), with its sha256 and size;
* ``cohort.zarr``: a FileSet of every file under the store, ``application/x-zarr``. Zarr has no
  registered MIME type; mlcroissant checks encoding formats only when it reads a file, and no
  RecordSet reads the store, so it accepts this one (the FileSet says where the arrays are; the
  table's ``zarr_index`` column says which patient is which);
* ``wfdb``: a FileSet of the WFDB records (``*.hea`` text headers and ``*.dat`` signals),
  ``application/x-wfdb`` for the same reason.

One RecordSet, ``ecg_records``, one record per row of the metadata table (patient ×
scenario), one field per column with its data type, description (units appended) and source.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ecgcohort.io import atomic_path, sha256_of

CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
RECORD_SET = "ecg_records"
PARQUET_FORMAT = "application/x-parquet"
ZARR_FORMAT = "application/x-zarr"
WFDB_FORMAT = "application/x-wfdb"

#: The JSON-LD @context of Croissant 1.0, as mlcroissant expects it (the context of the 1.0
#: example datasets plus ``equivalentProperty`` and ``samplingRate``; mlcroissant warns about
#: any key missing from it).
CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}


def croissant_data_type(dtype: Any) -> str:
    """The Croissant data type of a pandas column dtype: sc:Boolean, sc:Integer, sc:Float or
    sc:Text."""
    if pd.api.types.is_bool_dtype(dtype):
        return "sc:Boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "sc:Integer"
    if pd.api.types.is_float_dtype(dtype):
        return "sc:Float"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "sc:Text"
    raise ValueError(f"no Croissant data type for a column of dtype {dtype}")


def _relative(path: str | Path, root: Path, what: str) -> str:
    """``path`` relative to ``root`` in POSIX form; it must lie inside ``root``."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if relative == ".." or relative.startswith(".." + os.sep) or os.path.isabs(relative):
        raise ValueError(f"{what} {path} is not inside the release directory {root}")
    return Path(relative).as_posix()


def _field_description(entry: Mapping[str, str]) -> str:
    text = str(entry.get("description", ""))
    units = str(entry.get("units", "1"))
    return f"{text} [{units}]" if units not in ("", "1") else text


def _date(value: str | _dt.date | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def croissant_metadata(*, name: str, description: str, version: str, license: str | Sequence[str],
                       url: str, citation: str, table_path: str | Path, table: pd.DataFrame,
                       descriptions: Mapping[str, Mapping[str, str]], store_path: str | Path,
                       store_layout: str = "packed",
                       wfdb_dir: str | Path | None = None,
                       date_published: str | _dt.date | None = None,
                       creator: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                       root: str | Path | None = None) -> dict[str, Any]:
    """The Croissant 1.0 JSON-LD of a release (see the module docstring for its layout).

    ``table_path`` is the written Parquet file of ``table`` (its sha256 and size go into the
    metadata); ``store_path`` the cohort.zarr directory, ``store_layout`` its layout (``packed``:
    meshes as ragged arrays; ``linked``: per-patient groups); ``wfdb_dir`` the WFDB directory, if
    any. ``root`` is the directory the Croissant file will be written to (default: the table's
    directory); every path is stored relative to it and must lie inside it. ``creator`` is a
    schema.org Person/Organization dict (or a list of them), ``date_published`` an ISO date.
    """
    table_path = Path(table_path)
    root = Path(root) if root is not None else table_path.parent
    if not table_path.is_file():
        raise ValueError(f"the metadata table {table_path} does not exist")
    if not Path(store_path).is_dir():
        raise ValueError(f"the Zarr store {store_path} is not a directory")
    missing = [c for c in table.columns if c not in descriptions]
    if missing:
        raise ValueError(f"no description for column(s) {', '.join(map(str, missing))}")

    table_url = _relative(table_path, root, "the metadata table")
    store_url = _relative(store_path, root, "the Zarr store")
    distribution: list[dict[str, Any]] = [
        {"@type": "cr:FileObject", "@id": table_url, "name": table_url,
         "description": "metadata table: one row per patient x scenario (parameters, anatomy "
                        "measures, ECG realism features, where the data lie); column descriptions "
                        "and units also in the Parquet field metadata",
         "contentUrl": table_url, "contentSize": f"{table_path.stat().st_size} B",
         "encodingFormat": PARQUET_FORMAT, "sha256": sha256_of(table_path)},
        {"@type": "cr:FileSet", "@id": store_url, "name": store_url,
         "description": "the cohort as a Zarr store (open with xarray.open_zarr): per patient the "
                        "lead fields, electrodes, parameters and ECGs; "
                        + ("the meshes as CF contiguous ragged arrays along node and cell (node_count, "
                           "cell_count)" if store_layout == "packed" else
                           "each patient's meshes in the group patients/<patient>")
                        + "; select a patient by the table's zarr_index",
         "encodingFormat": ZARR_FORMAT, "includes": [f"{store_url}/**"]},
    ]
    if wfdb_dir is not None:
        if not Path(wfdb_dir).is_dir():
            raise ValueError(f"the WFDB directory {wfdb_dir} is not a directory")
        wfdb_url = _relative(wfdb_dir, root, "the WFDB directory")
        if "wfdb_record" in table.columns:
            outside = [r for r in table["wfdb_record"].dropna() if not str(r).startswith(wfdb_url + "/")]
            if outside:
                raise ValueError(f"wfdb_record {outside[0]} is not under the WFDB directory {wfdb_url}")
        distribution.append(
            {"@type": "cr:FileSet", "@id": wfdb_url, "name": wfdb_url,
             "description": "12-lead ECGs as WFDB records <patient>/<scenario>.hea (text header) + "
                            ".dat (signals, mV); the table's wfdb_record column names each record",
             "encodingFormat": WFDB_FORMAT,
             "includes": [f"{wfdb_url}/**/*.hea", f"{wfdb_url}/**/*.dat"]})

    fields = []
    for column in table.columns:
        fields.append({
            "@type": "cr:Field", "@id": f"{RECORD_SET}/{column}", "name": str(column),
            "description": _field_description(descriptions[column]),
            "dataType": croissant_data_type(table[column].dtype),
            "source": {"fileObject": {"@id": table_url}, "extract": {"column": str(column)}},
        })
    record_set: dict[str, Any] = {
        "@type": "cr:RecordSet", "@id": RECORD_SET, "name": RECORD_SET,
        "description": "one record per patient x scenario: the rows of the metadata table",
        "field": fields,
    }
    if {"patient", "scenario"} <= set(table.columns):
        record_set["key"] = [{"@id": f"{RECORD_SET}/patient"}, {"@id": f"{RECORD_SET}/scenario"}]

    metadata: dict[str, Any] = {
        "@context": dict(CROISSANT_CONTEXT),
        "@type": "sc:Dataset",
        "name": name,
        "description": description,
        "conformsTo": CONFORMS_TO,
        "citeAs": citation,
        "license": license if isinstance(license, str) else list(license),
        "url": url,
        "version": version,
    }
    if creator is not None:
        metadata["creator"] = dict(creator) if isinstance(creator, Mapping) else [dict(c) for c in creator]
    if date_published is not None:
        metadata["datePublished"] = _date(date_published)
    metadata["distribution"] = distribution
    metadata["recordSet"] = [record_set]
    return metadata


def write_croissant(metadata: Mapping[str, Any], path: str | Path) -> Path:
    """Write the Croissant JSON-LD to ``path`` atomically (a temporary file beside it, then
    os.replace)."""
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "w") as file:
        json.dump(metadata, file, indent=2, ensure_ascii=False)
        file.write("\n")
    return path


def check_croissant(path: str | Path) -> None:
    """Check a written release against its Croissant file without mlcroissant: every
    FileObject exists with its sha256, every FileSet glob matches at least one file, and every
    field's column is in the Parquet table. Raises ValueError naming what is wrong."""
    import pyarrow.parquet as pq

    path = Path(path)
    root = path.parent
    metadata = json.loads(path.read_text())
    objects = {}
    for entry in metadata.get("distribution", []):
        kind = entry.get("@type")
        if kind == "cr:FileObject":
            file = root / entry["contentUrl"]
            if not file.is_file():
                raise ValueError(f"{path}: {entry['@id']}: {file} does not exist")
            if entry.get("sha256") and sha256_of(file) != entry["sha256"]:
                raise ValueError(f"{path}: {entry['@id']}: sha256 of {file} is {sha256_of(file)}, "
                                 f"the Croissant file says {entry['sha256']}")
            objects[entry["@id"]] = file
        elif kind == "cr:FileSet":
            includes = entry.get("includes", [])
            includes = [includes] if isinstance(includes, str) else includes
            if not any(any(p.is_file() for p in root.glob(pattern)) for pattern in includes):
                raise ValueError(f"{path}: {entry['@id']}: no file matches {includes}")
    for record_set in metadata.get("recordSet", []):
        for field in record_set.get("field", []):
            source = field.get("source", {})
            file_id = source.get("fileObject", {}).get("@id")
            column = source.get("extract", {}).get("column")
            if file_id not in objects:
                raise ValueError(f"{path}: field {field['@id']} reads unknown file {file_id}")
            names = pq.read_schema(objects[file_id]).names
            if column not in names:
                raise ValueError(f"{path}: field {field['@id']}: column {column!r} is not in "
                                 f"{objects[file_id].name}")
