"""The electrophysiology stage's jobs: Purkinje trees per patient, activation maps per
(patient, scenario), with their previews."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ecgcohort.anatomy.assembly import Surface
from ecgcohort.cohort.sampling import patient_rng
from ecgcohort.conduction.coupling import couple_points
from ecgcohort.conduction.eikonal import activation_times
from ecgcohort.conduction.maps import ActivationMap, save_activation
from ecgcohort.conduction.purkinje import (
    LV_ENDOCARDIUM,
    RV_ENDOCARDIUM,
    PurkinjeError,
    PurkinjeTree,
    TreeSettings,
    extract_surface,
    grow_tree,
    join_trees,
    tree_activation,
    write_tree_vtk,
)
from ecgcohort.conduction.scenarios import Scenario, ScenarioError, apd_scale, his_roots, pacing_sites
from ecgcohort.fibers.rule_based import MyocardialFibres, load_fibres
from ecgcohort.io import atomic_path
from ecgcohort.rendering import offscreen_plotter

log = logging.getLogger(__name__)

FRONT_VIEW = [(0, 1, 0), (0, 0, 0), (0, 0, -1)]  # from anterior (+y), superior (-z) up
BACK_VIEW = [(0, -1, 0), (0, 0, 0), (0, 0, -1)]


def tree_settings(section: Mapping[str, Any]) -> TreeSettings:
    """TreeSettings from an ``electrophysiology.purkinje.lv_tree`` / ``rv_tree`` config mapping."""
    values = dict(section)
    for key in ("fascicles_angles_deg", "fascicles_lengths_mm"):
        values[key] = tuple(float(v) for v in values.get(key, ()))
    return TreeSettings(**values)


def _myocardium_grid(fibres: MyocardialFibres):
    import pyvista

    cells = np.hstack([np.full((fibres.n_cells, 1), 4), fibres.tetrahedra]).ravel()
    return pyvista.UnstructuredGrid(cells, np.full(fibres.n_cells, pyvista.CellType.TETRA), fibres.points_mm)


def _tree_polydata(tree: PurkinjeTree):
    import pyvista

    poly = pyvista.PolyData(tree.nodes_mm, lines=np.hstack([np.full((len(tree.edges), 1), 2), tree.edges]).ravel())
    poly.point_data["activation_ms"] = tree.activation_ms
    return poly


def plot_purkinje(heart: Surface, trees: Mapping[str, PurkinjeTree], path: str | Path, title: str = "") -> None:
    """Front and back views: the translucent heart surface and the Purkinje trees coloured by
    activation time (PNG)."""
    import pyvista

    surface = pyvista.PolyData(heart.points, np.column_stack([np.full(len(heart.faces), 3), heart.faces]).ravel())
    times = np.concatenate([t.activation_ms for t in trees.values()])
    plotter = offscreen_plotter(shape=(1, 2), window_size=(1400, 700))
    for column, (view, label) in enumerate(((FRONT_VIEW, "anterior"), (BACK_VIEW, "posterior"))):
        plotter.subplot(0, column)
        plotter.add_mesh(surface, color="lightgrey", opacity=0.25)
        for name, tree in trees.items():
            plotter.add_mesh(_tree_polydata(tree), scalars="activation_ms", cmap="plasma", line_width=2,
                             clim=(float(times.min()), float(times.max())), show_scalar_bar=column == 1,
                             scalar_bar_args={"title": "Purkinje activation (ms)"})
        plotter.camera_position = view
        plotter.reset_camera()
        plotter.add_text(f"{title} Purkinje trees ({label})", font_size=9)
    with atomic_path(path) as temporary:
        plotter.screenshot(str(temporary))
    plotter.close()


def grow_purkinje(patient: str, heart_surface: str | Path, settings: Mapping[str, Any], seed: int,
                  lv_out: str | Path, rv_out: str | Path, junctions_out: str | Path, preview_out: str | Path) -> None:
    """Grow the LV and RV Purkinje trees of one patient on its own endocardial surfaces (the
    anatomy's ``heart.vtp``) from its bundle-branch roots (the RV tree in two parts joined by
    the moderator band), and store the trees (.vtp), the junctions — positions (mm) and
    activation times (ms), coupled to a mesh only when a map is computed, so the network is
    the same whatever the mesh — and a preview."""
    from ecgcohort.anatomy.outputs import read_surface

    started = time.perf_counter()
    heart = read_surface(heart_surface)
    roots = his_roots(heart, float(settings["his_long_axis_position"]), float(settings["moderator_band_position"]))
    velocity = float(settings["conduction_velocity_m_per_s"])
    trees: dict[str, PurkinjeTree] = {}
    junctions: dict[str, np.ndarray] = {}
    for name, label in (("lv", LV_ENDOCARDIUM), ("rv", RV_ENDOCARDIUM)):
        points, faces, _ = extract_surface(heart.points, heart.faces, heart.labels, label)
        rng = patient_rng(seed, patient, f"purkinje-{name}")
        settings_of_tree = tree_settings(settings[f"{name}_tree"])
        try:
            if name == "lv":
                tree = grow_tree(points, faces, roots.lv_mm, roots.direction, settings_of_tree,
                                 seed=int(rng.integers(2**31 - 1)))
            else:  # septal tree plus the moderator band's free-wall tree, grown towards the base
                septal = grow_tree(points, faces, roots.rv_mm, roots.direction, settings_of_tree,
                                   seed=int(rng.integers(2**31 - 1)))
                free_wall = grow_tree(points, faces, roots.rv_free_wall_mm, -roots.direction, settings_of_tree,
                                      seed=int(rng.integers(2**31 - 1)))
                tree = join_trees(septal, free_wall)
        except PurkinjeError as error:
            raise PurkinjeError(f"patient {patient}, {name.upper()} tree: {error}") from error
        tree.activation_ms = tree_activation(tree, velocity)
        junctions[f"{name}_positions_mm"] = tree.nodes_mm[tree.junctions]
        junctions[f"{name}_times_ms"] = tree.activation_ms[tree.junctions]
        trees[name] = tree
        log.info("patient %s: %s tree %d nodes, %d junctions, latest junction %.1f ms", patient, name.upper(),
                 tree.n_nodes, len(tree.junctions), float(junctions[f"{name}_times_ms"].max()))
    write_tree_vtk(trees["lv"], lv_out)
    write_tree_vtk(trees["rv"], rv_out)
    with atomic_path(junctions_out) as temporary:
        with open(temporary, "wb") as stream:
            np.savez(stream, lv_root_mm=roots.lv_mm, rv_root_mm=roots.rv_mm,
                     rv_free_wall_root_mm=roots.rv_free_wall_mm, **junctions)
    plot_purkinje(heart, trees, preview_out, title=patient)
    log.info("patient %s: Purkinje stage %.1f s", patient, time.perf_counter() - started)


def load_junctions(path: str | Path) -> dict[str, np.ndarray]:
    """The Purkinje junctions of :func:`grow_purkinje`: ``{lv,rv}_positions_mm`` (k, 3) and
    ``{lv,rv}_times_ms`` (k,)."""
    keys = ("lv_positions_mm", "lv_times_ms", "rv_positions_mm", "rv_times_ms")
    with np.load(path) as data:
        missing = [key for key in keys if key not in data.files]
        if missing:
            raise ScenarioError(f"{path} lacks {missing}: Purkinje junctions of an older format, re-run grow_purkinje")
        return {key: data[key] for key in keys}


def scenario_stimuli(scenario: Scenario, heart: Surface, junctions: Mapping[str, np.ndarray] | None,
                     rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """(positions (k, 3) mm, times (k,) ms) of a scenario's stimuli: the Purkinje junctions for
    sinus (both trees) and LBBB (RV tree only), pacing sites on the heart surface otherwise
    (``junctions`` may then be None)."""
    if scenario.uses_purkinje and junctions is None:
        raise ScenarioError(f"scenario '{scenario.name}' ({scenario.kind}) needs the Purkinje junctions")
    if scenario.kind == "sinus":
        return (np.concatenate([junctions["lv_positions_mm"], junctions["rv_positions_mm"]]),
                np.concatenate([junctions["lv_times_ms"], junctions["rv_times_ms"]]))
    if scenario.kind == "lbbb":
        return np.asarray(junctions["rv_positions_mm"]), np.asarray(junctions["rv_times_ms"])
    return pacing_sites(scenario, heart, rng)


@dataclass(frozen=True)
class MeshStimuli:
    """A scenario's stimuli (``positions_mm`` (k, 3), ``times_ms`` (k,)) and the mesh nodes they
    start (``nodes``, at ``node_times_ms``)."""

    positions_mm: np.ndarray
    times_ms: np.ndarray
    nodes: np.ndarray
    node_times_ms: np.ndarray


def scenario_sources(scenario: Scenario, fibres: MyocardialFibres, heart: Surface,
                     junctions: Mapping[str, np.ndarray] | None, rng: np.random.Generator | None,
                     velocities: Mapping[str, float]) -> MeshStimuli:
    """A scenario's stimuli (:func:`scenario_stimuli`) coupled to the patient's myocardial mesh
    (:func:`ecgcohort.conduction.coupling.couple_points`; velocities m/s)."""
    positions, times = scenario_stimuli(scenario, heart, junctions, rng)
    coupled = couple_points(fibres.points_mm, fibres.tetrahedra, positions)
    node_times = coupled.node_times(times, fibres.fibre_cell, float(velocities["fibre"]), float(velocities["cross"]))
    return MeshStimuli(positions, times, coupled.nodes, node_times)


def plot_isochrones(fibres: MyocardialFibres, activation_ms: np.ndarray, path: str | Path, title: str = "",
                    step_ms: float = 10.0, sites_mm: np.ndarray | None = None) -> None:
    """Front and back views of the activation map on the myocardial surface with isochrones
    every ``step_ms`` ms (PNG)."""
    import pyvista

    grid = _myocardium_grid(fibres)
    grid.point_data["activation_ms"] = activation_ms
    surface = grid.extract_surface(algorithm="dataset_surface")
    low, high = float(activation_ms.min()), float(activation_ms.max())
    levels = np.arange(np.ceil(low / step_ms) * step_ms, high, step_ms)
    lines = surface.contour(isosurfaces=levels, scalars="activation_ms") if len(levels) else None
    plotter = offscreen_plotter(shape=(1, 2), window_size=(1400, 700))
    for column, (view, label) in enumerate(((FRONT_VIEW, "anterior"), (BACK_VIEW, "posterior"))):
        plotter.subplot(0, column)
        plotter.add_mesh(surface, scalars="activation_ms", cmap="jet_r", clim=(low, high), show_scalar_bar=column == 1,
                         scalar_bar_args={"title": "activation (ms)"})
        if lines is not None and lines.n_points:
            plotter.add_mesh(lines, color="black", line_width=1.5)
        if sites_mm is not None and len(sites_mm) <= 10:
            plotter.add_points(np.asarray(sites_mm), color="white", point_size=14, render_points_as_spheres=True)
        plotter.camera_position = view
        plotter.reset_camera()
        plotter.add_text(f"{title} ({label}), isochrones every {step_ms:g} ms, total {high - low:.0f} ms",
                         font_size=9)
    with atomic_path(path) as temporary:
        plotter.screenshot(str(temporary))
    plotter.close()


def compute_activation(patient: str, map_name: str, scenario: Mapping[str, Any], fibres_path: str | Path,
                       heart_path: str | Path, junctions_path: str | Path | None, velocities: Mapping[str, float],
                       action_potential: Mapping[str, float], seed: int, device: str,
                       activation_out: str | Path, preview_out: str | Path) -> ActivationMap:
    """Eikonal activation of one (patient, scenario) on the myocardium, with its APD scales;
    writes the map (.npz, node order of fibres.npz) and an isochrone preview. Stimuli come
    from the patient's heart surface (``heart_path``) and Purkinje ``junctions_path`` (sinus
    and LBBB only), coupled to this mesh by position."""
    from ecgcohort.anatomy.outputs import read_surface

    started = time.perf_counter()
    spec = Scenario.from_config(scenario)
    fibres = load_fibres(fibres_path)
    heart = read_surface(heart_path)
    junctions = load_junctions(junctions_path) if junctions_path is not None else None
    rng = patient_rng(seed, patient, f"pacing:{map_name}") if spec.kind == "random_pacing" else None
    try:
        stimuli = scenario_sources(spec, fibres, heart, junctions, rng, velocities)
    except ScenarioError as error:
        raise ScenarioError(f"patient {patient}, scenario {map_name}: {error}") from error
    tau = activation_times(fibres.points_mm, fibres.tetrahedra, fibres.fibre_cell, float(velocities["fibre"]),
                           float(velocities["cross"]), stimuli.nodes, stimuli.node_times_ms, device=device)
    activation = ActivationMap(
        scenario=map_name, kind=spec.kind, activation_ms=tau,
        apd_scale=apd_scale(fibres, float(action_potential["apd_apex_to_base"]),
                            float(action_potential["apd_endo_to_epi"])),
        sites_mm=stimuli.positions_mm, site_times_ms=stimuli.times_ms)
    save_activation(activation, activation_out)
    log.info("patient %s, %s: %d stimuli on %d nodes, activation %.1f-%.1f ms (total %.1f ms) on %d nodes in %.1f s",
             patient, map_name, len(stimuli.times_ms), len(np.unique(stimuli.nodes)), tau.min(), tau.max(),
             activation.total_activation_ms, fibres.n_nodes, time.perf_counter() - started)
    plot_isochrones(fibres, tau, preview_out, title=f"{patient} {map_name}",
                    sites_mm=activation.sites_mm if spec.kind != "sinus" and spec.kind != "lbbb" else None)
    return activation
