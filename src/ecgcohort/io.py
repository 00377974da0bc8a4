"""Small I/O helpers shared by every stage."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A job killed or failing half-way leaves no file that looks complete.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the temporary keeps the target's extension: writers such as gmsh and VTK choose the
    # format from it
    handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}",
                                         dir=target.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would hide every output from the user's group
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        os.replace(temporary_path, target)
    finally:
        temporary_path.unlink(missing_ok=True)


def agg_pyplot():
    """matplotlib's pyplot on the off-screen Agg backend (jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, path: str | Path, dpi: int = 110) -> None:
    """Write a matplotlib figure as PNG through :func:`atomic_path`, then close it."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    agg_pyplot().close(figure)


def user_cache_dir(kind: str) -> Path:
    """The directory of the ``kind`` cache that runs and workflow copies share:
    ``$ECGCOHORT_CACHE/<kind>``, by default ``~/.cache/ecgcohort/<kind>`` (``$XDG_CACHE_HOME``
    for ``~/.cache``), beside the environment's interpreter and packages (tools/env-common.sh)."""
    root = os.environ.get("ECGCOHORT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "ecgcohort"
    return Path(root).expanduser() / kind


def sha256_of(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_file_digests(directory: str | Path, out: str | Path) -> dict[str, list]:
    """Write ``out`` (JSON): for every file under ``directory``, its path relative to it (POSIX)
    -> [SHA-256 hex, bytes, inode, modification time in ns]. Computed where the files are
    written, so that a release hard-linking them (the same inode, size and time) lists their
    checksums without reading their bytes again."""
    directory = Path(directory)
    digests = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        status = path.stat()
        digests[path.relative_to(directory).as_posix()] = [sha256_of(path), status.st_size, status.st_ino,
                                                           status.st_mtime_ns]
    with atomic_path(out) as temporary:
        temporary.write_text(json.dumps({"directory": directory.name, "files": digests}, separators=(",", ":")))
    return digests


def read_file_digests(path: str | Path) -> dict[str, list]:
    """What :func:`write_file_digests` wrote: relative path -> [SHA-256 hex, bytes, inode, time in ns]."""
    try:
        return json.loads(Path(path).read_text())["files"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a file of checksums written by write_file_digests ({error!r})") from error


def code_and_library_versions(sources: Sequence[str | Path], libraries: Sequence[str]) -> bytes:
    """What a cached result is computed from besides its arguments, as bytes to hash: the source
    files ``sources`` and the installed versions of the distributions ``libraries`` ("absent"
    where one is not installed). A cache keyed by it is never read by other code or libraries."""
    import importlib.metadata

    parts = [Path(source).read_bytes() for source in sources]
    for library in libraries:
        try:
            version = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        parts.append(f"{library}=={version}".encode())
    return b"".join(parts)


def npz_members(path: str | Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays ``names`` of an ``.npz`` file: a stored (uncompressed) member as a read-only
    memory map - indexing it reads only the rows it selects, where :func:`numpy.load` reads a
    member whole (a 1.2 mm patient's ∇Z per cell is 100 MB, of which training samples a few
    thousand cells) - a compressed member loaded. KeyError names a missing member."""
    import zipfile

    import numpy as np
    from numpy.lib import format as npy

    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as stream:
        members = {info.filename: info for info in archive.infolist()}
        for name in names:
            info = members.get(f"{name}.npy")
            if info is None:
                raise KeyError(f"{path} has no array '{name}'")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    arrays[name] = npy.read_array(member, allow_pickle=False)
                continue
            # the local header: 30 bytes, then the name and an extra field of its own length
            stream.seek(info.header_offset + 26)
            name_length, extra_length = int.from_bytes(stream.read(2), "little"), int.from_bytes(stream.read(2), "little")
            stream.seek(info.header_offset + 30 + name_length + extra_length)
            version = npy.read_magic(stream)
            shape, fortran, dtype = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(stream)
            if dtype.hasobject:
                raise ValueError(f"{path}: array '{name}' holds Python objects")
            if not shape or 0 in shape:  # a scalar or an empty array: nothing to map
                stream.seek(info.header_offset + 30 + name_length + extra_length)
                arrays[name] = npy.read_array(stream, allow_pickle=False)
                continue
            arrays[name] = np.memmap(path, dtype=dtype, mode="r", offset=stream.tell(), shape=shape,
                                     order="F" if fortran else "C")
    return arrays


def vtk_array(values: np.ndarray, name: str | None = None):
    """A VTK data array holding a copy of ``values`` (named ``name`` if given). VTK's own
    classes, not pyvista's: pyvista costs about 0.4 s to import in a job that draws nothing."""
    from vtkmodules.util.numpy_support import numpy_to_vtk

    array = numpy_to_vtk(np.ascontiguousarray(values), deep=True)
    if name is not None:
        array.SetName(name)
    return array


def vtk_cells(cells: np.ndarray):
    """A vtkCellArray of ``cells`` (k, c): every cell ``c`` point indices, as pyvista builds it."""
    from vtkmodules.vtkCommonDataModel import vtkCellArray

    cells = np.asarray(cells, dtype=np.int64)
    array = vtkCellArray()
    corners = cells.shape[1]
    array.SetData(vtk_array(np.arange(0, corners * len(cells) + 1, corners, dtype=np.int64)), vtk_array(cells.ravel()))
    return array


def vtk_points(points: np.ndarray):
    """A vtkPoints of ``points`` (n, 3) in float64."""
    from vtkmodules.vtkCommonCore import vtkPoints

    vertices = vtkPoints()
    vertices.SetData(vtk_array(np.asarray(points, dtype=np.float64)))
    return vertices


def write_vtk_xml(dataset, path: str | Path, compress: bool = True) -> None:
    """Write a vtkPolyData (``.vtp``) or vtkUnstructuredGrid (``.vtu``) as binary VTK XML,
    zlib-compressed or not, atomically; raises OSError when VTK cannot."""
    from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter, vtkXMLUnstructuredGridWriter

    writer = vtkXMLPolyDataWriter() if dataset.IsA("vtkPolyData") else vtkXMLUnstructuredGridWriter()
    with atomic_path(path) as temporary:
        writer.SetFileName(str(temporary))
        writer.SetInputData(dataset)
        writer.SetDataModeToBinary()
        if compress:
            writer.SetCompressorTypeToZLib()
        else:
            writer.SetCompressorTypeToNone()
        if writer.Write() != 1:
            raise OSError(f"VTK could not write {path}")
