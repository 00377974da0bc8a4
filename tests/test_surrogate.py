"""The lead-field surrogate (paper 1, sec. 2.3, 2.6): error measures, the network's shape and
injection point, the target normalisation in units of the pseudo lead field, the loss (eq. 5),
refusal of bad input, and training on an analytic family — the closed-form lead field of a
homogeneous ball at several radii, the radius as the code."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ecgcohort.ecg.pseudo import pseudo_lead_field_gradient
from ecgcohort.encoding.deepsdf import NormalisationBox
from ecgcohort.learning import TensorTable, TrainingSpec, fit
from ecgcohort.learning.device import cpu_has_native_bf16
from ecgcohort.surrogate import (LeadFieldNetwork, SurrogateModel, SurrogateSpec, angular_error_deg,
                                 denormalise_target, normalise_target, predict_gradient, pseudo_direction,
                                 reference_magnitude, relative_l2, relative_magnitude_error, training_rows)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks: a second intra-op thread only adds synchronisation on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation of rows v about unit rows ``axis`` by ``angle`` (rad)."""
    cross = np.cross(axis, v)
    dot = np.sum(axis * v, axis=-1, keepdims=True)
    return v * math.cos(angle) + cross * math.sin(angle) + axis * dot * (1 - math.cos(angle))


# ---- metrics ----------------------------------------------------------------------------------

def test_angular_error_of_a_field_against_itself_is_zero():
    rng = np.random.default_rng(0)
    field = rng.normal(size=(50, 40, 3)) * 10.0 ** rng.uniform(-6, 6, (50, 40, 1))  # any length
    assert np.all(angular_error_deg(field, field) <= 1e-12)
    assert np.allclose(angular_error_deg(field, -field), 180.0)
    # a zero vector has no direction: the paper's ε makes its cosine 0
    assert angular_error_deg(np.zeros(3), np.array([1.0, 2.0, 3.0])) == 90.0


