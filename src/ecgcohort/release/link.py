"""The release's store for a large cohort: the working store hard-linked, not repacked.

Packing (:mod:`ecgcohort.release.pack`) rewrites every byte: about 165 MB per patient at
1.2 mm, some 45 MB/s on 2 cores, so about 10 hours for 10,000 patients. The *linked* layout
keeps the working store's layout (one shard per patient per root array, the meshes in the
groups ``patients/<id>``, about 45 files per patient) and hard-links its chunk files into the
release (metadata files are copied): file-system operations, not data throughput. The
manifest takes each linked file's SHA-256 from its patient's part
(:func:`ecgcohort.io.write_file_digests`, written by the ``dataset_part`` job) when the file is
that part's file (same inode, size and modification time), so no byte is read again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from ecgcohort.dataset.store import _METADATA_FILE, _link, atomic_directory
from ecgcohort.io import read_file_digests

log = logging.getLogger(__name__)

LAYOUTS = ("packed", "linked")
#: The root attribute that names the layout of a release's store.
LAYOUT_ATTRIBUTE = "layout"


def link_store(store: str | Path, out_store: str | Path, *, patients: int) -> dict[str, Any]:
    """Write the release's store ``out_store`` as hard links to the working store ``store``'s
    chunk files (copies where the file system has no hard links) and copies of its metadata,
    the root's attribute ``layout`` set to ``linked`` and its consolidated listing of every
    node left out (``xr.open_zarr(out_store, consolidated=False)`` reads the root's arrays);
    under a temporary name renamed when complete. ``patients``: how many the store holds (for
    the report). Returns the layout: patients, files, bytes, files linked."""
    store, out_store = Path(store), Path(out_store)
    files = linked = size = 0
    with atomic_directory(out_store) as temporary:
        for folder, _, names in os.walk(store):
            target = temporary / Path(folder).relative_to(store)
            target.mkdir(parents=True, exist_ok=True)
            for name in names:
                source = os.path.join(folder, name)
                if name == _METADATA_FILE:
                    shutil.copyfile(source, target / name)
                else:
                    linked += _link(source, str(target / name))
                files += 1
                size += os.stat(source).st_size
        root = json.loads((temporary / _METADATA_FILE).read_text())
        root["attributes"][LAYOUT_ATTRIBUTE] = "linked"
        # no consolidated listing: at 10,000 patients it is 230 MB that xarray's default open
        # parses for 51 s into every group's nodes; the root's own ~45 arrays open in seconds
        root.pop("consolidated_metadata", None)
        (temporary / _METADATA_FILE).write_text(json.dumps(root, separators=(",", ":")))
    log.info("linked %s into %s: %d patients, %d files (%.1f per patient, %d hard-linked), %.1f MB", store,
             out_store, patients, files, files / max(patients, 1), linked, size / 1e6)
    return {"patients": patients, "files": files, "bytes": size, "linked": linked, "patients_per_shard": 1,
            "shard_bytes": None}


def digests_by_inode(digest_files: Mapping[str, str | Path]) -> dict[tuple[int, int, int], str]:
    """(inode, bytes, modification time in ns) -> SHA-256 of every file the parts' digest files
    (patient -> :func:`ecgcohort.io.write_file_digests` file) list. A hard link of a part's file
    has the same three; a file rewritten since has another inode."""
    known = {}
    for patient, path in digest_files.items():
        for relative, entry in read_file_digests(path).items():
            if len(entry) != 4:
                raise ValueError(f"patient {patient}: {path} lists {relative} without inode and time; re-run its "
                                 "dataset_part job")
            digest, size, inode, modified = entry
            known[(int(inode), int(size), int(modified))] = digest
    return known


def known_digest(path: str | Path, known: Mapping[tuple[int, int, int], str]) -> str | None:
    """The SHA-256 of ``path`` from ``known`` (:func:`digests_by_inode`), or None where the file
    is not one of the parts' files."""
    status = os.stat(path)
    return known.get((status.st_ino, status.st_size, status.st_mtime_ns))
