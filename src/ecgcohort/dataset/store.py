"""The Zarr store's primitives shared by the parts, the fan-in, the readers and the release:
directories written under a temporary name and renamed when complete, the sharded layout of one
array (Blosc LZ4 on byte-shuffled values and crc32c on every inner chunk), hard links, and the attributes every array carries."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np


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


#: Bytes of one inner chunk aimed at: what a reader decompresses to get a block of electrodes,
#: points or nodes. Every array of a patient is one shard (one file).
_INNER_CHUNK_BYTES = 4 * 2 ** 20


#: Metadata files are copied into the cohort store, never linked: consolidation rewrites them.
_METADATA_FILE = "zarr.json"


def _codecs() -> tuple:
    from zarr.codecs import BloscCodec, Crc32cCodec

    # Blosc's LZ4 on byte-shuffled values: the floats' exponent and high mantissa bytes side by
    # side compress where zstd on the raw bytes barely does (a paper-size part 0.80 of its
    # float32 ∇Z against zstd's 0.90) at 1.7 times zstd's speed (1.8 times reading back).
    # crc32c after compression: a flipped byte in any stored chunk fails the read with a
    # checksum error instead of returning wrong numbers (the shard index has its own crc32c)
    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec()


def sharded_encoding(shape: Sequence[int], itemsize: int, blocked_axis: int) -> dict[str, Any]:
    """xarray ``to_zarr`` encoding that stores an array of ``shape`` as one shard: inner chunks
    split ``blocked_axis`` into blocks of about :data:`_INNER_CHUNK_BYTES` (the axes before it
    are 1 per chunk, the axes after it whole), Blosc LZ4 (byte shuffle) + crc32c on every inner chunk. The shard
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


def _link(source: str, target: str) -> bool:
    """Hard-link ``source`` to ``target`` (copy where the file system refuses); True if linked.
    The target's folder must exist."""
    try:
        os.link(source, target)
        return True
    except OSError:
        shutil.copy2(source, target)
        return False


def _store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _attrs(units: str, long_name: str, **extra: Any) -> dict[str, Any]:
    return {"units": units, "long_name": long_name, **extra}
