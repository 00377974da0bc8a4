"""The EP-informed methods on crime-free data (issue 62): the networks reconstruct the normalised
transmembrane potential — what their Aliev–Panfilov prior describes — through the inversion's
equivalent-double-layer operator, from body potentials of the 3-D extracellular solve.

Case: a myocardial ball (radius 25 mm, isotropic G_i = 0.03, G = 0.06 S/m as in
test_inverse_extracellular) in an insulated torso ball (100 mm) meshed by gmsh; a planar front
along z at the Aliev–Panfilov model's own speed (25 mm per time unit with 5 mm length units),
V_m a 100 mV sigmoid upstroke 0.08 time units (1 ms) wide; φ by the extracellular solve, read at
120 body points with 30 dB of white noise. The inversion's heart surface is an icosphere of
radius 30 mm (162 nodes) and its body surface another (642 nodes): nothing of the truth's mesh.
Its truth is the V_m of the nearest myocardial boundary point, normalised to [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgcohort.inverse.double_layer import (calibrated_gain, double_layer_transfer, map_correlation, tikhonov_activation,
                                             upstroke_map)
from ecgcohort.inverse.dynamics import myocardial_boundary
from ecgcohort.inverse.extracellular import ExtracellularSolver, Myocardium
from ecgcohort.inverse.methods import surface_laplacian
from ecgcohort.inverse.metrics import activation_times
from ecgcohort.inverse.models import Mismatch, inversion_model
from ecgcohort.inverse.neural import (EAND_ARN_DEFAULTS, InverseNetwork, NumericalDifferentiationObjective, data_upstrokes,
                                      eand_arn, ep_dl, upstroke_width, warm_start)
from ecgcohort.inverse.problem import SurfaceMesh
from ecgcohort.inverse.surface import AlievPanfilov
from ecgcohort.inverse.tikhonov import tikhonov
from ecgcohort.inverse.training_checks import normalised_data_loss, zero_map_failure
from ecgcohort.leadfield import Conductivities
from ecgcohort.leadfield.solver import project_on_surface
from ecgcohort.meshing import read_tagged_mesh
from synthetic import concentric_balls_mesh

R_MM, CORE_MM, HEART_MM, UNIT_MM = 100.0, 25.0, 30.0, 5.0
UNIFORM = Conductivities(intra_fibre=0.03, intra_cross=0.03, extra_fibre=0.03, extra_cross=0.03, torso=0.06)
#: ms per model time unit (Aliev and Panfilov's; the benchmark's default)
TIME_UNIT_MS = 12.9


def icosphere(radius: float, subdivisions: int) -> SurfaceMesh:
    import pyvista

    sphere = pyvista.Icosphere(radius=radius, nsub=subdivisions)
    return SurfaceMesh(np.asarray(sphere.points), np.asarray(sphere.faces).reshape(-1, 4)[:, 1:])


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """A dict: heart (mm), times (model units), excitation (n, T) the truth, body (m, T) clean
    and noisy maps in mV, the double-layer operator A (mV per unit), the noise's share of the
    data's mean square, and for the old formulation φ on the heart (mV) and the FEM R."""
    folder = tmp_path_factory.mktemp("front")
    path = folder / "balls.msh"
    concentric_balls_mesh(path, 8.0, R_MM, CORE_MM)
    mesh = read_tagged_mesh(path)
    myocardium = Myocardium.of_mesh(mesh.points_mm, mesh.tetrahedra, mesh.cell_tags)
    solver = ExtracellularSolver(path, UNIFORM, myocardium, max_electrode_offset_mm=3.0)
    times = np.linspace(0.0, 4.0, 21)
    tau = (myocardium.points_mm[:, 2] + CORE_MM) / 25.0
    vm = -85.0 + 100.0 / (1.0 + np.exp(-(times[None, :] - tau[:, None]) / 0.08))
    phi = solver.potentials(vm)
    rng = np.random.default_rng(1)
    points = rng.normal(size=(120, 3))
    points *= R_MM / np.linalg.norm(points, axis=1, keepdims=True)
    clean = solver.electrode_reading(points) @ phi
    heart = icosphere(HEART_MM, 2)
    _, nodes, weights = project_on_surface(myocardium.points_mm, myocardial_boundary(myocardium.tetrahedra),
                                           heart.points)
    excitation = (np.einsum("nk,nkt->nt", weights, vm[nodes]) + 85.0) / 100.0
    noisy = clean + rng.normal(0.0, 10 ** (-30 / 20) * np.sqrt(np.mean(clean ** 2)), clean.shape)
    body = icosphere(R_MM, 3)
    model = inversion_model(heart, body, points, Mismatch("none"), np.random.default_rng(0), body_nodes=500,
                            element_size_mm=15.0, double_layer_mv=50.0)
    return {"heart": heart, "times": times, "excitation": excitation, "clean": clean, "noisy": noisy, "points": points,
            "operator": model.vm_transfer, "transfer": model.transfer,
            "noise_level": float(np.mean((noisy - clean) ** 2) / np.mean(noisy ** 2)),
            "phi_heart": solver.interpolation(heart.points) @ phi,
            "direct": double_layer_transfer(heart, body, points, 50.0)}


