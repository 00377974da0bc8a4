"""Generic building blocks of the coordinate networks (no anatomy, no units of their own).

* :class:`FourierFeatures` — random Fourier features (Tancik et al. 2020) of coordinates;
* :class:`LipschitzLinear` — a linear layer with a learnable bound on its ∞-norm Lipschitz
  constant (Liu et al. 2022, "Learning Smooth Neural Functions via Lipschitz Regularization");
* :class:`SkipMLP` — a ReLU MLP whose hidden features get an extra input concatenated after
  one hidden layer (DeepSDF's shape decoder, the lead-field surrogate).

All Lipschitz statements are in the ∞-norm: |f(x) − f(y)|_∞ ≤ L |x − y|_∞.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def derived_seed(seed: int, stream: int) -> int:
    """An independent seed for each use (Fourier matrix, weights, codes) of one model seed."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)

class FourierFeatures(torch.nn.Module):
    """x ↦ [sin(2π x Bᵀ), cos(2π x Bᵀ), x]: ``2·count + in_dim`` features, x itself last so
    the network keeps the raw coordinates. B (count × in_dim, entries N(0, scale²), in cycles
    per unit of x) is drawn from a generator seeded with ``seed`` and stored as a buffer, so a
    saved state dict restores the same features. ``count = 0`` passes x through."""

    def __init__(self, in_dim: int, count: int, scale: float, seed: int):
        super().__init__()
        if in_dim < 1 or count < 0 or not scale > 0:
            raise ValueError(f"need in_dim >= 1, count >= 0, scale > 0; got {in_dim}, {count}, {scale}")
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("B", scale * torch.randn(count, in_dim, generator=generator))
        self.in_dim = in_dim

    @property
    def out_dim(self) -> int:
        return self.in_dim + 2 * self.B.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Phases reach tens of radians: in bf16 (autocast on CUDA) sin/cos would be noise.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            phase = 2.0 * math.pi * (x @ self.B.T)
            return torch.cat([torch.sin(phase), torch.cos(phase), x], dim=-1)

    def lipschitz_bound(self) -> torch.Tensor:
        """max(1, 2π maxᵢ ‖Bᵢ‖₁): |sin a − sin b| ≤ |a − b| and |Bᵢ·δ| ≤ ‖Bᵢ‖₁ |δ|_∞; the
        pass-through x contributes 1."""
        one = torch.ones((), device=self.B.device)
        if self.B.shape[0] == 0:
            return one
        return torch.maximum(one, 2.0 * math.pi * self.B.abs().sum(dim=1).max())


def _uniform_init(weight: torch.Tensor, bias: torch.Tensor, generator: torch.Generator | None) -> None:
    """U(−1/√fan_in, 1/√fan_in) for weights and biases (PyTorch's nn.Linear scale), drawn from
    ``generator`` so that a model's initial weights follow its seed, not the global RNG."""
    bound = 1.0 / math.sqrt(weight.shape[1])
    with torch.no_grad():
        weight.copy_(torch.empty_like(weight).uniform_(-bound, bound, generator=generator))
        bias.copy_(torch.empty_like(bias).uniform_(-bound, bound, generator=generator))


class LipschitzLinear(torch.nn.Module):
    """y = x Ŵᵀ + b with Ŵᵢ = Wᵢ · min(1, softplus(c) / Σⱼ|Wᵢⱼ|) (Liu et al. 2022): every row of
    Ŵ has absolute sum ≤ softplus(c), so the layer is softplus(c)-Lipschitz in the ∞-norm.
    c starts at the largest absolute row sum of the initial W (the bound is then inactive);
    penalising the product of the bounds of a network shrinks them during training."""

    def __init__(self, in_dim: int, out_dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = torch.nn.Parameter(torch.empty(out_dim))
        _uniform_init(self.weight, self.bias, generator)
        self.c = torch.nn.Parameter(self.weight.detach().abs().sum(dim=1).max().clone())

    def lipschitz_bound(self) -> torch.Tensor:
        return F.softplus(self.c)

    def normalised_weight(self) -> torch.Tensor:
        row_sums = self.weight.abs().sum(dim=1, keepdim=True)
        # A floor instead of a zero row sum: 0/0 in the backward pass would give NaN gradients.
        scale = torch.clamp(self.lipschitz_bound() / row_sums.clamp_min(1e-12), max=1.0)
        return self.weight * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalised_weight(), self.bias)


