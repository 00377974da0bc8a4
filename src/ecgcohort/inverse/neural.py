"""The two neural inverse-ECG methods of paper 2 (Zhu, Bilchick & Xie, EAND-ARN): EP-DL, a
tanh network constrained by the Aliev–Panfilov (AP) model through automatic differentiation
(section IV-A's EP-DL_AD), and EAND-ARN, an adaptive residual network constrained through
numerical differentiation on the mesh and the time grid (section III-C/D).

Both parameterise the heart-surface potential by a network (x, y, z, t) ↦ (û, v̂) (section
III-B) and minimise eq. 4, L = L_D + λ L_EP, with

* L_D (eq. 5) = mean over body nodes and time instants of (y − R û)², û the network on the
  whole (node × time) grid — every training step evaluates the whole grid;
* L_EP (eq. 9) = mean over the step's collocation points of r_u² + r_v² (+ r_b²), with the AP
  residuals r_u (eq. 6) and r_v (eq. 7) and, for EP-DL only, the no-flux residual r_b (eq. 8).

Collocation points are grid points (node, instant): the rows of the training table are the flat
grid indices node·T + instant, so the batches the training backbone draws per epoch
(:func:`ecgcohort.learning.fit`) are the collocation sets, and one epoch uses every grid point
once as a collocation point, in ⌈1/collocation_fraction⌉ steps.

How the derivatives of the residuals are taken:

* EAND-ARN — ∂/∂t by the fourth-order differences of the time grid (eqs. 16–18, instants τ
  apart), Δû by the neighbour Laplacian of the mesh (eqs. 12–15). The heart surface is closed,
  so eq. 8 has no boundary to act on: every node has a full ring of neighbours, no stencil
  reaches past the surface, and the no-flux condition is the natural one of the closed mesh;
  L_EP has no r_b term.
* EP-DL — ∂û/∂t, ∂v̂/∂t and the *ambient* Laplacian ∂²û/∂x² + ∂²û/∂y² + ∂²û/∂z² by automatic
  differentiation at the collocation points, in physical units (through the input
  normalisation), and r_b = n·∇û with n the area-weighted unit vertex normal. On the surface
  the ambient Laplacian is Δ_s û + κ ∂û/∂n + ∂²û/∂n² (κ the sum of the principal curvatures);
  driving r_b to zero keeps the network's extension of û off the surface flat along the normal
  to first order and removes the curvature term, while ∂²û/∂n² stays unconstrained — one
  weakness of the AD residual on a surface (section IV-A measures EP-DL_AD worst of its three
  variants).

Units: points in the AP model's length unit, times in its time unit (the caller scales them);
D of :class:`~ecgcohort.inverse.surface.AlievPanfilov` is in length²/time, so r_u and r_v are
in 1/time. û, v̂ and y are dimensionless (y = R u, R·1 = 1).

Network layout (paper Table I): ``layers`` counts the linear maps (weight matrices), the output
map included. A plain network of L layers is 4 → w, L − 2 maps w → w, w → 2, tanh after every
map but the last (linear output). With B adaptive residual blocks (eq. 11) it is one layer at
the beginning, B blocks of two layers with one layer between consecutive blocks, and the linear
output layer at the end: 1 + 2B + (B − 1) + 1 = 3B + 1 layers — NN2 (4, 1), NN4 (7, 2), NN6
(10, 3). A plain and a residual network of the same depth and width have the same weights; the
residual one has B more parameters (the α_T of eq. 11).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch

from ecgcohort.inverse.double_layer import (MIN_CALIBRATION_CORRELATION, map_correlation, tikhonov_activation,
                                             upstroke_map)
from ecgcohort.inverse.problem import InverseError, Reconstruction, SurfaceMesh
from ecgcohort.inverse.surface import AlievPanfilov
from ecgcohort.inverse.training_checks import (ZERO_MAP_DATA_LOSS, ZERO_MAP_FRACTION, normalised_data_loss,
                                               stopping_reason, zero_map_failure)
from ecgcohort.learning.layers import derived_seed
from ecgcohort.learning.spec import TrainableModel

log = logging.getLogger(__name__)

#: Section IV-A: EP-DL_AD as the paper runs it, a plain network of 10 layers × 10 neurons.
#: ``training`` caps a run of a few minutes on 2 CPU cores for ~600 nodes × 161 instants; the
#: stopping rule usually ends it sooner. Its residuals are collocated at 10 % of a grid twice as
#: fine in time as the data (automatic differentiation costs per collocation point: 30 s for a
#: 162-node front over 12 time units, measured, against 82 s at 25 % on a 5 times finer grid,
#: with the same activation error, 2.8 and 3.3 ms).
EP_DL_DEFAULTS: dict[str, Any] = {
    "layers": 10, "neurons": 10, "residual_blocks": 0, "ep_weight": 0.1, "collocation_fraction": 0.1,
    "time_refinement": 2, "window": 0.0, "zero_map_fraction": ZERO_MAP_FRACTION,
    "zero_map_data_loss": ZERO_MAP_DATA_LOSS,
    "warm_start": {"steps": 200, "learning_rate": 1e-2},
    "stopping": {"discrepancy": 1.0, "patience": 50, "tolerance": 0.01},
    "training": {"epochs": 300, "learning_rate": 3e-3, "lr_milestones": [0.5, 0.75], "lr_decay": 0.3,
                 "checkpoint_every": 100, "device": "cpu", "precision": "32"},
}
#: Section IV-B: NN6, 10 layers × 15 neurons with 3 adaptive residual blocks; λ = 0.1 (IV-D).
#: Its residuals come from the whole grid at every step whatever the collocation fraction, so a
#: step costs the refined grid: refined twice (0.5 → 0.25 time units; 5 times costs 2.7 times as
#: much per step), a quarter of it drawn per step, as the paper.
EAND_ARN_DEFAULTS: dict[str, Any] = {**EP_DL_DEFAULTS, "neurons": 15, "residual_blocks": 3,
                                     "collocation_fraction": 0.25, "time_refinement": 2}

#: Keys a method's config may hold besides its section's: the run's seed, checkpoint folder
#: and AP parameters (problem.py).
RUNTIME_KEYS = ("seed", "workdir", "model", "noise_level")
#: Fewest time instants eqs. 17–18 need: the one-sided stencils use five.
MINIMUM_SAMPLES = 5


# ---------------------------------------------------------------- network (section III-C)
class AdaptiveResidualBlock(torch.nn.Module):
    """Eq. 11: h1 = tanh(W1 x + b1), h2 = tanh(W2 h1 + b2), out = (1 − α) h2 + α x with
    α = sigmoid(α_T) and α_T a trainable scalar initialised to 0 (α = 0.5: the paper gives no
    initial value, and 0.5 starts the block halfway between the shortcut and the two-layer
    path). ``fixed_alpha`` in [0, 1] replaces the trainable α by a constant: α = 1 is the
    identity, α = 0 the plain two-layer tanh block."""

    def __init__(self, width: int, fixed_alpha: float | None = None):
        super().__init__()
        self.first = torch.nn.Linear(width, width)
        self.second = torch.nn.Linear(width, width)
        if fixed_alpha is None:
            self.alpha_logit = torch.nn.Parameter(torch.zeros(()))
        else:
            if not 0.0 <= fixed_alpha <= 1.0:
                raise ValueError(f"fixed_alpha must lie in [0, 1], got {fixed_alpha}")
            self.register_buffer("fixed_alpha", torch.tensor(float(fixed_alpha)))

    @property
    def alpha(self) -> torch.Tensor:
        """α, the share of the block's input passed straight to its output."""
        if hasattr(self, "alpha_logit"):
            return torch.sigmoid(self.alpha_logit)
        return self.fixed_alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.second(torch.tanh(self.first(x))))
        alpha = self.alpha
        return (1.0 - alpha) * hidden + alpha * x