def _total_loss(objective: NumericalDifferentiationObjective, u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """(L_D, L_EP) of eq. 4 at a given field (n, T) on the objective's collocation grid."""
    u_t, v_t = torch.as_tensor(u, dtype=torch.float32), torch.as_tensor(v, dtype=torch.float32)
    r_u, r_v = objective.residuals(u_t, v_t)
    return float(objective.data_loss(u_t)), float(torch.mean(r_u ** 2 + r_v ** 2))


def _objective(front, transfer, bspm, ep_weight=0.1) -> NumericalDifferentiationObjective:
    network = InverseNetwork(4, 8, 1, seed=0)
    return NumericalDifferentiationObjective(network, transfer, bspm, front["heart"].scaled(1 / UNIT_MM),
                                             front["times"], AlievPanfilov(), ep_weight)


def test_the_inversion_model_carries_the_double_layer_and_it_explains_the_3d_truth(front):
    """The inversion model's operator is the double layer on its own geometry (within 5 % of the
    operator on the icosphere it was remeshed from); A·V_m matches the
    3-D solve's body maps in shape (the myocardium's boundary lies 5 mm inside the surface the
    layer is put on, so its amplitude is (25/30)² of it: the dipole of a layer grows as r²)."""
    # the model's own body surface (the icosphere remeshed to 500 nodes) against the icosphere's
    difference = np.linalg.norm(front["operator"] - front["direct"]) / np.linalg.norm(front["direct"])
    assert difference < 0.05, difference
    predicted = front["operator"] @ front["excitation"]
    correlation = np.corrcoef(predicted.ravel(), front["clean"].ravel())[0, 1]
    gain = np.sum(predicted * front["clean"]) / np.sum(predicted ** 2)
    print(f"\ncorrelation {correlation:.5f}, least-squares gain {gain:.3f}")
    assert correlation > 0.99
    assert gain == pytest.approx((CORE_MM / HEART_MM) ** 2, rel=0.1)
    # the data alone give the same factor (a Tikhonov estimate's upstrokes, a unit step at them)
    laplacian = surface_laplacian(front["heart"].scaled(1 / UNIT_MM))
    calibrated = calibrated_gain(front["operator"], front["noisy"], laplacian, front["times"])
    print(f"calibrated gain {calibrated:.3f}")
    assert calibrated == pytest.approx(gain, rel=0.15) and calibrated != 1.0
    # data the layer's step maps do not explain (the front's maps with every measurement point's
    # row shuffled) give no factor: the nominal strength is kept, not a least-squares factor of noise
    shuffled = front["noisy"][np.random.default_rng(0).permutation(len(front["noisy"]))]
    assert calibrated_gain(front["operator"], shuffled, laplacian, front["times"]) == 1.0


def test_the_loss_at_the_true_excitation_is_below_the_zero_maps(front):
    """The prior and the data agree on what is right: eq. 4 at the true normalised V_m (v = 0:
    v stays below 0.01 during the Aliev–Panfilov upstroke) is below eq. 4 at the zero map, at
    every λ of the paper's grid. In the old formulation — the networks' u the heart-surface φ
    divided by 100 mV, R the FEM transfer matrix — it is the other way round (issue 62's cause:
    measured L(truth) = 3.0e-4 against L(0) = 4.4e-5 here, unnormalised as the old loss was)."""
    excitation = front["excitation"]
    objective = _objective(front, front["operator"], front["noisy"])
    data_true, ep_true = _total_loss(objective, excitation, np.zeros_like(excitation))
    data_zero, ep_zero = _total_loss(objective, np.zeros_like(excitation), np.zeros_like(excitation))
    print(f"\nnew: L_D {data_true:.4f} / L_EP {ep_true:.4f} at the truth, {data_zero:.4f} / {ep_zero:.4f} at zero")
    assert data_zero == pytest.approx(1.0, rel=1e-5) and ep_zero == 0.0
    for ep_weight in (0.05, 0.1, 0.3, 0.7):
        assert data_true + ep_weight * ep_true < data_zero, ep_weight
    # the old formulation, unnormalised data term as it was
    old_u = front["phi_heart"] / 100.0
    y = front["noisy"] / 100.0
    old = _objective(front, front["transfer"], y)
    old_ep = _total_loss(old, old_u, np.zeros_like(old_u))[1]
    old_truth = np.mean((y - front["transfer"] @ old_u) ** 2) + 0.1 * old_ep
    old_zero = np.mean(y ** 2)
    print(f"old: L(truth) {old_truth:.3g}, L(0) {old_zero:.3g}")
    assert old_truth > old_zero


@pytest.fixture(scope="module")
def trained(front, tmp_path_factory):
    config = {"seed": 0, "workdir": str(tmp_path_factory.mktemp("eand-arn")), "time_refinement": 2,
              "noise_level": front["noise_level"], "training": {"epochs": 300}}
    return eand_arn(front["operator"], front["noisy"], front["heart"].scaled(1 / UNIT_MM), front["times"], config)


def test_eand_arn_recovers_a_planar_front_from_crime_free_data(front, trained):
    """Activation times (steepest upstroke) of the reconstruction against the truth's, over a
    front that crosses the heart in 1.9 time units (25 ms). Measured from the warm start (the data's
    upstrokes): 0.43 ms mean error, CC 0.986, 265 epochs to the data loss's plateau, data loss
    0.0018; from Glorot weights 0.6 ms, CC 0.90, RE 0.42 (the amplitude: the layer's strength is
    1/0.69 of what the data say, so û plateaued near 0.7), 225 epochs, about 15 s on one core."""
    times = front["times"]
    detected = activation_times(trained.estimate, times, "transmembrane")
    reference = activation_times(front["excitation"], times, "transmembrane")
    error_ms = float(np.mean(np.abs(detected - reference))) * TIME_UNIT_MS
    correlation = np.corrcoef(trained.estimate.ravel(), front["excitation"].ravel())[0, 1]
    print(f"\nactivation error {error_ms:.2f} ms over a {np.ptp(reference) * TIME_UNIT_MS:.0f} ms front, CC "
          f"{correlation:.3f}, {trained.info['epochs']} epochs ({trained.info['stopped']}), {trained.seconds:.1f} s, "
          f"data loss {trained.info['data_loss']:.4f} (noise level {front['noise_level']:.4f})")
    assert trained.info["failed"] is None
    assert error_ms < 2.0
    assert correlation > 0.8
    # training stopped by its rule, not by the epoch cap, with the data explained to a few %
    assert trained.info["epochs"] < 300 and trained.info["data_loss"] < 0.02


def test_the_datas_own_activation_does_not_degrade_at_low_noise_under_model_error(front):
    """The Tikhonov activation that calibrates the layer and starts EP-DL (issue 62's inverse
    axes): with the inversion's heart 10 mm off (a model error neighbouring electrodes share) GCV
    picks a smaller λ the less white noise there is, and its estimate fits the model error — on the
    default cohort's 40 dB row its step maps correlated with the data by 0.00 and 0.07. Here, four
    noise draws each: at 40 dB GCV's activation error was 2.1-8.0 ms (mean 4.6), the L-curve
    corner's mean 0.81 ms (robust GCV's 1.15); at 50 dB GCV's correlation fell to 0.37, −0.05 and
    0.33 on three draws (mean error 9.8 ms), the corner's stayed at 0.97 or above (mean error
    1.6 ms; robust GCV 3.2 ms, correlation down to 0.84). The old rule's collapse is
    recomputed here, so the case keeps testing what it was made for."""
    surface = front["heart"].scaled(1 / UNIT_MM)
    laplacian = surface_laplacian(surface)
    times = front["times"]
    moved = SurfaceMesh(front["heart"].points + np.array([10.0, 0.0, 0.0]), front["heart"].faces)
    operator = double_layer_transfer(moved, icosphere(R_MM, 3), front["points"], 50.0)
    reference = activation_times(front["excitation"], times, "transmembrane")
    shift = 1e-3 * float(np.abs(np.diag(laplacian)).mean())

    def scored(activation, data):
        step = upstroke_map(activation, times, 0.25 * float(times[1] - times[0]))
        return (float(np.mean(np.abs(activation - reference))) * TIME_UNIT_MS,
                map_correlation(operator @ step, data))

    rms = np.sqrt(np.mean(front["clean"] ** 2))
    for snr_db, bound_ms in ((40.0, 1.5), (50.0, 3.0)):
        fixed, old = [], []
        for seed in range(4):
            noise = np.random.default_rng(100 + seed).normal(0.0, 10 ** (-snr_db / 20) * rms, front["clean"].shape)
            data = front["clean"] + noise
            fixed.append(scored(tikhonov_activation(operator, data, laplacian, times), data))
            gcv = tikhonov(operator, data, laplacian + shift * np.eye(len(laplacian)), choice="gcv", per_time=False,
                           grid=np.linalg.norm(operator, 2) * np.logspace(-8, 2, 60)).estimate
            old.append(scored(activation_times(gcv, times, "transmembrane"), data))
        fixed_ms, old_ms = np.mean([f[0] for f in fixed]), np.mean([o[0] for o in old])
        print(f"\n{snr_db:.0f} dB: activation error {fixed_ms:.2f} ms (GCV {old_ms:.2f}), step-map correlation "
              f"{min(f[1] for f in fixed):.2f} (GCV {min(o[1] for o in old):.2f}) at worst")
        assert fixed_ms < bound_ms and old_ms > 2 * fixed_ms, (snr_db, fixed, old)
        assert min(f[1] for f in fixed) > 0.9, (snr_db, fixed)
    # the old rule lost the data's upstrokes outright at 50 dB: below the calibration's 0.3 on a draw
    assert min(o[1] for o in old) < 0.3, old


def test_stre_does_not_degrade_at_low_noise_with_the_heart_misplaced(front):
    """STRE's spatial λ (issue 62's inverse axes, where GCV's λ_s fell 72-fold from 30 to 40 dB
    with the heart 10 mm off and test-0001's RE rose 0.524 → 2.036): on the front's φ with the
    inversion's heart 10 mm off, one noise draw each, robust GCV (the default) scored RE 0.468 at
    30 dB and 0.501 at 50 dB; GCV 0.504 and 1.225 (λ_s 1.1e-2 → 2.2e-4), recomputed here."""
    from ecgcohort.inverse.methods import reconstruct
    from ecgcohort.inverse.metrics import relative_error

    model = inversion_model(front["heart"], icosphere(R_MM, 3), front["points"], Mismatch("shift", shift_mm=10.0),
                            np.random.default_rng(0), body_nodes=500, element_size_mm=15.0, double_layer_mv=50.0)
    surface = model.heart.scaled(1 / UNIT_MM)
    rms = np.sqrt(np.mean(front["clean"] ** 2))
    errors = {}
    for snr_db in (30.0, 50.0):
        data = front["clean"] + np.random.default_rng(100).normal(0.0, 10 ** (-snr_db / 20) * rms, front["clean"].shape)
        for choice in (None, "gcv"):
            config = {} if choice is None else {"lambda_choice": choice}
            estimate = reconstruct("stre", model.transfer, data / 100.0, surface, front["times"], config).estimate
            errors[choice or "default", snr_db] = relative_error(estimate * 100.0, front["phi_heart"])
    print("\n" + ", ".join(f"{choice} {snr:.0f} dB RE {error:.3f}" for (choice, snr), error in errors.items()))
    assert errors["default", 50.0] < min(0.6, 1.15 * errors["default", 30.0]), errors
    assert errors["gcv", 50.0] > 2 * errors["gcv", 30.0], errors


def test_the_warm_start_begins_at_rest_with_the_datas_upstrokes(front):
    """The data's own excitation (issue 62): the upstrokes of a second-order Tikhonov estimate,
    each as steep as the Aliev–Panfilov model's, are within 1.5 ms of the front's (measured 0.65
    ms) and at rest before it (the mean over the heart at the first instant within 0.15 of the
    truth's: measured 0.065). NN6 fitted to them (200 full-batch steps) reproduces them to a mean
    square below 0.005 with v̂ near 0, explains most of the data before any EP-informed step
    (normalised data loss below 0.3, Glorot's 1.04: measured 0.11 after 100 steps) and has a
    smaller EP loss than Glorot's weights (0.025 against 0.066 after 100 steps). Recomputed
    here: the model's steepest slope k·max u(u − a)(1 − u) against 1/(4w)."""
    model = AlievPanfilov()
    u = np.linspace(0.0, 1.0, 100001)
    assert 1.0 / (4.0 * upstroke_width(model)) == pytest.approx(model.k * np.max(u * (u - model.a) * (1.0 - u)), rel=1e-6)
    surface, times = front["heart"].scaled(1 / UNIT_MM), front["times"]
    target = data_upstrokes(front["operator"], front["noisy"], surface, times, times, model)
    reference = activation_times(front["excitation"], times, "transmembrane")
    error_ms = float(np.mean(np.abs(activation_times(target, times, "transmembrane") - reference))) * TIME_UNIT_MS
    at_rest = float(np.mean(np.abs(target[:, 0] - front["excitation"][:, 0])))
    assert target.min() >= 0.0 and target.max() <= 1.0
    assert error_ms < 1.5 and at_rest < 0.15, (error_ms, at_rest)
    lower = np.append(surface.points.min(axis=0), times[0])
    upper = np.append(surface.points.max(axis=0), times[-1])
    losses = {}
    for steps in (0, 200):
        network = InverseNetwork(EAND_ARN_DEFAULTS["layers"], EAND_ARN_DEFAULTS["neurons"],
                                 EAND_ARN_DEFAULTS["residual_blocks"], lower, upper, seed=0)
        objective = NumericalDifferentiationObjective(network, front["operator"], front["noisy"], surface, times, model,
                                                      0.3)
        fitted = warm_start(network, objective.grid_inputs, torch.as_tensor(target.reshape(-1), dtype=torch.float32),
                            steps, 1e-2)
        with torch.no_grad():
            u_hat, v_hat = objective.grid_prediction()
            r_u, r_v = objective.residuals(u_hat, v_hat)
            losses[steps] = (float(objective.data_loss(u_hat)), float(torch.mean(r_u ** 2 + r_v ** 2)))
        if steps:
            assert fitted < 0.005 and float(v_hat.abs().max()) < 0.05, (fitted, float(v_hat.abs().max()))
    print(f"\nupstrokes {error_ms:.2f} ms, at rest {at_rest:.3f}; (data loss, EP loss) Glorot {losses[0]}, "
          f"warm start {losses[200]}")
    assert losses[200][0] < 0.3 < losses[0][0]
    assert losses[200][1] < losses[0][1]


def test_ep_dl_recovers_a_planar_front_from_its_warm_start(front, tmp_path):
    """EP-DL (its default 10 × 10 MLP, AD residuals) on the crime-free planar front from the
    data's upstrokes: activation times within 2 ms, CC above 0.8, the heart at rest at the
    record's start — test-0000's failure was the whole heart near u = 1 there. Measured: 0.50 ms,
    CC 0.981, mean û 0.13 at the first instant against the truth's 0.03, 150 epochs (the cap)."""
    times = front["times"]
    config = {"seed": 0, "workdir": str(tmp_path / "ep-dl"), "time_refinement": 2, "noise_level": front["noise_level"],
              "training": {"epochs": 150}}
    result = ep_dl(front["operator"], front["noisy"], front["heart"].scaled(1 / UNIT_MM), times, config)
    reference = activation_times(front["excitation"], times, "transmembrane")
    error_ms = float(np.mean(np.abs(activation_times(result.estimate, times, "transmembrane") - reference))) * TIME_UNIT_MS
    correlation = np.corrcoef(result.estimate.ravel(), front["excitation"].ravel())[0, 1]
    start = float(np.mean(result.estimate[:, 0]))
    print(f"\nEP-DL: activation error {error_ms:.2f} ms, CC {correlation:.3f}, mean u at the start {start:.3f} "
          f"(truth {front['excitation'][:, 0].mean():.3f}), {result.info['epochs']} epochs ({result.info['stopped']}), "
          f"{result.seconds:.1f} s")
    assert result.info["failed"] is None and result.info["warm_start_steps"] == 200
    assert error_ms < 2.0 and correlation > 0.8
    assert abs(start - front["excitation"][:, 0].mean()) < 0.15


def test_the_zero_map_detector_fires_on_an_untrained_network_and_not_on_a_trained_one(front, trained):
    operator, bspm, times = front["operator"], front["noisy"], front["times"]
    surface = front["heart"].scaled(1 / UNIT_MM)
    lower = np.append(surface.points.min(axis=0), times[0])
    upper = np.append(surface.points.max(axis=0), times[-1])
    network = InverseNetwork(EAND_ARN_DEFAULTS["layers"], EAND_ARN_DEFAULTS["neurons"],
                             EAND_ARN_DEFAULTS["residual_blocks"], lower, upper, seed=0)
    inputs = np.concatenate([np.repeat(surface.points, len(times), axis=0), np.tile(times, len(surface.points))[:, None]],
                            axis=1)
    with torch.no_grad():
        untrained = network(torch.as_tensor(inputs, dtype=torch.float32))[:, 0].reshape(len(surface.points), -1)
    untrained = untrained.double().numpy()
    loss = normalised_data_loss(operator, bspm, untrained)
    reason = zero_map_failure(untrained, operator, bspm, loss)
    print(f"\nuntrained: data loss {loss:.3f} -> {reason}")
    assert reason is not None
    # the trained repeat passes, and the same estimate shrunk towards zero does not
    assert zero_map_failure(trained.estimate, operator, bspm, trained.info["data_loss"]) is None
    shrunk = 0.01 * trained.estimate
    assert "zero map" in zero_map_failure(shrunk, operator, bspm, normalised_data_loss(operator, bspm, shrunk))


def test_the_benchmark_job_scores_the_networks_on_v_m_and_the_regularisers_on_potentials(front, tmp_path):
    """``reconstruct_job`` end to end on the front's files (a cohort-scenario truth in mV, its body
    maps from the 3-D solve, the inversion model with its double layer): the network's row is an
    excitation scored over its window, the regulariser's a potential, both with status ok; a network
    left at its Glorot weights (no warm start, one epoch) is failed by the zero-map detector, named,
    and left unscored. Measured:
    EAND-ARN (NN6) CC 0.98, activation 0.6 ms; STRE on φ CC 0.96, 0.8 ms; a 4-layer, 16-neuron
    EAND-ARN only CC 0.43 and 6.7 ms (the workflow test therefore keeps the default networks)."""
    import pandas as pd

    from ecgcohort.inverse.dynamics import HeartDynamics
    from ecgcohort.inverse.jobs import reconstruct_job, save_dynamics, save_model
    from ecgcohort.inverse.surfaces import InverseSurfaces

    heart, times = front["heart"], front["times"]
    surfaces = InverseSurfaces(heart, np.zeros((0, 3)), np.array([], dtype=str), np.zeros((0, 3), int), "remesh", 0)
    surfaces.save(tmp_path / "surfaces.npz")
    truth = HeartDynamics("pacing-00", times, front["phi_heart"], np.zeros(len(heart.points)), units="mV",
                          polarity="extracellular",
                          electrogram_activation=activation_times(front["phi_heart"], times, "extracellular"),
                          excitation=front["excitation"])
    save_dynamics(tmp_path / "dynamics.npz", truth, front["clean"])
    model = inversion_model(heart, icosphere(R_MM, 3), np.asarray(front["points"]), Mismatch("none"),
                            np.random.default_rng(0), body_nodes=500, element_size_mm=15.0)
    save_model(tmp_path / "none.npz", model)
    common = dict(patient="test-0000", source="pacing-00", seed=0, surfaces_npz=tmp_path / "surfaces.npz",
                  dynamics_npz=tmp_path / "dynamics.npz", model_npzs={"none": tmp_path / "none.npz"},
                  settings=[{"mismatch": "none", "noise": "snr30"}], noise_models={"snr30": {"snr_db": 30.0}},
                  dynamics={"length_unit_mm": UNIT_MM, "time_unit_ms": TIME_UNIT_MS, "duration": 4.0,
                            "samples": len(times)})
    rows = {}
    for method, config, repeats in (
            ("stre", {"half_width": 5}, 1),
            ("eand_arn", {"time_refinement": 2, "window": 3.0, "training": {"epochs": 300}}, 1),
            # Glorot weights left as they are (no warm start): the untrained network the detector fails
            ("ep_dl", {"layers": 4, "neurons": 8, "warm_start": {"steps": 0},
                       "training": {"epochs": 1, "learning_rate": 1e-9}}, 1)):
        reconstruct_job(method=method, repeats=repeats, method_config=config, workdir=tmp_path / method,
                        out_csv=tmp_path / f"{method}.csv", out_npz=tmp_path / f"{method}.npz", **common)
        rows[method] = pd.read_csv(tmp_path / f"{method}.csv").iloc[0]
    print("\n" + pd.DataFrame(rows).T[["quantity", "status", "re", "cc", "activation_mae_ms"]].to_string())
    assert rows["stre"].quantity == "potential" and rows["stre"].status == "ok"
    network = rows["eand_arn"]
    assert network.quantity == "excitation" and network.status == "ok"
    assert network.cc > 0.8 and network.activation_mae_ms < 3.0
    failed = rows["ep_dl"]
    assert failed.status.startswith("failed: ") and np.isnan(failed.re) and np.isnan(failed.activation_mae_ms)
