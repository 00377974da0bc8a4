"""DeepSDF geometry encoding (paper 1, sec. 2.5–2.6): Lipschitz layers and Fourier features,
the Chamfer metrics, the auto-decoder loss (eq. 6) and MAP code inference (eq. 7) on an
analytic family of spheres."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ecgcohort.encoding.chamfer import chamfer_distance, interior_chamfer, interior_volume, regular_grid
from ecgcohort.encoding.deepsdf import (AutoDecoder, DeepSdfSpec, MapSpec, NormalisationBox, clamped_sdf_loss,
                                        latent_prior, mahalanobis, map_code, predict_sdf)
from ecgcohort.learning.layers import FourierFeatures, LipschitzLinear, SkipMLP

RTOL = 1e-5  # float32 round-off on a bound that holds exactly in real arithmetic


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The networks here are tiny: a second intra-op thread only adds synchronisation, which
    costs ten times the arithmetic when the two cores are shared with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


def _inf_ratio(delta_out: torch.Tensor, delta_in: torch.Tensor) -> torch.Tensor:
    return delta_out.abs().amax(dim=-1) / delta_in.abs().amax(dim=-1)


def _pairs(generator: torch.Generator, n: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and partners at distances from 1e-3 to 1: close pairs probe the local slope of a
    ReLU network, far pairs the slope across kinks."""
    x = torch.randn(n, dim, generator=generator)
    step = torch.randn(n, dim, generator=generator) * 10 ** torch.empty(n, 1).uniform_(-3, 0, generator=generator)
    return x, x + step


def _tighten(mlp: SkipMLP, weight_scale: float, bound_fraction: float) -> None:
    """Scale every weight up and set each layer's bound below its largest row sum, so the
    Lipschitz normalisation is active (the regime the bound must survive)."""
    with torch.no_grad():
        for linear in mlp.linears:
            linear.weight.mul_(weight_scale)
            linear.c.fill_(_inverse_softplus(bound_fraction * float(linear.weight.abs().sum(dim=1).max())))


def _plain_copy(mlp: SkipMLP, **shape) -> SkipMLP:
    """The same weights in plain nn.Linear layers: no normalisation."""
    plain = SkipMLP(**shape, lipschitz=False)
    with torch.no_grad():
        for source, target in zip(mlp.linears, plain.linears):
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
    return plain


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weight_scale", [1.0, 10.0])
def test_lipschitz_linear_bound_holds_is_attained_and_needs_the_normalisation(seed: int, weight_scale: float):
    generator = torch.Generator().manual_seed(seed)
    layer = LipschitzLinear(8, 5, generator=generator)
    with torch.no_grad():
        layer.weight.mul_(weight_scale)
        layer.c.fill_(_inverse_softplus(0.5 * float(layer.weight.abs().sum(dim=1).max())))
    bound = float(layer.lipschitz_bound().detach())
    x, y = _pairs(generator, 4000, 8)
    with torch.no_grad():
        assert float(_inf_ratio(layer(x) - layer(y), x - y).max()) <= bound * (1 + RTOL)
        # The worst direction for the row with the largest sum: δ = ε·sign(row) gives exactly
        # its (clipped) row sum, which is the bound.
        row = int(layer.weight.abs().sum(dim=1).argmax())
        delta = 0.1 * torch.sign(layer.normalised_weight()[row])[None]
        attained = float(_inf_ratio(layer(delta) - layer(torch.zeros_like(delta)), delta)[0])
        assert attained == pytest.approx(bound, rel=RTOL)
        plain = float(_inf_ratio(F.linear(delta, layer.weight), delta)[0])  # W(δ) − W(0)
    assert plain > 1.9 * bound  # the unnormalised row sum is twice the bound


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weight_scale", [1.0, 5.0])
def test_skip_mlp_without_skip_is_bounded_by_the_product(seed: int, weight_scale: float):
    shape = dict(in_dim=6, hidden=32, layers=3, out_dim=4)
    generator = torch.Generator().manual_seed(seed)
    mlp = SkipMLP(**shape, generator=generator)
    _tighten(mlp, weight_scale, bound_fraction=0.05)
    plain = _plain_copy(mlp, **shape)
    x, y = _pairs(generator, 4000, 6)
    with torch.no_grad():
        ratio = _inf_ratio(mlp(x) - mlp(y), x - y)
        plain_ratio = _inf_ratio(plain(x) - plain(y), x - y)
        bound, plain_bound = float(mlp.lipschitz_product()), float(plain.lipschitz_product())
    assert float(ratio.max()) <= bound * (1 + RTOL)
    assert float(plain_ratio.max()) <= plain_bound * (1 + RTOL)  # ∏ ∞-operator norms, also true
    assert float(plain_ratio.max()) > bound  # without the normalisation the bound is violated