@pytest.mark.parametrize("degrees", [0.01, 0.5, 5.0, 45.0, 90.0, 135.0, 179.5])
def test_angular_error_of_a_rotated_copy_is_the_rotation_angle(degrees: float):
    rng = np.random.default_rng(2)
    v = rng.normal(size=(1000, 3)) * rng.uniform(0.1, 100.0, (1000, 1))
    axis = _unit(np.cross(v, rng.normal(size=(1000, 3))))  # perpendicular to each vector
    rotated = _rotate(v, axis, math.radians(degrees)) * rng.uniform(0.5, 2.0, (1000, 1))  # any length
    assert np.allclose(angular_error_deg(rotated, v), degrees, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scale", [0.0, 0.5, 0.98, 1.0, 1.3, -1.0])
def test_relative_l2_of_a_scaled_signal_is_the_scale_minus_one(scale: float):
    reference = np.random.default_rng(3).normal(size=(12, 600))  # leads × time
    assert np.allclose(relative_l2(scale * reference, reference), abs(scale - 1.0), rtol=1e-12, atol=1e-15)
    assert np.allclose(relative_l2((scale * reference).T, reference.T, axis=0), abs(scale - 1.0),
                       rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("scale", [0.2, 1.0, 1.7, -2.0])
def test_relative_magnitude_error_of_a_scaled_field(scale: float):
    field = np.random.default_rng(4).normal(size=(30, 3))
    rotated = _rotate(field, _unit(np.cross(field, [0.0, 0.0, 1.0])), 0.7)  # a rotation leaves |v|
    assert np.allclose(relative_magnitude_error(scale * rotated, field), abs(abs(scale) - 1.0), atol=1e-12)


# ---- spec and network -------------------------------------------------------------------------

def test_spec_round_trips_and_refuses_unknown_keys_and_targets():
    spec = SurrogateSpec(code_dim=16, fourier_scale=2.0, target="full", seed=3)
    assert SurrogateSpec.from_config(spec.to_config()) == spec
    with pytest.raises(ValueError, match="unknown SurrogateSpec key"):
        SurrogateSpec.from_config({"code_dim": 16, "lambda_cosine": 1.0})
    with pytest.raises(ValueError, match="target 'residual'"):
        SurrogateSpec(code_dim=16, target="residual")
    with pytest.raises(ValueError, match="inject_at"):
        SurrogateSpec(code_dim=16, layers=5, inject_at=6)


def _paper_parameter_count(code_dim: int, fourier_features: int, hidden: int = 256, layers: int = 5) -> int:
    """Weights + biases of sec. 2.3's network, counted by hand: first layer (3 + 2F) → h, layers
    2..5 h → h with 3 + d extra inputs on the one after the injection, last layer h → 3."""
    first = (3 + 2 * fourier_features + 1) * hidden
    middle = (layers - 1) * (hidden + 1) * hidden + (3 + code_dim) * hidden
    return first + middle + (hidden + 1) * 3


@pytest.mark.parametrize("code_dim", [23, 16])  # PCA (sec. 2.4) and DeepSDF (sec. 2.5) codes
@pytest.mark.parametrize("fourier_features", [32, 0])
def test_parameter_count_of_the_paper_network(code_dim: int, fourier_features: int):
    network = LeadFieldNetwork(SurrogateSpec(code_dim=code_dim, fourier_features=fourier_features))
    count = sum(p.numel() for p in network.parameters())
    print(f"paper NN_LF, code {code_dim}, {fourier_features} Fourier features: {count} parameters")
    assert count == _paper_parameter_count(code_dim, fourier_features)
    # the Fourier matrix is a buffer (saved, not trained)
    assert sum(b.numel() for b in network.buffers()) == 3 * fourier_features


def test_code_and_electrode_enter_after_the_injection_layer_only():
    spec = SurrogateSpec(code_dim=4, hidden=32, layers=5, inject_at=3, fourier_features=8)
    network = LeadFieldNetwork(spec)
    again = LeadFieldNetwork(spec)
    generator = torch.Generator().manual_seed(5)
    x, e, z = (torch.rand(64, n, generator=generator) for n in (3, 3, 4))
    with torch.no_grad():
        out = network(x, e, z)
        assert out.shape == (64, 3)
        assert torch.equal(out, again(x, e, z))  # the initial weights follow the seed
        assert not torch.allclose(out, LeadFieldNetwork(SurrogateSpec(**{**spec.to_config(), "seed": 1}))(x, e, z))
        assert (network(x, e, z + 0.3) - out).abs().max() > 1e-4
        assert (network(x, e + 0.3, z) - out).abs().max() > 1e-4
        # layer inject_at + 1 reads [h, ẽ, z]: without its ẽ, z columns nothing depends on them
        network.mlp.linears[spec.inject_at].weight[:, spec.hidden:] = 0
        assert torch.equal(network(x, e + 0.3, z - 0.7), network(x, e, z))
        assert network.mlp.linears[spec.inject_at].weight.shape == (spec.hidden, spec.hidden + 3 + spec.code_dim)


# ---- target normalisation and the loss ----------------------------------------------------------

SIGMA = 0.2  # S/m, the homogeneous ball's conductivity


def _ball_z(x: np.ndarray, e: np.ndarray, a: float) -> np.ndarray:
    """Z (E, P) in Ω of electrodes e (E, 3) on the surface of a ball of radius a at points x
    (P, 3), m (DESIGN.md's closed form; harmonic inside, uniform sink on the surface)."""
    r = np.linalg.norm(x[None] - e[:, None], axis=-1)
    return (2 / r + np.log(2 * a / (a - (e @ x.T) / a + r)) / a) / (4 * np.pi * SIGMA)


def _ball_gradient(x: np.ndarray, e: np.ndarray, a: float) -> np.ndarray:
    """∇Z (E, P, 3) in Ω/m, differentiated by hand: with d = x − e, R = |d| and
    u = a − x·e/a + R, ∇(2/R) = −2d/R³ and ∇ln(2a/u) = −(−e/a + d/R)/u."""
    d = x[None] - e[:, None]
    r = np.linalg.norm(d, axis=-1, keepdims=True)
    u = a - (e @ x.T)[..., None] / a + r
    return (-2 * d / r**3 - (d / r - e[:, None] / a) / (a * u)) / (4 * np.pi * SIGMA)


def _ball_samples(a: float, electrodes: int, points: int, rng: np.random.Generator, clearance: float = 0.2):
    """Electrodes uniformly on the sphere (m), their normalised coordinates in the ball's bounding
    box (x ∈ [−1, 1], y, z ∈ [0, 1]), and points uniformly in 0.97 a at least ``clearance``·a
    from every electrode. 0.2 a for training: next to a point electrode the direction of ∇Z
    turns by 180° within any distance, which no finite network resolves, and a heart lies
    several cm from the skin's electrodes."""
    direction = _unit(rng.normal(size=(electrodes, 3)))
    x = _unit(rng.normal(size=(40 * points, 3))) * 0.97 * a * rng.random((40 * points, 1)) ** (1 / 3)
    x = x[np.linalg.norm(x[None] - a * direction[:, None], axis=-1).min(axis=0) > clearance * a][:points]
    assert len(x) == points
    normalised = np.column_stack([direction[:, 0], (direction[:, 1] + 1) / 2, (direction[:, 2] + 1) / 2])
    return x, a * direction, normalised


def test_closed_form_ball_gradient_matches_central_differences():
    rng = np.random.default_rng(6)
    for a in (0.08, 0.14):
        x, e, _ = _ball_samples(a, 3, 200, rng)
        h = 1e-6 * a
        numeric = np.stack([(_ball_z(x + h * step, e, a) - _ball_z(x - h * step, e, a)) / (2 * h)
                            for step in np.eye(3)], axis=-1)
        assert np.allclose(_ball_gradient(x, e, a), numeric, rtol=1e-6, atol=0)


def test_normalisation_round_trips_and_a_zero_residual_is_the_pseudo_lead_field():
    rng = np.random.default_rng(7)
    points, electrodes = rng.normal(size=(300, 3)) * 0.1, rng.normal(size=(5, 3)) * 0.2
    grad_z = rng.normal(size=(5, 300, 3)) * 10.0 ** rng.uniform(-1, 4, (5, 300, 1))
    pseudo = pseudo_lead_field_gradient(electrodes, points, 0.06)
    for target, factor in (("full", 2.0), ("pseudo_residual", 1.0), ("pseudo_residual", 2.0)):
        spec = SurrogateSpec(code_dim=1, target=target, pseudo_factor=factor, sigma0=0.06)
        back = denormalise_target(spec, normalise_target(spec, grad_z, points, electrodes), points, electrodes)
        # the residual form subtracts and adds κ∇Z*: round-off of order ε·|∇Z*|
        scale = np.linalg.norm(grad_z, axis=-1) + np.linalg.norm(pseudo, axis=-1)
        assert np.all(np.linalg.norm(back - grad_z, axis=-1) <= 1e-14 * scale)
        if spec.residual:
            zero = denormalise_target(spec, np.zeros_like(grad_z), points, electrodes)
            assert np.array_equal(zero, factor * pseudo)  # κ = 1: exactly the pseudo lead field
        else:
            unit = denormalise_target(spec, pseudo_direction(points, electrodes), points, electrodes)
            assert np.allclose(unit, pseudo, rtol=1e-12, atol=0)
    distance = np.linalg.norm(electrodes[:, None] - points[None], axis=-1)
    assert np.allclose(reference_magnitude(points, electrodes, 0.06), 1 / (4 * np.pi * 0.06 * distance**2),
                       rtol=1e-12)


def test_normalised_ball_targets_are_of_order_one_and_the_residual_vanishes_at_the_electrode():
    a, rng = 0.1, np.random.default_rng(8)
    x, e, _ = _ball_samples(a, 8, 2000, rng, clearance=0.002)
    # and 300 points within 1e-4 a .. 0.05 a of electrode 0, inward (v·ê < −0.3 keeps them inside)
    v = _unit(rng.normal(size=(3000, 3)))
    v = v[v @ e[0] < -0.3 * a][:300]
    x = np.vstack([x, e[0] + a * 10 ** rng.uniform(-4, np.log10(0.05), (300, 1)) * v])
    grad_z = _ball_gradient(x, e, a)
    distance = np.linalg.norm(x[None] - e[:, None], axis=-1)
    assert np.linalg.norm(x, axis=1).max() < a and (distance < 0.05 * a).sum() >= 300
    magnitude = np.linalg.norm(grad_z, axis=-1)
    full, image, paper = (np.linalg.norm(normalise_target(SurrogateSpec(code_dim=1, target=target, pseudo_factor=k,
                                                                        sigma0=SIGMA), grad_z, x, e), axis=-1)
                          for target, k in (("full", 2.0), ("pseudo_residual", 2.0), ("pseudo_residual", 1.0)))
    assert magnitude.max() / magnitude.min() > 1e4
    # |∇Z|/|∇Z*| is 2 at the electrode (the image), 3 at the centre, 4 at the opposite pole
    assert 2.0 - 1e-9 < full.min() and full.max() < 4.0
    # κ = 2: ∇Z/|∇Z*| − 2u* = −R(d − R e/a)/(a u) with u ≥ R inside, so its norm is ≤ 2R/a → 0;
    # κ = 1 leaves u* (norm 1) at the electrode
    assert np.all(image <= 2 * distance / a + 1e-12)
    assert np.all(paper[distance < 0.05 * a] > 0.9)
    assert image.max() < paper.max()


def test_loss_is_eq5_with_the_cosine_of_the_reconstructed_field():
    rng = np.random.default_rng(9)
    batch = {name: torch.as_tensor(rng.normal(size=(40, n)), dtype=torch.float32)
             for name, n in (("x", 3), ("electrode", 3), ("code", 2), ("target", 3))}
    batch["reference"] = torch.as_tensor(_unit(rng.normal(size=(40, 3))), dtype=torch.float32)
    for target, weighting in (("full", "uniform"), ("pseudo_residual", "uniform"), ("pseudo_residual", "relative")):
        model = SurrogateModel(SurrogateSpec(code_dim=2, hidden=16, layers=2, inject_at=1, fourier_features=4,
                                             lambda_cos=0.7, target=target, weighting=weighting))
        with torch.no_grad():
            p = model(batch["x"], batch["electrode"], batch["code"]).numpy().astype(np.float64)
            loss, parts = model.training_loss(batch)
        t = batch["target"].numpy().astype(np.float64)
        squared = np.sum((p - t) ** 2, axis=-1)
        if target == "pseudo_residual":
            p, t = p + batch["reference"].numpy(), t + batch["reference"].numpy()
        # relative: the squared error of ∇Z over |∇Z|², both in units of |∇Z*|
        weights = 1 / (np.sum(t ** 2, axis=-1) + 0.01) if weighting == "relative" else 1.0
        mse = np.mean(weights * squared)
        cos = np.mean(1 - np.sum(p * t, axis=-1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1)))
        assert float(parts["mse"]) == pytest.approx(mse, rel=1e-5)
        assert float(parts["cos"]) == pytest.approx(cos, rel=1e-4)
        assert float(loss) == pytest.approx(mse + 0.7 * cos, rel=1e-5)
        # a perfect prediction costs nothing
        with torch.no_grad():
            exact = {**batch, "target": model(batch["x"], batch["electrode"], batch["code"])}
            assert float(model.training_loss(exact)[0]) < 1e-5


# ---- rows, prediction and bad input -------------------------------------------------------------

BOX = NormalisationBox((0.0, 0.0, 0.0), 150.0)  # mm: the largest ball (0.14 m) within 0.93


def test_prediction_matches_the_training_rows_and_not_the_batch_size():
    x, e, normalised = _ball_samples(0.1, 4, 50, np.random.default_rng(10))
    grad_z = _ball_gradient(x, e, 0.1)
    for target in ("full", "pseudo_residual"):
        spec = SurrogateSpec(code_dim=1, hidden=16, layers=2, inject_at=1, fourier_features=4, target=target,
                             sigma0=SIGMA)
        network = LeadFieldNetwork(spec)
        rows = training_rows(spec, BOX, x, e, normalised, np.array([0.3]), grad_z)
        assert {name: tuple(t.shape) for name, t in rows.items()} == {
            "x": (200, 3), "electrode": (200, 3), "code": (200, 1), "target": (200, 3),
            **({"reference": (200, 3)} if target == "pseudo_residual" else {})}
        with torch.no_grad():
            output = network(rows["x"], rows["electrode"], rows["code"]).numpy().reshape(4, 50, 3)
        expected = denormalise_target(spec, output, x, e)
        whole = predict_gradient(network, x, e, normalised, np.array([0.3]), BOX)
        # the per-electrode evaluation (shared layers computed once per point) equals forward()
        np.testing.assert_allclose(whole, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
        np.testing.assert_allclose(predict_gradient(network, x, e, normalised, np.array([[0.3]]), BOX, batch_size=7),
                                   whole, rtol=1e-6, atol=1e-7 * np.abs(whole).max())


@pytest.mark.parametrize("coordinates, message", [
    ([1.05, 0.5, 0.5], "outside x in"),
    ([0.0, -0.1, 0.5], "outside x in"),
    ([0.0, 0.5, 1.2], "outside x in"),
    ([120.0, 80.0, 300.0], "not mm"),
])
def test_electrodes_outside_the_normalised_range_are_refused(coordinates, message):
    x, e, normalised = _ball_samples(0.1, 3, 20, np.random.default_rng(11))
    network = LeadFieldNetwork(SurrogateSpec(code_dim=1, hidden=8, layers=2, inject_at=1, fourier_features=0))
    normalised[1] = coordinates
    with pytest.raises(ValueError, match=f"electrode 1 .*{message}"):
        predict_gradient(network, x, e, normalised, np.zeros(1), BOX)
    with pytest.raises(ValueError, match="electrode 1"):
        training_rows(network.spec, BOX, x, e, normalised, np.zeros(1), _ball_gradient(x, e, 0.1))
    normalised[1] = [1.01, 1.01, -0.01]  # within the tolerance
    assert predict_gradient(network, x, e, normalised, np.zeros(1), BOX).shape == (3, 20, 3)


def test_codes_of_another_dimension_and_mismatched_electrodes_are_refused():
    x, e, normalised = _ball_samples(0.1, 3, 20, np.random.default_rng(12))
    network = LeadFieldNetwork(SurrogateSpec(code_dim=16, hidden=8, layers=2, inject_at=1, fourier_features=0))
    with pytest.raises(ValueError, match="codes of 16 entries"):
        predict_gradient(network, x, e, normalised, np.zeros(23), BOX)
    with pytest.raises(ValueError, match="codes of 16 entries"):
        predict_gradient(network, x, e, normalised, np.zeros((2, 16)), BOX)
    with pytest.raises(ValueError, match="3 normalised electrode coordinates"):
        predict_gradient(network, x, e[:2], normalised, np.zeros(16), BOX)
    with pytest.raises(ValueError, match="coincides with an electrode"):
        predict_gradient(network, np.vstack([x, e[1]]), e, normalised, np.zeros(16), BOX)


# ---- the analytic family: the homogeneous ball, radius as the code ------------------------------

TRAIN_RADII = (0.08, 0.10, 0.12, 0.14)  # m
HELD_OUT_RADII = (0.09, 0.13)
#: The paper's mean angular error over the whole torso is below 5°; a smooth one-parameter family
#: must be learned at least that well by a small network. Measured on the held-out radii after the
#: budget below (CPU, 1 thread, seed 0): full 3.82°, residual κ=1 1.94°, residual κ=2 1.73°
#: (1.62° with the relative weighting).
TARGET_DEG = 5.0
#: Same rows, budget and seeds for all: 16 epochs × 64 steps of 256 rows, Adam 3e-3 halved at
#: half. Steps to TARGET_DEG on the held-out radii, measured: full 384 (epoch 6), residual κ=1
#: 128 (epoch 2), residual κ=2 64 (epoch 1); errors after the first epoch 28.5°, 11.7°, 3.5°.
BALL_TRAINING = TrainingSpec(epochs=16, batch_size=256, learning_rate=3e-3, lr_milestones=(0.5,), device="cpu",
                             seed=0, checkpoint_every=16)


#: (name, target, pseudo_factor): the paper's form, the residual to the paper's pseudo lead field,
#: and the residual to its image-doubled form (the default)
#: and the default with the relative weighting of the workflow's config
VARIANTS = (("full", "full", 2.0, "uniform"), ("residual κ=1", "pseudo_residual", 1.0, "uniform"),
            ("residual κ=2", "pseudo_residual", 2.0, "uniform"), ("residual κ=2, relative", "pseudo_residual", 2.0, "relative"))


def _code(a: float) -> np.ndarray:
    return np.array([(a - 0.11) / 0.03])  # the radius, normalised to [−1, 1] over the training radii


class HeldOutAngle(SurrogateModel):
    """Validation loss = mean angular error (degrees) of ∇Z, taken on ∇Z/|∇Z*| (same direction)."""

    def validation_loss(self, batch):
        predicted, target = self(batch["x"], batch["electrode"], batch["code"]), batch["target"]
        if self.spec.residual:
            predicted, target = predicted + batch["reference"], target + batch["reference"]
        angle = torch.atan2(torch.linalg.cross(predicted, target).norm(dim=-1), (predicted * target).sum(dim=-1))
        return torch.rad2deg(angle).mean(), {}


@pytest.fixture(scope="module")
def ball_runs(tmp_path_factory) -> dict[str, dict]:
    """The VARIANTS trained through the backbone on the same rows, with the held-out radii as
    validation rows: final held-out error (from predict_gradient) and per-epoch errors.

    A tiny network: 3 layers of 64, the code and electrode injected after the second (after the
    last, the output would be affine in them: 22° instead of 4.5° for the full form, measured),
    8 Fourier features of scale 0.5 per normalised unit (the ball is ≤ 0.93 units across its
    radius and its field is smooth on that scale)."""
    rng = np.random.default_rng(13)
    train = {a: _ball_samples(a, 16, 256, rng) for a in TRAIN_RADII}
    held = {a: _ball_samples(a, 8, 512, rng) for a in HELD_OUT_RADII}
    runs = {}
    for name, target, factor, weighting in VARIANTS:
        spec = SurrogateSpec(code_dim=1, hidden=64, layers=3, inject_at=2, fourier_features=8, fourier_scale=0.5,
                             target=target, pseudo_factor=factor, weighting=weighting, sigma0=SIGMA, seed=0)

        def table(samples: dict) -> TensorTable:
            rows = [training_rows(spec, BOX, x, e, n, _code(a), _ball_gradient(x, e, a))
                    for a, (x, e, n) in samples.items()]
            return TensorTable({column: torch.cat([r[column] for r in rows]) for column in rows[0]})

        model = HeldOutAngle(spec)
        result = fit(model, table(train), BALL_TRAINING, tmp_path_factory.mktemp("ball"), validation=table(held))
        predicted = {a: predict_gradient(model.network, x, e, n, _code(a), BOX) for a, (x, e, n) in held.items()}
        errors = [angular_error_deg(predicted[a], _ball_gradient(x, e, a)) for a, (x, e, n) in held.items()]
        runs[name] = {"final": float(np.mean(errors)), "history": [row["validation_loss"] for row in result.history],
                      "steps_per_epoch": math.ceil(16 * 256 * len(TRAIN_RADII) / BALL_TRAINING.batch_size),
                      "held_out": held, "predicted": predicted}
        print(f"{name}: held-out mean angular error {runs[name]['final']:.2f}°, per epoch "
              + " ".join(f"{v:.1f}" for v in runs[name]["history"]))
    return runs


def test_surrogate_learns_the_ball_family_on_held_out_radii(ball_runs):
    for name, run in ball_runs.items():
        assert run["final"] < TARGET_DEG, name
        # the validation hook measures what predict_gradient + angular_error_deg measure
        assert run["history"][-1] == pytest.approx(run["final"], rel=1e-3)
    assert ball_runs["residual κ=2"]["final"] < ball_runs["full"]["final"]


def _wavefront_ecgs(gradient: np.ndarray, x: np.ndarray, a: float) -> np.ndarray:
    """(E, T) lead-field ECGs Σ_x ∇Z_e(x)·J(x, t) of a dipole layer crossing the ball: a
    Gaussian blob of width a/4 pointing along its path, its centre going from −0.8 a to 0.8 a
    along x over 40 instants (the source of a depolarisation wavefront sweeping the heart)."""
    direction = _unit(np.array([1.0, 0.4, -0.3]))
    centres = np.linspace(-0.8, 0.8, 40)[:, None] * a * direction
    weight = np.exp(-0.5 * np.sum((x[None] - centres[:, None]) ** 2, axis=-1) / (a / 4) ** 2)  # (T, P)
    return np.einsum("epk,tp,k->et", gradient, weight, direction)


#: Paper 1's baseline: the pseudo lead field ∇Z* = (e − x)/(4πσ|e − x|³) (infinite medium) on the
#: same held-out points, measured: mean angle 5.86° (a = 0.09 m) and 5.75° (0.13 m); its ECGs are
#: about half the ball's (the insulated surface doubles the field near it).
def test_every_trained_surrogate_beats_the_pseudo_lead_field_in_angle_and_ecg(ball_runs):
    """The surrogate's reason to exist (paper 1, Table 1): on held-out members of the family it
    is closer to the closed form than the pseudo lead field, both in ∇Z's direction and in the
    ECG of a sweeping dipole layer (relative L2 per electrode, averaged)."""
    held = next(iter(ball_runs.values()))["held_out"]
    exact = {a: _ball_gradient(x, e, a) for a, (x, e, n) in held.items()}
    pseudo = {a: pseudo_lead_field_gradient(e, x, SIGMA) for a, (x, e, n) in held.items()}

    def angle(fields) -> float:
        return float(np.mean([angular_error_deg(fields[a], exact[a]).mean() for a in held]))

    def ecg_error(fields) -> float:
        return float(np.mean([relative_l2(_wavefront_ecgs(fields[a], x, a), _wavefront_ecgs(exact[a], x, a)).mean()
                              for a, (x, e, n) in held.items()]))

    baseline = {"angle": angle(pseudo), "ecg": ecg_error(pseudo)}
    print(f"pseudo lead field: {baseline['angle']:.2f}°, ECG {baseline['ecg']:.3f}")
    assert baseline["angle"] > 5.0 and baseline["ecg"] > 0.3
    for name, run in ball_runs.items():
        ours = {"angle": angle(run["predicted"]), "ecg": ecg_error(run["predicted"])}
        print(f"{name}: {ours['angle']:.2f}°, ECG {ours['ecg']:.3f}")
        assert ours["angle"] < 0.8 * baseline["angle"] and ours["ecg"] < 0.5 * baseline["ecg"], (name, ours, baseline)


def test_pseudo_residual_reaches_the_target_error_in_fewer_steps(ball_runs):
    steps = {}
    for name, run in ball_runs.items():
        reached = [epoch for epoch, error in enumerate(run["history"], start=1) if error < TARGET_DEG]
        steps[name] = reached[0] * run["steps_per_epoch"] if reached else math.inf
    print(f"steps to {TARGET_DEG}° on held-out radii: {steps}")
    assert 2 * steps["residual κ=1"] <= steps["full"]
    assert steps["residual κ=2"] <= steps["residual κ=1"]


def _small_ball_family():
    """A small surrogate spec, its training table over the training radii and held-out samples
    (radius, m -> (points, electrodes, normalised electrodes), m) at the held-out radii, seeded."""
    rng = np.random.default_rng(13)
    train = {a: _ball_samples(a, 16, 256, rng) for a in TRAIN_RADII}
    held = {a: _ball_samples(a, 8, 512, rng) for a in HELD_OUT_RADII}
    spec = SurrogateSpec(code_dim=1, hidden=64, layers=3, inject_at=2, fourier_features=8, fourier_scale=0.5,
                         sigma0=SIGMA, seed=0)
    rows = [training_rows(spec, BOX, x, e, n, _code(a), _ball_gradient(x, e, a)) for a, (x, e, n) in train.items()]
    table = TensorTable({column: torch.cat([r[column] for r in rows]) for column in rows[0]})
    return spec, table, held


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="needs a CPU with native bf16 (AVX512-BF16 or AMX)")
def test_the_ball_family_trains_in_bf16_on_a_cpu_with_native_bf16(tmp_path):
    """bf16 autocast on the CPU (``precision: bf16``) reaches the target angle on held-out radii
    within 1 degree of the fp32 run of the same spec, seed and rows."""
    spec, table, held = _small_ball_family()
    errors = {}
    for precision in ("32", "bf16"):
        model = SurrogateModel(spec)
        result = fit(model, table, dataclasses.replace(BALL_TRAINING, precision=precision), tmp_path / precision)
        assert result.precision == {"32": "32-true", "bf16": "bf16-mixed"}[precision]
        model.load_state_dict(result.state_dict)
        errors[precision] = float(np.mean([angular_error_deg(predict_gradient(model.network, x, e, n, _code(a), BOX),
                                                             _ball_gradient(x, e, a)) for a, (x, e, n) in held.items()]))
    print(f"held-out angle: {errors}")
    assert errors["bf16"] < TARGET_DEG and abs(errors["bf16"] - errors["32"]) < 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_ball_family_trains_on_cuda_in_bf16_and_predicts_as_on_the_cpu(tmp_path):
    spec, table, held = _small_ball_family()
    model = SurrogateModel(spec)
    cuda = dataclasses.replace(BALL_TRAINING, device="cuda", precision="bf16")
    result = fit(model, table, cuda, tmp_path)
    assert result.device.startswith("cuda") and result.precision == "bf16-mixed"
    model.load_state_dict(result.state_dict)
    network = model.network.to("cuda")
    errors = []
    for a, (x, e, n) in held.items():
        on_gpu = predict_gradient(network, x, e, n, _code(a), BOX)
        on_cpu = predict_gradient(network.to("cpu"), x, e, n, _code(a), BOX)
        network.to("cuda")
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-3, atol=1e-3 * np.abs(on_cpu).max())
        errors.append(angular_error_deg(on_gpu, _ball_gradient(x, e, a)))
    assert float(np.mean(errors)) < TARGET_DEG


