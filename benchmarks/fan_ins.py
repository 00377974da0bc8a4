"""The fan-ins against the cohort size: time and peak memory of every stage that reads all patients
(prints a table; not a test).

    .venv/bin/python benchmarks/fan_ins.py --source results --patients 100 1000 10000 --work /tmp/fan_ins

Builds a synthetic cohort from a finished run's ``--source`` results (the real patients reused
under new ids, 90 % ``train-NNNN`` and 10 % ``test-NNNN``; each synthetic patient reuses a real
patient of its own split) and extends it from one size to the next. No array bytes are copied:
every per-patient input, dataset part and simulation bank is hard-linked from the real
patient's, and only what names the patient is written anew (``parameters.json``,
``anatomy.json``, ``realism/features.json``; a part's root ``zarr.json``, its group
``patients/<id>`` and its ``patient`` coordinate chunk; a bank's root ``zarr.json`` and its
``sample`` coordinate chunk — a linked file is unlinked before it is rewritten).

Each stage then runs in a fresh Python process (imports included, as Snakemake runs the job):
its wall clock, its peak resident memory (``os.wait4``) and its time per patient:

* ``assemble``: ``assemble_cohort`` of every part into ``cohort.zarr`` and its card;
* ``realism``: ``realism_summary_job`` of every patient's ``features.json`` and ``anatomy.json``;
* ``release``: ``build_release`` (store, Parquet table, Croissant, WFDB, card, manifest,
  verification) from that store, in the layout the workflow picks for the size
  (``release.layout: auto``: packed up to ``pack_up_to_patients``, linked above; ``--release-layout``
  forces one). A packed release repacks every array, so it runs only at the sizes whose
  estimated bytes leave ``--min-free-gb`` free on the disk; larger sizes are extrapolated from
  the same layout's figures (labelled so); every release is deleted after it is measured. A
  linked release's manifest takes the parts' checksums: each synthetic part gets its digest file
  as ``dataset_part`` writes it (the linked files' entries are the real part's, whose inode they
  share; the rewritten files hashed);
* ``pca_codes``: ``pca_codes_job`` of every ``parameters.json`` (the codes the surrogate reads);
* ``surrogate``, ``shape_model``, ``ecg2act_I``, ``ecg2act_II``: the training jobs
  (``train_surrogate_job`` (pca, pseudo_residual), ``train_shape_model_job``,
  ``train_ecg2act_job``) up to the network: reading the training patients, building the
  training table (resident or streamed, as the job decides within its rule's 6,000 MB) and the validation
  table, then one epoch of batches gathered through the DataLoader ``fit`` builds — no training
  step (``fit`` is replaced by that epoch).

Memory is in GiB (2**30 bytes). A stage is killed when its resident memory passes ``--memory-cap-gb`` or its time
``--stage-timeout`` (reported as such); at a larger size a stage is skipped (and said so) when
its previous size's figures scaled to this one would pass either. Then the ratio of the time per
patient at the largest and the smallest measured size per stage (1.0: linear), and which
stages meet the goal at 10,000 patients (10 minutes, 8 GB). ``--keep`` keeps ``--work``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
STAGES = ("assemble", "realism", "release", "pca_codes", "shape_model", "ecg2act_I", "ecg2act_II", "surrogate")
#: The goal for each fan-in at 10,000 patients.
GOAL_SECONDS, GOAL_GB, GOAL_PATIENTS = 600.0, 8.0, 10_000
#: Stages whose memory is not extrapolated (a larger cohort's table is streamed, not held): only
#: the cap kills them.
TRAINING_STAGES = ("surrogate", "shape_model", "ecg2act_I", "ecg2act_II")
#: The memory the training rules declare (mem_mb of train_surrogate, train_shape_model and
#: train_ecg2act, first attempt): a training job keeps its rows in memory within half of it.
TRAINING_JOB_MB = 6000
#: Memory figures (peaks, caps) are GiB (2**30 bytes: ``ru_maxrss`` / 2**20); the goal's 8 GB in them.
GOAL_GIB = GOAL_GB * 1e9 / 2 ** 30
#: Sections the dataset does not depend on (workflow/rules/common.smk: DOWNSTREAM_SECTIONS).
DOWNSTREAM_SECTIONS = ("encoding", "surrogate", "inverse", "ecg2act", "realism", "convergence", "release", "cluster")


# ---------------------------------------------------------------- the synthetic cohort
def patient_ids(count: int) -> list[str]:
    """``count`` ids: 90 % train, the rest (at least one) test, as benchmarks/planning.py splits."""
    test = max(1, count // 10)
    return [f"train-{k:04d}" for k in range(count - test)] + [f"test-{k:04d}" for k in range(test)]


def _split(patient: str) -> str:
    return patient.split("-", 1)[0]


class Cohort:
    """Synthetic patients under ``work/results`` in the layout of a run's results (the paths the
    rules give the fan-ins), each reusing a real patient of ``source`` of the same split."""

    def __init__(self, source: Path, work: Path):
        self.source, self.root = source, work / "results"
        real = sorted(p.name for p in (source / "patients").iterdir() if (p / "parameters.json").is_file()
                      and (source / "dataset" / "parts" / f"{p.name}.zarr").is_dir()
                      and (source / "ecg2act" / "bank" / f"{p.name}.zarr").is_dir())
        self.real = {split: [p for p in real if _split(p) == split] for split in ("train", "test")}
        if not self.real["train"] or not self.real["test"]:
            raise SystemExit(f"{source}: needs finished train and test patients (parts and banks), found {real}")
        self.scenarios = sorted(p.stem for p in (source / "patients" / real[0] / "ecg").glob("*.npz"))
        self._templates: dict[str, dict] = {}

    def real_of(self, patient: str) -> str:
        split, index = patient.split("-", 1)
        pool = self.real[split]
        return pool[int(index) % len(pool)]

    def patient_dir(self, patient: str) -> Path:
        return self.root / "patients" / patient

    def part(self, patient: str) -> Path:
        return self.root / "dataset" / "parts" / f"{patient}.zarr"

    def digests(self, patient: str) -> Path:
        return self.root / "dataset" / "parts" / f"{patient}.sha256.json"

    def bank(self, patient: str) -> Path:
        return self.root / "ecg2act" / "bank" / f"{patient}.zarr"

    def chunks(self, patient: str) -> list[Path]:
        return sorted((self.patient_dir(patient) / "leadfield").glob("chunk-*.npz"),
                      key=lambda p: int(p.stem.split("-")[1]))

    def extend(self, ids: list[str]) -> tuple[int, float]:
        """Add the patients of ``ids`` not built yet; (patients added, seconds)."""
        start = time.perf_counter()
        added = 0
        for patient in ids:
            if (self.patient_dir(patient) / "done").is_file():
                continue
            self._add(patient)
            added += 1
        return added, time.perf_counter() - start

    # -- one patient
    def _template(self, real: str) -> dict:
        """What of ``real``'s files names it, found once per real patient."""
        if real not in self._templates:
            base = self.source / "patients" / real
            linked = ["anatomy/electrodes.csv", "leadfield/points.npz", "fibres/fibres.npz", "encoding/sdf.npz"]
            linked += [p.relative_to(base).as_posix() for p in sorted((base / "leadfield").glob("chunk-*.npz"))]
            texts = {rel: (base / rel).read_text() for rel in ("parameters.json", "anatomy/anatomy.json",
                                                                 "realism/features.json")}
            self._templates[real] = {
                "linked": linked, "texts": texts,
                "part": _tree(self.source / "dataset" / "parts" / f"{real}.zarr", real, id_chunks={"patient/c/0"}),
                "part_digests": _digests_by_inode(self.source / "dataset" / "parts" / f"{real}.zarr"),
                "bank": _tree(self.source / "ecg2act" / "bank" / f"{real}.zarr", real, id_chunks={"sample/c/0"}),
            }
        return self._templates[real]

    def _add(self, patient: str) -> None:
        real = self.real_of(patient)
        template = self._template(real)
        source = self.source / "patients" / real
        target = self.patient_dir(patient)
        for relative in template["linked"]:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            _replace_link(source / relative, target / relative)
        for relative, text in template["texts"].items():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            _write_new(target / relative, _renamed_json(text, real, patient))
        _copy_tree(template["part"], self.part(patient), real, patient)
        _write_digests(self.part(patient), self.digests(patient), template["part_digests"])
        _copy_tree(template["bank"], self.bank(patient), real, patient)
        (target / "done").write_text("")


