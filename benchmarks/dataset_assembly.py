"""Incremental assembly of cohort.zarr against a full assembly (prints a table; not a test).

    .venv/bin/python benchmarks/dataset_assembly.py --results results --patients 28 --work /tmp/assembly

Builds a cohort of ``--patients`` patients from the per-patient files of a finished run (its
patients reused in turn under new ids, parameters.json rewritten), then times in one process:

1. a full assembly: every patient's part, then the fan-in (what a fresh run does);
2. adding one patient (``--repeats`` times, one after another): its part, then the fan-in;
3. one patient's ECG changed (``--repeats`` patients): its part again, then the fan-in.

and prints each step's time, the bytes written and the throughput, the cost of steps 2 and 3
as a multiple of one patient's share of step 1 (the issue's goal: at most 2x), and the files
per patient in the store; then the same ratio at the level of jobs: a part and the fan-in each
timed as a fresh Python process (imports included), as Snakemake runs them. Then reads the store back (every ECG; every patient's grad Z; one
patient's mesh). ``--read STORE`` reads another store the same way (e.g. one written by an
earlier version, to compare layouts), ``--release DIR`` packs the store into a release first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np


def _copy_patient(source: Path, target: Path, patient: str, split: str) -> None:
    """The inputs the dataset stage reads, hard-linked (parameters.json rewritten for the new id)."""
    for relative in ("anatomy/electrodes.csv", "leadfield/points.npz", "fibres/fibres.npz", "encoding/sdf.npz"):
        if (source / relative).is_file():  # a run without the encoding stage has no sdf.npz
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            os.link(source / relative, target / relative)
    for folder, pattern in (("leadfield", "chunk-*.npz"), ("activation", "*.npz"), ("ecg", "*.npz")):
        (target / folder).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / folder).glob(pattern)):
            os.link(path, target / folder / path.name)
    record = json.loads((source / "parameters.json").read_text())
    record |= {"patient": patient, "split": split}
    (target / "parameters.json").write_text(json.dumps(record))


def _files(root: Path, patient: str, scenarios: list[str]):
    from ecgcohort.dataset import group_patient_files

    base = root / patient
    return group_patient_files(
        [patient], scenarios, parameters=[base / "parameters.json"], electrodes=[base / "anatomy/electrodes.csv"],
        points=[base / "leadfield/points.npz"], fibres=[base / "fibres/fibres.npz"],
        leadfield_chunks=sorted((base / "leadfield").glob("chunk-*.npz"), key=lambda p: int(p.stem.split("-")[1])),
        activation=[base / f"activation/{s}.npz" for s in scenarios], ecg=[base / f"ecg/{s}.npz" for s in scenarios],
        sdf=[base / "encoding/sdf.npz"] if (base / "encoding/sdf.npz").is_file() else [])[patient]


def _bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def read_back(store: Path) -> str:
    """Times to read a store with xarray alone: every 12-lead ECG, every patient's grad Z one
    patient at a time, and one patient's mesh group (or ragged slice)."""
    import xarray as xr

    from ecgcohort.dataset import open_patient_mesh

    start = time.perf_counter()
    cohort = xr.open_zarr(store)
    opened = time.perf_counter() - start
    start = time.perf_counter()
    ecg = cohort.lead_ecg.values
    ecgs = time.perf_counter() - start
    start = time.perf_counter()
    grad_bytes = sum(cohort.grad_lead_field.isel(patient=i).values.nbytes for i in range(cohort.sizes["patient"]))
    grads = time.perf_counter() - start
    start = time.perf_counter()
    mesh = open_patient_mesh(store, str(cohort.patient.values[-1])).compute()
    meshes = time.perf_counter() - start
    return (f"open {opened:.2f} s; all ECGs ({ecg.nbytes / 1e6:.1f} MB) {ecgs:.2f} s; grad Z patient by patient "
            f"({grad_bytes / 1e6:.0f} MB) {grads:.2f} s = {grad_bytes / 1e6 / grads:.0f} MB/s; one mesh "
            f"({mesh.nbytes / 1e6:.1f} MB) {meshes:.2f} s")


def _process_seconds(code: str, *args: str) -> float:
    """Wall time of ``python -c code args`` (a fresh interpreter, as a Snakemake script job)."""
    import subprocess
    import sys

    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], env=environment, check=True, capture_output=True)
    return time.perf_counter() - start