class _TanhLayer(torch.nn.Module):
    """One fully connected layer with tanh (eq. 10)."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = torch.nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x))


def check_architecture(layers: int, neurons: int, residual_blocks: int) -> None:
    """Raise ValueError naming the config keys when (layers, neurons, residual_blocks) is no
    network of Table I's layout (3B + 1 layers for B ≥ 1 blocks, at least 2 for a plain one)."""
    if neurons < 1:
        raise ValueError(f"neurons must be at least 1, got {neurons}")
    if residual_blocks < 0:
        raise ValueError(f"residual_blocks must be non-negative, got {residual_blocks}")
    if residual_blocks == 0 and layers < 2:
        raise ValueError(f"layers must be at least 2 (an input and an output layer), got {layers}")
    if residual_blocks > 0 and layers != 3 * residual_blocks + 1:
        raise ValueError(
            f"layers={layers} and residual_blocks={residual_blocks} do not fit together: B adaptive residual "
            f"blocks of two layers, one layer between blocks and one at each end make 3B + 1 = "
            f"{3 * residual_blocks + 1} layers (paper Table I: NN2 4 layers/1 block, NN4 7/2, NN6 10/3)")


class InverseNetwork(torch.nn.Module):
    """(x, y, z, t) (N, 4) in physical units ↦ (û, v̂) (N, 2); the layout of the module
    docstring. Inputs are mapped affinely from [``input_lower``, ``input_upper``] (4,) to
    [−1, 1] (buffers ``input_offset`` and ``input_scale``, so a state dict restores them);
    weights are Glorot-normal from ``seed``, biases zero, α_T = 0."""

    def __init__(self, layers: int, neurons: int, residual_blocks: int,
                 input_lower: np.ndarray | tuple[float, ...] = (-1.0, -1.0, -1.0, -1.0),
                 input_upper: np.ndarray | tuple[float, ...] = (1.0, 1.0, 1.0, 1.0), seed: int = 0):
        super().__init__()
        check_architecture(layers, neurons, residual_blocks)
        lower = torch.as_tensor(np.asarray(input_lower, dtype=np.float64)).float()
        upper = torch.as_tensor(np.asarray(input_upper, dtype=np.float64)).float()
        if lower.shape != (4,) or upper.shape != (4,) or bool(torch.any(upper < lower)):
            raise ValueError(f"input bounds must be two (4,) vectors with lower <= upper, got {lower}, {upper}")
        half_width = (upper - lower) / 2
        # a coordinate that does not vary (a flat mesh's z) is only centred
        self.register_buffer("input_offset", (upper + lower) / 2)
        self.register_buffer("input_scale", torch.where(half_width > 0, 1.0 / half_width.clamp_min(1e-30),
                                                        torch.ones_like(half_width)))
        self.input_layer = torch.nn.Linear(4, neurons)
        if residual_blocks == 0:
            hidden = [_TanhLayer(neurons) for _ in range(layers - 2)]
        else:
            hidden = [AdaptiveResidualBlock(neurons)]
            for _ in range(residual_blocks - 1):
                hidden += [_TanhLayer(neurons), AdaptiveResidualBlock(neurons)]
        self.hidden = torch.nn.ModuleList(hidden)
        self.output_layer = torch.nn.Linear(neurons, 2)
        generator = torch.Generator().manual_seed(derived_seed(seed, 0))
        for module in self.modules():
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.xavier_normal_(module.weight, generator=generator)
                torch.nn.init.zeros_(module.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.input_layer((inputs - self.input_offset) * self.input_scale))
        for module in self.hidden:
            h = module(h)
        return self.output_layer(h)

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def alphas(self) -> list[float]:
        """α of every adaptive residual block, in order."""
        return [float(m.alpha.detach()) for m in self.hidden if isinstance(m, AdaptiveResidualBlock)]


