"""ECG stage: 12-lead weights, pseudo lead field (eq. 11) against closed forms, forward ECGs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from ecgcohort.conduction.action_potential import ActionPotential
from ecgcohort.conduction.maps import ActivationMap, save_activation
from ecgcohort.ecg import forward
from ecgcohort.ecg.forward import compute_ecgs, electrode_potentials, time_grid_ms
from ecgcohort.ecg.inputs import read_lead_field_chunks
from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_NAMES, LEAD_WEIGHTS, standard_leads
from ecgcohort.ecg.pseudo import pseudo_lead_field, pseudo_lead_field_gradient, pseudo_lead_matrix
from ecgcohort.fibers.rule_based import FibreAngles, MyocardialFibres, save_fibres
from ecgcohort.leadfield.matrix import lead_matrix, p1_gradients
from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors

SIGMA0 = 0.06  # S/m


def box_mesh(n: int, size_m: float, origin_m=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """A cube of n³ sub-cubes, 6 tetrahedra each (Kuhn): (points (N, 3) m, tetrahedra (C, 4))."""
    axis = np.linspace(0.0, size_m, n + 1)
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3) + np.asarray(origin_m)
    index = np.arange((n + 1) ** 3).reshape(n + 1, n + 1, n + 1)
    paths = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    tets = []
    for i in range(n):
        for j in range(n):
            for k in range(n):
                for path in paths:
                    corner = [i, j, k]
                    nodes = [index[tuple(corner)]]
                    for step in path:
                        corner[step] += 1
                        nodes.append(index[tuple(corner)])
                    tets.append(nodes)
    return points, np.array(tets)


def square_wave_template() -> ActionPotential:
    """0 → +20 mV plateau for 300 ms after activation, −85 mV rest (1 ms samples)."""
    t = np.arange(-20.0, 1000.0)
    v = np.where((t >= 0) & (t < 300), 20.0, -85.0)
    return ActionPotential(t, v, -85.0, 20.0, 300.0, 100.0)


# ------------------------------------------------------------------ leads
def test_lead_weights_einthoven_goldberger_and_wilson():
    w = LEAD_WEIGHTS
    assert w.shape == (12, 9)
    i, ii, iii, avr, avl, avf = (w[LEAD_NAMES.index(n)] for n in ("I", "II", "III", "aVR", "aVL", "aVF"))
    assert np.array_equal(i + iii, ii)                      # Einthoven, exact in the weights
    assert np.array_equal(avr + avl + avf, np.zeros(9))     # Goldberger, exact
    assert np.all(np.abs(w.sum(axis=1)) < 1e-15)            # every lead is zero-sum
    for k in range(1, 7):                                   # V_k against Wilson's terminal
        row = w[LEAD_NAMES.index(f"V{k}")]
        assert row[LEAD_ELECTRODES.index(f"V{k}")] == 1.0
        assert np.allclose(row[:3], -1.0 / 3.0)


def test_standard_leads_known_values_any_electrode_order():
    values = {"RA": 1.0, "LA": 2.0, "LL": 4.0, "V1": 10.0, "V2": 11.0, "V3": 12.0, "V4": 13.0, "V5": 14.0,
              "V6": 15.0, "A000": 99.0}
    names = ["A000", "V6", "LL", "V1", "RA", "V3", "LA", "V2", "V5", "V4"]  # shuffled, with an extra one
    phi = np.array([[values[n], 2 * values[n]] for n in names])
    leads = standard_leads(phi, names)
    wct = 7.0 / 3.0
    expected = [1.0, 3.0, 2.0, 1.0 - 3.0, 2.0 - 2.5, 4.0 - 1.5] + [10.0 + k - wct for k in range(6)]
    assert leads[:, 0] == pytest.approx(expected, abs=1e-14)
    assert leads[:, 1] == pytest.approx(2 * np.array(expected), abs=1e-14)


def test_standard_leads_identities_on_random_signals():
    rng = np.random.default_rng(1)
    phi = rng.normal(size=(9, 200)) * 1e-3
    leads = standard_leads(phi, list(LEAD_ELECTRODES))
    named = dict(zip(LEAD_NAMES, leads))
    assert np.allclose(named["I"] + named["III"], named["II"], rtol=0, atol=1e-18)
    assert np.allclose(named["aVR"] + named["aVL"] + named["aVF"], 0.0, rtol=0, atol=1e-18)
    # a common offset on every electrode (the reference) changes no lead
    assert np.allclose(standard_leads(phi + 0.37, list(LEAD_ELECTRODES)), leads, rtol=0, atol=1e-15)


def test_missing_electrode_is_named():
    names = [n for n in LEAD_ELECTRODES if n != "V4"]
    with pytest.raises(ValueError, match=r"V4"):
        standard_leads(np.zeros((8, 3)), names)


# ------------------------------------------------------------------ pseudo lead field
def test_pseudo_lead_field_value_and_gradient_against_finite_differences():
    rng = np.random.default_rng(2)
    electrodes = rng.normal(size=(3, 3)) * 0.15
    points = rng.normal(size=(20, 3)) * 0.03
    z = pseudo_lead_field(electrodes, points, SIGMA0)
    r = np.linalg.norm(electrodes[:, None] - points[None], axis=-1)
    assert z == pytest.approx(1.0 / (4 * np.pi * SIGMA0 * r), rel=1e-14)
    grad = pseudo_lead_field_gradient(electrodes, points, SIGMA0)
    assert grad.shape == (3, 20, 3)
    h = 1e-6
    for c in range(3):
        step = np.zeros(3)
        step[c] = h
        fd = (pseudo_lead_field(electrodes, points + step, SIGMA0)
              - pseudo_lead_field(electrodes, points - step, SIGMA0)) / (2 * h)
        assert np.allclose(grad[..., c], fd, rtol=1e-6, atol=1e-6 * np.abs(grad).max())
    with pytest.raises(ValueError, match="coincides"):
        pseudo_lead_field_gradient(electrodes, electrodes[1:2], SIGMA0)


def test_the_pseudo_gradient_in_pieces_is_the_closed_form_at_once_and_names_the_point():
    """More points than one piece: every entry is (e − x)/(4π σ0 |e − x|³) computed on all the
    points at once (the same numbers), and a point on an electrode in a later piece is named by
    its own index."""
    from ecgcohort.ecg.pseudo import _POINTS_PER_PIECE

    rng = np.random.default_rng(8)
    electrodes = rng.uniform(0.1, 0.3, (5, 3))
    points = rng.uniform(-0.05, 0.05, (2 * _POINTS_PER_PIECE + 17, 3))
    offset = electrodes[:, None, :] - points[None, :, :]
    expected = offset / (4.0 * np.pi * SIGMA0 * np.linalg.norm(offset, axis=-1) ** 3)[..., None]
    np.testing.assert_array_equal(pseudo_lead_field_gradient(electrodes, points, SIGMA0), expected)
    points[_POINTS_PER_PIECE + 3] = electrodes[2]
    with pytest.raises(ValueError, match=f"point {_POINTS_PER_PIECE + 3} coincides with electrode 2"):
        pseudo_lead_field_gradient(electrodes, points, SIGMA0)


def test_pseudo_lead_matrix_annihilates_uniform_potential():
    points, tets = box_mesh(3, 0.01, (0.02, -0.01, 0.0))
    fibres = np.random.default_rng(3).normal(size=(len(tets), 3))
    gi = intracellular_tensors(fibres, Conductivities())
    electrodes = np.array([[0.2, 0.0, 0.0], [0.0, 0.15, 0.05]])
    matrix = pseudo_lead_matrix(electrodes, points, tets, gi, SIGMA0)
    assert matrix.shape == (2, len(points))
    assert np.abs(matrix).max() > 0
    assert np.abs(matrix @ np.full(len(points), -0.085)).max() < 1e-12 * np.abs(matrix).sum()


def test_pseudo_lead_matrix_equals_the_lead_matrix_of_the_stored_gradients():
    """The fused loop against the FEM lead matrix's own formula fed with ∇Z* at the centroids
    (the path it replaced), on an anisotropic, jittered mesh; a centroid on an electrode fails."""
    rng = np.random.default_rng(3)
    points, tets = box_mesh(4, 0.02)
    points = points + rng.uniform(-1e-3, 1e-3, points.shape)
    fibres = rng.normal(size=(len(tets), 3))
    gi = intracellular_tensors(fibres / np.linalg.norm(fibres, axis=1, keepdims=True), Conductivities())
    electrodes = rng.uniform(0.05, 0.2, (19, 3)) * rng.choice([-1.0, 1.0], (19, 3))
    fused = pseudo_lead_matrix(electrodes, points, tets, gi, SIGMA0)
    centroids = points[tets].mean(axis=1)
    stored = lead_matrix(points, tets, gi, pseudo_lead_field_gradient(electrodes, centroids, SIGMA0))
    assert fused.shape == (19, len(points))
    assert np.abs(fused - stored).max() <= 1e-12 * np.abs(stored).max()
    with pytest.raises(ValueError, match="cell 5 coincides with electrode 1"):
        pseudo_lead_matrix(np.vstack([electrodes[:1], centroids[5]]), points, tets, gi, SIGMA0)


def test_pseudo_lead_matrix_of_a_small_slab_is_the_closed_form_dipole():
    # a 2 mm cube of myocardium with a uniform V_m gradient is a current dipole
    # p = -G_i grad(V_m) * volume; in an infinite medium phi(e) = p . (e - x0) / (4 pi sigma0 |e - x0|^3)
    x0 = np.array([0.01, 0.02, -0.03])
    size = 0.002
    points, tets = box_mesh(2, size, x0 - size / 2)
    fibre = np.array([0.6, 0.0, 0.8])
    gi = intracellular_tensors(np.tile(fibre, (len(tets), 1)), Conductivities())
    gradient = np.array([3.0, -1.0, 2.0])  # V/m
    vm = (points - x0) @ gradient - 0.085  # V
    electrodes = np.array([[0.15, 0.05, 0.0], [-0.12, 0.1, 0.02], [0.0, -0.1, 0.2]])
    phi = pseudo_lead_matrix(electrodes, points, tets, gi, SIGMA0) @ vm
    _, volumes = p1_gradients(points, tets)
    assert volumes.sum() == pytest.approx(size ** 3, rel=1e-12)
    p = -gi[0] @ gradient * size ** 3
    offset = electrodes - x0
    expected = offset @ p / (4 * np.pi * SIGMA0 * np.linalg.norm(offset, axis=1) ** 3)
    assert np.all(np.abs(expected) > 1e-9)
    assert phi == pytest.approx(expected, rel=1e-4)


# ------------------------------------------------------------------ forward ECG
def test_time_grid_includes_both_ends():
    grid = time_grid_ms(500.0, 1.0)
    assert grid.size == 501 and grid[0] == 0.0 and grid[-1] == 500.0
    assert time_grid_ms(1.0, 0.1)[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        time_grid_ms(100.0, 0.0)


def _map(activation_ms: np.ndarray) -> ActivationMap:
    return ActivationMap("sinus", "test", np.asarray(activation_ms, float), np.ones(len(activation_ms)),
                         np.zeros((1, 3)), np.zeros(1))


def test_electrode_potentials_vanish_when_every_node_activates_at_once():
    points, tets = box_mesh(3, 0.01)
    gi = intracellular_tensors(np.tile([1.0, 0, 0], (len(tets), 1)), Conductivities())
    matrix = pseudo_lead_matrix(np.array([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]), points, tets, gi, SIGMA0)
    phi = electrode_potentials(matrix, _map(np.full(len(points), 12.0)), np.arange(0.0, 400.0), square_wave_template())
    assert phi.shape == (2, 400)
    assert np.abs(phi).max() < 1e-15
    # a wave front crossing the slab gives a non-zero ECG with the same matrix
    wave = electrode_potentials(matrix, _map(1e4 * points[:, 0]), np.arange(0.0, 400.0), square_wave_template())
    assert np.abs(wave).max() > 1e-6


def test_electrode_potentials_convert_mv_to_v_in_node_blocks(monkeypatch):
    matrix = np.array([[1.0, -1.0, 0.0], [0.0, 0.5, 0.0]])
    activation = _map(np.array([0.0, 100.0, 1000.0]))
    times = np.arange(0.0, 600.0, 0.5)
    full = electrode_potentials(matrix, activation, times, square_wave_template())
    at = {t: k for k, t in enumerate(times)}
    assert full[0, at[50.0]] == pytest.approx((20.0 - -85.0) * 1e-3)    # node 0 up, node 1 at rest
    assert full[0, at[150.0]] == pytest.approx(0.0)                     # both on the plateau
    assert full[0, at[350.0]] == pytest.approx((-85.0 - 20.0) * 1e-3)   # node 0 repolarised first
    assert full[1, at[10.0]] == pytest.approx(0.5 * -85.0 * 1e-3)
    monkeypatch.setattr(forward, "_VM_BLOCK_VALUES", 7)  # one node per block
    np.testing.assert_allclose(electrode_potentials(matrix, activation, times, square_wave_template()), full,
                               rtol=1e-14, atol=1e-17)
    with pytest.raises(ValueError, match="lead matrix"):
        electrode_potentials(matrix[:, :2], activation, times, square_wave_template())


def test_electrode_potentials_in_node_blocks_equal_the_whole_v_m_product(monkeypatch):
    """The blocked sum against L @ V_m of every node at once (the product it replaced), with APD
    scales and upstroke spreads that differ per node: the order of the sum alone differs."""
    rng = np.random.default_rng(7)
    n_nodes = 1000
    grid = np.arange(-20.0, 1000.0)
    voltage = -85.0 + 105.0 / (1.0 + np.exp(-grid)) - 105.0 / (1.0 + np.exp(-(grid - 300.0) / 20.0))
    template = ActionPotential(grid, voltage, -85.0, float(voltage.max()), 300.0, 26.0)
    activation = ActivationMap("sinus", "test", rng.uniform(0.0, 120.0, n_nodes), rng.uniform(0.8, 1.2, n_nodes),
                               np.zeros((1, 3)), np.zeros(1), upstroke_ms=rng.uniform(0.0, 6.0, n_nodes))
    matrix = rng.normal(size=(7, n_nodes))
    matrix -= matrix.mean(axis=1, keepdims=True)  # rows summing to 0, as a lead matrix's do
    times = time_grid_ms(600.0, 1.0)
    whole = matrix @ activation.transmembrane_potential_mv(times, template) * 1e-3
    monkeypatch.setattr(forward, "_VM_BLOCK_VALUES", 37 * times.size)  # 27 blocks, the last one short
    blocked = electrode_potentials(matrix, activation, times, template)
    assert np.abs(blocked - whole).max() <= 1e-12 * np.abs(whole).max()
    assert np.abs(whole).max() > 1e-3  # a real signal, not two zeros


# ------------------------------------------------------------------ the job
NAMES = list(LEAD_ELECTRODES) + ["A000", "A001"]


def write_patient_inputs(root: Path) -> dict:
    """A slab of "myocardium" and 11 electrodes 10-20 cm away; FEM chunks = pseudo lead field."""
    points_m, tets = box_mesh(3, 0.03, (-0.015, -0.015, -0.015))
    rng = np.random.default_rng(4)
    fibre_cell = rng.normal(size=(len(tets), 3))
    fibre_cell /= np.linalg.norm(fibre_cell, axis=1, keepdims=True)
    n_nodes = len(points_m)
    fibres = MyocardialFibres(points_m * 1e3, tets, np.tile([1.0, 0, 0], (n_nodes, 1)),
                              np.tile([0, 1.0, 0], (n_nodes, 1)), np.tile([0, 0, 1.0], (n_nodes, 1)), fibre_cell,
                              np.zeros_like(fibre_cell), np.zeros_like(fibre_cell), {"transmural": np.zeros(n_nodes)},
                              np.arange(n_nodes), np.arange(len(tets)), FibreAngles())
    save_fibres(fibres, root / "fibres.npz")
    direction = rng.normal(size=(len(NAMES), 3))
    electrodes_m = direction / np.linalg.norm(direction, axis=1, keepdims=True) * rng.uniform(0.1, 0.2, (len(NAMES), 1))
    with open(root / "electrodes.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["name", "kind", "x_mm", "y_mm", "z_mm", "x_norm", "y_norm", "z_norm"])
        for name, e in zip(NAMES, electrodes_m):
            writer.writerow([name, "standard" if name in LEAD_ELECTRODES else "anterior", *(e * 1e3), 0.0, 0.5, 0.5])
    sigma = Conductivities()
    gi = intracellular_tensors(fibre_cell, sigma)
    centroids = points_m[tets].mean(axis=1)
    chunks = []
    for k, part in enumerate((slice(0, 6), slice(6, None))):
        grad_cells = pseudo_lead_field_gradient(electrodes_m[part], centroids, sigma.torso)
        path = root / f"chunk-{k}.npz"
        np.savez(path, electrode_names=np.array(NAMES[part]), electrode_positions_m=electrodes_m[part],
                 grad_points=grad_cells[:, :5].astype(np.float32), grad_cells=grad_cells.astype(np.float32),
                 lead_matrix=pseudo_lead_matrix(electrodes_m[part], points_m, tets, gi, sigma.torso),
                 stats_json=np.array("{}"))
        chunks.append(path)
    save_activation(ActivationMap("lbbb", "pacing", 2e3 * (points_m[:, 0] + 0.015), np.ones(n_nodes),
                                  np.zeros((1, 3)), np.zeros(1)), root / "lbbb.npz")
    return {"chunk_paths": chunks, "activation_paths": {"lbbb": root / "lbbb.npz"}, "fibres_npz": root / "fibres.npz",
            "electrodes_csv": root / "electrodes.csv", "conductivities": {"intra_fibre": 0.3, "intra_cross": 0.03,
                                                                           "extra_fibre": 0.3, "extra_cross": 0.12,
                                                                           "torso": 0.06}}


def test_compute_ecg_job_writes_ecgs_and_preview(tmp_path, monkeypatch):
    monkeypatch.setattr(forward, "action_potential_template", lambda *_, **__: square_wave_template())
    inputs = write_patient_inputs(tmp_path)
    out = tmp_path / "ecg" / "lbbb.npz"
    compute_ecgs("train-0000", duration_ms=400.0, dt_ms=2.0, template_cache_dir=tmp_path / "cache",
                 outputs={"lbbb": (out, tmp_path / "ecg" / "lbbb.png")}, **inputs)
    with np.load(out) as ecg:
        assert ecg["time_s"].shape == (201,) and ecg["time_s"][-1] == pytest.approx(0.4)
        assert list(ecg["electrode_names"]) == NAMES and list(ecg["lead_names"]) == list(LEAD_NAMES)
        assert ecg["unipolar_v"].shape == (11, 201) and ecg["leads_v"].shape == (12, 201)
        assert np.allclose(ecg["leads_v"], standard_leads(ecg["unipolar_v"], NAMES), rtol=0, atol=1e-18)
        # the synthetic FEM lead field is the pseudo lead field: both ECGs agree
        assert np.abs(ecg["unipolar_v"]).max() > 1e-5
        assert np.allclose(ecg["pseudo_unipolar_v"], ecg["unipolar_v"], rtol=1e-6, atol=1e-12)
        assert np.all(ecg["pseudo_relative_difference"] < 1e-6)
    assert (tmp_path / "ecg" / "lbbb.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "ecg").glob(".*part*"))
    # without a preview path (the workflow draws the pictures in draw_patient): the same ECG, no PNG
    again = tmp_path / "unpictured" / "lbbb.npz"
    compute_ecgs("train-0000", duration_ms=400.0, dt_ms=2.0, template_cache_dir=tmp_path / "cache",
                 outputs={"lbbb": (again, None)}, **inputs)
    with np.load(out) as first, np.load(again) as second:
        np.testing.assert_array_equal(first["leads_v"], second["leads_v"])
    assert [path.name for path in again.parent.iterdir()] == ["lbbb.npz"]


def test_compute_ecg_rejects_electrodes_that_do_not_match(tmp_path, monkeypatch):
    monkeypatch.setattr(forward, "action_potential_template", lambda *_, **__: square_wave_template())
    inputs = write_patient_inputs(tmp_path)
    lines = (tmp_path / "electrodes.csv").read_text().splitlines()
    (tmp_path / "electrodes.csv").write_text("\n".join(lines[:-1]) + "\n")  # drop A001
    with pytest.raises(ValueError, match="train-0003.*differ"):
        compute_ecgs("train-0003", duration_ms=10.0, dt_ms=1.0, template_cache_dir=tmp_path,
                     outputs={"lbbb": (tmp_path / "x.npz", tmp_path / "x.png")}, **inputs)
    assert not (tmp_path / "x.npz").exists()


def test_lead_field_chunks_read_into_one_array_equal_numpy_s_own_reading(tmp_path):
    """Stored chunks read straight into their rows, a compressed one loaded: both equal to
    np.load + np.concatenate, and the result is an ordinary writable array."""
    rng = np.random.default_rng(11)
    chunks = [{"electrode_names": np.array([f"E{k}{i}" for i in range(n)]),
               "grad_cells": rng.normal(size=(n, 50, 3)).astype(np.float32), "lead_matrix": rng.normal(size=(n, 20))}
              for k, n in enumerate((3, 5, 2))]
    paths = [tmp_path / f"chunk-{k}.npz" for k in range(3)]
    for k, (path, chunk) in enumerate(zip(paths, chunks)):
        (np.savez_compressed if k == 1 else np.savez)(path, **chunk)
    read = read_lead_field_chunks(paths, ("grad_cells", "lead_matrix"))
    for name in ("grad_cells", "lead_matrix"):
        expected = np.concatenate([chunk[name] for chunk in chunks])
        assert read[name].dtype == expected.dtype and np.array_equal(read[name], expected), name
        assert type(read[name]) is np.ndarray and read[name].flags.writeable
    stored = read_lead_field_chunks([paths[0], paths[2]], ("lead_matrix",))["lead_matrix"]
    assert np.array_equal(stored, np.concatenate([chunks[0]["lead_matrix"], chunks[2]["lead_matrix"]]))
    assert list(read["electrode_names"]) == [f"E{k}{i}" for k, n in enumerate((3, 5, 2)) for i in range(n)]
