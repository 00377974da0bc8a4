"""TP06 epicardial action-potential template and V_m = U(t − τ) (ms, mV)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ecgcohort.conduction import action_potential as ap

BEATS = 3  # paced beats in tests; APD90 drifts by ~1 ms per 10 further beats (see module report)


@pytest.fixture(scope="module")
def paced_1hz() -> tuple[np.ndarray, np.ndarray]:
    return ap.simulate_tp06(1000.0, beats=BEATS, dt_ms=0.02)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> ap.ActionPotential:
    return ap.action_potential_template(1000.0, tmp_path_factory.mktemp("ap_cache"), beats=BEATS)


def test_epicardial_ap_at_1hz(paced_1hz):
    t, v = paced_1hz
    m = ap.ap_measures(t, v)
    assert m["resting_mv"] == pytest.approx(-86.0, abs=3.0)
    assert 20.0 <= m["peak_mv"] <= 45.0
    # ten Tusscher & Panfilov 2006 (epicardial cell, 1 Hz): the published single-cell APD
    # restitution puts APD90 at roughly 300 ms for BCL 1000 ms (number quoted from memory of the
    # paper's restitution figure, not re-checked against the PDF); window 270-320 ms.
    assert 270.0 <= m["apd90_ms"] <= 320.0
    assert m["max_upstroke_mv_per_ms"] > 200.0
    assert 0.0 < m["upstroke_ms"] < 3.0  # upstroke during / right after the 1 ms stimulus
    # repolarised back to rest before the next beat
    assert abs(v[-1] - v[0]) < 1.0


def test_upstroke_converged_with_finer_step(paced_1hz):
    _, v = paced_1hz
    state = np.array(ap.INITIAL_STATE)
    coarse = ap.integrate_tp06(state, 20.0, dt_ms=0.02)
    fine = ap.integrate_tp06(state, 20.0, dt_ms=0.002)
    dvdt_coarse = ap.ap_measures(coarse[0], coarse[1])["max_upstroke_mv_per_ms"]
    dvdt_fine = ap.ap_measures(fine[0], fine[1])["max_upstroke_mv_per_ms"]
    assert dvdt_fine > 200.0
    assert dvdt_coarse == pytest.approx(dvdt_fine, rel=0.1)


def test_rush_larsen_matches_stiff_solver():
    # start from the state after one paced beat, integrate one more beat both ways
    _, _, state = ap.integrate_tp06(np.array(ap.INITIAL_STATE), 1000.0, record=False)
    t_rl, v_rl, _ = ap.integrate_tp06(state, 1000.0, dt_ms=0.02)

    # same RHS (ap.tp06_rhs), variable-order BDF with tight tolerances; the stimulus
    # discontinuity at t = 1 ms is handled by restarting the solver there
    kw = dict(method="BDF", rtol=1e-8, atol=1e-10, dense_output=True)
    stim = solve_ivp(ap.tp06_rhs, (0.0, ap.STIM_DURATION), state, args=("epi", ap.STIM_AMPLITUDE),
                     max_step=0.01, **kw)
    rest = solve_ivp(ap.tp06_rhs, (ap.STIM_DURATION, 1000.0), stim.y[:, -1], args=("epi", 0.0),
                     max_step=1.0, **kw)
    assert stim.success and rest.success
    in_stim = t_rl <= ap.STIM_DURATION
    v_ref = np.concatenate([stim.sol(t_rl[in_stim])[0], rest.sol(t_rl[~in_stim])[0]])

    m_rl = ap.ap_measures(t_rl, v_rl)
    m_ref = ap.ap_measures(t_rl, v_ref)
    assert m_rl["apd90_ms"] == pytest.approx(m_ref["apd90_ms"], abs=2.0)
    # forward Euler on V at 0.02 ms overshoots the peak by ~2 mV (converges as dt -> 0)
    assert m_rl["peak_mv"] == pytest.approx(m_ref["peak_mv"], abs=3.0)
    assert m_rl["max_upstroke_mv_per_ms"] == pytest.approx(m_ref["max_upstroke_mv_per_ms"], rel=0.1)
    dv = np.abs(v_rl - v_ref)[t_rl >= 5.0]  # after the upstroke
    assert dv.max() < 2.0
    assert np.median(dv) < 0.1


def test_apd_shortens_at_faster_rate(paced_1hz):
    apd_1000 = ap.ap_measures(*paced_1hz)["apd90_ms"]
    apd_500 = ap.ap_measures(*ap.simulate_tp06(500.0, beats=BEATS + 1, dt_ms=0.02))["apd90_ms"]
    assert apd_500 < apd_1000 - 5.0


def test_unknown_cell_type():
    with pytest.raises(ValueError):
        ap.simulate_tp06(1000.0, beats=1, cell="atrial")


def test_template_sampling_and_cache(tmp_path, monkeypatch):
    first = ap.action_potential_template(1000.0, tmp_path, beats=1)
    assert np.all(np.diff(first.time_ms) == 1.0)
    assert first.time_ms[0] < 0.0 <= first.time_ms[-1]
    assert first.voltage_mv[first.time_ms < 0].max() < first.resting_mv + 1.0
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1

    def fail(*args, **kwargs):
        raise AssertionError("template was recomputed instead of read from the cache")

    monkeypatch.setattr(ap, "simulate_tp06", fail)
    second = ap.action_potential_template(1000.0, tmp_path, beats=1)
    np.testing.assert_array_equal(first.time_ms, second.time_ms)
    np.testing.assert_array_equal(first.voltage_mv, second.voltage_mv)
    assert (first.resting_mv, first.peak_mv, first.apd90_ms, first.max_upstroke_mv_per_ms) == (
        second.resting_mv, second.peak_mv, second.apd90_ms, second.max_upstroke_mv_per_ms)
    # a different cycle length is a different cache entry
    with pytest.raises(AssertionError, match="recomputed"):
        ap.action_potential_template(800.0, tmp_path, beats=1)


def test_a_template_cached_by_other_code_or_another_library_is_recomputed(tmp_path, monkeypatch):
    """The cache's key hashes the module's source and the numpy and Python versions: a template
    that another version wrote (here: a poisoned file under the old key) is never loaded."""
    first = ap.action_potential_template(1000.0, tmp_path, beats=1)
    (cached,) = tmp_path.glob("*.npz")
    assert ap.template_cache_key() in cached.name
    with np.load(cached) as stored:
        poisoned = {name: stored[name] for name in stored.files}
    poisoned["voltage_mv"] = poisoned["voltage_mv"] + 50.0
    np.savez(cached, **poisoned)
    assert ap.action_potential_template(1000.0, tmp_path, beats=1).voltage_mv.max() > first.voltage_mv.max() + 49.0

    source = ap.Path(ap.__file__).read_bytes()
    for label, patch in (("source", lambda: monkeypatch.setattr(ap.Path, "read_bytes", lambda self: source + b"# edit")),
                         ("numpy", lambda: monkeypatch.setattr(ap.np, "__version__", "0.0.1"))):
        ap.template_cache_key.cache_clear()
        patch()
        assert ap.template_cache_key() not in cached.name, label
        fresh = ap.action_potential_template(1000.0, tmp_path, beats=1)
        np.testing.assert_array_equal(fresh.voltage_mv, first.voltage_mv)  # recomputed, not the poisoned file
        monkeypatch.undo()
    ap.template_cache_key.cache_clear()
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_a_compiled_function_from_a_changed_source_is_recompiled(tmp_path):
    """The compiled kernels (eikonal, source weights, ldrb's helpers) use numba's on-disk cache,
    which is keyed by the source file's time stamp and size and by numba's version: a process
    that imports an edited module runs the new code, not the cached machine code."""
    import os
    import subprocess
    import sys
    import time

    module = tmp_path / "kernel.py"
    run = [sys.executable, "-c", "import kernel; print(kernel.value(2.0))"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    module.write_text("import numba\n\n@numba.njit(cache=True)\ndef value(x):\n    return x + 1.0\n")
    assert subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.strip() == "3.0"
    assert any((tmp_path / "cache").rglob("*.nbi"))
    time.sleep(0.01)
    module.write_text("import numba\n\n@numba.njit(cache=True)\ndef value(x):\n    return x * 10.0\n")
    assert subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.strip() == "20.0"


def test_template_call_and_measures(template):
    assert template(-1000.0) == template.resting_mv
    assert template(1e6) == template.resting_mv
    on_grid = template(template.time_ms)
    np.testing.assert_array_equal(on_grid, template.voltage_mv)
    # APD90 from the 1 ms samples agrees with the fine-step value
    coarse = ap.ap_measures(template.time_ms[template.time_ms >= 0], template.voltage_mv[template.time_ms >= 0])
    assert coarse["apd90_ms"] == pytest.approx(template.apd90_ms, abs=1.5)


def test_transmembrane_potential_shift(template):
    tau = np.array([0.0, 17.0, 250.0])
    times = np.arange(-50.0, 800.0, 1.0)
    vm = ap.transmembrane_potential(tau, times, template)
    assert vm.shape == (3, times.size)
    for i, ti in enumerate(tau):
        before = times < ti - ap.TEMPLATE_PRE_MS
        np.testing.assert_allclose(vm[i, before], template.resting_mv)
        assert np.all(np.abs(vm[i, times < ti] - template.resting_mv) < 1.0)
        k = int(np.searchsorted(times, ti))
        assert vm[i, k + 2] > 0.0  # upstroke within 2 ms of activation
        # exactly U(t − τ) on the template grid
        idx = np.searchsorted(template.time_ms, times - ti)
        inside = (times - ti >= template.time_ms[0]) & (times - ti <= template.time_ms[-1])
        np.testing.assert_array_equal(vm[i, inside], template.voltage_mv[idx[inside]])


def test_apd_scaling(template):
    times = np.arange(-20.0, 600.0, 0.1)
    tau = np.array([30.0, 30.0])
    vm = ap.transmembrane_potential(tau, times, template, apd_scale=np.array([1.0, 1.2]))
    m1 = ap.ap_measures(times, vm[0])
    m2 = ap.ap_measures(times, vm[1])
    assert m2["upstroke_ms"] == m1["upstroke_ms"]
    np.testing.assert_array_equal(vm[0, times <= 30.0 + template.peak_time_ms],
                                  vm[1, times <= 30.0 + template.peak_time_ms])
    assert m2["apd90_ms"] / m1["apd90_ms"] == pytest.approx(1.2, abs=0.01)
    shorter = ap.ap_measures(times, ap.transmembrane_potential(tau[:1], times, template, apd_scale=0.8)[0])
    assert shorter["apd90_ms"] / m1["apd90_ms"] == pytest.approx(0.8, abs=0.01)


def test_transmembrane_potential_of_a_heart_sized_node_set_stays_within_the_template(template):
    """40,000 nodes over 500 ms (a converged heart's order; its speed is measured with the whole
    patient by benchmarks/patient_pipeline.py, not by a timed test): every value within the
    template's range, each node within 10 uV of rest before its activation and depolarised 10 ms
    after it."""
    rng = np.random.default_rng(0)
    tau = rng.uniform(0.0, 120.0, 40_000)
    scale = rng.uniform(0.9, 1.1, 40_000)
    times = np.arange(0.0, 500.0, 1.0)
    vm = ap.transmembrane_potential(tau, times, template, apd_scale=scale)
    assert vm.shape == (40_000, 500)
    # the template's own range: TP06 undershoots its pre-stimulus rest by 3 uV after repolarising
    assert vm.min() >= template.voltage_mv.min() - 1e-9 and vm.max() <= template.voltage_mv.max() + 1e-9
    before = times[None, :] < tau[:, None] - template.peak_time_ms
    np.testing.assert_allclose(vm[before], template.resting_mv, atol=0.01)  # mV
    after = np.searchsorted(times, tau + 10.0)
    assert (vm[np.arange(len(tau)), after] > 0.0).all()


def test_upstroke_spread_of_a_straight_front_is_the_element_transit_time():
    """τ = x / v on a Kuhn tetrahedral grid (every cube cut into six tetrahedra along its
    diagonal, each spanning the cube in x): every element's τ range is h / v, so is every node's."""
    import itertools

    h, v, n = 2.0, 0.5, 5  # mm, mm/ms, cubes per side
    index = lambda i, j, k: (i * (n + 1) + j) * (n + 1) + k  # noqa: E731
    grid = np.array([(i, j, k) for i in range(n + 1) for j in range(n + 1) for k in range(n + 1)], float) * h
    tets = []
    for i, j, k in itertools.product(range(n), repeat=3):
        for order in itertools.permutations(range(3)):
            corner, path = [i, j, k], [index(i, j, k)]
            for axis in order:
                corner[axis] += 1
                path.append(index(*corner))
            tets.append(path)
    spread = ap.upstroke_spread_ms(np.array(tets), grid[:, 0] / v)
    np.testing.assert_allclose(spread, h / v)
    assert ap.upstroke_spread_ms(np.array(tets), grid[:, 0] / v, cap_ms=1.0).max() == 1.0


def test_spread_upstrokes_integrate_a_front_exactly_on_a_chain(template):
    """A front crossing a chain of P1 nodes (spacing h, speed v): the exact integral over the chain
    of U(t − x/v) equals Σ_a h·(U ∗ Λ)(t − τ_a) with Λ the triangle of half-width h/v (the hat
    functions' τ distribution), while the unspread sum is a staircase."""
    h, v = 4.0, 0.6
    nodes = np.arange(0.0, 60.0 + h / 2, h)
    times = np.arange(0.0, 140.0, 1.0)
    fine = np.arange(nodes[0], nodes[-1] + 1e-9, 0.01)
    exact = np.trapezoid(ap.transmembrane_potential(fine / v, times, template), fine, axis=0)
    weights = np.full(len(nodes), h)
    weights[[0, -1]] = h / 2  # the end nodes' half supports
    spread = ap.upstroke_spread_ms(np.column_stack([np.arange(len(nodes) - 1), np.arange(1, len(nodes))]),
                                   nodes / v)  # segments as "elements"
    np.testing.assert_allclose(spread, h / v)
    smooth = weights @ ap.transmembrane_potential(nodes / v, times, template, upstroke_ms=spread)
    staircase = weights @ ap.transmembrane_potential(nodes / v, times, template)
    # away from the chain's ends (whose half supports see one side of the triangle only)
    window = (times > 10) & (times < 95)
    error_smooth = np.abs(smooth - exact)[window].max() / np.ptp(exact)
    error_staircase = np.abs(staircase - exact)[window].max() / np.ptp(exact)
    print(f"\nlargest error over the front: spread {error_smooth:.4f}, staircase {error_staircase:.4f}")
    assert error_smooth < 0.005 and error_staircase > 5 * error_smooth


def test_spread_upstroke_keeps_the_activation_time_and_the_area(template):
    tau = np.array([50.0, 50.0])
    times = np.arange(0.0, 600.0, 0.25)
    plain, spread = ap.transmembrane_potential(tau, times, template, upstroke_ms=np.array([0.0, 6.3]))
    assert np.trapezoid(spread - plain, times) == pytest.approx(0.0, abs=1e-6 * np.abs(plain).sum() * 0.25)
    midway = 0.5 * (template.resting_mv + template.peak_mv)
    crossing = times[np.argmax(spread > midway)]
    assert crossing == pytest.approx(tau[0], abs=2.0)  # the triangle is symmetric about τ
    assert np.abs(np.diff(spread)).max() < 0.2 * np.abs(np.diff(plain)).max()
    with pytest.raises(ValueError, match="upstroke_ms"):
        ap.transmembrane_potential(tau, times, template, upstroke_ms=np.array([-1.0, 0.0]))
