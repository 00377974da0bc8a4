"""Paper 3's networks from the 12-lead ECG X (12 × 500, 1 ms) to the ventricles: 1-D
SqueezeNets (Iandola et al. 2016) of fire modules — a 1-wide squeeze convolution, then 1-wide
and 3-wide expand convolutions side by side, concatenated, ReLU after each.

The trunk is SqueezeNet 1.1's with 1-D kernels: a 3-wide convolution 12 → 64 and eight fire
modules (squeeze/expand channels 16/64, 16/64, 32/128, 32/128, 48/192, 48/192, 64/256,
64/256), 354,432 parameters. The paper gives only the totals; the heads below reach them
exactly:

* **Network I** (Task I, X → activation times A ∈ R^75, ms): stride 2 in the first
  convolution, 3-wide max pooling with stride 2 before fires 1, 3 and 5 (SqueezeNet 1.1's
  places; 500 → 250 → 125 → 63 → 32 samples), then the authors' head
  (landajuela/cardiac_ml, ``learn_ecg2time.py``): a 3-wide convolution 512 → 75 with stride 2
  and no padding (32 → 15 samples), ReLU, the average over each third of the record (15 → 3)
  and a 3-wide convolution 75 → 75 with stride 2 across the thirds (3 → 1):
  354,432 + 115,275 + 16,950 = **486,657** parameters, the paper's number. The thirds tell
  the head where in the record a feature lies; a mean over the whole record (the same
  parameters, this module's head until 2026-11-30) sees a shift of the beat only through the
  zero padding at the record's ends. Trained 30 epochs on the paper cohort's bank, the two
  heads score alike (docs/changelog.md).
* **Network II** (Task II, X → V_m ∈ R^{75×500}, normalised to [0, 1]): no stride and no
  pooling, so every layer keeps the 500 samples, then a 1-wide convolution 512 → 75:
  354,432 + 38,475 = **392,907** parameters, the paper's number. A plain trunk sees ±9 ms of
  ECG around each output sample, too little to tell the plateau from rest (both under a flat
  ECG), so the expand-3 convolutions of the fires are dilated 2, 4, …, 256 by default: with
  the first convolution's ±1 each fire doubles a gap-free reach, to ±511 samples, so every
  output sample sees the whole 500 ms beat — a change that adds no parameter;
  ``dilations=(1,) * 8`` gives the plain SqueezeNet.

Training details of the authors' public code (landajuela/cardiac_ml, ``learn_ecg2time.py``,
``cardiac_ml/data_interface.py``, ``config/ecg2*.config``), which the paper does not state:
dropout before the head (``NetworkSpec.dropout``; theirs 0.1 for Network I, 0 for II), and for
Network I a random onset shift of the training ECGs (:func:`shift_onset`,
:meth:`Ecg2ActNetwork.set_onset_shift`; theirs ``initial_time_aug``, 0–40 samples of 1 ms).
Both act in training only and draw from a generator reseeded from (seed, epoch) at every
epoch, so a resumed run draws what an uninterrupted one does.

Normalisation (paper sec. 2.2): every lead of X is scaled to a peak-to-peak range of 1
(:func:`normalise_ecg`); V_m is scaled to [0, 1] for Network II (:func:`normalise_vm`, which
returns the :class:`VmScale` that undoes it). Targets of Network I stay in ms: the network
predicts ``target_offset + target_scale · net(X)``, and the loss is the MSE in units of
``target_scale`` (set them with :meth:`Ecg2ActNetwork.set_target_normalisation`, e.g. from
:func:`activation_normalisation`; the defaults 0 and 1 give the paper's plain MSE).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ecgcohort.ecg.leads import LEAD_NAMES
from ecgcohort.learning.layers import derived_seed
from ecgcohort.learning.spec import TrainableModel
from ecgcohort.llnl import N_SITES

NETWORKS: tuple[str, ...] = ("I", "II")
#: Parameter counts of paper 3, sec. 2.2.
PAPER_PARAMETERS: dict[str, int] = {"I": 486_657, "II": 392_907}
#: (input channels, squeeze channels, expand channels per branch) of SqueezeNet 1.1's fires.
FIRES: tuple[tuple[int, int, int], ...] = ((64, 16, 64), (128, 16, 64), (128, 32, 128), (256, 32, 128),
                                           (256, 48, 192), (384, 48, 192), (384, 64, 256), (512, 64, 256))
#: Network I max-pools before these fires (SqueezeNet 1.1).
POOL_BEFORE: tuple[int, ...] = (0, 2, 4)
#: Network I's head averages its features over this many consecutive parts of the record.
HEAD_BINS = 3
TRUNK_CHANNELS = 64
MODEL_KIND = "ecg2act-network-{}"


@dataclass(frozen=True)
class NetworkSpec:
    """One network: ``network`` "I" (activation times, (B, n_sites)) or "II" (V_m,
    (B, n_sites, n_times)); input (B, n_leads, n_times). ``dilations`` of the eight fires'
    expand-3 convolutions: None is (1,)*8 for Network I and (2, 4, …, 256) for Network II."""

    network: str = "I"
    n_leads: int = len(LEAD_NAMES)
    n_times: int = 500
    n_sites: int = N_SITES
    dilations: tuple[int, ...] | None = None
    seed: int = 0
    #: probability of zeroing a feature of the trunk's output in training (the authors' code:
    #: 0.1 for Network I, 0 for II); evaluation never drops
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network '{self.network}' is not one of {', '.join(NETWORKS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if min(self.n_leads, self.n_times, self.n_sites) < 1:
            raise ValueError(f"n_leads, n_times and n_sites must be >= 1, got {self.n_leads}, {self.n_times}, "
                             f"{self.n_sites}")
        if self.dilations is not None:
            object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
            if len(self.dilations) != len(FIRES) or min(self.dilations) < 1:
                raise ValueError(f"dilations must be {len(FIRES)} integers >= 1, got {self.dilations}")

    @property
    def fire_dilations(self) -> tuple[int, ...]:
        if self.dilations is not None:
            return self.dilations
        return (1,) * len(FIRES) if self.network == "I" else tuple(2 ** (k + 1) for k in range(len(FIRES)))

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "NetworkSpec":
        """From the field names as keys; unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown NetworkSpec key(s) {unknown}; known: {sorted(known)}")
        return cls(**section)

    def to_config(self) -> dict[str, Any]:
        config = asdict(self)
        config["dilations"] = None if self.dilations is None else list(self.dilations)
        return config