class SkipMLP(torch.nn.Module):
    """``layers`` hidden layers of width ``hidden`` with ReLU and a final linear layer to
    ``out_dim``; with ``skip_at = k`` (1-based) the ``skip`` input (``skip_dim`` features) is
    concatenated to the output of hidden layer k. ``lipschitz`` makes every linear layer a
    :class:`LipschitzLinear`.

    Lipschitz bound (∞-norm, Lᵢ = :meth:`layer_bounds`): without a skip,
    |f(x) − f(y)| ≤ ∏ᵢ Lᵢ |x − y|. With one, the concatenation [h, s] has
    |Δ[h, s]| = max(|Δh|, |Δs|), so |Δf| ≤ ∏_{i>k} Lᵢ · max(∏_{i≤k} Lᵢ |Δx|, |Δs|).
    """

    def __init__(self, in_dim: int, hidden: int, layers: int, out_dim: int, skip_at: int | None = None,
                 skip_dim: int = 0, lipschitz: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        if min(in_dim, hidden, layers, out_dim) < 1:
            raise ValueError("in_dim, hidden, layers and out_dim must be >= 1")
        if (skip_at is None) != (skip_dim == 0) or skip_dim < 0:
            raise ValueError(f"give both skip_at and skip_dim > 0, or neither; got {skip_at}, {skip_dim}")
        if skip_at is not None and not 1 <= skip_at <= layers:
            raise ValueError(f"skip_at must be within 1..{layers}, got {skip_at}")
        self.skip_at, self.skip_dim, self.lipschitz = skip_at, skip_dim, lipschitz
        widths_in = [in_dim] + [hidden + (skip_dim if k == skip_at else 0) for k in range(1, layers + 1)]
        widths_out = [hidden] * layers + [out_dim]
        self.linears = torch.nn.ModuleList(
            self._linear(n_in, n_out, generator) for n_in, n_out in zip(widths_in, widths_out))

    def _linear(self, n_in: int, n_out: int, generator: torch.Generator | None) -> torch.nn.Module:
        if self.lipschitz:
            return LipschitzLinear(n_in, n_out, generator)
        linear = torch.nn.Linear(n_in, n_out)
        _uniform_init(linear.weight, linear.bias, generator)
        return linear

    def forward(self, h: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if (skip is None) != (self.skip_at is None):
            raise ValueError("pass `skip` exactly when the MLP was built with skip_at")
        for k, linear in enumerate(self.linears[:-1], start=1):
            h = torch.relu(linear(h))
            if k == self.skip_at:
                h = torch.cat([h, skip], dim=-1)
        return self.linears[-1](h)

    def trunk(self, h: torch.Tensor) -> torch.Tensor:
        """The output of hidden layer ``skip_at``: the part that does not see the skip input."""
        if self.skip_at is None:
            raise ValueError("trunk() needs an MLP built with skip_at")
        for linear in self.linears[:self.skip_at]:
            h = torch.relu(linear(h))
        return h

    def split_skip_layer(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_h, W_s, b) of the layer after the skip, so that its pre-activation is
        W_h h + W_s s + b: with many skip vectors per h (electrodes per point), W_h h + b is
        computed once. Plain linear layers only."""
        layer = self.linears[self.skip_at]
        if not isinstance(layer, torch.nn.Linear):
            raise ValueError("split_skip_layer() needs plain linear layers (lipschitz=False)")
        width = layer.in_features - self.skip_dim
        return layer.weight[:, :width], layer.weight[:, width:], layer.bias

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        """The layers after the one following the skip, from its (ReLU'd) output to the output."""
        for linear in self.linears[self.skip_at + 1:-1]:
            h = torch.relu_(linear(h))  # in place: the linear output is used by nothing else
        return self.linears[-1](h)

    def trunk_into(self, h: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """:meth:`trunk` without autograd and without new tensors: the layers write into
        ``first`` and ``second`` (B, hidden) in turn (both overwritten); returns the one holding
        the output. The same matrix products, so the same numbers. Plain linear layers only."""
        if self.skip_at is None:
            raise ValueError("trunk_into() needs an MLP built with skip_at")
        for linear in self.linears[:self.skip_at]:
            if not isinstance(linear, torch.nn.Linear):
                raise ValueError("trunk_into() needs plain linear layers (lipschitz=False)")
            torch.addmm(linear.bias, h, linear.weight.t(), out=first).relu_()
            h, first, second = first, second, first
        return h

    def tail_into(self, h: torch.Tensor, spare: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """:meth:`tail` without autograd and without new tensors, for inference in pieces: ``h``
        (B, hidden) the ReLU'd output of the layer after the skip, ``spare`` a tensor of its shape
        (both overwritten), the output written to ``out`` (B, out_dim) and returned. The same
        matrix products as :meth:`tail`, so the same numbers. Plain linear layers only."""
        for linear in self.linears[self.skip_at + 1:]:
            if not isinstance(linear, torch.nn.Linear):
                raise ValueError("tail_into() needs plain linear layers (lipschitz=False)")
        for linear in self.linears[self.skip_at + 1:-1]:
            torch.addmm(linear.bias, h, linear.weight.t(), out=spare).relu_()
            h, spare = spare, h
        final = self.linears[-1]
        return torch.addmm(final.bias, h, final.weight.t(), out=out)

    def layer_bounds(self) -> torch.Tensor:
        """Per linear layer, an ∞-norm Lipschitz bound: softplus(c) of a Lipschitz layer, the
        largest absolute row sum (the exact ∞-operator norm) of a plain one."""
        return torch.stack([
            linear.lipschitz_bound() if self.lipschitz else linear.weight.abs().sum(dim=1).max()
            for linear in self.linears])

    def lipschitz_product(self) -> torch.Tensor:
        """∏ᵢ Lᵢ over all linear layers: Liu et al.'s regulariser, and the network's Lipschitz
        bound when there is no skip input."""
        return torch.prod(self.layer_bounds())