def test_patient_blocks_give_the_loss_of_the_same_flat_rows_and_every_pair_once_per_epoch():
    from ecgcohort.surrogate.blocks import PatientBlockTable
    from ecgcohort.surrogate.network import patient_block

    rng = np.random.default_rng(21)
    spec = SurrogateSpec(code_dim=1, hidden=16, layers=3, inject_at=2, fourier_features=4, sigma0=SIGMA,
                         weighting="relative")
    samples = [(a, *_ball_samples(a, 5, 40, rng)) for a in (0.09, 0.12)]
    blocks = [patient_block(spec, BOX, x, e, n, _code(a), _ball_gradient(x, e, a)) for a, x, e, n in samples]
    table = PatientBlockTable(blocks)
    assert len(table) == 2 * 5 * 40 and table.nbytes < 2 * 5 * 40 * 4 * 12  # no point or code repeated per pair
    # filled from a generator, the blocks not held: the same columns bit for bit; a patient of
    # another size or a wrong count is refused
    streamed = PatientBlockTable.from_blocks((block for block in blocks), len(blocks))
    assert all(torch.equal(streamed.columns[name], column) for name, column in table.columns.items())
    with pytest.raises(ValueError, match="patient 1's x is"):
        PatientBlockTable.from_blocks(iter([blocks[0], {**blocks[1], "x": blocks[1]["x"][:30]}]), 2)
    with pytest.raises(ValueError, match="of 3 patients was given 2"):
        PatientBlockTable.from_blocks(iter(blocks), 3)
    keys = table.batch_keys(epoch=3, batch_size=50, seed=0)
    assert all(len(points) == 10 for _, points in keys)  # 50 rows: 10 points x 5 electrodes
    seen = sorted((patient, int(p)) for patient, points in keys for p in points)
    assert seen == [(patient, p) for patient in range(2) for p in range(40)]
    model = SurrogateModel(spec)
    patient, points = keys[0]
    rows = training_rows(spec, BOX, samples[patient][1], samples[patient][2], samples[patient][3],
                         _code(samples[patient][0]), _ball_gradient(*samples[patient][1:3], samples[patient][0]))
    pairs = (torch.arange(5)[:, None] * 40 + points[None, :]).reshape(-1)  # electrode-major, as the block
    with torch.no_grad():
        block_loss, block_parts = model.training_loss(table.gather(keys[0]))
        flat_loss, flat_parts = model.training_loss({k: v[pairs] for k, v in rows.items()})
    assert float(block_loss) == pytest.approx(float(flat_loss), rel=1e-5)
    assert float(block_parts["cos"]) == pytest.approx(float(flat_parts["cos"]), rel=1e-5)