class Fire1d(torch.nn.Module):
    """(B, in, T) → (B, 2·expand, T): ReLU(squeeze 1-wide) → [ReLU(expand 1-wide),
    ReLU(expand 3-wide, dilated)] concatenated; the length is kept."""

    def __init__(self, in_channels: int, squeeze: int, expand: int, dilation: int = 1):
        super().__init__()
        self.squeeze = torch.nn.Conv1d(in_channels, squeeze, 1)
        self.expand1 = torch.nn.Conv1d(squeeze, expand, 1)
        self.expand3 = torch.nn.Conv1d(squeeze, expand, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1(s)), torch.relu(self.expand3(s))], dim=1)


def _trunk(spec: NetworkSpec) -> torch.nn.Sequential:
    stride = 2 if spec.network == "I" else 1
    layers: list[torch.nn.Module] = [torch.nn.Conv1d(spec.n_leads, TRUNK_CHANNELS, 3, stride=stride, padding=1),
                                     torch.nn.ReLU()]
    for index, ((channels, squeeze, expand), dilation) in enumerate(zip(FIRES, spec.fire_dilations)):
        if spec.network == "I" and index in POOL_BEFORE:
            layers.append(torch.nn.MaxPool1d(3, stride=2, ceil_mode=True))
        layers.append(Fire1d(channels, squeeze, expand, dilation))
    return torch.nn.Sequential(*layers)


def _head(spec: NetworkSpec) -> torch.nn.Sequential:
    out = 2 * FIRES[-1][2]
    if spec.network == "I":
        layers = [torch.nn.Conv1d(out, spec.n_sites, 3, stride=2), torch.nn.ReLU(),
                  torch.nn.AdaptiveAvgPool1d(HEAD_BINS),
                  torch.nn.Conv1d(spec.n_sites, spec.n_sites, HEAD_BINS, stride=2), torch.nn.Flatten()]
    else:
        layers = [torch.nn.Conv1d(out, spec.n_sites, 1)]
    return torch.nn.Sequential(*layers)


def check_network_i_length(trunk: torch.nn.Module, spec: NetworkSpec) -> None:
    """ValueError unless Network I's trunk leaves the head's stride-2 convolution at least 3
    samples: ``n_times`` ≥ 47 (the first convolution's stride and three poolings halve it four
    times)."""
    try:
        with torch.no_grad():
            length = trunk(torch.zeros(1, spec.n_leads, spec.n_times)).shape[-1]
    except RuntimeError:
        length = 0
    if length < 3:
        raise ValueError(f"Network I needs ECGs of at least 47 samples: n_times={spec.n_times} leaves its head "
                         f"{length} (it takes 3)")