@pytest.mark.parametrize("skip_at", [2, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_skip_mlp_with_skip_obeys_the_split_bound(skip_at: int, seed: int):
    """|Δf| ≤ ∏_{i>k} Lᵢ · max(∏_{i≤k} Lᵢ |Δx|, |Δs|): after the skip the concatenated vector
    [h, s] changes by max(|Δh|, |Δs|) in the ∞-norm."""
    shape = dict(in_dim=5, hidden=32, layers=4, out_dim=3, skip_at=skip_at, skip_dim=3)
    generator = torch.Generator().manual_seed(seed)
    mlp = SkipMLP(**shape, generator=generator)
    _tighten(mlp, 3.0, bound_fraction=0.05)
    plain = _plain_copy(mlp, **shape)
    x, y = _pairs(generator, 4000, 5)
    s, t = _pairs(generator, 4000, 3)
    t = torch.where(torch.rand(4000, 1, generator=generator) < 0.3, s, t)  # some pairs with Δs = 0
    with torch.no_grad():
        bounds = mlp.layer_bounds()
        before, after = torch.prod(bounds[:skip_at]), torch.prod(bounds[skip_at:])
        allowed = after * torch.maximum(before * (x - y).abs().amax(dim=1), (s - t).abs().amax(dim=1))
        change = (mlp(x, s) - mlp(y, t)).abs().amax(dim=1)
        plain_change = (plain(x, s) - plain(y, t)).abs().amax(dim=1)
    assert torch.all(change <= allowed * (1 + RTOL))
    assert torch.any(plain_change > allowed)
    with pytest.raises(ValueError, match="skip"):
        mlp(x)


def test_skip_mlp_skip_path_bound_is_attained():
    """With the skip feeding the last layer and that layer reading only the skip columns, the
    skip path's bound L_last |Δs| is attained by Δs = ε·sign(row of the largest sum). In float64:
    the change is a difference of two outputs, whose float32 round-off (about 3e-5 of the change)
    passed or failed RTOL with the inputs."""
    generator = torch.Generator().manual_seed(0)
    mlp = SkipMLP(4, 16, 2, 3, skip_at=2, skip_dim=5, generator=generator)
    _tighten(mlp, 2.0, bound_fraction=0.5)
    mlp = mlp.double()
    last = mlp.linears[-1]
    with torch.no_grad():
        last.weight[:, :16] = 0.0
        last.c.fill_(_inverse_softplus(0.5 * float(last.weight.abs().sum(dim=1).max())))
        row = int(last.weight.abs().sum(dim=1).argmax())
        x = torch.randn(1, 4, generator=generator, dtype=torch.float64)
        s = torch.randn(1, 5, generator=generator, dtype=torch.float64)
        delta = 0.01 * torch.sign(last.weight[row, 16:])[None]
        change = (mlp(x, s + delta) - mlp(x, s)).abs().amax()
    assert float(change) == pytest.approx(float(last.lipschitz_bound().detach()) * 0.01, rel=RTOL)


def test_fourier_features_are_seeded_saved_and_lipschitz():
    a, b = FourierFeatures(3, 16, 4.0, seed=7), FourierFeatures(3, 16, 4.0, seed=7)
    other = FourierFeatures(3, 16, 4.0, seed=8)
    assert a.out_dim == 3 + 2 * 16
    assert torch.equal(a.B, b.B) and not torch.equal(a.B, other.B)
    assert "B" in a.state_dict() and not list(a.parameters())
    generator = torch.Generator().manual_seed(0)
    x, y = _pairs(generator, 4000, 3)
    fa = a(x)
    assert fa.shape == (4000, a.out_dim)
    assert torch.equal(fa[:, -3:], x)
    assert torch.allclose(fa[:, :16] ** 2 + fa[:, 16:32] ** 2, torch.ones(4000, 16), atol=1e-5)
    other.load_state_dict(a.state_dict())
    assert torch.equal(other(x), fa)
    ratio = _inf_ratio(fa - a(y), x - y)
    # Bound max(1, 2π maxᵢ ‖Bᵢ‖₁); float32 phases of tens of radians lose ~1e-5 absolute.
    assert float(ratio.max()) <= float(a.lipschitz_bound()) * 1.01
    assert float(FourierFeatures(3, 0, 1.0, 0).lipschitz_bound()) == 1.0


def test_chamfer_distance_basic_properties():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(200, 3))
    assert chamfer_distance(a, a) == 0.0
    assert chamfer_distance([[0.0, 0.0, 0.0]], [[3.0, 4.0, 0.0]]) == pytest.approx(5.0)
    assert chamfer_distance(a, b) == pytest.approx(chamfer_distance(b, a))
    shift = np.array([0.3, -0.2, 0.1])
    assert 0 < chamfer_distance(a, a + shift) <= np.linalg.norm(shift)
    # Eq. 8 by brute force.
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    assert chamfer_distance(a, b) == pytest.approx(0.5 * (d.min(1).mean() + d.min(0).mean()))
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(np.zeros((0, 3)), b)
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(a, np.zeros((0, 3)))


def test_interior_chamfer_of_concentric_spheres_matches_the_integral():
    """Interiors of radii r1 < r2: ball 1 lies in ball 2 (first term 0); a point of ball 2 at
    radius ρ is max(0, ρ − r1) from ball 1, whose mean over ball 2 is
    3/r2³ [(r2⁴ − r1⁴)/4 − r1 (r2³ − r1³)/3]."""
    r1, r2, resolution = 0.4, 0.7, 81
    grid = regular_grid([-1, -1, -1], [1, 1, 1], resolution)
    spacing = 2.0 / (resolution - 1)
    radius = np.linalg.norm(grid, axis=1)
    expected = 0.5 * 3 / r2**3 * ((r2**4 - r1**4) / 4 - r1 * (r2**3 - r1**3) / 3)
    value = interior_chamfer(radius - r1, radius - r2, grid)
    assert value == pytest.approx(expected, abs=spacing / 2)
    assert interior_chamfer(radius - r2, radius - r1, grid) == pytest.approx(value)
    assert interior_chamfer(radius - r1, radius - r1, grid) == 0.0
    assert interior_chamfer(np.ones(len(grid)), radius - r1, grid) == math.inf
    with pytest.raises(ValueError, match="true SDF"):
        interior_chamfer(radius - r1, np.ones(len(grid)), grid)


def test_interior_volume_of_a_ball_and_an_empty_interior():
    """A ball of radius 0.6 on a grid of spacing 0.025: 4/3 π r³ to within the shell of half a
    spacing (relative 1.5 h / r); the grid's anisotropic spacing enters the cell volume."""
    resolution, radius = 81, 0.6
    grid = regular_grid([-1, -1, -2], [1, 1, 2], resolution) * [1.0, 1.0, 0.5]
    ball = np.linalg.norm(grid, axis=1) - radius
    spacing = 2.0 / (resolution - 1)
    assert interior_volume(ball, grid, resolution) == pytest.approx(4 / 3 * math.pi * radius**3,
                                                                    rel=1.5 * spacing / radius)
    assert interior_volume(np.ones(len(grid)), grid, resolution) == 0.0
    with pytest.raises(ValueError, match="81\\^3 grid points"):
        interior_volume(ball[:-1], grid, resolution)


def test_regular_grid_order_and_extent():
    grid = regular_grid([0, 10, 20], [1, 12, 23], 4)
    assert grid.shape == (64, 3)
    cube = grid.reshape(4, 4, 4, 3)
    assert np.allclose(cube[1, 2, 3], [1 / 3, 10 + 2 * 2 / 3, 23])
    assert np.allclose(grid.min(0), [0, 10, 20]) and np.allclose(grid.max(0), [1, 12, 23])


def _small_spec(**changes) -> DeepSdfSpec:
    base = dict(latent_dim=2, hidden=32, layers=3, skip_at=2, fourier_features=4, fourier_scale=1.0, clamp=0.1,
                lambda_prior=1e-2, lambda_lipschitz=1e-3)
    return DeepSdfSpec(**{**base, **changes})


def test_training_loss_clamps_both_sides():
    spec = _small_spec()
    model = AutoDecoder(spec, n_shapes=3)
    c = spec.clamp
    x = torch.rand(10, 3) * 2 - 1
    shape = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])

    def sdf_part(output: float, target: float) -> float:
        with torch.no_grad():
            last = model.decoder.mlp.linears[-1]
            last.weight.zero_()
            last.bias.fill_(output)  # the decoder now outputs `output` for every surface
        batch = {"shape": shape, "x": x, "sdf": torch.full((10, 4), target)}
        return float(model.training_loss(batch)[1]["sdf"])

    assert sdf_part(5 * c, 3 * c) == 0.0  # beyond the clamp on the right side: free
    assert sdf_part(-5 * c, -2 * c) == 0.0
    assert sdf_part(0.5 * c, -0.5 * c) == pytest.approx(c**2)
    # beyond the clamp on the wrong side, the prediction itself counts (DeepSDF's two-sided
    # clamp would give c² and 4c², with no gradient)
    assert sdf_part(5 * c, 0.0) == pytest.approx(25 * c**2)
    assert sdf_part(5 * c, -5 * c) == pytest.approx(36 * c**2)
    assert sdf_part(-2 * c, 3 * c) == pytest.approx(9 * c**2)