def test_a_training_point_subset_keeps_the_same_points_for_every_electrode_and_differs_by_patient():
    from ecgcohort.surrogate.jobs import PatientLeadFields, _patient_block, training_point_subset

    rng = np.random.default_rng(5)
    x, e, n = _ball_samples(0.1, 4, 60, rng)
    grad_z = _ball_gradient(x, e, 0.1)
    fields = PatientLeadFields(sample_points=x, sample_region=np.zeros((60,), dtype=np.int8), grad_lead_field=grad_z,
                               electrode_position=e, electrode_normalised_position=n, node_position=np.zeros((0, 3)),
                               tetrahedra=np.zeros((0, 4), dtype=np.int64), grad_lead_field_cell=np.zeros((4, 0, 3)))

    class Codes:
        def code(self, patient):
            return _code(0.1)

    spec = SurrogateSpec(code_dim=1, hidden=8, layers=2, inject_at=1, fourier_features=2, sigma0=SIGMA)
    full = _patient_block(fields, "train-0003", spec, BOX, Codes())
    kept = training_point_subset("train-0003", 60, 25, seed=7)
    assert len(np.unique(kept)) == 25 and np.all(np.diff(kept) > 0) and kept.max() < 60
    np.testing.assert_array_equal(kept, training_point_subset("train-0003", 60, 25, seed=7))  # the same on a re-run
    assert not np.array_equal(kept, training_point_subset("train-0004", 60, 25, seed=7))
    assert not np.array_equal(kept, training_point_subset("train-0003", 60, 25, seed=8))
    subset = _patient_block(fields, "train-0003", spec, BOX, Codes(), training_points=25, seed=7)
    # every electrode's rows are the full block's at the kept points, in order; x and the electrodes follow
    np.testing.assert_array_equal(subset["target"], full["target"][:, kept])
    np.testing.assert_array_equal(subset["x"], full["x"][kept])
    np.testing.assert_array_equal(subset["electrode"], full["electrode"])
    # null, or a count at or above the points a patient has, keeps every point
    for count in (None, 60, 100):
        np.testing.assert_array_equal(training_point_subset("train-0003", 60, count, seed=7), np.arange(60))