def _initialise(trunk: torch.nn.Module, head: torch.nn.Sequential) -> None:
    """SqueezeNet's initialisation: He-uniform weights and zero biases (PyTorch's default
    init shrinks the signal through 17 convolutions until the features no longer depend on
    the ECG), the last convolution N(0, 0.01²) — an untrained network predicts the offset."""
    convs = [m for m in (*trunk.modules(), *head.modules()) if isinstance(m, torch.nn.Conv1d)]
    for conv in convs[:-1]:
        torch.nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
        torch.nn.init.zeros_(conv.bias)
    torch.nn.init.normal_(convs[-1].weight, std=0.01)
    torch.nn.init.zeros_(convs[-1].bias)


class Ecg2ActNetwork(TrainableModel):
    """Network I or II of a :class:`NetworkSpec` as a trainable model.

    ``forward(ecg)``: normalised ECG (B, n_leads, n_times) → ``target_offset + target_scale ·
    net(ecg)``, (B, n_sites) activation times (ms) for Network I, (B, n_sites, n_times) V_m
    normalised to [0, 1] for Network II. Batch rows for :func:`ecgcohort.learning.fit`:
    ``ecg`` (B, 12, 500) from :func:`normalise_ecg`, ``target`` of the output's shape; loss =
    mean((prediction − target)/target_scale)², part ``"mse"`` (the same, detached)."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(spec.seed, 0))
            self.trunk = _trunk(spec)
            self.head = _head(spec)
            _initialise(self.trunk, self.head)
        if spec.network == "I":
            check_network_i_length(self.trunk, spec)
        shape = (spec.n_sites,) if spec.network == "I" else (spec.n_sites, 1)
        self.register_buffer("target_offset", torch.zeros(shape))
        self.register_buffer("target_scale", torch.ones(shape))
        self.onset_shift_samples, self.dt_ms = 0, 1.0
        self.on_train_epoch_start(0)

    def on_train_epoch_start(self, epoch: int) -> None:
        """Reseed the generator of the training draws (dropout masks, onset shifts) from
        (seed, epoch): the backbone calls this at every epoch's start, a resumed run included."""
        self.generator = torch.Generator().manual_seed(derived_seed(self.spec.seed, 1 + epoch))

    def set_onset_shift(self, max_samples: int, dt_ms: float) -> None:
        """Network I only: in training, delay every ECG by a shift drawn uniformly from
        0…``max_samples`` samples and add shift · ``dt_ms`` (ms) to its activation times
        (:func:`shift_onset`); 0 turns it off."""
        if max_samples and self.spec.network != "I":
            raise ValueError("the onset shift moves activation times: Network I only (the authors' Network II "
                             "has none)")
        if not 0 <= int(max_samples) < self.spec.n_times or not dt_ms > 0:
            raise ValueError(f"the onset shift must be 0 to {self.spec.n_times - 1} samples with a positive step, "
                             f"got {max_samples} samples of {dt_ms} ms")
        self.onset_shift_samples, self.dt_ms = int(max_samples), float(dt_ms)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one sample's output."""
        return (self.spec.n_sites,) if self.spec.network == "I" else (self.spec.n_sites, self.spec.n_times)

    def set_target_normalisation(self, offset: np.ndarray | float, scale: np.ndarray | float) -> None:
        """Set the output map ``offset + scale · net`` (broadcast to (n_sites,) for Network I,
        (n_sites, 1) for II, in the target's units); ``scale`` must be positive."""
        offset_t = torch.as_tensor(np.asarray(offset, dtype=np.float32)).reshape(-1)
        scale_t = torch.as_tensor(np.asarray(scale, dtype=np.float32)).reshape(-1)
        if not (torch.isfinite(offset_t).all() and torch.isfinite(scale_t).all() and (scale_t > 0).all()):
            raise ValueError("target offset must be finite and target scale finite and positive")
        if offset_t.numel() not in (1, self.spec.n_sites) or scale_t.numel() not in (1, self.spec.n_sites):
            raise ValueError(f"target offset and scale must be scalars or {self.spec.n_sites} values, got "
                             f"{offset_t.numel()} and {scale_t.numel()}")
        with torch.no_grad():
            self.target_offset.copy_(offset_t.reshape(-1, *self.target_offset.shape[1:]).expand_as(self.target_offset))
            self.target_scale.copy_(scale_t.reshape(-1, *self.target_scale.shape[1:]).expand_as(self.target_scale))

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        if ecg.ndim != 3 or tuple(ecg.shape[1:]) != (spec.n_leads, spec.n_times):
            raise ValueError(f"Network {spec.network} takes ECGs of shape (B, {spec.n_leads}, {spec.n_times}), got "
                             f"{tuple(ecg.shape)}")
        return self.target_offset + self.target_scale * self.head(self._dropout(self.trunk(ecg)))

    def _dropout(self, features: torch.Tensor) -> torch.Tensor:
        """Inverted dropout of the trunk's features in training (the mask from the epoch's
        generator, drawn on the CPU); the identity in eval mode."""
        rate = self.spec.dropout
        if not self.training or rate == 0.0:
            return features
        keep = torch.rand(features.shape, generator=self.generator) >= rate
        return features * keep.to(device=features.device, dtype=features.dtype) / (1.0 - rate)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ecg, target = batch["ecg"], batch["target"].float()
        if self.training and self.onset_shift_samples:
            shifts = torch.randint(0, self.onset_shift_samples + 1, (len(ecg),), generator=self.generator)
            ecg, target = shift_onset(ecg, target, shifts.to(ecg.device), self.dt_ms)
        predicted = self(ecg).float()
        if predicted.shape != target.shape:
            raise ValueError(f"Network {self.spec.network}: targets of shape {tuple(target.shape)}, the network "
                             f"predicts {tuple(predicted.shape)}")
        mse = ((predicted - target) / self.target_scale).square().mean()
        return mse, {"mse": mse.detach()}


