"""Provenance of a generated cohort: the code revision, the software and hardware that made it,
and the licences of upstream tools and assets (stated in the dataset card)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


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
            "platform": platform.platform(), "numeric_kernels": numeric_kernels()}


def numeric_kernels() -> dict[str, list[str]]:
    """The code paths this process's numerics run on, which the processor chooses: each loaded
    BLAS's kernel set (threadpoolctl's ``architecture``, e.g. OpenBLAS's ``SkylakeX`` or ``Zen``)
    and the NumPy SIMD targets in use. Another choice sums in another order and changes the last
    bits of the anatomy, and gmsh then meshes it differently (docs/methods/meshing.md)."""
    from threadpoolctl import threadpool_info

    import scipy.linalg  # noqa: F401  # loads scipy's own OpenBLAS, which the anatomy's solves use

    blas = sorted({f"{pool['internal_api']} {pool.get('architecture') or 'unknown'}"
                   for pool in threadpool_info() if pool.get("user_api") == "blas"})
    try:  # NumPy's own record of its dispatch targets and which this processor enables
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        return {"blas": blas, "numpy_simd": ["unknown"]}
    return {"blas": blas, "numpy_simd": [target for target in __cpu_dispatch__ if __cpu_features__.get(target)]}