def test_the_surrogates_training_patients_are_the_first_by_id_and_nest():
    from ecgcohort.surrogate.jobs import surrogate_training_patients

    ids = [f"train-{index:04d}" for index in (5, 0, 3, 1, 4, 2)]
    assert surrogate_training_patients(ids, None) == sorted(ids)
    assert surrogate_training_patients(ids, 3) == ["train-0000", "train-0001", "train-0002"]
    assert set(surrogate_training_patients(ids, 2)) < set(surrogate_training_patients(ids, 4))
    with pytest.raises(ValueError, match=r"surrogate.training_patients = 7: the cohort has only 6"):
        surrogate_training_patients(ids, 7)


#: The encoding term of the error budget (issue 21) on a closed-form ball family whose geometry
#: the electrodes do not give away: a ball of radius 0.1 m and conductivity σ (∇Z ∝ 1/σ), the code
#: log σ normalised over the training conductivities. Oracle: the exact code (what the PCA encoding
#: is for our cohorts, the generating parameters); noisy: a fixed error per ball of sd
#: NOISY_CODE_SD normalised units, as an encoding that does not carry the patient exactly would
#: give. (In the radius family above the electrodes lie on the ball's surface, so their
#: positions carry the radius and the code is redundant: a noisy code costs 0.1° there, measured.)
CONDUCTIVITIES_TRAIN = (0.10, 0.15, 0.25, 0.40)  # S/m
CONDUCTIVITIES_HELD_OUT = (0.12, 0.30)
NOISY_CODE_SD = 0.25


