"""DeepSDF auto-decoder of the joint heart–torso anatomy (paper 1, sec. 2.5).

One decoder maps (x, z) to the signed distances of the four surfaces (torso, LV and RV
endocardium, epicardium); every training patient owns a latent code z, learned jointly with the
decoder (eq. 6). A new patient's code is the MAP estimate of eq. 7 with the decoder frozen.

Units. Everything the networks see is normalised by one cohort-wide :class:`NormalisationBox`:
x_n = (x − c)/s and sdf_n = sdf/s with one isotropic scale s, so a normalised SDF is still the
distance to the surface in normalised units (|∇ sdf_n| = 1). With the trunk about 0.6–0.7 m
tall, one normalised unit is about 350 mm. Sign convention: negative inside.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ecgcohort.learning.spec import TrainableModel
from ecgcohort.learning.layers import FourierFeatures, SkipMLP, derived_seed

SURFACES: tuple[str, ...] = ("torso", "lv_endocardium", "rv_endocardium", "epicardium")


def _from_section(cls: type, section: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of dataclass ``cls`` from a config section; unknown keys are errors
    (a misspelt key would otherwise fall back to a default silently)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; known: {sorted(known)}")
    return dict(section)


@dataclass(frozen=True)
class DeepSdfSpec:
    """Architecture and loss weights of the DeepSDF model (distances in normalised units).

    Defaults and why:

    * ``latent_dim=16``, ``hidden=256``, ``layers=5``, ``skip_at=3``: the paper (x is
      concatenated again after the third hidden layer).
    * ``fourier_features=32``, ``fourier_scale=4`` (cycles per normalised unit): ‖Bᵢ‖ is about
      1.6·σ on average and about 3.5·σ for the largest of 32, i.e. wavelengths from ≈50 mm (the
      heart) down to ≈25 mm (a ventricular cavity) at s ≈ 350 mm. Finer detail is left to the
      ReLU layers: a larger σ makes coordinate networks interpolate with high-frequency noise
      between samples (Tancik et al. 2020), and away from the surfaces ours are tens of mm apart.
    * ``clamp=0.1``: DeepSDF's clamp (their shapes fill the unit sphere, ours the unit cube);
      ≈35 mm, more than a ventricular cavity's radius plus the wall, so the heart's distances are
      fitted unclamped everywhere in and around the heart, and the torso's within 35 mm of the
      skin, where the electrodes are.
    * ``lipschitz=True``, ``lambda_lipschitz=1e-6``: Liu et al.'s weight for the same squared
      SDF loss on a [−1, 1] domain. At initialisation the bound product is ~3e5 (penalty ~0.3,
      shrunk by Adam within the first epochs); once the product is ~10, the penalty (1e-5) is
      about the squared error of a 1 mm fit ((1/350)² ≈ 8e-6), i.e. smoothness and millimetre
      accuracy are traded at this weight — the per-epoch "lipschitz" loss part shows which wins.
    * ``lambda_prior=1e-4``, ``code_std=0.01``: DeepSDF's code regulariser and N(0, 0.01²)
      initialisation of the codes.
    """

    latent_dim: int = 16
    hidden: int = 256
    layers: int = 5
    skip_at: int = 3
    fourier_features: int = 32
    fourier_scale: float = 4.0
    lipschitz: bool = True
    lambda_lipschitz: float = 1e-6
    lambda_prior: float = 1e-4
    code_std: float = 0.01
    clamp: float = 0.1
    surfaces: tuple[str, ...] = SURFACES
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "surfaces", tuple(str(s) for s in self.surfaces))
        if min(self.latent_dim, self.hidden, self.layers) < 1 or self.fourier_features < 0:
            raise ValueError("latent_dim, hidden and layers must be >= 1, fourier_features >= 0")
        if not 1 <= self.skip_at <= self.layers:
            raise ValueError(f"skip_at must be within 1..{self.layers}, got {self.skip_at}")
        if not (self.fourier_scale > 0 and self.clamp > 0 and self.code_std > 0):
            raise ValueError("fourier_scale, clamp and code_std must be > 0")
        if self.lambda_lipschitz < 0 or self.lambda_prior < 0:
            raise ValueError("loss weights must be >= 0")
        if not self.surfaces or len(set(self.surfaces)) != len(self.surfaces):
            raise ValueError(f"surfaces must be non-empty and distinct, got {self.surfaces}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "DeepSdfSpec":
        """From a config mapping with the field names as keys (missing keys take defaults)."""
        return cls(**_from_section(cls, section))

    def to_config(self) -> dict[str, Any]:
        """Plain JSON/YAML types (surfaces as a list); ``from_config`` inverts it."""
        config = asdict(self)
        config["surfaces"] = list(self.surfaces)
        return config


@dataclass(frozen=True)
class NormalisationBox:
    """x_n = (x_mm − center_mm)/scale_mm, sdf_n = sdf_mm/scale_mm (isotropic: distances stay
    distances)."""

    center_mm: tuple[float, float, float]
    scale_mm: float

    def __post_init__(self) -> None:
        center = tuple(float(v) for v in self.center_mm)
        if len(center) != 3 or not all(map(math.isfinite, center)):
            raise ValueError(f"center_mm must be 3 finite numbers, got {self.center_mm!r}")
        if not (math.isfinite(self.scale_mm) and self.scale_mm > 0):
            raise ValueError(f"scale_mm must be finite and > 0, got {self.scale_mm!r}")
        object.__setattr__(self, "center_mm", center)
        object.__setattr__(self, "scale_mm", float(self.scale_mm))

    @classmethod
    def from_bounds(cls, lower: np.ndarray, upper: np.ndarray, padding: float = 0.1) -> "NormalisationBox":
        """The cohort-wide box around torso bounds (mm): ``lower``/``upper`` of shape (3,) or
        (n_patients, 3) (then the box holds them all). Its centre goes to 0 and its longest
        half-side times (1 + padding) to 1, so the bounds map into [−1/(1+p), 1/(1+p)]³ and
        near-surface samples just outside the torso stay inside [−1, 1]³."""
        lo = np.asarray(lower, dtype=np.float64).reshape(-1, 3).min(axis=0)
        hi = np.asarray(upper, dtype=np.float64).reshape(-1, 3).max(axis=0)
        if np.any(hi <= lo) or padding < 0:
            raise ValueError(f"need upper > lower and padding >= 0, got {lo}, {hi}, {padding}")
        return cls(tuple((lo + hi) / 2), float((1.0 + padding) * np.max(hi - lo) / 2))

    def normalise(self, x_mm: np.ndarray) -> np.ndarray:
        return (np.asarray(x_mm, dtype=np.float64) - self.center_mm) / self.scale_mm

    def denormalise(self, x_n: np.ndarray) -> np.ndarray:
        return np.asarray(x_n, dtype=np.float64) * self.scale_mm + self.center_mm

    def normalise_sdf(self, sdf_mm: np.ndarray) -> np.ndarray:
        return np.asarray(sdf_mm, dtype=np.float64) / self.scale_mm

    def denormalise_sdf(self, sdf_n: np.ndarray) -> np.ndarray:
        return np.asarray(sdf_n, dtype=np.float64) * self.scale_mm

    def to_dict(self) -> dict[str, Any]:
        return {"center_mm": list(self.center_mm), "scale_mm": self.scale_mm}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NormalisationBox":
        return cls(tuple(data["center_mm"]), float(data["scale_mm"]))


class ShapeDecoder(torch.nn.Module):
    """(x_n (B, 3), z (B, d)) ↦ normalised SDFs (B, S), one column per ``spec.surfaces``.
    Input z ⊕ FourierFeatures(x); x is concatenated again after hidden layer ``skip_at``."""

    def __init__(self, spec: DeepSdfSpec):
        super().__init__()
        self.spec = spec
        self.fourier = FourierFeatures(3, spec.fourier_features, spec.fourier_scale, derived_seed(spec.seed, 0))
        self.mlp = SkipMLP(spec.latent_dim + self.fourier.out_dim, spec.hidden, spec.layers, len(spec.surfaces),
                           skip_at=spec.skip_at, skip_dim=3, lipschitz=spec.lipschitz,
                           generator=torch.Generator().manual_seed(derived_seed(spec.seed, 1)))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([z, self.fourier(x)], dim=-1), skip=x)

    def lipschitz_product(self) -> torch.Tensor:
        return self.mlp.lipschitz_product()


def clamped_sdf_loss(pred: torch.Tensor, sdf: torch.Tensor, clamp: float) -> torch.Tensor:
    """Mean over rows and surfaces of (p − clamp(sdf))² (normalised units², as ``pred``, ``sdf``
    and ``clamp``), clamp to [−clamp, clamp]: where the true
    distance is beyond the clamp, a prediction beyond it on the same side costs nothing (DeepSDF's
    clamp: far away only the side has to be right), so p is the prediction clamped on that side
    only. DeepSDF clamps the prediction on both sides, which gives no gradient to a prediction
    beyond the clamp on the wrong side: a surface whose output leaves the clamp band everywhere
    (the RV of the default cohort's decoder, decoded 31–69 mm outside at every sample) can never
    come back."""
    pred, sdf = pred.float(), sdf.float()
    upper = torch.where(sdf >= clamp, clamp, torch.inf)
    lower = torch.where(sdf <= -clamp, -clamp, -torch.inf)
    return (torch.clamp(pred, min=lower, max=upper) - sdf.clamp(-clamp, clamp)).square().mean()


class AutoDecoder(TrainableModel):
    """A :class:`ShapeDecoder` plus one trainable code per training shape (eq. 6).

    Batch rows: ``shape`` (B,) int64 code index, ``x`` (B, 3) and ``sdf`` (B, S) normalised.
    Loss = clamped SDF MSE (:func:`clamped_sdf_loss`) + λ_prior · mean over rows of ‖z_row‖²
    + λ_Lip · ∏ softplus(cᵢ);
    the parts are returned unweighted ("sdf", "prior", "lipschitz")."""

    def __init__(self, spec: DeepSdfSpec, n_shapes: int):
        super().__init__()
        if n_shapes < 1:
            raise ValueError(f"n_shapes must be >= 1, got {n_shapes}")
        self.spec = spec
        self.decoder = ShapeDecoder(spec)
        self.codes = torch.nn.Embedding(n_shapes, spec.latent_dim)
        generator = torch.Generator().manual_seed(derived_seed(spec.seed, 2))
        with torch.no_grad():
            self.codes.weight.normal_(0.0, spec.code_std, generator=generator)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.codes(batch["shape"])
        sdf = clamped_sdf_loss(self.decoder(batch["x"], z), batch["sdf"], self.spec.clamp)
        prior = z.float().square().sum(dim=1).mean()
        lipschitz = self.decoder.lipschitz_product()
        loss = sdf + self.spec.lambda_prior * prior + self.spec.lambda_lipschitz * lipschitz
        return loss, {"sdf": sdf.detach(), "prior": prior.detach(), "lipschitz": lipschitz.detach()}


def latent_prior(codes: np.ndarray, shrinkage: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of trained codes (N, d), for eq. 7. The sample covariance
    (ddof 1) is singular when N ≤ d, so ``shrinkage`` · mean(diag Σ) · I is added: a ridge
    proportional to the codes' average variance, which leaves the well-sampled directions
    nearly untouched. Raises ValueError if the result is still not positive definite."""
    z = np.asarray(codes, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need codes of shape (N >= 2, d), got {z.shape}")
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be >= 0, got {shrinkage}")
    mean = z.mean(axis=0)
    cov = np.atleast_2d(np.cov(z, rowvar=False, ddof=1))
    cov = cov + shrinkage * np.mean(np.diag(cov)) * np.eye(z.shape[1])
    _cholesky(cov, f"the covariance of {z.shape[0]} codes in {z.shape[1]} dimensions (use shrinkage > 0)")
    return mean, cov


def _cholesky(cov: np.ndarray, what: str = "the prior covariance") -> np.ndarray:
    try:
        return np.linalg.cholesky(np.asarray(cov, dtype=np.float64))
    except np.linalg.LinAlgError:
        raise ValueError(f"{what} is singular or not positive definite") from None


def mahalanobis(z: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """Mahalanobis distance √((z − μ)ᵀ Σ⁻¹ (z − μ)) (eq. 7's penalty is its square)."""
    chol = _cholesky(cov)
    u = np.linalg.solve(chol, np.asarray(z, dtype=np.float64) - np.asarray(mean, dtype=np.float64))
    return float(np.sqrt(u @ u))


@dataclass(frozen=True)
class MapSpec:
    """MAP code inference (eq. 7).

    The code is optimised as z = μ + L u with Σ = L Lᵀ (Cholesky), u starting at 0 (z = μ):
    the same objective, but the Mahalanobis term is ‖u‖² and Adam's step ``learning_rate`` is
    in units of the training codes' spread, so it does not depend on how large the codes grew.

    * ``iterations=800``, learning rate × ``lr_decay=0.1`` after ``decay_at=0.5`` of them,
      ``points_per_iteration=8192`` (None: all points): DeepSDF's reconstruction schedule.
    * ``learning_rate=0.05``: a training code lies ≈√d = 4 whitened units from μ, reached in
      ~100 steps, leaving the rest to converge.
    * ``gamma=1e-8`` (λ_Maha): with Gaussian SDF noise of variance τ² and N independent samples,
      the posterior gives γ = τ²/N; τ = 1 mm (≈3e-3 normalised, τ² ≈ 8e-6) and N ≈ 1000
      effectively independent samples (neighbouring samples are correlated) give ≈ 1e-8.
    """

    iterations: int = 800
    learning_rate: float = 0.05
    lr_decay: float = 0.1
    decay_at: float = 0.5
    gamma: float = 1e-8
    points_per_iteration: int | None = 8192
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 1 or not self.learning_rate > 0 or self.gamma < 0 or not 0 <= self.decay_at <= 1:
            raise ValueError("need iterations >= 1, learning_rate > 0, gamma >= 0, 0 <= decay_at <= 1")
        if self.points_per_iteration is not None and self.points_per_iteration < 1:
            raise ValueError("points_per_iteration must be >= 1 or None (all points)")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "MapSpec":
        return cls(**_from_section(cls, section))


@dataclass(frozen=True)
class MapResult:
    """``code`` (d,); ``mahalanobis`` its distance to the prior; ``loss`` eq. 7's objective and
    ``sdf_loss`` its clamped SDF term, both over all points (normalised units²); ``history``
    the objective per iteration on that iteration's points."""

    code: np.ndarray
    mahalanobis: float
    loss: float
    sdf_loss: float
    history: np.ndarray


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _check_points(decoder: ShapeDecoder, x_n: np.ndarray, sdf_n: np.ndarray | None = None) -> None:
    if np.ndim(x_n) != 2 or np.shape(x_n)[1] != 3 or np.shape(x_n)[0] == 0:
        raise ValueError(f"x_n must have shape (P > 0, 3), got {np.shape(x_n)}")
    expected = (np.shape(x_n)[0], len(decoder.spec.surfaces))
    if sdf_n is not None and np.shape(sdf_n) != expected:
        raise ValueError(f"sdf_n must have shape {expected}, got {np.shape(sdf_n)}")


def _sdf_loss_all(decoder: ShapeDecoder, z: torch.Tensor, x: torch.Tensor, s: torch.Tensor,
                  batch_size: int = 65536) -> float:
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, sb = x[start:start + batch_size], s[start:start + batch_size]
            total += float(clamped_sdf_loss(decoder(xb, z.expand(len(xb), -1)), sb, decoder.spec.clamp)) * len(xb)
    return total / len(x)


def map_code(decoder: ShapeDecoder, x_n: np.ndarray, sdf_n: np.ndarray, prior_mean: np.ndarray,
             prior_cov: np.ndarray, spec: MapSpec = MapSpec()) -> MapResult:
    """The code of a new shape from its samples ``x_n`` (P, 3) and ``sdf_n`` (P, S), normalised:
    argmin_z mean (clamp(pred) − clamp(s))² + γ (z − μ)ᵀ Σ⁻¹ (z − μ) (eq. 7) by Adam on z only,
    on the decoder's device. The decoder is frozen during the call (no gradients, eval mode)
    and left as it was. Deterministic on the CPU for a given ``spec.seed``."""
    _check_points(decoder, x_n, sdf_n)
    mean = np.asarray(prior_mean, dtype=np.float64)
    chol64 = _cholesky(prior_cov)
    if mean.shape != (decoder.spec.latent_dim,):
        raise ValueError(f"prior_mean must have shape ({decoder.spec.latent_dim},), got {mean.shape}")
    device = _device(decoder)
    x = torch.as_tensor(np.asarray(x_n), dtype=torch.float32, device=device)
    s = torch.as_tensor(np.asarray(sdf_n), dtype=torch.float32, device=device)
    mu = torch.as_tensor(mean, dtype=torch.float32, device=device)
    chol = torch.as_tensor(chol64, dtype=torch.float32, device=device)
    u = torch.zeros(len(mean), device=device, requires_grad=True)
    optimiser = torch.optim.Adam([u], lr=spec.learning_rate)
    generator = torch.Generator().manual_seed(spec.seed)
    n_points = len(x)
    subset = spec.points_per_iteration is not None and spec.points_per_iteration < n_points
    decay_step = int(spec.decay_at * spec.iterations)
    history = []
    was_training = decoder.training
    grad_flags = [p.requires_grad for p in decoder.parameters()]
    try:
        decoder.eval()
        decoder.requires_grad_(False)
        for step in range(spec.iterations):
            if step == decay_step:
                for group in optimiser.param_groups:
                    group["lr"] = spec.learning_rate * spec.lr_decay
            if subset:
                rows = torch.randperm(n_points, generator=generator)[:spec.points_per_iteration].to(device)
                xb, sb = x.index_select(0, rows), s.index_select(0, rows)
            else:
                xb, sb = x, s
            z = mu + chol @ u
            loss = clamped_sdf_loss(decoder(xb, z.expand(len(xb), -1)), sb, decoder.spec.clamp) \
                + spec.gamma * u.square().sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            history.append(loss.detach())
        u_final = u.detach()
        sdf_loss = _sdf_loss_all(decoder, mu + chol @ u_final, x, s)
    finally:
        decoder.train(was_training)
        for parameter, flag in zip(decoder.parameters(), grad_flags):
            parameter.requires_grad_(flag)
    u64 = u_final.cpu().double().numpy()
    maha2 = float(u64 @ u64)
    return MapResult(code=mean + chol64 @ u64, mahalanobis=math.sqrt(maha2), loss=sdf_loss + spec.gamma * maha2,
                     sdf_loss=sdf_loss, history=torch.stack(history).cpu().numpy())


def predict_sdf(decoder: ShapeDecoder, code: np.ndarray | Sequence[float], x_n: np.ndarray,
                batch_size: int = 65536) -> np.ndarray:
    """Normalised SDFs (P, S) float32 of the shape with ``code`` (d,) at ``x_n`` (P, 3),
    evaluated in chunks of ``batch_size`` points on the decoder's device without gradients."""
    _check_points(decoder, x_n)
    device = _device(decoder)
    z = torch.as_tensor(np.asarray(code, dtype=np.float32), device=device).reshape(1, -1)
    if z.shape[1] != decoder.spec.latent_dim:
        raise ValueError(f"code must have {decoder.spec.latent_dim} entries, got {z.shape[1]}")
    x_all = np.asarray(x_n)
    out = np.empty((len(x_all), len(decoder.spec.surfaces)), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(x_all), batch_size):
            x = torch.as_tensor(x_all[start:start + batch_size], dtype=torch.float32, device=device)
            out[start:start + len(x)] = decoder(x, z.expand(len(x), -1)).float().cpu().numpy()
    return out
