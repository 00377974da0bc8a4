"""Training loop shared by every model: PyTorch Lightning under a small, typed interface.

:func:`fit` trains a :class:`TrainableModel` on the rows of a table and returns its history.
What it guarantees, whatever the model:

* batches depend only on (seed, epoch) and the learning rate only on the epoch, so a job
  killed after a checkpoint and run again resumes from ``workdir/last.ckpt`` and ends with the
  weights an uninterrupted run has (on the CPU, where kernels are deterministic);
* checkpoints are written under a temporary name and renamed, every ``checkpoint_every``
  epochs and at the end, with a fingerprint of the run's settings beside them: a checkpoint of
  other settings is never resumed from;
* rows of a :class:`~ecgcohort.learning.TensorTable` live on the training device and batches
  are gathered there; a :class:`~ecgcohort.learning.StreamedTable` is read block by block;
* bf16 autocast on CUDA (``precision: auto|bf16``), fp32 on the CPU unless ``bf16`` is asked
  for and the CPU multiplies bf16 natively;
* a progress line (epoch, loss, samples/s, ETA) every ``log_every_seconds`` and after every
  epoch, per-epoch losses (and validation loss) in ``workdir/losses.csv``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import lightning.pytorch as pl
import torch

from ecgcohort.learning.data import StreamedTable, TensorTable
from ecgcohort.learning.device import resolve_device, resolve_precision
from ecgcohort.learning.spec import FitResult, TrainableModel, TrainingSpec

__all__ = ["FitResult", "TrainableModel", "TrainingSpec", "fit", "fingerprint_of", "write_history"]

log = logging.getLogger(__name__)

CHECKPOINT = "last.ckpt"


class _EpochBatches(torch.utils.data.Sampler):
    """Yields the table's batch keys of the current epoch; Lightning calls ``set_epoch``."""

    def __init__(self, table: TensorTable | StreamedTable, batch_size: int, seed: int):
        self.table, self.batch_size, self.seed, self.epoch = table, batch_size, seed, 0
        rank, world = _rank_and_world()
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if isinstance(self.table, StreamedTable):
            return self.table.batch_count(0, self.batch_size, self.seed, self.rank, self.world)
        if not isinstance(self.table, TensorTable):  # model-specific layouts
            return len(self.table.batch_keys(0, self.batch_size, self.seed, self.rank, self.world))
        return math.ceil(len(range(self.rank, len(self.table), self.world)) / self.batch_size)

    def __iter__(self):
        # a generator: the keys are drawn at the first batch, after Lightning's set_epoch —
        # on resume Lightning creates the iterator before it sets the restored epoch
        yield from self.table.batch_keys(self.epoch, self.batch_size, self.seed, self.rank, self.world)