def _conductivity_code(sigma: float) -> np.ndarray:
    logs = np.log(CONDUCTIVITIES_TRAIN)
    return np.array([(np.log(sigma) - logs.mean()) / logs.std()])


def _held_out_error_with_codes(code_of, tmp_path) -> tuple[float, float]:
    """Held-out mean angular error (°) and relative vector error of ∇Z after the ball budget."""
    rng = np.random.default_rng(13)
    train = {sigma: _ball_samples(0.1, 16, 256, rng) for sigma in CONDUCTIVITIES_TRAIN}
    held = {sigma: _ball_samples(0.1, 8, 512, rng) for sigma in CONDUCTIVITIES_HELD_OUT}
    spec = SurrogateSpec(code_dim=1, hidden=64, layers=3, inject_at=2, fourier_features=8, fourier_scale=0.5,
                         target="pseudo_residual", pseudo_factor=2.0, sigma0=SIGMA, seed=0)
    rows = [training_rows(spec, BOX, x, e, n, code_of(sigma), _ball_gradient(x, e, 0.1) * SIGMA / sigma)
            for sigma, (x, e, n) in train.items()]
    model = SurrogateModel(spec)
    fit(model, TensorTable({column: torch.cat([r[column] for r in rows]) for column in rows[0]}), BALL_TRAINING, tmp_path)
    angles, vectors = [], []
    for sigma, (x, e, n) in held.items():
        predicted = predict_gradient(model.network, x, e, n, code_of(sigma), BOX)
        exact = _ball_gradient(x, e, 0.1) * SIGMA / sigma
        angles.append(angular_error_deg(predicted, exact).mean())
        vectors.append(np.linalg.norm(predicted - exact, axis=-1).mean() / np.linalg.norm(exact, axis=-1).mean())
    return float(np.mean(angles)), float(np.mean(vectors))


