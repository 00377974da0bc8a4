"""Small I/O helpers shared by every stage."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


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


def user_cache_dir(kind: str) -> Path:
    """The directory of the ``kind`` cache that runs and workflow copies share:
    ``$ECGCOHORT_CACHE/<kind>``, by default ``~/.cache/ecgcohort/<kind>`` (``$XDG_CACHE_HOME``
    for ``~/.cache``), beside the environment's interpreter and packages (tools/env-common.sh)."""
    root = os.environ.get("ECGCOHORT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "ecgcohort"
    return Path(root).expanduser() / kind
