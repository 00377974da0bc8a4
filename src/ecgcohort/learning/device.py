"""Choosing the training device and precision."""

from __future__ import annotations

import logging

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


def resolve_precision(requested: str, device: torch.device) -> str:
    """Lightning's precision string: bf16 autocast (``bf16-mixed``) on CUDA for ``auto``/``bf16``,
    fp32 on the CPU (bf16 matmuls are slower than fp32 on most CPUs)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision '{requested}' is not one of {', '.join(PRECISIONS)}")
    if device.type == "cuda" and requested in ("auto", "bf16"):
        return "bf16-mixed"
    if requested == "bf16":
        log.warning("precision 'bf16' applies to CUDA only: training in fp32 on the CPU")
    return "32-true"


def memory_budget_bytes(device: torch.device, fraction: float = 0.5) -> int:
    """Bytes of training data allowed to stay resident on ``device``: ``fraction`` of the free
    GPU memory, or of the machine's available memory for the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * fraction)
    except OSError:
        pass
    return 4 * 2 ** 30