def test_the_oracle_code_beats_a_noisy_code_on_held_out_conductivities(tmp_path):
    noise = dict(zip(CONDUCTIVITIES_TRAIN + CONDUCTIVITIES_HELD_OUT,
                     np.random.default_rng(21).normal(0.0, NOISY_CODE_SD, 6)))
    oracle = _held_out_error_with_codes(_conductivity_code, tmp_path / "oracle")
    noisy = _held_out_error_with_codes(lambda sigma: _conductivity_code(sigma) + noise[sigma], tmp_path / "noisy")
    print(f"held-out angular / relative vector error: oracle code {oracle[0]:.2f}° / {oracle[1]:.3f}, "
          f"noisy code (sd {NOISY_CODE_SD}) {noisy[0]:.2f}° / {noisy[1]:.3f}")
    assert oracle[0] < TARGET_DEG
    assert noisy[1] > 1.5 * oracle[1]


# ---- the region input (issue 21's interface lever) ----------------------------------------------

#: A ball of radius a with a concentric "blood pool" of radius INTERFACE_FRACTION·a inside whose
#: conductivity is BLOOD_RATIO times the rest's. The field keeps the ball's closed form outside
#: and, inside, its tangential part with its radial part divided by BLOOD_RATIO: the jump a
#: conductivity interface imposes on ∇Z (tangential continuous, σ∂Z/∂n continuous). It is not the
#: layered ball's solution (that needs a series); it is the discontinuity the region input is for.
INTERFACE_FRACTION = 0.7  # a third of the ball's volume in the pool: enough training points inside
BLOOD_RATIO = 3.5  # 0.7 / 0.2 S/m, blood against torso


