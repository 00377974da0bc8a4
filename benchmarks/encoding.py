"""Benchmark of the encoding stage (prints figures; not a test).

    .venv/bin/python benchmarks/encoding.py                 # synthetic rows, this machine's CPU (+ GPU if any)
    .venv/bin/python benchmarks/encoding.py --quick         # fewer repeats

Measures, for the DeepSDF auto-decoder at the default width (128) and the paper's (256):

* training samples/s through the backbone (PyTorch Lightning, resident rows) against a plain
  PyTorch loop doing the same steps (same model, gather and Adam) — the backbone's overhead;
* the streamed path (rows read block by block as from Zarr) against the resident one;
* on a CUDA device, when one is visible: fp32 and bf16 autocast;
* MAP inference of one code (eq. 7) at the default and the paper-like settings;
* the Chamfer evaluation of one patient on a 128³ grid (decoder on the grid, winding numbers
  of the true surfaces, the interior clouds' KD-trees), with a synthetic heart and trunk;
* the paper-scale training time extrapolated from the measured throughput: 2000 epochs of
  6-shape batches with DeepSDF's 16,384 points per shape, i.e. 2000 x 80 x 16,384 = 2.6e9
  samples for the paper's 80 training shapes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ecgcohort.encoding.deepsdf import AutoDecoder, DeepSdfSpec, MapSpec, latent_prior, map_code
from ecgcohort.learning import StreamedTable, TensorTable, TrainingSpec, fit

PAPER_SAMPLES = 2000 * 80 * 16_384
POINTS_PER_PATIENT = 10_240


def rows(patients: int, device: str = "cpu") -> TensorTable:
    generator = torch.Generator().manual_seed(0)
    n = patients * POINTS_PER_PATIENT
    return TensorTable({"shape": torch.arange(patients).repeat_interleave(POINTS_PER_PATIENT),
                        "x": torch.rand(n, 3, generator=generator) * 2 - 1,
                        "sdf": torch.rand(n, 4, generator=generator) * 0.2 - 0.1}).to(device)


def plain_loop(model: AutoDecoder, table: TensorTable, batch: int, epochs: int) -> float:
    """Samples/s of a hand-written loop: the same permutation, gather, loss and Adam step; the
    first epoch (warm-up) is not counted, as for the backbone."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    rates = []
    for epoch in range(epochs + 1):
        start, samples = time.perf_counter(), 0
        for key in table.batch_keys(epoch, batch, 0):
            loss, _ = model.training_loss(table.gather(key))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            samples += len(key)
        if table.device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(samples / (time.perf_counter() - start))
    return float(np.median(rates[1:]))


def backbone(model: AutoDecoder, table, batch: int, epochs: int, device: str, precision: str = "32") -> float:
    with tempfile.TemporaryDirectory() as workdir:
        result = fit(model, table, TrainingSpec(epochs=epochs, batch_size=batch, device=device, precision=precision,
                                                checkpoint_every=10 ** 6), workdir, name="bench")
    # the first epoch includes Lightning's set-up: report the steady epochs
    steady = result.history[1:] or result.history
    return float(np.median([row["samples_per_second"] for row in steady]))


def streamed(table: TensorTable, patients: int) -> StreamedTable:
    columns = {k: v.cpu().numpy() for k, v in table.columns.items()}

    def block(index: int) -> dict[str, np.ndarray]:
        part = slice(index * POINTS_PER_PATIENT, (index + 1) * POINTS_PER_PATIENT)
        return {k: v[part].copy() for k, v in columns.items()}

    return StreamedTable(block, [POINTS_PER_PATIENT] * patients, blocks_in_memory=2)


def spec(hidden: int) -> DeepSdfSpec:
    return DeepSdfSpec(hidden=hidden, layers=5, latent_dim=16, fourier_features=32)