def test_a_prediction_beyond_the_clamp_on_the_wrong_side_still_has_a_gradient():
    """A surface decoded far outside everywhere (the lost-RV failure) is pulled back: the loss's
    gradient with respect to the prediction points inwards at samples that are inside, and is
    zero only where prediction and truth are both beyond the clamp on one side."""
    c = 0.1
    pred = torch.tensor([[5 * c], [5 * c], [5 * c], [-5 * c]], requires_grad=True)
    target = torch.tensor([[-3 * c], [0.2 * c], [3 * c], [-3 * c]])
    clamped_sdf_loss(pred, target, c).backward()
    gradient = pred.grad[:, 0]
    assert gradient[0] > 0 and gradient[1] > 0  # lowering the prediction lowers the loss
    assert gradient[2] == 0 and gradient[3] == 0


def test_training_loss_parts_and_code_gradients():
    spec = _small_spec(clamp=10.0)
    model = AutoDecoder(spec, n_shapes=5)
    generator = torch.Generator().manual_seed(3)
    shape = torch.tensor([1, 3, 3, 1, 3])
    batch = {"shape": shape, "x": torch.rand(5, 3, generator=generator),
             "sdf": torch.randn(5, 4, generator=generator)}
    loss, parts = model.training_loss(batch)
    codes = model.codes.weight.detach()
    assert float(parts["prior"]) == pytest.approx(float(codes[shape].square().sum(1).mean()), rel=1e-6)
    bounds = [F.softplus(m.c.detach()) for m in model.modules() if isinstance(m, LipschitzLinear)]
    assert len(bounds) == spec.layers + 1
    assert float(parts["lipschitz"]) == pytest.approx(float(torch.prod(torch.stack(bounds))), rel=1e-6)
    assert float(loss.detach()) == pytest.approx(float(parts["sdf"] + spec.lambda_prior * parts["prior"]
                                              + spec.lambda_lipschitz * parts["lipschitz"]), rel=1e-6)
    assert 0.3 * spec.code_std < float(codes.std()) < 3 * spec.code_std
    loss.backward()
    grad = model.codes.weight.grad
    assert torch.all(grad[[1, 3]].abs().sum(1) > 0)
    assert torch.all(grad[[0, 2, 4]] == 0)
    assert all(m.c.grad is not None and float(m.c.grad) > 0 for m in model.modules() if isinstance(m, LipschitzLinear))