def shift_onset(ecg: torch.Tensor, activation_ms: torch.Tensor, shifts: torch.Tensor,
                dt_ms: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' onset shift (``initial_time_aug`` of landajuela/cardiac_ml's
    ``Ecg2TimeDataset``): ECGs (B, leads, T) delayed by ``shifts`` (B,) samples — zeros before,
    the last samples dropped — and activation times (B, sites) ms moved with them by
    shift · ``dt_ms``, so the target keeps its timing against the ECG."""
    count = ecg.shape[-1]
    source = torch.arange(count, device=ecg.device) - shifts.reshape(-1, 1, 1)
    delayed = torch.gather(ecg, -1, source.clamp(min=0).expand(-1, ecg.shape[1], -1))
    delayed = torch.where(source >= 0, delayed, torch.zeros((), dtype=ecg.dtype, device=ecg.device))
    return delayed, activation_ms + dt_ms * shifts.reshape(-1, 1).to(activation_ms.dtype)


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameters (buffers excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ---- normalisation (numpy) -------------------------------------------------------------------

def check_ecg(ecg: np.ndarray, n_times: int | None = None, n_leads: int = len(LEAD_NAMES)) -> np.ndarray:
    """``ecg`` as a float array (..., n_leads, T), T = ``n_times`` if given; ValueError for
    another shape or non-finite values (naming the first one's index)."""
    x = np.asarray(ecg)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    expected = f"(..., {n_leads}, {'T' if n_times is None else n_times})"
    if x.ndim < 2 or x.shape[-2] != n_leads or (n_times is not None and x.shape[-1] != n_times):
        raise ValueError(f"an ECG must have shape {expected} (leads {' '.join(LEAD_NAMES)}), got {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"the ECG has {int(bad.sum())} non-finite value(s), the first at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    return x


def normalise_ecg(ecg: np.ndarray, n_times: int | None = None) -> np.ndarray:
    """Each lead of ECG(s) (..., 12, T) divided by its peak-to-peak range over time (the
    paper's max_j X_ij − min_j X_ij = 1), dimensionless, float dtype kept. ValueError for a
    wrong shape, non-finite values or a flat lead (naming it)."""
    x = check_ecg(ecg, n_times)
    span = np.ptp(x, axis=-1, keepdims=True)
    flat = span[..., 0] <= 0
    if flat.any():
        index = tuple(int(i) for i in np.argwhere(flat)[0])
        raise ValueError(f"lead {LEAD_NAMES[index[-1]]} of ECG {index[:-1]} is flat: it cannot be scaled to a unit "
                         "peak-to-peak range")
    return x / span


@dataclass(frozen=True)
class VmScale:
    """V_m = low + (high − low) · v for v in [0, 1]; ``low`` and ``high`` in mV, scalars or
    (S, 1, 1) per sample."""

    low: np.ndarray
    high: np.ndarray

    def undo(self, normalised: np.ndarray) -> np.ndarray:
        """V_m in mV of normalised V_m."""
        return self.low + (self.high - self.low) * np.asarray(normalised, dtype=np.float64)


def normalise_vm(vm: np.ndarray, per_sample: bool = False,
                 bounds_mv: tuple[float, float] | None = None) -> tuple[np.ndarray, VmScale]:
    """V_m (S, 75, T) in mV scaled to [0, 1], with the :class:`VmScale` that undoes it.
    ``per_sample``: each V over its own range (the paper's "each V", exact but needs that
    range to undo a prediction); default: one range for the whole array (the same map for
    every sample, so a prediction can be undone); ``bounds_mv`` (low, high): a fixed range,
    e.g. a training bank's, for new data (values outside fall outside [0, 1])."""
    v = np.asarray(vm, dtype=np.float64)
    if v.ndim != 3 or v.shape[1] != N_SITES:
        raise ValueError(f"V_m must be (S, {N_SITES} sites, T), got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"V_m has {int((~np.isfinite(v)).sum())} non-finite value(s)")
    if bounds_mv is not None:
        low, high = (np.asarray(b, dtype=np.float64) for b in bounds_mv)
    elif per_sample:
        low, high = v.min(axis=(1, 2), keepdims=True), v.max(axis=(1, 2), keepdims=True)
    else:
        low, high = np.asarray(v.min()), np.asarray(v.max())
    if np.any(high <= low):
        raise ValueError("V_m is constant (over a sample or the whole array): no [0, 1] scaling")
    return (v - low) / (high - low), VmScale(low, high)


def activation_normalisation(times_ms: np.ndarray) -> tuple[np.ndarray, float]:
    """(offset (75,), scale) for Network I's output from training activation times (S, 75),
    ms: the per-site mean and the standard deviation of all centred times (ms)."""
    a = np.asarray(times_ms, dtype=np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"activation times must be (S >= 2, sites), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("activation times have NaNs (a site that never exceeds 0 mV?)")
    offset = a.mean(axis=0)
    scale = float((a - offset).std())
    if not scale > 0:
        raise ValueError("activation times do not vary between samples: no scale")
    return offset, scale


# ---- use -------------------------------------------------------------------------------------

def predict(model: Ecg2ActNetwork, ecg: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The model's outputs (S, …) as float64 for raw ECGs (S, 12, n_times) (normalised here by
    :func:`normalise_ecg`), without gradients, in eval mode, on the model's device: activation
    times in ms (Network I) or V_m in [0, 1] (Network II; :meth:`VmScale.undo` gives mV)."""
    x = normalise_ecg(ecg, model.spec.n_times).astype(np.float32)
    if x.ndim != 3:
        raise ValueError(f"predict takes a batch of ECGs (S, 12, {model.spec.n_times}), got {x.shape}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = [model(torch.from_numpy(x[i:i + batch_size]).to(device)).float().cpu().numpy()
                   for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, *model.output_shape))


def save_network(path: str | Path, model: Ecg2ActNetwork, metadata: Mapping[str, Any] | None = None) -> None:
    """A model file (:func:`ecgcohort.learning.save_model`, atomic) of kind
    ``ecg2act-network-I``/``-II`` holding the weights, the target normalisation and the spec."""
    from ecgcohort.learning.modelfile import save_model

    save_model(path, model.state_dict(), {**(metadata or {}), "kind": MODEL_KIND.format(model.spec.network),
                                          "spec": model.spec.to_config()})


def load_network(path: str | Path, network: str | None = None) -> tuple[Ecg2ActNetwork, dict[str, Any]]:
    """(model, metadata) of a :func:`save_network` file; ``network`` "I"/"II" refuses the
    other kind (:class:`~ecgcohort.learning.ModelFileError`)."""
    from ecgcohort.learning.modelfile import ModelFileError, load_model

    state, metadata = load_model(path, MODEL_KIND.format(network) if network else None)
    if not str(metadata.get("kind", "")).startswith(MODEL_KIND.format("")):
        raise ModelFileError(f"{path} holds a '{metadata.get('kind')}' model, not an ecg2act network")
    model = Ecg2ActNetwork(NetworkSpec.from_config(metadata["spec"]))
    model.load_state_dict(state)
    return model, metadata


__all__ = ["Ecg2ActNetwork", "FIRES", "Fire1d", "NETWORKS", "NetworkSpec", "PAPER_PARAMETERS", "VmScale",
           "activation_normalisation", "check_ecg", "count_parameters", "load_network", "normalise_ecg",
           "normalise_vm", "predict", "save_network", "shift_onset"]