def _jumped_ball(x: np.ndarray, e: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    """(∇Z (E, P, 3) with the interface jump, region tags (P,): 3 inside the pool, 2 outside)."""
    from ecgcohort.surrogate.network import REGIONS

    gradient = _ball_gradient(x, e, a)
    radius = np.linalg.norm(x, axis=-1)
    inside = radius < INTERFACE_FRACTION * a
    normal = x / np.maximum(radius, 1e-12)[:, None]
    radial = np.sum(gradient * normal[None], axis=-1, keepdims=True) * normal[None]
    jumped = np.where(inside[None, :, None], gradient - radial + radial / BLOOD_RATIO, gradient)
    return jumped, np.where(inside, REGIONS[2], REGIONS[1])


def test_the_region_input_is_required_seen_and_shared_across_electrodes():
    from ecgcohort.surrogate.blocks import PatientBlockTable
    from ecgcohort.surrogate.network import patient_block, region_one_hot

    x, e, normalised = _ball_samples(0.1, 4, 30, np.random.default_rng(30))
    grad_z, region = _jumped_ball(x, e, 0.1)
    spec = SurrogateSpec(code_dim=1, hidden=16, layers=3, inject_at=2, fourier_features=4, sigma0=SIGMA,
                         region_inputs=True)
    network = LeadFieldNetwork(spec)
    # the first layer reads the Fourier features, then the three region columns
    assert network.mlp.linears[0].weight.shape[1] == 3 + 2 * 4 + 3
    with pytest.raises(ValueError, match="pass region"):
        predict_gradient(network, x, e, normalised, np.zeros(1), BOX)
    with pytest.raises(ValueError, match=r"region tag\(s\) \[7\]"):
        predict_gradient(network, x, e, normalised, np.zeros(1), BOX, region=np.full(len(x), 7))
    with pytest.raises(ValueError, match="29 region tags for 30 points"):
        training_rows(spec, BOX, x, e, normalised, np.zeros(1), grad_z, region=region[:-1])
    rows = training_rows(spec, BOX, x, e, normalised, np.zeros(1), grad_z, region=region)
    assert tuple(rows["region"].shape) == (4 * 30, 3)
    np.testing.assert_array_equal(rows["region"][:30].numpy(), region_one_hot(region))
    torso, pool = np.full(len(x), 2), np.full(len(x), 3)
    as_torso = predict_gradient(network, x, e, normalised, np.zeros(1), BOX, region=torso)
    assert np.abs(predict_gradient(network, x, e, normalised, np.zeros(1), BOX, region=pool) - as_torso).max() \
        > 1e-3 * np.abs(as_torso).max()
    # per electrode with shared layers, as the rows: forward_leads = forward on every pair
    with torch.no_grad():
        pairs = network(rows["x"], rows["electrode"], rows["code"], rows["region"]).reshape(4, 30, 3)
    np.testing.assert_allclose(predict_gradient(network, x, e, normalised, np.zeros(1), BOX, region=region),
                               denormalise_target(spec, pairs.numpy(), x, e), rtol=1e-5,
                               atol=1e-6 * np.abs(as_torso).max())
    # pieces of one electrode's points (fewer rows per piece than points) give the same numbers
    # as whole electrodes, in uneven pieces too, to float32 rounding (the matrix kernels
    # differ with the row count)
    whole = predict_gradient(network, x, e, normalised, np.zeros(1), BOX, region=region, batch_size=4 * 30)
    for rows_per_piece in (7, 29):
        np.testing.assert_allclose(predict_gradient(network, x, e, normalised, np.zeros(1), BOX, region=region,
                                                    batch_size=rows_per_piece), whole, rtol=1e-6,
                                   atol=1e-6 * np.abs(whole).max())
    # a patient block carries the region per point and its batches the loss of the same rows
    table = PatientBlockTable([patient_block(spec, BOX, x, e, normalised, np.zeros(1), grad_z, region=region)])
    key = (0, torch.arange(30))
    model = SurrogateModel(spec)
    with torch.no_grad():
        assert float(model.training_loss(table.gather(key))[0]) == pytest.approx(
            float(model.training_loss(rows)[0]), rel=1e-5)
    # a network without the input ignores the tags
    plain = LeadFieldNetwork(dataclasses.replace(spec, region_inputs=False))
    np.testing.assert_array_equal(predict_gradient(plain, x, e, normalised, np.zeros(1), BOX, region=pool),
                                  predict_gradient(plain, x, e, normalised, np.zeros(1), BOX))


def test_the_inference_pieces_are_forward_leads_in_every_piece_size():
    """lead_pieces (one trunk per piece of points, the pairs through reused buffers) against the
    differentiable forward_leads: every electrode and point once, the same outputs to float32
    rounding (1e-6), with the points in one piece and several electrodes, in uneven pieces and
    one point per piece; and trunk_into and tail_into are trunk and tail."""
    from ecgcohort.learning.layers import SkipMLP
    from ecgcohort.surrogate.network import region_one_hot

    x, e, normalised = _ball_samples(0.1, 5, 37, np.random.default_rng(32))
    _, region = _jumped_ball(x, e, 0.1)
    network = LeadFieldNetwork(SurrogateSpec(code_dim=2, hidden=16, layers=4, inject_at=2, fourier_features=4,
                                             sigma0=SIGMA, region_inputs=True, seed=3))
    tensor = lambda values: torch.as_tensor(np.asarray(values, dtype=np.float32))
    points, electrodes, code = tensor(BOX.normalise(x * 1e3)), tensor(normalised), tensor([0.3, -0.2])
    one_hot = tensor(region_one_hot(region))
    with torch.no_grad():
        expected = network.forward_leads(points, electrodes, code, region=one_hot)
        scale = float(expected.abs().max())
        for rows_per_chunk in (5 * 37, 2 * 37 + 1, 37, 10, 1):
            seen = torch.zeros(expected.shape[:2], dtype=torch.int64)
            for leads, rows, output in network.lead_pieces(points, electrodes, code, rows_per_chunk, region=one_hot):
                assert output.shape[0] * output.shape[1] <= max(rows_per_chunk, 1)
                np.testing.assert_allclose(output.numpy(), expected[leads, rows].numpy(), rtol=0,
                                           atol=1e-6 * scale, err_msg=str(rows_per_chunk))
                seen[leads, rows] += 1
            assert torch.all(seen == 1), rows_per_chunk
        features = network.point_features(points, one_hot)
        trunk = network.mlp.trunk_into(features, torch.empty(37, 16), torch.empty(37, 16))
        assert torch.equal(trunk, network.mlp.trunk(features))
        hidden = torch.relu(torch.randn(7, 16, generator=torch.Generator().manual_seed(0)))
        tail = network.mlp.tail(hidden.clone())
        assert torch.equal(network.mlp.tail_into(hidden.clone(), torch.empty(7, 16), torch.empty(7, 3)), tail)
    lipschitz = SkipMLP(4, 8, 3, 3, skip_at=1, skip_dim=2, lipschitz=True)
    with pytest.raises(ValueError, match="plain linear layers"):
        lipschitz.tail_into(torch.zeros(2, 8), torch.zeros(2, 8), torch.zeros(2, 3))


def test_the_region_input_resolves_a_conductivity_jump_the_coordinates_smear(tmp_path):
    """Same rows, budget and seed with and without the region input on the jumped ball family:
    held-out angular error within 15 % of the radius of the interface, on both sides."""
    rng = np.random.default_rng(31)
    train = {a: _ball_samples(a, 16, 256, rng) for a in TRAIN_RADII}
    held = {a: _ball_samples(a, 8, 512, rng) for a in HELD_OUT_RADII}
    errors = {}
    for region_inputs in (False, True):
        spec = SurrogateSpec(code_dim=1, hidden=64, layers=3, inject_at=2, fourier_features=8, fourier_scale=0.5,
                             target="pseudo_residual", sigma0=SIGMA, seed=0, region_inputs=region_inputs)
        rows = []
        for a, (x, e, n) in train.items():
            grad_z, region = _jumped_ball(x, e, a)
            rows.append(training_rows(spec, BOX, x, e, n, _code(a), grad_z, region=region))
        model = SurrogateModel(spec)
        fit(model, TensorTable({column: torch.cat([r[column] for r in rows]) for column in rows[0]}), BALL_TRAINING,
            tmp_path / str(region_inputs))
        near = []
        for a, (x, e, n) in held.items():
            grad_z, region = _jumped_ball(x, e, a)
            close = np.abs(np.linalg.norm(x, axis=-1) - INTERFACE_FRACTION * a) < 0.15 * INTERFACE_FRACTION * a
            predicted = predict_gradient(model.network, x, e, n, _code(a), BOX, region=region)
            near.append(angular_error_deg(predicted[:, close], grad_z[:, close]).ravel())
        errors[region_inputs] = float(np.mean(np.concatenate(near)))
    print(f"held-out angular error next to the interface: coordinates only {errors[False]:.2f}°, "
          f"with the region input {errors[True]:.2f}°")
    assert errors[True] < 0.7 * errors[False]