def job_level(inputs: Path, parts_dir: Path, out: Path, patients: list[str], scenarios: list[str]) -> str:
    """Adding a patient as jobs: a part job and a fan-in job against the full assembly's share."""
    part = ("import sys, pathlib\nfrom dataset_assembly import _files\nfrom ecgcohort.dataset import write_patient_part\n"
            "p, scenarios = sys.argv[1], sys.argv[3].split(',')\n"
            "write_patient_part(p, _files(pathlib.Path(sys.argv[2]), p, scenarios), scenarios, "
            "pathlib.Path(sys.argv[4]) / f'{p}.zarr')\n")
    fan_in = ("import sys, pathlib\nfrom ecgcohort.dataset import assemble_cohort\nids = sys.argv[2].split(',')\n"
              "assemble_cohort(ids, {p: pathlib.Path(sys.argv[1]) / f'{p}.zarr' for p in ids}, {}, "
              "pathlib.Path(sys.argv[3]) / 'cohort.zarr', pathlib.Path(sys.argv[3]) / 'README.md')\n")
    scratch = out.parent / "job-parts"
    shutil.rmtree(scratch, ignore_errors=True)
    parts = [_process_seconds(part, p, str(inputs), ",".join(scenarios), str(scratch)) for p in patients[:3]]
    fans = [_process_seconds(fan_in, str(parts_dir), ",".join(patients), str(out.parent / "job-store"))
            for _ in range(3)]
    one_part, one_fan_in = float(np.median(parts)), float(np.median(fans))
    share = (len(patients) * one_part + one_fan_in) / len(patients)
    return (f"as jobs (fresh processes, medians of 3): part {one_part:.2f} s, fan-in {one_fan_in:.2f} s; adding one "
            f"patient {one_part + one_fan_in:.2f} s = {(one_part + one_fan_in) / share:.2f} x the share {share:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"), help="a finished run's results/")
    parser.add_argument("--patients", type=int, default=28, help="patients of the cohort assembled")
    parser.add_argument("--work", type=Path, help="scratch folder (emptied)")
    parser.add_argument("--read", type=Path, help="only read this store back (no assembly)")
    parser.add_argument("--release", action="store_true", help="also pack the store as a release's and read it")
    parser.add_argument("--repeats", type=int, default=3, help="patients added (and changed) one after another")
    args = parser.parse_args()
    if args.read:
        print(f"{args.read}: {read_back(args.read)}")
        return
    if args.work is None:
        parser.error("--work is required unless --read is given")

    from ecgcohort.dataset import assemble_cohort, write_patient_part

    sources = sorted(p for p in (args.results / "patients").iterdir() if (p / "parameters.json").is_file()
                     and (p / "ecg").is_dir())
    scenarios = sorted(p.stem for p in (sources[0] / "ecg").glob("*.npz"))
    shutil.rmtree(args.work, ignore_errors=True)
    inputs, parts_dir, out = args.work / "patients", args.work / "parts", args.work / "dataset"
    ids = [f"train-{k:04d}" for k in range(args.patients + args.repeats)]
    for k, patient in enumerate(ids):
        _copy_patient(sources[k % len(sources)], inputs / patient, patient, "train")
    cohort, added = ids[:args.patients], ids[args.patients:]
    parts = {p: parts_dir / f"{p}.zarr" for p in ids}
    config: dict = {}

    def part(patient: str) -> float:
        start = time.perf_counter()
        write_patient_part(patient, _files(inputs, patient, scenarios), scenarios, parts[patient])
        return time.perf_counter() - start

    def fan_in(patients: list[str]) -> float:
        start = time.perf_counter()
        assemble_cohort(patients, {p: parts[p] for p in patients}, config, out / "cohort.zarr", out / "README.md")
        return time.perf_counter() - start

    part(cohort[0]), shutil.rmtree(parts[cohort[0]])  # imports and caches warm, as in a running job
    part_times = [part(p) for p in cohort]
    full_fan_in = fan_in(cohort)
    full = sum(part_times) + full_fan_in
    store_bytes = _bytes(out / "cohort.zarr")
    share = full / len(cohort)
    adds = []  # (part, fan-in) of each patient added, one after another
    for k, patient in enumerate(added):
        adds.append((part(patient), fan_in(ids[:args.patients + k + 1])))
    changes = []
    for changed in cohort[1:1 + args.repeats]:
        ecg_path = inputs / changed / "ecg" / f"{scenarios[0]}.npz"
        with np.load(ecg_path) as data:
            arrays = {k: data[k] for k in data.files}
        ecg_path.unlink()  # a hard link: write a new file, not through the link
        np.savez(ecg_path, **{k: (v * 1.01 if k.endswith("_v") else v) for k, v in arrays.items()})
        changes.append((part(changed), fan_in(ids)))

    def row(label: str, steps: list[tuple[float, float]]) -> str:
        totals = [a + b for a, b in steps]
        median = float(np.median(totals))
        return (f"| {label} (median of {len(steps)}; range) | {median:.2f} ({min(totals):.2f}-{max(totals):.2f}) | "
                f"{np.median([b for _, b in steps]):.2f} | {median / share:.2f} ({min(totals) / share:.2f}-"
                f"{max(totals) / share:.2f}) |")

    print(f"cohort of {len(cohort)} patients ({len(sources)} real patients reused), {len(scenarios)} scenarios, "
          f"store {store_bytes / 1e6:.1f} MB")
    print("| step | time (s) | of which fan-in (s) | x one patient's share of the full assembly |")
    print("|---|---|---|---|")
    print(f"| full assembly ({len(cohort)} parts + fan-in) | {full:.2f} | {full_fan_in:.2f} | {full / share:.1f} |")
    print(f"| one part (median) | {np.median(part_times):.2f} | | {np.median(part_times) / share:.2f} |")
    print(row("add one patient", adds))
    print(row("change one patient's ECG", changes))
    files = sum(1 for f in (out / "cohort.zarr").rglob("*") if f.is_file())
    print(f"throughput of the full assembly: {store_bytes / 1e6 / full:.1f} MB/s; files in the store: {files} "
          f"({files / len(ids):.1f} per patient)")
    print(f"read back: {read_back(out / 'cohort.zarr')}")
    print(job_level(inputs, parts_dir, out, ids, scenarios))
    if args.release:
        from ecgcohort.release import pack_store

        start = time.perf_counter()
        layout = pack_store(out / "cohort.zarr", args.work / "release.zarr", threads=os.cpu_count() or 1)
        packed = time.perf_counter() - start
        print(f"packed as a release's store: {packed:.2f} s ({layout['bytes'] / 1e6 / packed:.1f} MB/s), "
              f"{layout['files']} files ({layout['files'] / len(ids):.1f} per patient), "
              f"{layout['patients_per_shard']} patients per shard")
        print(f"read back: {read_back(args.work / 'release.zarr')}")


if __name__ == "__main__":
    main()
