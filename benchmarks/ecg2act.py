"""Benchmark of the ECG → activation stage (prints figures; not a test).

    .venv/bin/python benchmarks/ecg2act.py --results results --patient train-0000 --count 1000
    .venv/bin/python benchmarks/ecg2act.py --results results --parallel-banks 2 --count 150
    python benchmarks/ecg2act.py --train-only --samples 2048 --device cuda     # a GPU machine
    .venv/bin/python benchmarks/ecg2act.py --results results --one-heart one-heart --count 10000 \
        --network-epochs 40 8

Measures:

* bank generation on one patient of a finished run (``--count`` samples): samples/s of the
  simulation and of the whole job (sites, figure, Zarr), the store's size;
* ``--parallel-banks JOBS``: JOBS bank jobs at once, their BLAS threads uncapped and capped at 1;
* training throughput of Networks I and II (samples/s, ``--epochs`` over ``--samples``
  synthetic ECGs, batch 32) on the CPU threads torch has, or on CUDA;
* inference time per ECG (batch 1 and batch 64);
* ``--one-heart OUT``: a random split on one heart, as paper 3 scored its networks (it simulated
  several geometries) — a bank of ``--count`` samples on one patient
  (kept in OUT, reused when there), Networks I and II trained on it for ``--network-epochs``
  with the paper's random 5 % split, and scored on that split and on the run's test patients'
  banks (hearts the networks never saw); the metrics table as the ``evaluate_ecg2act`` rule
  writes it.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ecgcohort.ecg.leads import LEAD_NAMES

#: the repolarisation the banks are simulated with: the config schema's defaults
ACTION_POTENTIAL = {"cycle_length_ms": 1000.0, "apd_lv_to_rv": 0.0, "electrotonic_length_mm": {"fibre": 4.0, "cross": 2.0}}


def timed_bank(results: Path, patient: str, count: int, threads: int | None = None) -> tuple[float, float, int]:
    """(simulation s, whole job s, store bytes) of one bank job on a patient of a finished run."""
    import xarray as xr

    from ecgcohort.ecg2act.jobs import simulation_bank_job

    root = results / "patients" / patient
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        start = time.perf_counter()
        simulation_bank_job(patient=patient, split=patient.split("-")[0], fibres_npz=root / "fibres/fibres.npz",
                            junctions_npz=root / "purkinje/junctions.npz",
                            chunk_paths=sorted(glob.glob(str(root / "leadfield/chunk-*.npz"))), bank={"count": count},
                            seed=0, action_potential=ACTION_POTENTIAL, template_cache_dir=results / "cache/action_potential",
                            out_zarr=out / "bank.zarr", out_sites=out / "sites.npz",
                            threads=threads)
        job = time.perf_counter() - start
        simulation = float(xr.open_zarr(out / "bank.zarr").attrs["seconds"])
        size = sum(f.stat().st_size for f in (out / "bank.zarr").rglob("*") if f.is_file())
    return simulation, job, size


def bank_figures(results: Path, patient: str, count: int) -> None:
    simulation, job, size = timed_bank(results, patient, count)
    nodes = np.load(results / "patients" / patient / "fibres/fibres.npz")["points_mm"].shape[0]
    print(f"| bank, {patient} ({nodes} myocardial nodes) | {count} samples | simulation {simulation:.1f} s "
          f"({count / simulation:.1f} samples/s) | job {job:.1f} s | store {size / 1e6:.1f} MB "
          f"({size / count / 1e3:.0f} kB per sample) | 10,000 samples: {10000 / (count / simulation) / 60:.1f} min |")


def parallel_bank_figures(results: Path, count: int, jobs: int) -> None:
    """``jobs`` bank jobs at once (as Snakemake runs them on ``jobs`` cores), their BLAS threads
    left alone and capped at 1 (the rule's ``threads: 1``)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    patients = sorted(p.name for p in (results / "patients").iterdir())[:jobs]
    for threads in (None, 1):
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            timings = list(pool.map(timed_bank, [results] * jobs, patients, [count] * jobs, [threads] * jobs))
        rates = [count / simulation for simulation, _, _ in timings]
        print(f"| {jobs} bank jobs at once, BLAS threads {threads or 'uncapped'} | "
              + ", ".join(f"{rate:.1f}" for rate in rates) + f" samples/s each | {sum(rates):.1f} in all |")


def training_figures(samples: int, epochs: int, device: str) -> None:
    from ecgcohort.ecg2act.networks import Ecg2ActNetwork, NetworkSpec, count_parameters, predict
    from ecgcohort.learning import TensorTable, TrainingSpec, fit

    rng = np.random.default_rng(0)
    ecg = rng.standard_normal((samples, 12, 500)).astype(np.float32)
    for network, target in (("I", rng.uniform(0, 150, (samples, 75))), ("II", rng.uniform(0, 1, (samples, 75, 500)))):
        model = Ecg2ActNetwork(NetworkSpec(network))
        table = TensorTable({"ecg": torch.from_numpy(ecg), "target": torch.from_numpy(target.astype(np.float32))})
        spec = TrainingSpec(epochs=epochs, batch_size=32, learning_rate=1e-3, device=device, precision="auto",
                            checkpoint_every=10 ** 6)
        with tempfile.TemporaryDirectory() as workdir:
            result = fit(model, table, spec, workdir, name=f"Network {network}")
        model = model.to(result.device)
        timings = {}
        for batch in (1, 64):
            predict(model, ecg[:batch])
            start = time.perf_counter()
            repeats = 5
            for _ in range(repeats):
                predict(model, ecg[:batch])
            timings[batch] = (time.perf_counter() - start) / repeats / batch * 1e3
        print(f"| Network {network} ({count_parameters(model):,} parameters) | {result.device}, {result.precision}, "
              f"{torch.get_num_threads()} threads | training {result.samples_per_second:.0f} samples/s | "
              f"inference {timings[1]:.2f} ms per ECG alone, {timings[64]:.3f} ms per ECG in batches of 64 |")


def one_heart_figures(results: Path, patient: str, count: int, epochs: dict[str, int], out: Path) -> None:
    from ecgcohort.ecg2act.jobs import simulation_bank_job
    from ecgcohort.ecg2act.training import evaluate_ecg2act_job, train_ecg2act_job

    root, bank = results / "patients" / patient, out / f"bank/{patient}.zarr"
    held_out = sorted((results / "ecg2act/bank").glob("test-*.zarr"))
    if not held_out:
        raise SystemExit(f"no test patients' banks in {results / 'ecg2act/bank'}: run the ecg2act stage first")
    if not bank.exists():
        start = time.perf_counter()
        simulation_bank_job(patient=patient, split="train", fibres_npz=root / "fibres/fibres.npz",
                            junctions_npz=root / "purkinje/junctions.npz",
                            chunk_paths=sorted(glob.glob(str(root / "leadfield/chunk-*.npz"))), bank={"count": count},
                            seed=0, action_potential=ACTION_POTENTIAL, template_cache_dir=results / "cache/action_potential",
                            out_zarr=bank, out_sites=out / "sites.npz")
        print(f"bank of {count} samples on {patient}: {time.perf_counter() - start:.0f} s", flush=True)
    for network, network_epochs in epochs.items():
        start = time.perf_counter()
        section = {"seed": 0, "validation_fraction": 0.05, "scored_fraction": 0.05, "min_scored_samples": 1,
                   "networks": {network: {"architecture": {}, "training": {
            "epochs": network_epochs, "batch_size": 32, "learning_rate": 1e-3, "device": "auto", "precision": "auto",
            "checkpoint_every": 5}}}}
        train_ecg2act_job(network=network, bank_paths=[bank], section=section, workdir=out / f"checkpoints-{network}",
                          out_model=out / f"network-{network}.pt", out_losses=out / f"losses-{network}.csv",
                          out_plot=out / f"losses-{network}.png")
        print(f"Network {network}: {network_epochs} epochs in {time.perf_counter() - start:.0f} s", flush=True)
    evaluate_ecg2act_job(model_paths={n: out / f"network-{n}.pt" for n in epochs}, train_bank_paths=[bank],
                         test_bank_paths=held_out, out_metrics=out / "metrics.csv", out_summary=out / "summary.md",
                         out_boxes=out / "site_errors.png", out_map=out / "activation_map.png",
                         out_overlays=out / "vm_overlays.png")
    print((out / "summary.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--patient", default="train-0000")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--train-only", action="store_true", help="only the training and inference figures")
    parser.add_argument("--parallel-banks", type=int, metavar="JOBS",
                        help="only JOBS bank jobs at once, BLAS threads uncapped and capped at 1")
    parser.add_argument("--one-heart", type=Path, metavar="OUT", help="only the one-heart bank, training and metrics")
    parser.add_argument("--network-epochs", type=int, nargs=2, default=(40, 8), metavar=("I", "II"),
                        help="--one-heart: epochs of Networks I and II")
    args = parser.parse_args()
    if args.one_heart:
        one_heart_figures(args.results, args.patient, args.count, dict(zip(("I", "II"), args.network_epochs)),
                          args.one_heart)
        return
    if args.parallel_banks:
        parallel_bank_figures(args.results, args.count, args.parallel_banks)
        return
    if not args.train_only:
        bank_figures(args.results, args.patient, args.count)
    training_figures(args.samples, args.epochs, args.device)


if __name__ == "__main__":
    main()