# ---------------------------------------------------------------- numerical differentiation (section III-D)
class NeighbourLaplacian(NamedTuple):
    """The neighbour Laplacian (eqs. 13–15) in index form: Δ_s u_i = Σ_e weights_e
    (u[columns_e] − u[rows_e]) over the directed mesh edges e = (rows_e → columns_e), with
    weights 4/(r_i n_i d_ij) in 1/length²."""

    rows: torch.Tensor
    columns: torch.Tensor
    weights: torch.Tensor

    def apply(self, values: torch.Tensor) -> torch.Tensor:
        """Δ_s of ``values`` (n, ...) node-wise, same shape and dtype."""
        weights = self.weights.to(values.dtype).reshape(-1, *([1] * (values.dim() - 1)))
        differences = values.index_select(0, self.columns) - values.index_select(0, self.rows)
        return torch.zeros_like(values).index_add_(0, self.rows, weights * differences)


def neighbour_laplacian_operator(points: np.ndarray, faces: np.ndarray,
                                 dtype: torch.dtype = torch.float32) -> NeighbourLaplacian:
    """The surface Laplacian of paper 2's eq. 15, Δ_s(u_i) = 4/(r_i n_i) Σ_j (u_j − u_i)/d_ij
    over the n_i mesh neighbours j of node i (the other ends of its triangle edges), d_ij the
    edge length and r_i the mean of the d_ij (units: 1/length² for ``points`` in length).

    Derivation: the value at distance r_i along edge ij is ũ_j = u_i + (r_i/d_ij)(u_j − u_i)
    (eq. 13), so (1/n_i) Σ ũ_j − u_i = (r_i/n_i) Σ (u_j − u_i)/d_ij, and the five-point formula
    of eq. 12 with d = r_i, Δu_i = (4/r_i²)(ū − u_i), gives eq. 15. Eq. 14 as printed, with
    4/r_i, is a typo for 4/r_i²: only eq. 15 has the units of a Laplacian.

    Accuracy (measured in tests/test_inverse_neural.py): on a square grid cut along one
    diagonal it is exact for linear functions and for x² + y² (4 at every interior node). It is
    not consistent on irregular meshes: where the unit edge vectors (s_j − s_i)/d_ij do not
    cancel, a first-derivative term of order |∇u|/h is left, so with nodes jittered by ±10 % of h the mean error of Δ(x² + y²) grows
    1.1, 2.1, 4.1 at h = 0.2, 0.1, 0.05. On pyvista icospheres of radius 5 it reproduces
    Δ_s z = −2z/r² to round-off at nsub = 1 (regular neighbourhoods; the chords dip by d²/2r,
    which is what turns the ambient-linear z into the surface Laplacian) but the relative RMS
    error grows 0.20, 0.40, 0.65, 0.98 for nsub = 2…5 (mean edge 1.5 … 0.19), where the
    cotangent Laplacian of :mod:`ecgcohort.inverse.surface` converges at first order
    (0.039, 0.020, 0.010). Times D = 10, this error is part of every EAND-ARN residual."""
    mesh = SurfaceMesh(points, faces)
    edges = np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]], mesh.faces[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    columns = np.concatenate([edges[:, 1], edges[:, 0]])
    distance = np.linalg.norm(mesh.points[columns] - mesh.points[rows], axis=1)
    if np.any(distance <= 0):
        raise InverseError("the heart surface has an edge of zero length (two nodes at one place)")
    n = len(mesh.points)
    count = np.bincount(rows, minlength=n)
    if np.any(count == 0):
        raise InverseError(f"{int(np.sum(count == 0))} heart-surface nodes belong to no triangle")
    mean_distance = np.bincount(rows, weights=distance, minlength=n) / count
    weights = 4.0 / (mean_distance[rows] * count[rows] * distance)
    return NeighbourLaplacian(torch.as_tensor(rows), torch.as_tensor(columns), torch.as_tensor(weights, dtype=dtype))


def time_derivative(values: torch.Tensor, tau: float) -> torch.Tensor:
    """∂/∂t of ``values`` (..., T) sampled every ``tau`` time units, fourth-order accurate
    everywhere: eq. 17 (central, u_{t±τ}, u_{t±2τ}) at the interior instants and eq. 18's
    one-sided five-point formulas at t = 0, τ, T − τ and T. Needs T ≥ 5."""
    samples = values.shape[-1]
    if samples < MINIMUM_SAMPLES:
        raise InverseError(f"the time grid has samples={samples} instants; the fourth-order derivative of "
                           f"eqs. 17-18 needs samples >= {MINIMUM_SAMPLES}")
    if not tau > 0:
        raise InverseError(f"the time step tau must be positive, got {tau}")
    u = values
    interior = u[..., :-4] - 8 * u[..., 1:-3] + 8 * u[..., 3:-1] - u[..., 4:]
    first = (-25 * u[..., 0] + 48 * u[..., 1] - 36 * u[..., 2] + 16 * u[..., 3] - 3 * u[..., 4])
    second = (-3 * u[..., 0] - 10 * u[..., 1] + 18 * u[..., 2] - 6 * u[..., 3] + u[..., 4])
    before_last = (-u[..., -5] + 6 * u[..., -4] - 18 * u[..., -3] + 10 * u[..., -2] + 3 * u[..., -1])
    last = (3 * u[..., -5] - 16 * u[..., -4] + 36 * u[..., -3] - 48 * u[..., -2] + 25 * u[..., -1])
    stacked = torch.cat([first[..., None], second[..., None], interior, before_last[..., None], last[..., None]],
                        dim=-1)
    return stacked / (12.0 * tau)


# ---------------------------------------------------------------- residuals (eqs. 6–7)
def aliev_panfilov_residuals(u: torch.Tensor, v: torch.Tensor, du_dt: torch.Tensor, dv_dt: torch.Tensor,
                             laplacian_u: torch.Tensor, model: AlievPanfilov) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_u, r_v) in 1/time: r_u = ∂û/∂t − D Δû − k û(1 − û)(û − a) + û v̂ (eq. 6) and
    r_v = ∂v̂/∂t − ξ(û, v̂)(−v̂ − k û(û − a − 1)), ξ = e0 + μ1 v̂/(û + μ2) (eq. 7).

    ξ has a pole at û = −μ2, which the model's solutions (û ≥ 0) never come near but an
    untrained network's output does: EP-DL's first epoch on 642 nodes × 161 instants met an EP
    loss of 10⁵ and then NaN. The denominator û + μ2 is therefore floored at μ2/2, which leaves
    the residual unchanged for û ≥ −μ2/2."""
    reaction_u = model.k * u * (u - model.a) * (1.0 - u) - u * v
    xi = model.e0 + model.mu1 * v / torch.clamp(u + model.mu2, min=model.mu2 / 2)
    reaction_v = xi * (-v - model.k * u * (u - model.a - 1.0))
    return du_dt - model.diffusion * laplacian_u - reaction_u, dv_dt - reaction_v


def vertex_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (n, 3): the sum of the adjacent triangles' normals
    times their areas, normalised (the orientation does not matter to r_b²)."""
    mesh = SurfaceMesh(points, faces)
    corners = mesh.points[mesh.faces]
    twice_area_normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    summed = np.zeros_like(mesh.points)
    for k in range(3):
        np.add.at(summed, mesh.faces[:, k], twice_area_normal)
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    if np.any(length <= 0):
        raise InverseError(f"{int(np.sum(length <= 0))} heart-surface nodes have no normal (no triangle)")
    return summed / length