def training_figures(quick: bool) -> list[tuple]:
    """CPU figures: the three paths interleaved, ``repeats`` times, best of each (the 2-core
    machine's throughput wanders by 10-20 % between runs; the best is the least disturbed)."""
    patients, epochs, repeats = 6, 2 if quick else 4, 1 if quick else 3
    table = rows(patients)
    out = []
    for hidden in (128, 256):
        for batch in (8192, 16384):
            best = {"plain": 0.0, "backbone": 0.0, "streamed": 0.0}
            for _ in range(repeats):
                best["plain"] = max(best["plain"], plain_loop(AutoDecoder(spec(hidden), patients), table, batch, epochs))
                best["backbone"] = max(best["backbone"], backbone(AutoDecoder(spec(hidden), patients), table, batch,
                                                                  epochs + 1, "cpu"))
                best["streamed"] = max(best["streamed"], backbone(AutoDecoder(spec(hidden), patients),
                                                                  streamed(table, patients), batch, epochs + 1, "cpu"))
            plain, lightning, streaming = best["plain"], best["backbone"], best["streamed"]
            out.append(("cpu", hidden, batch, "fp32", plain, lightning, streaming))
            print(f"  cpu hidden {hidden} batch {batch}: plain {plain:,.0f}, backbone {lightning:,.0f} "
                  f"({lightning / plain - 1:+.1%}), streamed {streaming:,.0f} samples/s", flush=True)
    if torch.cuda.is_available():
        gpu_table = rows(patients * 8, "cuda")
        for hidden in (128, 256):
            for batch in (16384, 98304):
                for precision in ("32", "bf16"):
                    plain = plain_loop(AutoDecoder(spec(hidden), patients * 8).cuda(), gpu_table, batch, 2) \
                        if precision == "32" else float("nan")
                    fast = backbone(AutoDecoder(spec(hidden), patients * 8), gpu_table, batch, 4, "cuda", precision)
                    slow = backbone(AutoDecoder(spec(hidden), patients * 8), streamed(gpu_table, patients * 8), batch,
                                    3, "cuda", precision)
                    out.append(("cuda", hidden, batch, precision, plain, fast, slow))
                    print(f"  cuda hidden {hidden} batch {batch} {precision}: backbone {fast:,.0f}, streamed "
                          f"{slow:,.0f}, plain {plain:,.0f} samples/s", flush=True)
    return out


def map_figures() -> list[tuple]:
    out = []
    for hidden, iterations, points in ((128, 300, 4096), (256, 800, 8192)):
        model = AutoDecoder(spec(hidden), 6)
        mean, cov = latent_prior(model.codes.weight.detach().double().numpy(), 0.1)
        generator = np.random.default_rng(0)
        x = generator.uniform(-1, 1, (20_000, 3))
        s = generator.uniform(-0.1, 0.1, (20_000, 4))
        start = time.perf_counter()
        map_code(model.decoder, x, s, mean, cov, MapSpec(iterations=iterations, points_per_iteration=points))
        out.append((hidden, iterations, points, time.perf_counter() - start))
        print(f"  MAP hidden {hidden}, {iterations} iterations x {points} points: {out[-1][-1]:.1f} s", flush=True)
    return out


def chamfer_figure(resolution: int = 128) -> tuple[float, float, float]:
    """Decoder on a resolution³ grid, winding numbers of a closed surface, interior Chamfer."""
    import pyvista

    from ecgcohort.encoding.chamfer import interior_chamfer, regular_grid
    from ecgcohort.encoding.deepsdf import predict_sdf
    from ecgcohort.geometry import winding_numbers

    model = AutoDecoder(spec(256), 6)
    sphere = pyvista.Sphere(radius=0.5, theta_resolution=120, phi_resolution=120).triangulate()
    points, faces = np.asarray(sphere.points, dtype=float), np.asarray(sphere.faces).reshape(-1, 4)[:, 1:]
    grid = regular_grid(np.full(3, -1.0), np.full(3, 1.0), resolution)
    start = time.perf_counter()
    predict_sdf(model.decoder, np.zeros(16), grid)
    decode = time.perf_counter() - start
    start = time.perf_counter()
    inside = winding_numbers(points, faces, grid) > 0.5
    winding = time.perf_counter() - start
    start = time.perf_counter()
    # an untrained decoder's interior is arbitrary; a shrunk sphere stands in for a prediction
    interior_chamfer(np.linalg.norm(grid, axis=1) - 0.45, np.where(inside, -1.0, 1.0), grid)
    return decode, winding, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA: "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print("DeepSDF training throughput (samples/s; 6 patients x 10,240 rows, Adam):", flush=True)
    training = training_figures(args.quick)
    print("\n| device | hidden | batch | precision | plain loop | backbone (resident) | backbone vs plain | streamed |")
    print("|---|---|---|---|---|---|---|---|")
    for device, hidden, batch, precision, plain, fast, slow in training:
        overhead = f"{fast / plain - 1:+.1%}" if np.isfinite(plain) else "-"
        print(f"| {device} | {hidden} | {batch} | {precision} | {plain:,.0f} | {fast:,.0f} | {overhead} | {slow:,.0f} |")
    print("\nMAP inference per geometry:", flush=True)
    map_figures()
    decode, winding, chamfer = chamfer_figure()
    print(f"\nChamfer evaluation on a 128³ grid (2.1 M points): decoder (hidden 256) {decode:.1f} s, winding numbers "
          f"of a 28k-triangle surface {winding:.1f} s, interior clouds and KD-trees {chamfer:.1f} s per surface")
    print("\nPaper-scale DeepSDF training (2000 epochs x 80 shapes x 16,384 points = 2.6e9 samples):")
    for device, hidden, batch, precision, plain, fast, slow in training:
        if hidden == 256:
            hours = PAPER_SAMPLES / fast / 3600
            print(f"  {device} batch {batch} {precision}: {fast:,.0f} samples/s -> {hours:,.1f} h")


if __name__ == "__main__":
    main()