def _renamed_json(text: str, real: str, patient: str) -> str:
    """A JSON document of ``real`` for ``patient``: every string value that is ``real`` or starts
    with ``real/`` renamed (keys and numbers untouched)."""
    def rename(value):
        if isinstance(value, str):
            return patient + value[len(real):] if value == real or value.startswith(real + "/") else value
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        return value

    document = rename(json.loads(text))
    if isinstance(document, dict) and "ecgcohort_part" in document.get("attributes", {}):
        summary = json.loads(document["attributes"]["ecgcohort_part"])
        summary["patient"] = patient
        document["attributes"]["ecgcohort_part"] = json.dumps(summary)
    return json.dumps(document, indent=1)


def _tree(root: Path, real: str, id_chunks: set[str]) -> dict:
    """The files of a Zarr store of ``real``: which to link, which metadata names the patient,
    which coordinate chunks hold its id (codecs bytes + zstd: rewritten with the new id)."""
    folders, linked, texts, chunks = [], [], {}, {}
    for folder, _, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        folders.append(rel_folder)
        for name in names:
            relative = (rel_folder / name).as_posix()
            if name == ".snakemake_timestamp":
                continue
            if relative in id_chunks:
                metadata = json.loads((root / Path(relative).parent.parent / "zarr.json").read_text())
                codecs = [c["name"] for c in metadata["codecs"]]
                if codecs != ["bytes", "zstd"] or metadata["data_type"]["name"] != "fixed_length_utf32":
                    raise SystemExit(f"{root / relative}: codecs {codecs}, expected a zstd fixed-length string")
                chunks[relative] = ((root / relative).read_bytes(),
                                    f"<U{metadata['data_type']['configuration']['length_bytes'] // 4}")
            elif name == "zarr.json" and real in (text := (root / relative).read_text()):
                texts[relative] = text
            else:
                linked.append(relative)
    return {"root": root, "folders": folders, "linked": linked, "texts": texts, "chunks": chunks}