def automatic_derivatives(network: torch.nn.Module, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Network outputs and the derivatives EP-DL needs at ``inputs`` (N, 4) = (x, y, z, t) in
    physical units, by automatic differentiation through the input normalisation: ``u``, ``v``,
    ``grad_u`` (N, 3) in 1/length, ``du_dt`` and ``dv_dt`` in 1/time, ``laplacian_u`` =
    ∂²û/∂x² + ∂²û/∂y² + ∂²û/∂z² in 1/length². The graph is kept for training."""
    inputs = inputs.detach().requires_grad_(True)
    output = network(inputs)
    u, v = output[:, 0], output[:, 1]
    (grad_u,) = torch.autograd.grad(u.sum(), inputs, create_graph=True)
    (grad_v,) = torch.autograd.grad(v.sum(), inputs, create_graph=True)
    laplacian = sum(torch.autograd.grad(grad_u[:, d].sum(), inputs, create_graph=True)[0][:, d] for d in range(3))
    return {"u": u, "v": v, "grad_u": grad_u[:, :3], "du_dt": grad_u[:, 3], "dv_dt": grad_v[:, 3],
            "laplacian_u": laplacian}


# ---------------------------------------------------------------- trainable objectives
class _GridObjective(TrainableModel):
    """What both methods share: the network, the (node × instant) collocation grid, R and Y,
    and L_D of eq. 5. Training rows are flat indices node·T_c + instant of the collocation grid.

    The collocation grid refines the data's instants ``refinement`` times (``times`` the T_c
    collocation instants; the data's are every ``refinement``-th, ``data_columns``), so the
    residuals' time derivatives resolve the upstroke the data's sampling does not.

    L_D is normalised per case: the mean of (y − R û)² divided by the mean of y², so the zero
    map scores exactly 1 whatever the data's unit (a body map of a fraction of a millivolt
    divided by 100 mV put L_D at 10⁻⁵ at the zero map, below any λ L_EP)."""

    def __init__(self, network: InverseNetwork, transfer: np.ndarray, bspm: np.ndarray, points: np.ndarray,
                 times: np.ndarray, model: AlievPanfilov, ep_weight: float, refinement: int = 1,
                 stopping: Mapping[str, float] | None = None):
        super().__init__()
        self.network = network
        self.model = model
        self.ep_weight = float(ep_weight)
        self.nodes, self.samples = len(points), len(times)
        self.refinement = int(refinement)
        if (self.samples - 1) % self.refinement:
            raise InverseError(f"{self.samples} collocation instants are no refinement by {self.refinement} of a grid")
        grid = np.concatenate([np.repeat(points, len(times), axis=0), np.tile(times, len(points))[:, None]], axis=1)
        # data, not weights: kept out of the state dict (and so out of checkpoints)
        self.register_buffer("grid_inputs", torch.as_tensor(grid, dtype=torch.float32), persistent=False)
        self.register_buffer("transfer", torch.as_tensor(transfer, dtype=torch.float32), persistent=False)
        self.register_buffer("bspm", torch.as_tensor(bspm, dtype=torch.float32), persistent=False)
        self.register_buffer("data_columns", torch.arange(0, self.samples, self.refinement), persistent=False)
        # the network's inputs at the data's instants alone (node-major, like grid_inputs)
        data_rows = (torch.arange(self.nodes)[:, None] * self.samples + self.data_columns[None, :]).reshape(-1)
        self.register_buffer("data_inputs", self.grid_inputs.index_select(0, data_rows), persistent=False)
        self.data_scale = float(np.mean(np.asarray(bspm, dtype=np.float64) ** 2))
        if not self.data_scale > 0:
            raise InverseError("the body-surface potentials are zero everywhere: nothing to reconstruct")
        self.stopping = dict(stopping or {})

    def grid_prediction(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(û, v̂) on the whole collocation grid, (n, T_c) each."""
        output = self.network(self.grid_inputs)
        return output[:, 0].reshape(self.nodes, self.samples), output[:, 1].reshape(self.nodes, self.samples)

    def data_prediction(self) -> torch.Tensor:
        """û (n, T) at the data's instants alone (what L_D needs where the residuals do not come
        from the grid)."""
        return self.network(self.data_inputs)[:, 0].reshape(self.nodes, -1)

    def data_loss(self, u: torch.Tensor, on_grid: bool = True) -> torch.Tensor:
        """Eq. 5 normalised per case: mean over body nodes and data instants of (y − R û)²,
        divided by the mean of y² (1 at the zero map); ``u`` on the collocation grid, or at the
        data's instants with ``on_grid`` False."""
        predicted = self.transfer @ (u.index_select(1, self.data_columns) if on_grid else u)
        return torch.mean((self.bspm - predicted) ** 2) / self.data_scale

    def total(self, data: torch.Tensor, ep: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 4 and its parts."""
        return data + self.ep_weight * ep, {"data_loss": data.detach(), "ep_loss": ep.detach()}

    def stop_training(self, history) -> bool:
        """The stopping rule (:func:`stopping_reason` is not None) on the epochs so far."""
        return stopping_reason(history, **self.stopping) is not None


class NumericalDifferentiationObjective(_GridObjective):
    """EAND-ARN's loss: residuals from the grid prediction with ∂/∂t by eqs. 17–18 and Δ by
    eq. 15, averaged over the batch's collocation points (no r_b: the surface is closed)."""

    def __init__(self, network: InverseNetwork, transfer: np.ndarray, bspm: np.ndarray, surface: SurfaceMesh,
                 times: np.ndarray, model: AlievPanfilov, ep_weight: float, refinement: int = 1,
                 stopping: Mapping[str, float] | None = None):
        super().__init__(network, transfer, bspm, surface.points, times, model, ep_weight, refinement, stopping)
        self.tau = float(times[1] - times[0])
        laplacian = neighbour_laplacian_operator(surface.points, surface.faces)
        self.register_buffer("laplacian_rows", laplacian.rows, persistent=False)
        self.register_buffer("laplacian_columns", laplacian.columns, persistent=False)
        self.register_buffer("laplacian_weights", laplacian.weights, persistent=False)

    def residuals(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_u, r_v) (n, T) of a grid field."""
        laplacian = NeighbourLaplacian(self.laplacian_rows, self.laplacian_columns, self.laplacian_weights)
        return aliev_panfilov_residuals(u, v, time_derivative(u, self.tau), time_derivative(v, self.tau),
                                        laplacian.apply(u), self.model)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        u, v = self.grid_prediction()
        r_u, r_v = self.residuals(u, v)
        collocation = batch["collocation"]
        ep = torch.mean(r_u.reshape(-1)[collocation] ** 2 + r_v.reshape(-1)[collocation] ** 2)
        return self.total(self.data_loss(u), ep)


class AutomaticDifferentiationObjective(_GridObjective):
    """EP-DL's loss: r_u, r_v with ∂/∂t and the ambient Laplacian by automatic differentiation
    and r_b = n·∇û, at the batch's collocation points."""

    def __init__(self, network: InverseNetwork, transfer: np.ndarray, bspm: np.ndarray, surface: SurfaceMesh,
                 times: np.ndarray, model: AlievPanfilov, ep_weight: float, refinement: int = 1,
                 stopping: Mapping[str, float] | None = None):
        super().__init__(network, transfer, bspm, surface.points, times, model, ep_weight, refinement, stopping)
        normals = vertex_normals(surface.points, surface.faces)
        self.register_buffer("normals", torch.as_tensor(normals, dtype=torch.float32), persistent=False)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # the data term needs the network at the data's instants only: the residuals come from
        # automatic differentiation at the collocation points, not from the grid
        u = self.data_prediction()
        collocation = batch["collocation"]
        d = automatic_derivatives(self.network, self.grid_inputs.index_select(0, collocation))
        r_u, r_v = aliev_panfilov_residuals(d["u"], d["v"], d["du_dt"], d["dv_dt"], d["laplacian_u"], self.model)
        normals = self.normals.index_select(0, torch.div(collocation, self.samples, rounding_mode="floor"))
        r_b = torch.sum(normals * d["grad_u"], dim=1)
        ep = torch.mean(r_u ** 2 + r_v ** 2 + r_b ** 2)
        return self.total(self.data_loss(u, on_grid=False), ep)


# ---------------------------------------------------------------- the start (issue 62)
def upstroke_width(model: AlievPanfilov) -> float:
    """The time constant (model time units) of the logistic upstroke as steep as the model's own:
    its steepest slope 1/(4w) equals the kinetics' fastest rise, k·max u(u − a)(1 − u) over
    [0, 1] (0.25 at k = 8, a = 0.1: 3.2 ms of 12.9 ms units)."""
    u = np.linspace(0.0, 1.0, 10001)
    return 1.0 / (4.0 * model.k * float(np.max(u * (u - model.a) * (1.0 - u))))


def data_upstrokes(transfer: np.ndarray, bspm: np.ndarray, surface: SurfaceMesh, times: np.ndarray,
                   fine: np.ndarray, model: AlievPanfilov) -> np.ndarray:
    """The data's own excitation (n, T_c) at the collocation instants ``fine``: the ``model``'s
    upstroke (:func:`upstroke_width`) at the activation times of a second-order Tikhonov estimate
    from ``bspm`` (m, T) at ``times`` (:func:`~ecgcohort.inverse.double_layer.tikhonov_activation`)
    — the resting heart before each node's upstroke and the plateau after it."""
    from ecgcohort.inverse.surface import cotangent_laplacian

    stiffness, mass = cotangent_laplacian(surface.points, surface.faces)
    activation = tikhonov_activation(transfer, bspm, stiffness.toarray() / mass[:, None], times)
    return upstroke_map(activation, fine, upstroke_width(model))


def warm_start(network: InverseNetwork, inputs: torch.Tensor, target: torch.Tensor, steps: int,
               learning_rate: float) -> float:
    """Fit the network's (û, v̂) at ``inputs`` (N, 4) to (``target`` (N,), 0) by ``steps`` full-batch
    Adam steps before the EP-informed training; returns the last mean square error (û² units).

    Why: the double layer is blind to a uniform u (A·1 = 0), so the data cannot tell the resting
    heart from an excited one, and the Aliev–Panfilov prior admits both over the window (rest and
    the plateau are slow states). From Glorot weights EP-DL's 10-layer MLP ended test-0000's
    crime-free row with the whole heart near u = 1 at the record's start (mean 1.02 against the
    truth's 0.00; RE 1.44, CC 0.05), at a data loss the same as the rested estimate's. Starting from
    the data's own upstrokes (rest before, plateau after, v̂ = 0 as the model's upstroke has it) puts
    the network in the resting basin, and balances the EP loss against the data loss from the first
    step — the imbalance paper 2 calls a bad initialisation (its Table II: 83 % of plain 10-layer
    MLPs). The activation-based inverse of the equivalent double layer is non-convex and
    starts from an activation estimate likewise (Huiskamp & Greensite 1997; van Dam et al. 2009)."""
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate)
    target = torch.stack([target, torch.zeros_like(target)], dim=1)
    loss = torch.zeros(())
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.mean((network(inputs) - target) ** 2)
        loss.backward()
        optimiser.step()
    return float(loss.detach())


