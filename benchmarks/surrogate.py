"""Benchmark of the lead-field surrogate (prints figures; not a test).

    .venv/bin/python benchmarks/surrogate.py            # this machine's CPU (+ the GPU if one is visible)
    .venv/bin/python benchmarks/surrogate.py --quick    # fewer rows and repeats

Measures, for the paper-size NN_LF (5 x 256, Fourier features 32, code 16, electrode 3):

* training samples/s through the backbone (resident rows, Adam, eq. 5 loss) on the CPU, and on
  a CUDA device when visible in fp32 and bf16 autocast, at batch 16,384 and at the paper's
  batch (10 lead fields x 65,536 points), in flat rows and in patient blocks (the workflow's
  layout: one patient's points x all 109 electrodes per step, the early layers shared);
* inference of one lead at 65,536 points: a batch of one lead on the CPU (the paper's 250 ms),
  all 25 leads of a default patient in one call (per lead), and on the GPU; the FLOPs of the
  architecture per lead and the GFLOP/s achieved, against a dense matmul of the same width on
  the same device (the FLOP bound);
* the ECG path of a paper-size myocardium (150,000 tetrahedra, 9 and 109 electrodes): ∇Z at
  every cell from the surrogate plus the lead-matrix assembly, against the FEM per-lead time
  measured by benchmarks/leadfield.py (given with --fem-seconds-per-lead);
* the paper-scale training time extrapolated from measured throughput: 800 epochs x 80 training
  patients x 109 electrodes x 65,536 points = 4.6e11 samples.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from ecgcohort.encoding.deepsdf import NormalisationBox
from ecgcohort.learning import TensorTable, TrainingSpec, fit
from ecgcohort.leadfield.matrix import lead_matrix
from ecgcohort.surrogate.network import LeadFieldNetwork, SurrogateModel, SurrogateSpec, predict_gradient

POINTS_PER_LEAD = 65_536
PAPER_BATCH = 10 * POINTS_PER_LEAD
PAPER_SAMPLES = 800 * 80 * 109 * POINTS_PER_LEAD
BOX = NormalisationBox((0.0, 0.0, 0.0), 300.0)


def synthetic_rows(n: int, code_dim: int, seed: int = 0) -> TensorTable:
    generator = torch.Generator().manual_seed(seed)
    reference = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=1) * 2
    return TensorTable({"x": torch.rand(n, 3, generator=generator) * 2 - 1,
                        "electrode": torch.rand(n, 3, generator=generator),
                        "code": torch.randn(n, code_dim, generator=generator),
                        "target": torch.randn(n, 3, generator=generator) * 0.3, "reference": reference})


def training_rate(spec: SurrogateSpec, rows: int, batch: int, device: str, precision: str) -> float:
    """Samples/s of the backbone over 2 epochs after a warm-up epoch (the backbone's own figure)."""
    training = TrainingSpec(epochs=3, batch_size=batch, lr_milestones=(0.5,), device=device, precision=precision,
                            checkpoint_every=100, log_every_seconds=1e9)
    with tempfile.TemporaryDirectory() as workdir:
        result = fit(SurrogateModel(spec), synthetic_rows(rows, spec.code_dim), training, workdir, name="bench")
    return float(np.mean([row["samples_per_second"] for row in result.history[1:]]))


def block_training_rate(spec: SurrogateSpec, patients: int, electrodes: int, points: int, batch: int, device: str,
                        precision: str) -> float:
    """Samples/s of the backbone on patient blocks (surrogate.blocks): each step one patient's
    batch // electrodes points × all its electrodes, the layers before the injection shared."""
    from ecgcohort.surrogate.blocks import PatientBlockTable

    generator = torch.Generator().manual_seed(0)
    blocks = [{"x": torch.rand(points, 3, generator=generator) * 2 - 1,
               "electrode": torch.rand(electrodes, 3, generator=generator),
               "code": torch.randn(spec.code_dim, generator=generator),
               "target": torch.randn(electrodes, points, 3, generator=generator) * 0.3,
               "reference": torch.nn.functional.normalize(torch.randn(electrodes, points, 3, generator=generator),
                                                          dim=-1) * 2} for _ in range(patients)]
    training = TrainingSpec(epochs=3, batch_size=batch, lr_milestones=(0.5,), device=device, precision=precision,
                            checkpoint_every=100, log_every_seconds=1e9)
    with tempfile.TemporaryDirectory() as workdir:
        result = fit(SurrogateModel(spec), PatientBlockTable(blocks), training, workdir, name="bench")
    return float(np.mean([row["samples_per_second"] for row in result.history[1:]]))


def flops_per_sample(network: LeadFieldNetwork) -> float:
    """2 x multiply-adds of every linear layer plus the Fourier projection (activations ignored)."""
    total = 0
    for module in network.modules():
        if isinstance(module, torch.nn.Linear):
            total += module.in_features * module.out_features
    total += 3 * network.fourier.B.shape[0]
    return 2.0 * total


def matmul_gflops(device: torch.device, width: int, rows: int, dtype=torch.float32) -> float:
    """GFLOP/s of a (rows x width) @ (width x width) product on ``device``: the FLOP bound of an MLP of that width."""
    a = torch.randn(rows, width, device=device, dtype=dtype)
    b = torch.randn(width, width, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    best = np.inf
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * rows * width * width / best / 1e9


def best_of(call, repeats: int, device: torch.device) -> float:
    best = np.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return float(best)


def inference(network: LeadFieldNetwork, device: torch.device, leads: int, repeats: int,
              autocast: bool = False) -> float:
    """Seconds per lead at 65,536 points, ``leads`` leads in one call."""
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.15, 0.15, size=(POINTS_PER_LEAD, 3))
    electrodes = rng.uniform(-0.15, 0.15, size=(leads, 3)) + np.array([0.0, 0.0, 0.5])
    normalised = rng.uniform(0.0, 1.0, size=(leads, 3))
    code = np.zeros(network.spec.code_dim)
    network = network.to(device)

    def run():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            predict_gradient(network, points, electrodes, normalised, code, BOX, batch_size=leads * POINTS_PER_LEAD)

    run()
    return best_of(run, repeats, device) / leads


def resident_inference(network: LeadFieldNetwork, device: torch.device, repeats: int, autocast: bool) -> float:
    """Seconds for one lead at 65,536 points with inputs and output on the device
    (predict_gradient_tensor: no host transfers, no checks)."""
    from ecgcohort.surrogate.network import predict_gradient_tensor

    generator = torch.Generator().manual_seed(0)
    points = ((torch.rand(POINTS_PER_LEAD, 3, generator=generator) - 0.5) * 0.3).to(device)
    electrode = torch.tensor([[0.0, 0.0, 0.5]], device=device)
    normalised = torch.tensor([[0.2, 0.8, 0.4]], device=device)
    code = torch.zeros(network.spec.code_dim, device=device)
    network = network.to(device)

    def run():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            predict_gradient_tensor(network, points, electrode, normalised, code, BOX)

    run()
    return best_of(run, repeats, device)


def paper_size_myocardium(cells_target: int = 150_000) -> tuple[np.ndarray, np.ndarray]:
    """A structured tetrahedral block (6 tetrahedra per cube) of about ``cells_target`` cells, m."""
    n = int(round((cells_target / 6) ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.linspace(-0.04, 0.04, n + 1)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    index = np.arange((n + 1) ** 3).reshape(n + 1, n + 1, n + 1)
    corners = np.stack([index[:-1, :-1, :-1], index[1:, :-1, :-1], index[:-1, 1:, :-1], index[1:, 1:, :-1],
                        index[:-1, :-1, 1:], index[1:, :-1, 1:], index[:-1, 1:, 1:], index[1:, 1:, 1:]],
                       axis=-1).reshape(-1, 8)
    pattern = np.array([[0, 1, 3, 7], [0, 1, 5, 7], [0, 2, 3, 7], [0, 2, 6, 7], [0, 4, 5, 7], [0, 4, 6, 7]])
    return grid, corners[:, pattern].reshape(-1, 4)


def ecg_path(network: LeadFieldNetwork, device: torch.device, electrodes: int, repeats: int) -> tuple[float, int]:
    """Seconds for ∇Z at every cell of a paper-size myocardium plus the lead matrix, and the cell count."""
    nodes, tetrahedra = paper_size_myocardium()
    rng = np.random.default_rng(1)
    e = rng.uniform(-0.15, 0.15, size=(electrodes, 3)) + np.array([0.0, 0.0, 0.5])
    normalised = rng.uniform(0.0, 1.0, size=(electrodes, 3))
    code = np.zeros(network.spec.code_dim)
    intracellular = np.broadcast_to(np.eye(3) * 0.1, (len(tetrahedra), 3, 3))
    network = network.to(device)

    def run():
        centroids = nodes[tetrahedra].mean(axis=1)
        gradient = predict_gradient(network, centroids, e, normalised, code, BOX, batch_size=1 << 20)
        lead_matrix(nodes, tetrahedra, intracellular, gradient)

    run()
    return best_of(run, repeats, device), len(tetrahedra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats")
    parser.add_argument("--inference-only", action="store_true", help="only the inference section")
    parser.add_argument("--fem-seconds-per-lead", type=float, default=None,
                        help="FEM lead-field seconds per lead at paper size (benchmarks/leadfield.py)")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5
    spec = SurrogateSpec(code_dim=16)
    network = LeadFieldNetwork(spec).eval()
    parameters = sum(p.numel() for p in network.parameters())
    flops = flops_per_sample(network)
    print(f"NN_LF: {parameters:,} parameters, {flops / 1e6:.3f} MFLOP per sample, "
          f"{flops * POINTS_PER_LEAD / 1e9:.1f} GFLOP per lead at {POINTS_PER_LEAD:,} points; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = 200_000 if args.quick else 800_000
    rates = {}
    if not args.inference_only:
        training_section(spec, devices, rows, args.quick, flops, rates)
    inference_section(network, spec, devices, repeats, flops)
    if args.inference_only:
        return
    ecg_section(network, devices, repeats, args.fem_seconds_per_lead)
    print(f"\npaper-scale training: {PAPER_SAMPLES:.2e} samples (800 epochs x 80 patients x 109 electrodes x 65,536 points)")
    for (device, precision, batch, *layout), rate in rates.items():
        print(f"  {device:4s} {precision:>4s} batch {batch:>7,} {layout[0] if layout else 'rows':6s}: "
              f"{PAPER_SAMPLES / rate / 3600:10.1f} h")


def training_section(spec, devices, rows, quick, flops, rates) -> None:
    print("\ntraining (backbone, resident rows, samples/s):")
    for device in devices:
        precisions = ["32"] if device.type == "cpu" else ["32", "bf16"]
        batches = [16_384] if device.type == "cpu" else [16_384, PAPER_BATCH]
        for precision in precisions:
            for batch in batches:
                n = rows if device.type == "cpu" else max(4 * batch, 4_000_000 if not quick else 2 * batch)
                rate = training_rate(spec, n, batch, device.type, precision)
                rates[(device.type, precision, batch)] = rate
                print(f"  {device.type:4s} {precision:>4s} batch {batch:>7,}: {rate:12,.0f} samples/s "
                      f"({rate * flops * 3 / 1e12:.2f} TFLOP/s at 3x forward FLOPs)")

    print("\ntraining on patient blocks (the workflow's layout; 109 electrodes x 65,536 points per patient):")
    for device in devices:
        for precision in (["32"] if device.type == "cpu" else ["32", "bf16"]):
            for batch in ([16_384] if device.type == "cpu" else [16_384, PAPER_BATCH]):
                patients = 1 if device.type == "cpu" or quick else 4
                points = 8_192 if device.type == "cpu" else POINTS_PER_LEAD
                rate = block_training_rate(spec, patients, 109, points, batch, device.type, precision)
                rates[(device.type, precision, batch, "blocks")] = rate
                print(f"  {device.type:4s} {precision:>4s} batch {batch:>7,}: {rate:12,.0f} samples/s")


def inference_section(network, spec, devices, repeats, flops) -> None:
    print("\ninference, seconds per lead at 65,536 points:")
    for device in devices:
        bound = matmul_gflops(device, spec.hidden, POINTS_PER_LEAD)
        for leads, label in ((1, "batch of one lead"), (25, "25 leads in one call")):
            for autocast in ([False] if device.type == "cpu" else [False, True]):
                seconds = inference(network, device, leads, repeats, autocast)
                if leads == 1 and device.type == "cuda":
                    resident = resident_inference(network, device, repeats, autocast)
                    print(f"  cuda one lead, tensors on the device{' bf16' if autocast else '     '}: "
                          f"{resident * 1e3:9.2f} ms")
                achieved = flops * POINTS_PER_LEAD / seconds / 1e9
                print(f"  {device.type:4s} {label:22s}{' bf16' if autocast else '     '}: {seconds * 1e3:9.2f} ms "
                      f"({achieved:8.1f} GFLOP/s; dense {spec.hidden}-wide fp32 matmul here {bound:8.1f} GFLOP/s, "
                      f"FLOP-bound time {flops * POINTS_PER_LEAD / bound / 1e9 * 1e3:.2f} ms, "
                      f"ratio {seconds / (flops * POINTS_PER_LEAD / bound / 1e9):.2f})")
        network = network.to("cpu")


def ecg_section(network, devices, repeats, fem_seconds_per_lead) -> None:
    print("\nECG path of a paper-size myocardium (∇Z at every cell + lead matrix):")
    for device in devices:
        for electrodes in (9, 109):
            seconds, cells = ecg_path(network, device, electrodes, max(1, repeats // 2))
            fem = (f", FEM at {fem_seconds_per_lead:.3f} s per lead: {electrodes * fem_seconds_per_lead:.2f} s"
                   if fem_seconds_per_lead else "")
            print(f"  {device.type:4s} {electrodes:3d} electrodes, {cells:,} cells: {seconds:.2f} s "
                  f"({seconds / electrodes * 1e3:.1f} ms per lead){fem}")
        network = network.to("cpu")


if __name__ == "__main__":
    main()
