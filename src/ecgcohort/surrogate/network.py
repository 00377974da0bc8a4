"""The lead-field surrogate NN_LF(x, ẽ, z) → ∇Z (paper 1, sec. 2.3).

Inputs: a point x (m, fed to the network normalised by the cohort's
:class:`~ecgcohort.encoding.deepsdf.NormalisationBox`), an electrode ẽ in normalised torso
coordinates (x ∈ [−1, 1] right to left, y ∈ [0, 1] posterior to anterior, z ∈ [0, 1] superior
to inferior) and a patient's geometry code z (PCA or DeepSDF). Output: ∇Z_e(x) in Ω/m.

Target normalisation. Next to an electrode ∇Z grows like 1/R², R = |x − e| (the point-source
field, doubled by the insulating skin): between 1 cm and 50 cm from an electrode it spans more
than three orders of magnitude, so an MSE on raw ∇Z would fit the few points next to the
electrodes and ignore the heart. The pseudo lead field ∇Z* = (e − x)/(4πσ0R³) (eq. 11) has
the same singularity and a closed form for every (x, e), so the network works in units of its
magnitude |∇Z*| = 1/(4πσ0R²): with u* = ∇Z*/|∇Z*| = (e − x)/R,

* ``target="full"``:            ∇Z = |∇Z*| · NN,             target t = ∇Z/|∇Z*|;
* ``target="pseudo_residual"``: ∇Z = κ∇Z* + |∇Z*| · NN,     target t − κu*.

t is O(1) everywhere (in the homogeneous ball of the tests 2 ≤ |t| ≤ 4: 2 next to the electrode,
3 at the centre, 4 opposite). An MSE in this space weights every point by its *relative* error
|Δ∇Z|/|∇Z*|, and since |∇Z*| > 0 is a scalar, t has the direction of ∇Z: angular errors
(paper sec. 2.6) are the same in both spaces. A global or per-patient scale would keep the
1/R² range; a direction + log-magnitude split would need four outputs and a loss that is no
longer eq. 5's MSE on the vector the ECG integrates (eq. 3 is linear in ∇Z).

κ (``pseudo_factor``, default 2). Next to an electrode on the skin the body is locally a
half-space bounded by an insulator, whose lead field is exactly 2Z* (method of images), so 2∇Z*
is the leading term of ∇Z at every surface electrode, whatever the torso. With κ = 2 the
residual vanishes at the electrode and is continuous there; with κ = 1 (the paper's pseudo lead
field) it tends to u*, which turns by 180° around the electrode — the very direction field the
residual form is meant to take off the network. Trained on the homogeneous ball of the tests
(radius as the code), held-out angular errors after the first of 16 epochs were 28.5° (full),
11.7° (κ = 1) and 3.5° (κ = 2), after the last 3.8°, 1.9° and 1.7°.

The two forms have the same loss as a function of the predicted ∇Z — the offset κu* cancels
in the MSE, and the cosine term is taken on κu* + NN — so they differ only in what the network
has to represent. The full form must build u*(x, e), a direction field that turns by 180°
around every electrode, from an electrode given in torso-normalised coordinates (its position
in the body is only implicit in the code); the residual form gets it exactly and learns the
torso's correction, smooth up to the electrode.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ecgcohort.ecg.pseudo import pseudo_lead_field_gradient
from ecgcohort.encoding.deepsdf import NormalisationBox
from ecgcohort.learning.layers import FourierFeatures, SkipMLP, derived_seed
from ecgcohort.learning.spec import TrainableModel

TARGETS: tuple[str, ...] = ("full", "pseudo_residual")
WEIGHTINGS: tuple[str, ...] = ("uniform", "relative")
#: Floor of |∇Z/|∇Z*|| in the relative weighting: rows where ∇Z nearly vanishes against ∇Z*
#: (saddles of Z) are weighted as if |∇Z| were 0.1 |∇Z*| rather than without bound.
RELATIVE_FLOOR = 0.1

#: Slack on the normalised electrode range. The coordinates come from the torso's own bounding
#: box, so an electrode on the skin is inside by construction; 0.02 (6–12 mm of a 300–600 mm
#: box) only absorbs round-off and an electrode placed a few millimetres off the surface.
ELECTRODE_TOLERANCE = 0.02

#: Volume tags of a point, as the dataset's ``sample_region`` (``leadfield.sampling``): the
#: one-hot columns of the region input, in this order.
REGIONS: tuple[int, ...] = (1, 2, 3)
REGION_NAMES: tuple[str, ...] = ("myocardium", "torso", "blood pool")
MYOCARDIUM = 1

#: The paper's ε in the cosine's denominator (eq. 5). Targets are O(1) after normalisation, so
#: an absolute ε this small changes no cosine of a non-degenerate pair.
COSINE_EPS = 1e-6


@dataclass(frozen=True)
class SurrogateSpec:
    """Architecture, loss weight, target form and σ0 of a lead-field surrogate.

    Defaults and why:

    * ``hidden=256``, ``layers=5``, ``inject_at=3``: the paper (code and electrode concatenated
      to the output of the third hidden layer); plain ReLU layers — the paper uses Lipschitz
      layers for DeepSDF only.
    * ``fourier_features=32``, ``fourier_scale=4`` (cycles per normalised unit, one unit
      ≈ 350 mm): the box and the anatomy are DeepSDF's, and so is the detail the paper adds
      Fourier features for — the heart–torso interface, where ∇Z turns abruptly. Frequencies
      up to ≈3.5σ give wavelengths down to ≈25 mm (a ventricular cavity); the samples are
      several mm apart, and a larger σ makes coordinate networks interpolate with
      high-frequency noise between them (Tancik et al. 2020).
    * ``lambda_cos=1`` (eq. 5): in the normalised space a rotation by δ of a target of norm m
      costs 2m²(1 − cos δ) in the MSE and λ(1 − cos δ) in the cosine term. Where ∇Z is as
      strong as ∇Z* or stronger (m ≳ 1; 2 ≤ m ≤ 4 in a homogeneous insulated ball) the MSE
      already weighs direction and λ = 1 changes little (λ = 0, 1, 4 trained the ball of the
      tests to the same error within 0.2°); where ∇Z is weak against ∇Z* (m < 1/√2) the cosine
      term takes over — the paper's purpose for it. A larger λ would favour direction over
      magnitude, which the ECG needs equally (eq. 3 is linear in ∇Z).
    * ``target="pseudo_residual"``, ``pseudo_factor=2``: the singular part of ∇Z is given
      exactly (module docstring). At equal budgets the residual form beat ``full`` in the ball
      of the tests and in the earlier cohort reference (12.7° against 19.6°), and κ = 2 beat
      κ = 1 in the ball. ``full`` is the paper's form.
    * ``weighting="uniform"``: eq. 5's MSE on the normalised target. ``relative`` divides each
      row's squared error by |t|² (t = ∇Z/|∇Z*|, floored at :data:`RELATIVE_FLOOR`): the squared
      relative error of ∇Z. In a torso t is not O(1) everywhere as in the ball: far from an
      electrode the insulated body confines the current, ∇Z decays more slowly than 1/R², and t
      reaches 25 (median 2.2 in the myocardium, 4.5 in the torso, 99th percentile 6–23 per
      electrode on train-0000 of the default cohort), so the uniform MSE is dominated by the far
      torso. On the default cohort (4 epochs, DeepSDF codes, residual form) the relative
      weighting lowered the test patients' heart angular error from 16.3° to 14.9° and their
      ECG error from 0.86 to 0.58; the workflow's config default is ``relative``.
    * ``region_inputs=False``: the paper's inputs. ``True`` adds the point's volume (one-hot
      myocardium, torso, blood pool: :data:`REGIONS`) to the point's features. ∇Z is continuous
      in its tangential part across a conductivity interface but its normal part jumps by the
      conductivity ratio (0.7/0.2 S/m blood to torso; the anisotropic myocardium in between),
      while the Fourier features resolve nothing shorter than ≈25 mm, more than a ventricular
      wall is thick: without the tag a continuous network smears the jump over the wall. Every
      point the surrogate is asked about then needs its region (the lead matrix's cells are
      myocardium by definition).
    * ``sigma0=0.06`` S/m: the torso conductivity of the lead fields (paper, Potse 2006); the
      normalisation scales targets by 4πσ0R², so a model is tied to the σ0 it was trained with.
    """

    code_dim: int
    hidden: int = 256
    layers: int = 5
    inject_at: int = 3
    fourier_features: int = 32
    fourier_scale: float = 4.0
    lambda_cos: float = 1.0
    target: str = "pseudo_residual"
    pseudo_factor: float = 2.0
    weighting: str = "uniform"
    region_inputs: bool = False
    sigma0: float = 0.06
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.code_dim, self.hidden, self.layers) < 1 or self.fourier_features < 0:
            raise ValueError("code_dim, hidden and layers must be >= 1, fourier_features >= 0; got "
                             f"{self.code_dim}, {self.hidden}, {self.layers}, {self.fourier_features}")
        if not 1 <= self.inject_at <= self.layers:
            raise ValueError(f"inject_at must be within 1..{self.layers}, got {self.inject_at}")
        if not (self.fourier_scale > 0 and self.sigma0 > 0) or self.lambda_cos < 0 or self.pseudo_factor < 0:
            raise ValueError("fourier_scale and sigma0 must be > 0, lambda_cos and pseudo_factor >= 0")
        if self.target not in TARGETS:
            raise ValueError(f"target '{self.target}' is not one of {', '.join(TARGETS)}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting '{self.weighting}' is not one of {', '.join(WEIGHTINGS)}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "SurrogateSpec":
        """From a mapping with the field names as keys; unknown keys are errors (a misspelt key
        would otherwise fall back to its default silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown SurrogateSpec key(s) {unknown}; known: {sorted(known)}")
        return cls(**section)

    def to_config(self) -> dict[str, Any]:
        """Plain JSON/YAML types; ``from_config`` inverts it."""
        return asdict(self)

    @property
    def residual(self) -> bool:
        """Whether the network predicts the correction to κ∇Z* (``pseudo_residual``)."""
        return self.target == "pseudo_residual"


def region_one_hot(region: np.ndarray) -> np.ndarray:
    """(P, 3) float32 one-hot columns of volume tags (P,) in :data:`REGIONS`; any other tag is a
    ValueError naming it."""
    tags = np.asarray(region)
    if tags.ndim != 1:
        raise ValueError(f"region tags must have shape (P,), got {tags.shape}")
    unknown = sorted(set(np.unique(tags).tolist()) - set(REGIONS))
    if unknown:
        raise ValueError(f"region tag(s) {unknown} are not among {dict(zip(REGIONS, REGION_NAMES))}")
    return (tags[:, None] == np.asarray(REGIONS)[None, :]).astype(np.float32)


class LeadFieldNetwork(torch.nn.Module):
    """(x_n (B, 3) box-normalised, ẽ (B, 3) normalised torso coordinates, z (B, d)) ↦ (B, 3),
    the normalised target of ``spec.target``: Fourier features of x (with the point's region
    one-hot (B, 3) where ``spec.region_inputs``), then ``layers`` ReLU layers with ẽ ⊕ z
    concatenated after hidden layer ``inject_at``, then a linear layer."""

    def __init__(self, spec: SurrogateSpec):
        super().__init__()
        self.spec = spec
        self.fourier = FourierFeatures(3, spec.fourier_features, spec.fourier_scale, derived_seed(spec.seed, 0))
        point_features = self.fourier.out_dim + (len(REGIONS) if spec.region_inputs else 0)
        self.mlp = SkipMLP(point_features, spec.hidden, spec.layers, 3, skip_at=spec.inject_at,
                           skip_dim=3 + spec.code_dim, lipschitz=False,
                           generator=torch.Generator().manual_seed(derived_seed(spec.seed, 1)))

    def point_features(self, x: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
        """The first layer's input: Fourier features of x, then the region one-hot (B, 3) when
        the spec takes it (required then, ignored otherwise)."""
        features = self.fourier(x)
        if not self.spec.region_inputs:
            return features
        if region is None:
            raise ValueError("this surrogate takes each point's region (spec.region_inputs): pass region")
        return torch.cat([features, region.to(features.dtype)], dim=-1)

    def forward(self, x: torch.Tensor, electrode: torch.Tensor, code: torch.Tensor,
                region: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(self.point_features(x, region), skip=torch.cat([electrode, code], dim=-1))

    def forward_leads(self, x: torch.Tensor, electrodes: torch.Tensor, code: torch.Tensor,
                      rows_per_chunk: int = 1 << 20, region: torch.Tensor | None = None) -> torch.Tensor:
        """The outputs (E, P, 3) for every electrode (E, 3) at every point (P, 3) of one patient
        (code (d,)), equal to :meth:`forward` on all (electrode, point) pairs. The layers up to
        the injection see x alone and the next layer's pre-activation splits into
        W_h h(x) + W_s [ẽ, z] + b, so both are computed once per point and once per electrode;
        only the remaining layers run per pair (the paper network: 2 of 6 matrix products,
        67k of 285k multiply-adds per pair). The pairs pass the remaining layers
        ``rows_per_chunk`` at a time: whole electrodes while a patient's points fit, else
        pieces of one electrode's points (the same numbers in any piece size, to float32 rounding)."""
        w_h, w_s, bias = self.mlp.split_skip_layer()
        shared = torch.nn.functional.linear(self.mlp.trunk(self.point_features(x, region)), w_h, bias)  # (P, hidden)
        skip = torch.cat([electrodes, code.reshape(1, -1).expand(len(electrodes), -1)], dim=-1)
        per_lead = torch.nn.functional.linear(skip, w_s)  # (E, hidden)
        if len(x) <= rows_per_chunk:
            chunk = max(1, rows_per_chunk // max(len(x), 1))
            return torch.cat([self.mlp.tail(torch.relu_(shared[None] + per_lead[start:start + chunk, None]))
                              for start in range(0, len(electrodes), chunk)])
        # pieces that stay in the cache between the sum, its ReLU and the next product: at a 1.2 mm
        # test patient's 379k cells x 25 electrodes, 21 s in pieces of one electrode, 13.5 s in 8,192 rows
        return torch.stack([torch.cat([self.mlp.tail(torch.relu_(shared[start:start + rows_per_chunk] + lead))
                                       for start in range(0, len(x), rows_per_chunk)]) for lead in per_lead])

    def lead_pieces(self, x: torch.Tensor, electrodes: torch.Tensor, code: torch.Tensor,
                    rows_per_chunk: int = 1 << 20, region: torch.Tensor | None = None
                    ) -> Iterator[tuple[slice, slice, torch.Tensor]]:
        """:meth:`forward_leads` for inference, piece by piece: yields (electrodes, points,
        outputs (e, p, 3)) — the outputs of ``electrodes[electrodes]`` at ``x[points]`` — with
        the same numbers. The points go in pieces of ``rows_per_chunk`` (all at once when they
        fit, with as many electrodes per piece as fit): each piece's shared layers once, then
        every electrode's remaining layers, all through buffers allocated once
        (:meth:`SkipMLP.trunk_into`, :meth:`SkipMLP.tail_into`), so that no array of all points'
        or all pairs' hidden features is made (a 1.2 mm test patient's 399k cells x 25
        electrodes: 1.12x sooner than :meth:`forward_leads`; the rest is the matrix products).
        ``outputs`` is a buffer the next piece overwrites. No autograd: call under
        ``torch.no_grad()``."""
        w_h, w_s, bias = self.mlp.split_skip_layer()
        skip = torch.cat([electrodes, code.reshape(1, -1).expand(len(electrodes), -1)], dim=-1)
        per_lead = torch.nn.functional.linear(skip, w_s)  # (E, hidden)
        points = max(1, min(len(x), rows_per_chunk))
        leads = max(1, min(len(electrodes), rows_per_chunk // points))
        buffers = None
        for start in range(0, len(x), points):
            stop = min(start + points, len(x))
            features = self.point_features(x[start:stop], None if region is None else region[start:stop])
            if buffers is None:  # (pairs, hidden) twice, (points, hidden), (pairs, 3): the features' dtype and device
                buffers = [features.new_empty(shape) for shape in ((leads * points, w_h.shape[0]),
                                                                   (leads * points, w_h.shape[0]),
                                                                   (points, w_h.shape[0]),
                                                                   (leads * points, self.mlp.linears[-1].out_features))]
            trunk = self.mlp.trunk_into(features, buffers[0][:stop - start], buffers[1][:stop - start])
            shared = torch.addmm(bias, trunk, w_h.t(), out=buffers[2][:stop - start])  # (p, hidden)
            for first in range(0, len(electrodes), leads):
                last = min(first + leads, len(electrodes))
                rows = (last - first) * (stop - start)
                hidden, spare, out = buffers[0][:rows], buffers[1][:rows], buffers[3][:rows]
                torch.add(shared[None], per_lead[first:last, None], out=hidden.view(last - first, stop - start, -1))
                outputs = self.mlp.tail_into(hidden.relu_(), spare, out)
                yield slice(first, last), slice(start, stop), outputs.view(last - first, stop - start, -1)


class SurrogateModel(TrainableModel):
    """A :class:`LeadFieldNetwork` trained with eq. 5.

    Batch rows (float32): ``x`` (B, 3) box-normalised points, ``electrode`` (B, 3) normalised
    torso coordinates, ``code`` (B, d), ``target`` (B, 3) the normalised target and, for
    ``pseudo_residual``, ``reference`` (B, 3) = κu*, the pseudo part of ∇Z/|∇Z*|, and for
    ``region_inputs`` ``region`` (B, 3) (see :func:`training_rows`); or a patient block
    (:mod:`ecgcohort.surrogate.blocks`): ``x`` and ``region`` (P_b, 3), ``electrodes`` (E, 3),
    ``code`` (d,) and ``target``/``reference`` (E·P_b, 3).

    Loss = mean over rows of w‖NN − target‖² + λ_cos (1 − cos(t̂, t)), cos with the paper's ε,
    w = 1 (``weighting="uniform"``, eq. 5) or 1/(|t|² + 0.1²) (``relative``),
    where t̂, t are the prediction and target of ∇Z/|∇Z*| (NN and target themselves for
    ``full``; κu* + NN and κu* + target for ``pseudo_residual``). The cosine must be taken there:
    that is the direction of ∇Z, the one evaluated, whereas the residual's direction is not —
    where κ∇Z* is already good the residual is ≈ 0 and its direction is noise, which a cosine
    term (scale-free, with gradients ∝ 1/|residual|) would chase. Parts: "mse", "cos"."""

    def __init__(self, spec: SurrogateSpec):
        super().__init__()
        self.spec = spec
        self.network = LeadFieldNetwork(spec)

    def forward(self, x: torch.Tensor, electrode: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.network(x, electrode, code)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if "electrodes" in batch:  # a patient block (surrogate.blocks): all electrodes at the block's points
            predicted = self.network.forward_leads(batch["x"], batch["electrodes"], batch["code"],
                                                   region=batch.get("region")).reshape(-1, 3)
            predicted = predicted.float()
        else:
            predicted = self.network(batch["x"], batch["electrode"], batch["code"], batch.get("region")).float()
        target = batch["target"].float()
        squared = (predicted - target).square().sum(dim=-1)
        if self.spec.residual:
            reference = batch["reference"].float()
            predicted, target = predicted + reference, target + reference
        if self.spec.weighting == "relative":
            squared = squared / (target.square().sum(dim=-1) + RELATIVE_FLOOR ** 2)
        mse = squared.mean()
        cosine = (predicted * target).sum(dim=-1) / (predicted.norm(dim=-1) * target.norm(dim=-1) + COSINE_EPS)
        cos = (1.0 - cosine).mean()
        return mse + self.spec.lambda_cos * cos, {"mse": mse.detach(), "cos": cos.detach()}


# ---- target normalisation (pure functions, numpy, float64) ------------------------------------

def reference_magnitude(points_m: np.ndarray, electrodes_m: np.ndarray, sigma0: float) -> np.ndarray:
    """|∇Z*| = 1/(4πσ0|e − x|²) (E, P) in Ω/m of electrodes (E, 3) at points (P, 3), m; σ0 in
    S/m. A point on an electrode is an error (∇Z* is singular there)."""
    return np.linalg.norm(pseudo_lead_field_gradient(electrodes_m, points_m, sigma0), axis=-1)


def pseudo_direction(points_m: np.ndarray, electrodes_m: np.ndarray) -> np.ndarray:
    """u* = (e − x)/|e − x| (E, P, 3), the direction of ∇Z*, for points (P, 3) and electrodes
    (E, 3) in m."""
    gradient = pseudo_lead_field_gradient(electrodes_m, points_m, 1.0)
    return gradient / np.linalg.norm(gradient, axis=-1, keepdims=True)


def normalise_target(spec: SurrogateSpec, grad_z: np.ndarray, points_m: np.ndarray,
                     electrodes_m: np.ndarray) -> np.ndarray:
    """The network's target (E, P, 3), dimensionless, for ∇Z (E, P, 3) in Ω/m at points (P, 3)
    of electrodes (E, 3), m: ∇Z/|∇Z*|, minus κu* for ``pseudo_residual`` (σ0, κ and the form
    from ``spec``). Inverse of :func:`denormalise_target`."""
    gradient = pseudo_lead_field_gradient(electrodes_m, points_m, spec.sigma0)
    magnitude = np.linalg.norm(gradient, axis=-1, keepdims=True)
    grad_z = np.asarray(grad_z, dtype=np.float64)
    if grad_z.shape != gradient.shape:
        raise ValueError(f"grad_z must have shape (electrodes, points, 3) = {gradient.shape}, got {grad_z.shape}")
    normalised = grad_z / magnitude
    return normalised - spec.pseudo_factor * gradient / magnitude if spec.residual else normalised


def denormalise_target(spec: SurrogateSpec, output: np.ndarray, points_m: np.ndarray,
                       electrodes_m: np.ndarray) -> np.ndarray:
    """∇Z (E, P, 3) in Ω/m from network outputs (E, P, 3): |∇Z*|·NN, or κ∇Z* + |∇Z*|·NN for
    ``pseudo_residual`` (an output of 0 gives κ times the pseudo lead field exactly)."""
    gradient = pseudo_lead_field_gradient(electrodes_m, points_m, spec.sigma0)
    magnitude = np.linalg.norm(gradient, axis=-1, keepdims=True)
    output = np.asarray(output, dtype=np.float64)
    if output.shape != gradient.shape:
        raise ValueError(f"output must have shape (electrodes, points, 3) = {gradient.shape}, got {output.shape}")
    scaled = magnitude * output
    return spec.pseudo_factor * gradient + scaled if spec.residual else scaled


# ---- input checks --------------------------------------------------------------------------

def check_electrodes(electrodes_normalised: np.ndarray, electrodes_m: np.ndarray | None = None) -> np.ndarray:
    """(E, 3) float64 normalised torso coordinates, refused (ValueError, naming the first
    offender) outside x ∈ [−1, 1], y, z ∈ [0, 1] ± :data:`ELECTRODE_TOLERANCE`, or when their
    count differs from that of ``electrodes_m``."""
    normalised = np.asarray(electrodes_normalised, dtype=np.float64)
    if normalised.ndim != 2 or normalised.shape[1] != 3 or not np.all(np.isfinite(normalised)):
        raise ValueError(f"normalised electrode coordinates must be finite with shape (E, 3), got {normalised.shape}")
    if electrodes_m is not None and np.shape(electrodes_m) != normalised.shape:
        raise ValueError(f"{len(normalised)} normalised electrode coordinates for electrode positions of shape "
                         f"{np.shape(electrodes_m)}")
    low = np.array([-1.0, 0.0, 0.0]) - ELECTRODE_TOLERANCE
    high = 1.0 + ELECTRODE_TOLERANCE
    outside = np.any((normalised < low) | (normalised > high), axis=1)
    if np.any(outside):
        j = int(np.argmax(outside))
        raise ValueError(f"electrode {j} has normalised torso coordinates {normalised[j].round(4).tolist()}, outside "
                         f"x in [-1, 1], y, z in [0, 1] (tolerance {ELECTRODE_TOLERANCE}): the surrogate was not "
                         "trained there (normalised coordinates, not mm?)")
    return normalised


def check_code(code: np.ndarray, code_dim: int) -> np.ndarray:
    """A finite code of shape (code_dim,) as float64 (a (1, d) row is accepted), else ValueError."""
    values = np.asarray(code, dtype=np.float64)
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    if values.shape != (code_dim,):
        raise ValueError(f"the code has shape {values.shape}, the surrogate takes codes of {code_dim} entries "
                         "(a code of another encoding?)")
    if not np.all(np.isfinite(values)):
        raise ValueError("the code has non-finite entries")
    return values


def _check_points(points_m: np.ndarray) -> np.ndarray:
    points = np.asarray(points_m, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
        raise ValueError(f"points must be finite with shape (P, 3) in m, got {points.shape}")
    return points


# ---- rows and prediction ---------------------------------------------------------------------

def _region_input(spec: SurrogateSpec, region: np.ndarray | None, count: int) -> np.ndarray | None:
    """The region one-hot (P, 3) of ``count`` points where the spec takes it, else None."""
    if not spec.region_inputs:
        return None
    if region is None:
        raise ValueError("this surrogate takes each point's region (spec.region_inputs): pass region, the volume "
                         f"tag of every point ({dict(zip(REGIONS, REGION_NAMES))})")
    one_hot = region_one_hot(region)
    if len(one_hot) != count:
        raise ValueError(f"{len(one_hot)} region tags for {count} points")
    return one_hot


def patient_block(spec: SurrogateSpec, box: NormalisationBox, points_m: np.ndarray, electrodes_m: np.ndarray,
                  electrodes_normalised: np.ndarray, code: np.ndarray, grad_z: np.ndarray, *,
                  region: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """One patient's training data for a :class:`SurrogateModel`, float32: ``x`` (P, 3)
    box-normalised, ``electrode`` (E, 3), ``code`` (d,), ``target`` (E, P, 3), for
    ``pseudo_residual`` ``reference`` (E, P, 3) = κu*, and for ``region_inputs`` ``region``
    (P, 3) one-hot. Points (P, 3) and electrodes (E, 3) in m, ∇Z (E, P, 3) in Ω/m, the code
    (d,), the points' volume tags ``region`` (P,) in :data:`REGIONS`."""
    points = _check_points(points_m)
    block = {
        "x": box.normalise(points * 1e3),
        "electrode": check_electrodes(electrodes_normalised, electrodes_m),
        "code": check_code(code, spec.code_dim),
        "target": normalise_target(spec, grad_z, points, electrodes_m),
    }
    if spec.residual:
        block["reference"] = spec.pseudo_factor * pseudo_direction(points, electrodes_m)
    one_hot = _region_input(spec, region, len(points))
    if one_hot is not None:
        block["region"] = one_hot
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in block.items()}


def training_rows(spec: SurrogateSpec, box: NormalisationBox, points_m: np.ndarray, electrodes_m: np.ndarray,
                  electrodes_normalised: np.ndarray, code: np.ndarray, grad_z: np.ndarray, *,
                  region: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """The rows of one patient for a :class:`SurrogateModel`: every (electrode, point) pair,
    electrode-major (row j·P + p), float32 — :func:`patient_block` with the point repeated per
    electrode and the code per pair. Points (P, 3) and electrodes (E, 3) in m, ∇Z (E, P, 3) in
    Ω/m, the code (d,), the points' volume tags ``region`` (P,)."""
    block = patient_block(spec, box, points_m, electrodes_m, electrodes_normalised, code, grad_z, region=region)
    n_e, n_p = block["target"].shape[:2]
    rows = {
        "x": np.tile(block["x"], (n_e, 1)),
        "electrode": np.repeat(block["electrode"], n_p, axis=0),
        "code": np.broadcast_to(block["code"], (n_e * n_p, spec.code_dim)),
        "target": block["target"].reshape(-1, 3),
    }
    if spec.residual:
        rows["reference"] = block["reference"].reshape(-1, 3)
    if "region" in block:
        rows["region"] = np.tile(block["region"], (n_e, 1))
    return {name: torch.as_tensor(np.ascontiguousarray(value)) for name, value in rows.items()}


def predict_gradient_tensor(network: LeadFieldNetwork, points_m: torch.Tensor, electrodes_m: torch.Tensor,
                            electrodes_normalised: torch.Tensor, code: torch.Tensor, box: NormalisationBox,
                            rows_per_chunk: int = 1 << 20, region: torch.Tensor | None = None) -> torch.Tensor:
    """∇Z (E, P, 3) in Ω/m as a float32 tensor on the network's device, from tensors there:
    points (P, 3, m), electrodes (E, 3, m) and their normalised coordinates, the code (d,), the
    points' region one-hot (P, 3) for a ``region_inputs`` network. No checks and no host
    transfers (the GPU path of :func:`predict_gradient`); σ0, κ and the target form are the
    network's spec. Each piece of :meth:`LeadFieldNetwork.lead_pieces` is denormalised while
    it is in the cache. Call under ``torch.no_grad()``."""
    spec = network.spec
    x = (points_m * 1e3 - torch.as_tensor(box.center_mm, dtype=points_m.dtype, device=points_m.device)) / box.scale_mm
    points, electrodes = points_m.float(), electrodes_m.float()
    gradient = torch.empty((len(electrodes), len(points), 3), dtype=torch.float32, device=points.device)
    for leads, rows, output in network.lead_pieces(x, electrodes_normalised, code, rows_per_chunk, region=region):
        offset = electrodes[leads, None, :] - points[None, rows, :]  # e − x, (e, p, 3)
        distance_squared = offset.square().sum(dim=-1, keepdim=True)
        magnitude = 1.0 / (4.0 * math.pi * spec.sigma0 * distance_squared)  # |∇Z*|
        piece = magnitude * output.float()
        if spec.residual:
            piece += spec.pseudo_factor * magnitude * offset / distance_squared.sqrt()
        gradient[leads, rows] = piece
    return gradient


def predict_gradient(network: LeadFieldNetwork, points_m: np.ndarray, electrodes_m: np.ndarray,
                     electrodes_normalised: np.ndarray, code: np.ndarray, box: NormalisationBox,
                     batch_size: int = 8192, *, region: np.ndarray | None = None) -> np.ndarray:
    """∇Z (E, P, 3) in Ω/m predicted at points (P, 3, m) for electrodes at ``electrodes_m``
    (E, 3, m; they set ∇Z*) with normalised torso coordinates ``electrodes_normalised`` (E, 3;
    the network's input), for the patient with ``code`` (d,). Points are normalised with
    ``box`` (the training cohort's). Evaluated without gradients on the network's device,
    ``batch_size`` (electrode, point) pairs of the last layers at a time (at least one
    electrode's points); σ0 and the target form are the network's spec. A ``region_inputs``
    network needs the points' volume tags ``region`` (P,) in :data:`REGIONS` (others ignore them)."""
    points = _check_points(points_m)
    electrodes = check_electrodes(electrodes_normalised, electrodes_m)
    values = check_code(code, network.spec.code_dim)
    one_hot = _region_input(network.spec, region, len(points))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(network.parameters()).device

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float32), device=device)

    with torch.no_grad():
        gradient = predict_gradient_tensor(network, tensor(points), tensor(electrodes_m), tensor(electrodes),
                                           tensor(values), box, rows_per_chunk=batch_size,
                                           region=None if one_hot is None else tensor(one_hot))
        if not bool(torch.isfinite(gradient).all()):
            raise ValueError("the predicted lead field is not finite: a point coincides with an electrode, where "
                             "the lead field is singular")
    return gradient.cpu().numpy().astype(np.float64)