# ---------------------------------------------------------------- the two methods
def _merged(config: Mapping[str, Any], defaults: Mapping[str, Any], method: str) -> dict[str, Any]:
    unknown = sorted(set(config) - set(defaults) - set(RUNTIME_KEYS))
    if unknown:
        raise InverseError(f"{method}: unknown config keys {', '.join(unknown)}; known: "
                           f"{', '.join(sorted(set(defaults) | set(RUNTIME_KEYS)))}")
    for key in ("seed", "workdir"):
        if key not in config:
            raise InverseError(f"{method}: the config needs '{key}'")
    merged = {**defaults, **config}
    merged["training"] = {**defaults["training"], **(config.get("training") or {})}
    merged["stopping"] = {**defaults["stopping"], **(config.get("stopping") or {})}
    merged["warm_start"] = {**defaults["warm_start"], **(config.get("warm_start") or {})}
    if int(merged["warm_start"]["steps"]) < 0 or not float(merged["warm_start"]["learning_rate"]) > 0:
        raise InverseError(f"{method}: warm_start needs steps >= 0 and a positive learning_rate, got "
                           f"{merged['warm_start']}")
    if not 0 < float(merged["collocation_fraction"]) <= 1:
        raise InverseError(f"{method}: collocation_fraction must lie in (0, 1], got {merged['collocation_fraction']}")
    if not float(merged["ep_weight"]) >= 0:
        raise InverseError(f"{method}: ep_weight must be non-negative, got {merged['ep_weight']}")
    if int(merged["time_refinement"]) < 1:
        raise InverseError(f"{method}: time_refinement must be at least 1, got {merged['time_refinement']}")
    if not float(merged["window"]) >= 0:
        raise InverseError(f"{method}: window must be non-negative (0: the whole record), got {merged['window']}")
    if not float(merged.get("noise_level", 0.0)) >= 0:
        raise InverseError(f"{method}: noise_level must be non-negative, got {merged['noise_level']}")
    return merged