class _Rows(torch.utils.data.Dataset):
    """Resident tables pass the key (row indices) through: rows are gathered on the device in
    the training step. Streamed tables gather on the host here."""

    def __init__(self, table: TensorTable | StreamedTable):
        self.table = table

    def __getitem__(self, key):
        return key if self.table.resident else self.table.gather(key)


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _rows(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return int(next(iter(batch.values())).shape[0])


#: Packages whose code enters :func:`code_version` by their version, not their files.
_VERSIONED_PACKAGES = ("torch", "lightning", "builtins")


def code_version(model: torch.nn.Module) -> str:
    """A short hash of the code that defines ``model``'s loss and layers — the source files of
    the modules of its class, its base classes and its submodules' classes, and this backbone —
    and of the torch and Lightning versions. A checkpoint of a changed loss (the DeepSDF's
    one-sided clamp) is then not resumed as if it were this run's."""
    import inspect
    import sys

    modules = {type(m).__module__ for m in model.modules()} | {c.__module__ for c in type(model).__mro__}
    modules.add(__name__)
    digest = hashlib.sha256(f"torch {torch.__version__} lightning {pl.__version__}".encode())
    for name in sorted(modules):
        module = sys.modules.get(name)
        if module is None or name.split(".")[0] in _VERSIONED_PACKAGES or not getattr(module, "__file__", None):
            continue
        digest.update(name.encode() + Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()[:16]


def fingerprint_of(spec: TrainingSpec, settings: Mapping[str, Any], code: str = "") -> str:
    """A short hash of the training spec, the model's settings (config, data sizes) and the
    version of its code (:func:`code_version`): checkpoints of another fingerprint are not
    resumed from."""
    text = json.dumps({"spec": asdict(spec), "settings": settings, "code": code}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit(model: TrainableModel, table: TensorTable | StreamedTable, spec: TrainingSpec, workdir: str | Path, *,
        validation: TensorTable | None = None, settings: Mapping[str, Any] | None = None,
        name: str = "model") -> FitResult:
    """Train ``model`` on ``table`` with Adam for ``spec.epochs`` epochs; checkpoints go to
    ``workdir`` (created). ``validation`` rows, if given, are scored every
    ``spec.validate_every`` epochs and the best epoch's weights are returned as well.
    ``settings`` (JSON-able: the model's config, data sizes) and the model's code version enter
    the checkpoint fingerprint.
    Call again after a kill: the run resumes from the last checkpoint of the same fingerprint."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(spec.device)
    precision = resolve_precision(spec.precision, device)
    torch.manual_seed(spec.seed)
    if table.resident:
        table = table.to(device)
    if validation is not None:
        validation = validation.to(device)
    fingerprint = fingerprint_of(spec, settings or {}, code_version(model))
    checkpoint = workdir / CHECKPOINT
    resume = _resumable(checkpoint, fingerprint)

    progress = _Progress(spec, fingerprint, checkpoint, validation, precision, name, len(table))
    task = _Task(model, table, spec)
    loader = torch.utils.data.DataLoader(_Rows(table), batch_size=None,
                                         sampler=_EpochBatches(table, spec.batch_size, spec.seed))
    log.info("%s: %d rows (%s, %.1f MB%s), batch %d, %d epochs, device %s, precision %s%s", name, len(table),
             "resident" if table.resident else "streamed", getattr(table, "nbytes", 0) / 1e6,
             f", validation {len(validation)} rows" if validation is not None else "", spec.batch_size, spec.epochs,
             device, precision, f", resuming from {checkpoint}" if resume else "")
    start = time.perf_counter()
    with warnings.catch_warnings(), _quiet_lightning():
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # Lightning's SLURM detection suggests srun whenever the command exists; Snakemake's
        # SLURM executor already runs each job in its own allocation
        warnings.filterwarnings("ignore", message="The `srun` command is available")
        warnings.filterwarnings("ignore", message=".*is a bit low.*")
        warnings.filterwarnings("ignore", message=".*LightningModule.*`training_step`.*")
        trainer = pl.Trainer(
            max_epochs=spec.epochs, accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
            precision=precision, deterministic=device.type == "cpu", logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0,
            callbacks=[progress], default_root_dir=str(workdir), use_distributed_sampler=False)
        trainer.fit(task, train_dataloaders=loader, ckpt_path=str(checkpoint) if resume else None)
    seconds = time.perf_counter() - start
    final = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    best_epoch, best = progress.best_epoch, progress.best_state
    if best is None:
        best_epoch, best = spec.epochs, final
    trained = [row for row in progress.history if row.get("seconds", 0) > 0 and row["epoch"] > progress.resumed_at]
    rate = (sum(row["samples_per_second"] * row["seconds"] for row in trained) / max(sum(r["seconds"] for r in trained),
                                                                                      1e-12)) if trained else 0.0
    return FitResult(final, best, best_epoch, list(progress.history), str(device), precision,
                     progress.resumed_at, seconds, rate)


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's start-up banner and tips say nothing about the run: warnings only."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _resumable(checkpoint: Path, fingerprint: str) -> bool:
    sidecar = checkpoint.with_suffix(".json")
    if not checkpoint.exists():
        return False
    try:
        stored = json.loads(sidecar.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        stored = None
    if stored != fingerprint:
        log.warning("ignoring %s: it belongs to other settings (fingerprint %s, this run %s)", checkpoint, stored,
                    fingerprint)
        checkpoint.unlink()
        sidecar.unlink(missing_ok=True)
        return False
    return True


class _Task(pl.LightningModule):
    """Lightning's view of a TrainableModel: Adam, the epoch-wise learning rate, and the
    per-epoch sums of the loss parts (kept on the device: no sync per step)."""

    def __init__(self, model: TrainableModel, table, spec: TrainingSpec):
        super().__init__()
        self.model = model
        self.table = table
        self.spec = spec
        self.sums: dict[str, torch.Tensor] = {}
        self.rows = 0

    def on_train_epoch_start(self) -> None:
        rate = self.spec.learning_rate_at(self.current_epoch)
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = rate
        self.sums, self.rows = {}, 0
        self.model.on_train_epoch_start(self.current_epoch)

    def training_step(self, batch, batch_index):
        if self.table.resident:
            batch = self.table.gather(batch)
        loss, parts = self.model.training_loss(batch)
        rows = _rows(batch)
        for key, value in {"loss": loss, **parts}.items():
            value = value.detach().float() * rows
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.rows += rows
        self.last_rows = rows
        return loss

    def epoch_means(self) -> dict[str, float]:
        return {key: float(value) / max(self.rows, 1) for key, value in self.sums.items()}

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.spec.learning_rate)


class _Progress(pl.Callback):
    """Progress lines, validation, per-epoch history, atomic checkpoints with a fingerprint."""

    def __init__(self, spec, fingerprint, checkpoint, validation, precision, name, rows):
        self.spec, self.fingerprint, self.checkpoint = spec, fingerprint, checkpoint
        self.validation, self.precision, self.name, self.table_rows = validation, precision, name, rows
        self.history: list[dict[str, float]] = []
        self.best_loss, self.best_epoch, self.best_state = math.inf, 0, None
        self.resumed_at = 0

    # ------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "best_loss": self.best_loss, "best_epoch": self.best_epoch,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        self.best_loss, self.best_epoch, self.best_state = state["best_loss"], state["best_epoch"], state["best_state"]
        self.resumed_at = len(self.history)
        log.info("%s: resumed after epoch %d", self.name, self.resumed_at)

    # ------------------------------------------------------------ progress
    def on_train_epoch_start(self, trainer, task) -> None:
        self.epoch_start = self.last_line = time.perf_counter()
        self.samples = 0

    def on_train_batch_end(self, trainer, task, outputs, batch, batch_index) -> None:
        self.samples += task.last_rows  # the gathered batch's rows (a key need not say how many)
        now = time.perf_counter()
        if now - self.last_line >= self.spec.log_every_seconds:
            self.last_line = now
            rate = self.samples / max(now - self.epoch_start, 1e-9)
            batches = max(trainer.num_training_batches, 1)
            left = (self.spec.epochs - trainer.current_epoch - (batch_index + 1) / batches) * self.table_rows
            log.info("%s: epoch %d/%d batch %d/%d loss %.4g, %.0f samples/s, ETA %s", self.name,
                     trainer.current_epoch + 1, self.spec.epochs, batch_index + 1, batches,
                     float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs), rate,
                     _duration(left / max(rate, 1e-9)))

    def on_train_epoch_end(self, trainer, task) -> None:
        epoch = trainer.current_epoch + 1
        seconds = time.perf_counter() - self.epoch_start
        row = {"epoch": epoch, "learning_rate": self.spec.learning_rate_at(epoch - 1), **task.epoch_means(),
               "seconds": seconds, "samples_per_second": self.samples / max(seconds, 1e-9)}
        if self.validation is not None and (epoch % self.spec.validate_every == 0 or epoch == self.spec.epochs):
            row["validation_loss"] = self._validate(task.model)
            if row["validation_loss"] < self.best_loss:
                self.best_loss, self.best_epoch = row["validation_loss"], epoch
                self.best_state = {k: v.detach().cpu().clone() for k, v in task.model.state_dict().items()}
        self.history.append(row)
        remaining = (self.spec.epochs - epoch) * self.table_rows / max(row["samples_per_second"], 1e-9)
        log.info("%s: epoch %d/%d loss %.4g%s, %.0f samples/s, %.1f s, ETA %s", self.name, epoch, self.spec.epochs,
                 row["loss"], f", validation {row['validation_loss']:.4g}" if "validation_loss" in row else "",
                 row["samples_per_second"], seconds, _duration(remaining))
        stop = task.model.stop_training(self.history)
        if stop:
            log.info("%s: the model's stopping rule ends training after epoch %d", self.name, epoch)
            trainer.should_stop = True
        elif self._out_of_patience():
            stop = True
            log.info("%s: %d validations without a better loss than epoch %d's: training ends after epoch %d "
                     "(training.patience)", self.name, self.spec.patience, self.best_epoch, epoch)
            trainer.should_stop = True
        if epoch % self.spec.checkpoint_every == 0 or epoch == self.spec.epochs or stop:
            self._save(trainer, epoch)

    def on_train_start(self, trainer, task) -> None:
        # a run resumed from a checkpoint its stopping rule ended stays ended
        if self.history and (task.model.stop_training(self.history) or self._out_of_patience()):
            trainer.should_stop = True

    def _out_of_patience(self) -> bool:
        """Whether the last ``spec.patience`` validations (> 0) all came after the best one."""
        if self.spec.patience < 1:
            return False
        since_best = [row for row in self.history if "validation_loss" in row and row["epoch"] > self.best_epoch]
        return len(since_best) >= self.spec.patience

    def _validate(self, model) -> float:
        model.eval()
        total, rows = 0.0, 0
        autocast = (torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)
                    if self.precision == "bf16-mixed" else contextlib.nullcontext())
        with torch.no_grad(), autocast:
            for key in self.validation.batch_keys(0, self.spec.batch_size, self.spec.seed):
                batch = self.validation.gather(key)
                loss, _ = model.validation_loss(batch)
                total += float(loss) * _rows(batch)
                rows += _rows(batch)
        model.train()
        return total / max(rows, 1)

    def _save(self, trainer, epoch: int) -> None:
        temporary = self.checkpoint.with_name(f".{self.checkpoint.name}.part")
        trainer.save_checkpoint(temporary)
        if trainer.is_global_zero:
            os.replace(temporary, self.checkpoint)
            sidecar = self.checkpoint.with_suffix(".json")
            part = sidecar.with_name(f".{sidecar.name}.part")
            part.write_text(json.dumps({"fingerprint": self.fingerprint, "epoch": epoch}))
            os.replace(part, sidecar)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def write_history(history: Sequence[Mapping[str, float]], csv_path: str | Path, png_path: str | Path | None = None,
                  title: str = "") -> None:
    """Per-epoch losses as CSV (atomic) and, if ``png_path``, a log-scale plot of every loss part."""
    import pandas as pd

    from ecgcohort.io import atomic_path

    table = pd.DataFrame(list(history))
    with atomic_path(csv_path) as temporary:
        table.to_csv(temporary, index=False)
    if png_path is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    skip = {"epoch", "learning_rate", "seconds", "samples_per_second"}
    for column in table.columns:
        if column not in skip and (table[column].dropna() > 0).any():
            ax.semilogy(table["epoch"], table[column], label=column, marker="." if column == "validation_loss" else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (per row)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as temporary:
        fig.savefig(temporary, dpi=110)
    plt.close(fig)
