"""Choosing the training device and precision."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "32", "bf16")


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto``: CUDA when a device is visible, else the CPU. ``cuda`` without a device falls
    back to the CPU with a warning, so a config written for a GPU node still runs anywhere."""
    if requested not in DEVICES:
        raise ValueError(f"device '{requested}' is not one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        log.warning("device 'cuda' was asked for but no CUDA device is visible: training on the CPU")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX, as oneDNN reports
    it): there bf16 autocast trains the surrogate's MLP 3.5x faster than fp32 (AMD EPYC, Zen 5,
    one thread), elsewhere bf16 is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """Lightning's precision string: bf16 autocast (``bf16-mixed``) on CUDA for ``auto``/``bf16``;
    on the CPU fp32 for ``auto`` (recorded CPU runs stay bit-reproducible) and bf16 autocast for
    ``bf16`` where the CPU multiplies bf16 natively (:func:`cpu_has_native_bf16`), else fp32
    with a warning."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision '{requested}' is not one of {', '.join(PRECISIONS)}")
    if device.type == "cuda" and requested in ("auto", "bf16"):
        return "bf16-mixed"
    if requested == "bf16":
        if cpu_has_native_bf16():
            return "bf16-mixed"
        log.warning("precision 'bf16': this CPU has no native bf16 matrix products (AVX512-BF16 or AMX), "
                    "where emulated bf16 is slower than fp32: training in fp32")
    return "32-true"


def memory_budget_bytes(device: torch.device, fraction: float = 0.5, job_mb: float | None = None) -> int:
    """Bytes of training data allowed to stay resident on ``device``: ``fraction`` of the free
    GPU memory, or for the CPU of the least of the machine's available memory, what the
    process's control group may still allocate (a SLURM job is confined to the memory it asked
    for: the node's free memory is not the job's) and ``job_mb``, the memory the job declared
    (its rule's ``mem_mb``: Snakemake runs jobs side by side by it)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    available = 4 * 2 ** 30
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    limits = [available, cgroup_memory_left(), None if job_mb is None else float(job_mb) * 2 ** 20]
    return int(min(limit for limit in limits if limit is not None) * fraction)


#: A control group's memory limit at or above this is no limit (cgroup v1 writes 2**63 rounded down to pages).
_UNLIMITED = 2 ** 60


def cgroup_memory_left(root: str | Path = "/sys/fs/cgroup", membership: str | Path = "/proc/self/cgroup") -> int | None:
    """Bytes the process's control group may still allocate - its limit less its usage (cgroup
    v2 ``memory.max``/``memory.current``, v1 ``memory.limit_in_bytes``/``memory.usage_in_bytes``)
    - or None where no limit applies or none can be read."""
    root = Path(root)
    try:
        lines = Path(membership).read_text().splitlines()
    except OSError:
        return None
    folders = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":  # v2: one hierarchy
            folders += [(root / relative, "memory.max", "memory.current"), (root, "memory.max", "memory.current")]
        elif "memory" in controllers.split(","):
            folders += [(root / "memory" / relative, "memory.limit_in_bytes", "memory.usage_in_bytes"),
                        (root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes")]
    for folder, limit_name, usage_name in folders:
        try:
            limit_text = (folder / limit_name).read_text().strip()
            usage = int((folder / usage_name).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or int(limit_text) >= _UNLIMITED:
            return None
        return max(0, int(limit_text) - usage)
    return None