def _checked_inputs(transfer: np.ndarray, bspm: np.ndarray, surface: SurfaceMesh,
                    times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    transfer = np.asarray(transfer, dtype=np.float64)
    bspm = np.asarray(bspm, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    n = len(surface.points)
    if transfer.ndim != 2 or transfer.shape[1] != n:
        raise InverseError(f"the transfer matrix R must be (m, n={n}) for {n} heart-surface points, "
                           f"got {transfer.shape}")
    if bspm.ndim != 2 or bspm.shape[0] != transfer.shape[0]:
        raise InverseError(f"the body-surface potentials Y must be (m={transfer.shape[0]}, T), got {bspm.shape}")
    if times.ndim != 1 or len(times) != bspm.shape[1]:
        raise InverseError(f"times must be (T={bspm.shape[1]},) like the columns of Y, got {times.shape}")
    if len(times) < MINIMUM_SAMPLES:
        raise InverseError(f"the time grid has samples={len(times)} instants; the fourth-order derivative of "
                           f"eqs. 17-18 needs samples >= {MINIMUM_SAMPLES}")
    steps = np.diff(times)
    if not (np.all(steps > 0) and np.allclose(steps, steps[0], rtol=1e-6, atol=0)):
        raise InverseError(f"times must be uniformly spaced and increasing for eq. 17, got steps from "
                           f"{steps.min():.6g} to {steps.max():.6g}")
    for name, array in (("R", transfer), ("Y", bspm), ("points", surface.points)):
        if not np.all(np.isfinite(array)):
            raise InverseError(f"{name} has non-finite entries")
    return transfer, bspm, times


def _digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def window_samples(times: np.ndarray, window: float) -> int:
    """How many of the record's instants (from the first) a ``window`` of model time covers
    (0: all of them); at least :data:`MINIMUM_SAMPLES`."""
    if not window > 0:
        return len(times)
    count = int(np.sum(times <= times[0] + window + 1e-9 * max(abs(window), 1.0)))
    return min(len(times), max(count, MINIMUM_SAMPLES))


def _reconstruct(method: str, objective_class: type[_GridObjective], defaults: Mapping[str, Any],
                 transfer: np.ndarray, bspm: np.ndarray, surface: SurfaceMesh, times: np.ndarray,
                 config: Mapping[str, Any]) -> Reconstruction:
    from ecgcohort.learning import TensorTable, TrainingSpec, fit

    start = time.perf_counter()
    settings = _merged(config, defaults, method)
    transfer, bspm, times = _checked_inputs(transfer, bspm, surface, times)
    try:
        check_architecture(int(settings["layers"]), int(settings["neurons"]), int(settings["residual_blocks"]))
    except ValueError as error:
        raise InverseError(f"{method}: {error}") from None
    try:
        model = AlievPanfilov(**dict(settings.get("model") or {}))
    except (TypeError, ValueError) as error:
        raise InverseError(f"{method}: config 'model' is no set of Aliev-Panfilov parameters: {error}") from None
    seed = int(settings["seed"])
    # the reconstructed window (depolarisation: the record's start to ``window``) on a grid
    # ``time_refinement`` times finer than the data's
    count = window_samples(times, float(settings["window"]))
    refinement = int(settings["time_refinement"])
    fine = np.linspace(times[0], times[count - 1], (count - 1) * refinement + 1)
    lower = np.append(surface.points.min(axis=0), fine[0])
    upper = np.append(surface.points.max(axis=0), fine[-1])
    network = InverseNetwork(int(settings["layers"]), int(settings["neurons"]), int(settings["residual_blocks"]),
                             lower, upper, seed)
    stopping = {**{k: float(v) for k, v in settings["stopping"].items() if k in ("discrepancy", "tolerance")},
                "patience": int(settings["stopping"]["patience"]),
                "noise_level": float(settings.get("noise_level", 0.0))}
    objective = objective_class(network, transfer, bspm[:, :count], surface, fine, model, float(settings["ep_weight"]),
                                refinement, stopping)
    start_steps = int(settings["warm_start"]["steps"])
    start_error = start_correlation = float("nan")
    if start_steps:
        target = data_upstrokes(transfer, bspm[:, :count], surface, times[:count], fine, model)
        start_correlation = map_correlation(transfer @ target[:, ::refinement], bspm[:, :count])
        if start_correlation >= MIN_CALIBRATION_CORRELATION:
            start_error = warm_start(network, objective.grid_inputs,
                                     torch.as_tensor(target.reshape(-1), dtype=torch.float32), start_steps,
                                     float(settings["warm_start"]["learning_rate"]))
        else:
            # upstrokes the data do not explain are no start (the calibration's rule): Glorot's weights
            log.warning("%s: the data's upstrokes correlate with the data by %.2f (< %.2f): no warm start", method,
                        start_correlation, MIN_CALIBRATION_CORRELATION)
            start_steps = 0
    grid_points = len(surface.points) * len(fine)
    batch_size = max(1, round(float(settings["collocation_fraction"]) * grid_points))
    spec = TrainingSpec.from_config(settings["training"], batch_size=batch_size, seed=seed)
    table = TensorTable({"collocation": torch.arange(grid_points)})
    fingerprint = {"method": method, "model": asdict(model),
                   "config": {k: v for k, v in settings.items() if k not in ("workdir", "model")},
                   "data": _digest(transfer, bspm, surface.points, surface.faces, times)}
    result = fit(objective, table, spec, Path(settings["workdir"]), settings=fingerprint, name=method)
    objective.load_state_dict(result.state_dict)
    with torch.no_grad():
        window = objective.grid_prediction()[0][:, ::refinement].detach().cpu().double().numpy()
    # after the window the excitation is held at its last value (the plateau; repolarisation
    # is not reconstructed): the benchmark scores the window only
    estimate = np.concatenate([window, np.repeat(window[:, -1:], len(times) - count, axis=1)], axis=1)
    last = result.history[-1]
    best_data_loss = min(row["data_loss"] for row in result.history)
    final_data_loss = normalised_data_loss(transfer, bspm[:, :count], window)
    failure = zero_map_failure(window, transfer, bspm[:, :count], min(best_data_loss, final_data_loss),
                               float(settings["zero_map_fraction"]), float(settings["zero_map_data_loss"]))
    info = {"final_loss": last["loss"], "data_loss": final_data_loss, "zero_map_data_loss": 1.0,
            "best_epoch_data_loss": best_data_loss, "ep_loss": last["ep_loss"],
            "ep_weight": float(settings["ep_weight"]),
            "noise_level": stopping["noise_level"], "warm_start_steps": start_steps, "warm_start_error": start_error,
            "warm_start_correlation": start_correlation,
            "stopped": stopping_reason(result.history, **stopping) or f"max epochs {spec.epochs}",
            "epochs": len(result.history), "window_samples": count, "collocation_instants": len(fine),
            "parameters": network.parameter_count, "device": result.device,
            "samples_per_second": result.samples_per_second, "batch_size": batch_size,
            "seconds_per_epoch": result.seconds / max(len(result.history) - result.resumed_from_epoch, 1),
            "failed": failure}
    if network.alphas():
        info["alphas"] = network.alphas()
    return Reconstruction(estimate=estimate, info=info, history=result.history, seconds=time.perf_counter() - start)


def ep_dl(transfer: np.ndarray, bspm: np.ndarray, surface: SurfaceMesh, times: np.ndarray,
          config: Mapping[str, Any]) -> Reconstruction:
    """EP-DL (paper 2, section IV-A's EP-DL_AD): Û (n, T) from R (m, n) and Y (m, T) by a plain
    tanh network trained on eq. 4 with AD residuals and r_b (eqs. 6–9). ``config``: ``layers``,
    ``neurons``, ``residual_blocks``, ``ep_weight`` (λ), ``collocation_fraction`` and
    ``training`` (see :data:`EP_DL_DEFAULTS`), plus ``seed``, ``workdir``, ``model``. The
    returned info holds the last epoch's mean losses, the epochs, parameter count, device,
    collocation points per second and seconds per epoch."""
    return _reconstruct("EP-DL", AutomaticDifferentiationObjective, EP_DL_DEFAULTS, transfer, bspm, surface, times,
                        config)


def eand_arn(transfer: np.ndarray, bspm: np.ndarray, surface: SurfaceMesh, times: np.ndarray,
             config: Mapping[str, Any]) -> Reconstruction:
    """EAND-ARN (paper 2, section III): Û (n, T) from R (m, n) and Y (m, T) by an adaptive
    residual network trained on eq. 4 with the numerically differentiated residuals (eqs.
    6–7, 15, 17–18). ``config`` as :func:`ep_dl` (defaults :data:`EAND_ARN_DEFAULTS`: NN6);
    info also holds the learnt α of each block."""
    return _reconstruct("EAND-ARN", NumericalDifferentiationObjective, EAND_ARN_DEFAULTS, transfer, bspm, surface,
                        times, config)