def test_models_are_seeded():
    spec = _small_spec(seed=4)
    a, b, c = AutoDecoder(spec, 3), AutoDecoder(spec, 3), AutoDecoder(_small_spec(seed=5), 3)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.codes.weight, c.codes.weight)
    assert not torch.equal(a.decoder.fourier.B, c.decoder.fourier.B)


def test_latent_prior_is_invertible_with_few_codes_and_mahalanobis_grows():
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(3, 8)) * 0.1  # N <= d: the sample covariance is singular
    with pytest.raises(ValueError, match="singular"):
        latent_prior(codes, shrinkage=0.0)
    mean, cov = latent_prior(codes, shrinkage=0.05)
    assert np.allclose(mean, codes.mean(0))
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    typical = [mahalanobis(code, mean, cov) for code in codes]
    assert max(typical) < 3.0  # a training code lies about sqrt(N - 1) away in its own subspace
    assert mahalanobis(mean, mean, cov) == 0.0
    assert mahalanobis(mean + 5.0, mean, cov) > 50.0


def test_specs_round_trip_and_normalisation_box():
    spec = DeepSdfSpec(latent_dim=8, surfaces=("torso", "lv_endocardium"), seed=3)
    assert DeepSdfSpec.from_config(spec.to_config()) == spec
    assert DeepSdfSpec.from_config({}) == DeepSdfSpec()
    with pytest.raises(ValueError, match="unknown"):
        DeepSdfSpec.from_config({"latnet_dim": 8})
    with pytest.raises(ValueError, match="skip_at"):
        DeepSdfSpec(layers=3, skip_at=4)
    assert MapSpec.from_config({"iterations": 10}).iterations == 10

    lower = np.array([[-150.0, -100.0, -300.0], [-170.0, -90.0, -320.0]])
    upper = np.array([[150.0, 120.0, 300.0], [160.0, 110.0, 330.0]])
    box = NormalisationBox.from_bounds(lower, upper, padding=0.1)
    assert box.scale_mm == pytest.approx(1.1 * 325.0)
    corners = box.normalise(np.vstack([lower, upper]))
    assert np.abs(corners).max() <= 1 / 1.1 + 1e-12
    points = np.random.default_rng(0).normal(size=(10, 3)) * 100
    assert np.allclose(box.denormalise(box.normalise(points)), points)
    assert box.normalise_sdf(np.array([box.scale_mm])) == pytest.approx(1.0)
    assert np.allclose(box.denormalise_sdf(box.normalise_sdf(points)), points)
    assert NormalisationBox.from_dict(box.to_dict()) == box