def _renamed_path(relative: str | Path, real: str, patient: str) -> Path:
    return Path(*[patient if part == real else part for part in Path(relative).parts])


def _copy_tree(tree: dict, target: Path, real: str, patient: str) -> None:
    import numcodecs

    zstd = numcodecs.Zstd(level=0)
    for folder in tree["folders"]:
        (target / _renamed_path(folder, real, patient)).mkdir(parents=True, exist_ok=True)
    for relative in tree["linked"]:
        _replace_link(tree["root"] / relative, target / _renamed_path(relative, real, patient))
    for relative, text in tree["texts"].items():
        _write_new(target / _renamed_path(relative, real, patient), _renamed_json(text, real, patient))
    for relative, (encoded, dtype) in tree["chunks"].items():
        raw = np.frombuffer(zstd.decode(encoded), dtype=dtype)
        renamed = np.array([patient + s[len(real):] if s == real or s.startswith(real + "/") else s for s in raw],
                           dtype=raw.dtype)
        if renamed.dtype != raw.dtype or any(len(a) != len(b) for a, b in zip(raw, renamed)):
            raise SystemExit(f"{relative}: {patient} does not fit the {raw.dtype} strings of {real}")
        _write_new(target / _renamed_path(relative, real, patient), zstd.encode(renamed.tobytes()))


def _digests_by_inode(root: Path) -> dict[tuple[int, int, int], str]:
    """(inode, bytes, time in ns) -> SHA-256 of every file of a real patient's part, hashed once."""
    from ecgcohort.io import sha256_of

    known = {}
    for path in (p for p in root.rglob("*") if p.is_file()):
        status = path.stat()
        known[(status.st_ino, status.st_size, status.st_mtime_ns)] = sha256_of(path)
    return known


def _write_digests(part: Path, out: Path, known: dict[tuple[int, int, int], str]) -> None:
    """``out`` as :func:`ecgcohort.io.write_file_digests` writes it for ``part``: a file hard-linked
    from the real part takes its known checksum, a rewritten one is hashed."""
    from ecgcohort.io import sha256_of

    files = {}
    for path in sorted(p for p in part.rglob("*") if p.is_file()):
        status = path.stat()
        digest = known.get((status.st_ino, status.st_size, status.st_mtime_ns)) or sha256_of(path)
        files[path.relative_to(part).as_posix()] = [digest, status.st_size, status.st_ino, status.st_mtime_ns]
    _write_new(out, json.dumps({"directory": part.name, "files": files}, separators=(",", ":")))


def _replace_link(source: Path, target: Path) -> None:
    if target.exists():
        target.unlink()
    os.link(source, target)


