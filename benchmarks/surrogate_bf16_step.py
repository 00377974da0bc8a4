"""The surrogate's training step in fp32 and in bf16 autocast on this CPU, one thread.

Prints rows/s of one step (forward_leads, loss, backward, Adam) at a block of ELECTRODES x
POINTS rows for each precision and their ratio, measured in one run. bf16 needs a CPU with
native bf16 products (``ecgcohort.learning.device.cpu_has_native_bf16``).

    python benchmarks/surrogate_bf16_step.py [--electrodes 109] [--points 150] [--steps 30]
"""

from __future__ import annotations

import argparse
import time

import mpi4py.MPI  # noqa: F401  (dolfinx-linked packages need MPI first)
import torch

from ecgcohort.learning.device import cpu_has_native_bf16
from ecgcohort.surrogate.network import SurrogateModel, SurrogateSpec


def rows_per_second(bf16: bool, electrodes: int, points: int, steps: int) -> float:
    """Training rows per second of the paper-width surrogate (hidden 256, code 256) on one thread."""
    torch.manual_seed(0)
    model = SurrogateModel(SurrogateSpec(code_dim=256, hidden=256, target="full", weighting="uniform"))
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    batch = {"x": torch.rand(points, 3), "electrodes": torch.rand(electrodes, 3), "code": torch.randn(256),
             "target": torch.randn(electrodes * points, 3)}

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model.training_loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return electrodes * points * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--electrodes", type=int, default=109)
    parser.add_argument("--points", type=int, default=150)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    if not cpu_has_native_bf16():
        raise SystemExit("this CPU has no native bf16 products: bf16 training falls back to fp32 here")
    torch.set_num_threads(1)
    fp32 = rows_per_second(False, args.electrodes, args.points, args.steps)
    bf16 = rows_per_second(True, args.electrodes, args.points, args.steps)
    print(f"fp32 {fp32 / 1e3:.0f}k rows/s, bf16 {bf16 / 1e3:.0f}k rows/s, ratio {bf16 / fp32:.2f}")


if __name__ == "__main__":
    main()
