"""The interface between models and the training loop, without importing Lightning:
:class:`TrainableModel`, :class:`TrainingSpec` and :class:`FitResult`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch


class TrainableModel(torch.nn.Module):
    """A model the backbone can train: all trainable parameters (latent codes included) are
    parameters of this module, and :meth:`training_loss` maps a batch (a dict of tensors on
    the training device, rows gathered from a :class:`~ecgcohort.learning.TensorTable`) to the
    scalar loss and its named parts (logged per epoch)."""

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def validation_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.training_loss(batch)

    def on_train_epoch_start(self, epoch: int) -> None:
        """Called at the start of every 0-based training ``epoch`` (a resumed run's first
        included): where a model reseeds its own training-time draws from the epoch, so they
        survive a resume. Default: nothing."""

    def stop_training(self, history: list[dict[str, float]]) -> bool:
        """True to end training after the epochs of ``history`` (per-epoch rows as
        :func:`~ecgcohort.learning.fit` records them) before ``epochs``: a stopping rule of the
        model's own (the inverse networks' discrepancy principle). Default: never."""
        return False


@dataclass(frozen=True)
class TrainingSpec:
    """One training run. The learning rate is ``learning_rate`` times ``lr_decay`` for every
    milestone passed; ``lr_milestones`` are fractions of ``epochs`` (the paper: 0.5 at 0.5).
    ``device``: auto|cpu|cuda; ``precision``: auto|32|bf16 (bf16 autocast: ``auto`` on CUDA,
    ``bf16`` on CUDA and on CPUs with native bf16, :func:`~ecgcohort.learning.device.resolve_precision`).
    ``patience``: with validation rows, stop after this many validations in a row without a
    new best validation loss (0: train every epoch); the models keep their best epoch's weights,
    so a run stopped this way returns what the full run would have, unless a later epoch would
    have beaten that best."""

    epochs: int
    batch_size: int
    learning_rate: float = 1e-3
    lr_milestones: tuple[float, ...] = ()
    lr_decay: float = 0.5
    checkpoint_every: int = 10
    validate_every: int = 1
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    log_every_seconds: float = 10.0
    patience: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "checkpoint_every", "validate_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"training.{name} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"training.learning_rate must be positive, got {self.learning_rate}")
        if self.patience < 0:
            raise ValueError(f"training.patience must be >= 0 validations (0: never stop early), got {self.patience}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], **overrides: Any) -> "TrainingSpec":
        """From a config section's keys (unknown keys are ignored, so a model's whole section
        can be passed); ``overrides`` win."""
        names = set(cls.__dataclass_fields__)
        values = {k: v for k, v in section.items() if k in names}
        values.update(overrides)
        if "lr_milestones" in values:
            values["lr_milestones"] = tuple(values["lr_milestones"])
        return cls(**values)

    def learning_rate_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        passed = sum(epoch >= round(m * self.epochs) for m in self.lr_milestones)
        return self.learning_rate * self.lr_decay ** passed


@dataclass
class FitResult:
    """What a run leaves: the final weights, the weights of the best validation epoch (the
    final ones without validation), the per-epoch history and the measured throughput."""

    state_dict: dict[str, torch.Tensor]
    best_state_dict: dict[str, torch.Tensor]
    best_epoch: int
    history: list[dict[str, float]]
    device: str
    precision: str
    resumed_from_epoch: int = 0
    seconds: float = 0.0
    samples_per_second: float = 0.0