def _write_new(path: Path, content: str | bytes) -> None:
    """A new file at ``path``: never through a hard link to a source file."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


# ---------------------------------------------------------------- the stages (run in a child process)
def _config(source: Path) -> dict:
    from ecgcohort.config import load_config_files

    return load_config_files([source.parent / "config" / "config.yaml"], SCHEMA)


class _Loaded(Exception):
    """Raised by :func:`_one_epoch` in place of training."""


_EPOCH: dict = {}


def _one_epoch(model, table, spec, workdir, *, validation=None, settings=None, name="model"):
    """What ``ecgcohort.learning.fit`` does with the data, without a training step: the table on
    the device, then one epoch of batches through the same DataLoader (resident tables gathered
    as the training step gathers them)."""
    import torch

    from ecgcohort.learning.backbone import _EpochBatches, _rows, _Rows
    from ecgcohort.learning.device import resolve_device

    device = resolve_device(spec.device)
    start = time.perf_counter()
    if table.resident:
        table = table.to(device)
    if validation is not None:
        validation = validation.to(device)
    loader = torch.utils.data.DataLoader(_Rows(table), batch_size=None,
                                         sampler=_EpochBatches(table, spec.batch_size, spec.seed))
    batches = rows = 0
    for batch in loader:
        if table.resident:
            batch = table.gather(batch)
        rows += _rows(batch)
        batches += 1
    _EPOCH.update(resident=bool(table.resident), rows=int(len(table)), epoch_rows=rows, batches=batches,
                  epoch_s=time.perf_counter() - start, table_gb=getattr(table, "nbytes", 0) / 1e9,
                  validation_rows=len(validation) if validation is not None else 0)
    raise _Loaded


def run_stage(stage: str, work: Path, source: Path, size: int) -> dict:
    """One stage on the first ``size`` patients (its outputs under ``work/out/<size>``); returns
    what the table notes about it."""
    import torch

    import ecgcohort.learning

    torch.set_num_threads(2)  # the rules' threads
    cohort = Cohort(source, work)
    ids = patient_ids(size)
    train = [p for p in ids if _split(p) == "train"]
    config = _config(source)
    out = work / "out" / str(size)
    out.mkdir(parents=True, exist_ok=True)
    note: dict = {}
    if stage == "verify":
        return verify(cohort, ids, out / "cohort.zarr")
    if stage == "assemble":
        from ecgcohort.dataset import assemble_cohort

        data = {k: v for k, v in config.items() if k not in DOWNSTREAM_SECTIONS}
        data["encoding"] = {"sdf": config["encoding"]["sdf"]}
        assemble_cohort(ids, {p: cohort.part(p) for p in ids}, data, out / "cohort.zarr", out / "README.md")
    elif stage == "realism":
        from ecgcohort.realism.jobs import realism_summary_job

        names = ("features.csv", "criteria.csv", "realism.csv", "realism.md", "pose.csv", "feature_distributions.png",
                 "population.csv", "population.md", "population.png")
        outputs = dict(zip(("features", "criteria", "table", "markdown", "pose", "distributions", "population",
                            "population_markdown", "population_figure"), (out / "ecg" / n for n in names)))
        (out / "ecg").mkdir(exist_ok=True)
        realism_summary_job([cohort.patient_dir(p) / "realism/features.json" for p in ids],
                            [cohort.patient_dir(p) / "anatomy/anatomy.json" for p in ids],
                            {"healthy": config["realism"]["healthy"], "lbbb": config["realism"]["lbbb"]}, outputs)
    elif stage == "release":
        from ecgcohort.config import release_layout
        from ecgcohort.release import ReleaseInputs, ReleaseMetadata, build_release

        release = config["release"]
        layout = release_layout({**release, "layout": os.environ.get("FAN_INS_RELEASE_LAYOUT", release["layout"])},
                                size)
        inputs = ReleaseInputs(store=out / "cohort.zarr",
                               anatomy={p: cohort.patient_dir(p) / "anatomy/anatomy.json" for p in ids},
                               features=out / "ecg" / "features.csv", criteria=out / "ecg" / "criteria.csv", banks={},
                               digests={p: cohort.digests(p) for p in ids} if layout == "linked" else {})
        sizes = build_release(inputs, out / "release", patients=ids,
                              metadata=ReleaseMetadata(**{k: release[k] for k in ("name", "version", "license", "url",
                                                                                  "citation", "creator")}),
                              shard_bytes=int(release["shard_mb"] * 2 ** 20),
                              wfdb_source=None if release["wfdb"] == "none" else release["wfdb"], threads=2,
                              layout=layout)
        note = {"release_gb": sizes["bytes"] / 1e9, "files": sizes["files"], "layout": layout}
    elif stage == "pca_codes":
        from ecgcohort.encoding.jobs import pca_codes_job

        pca_codes_job([cohort.patient_dir(p) / "parameters.json" for p in ids],
                      config["encoding"]["pca"]["include_translation"], out / "pca" / "codes.csv",
                      out / "pca" / "codes.json")
    else:
        ecgcohort.learning.fit = _one_epoch
        try:
            if stage == "surrogate":
                from ecgcohort.surrogate.jobs import group_lead_field_files, train_surrogate_job

                section = {k: v for k, v in config["surrogate"].items() if k not in ("evaluation", "encodings",
                                                                                     "targets")}
                files = group_lead_field_files(
                    train, points=[cohort.patient_dir(p) / "leadfield/points.npz" for p in train],
                    electrodes=[cohort.patient_dir(p) / "anatomy/electrodes.csv" for p in train],
                    fibres=[cohort.patient_dir(p) / "fibres/fibres.npz" for p in train],
                    chunks=[c for p in train for c in cohort.chunks(p)])
                train_surrogate_job(files, out / "pca" / "codes.csv", "pca", "pseudo_residual", section,
                                    config["leadfield"]["conductivity_s_per_m"]["torso"], out / "s" / "model.pt",
                                    out / "s" / "losses.csv", out / "s" / "losses.png", out / "s" / "checkpoints",
                                    heart_margin_mm=config["surrogate"]["evaluation"]["heart_margin_mm"],
                                    memory_mb=TRAINING_JOB_MB)
            elif stage == "shape_model":
                from ecgcohort.encoding.jobs import train_shape_model_job
                from ecgcohort.learning.splits import validation_split

                deepsdf = config["encoding"]["deepsdf"]
                fit_ids, validation_ids = validation_split(train, deepsdf["validation_fraction"], deepsdf["seed"])
                train_shape_model_job([cohort.patient_dir(p) / "encoding/sdf.npz" for p in fit_ids], fit_ids,
                                      validation_ids,
                                      {k: v for k, v in deepsdf.items() if k not in ("inference", "evaluation")},
                                      config["encoding"]["sdf"], out / "d" / "model.pt", out / "d" / "losses.csv",
                                      out / "d" / "losses.png", out / "d" / "checkpoints", memory_mb=TRAINING_JOB_MB)
            elif stage.startswith("ecg2act_"):
                from ecgcohort.ecg2act.training import train_ecg2act_job

                network = stage.split("_", 1)[1]
                section = config["ecg2act"]
                section = {"seed": section["seed"], "validation_fraction": section["validation_fraction"],
                           "scored_fraction": section["scored_fraction"],
                           "min_scored_samples": section["min_scored_samples"],
                           "networks": {network: section["networks"][network]}}
                train_ecg2act_job(network=network, bank_paths=[cohort.bank(p) for p in train], section=section,
                                  workdir=out / f"e{network}" / "checkpoints", out_model=out / f"e{network}" / "m.pt",
                                  out_losses=out / f"e{network}" / "l.csv", out_plot=out / f"e{network}" / "l.png",
                                  memory_mb=TRAINING_JOB_MB)
            else:
                raise SystemExit(f"unknown stage {stage}")
            raise SystemExit(f"{stage}: the job returned without reaching fit")
        except _Loaded:
            note = dict(_EPOCH)
    return note


def verify(cohort: Cohort, ids: list[str], store: Path) -> dict:
    """The assembled store of synthetic patients opens, lists their ids and splits, and holds the
    real patients' values under the new ids (one root array and one mesh array of a dozen
    patients spread over the cohort; the last patient's bank names it)."""
    import xarray as xr

    from ecgcohort.dataset import open_cohort, open_patient_mesh

    root = open_cohort(store)
    if [str(p) for p in root.patient.values] != ids or [str(s) for s in root.split.values] != [_split(p) for p in ids]:
        raise SystemExit(f"{store}: patients {root.patient.values[:5]}..., expected {ids[:5]}...")
    for index, patient in list(enumerate(ids))[::max(1, len(ids) // 12)]:  # values of a dozen spread out
        real = cohort.real_of(patient)
        part = xr.open_zarr(cohort.source / "dataset" / "parts" / f"{real}.zarr", consolidated=False)
        if not np.array_equal(root.lead_ecg[index].values, part.lead_ecg[0].values):
            raise SystemExit(f"{patient}: its ECG differs from {real}'s")
        mesh = open_patient_mesh(store, patient)
        if mesh.attrs["patient"] != patient or not np.array_equal(
                mesh.activation_time.values, open_patient_mesh(part_path := cohort.part(patient), patient)
                .activation_time.values):
            raise SystemExit(f"{patient}: its mesh group differs from its part {part_path}")
    bank = xr.open_zarr(cohort.bank(ids[-1]), consolidated=True)
    if bank.attrs["patient"] != ids[-1] or not str(bank.sample.values[0]).startswith(ids[-1] + "/"):
        raise SystemExit(f"{cohort.bank(ids[-1])}: names {bank.attrs['patient']}, {bank.sample.values[0]}")
    return {"verified": len(ids)}


# ---------------------------------------------------------------- timing a stage as a process
def _available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2 ** 20
    return 8.0


def _rss_gb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return 0.0


def timed(command: list[str], memory_cap_gb: float, timeout_s: float) -> dict:
    """Run ``command`` as a fresh process: seconds, peak resident GiB (``os.wait4``: that process
    alone), its last stdout line as JSON; killed (and said so) past ``memory_cap_gb`` resident or
    ``timeout_s``."""
    with tempfile.TemporaryFile("w+") as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
        killed = ""
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.perf_counter() - start
            if not killed and _rss_gb(process.pid) > memory_cap_gb:
                killed = f"killed: resident memory passed {memory_cap_gb:.1f} GiB after {elapsed:.0f} s"
                process.kill()
            elif not killed and elapsed > timeout_s:
                killed = f"killed: ran past {timeout_s:.0f} s"
                process.kill()
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        output.seek(0)
        text = output.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    result = {"seconds": seconds, "peak_gb": usage.ru_maxrss / 2 ** 20, "killed": killed, "note": {}}
    if not killed and process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{text[-4000:]}")
    if not killed:
        lines = [line for line in text.splitlines() if line.startswith("{")]
        result["note"] = json.loads(lines[-1]) if lines else {}
    return result


# ---------------------------------------------------------------- the benchmark
def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _extrapolated(points: list[tuple[int, float]], size: int, proportional: bool) -> float | None:
    """The value at ``size`` on the line through the last two measured (patients, value) — a
    fixed cost (imports, the first patient) plus a cost per patient, never falling — or, with one
    size, proportional to the patients (time) or None (memory)."""
    if not points:
        return None
    if len(points) < 2:
        return points[-1][1] * size / points[-1][0] if proportional else None
    (n0, v0), (n1, v1) = points[-2], points[-1]
    return v1 + max(0.0, (v1 - v0) / (n1 - n0)) * (size - n1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("results"), help="a finished run's results/")
    parser.add_argument("--patients", type=int, nargs="+", default=[100, 1000, 10000], help="cohort sizes")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fan_ins"), help="scratch folder (emptied)")
    parser.add_argument("--out", type=Path, help="write the figures as CSV too")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="stages to time")
    parser.add_argument("--memory-cap-gb", type=float, default=10.0,
                        help="kill a stage past this resident memory, GiB (lowered to what the machine has free)")
    parser.add_argument("--stage-timeout", type=float, default=1200.0, help="kill a stage past this many seconds")
    parser.add_argument("--min-free-gb", type=float, default=15.0, help="disk left free by a packed release")
    parser.add_argument("--release-layout", choices=("auto", "packed", "linked"), default="auto",
                        help="the release's layout (auto: as release.layout's default picks for the size)")
    parser.add_argument("--deadline", help="UTC HH:MM: skip a stage whose extrapolated time would end past it")
    parser.add_argument("--keep", action="store_true", help="keep --work")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # the child process: run this stage
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    source, work = args.source.resolve(), args.work.resolve()
    if args.stage:
        print(json.dumps(run_stage(args.stage, work, source, args.size), default=float))
        return

    from ecgcohort.config import release_layout

    sizes = sorted(set(args.patients))
    os.environ["FAN_INS_RELEASE_LAYOUT"] = args.release_layout  # the child processes' release layout
    shutil.rmtree(work, ignore_errors=True)
    cohort = Cohort(source, work)
    cap = min(args.memory_cap_gb, _available_gb() - 3.0)
    part_bytes = np.mean([_tree_bytes(source / "dataset" / "parts" / f"{p}.zarr")
                          for split in cohort.real.values() for p in split])
    print(f"source {source}: {sum(map(len, cohort.real.values()))} real patients ({len(cohort.real['train'])} train, "
          f"{len(cohort.real['test'])} test) reused, {len(cohort.scenarios)} scenarios, part {part_bytes / 1e6:.0f} MB "
          f"per patient; {os.cpu_count()} cores, {_available_gb():.1f} GiB available; stages killed past {cap:.1f} GiB "
          f"or {args.stage_timeout:.0f} s; niceness {os.nice(0)}", flush=True)
    deadline = None
    if args.deadline:
        import datetime

        now = datetime.datetime.now(datetime.timezone.utc)
        hour, minute = map(int, args.deadline.split(":"))
        deadline = time.time() + (now.replace(hour=hour, minute=minute, second=0, microsecond=0) - now).total_seconds()
    rows: list[dict] = []
    history: dict[str, list[dict]] = {stage: [] for stage in STAGES}

    def child(stage: str, size: int) -> dict:
        return timed([sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--size", str(size),
                      "--work", str(work), "--source", str(source)], cap, args.stage_timeout)

    def emit(row: dict) -> None:
        rows.append(row)
        seconds = f"{row['seconds']:.1f}" if row.get("seconds") is not None else "–"
        peak = f"{row['peak_gb']:.2f}" if row.get("peak_gb") is not None else "–"
        per = f"{1e3 * row['seconds'] / row['patients']:.1f}" if row.get("seconds") is not None else "–"
        print(f"| {row['stage']} | {row['patients']:,} | {seconds} | {peak} | {per} | {row['status']} | "
              f"{row.get('note', '')} |", flush=True)

    def note_of(stage: str, note: dict) -> str:
        if "resident" in note:
            text = (f"{'resident' if note['resident'] else 'streamed'} table, {note['rows']:,} rows"
                    + (f" ({note['table_gb']:.2f} GB)" if note.get("table_gb") else "")
                    + f", {note['validation_rows']:,} validation rows; one epoch {note['batches']:,} batches "
                      f"in {note['epoch_s']:.1f} s")
            return text
        if "release_gb" in note:
            return (f"{note['layout']} release {note['release_gb']:.2f} GB, {note['files']:,} files "
                    "(deleted after)")
        return ""

    header = ("| stage | patients | wall (s) | peak (GiB) | per patient (ms) | status | notes |\n"
              "|---|---|---|---|---|---|---|")
    build_rate = None  # seconds per synthetic patient added
    for size in sizes:
        ids = patient_ids(size)
        missing = sum(not (cohort.patient_dir(p) / "done").is_file() for p in ids)
        if deadline is not None and build_rate is not None and time.time() + build_rate * missing > deadline:
            print(f"\n{size:,} patients: not measured: adding {missing:,} synthetic patients "
                  f"(~{build_rate * missing:.0f} s) would end past the deadline {args.deadline} UTC", flush=True)
            break
        added, seconds = cohort.extend(ids)
        build_rate = seconds / max(added, 1)
        print(f"\n{size:,} patients: {added:,} synthetic patients added in {seconds:.1f} s "
              f"({len([p for p in ids if _split(p) == 'train']):,} train, "
              f"{len([p for p in ids if _split(p) == 'test']):,} test); disk free "
              f"{shutil.disk_usage(work).free / 1e9:.1f} GB", flush=True)
        print(header, flush=True)
        layout = release_layout({**_config(source)["release"], "layout": args.release_layout}, size)
        for stage in STAGES:
            if stage not in args.stages and not (stage in ("assemble", "realism") and "release" in args.stages) \
                    and not (stage == "pca_codes" and "surrogate" in args.stages):
                continue
            # a release is extrapolated from its own layout's figures only
            measured = [h for h in history[stage] if h.get("seconds") is not None and not h.get("killed")
                        and (stage != "release" or h.get("layout") == layout)]
            skip = ""
            killed_before = [h for h in history[stage] if h.get("killed")]
            if killed_before:
                skip = f"skipped: killed at {killed_before[-1]['patients']:,} patients"
            elif measured:
                last = measured[-1]
                estimate_s = _extrapolated([(h["patients"], h["seconds"]) for h in measured], size, True)
                estimate_gb = _extrapolated([(h["patients"], h["peak_gb"]) for h in measured], size, False)
                if estimate_s > args.stage_timeout:
                    skip = (f"skipped: ~{estimate_s:.0f} s extrapolated from {last['patients']:,} patients "
                            f"({last['seconds']:.0f} s), past {args.stage_timeout:.0f} s")
                elif estimate_gb is not None and estimate_gb > cap and stage not in TRAINING_STAGES:
                    skip = f"skipped: ~{estimate_gb:.1f} GiB extrapolated, past {cap:.1f} GiB"
                elif deadline is not None and time.time() + estimate_s > deadline:
                    skip = (f"skipped: ~{estimate_s:.0f} s extrapolated from {last['patients']:,} patients would end "
                            f"past the deadline {args.deadline} UTC")
            if stage == "release" and not skip and layout == "packed":
                free = shutil.disk_usage(work).free
                needed = 1.1 * part_bytes * size
                if free - needed < args.min_free_gb * 1e9:
                    skip = (f"not measured: needs ~{needed / 1e9:.0f} GB of disk, {free / 1e9:.0f} GB free "
                            f"(keeping {args.min_free_gb:.0f} GB)")
            if stage == "release" and skip and measured:
                points = [(h["patients"], h["seconds"]) for h in measured]
                emit({"stage": stage, "patients": size, "seconds": _extrapolated(points, size, True),
                      "peak_gb": _extrapolated([(h["patients"], h["peak_gb"]) for h in measured], size, False),
                      "status": "EXTRAPOLATED",
                      "note": f"{layout}: {skip}; extrapolated from {', '.join(f'{n:,}' for n, _ in points[-2:])} "
                              "patients"})
                history[stage].append({"patients": size, "skipped": skip, "layout": layout})
                continue
            if skip:
                emit({"stage": stage, "patients": size, "seconds": None, "peak_gb": None, "status": "skipped",
                      "note": skip})
                history[stage].append({"patients": size, "skipped": skip})
                continue
            result = child(stage, size)
            status = "killed" if result["killed"] else "measured"
            row = {"stage": stage, "patients": size, "seconds": result["seconds"], "peak_gb": result["peak_gb"],
                   "status": status, "note": result["killed"] or note_of(stage, result["note"]),
                   "killed": bool(result["killed"]), "layout": layout if stage == "release" else None}
            history[stage].append(row)
            emit(row)
            if stage == "release":
                shutil.rmtree(work / "out" / str(size) / "release", ignore_errors=True)
            if stage == "assemble" and size == sizes[0] and not result["killed"]:
                check = child("verify", size)
                print(f"(verified: the store of {size:,} synthetic patients opens with open_cohort, lists their ids "
                      f"and splits, and holds the real patients' ECGs and meshes under them (a dozen checked); "
                      f"{check['seconds']:.1f} s)", flush=True)
        shutil.rmtree(work / "out" / str(size), ignore_errors=True)

    print("\nper-patient time at the largest against the smallest measured size (1.0: linear), peak memory "
          "growth:")
    for stage in STAGES:
        measured = [h for h in history[stage] if h.get("seconds") is not None and not h.get("killed")]
        if len(measured) >= 2:
            small, large = measured[0], measured[-1]
            ratio = (large["seconds"] / large["patients"]) / (small["seconds"] / small["patients"])
            previous = measured[-2]
            marginal = (large["seconds"] - previous["seconds"]) / (large["patients"] - previous["patients"])
            print(f"- {stage}: {ratio:.2f}x ({small['patients']:,} -> {large['patients']:,} patients); marginal "
                  f"{1e3 * marginal:.1f} ms per patient between {previous['patients']:,} and {large['patients']:,}; "
                  f"peak {small['peak_gb']:.2f} -> {large['peak_gb']:.2f} GiB")
    print(f"\ngoal at {GOAL_PATIENTS:,} patients ({GOAL_SECONDS / 60:.0f} min, {GOAL_GB:.0f} GB = {GOAL_GIB:.2f} GiB, "
          f"this machine's {os.cpu_count()} cores):")
    for stage in STAGES:
        entries = history[stage]
        measured = [h for h in entries if h.get("seconds") is not None and not h.get("killed")]
        if not entries:
            continue
        at_goal = [h for h in measured if h["patients"] == GOAL_PATIENTS]
        killed = [h for h in entries if h.get("killed")]
        if at_goal:
            h = at_goal[0]
            print(f"- {stage}: measured {h['seconds']:.0f} s, {h['peak_gb']:.2f} GiB: "
                  f"{'meets' if h['seconds'] <= GOAL_SECONDS and h['peak_gb'] <= GOAL_GIB else 'MISSES'}")
        elif killed:
            print(f"- {stage}: MISSES ({killed[-1]['note']} at {killed[-1]['patients']:,} patients)")
        elif measured:
            seconds = _extrapolated([(h["patients"], h["seconds"]) for h in measured], GOAL_PATIENTS, True)
            peak = _extrapolated([(h["patients"], h["peak_gb"]) for h in measured], GOAL_PATIENTS, False)
            peak_text = f"{peak:.1f} GiB" if peak is not None else "peak not extrapolated (one size)"
            meets = seconds <= GOAL_SECONDS and (peak is None or peak <= GOAL_GIB)
            through = ", ".join(f"{h['patients']:,}" for h in measured[-2:])
            print(f"- {stage}: EXTRAPOLATED on the line through {through} patients: ~{seconds:.0f} s, {peak_text}: "
                  f"{'meets' if meets else 'MISSES'}")
    if args.out:
        with open(args.out, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=["stage", "patients", "seconds", "peak_gb", "status", "note"],
                                    extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