# ---- MAP inference on an analytic family: spheres |x| − r --------------------------------

RADII = (0.3, 0.4, 0.5, 0.6)


def _sphere_samples(radius: float, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Half uniform in [−1, 1]³, half within about ±0.1 of the sphere (normalised units)."""
    uniform = torch.rand(n // 2, 3, generator=generator) * 2 - 1
    direction = F.normalize(torch.randn(n - n // 2, 3, generator=generator), dim=1)
    near = direction * (radius + 0.05 * torch.randn(n - n // 2, 1, generator=generator))
    x = torch.cat([uniform, near])
    return x, x.norm(dim=1, keepdim=True) - radius


@pytest.fixture(scope="module")
def sphere_model() -> AutoDecoder:
    """A small decoder trained with a plain Adam loop on four spheres, 1-D codes."""
    torch.manual_seed(0)
    spec = DeepSdfSpec(latent_dim=1, hidden=64, layers=3, skip_at=2, fourier_features=8, fourier_scale=0.5,
                       clamp=0.3, lambda_prior=1e-4, lambda_lipschitz=1e-6, surfaces=("sphere",), seed=0)
    model = AutoDecoder(spec, n_shapes=len(RADII))
    generator = torch.Generator().manual_seed(1)
    samples = [_sphere_samples(r, 1024, generator) for r in RADII]
    batch = {"shape": torch.arange(len(RADII)).repeat_interleave(1024),
             "x": torch.cat([x for x, _ in samples]), "sdf": torch.cat([s for _, s in samples])}
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(600):
        optimiser.zero_grad()
        loss, _ = model.training_loss(batch)
        loss.backward()
        optimiser.step()
    return model


def _zero_level_radius(model: AutoDecoder, code: np.ndarray) -> float:
    """Mean radius of the first sign change along the six axis rays."""
    t = np.linspace(0.0, 1.0, 2001)
    radii = []
    for direction in np.vstack([np.eye(3), -np.eye(3)]):
        sdf = predict_sdf(model.decoder, code, t[:, None] * direction, batch_size=512)[:, 0]
        first = int(np.argmax(sdf > 0))
        assert first > 0 and sdf[first - 1] <= 0
        radii.append(np.interp(0.0, sdf[first - 1:first + 1], t[first - 1:first + 1]))
    return float(np.mean(radii))


@pytest.mark.parametrize("held_out", [0.35, 0.55])
def test_map_code_recovers_a_held_out_sphere(sphere_model: AutoDecoder, held_out: float):
    """Held-out radii off the centre of the family: 0.45 is the mean of the training radii, so
    the mean code alone already decodes to about 0.45 and the test could not fail."""
    codes = sphere_model.codes.weight.detach().numpy()
    trained = [_zero_level_radius(sphere_model, code) for code in codes]
    assert np.allclose(trained, RADII, atol=0.02)
    mean, cov = latent_prior(codes)
    x, sdf = _sphere_samples(held_out, 4096, torch.Generator().manual_seed(2))
    result = map_code(sphere_model.decoder, x.numpy(), sdf.numpy(), mean, cov,
                      MapSpec(iterations=300, learning_rate=0.05, gamma=1e-6, points_per_iteration=1024))
    recovered, prior_only = _zero_level_radius(sphere_model, result.code), _zero_level_radius(sphere_model, mean)
    assert abs(recovered - held_out) < 0.02
    assert abs(recovered - held_out) < 0.5 * abs(prior_only - held_out)
    assert result.mahalanobis == pytest.approx(mahalanobis(result.code, mean, cov), rel=1e-4)
    assert result.history[-1] < result.history[0]
    assert result.loss == pytest.approx(result.sdf_loss + 1e-6 * result.mahalanobis**2)
    far = mean + 20 * np.sqrt(np.diag(cov))
    assert mahalanobis(far, mean, cov) == pytest.approx(20.0, rel=1e-6)
    assert mahalanobis(far, mean, cov) > 5 * max(mahalanobis(code, mean, cov) for code in codes)


def test_map_code_is_deterministic_follows_gamma_and_leaves_the_decoder_as_it_was(sphere_model: AutoDecoder):
    decoder = sphere_model.decoder
    decoder.train()
    codes = sphere_model.codes.weight.detach().numpy()
    mean, cov = latent_prior(codes)
    x, sdf = _sphere_samples(0.6, 2048, torch.Generator().manual_seed(3))
    spec = MapSpec(iterations=100, points_per_iteration=256, gamma=0.0, seed=5)
    first = map_code(decoder, x.numpy(), sdf.numpy(), mean, cov, spec)
    second = map_code(decoder, x.numpy(), sdf.numpy(), mean, cov, spec)
    assert np.array_equal(first.code, second.code) and np.array_equal(first.history, second.history)
    # A dominant Mahalanobis term (γ·‖u‖² against SDF errors of ~1e-2²) keeps z near μ.
    pulled = map_code(decoder, x.numpy(), sdf.numpy(), mean, cov, MapSpec(iterations=100, points_per_iteration=256,
                                                                          gamma=1.0, seed=5))
    assert first.mahalanobis > 1.0 and pulled.mahalanobis < 0.1 * first.mahalanobis
    assert decoder.training and all(p.requires_grad for p in decoder.parameters())
    with pytest.raises(ValueError, match="sdf_n"):
        map_code(decoder, x.numpy(), sdf.numpy()[:10], mean, cov, spec)


def test_predict_sdf_does_not_depend_on_the_chunk_size(sphere_model: AutoDecoder):
    code = sphere_model.codes.weight.detach().numpy()[1]
    points = regular_grid([-1, -1, -1], [1, 1, 1], 9)
    whole, chunked = (predict_sdf(sphere_model.decoder, code, points, batch_size=n) for n in (4096, 7))
    assert whole.shape == (729, 1) and whole.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
