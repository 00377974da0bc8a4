"""The electrophysiology stage's activation jobs: activation maps per (patient, scenario) from
the Purkinje junctions (grown by :mod:`ecgcohort.conduction.purkinje_jobs`), with their previews."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.anatomy.assembly import Surface
from ecgcohort.cohort.sampling import patient_rng
from ecgcohort.conduction.action_potential import ActionPotential, upstroke_spread_ms
from ecgcohort.conduction.eikonal import EikonalGrid, TreeCoupling
from ecgcohort.conduction.maps import ActivationMap, save_activation
from ecgcohort.conduction.purkinje import retrograde_firing_times
from ecgcohort.conduction.repolarisation import Repolarisation, repolarisation_scale
from ecgcohort.conduction.scenarios import Scenario, ScenarioError, pacing_sites
from ecgcohort.conduction.tensors import SubendocardialLayer, wall_depth
from ecgcohort.fibers.rule_based import MyocardialFibres, load_fibres
from ecgcohort.io import atomic_path
from ecgcohort.rendering import BACK_VIEW, FRONT_VIEW, offscreen_plotter

log = logging.getLogger(__name__)

def _myocardium_grid(fibres: MyocardialFibres):
    import pyvista

    cells = np.hstack([np.full((fibres.n_cells, 1), 4), fibres.tetrahedra]).ravel()
    return pyvista.UnstructuredGrid(cells, np.full(fibres.n_cells, pyvista.CellType.TETRA), fibres.points_mm)


def load_junctions(path: str | Path) -> dict[str, np.ndarray]:
    """The Purkinje junctions of :func:`grow_purkinje`: ``{lv,rv}_positions_mm`` (k, 3) and
    ``{lv,rv}_times_ms`` (k,) (tree junctions, then breakthroughs), and the trees for
    retrograde conduction: ``{lv,rv}_tree_nodes_mm``, ``{lv,rv}_tree_edges``,
    ``{lv,rv}_junction_tree_nodes`` (the tree node of each tree junction, in order) and
    ``purkinje_velocity_m_per_s``, with ``junction_delay_ms`` where the file has it."""
    keys = ("lv_positions_mm", "lv_times_ms", "rv_positions_mm", "rv_times_ms", "lv_tree_nodes_mm", "lv_tree_edges",
            "lv_junction_tree_nodes", "rv_tree_nodes_mm", "rv_tree_edges", "rv_junction_tree_nodes",
            "purkinje_velocity_m_per_s")
    with np.load(path) as data:
        missing = [key for key in keys if key not in data.files]
        if missing:
            raise ScenarioError(f"{path} lacks {missing}: Purkinje junctions of an older format, re-run grow_purkinje")
        return {key: data[key] for key in (*keys, "junction_delay_ms") if key in data.files}


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


def eikonal_grid(fibres: MyocardialFibres, refinements: int = 0, source_radius_edges: float = 0.0,
                 velocity_scale: np.ndarray | None = None) -> EikonalGrid:
    """The :class:`EikonalGrid` of the myocardium with its fibres and sheet normals per cell
    (orthotropic conduction when a velocity across the sheets is given) and optionally a factor
    on the velocities per cell (:func:`layer_velocity_scale`)."""
    return EikonalGrid.refined(fibres.points_mm, fibres.tetrahedra, fibres.cell_structure, refinements,
                               source_radius_edges, normals=fibres.normal_structure,
                               velocity_scale=velocity_scale)


def layer_velocity_scale(fibres: MyocardialFibres, layer: Mapping[str, Any] | None,
                         velocities: Mapping[str, float]) -> np.ndarray | None:
    """Per myocardial cell (n_cells, 3), the factors on the velocities of ``velocities`` (the
    ``electrophysiology.velocity_m_per_s`` section: along the fibres, across them, across the
    sheets) that the fast subendocardial ``layer`` (the
    ``electrophysiology.subendocardial_layer`` section, :class:`SubendocardialLayer`) gives; None
    without a layer. The same layer in every scenario: it is working myocardium
    (Myerburg et al. 1978), which a bundle-branch block leaves as it is."""
    spec = SubendocardialLayer.from_config(layer)
    if spec.transmural_depth == 0.0:
        return None
    depth, lv_side = wall_depth(fibres.points_mm, fibres.tetrahedra, fibres.coordinates["transmural"],
                                fibres.coordinates["ventricle"])
    return spec.velocity_scales(depth, lv_side, fibres.tetrahedra, conduction_velocities(velocities))


def conduction_velocities(velocities: Mapping[str, float]) -> tuple[float, float, float | None]:
    """(along the fibre, across it in the sheet, across the sheets or None) in m/s from the
    ``electrophysiology.velocity_m_per_s`` section; without ``normal`` the conduction is
    transversely isotropic."""
    normal = velocities.get("normal")
    return float(velocities["fibre"]), float(velocities["cross"]), None if normal is None else float(normal)


def scenario_sources(scenario: Scenario, grid: EikonalGrid, heart: Surface,
                     junctions: Mapping[str, np.ndarray] | None, rng: np.random.Generator | None,
                     velocities: Mapping[str, float]) -> MeshStimuli:
    """A scenario's stimuli (:func:`scenario_stimuli`) coupled to the eikonal grid (the
    myocardial mesh or its refinement; :func:`ecgcohort.conduction.coupling.couple_points`;
    velocities m/s). ``nodes`` index the grid."""
    positions, times = scenario_stimuli(scenario, heart, junctions, rng)
    coupled = grid.couple(positions)
    v_fibre, v_cross, v_normal = conduction_velocities(velocities)
    node_times = grid.stimulus_times(coupled, times, v_fibre, v_cross, v_normal)
    return MeshStimuli(positions, times, coupled.nodes, node_times)


def scenario_activation(scenario: Scenario, fibres: MyocardialFibres, heart: Surface,
                        junctions: Mapping[str, np.ndarray] | None, rng: np.random.Generator | None,
                        velocities: Mapping[str, float], device: str = "cpu",
                        grid: EikonalGrid | None = None) -> tuple[np.ndarray, MeshStimuli]:
    """(activation times per myocardial node (ms), the stimuli) of one scenario:
    :func:`scenario_grid_activation`'s times at the mesh's nodes."""
    grid = eikonal_grid(fibres) if grid is None else grid
    tau, stimuli = scenario_grid_activation(scenario, fibres, heart, junctions, rng, velocities, device, grid)
    return grid.restrict(tau), stimuli


def scenario_grid_activation(scenario: Scenario, fibres: MyocardialFibres, heart: Surface,
                             junctions: Mapping[str, np.ndarray] | None, rng: np.random.Generator | None,
                             velocities: Mapping[str, float], device: str = "cpu",
                             grid: EikonalGrid | None = None) -> tuple[np.ndarray, MeshStimuli]:
    """(activation times per grid node (ms), the stimuli) of one scenario, solved on
    ``grid`` (default: the myocardial mesh itself; :class:`EikonalGrid` of ``fibres`` refined
    ``electrophysiology.eikonal_refinements`` times). A map whose front engages Purkinje
    trees (:attr:`Scenario.retrograde_trees`: a paced map, or LBBB's blocked LV tree) has the
    trees conduct retrogradely: the front entering a tree at a junction (the map's time
    interpolated at its position) runs through the tree at the Purkinje velocity and fires its
    other junctions. The compiled CPU solver solves trees and myocardium as one fixed point
    (:func:`retrograde_coupling`); fim-python's GPU backend solves twice instead (the trees'
    firing times from the first solve, :func:`ecgcohort.conduction.purkinje.retrograde_firing_times`,
    as sources of the second)."""
    if grid is None:
        grid = eikonal_grid(fibres)
    if grid.mesh_nodes != fibres.n_nodes:
        raise ValueError(f"the eikonal grid refines a mesh of {grid.mesh_nodes} nodes, the myocardium has "
                         f"{fibres.n_nodes}")
    v_fibre, v_cross, v_normal = conduction_velocities(velocities)
    stimuli = scenario_sources(scenario, grid, heart, junctions, rng, velocities)
    if scenario.retrograde_trees and junctions is None:
        raise ScenarioError(f"scenario '{scenario.name}' engages the Purkinje trees: it needs the junctions")
    if scenario.retrograde_trees and grid.solver(device) == "cpu":
        tau = grid.activation_times(v_fibre, v_cross, stimuli.nodes, stimuli.node_times_ms, device=device,
                                    v_normal=v_normal,
                                    trees=retrograde_coupling(scenario.retrograde_trees, grid, junctions, velocities))
        return tau, stimuli
    tau = grid.activation_times(v_fibre, v_cross, stimuli.nodes, stimuli.node_times_ms, device=device,
                                v_normal=v_normal)
    if not scenario.retrograde_trees:
        return tau, stimuli
    nodes, node_times = [stimuli.nodes], [stimuli.node_times_ms]
    for tree in scenario.retrograde_trees:
        tree_junctions = junctions[f"{tree}_junction_tree_nodes"]
        coupled = grid.couple(junctions[f"{tree}_positions_mm"][:len(tree_junctions)])
        firing = retrograde_firing_times(junctions[f"{tree}_tree_nodes_mm"], junctions[f"{tree}_tree_edges"],
                                         tree_junctions, coupled.interpolate(tau),
                                         float(junctions["purkinje_velocity_m_per_s"]))
        fires = np.isfinite(firing)[coupled.source]
        nodes.append(coupled.nodes[fires])
        node_times.append(grid.stimulus_times(coupled, np.where(np.isfinite(firing), firing, 0.0)
                                              + junction_delay_ms(junctions), v_fibre, v_cross, v_normal)[fires])
    tau = grid.activation_times(v_fibre, v_cross, np.concatenate(nodes), np.concatenate(node_times), device=device,
                                v_normal=v_normal)
    return tau, stimuli


def junction_delay_ms(junctions: Mapping[str, np.ndarray]) -> float:
    """The Purkinje-muscle junction delay (ms) the junctions were grown with (0 for files
    written before ``electrophysiology.purkinje.junction_delay_ms`` existed)."""
    return float(junctions["junction_delay_ms"]) if "junction_delay_ms" in junctions else 0.0


def retrograde_coupling(trees: Sequence[str], grid: EikonalGrid, junctions: Mapping[str, np.ndarray],
                        velocities: Mapping[str, float]) -> TreeCoupling:
    """The Purkinje ``trees`` ('lv', 'rv') of :func:`load_junctions` coupled to ``grid`` for
    retrograde conduction in the solve (:class:`ecgcohort.conduction.eikonal.TreeCoupling`):
    edges at the junctions' Purkinje velocity (m/s = mm/ms), each tree junction entered at the
    grid times interpolated at its position and firing its coupled nodes (its element's
    corners and its ball) at the straight-front travel times of :meth:`EikonalGrid.stimulus_times`."""
    v_fibre, v_cross, v_normal = conduction_velocities(velocities)
    velocity = float(junctions["purkinje_velocity_m_per_s"])
    rows, columns, edge_ms, corners, weights, tree_nodes, ball_counts, ball_nodes, ball_ms = ([] for _ in range(9))
    first_node = 0
    for tree in trees:
        tree_points = np.asarray(junctions[f"{tree}_tree_nodes_mm"], dtype=float)
        edges = np.asarray(junctions[f"{tree}_tree_edges"], dtype=np.int64)
        lengths = np.linalg.norm(tree_points[edges[:, 0]] - tree_points[edges[:, 1]], axis=1)
        rows += [edges[:, 0] + first_node, edges[:, 1] + first_node]
        columns += [edges[:, 1] + first_node, edges[:, 0] + first_node]
        edge_ms += [lengths / velocity] * 2
        tree_junctions = np.asarray(junctions[f"{tree}_junction_tree_nodes"], dtype=np.int64)
        coupled = grid.couple(junctions[f"{tree}_positions_mm"][:len(tree_junctions)])
        # couple_points lists each junction's four element corners first (its barycentric
        # weights), then its ball's nodes (weight 0)
        corner_rows = slice(0, 4 * len(tree_junctions))
        corners.append(coupled.nodes[corner_rows].reshape(-1, 4))
        weights.append(coupled.weights[corner_rows].reshape(-1, 4))
        tree_nodes.append(tree_junctions + first_node)
        offsets_ms = grid.stimulus_times(coupled, np.zeros(len(tree_junctions)), v_fibre, v_cross, v_normal)
        by_junction = np.argsort(coupled.source, kind="stable")
        ball_counts.append(np.bincount(coupled.source, minlength=len(tree_junctions)))
        ball_nodes.append(coupled.nodes[by_junction])
        ball_ms.append(offsets_ms[by_junction] + junction_delay_ms(junctions))
        first_node += len(tree_points)
    rows, columns, edge_ms = np.concatenate(rows), np.concatenate(columns), np.concatenate(edge_ms)
    order = np.lexsort((columns, rows))
    return TreeCoupling(
        tree_offsets=np.searchsorted(rows[order], np.arange(first_node + 1)), tree_neighbours=columns[order],
        tree_edge_ms=edge_ms[order], junction_nodes=np.concatenate(corners), junction_weights=np.concatenate(weights),
        junction_tree_node=np.concatenate(tree_nodes),
        ball_offsets=np.concatenate([[0], np.cumsum(np.concatenate(ball_counts))]),
        ball_nodes=np.concatenate(ball_nodes), ball_ms=np.concatenate(ball_ms))


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


def plot_activation(fibres: MyocardialFibres, activation: ActivationMap, path: str | Path, patient: str) -> None:
    """A map's isochrone preview (:func:`plot_isochrones`) with its pacing sites marked (PNG)."""
    plot_isochrones(fibres, activation.activation_ms, path, title=f"{patient} {activation.scenario}",
                    sites_mm=activation.sites_mm if activation.kind not in ("sinus", "lbbb") else None)


@dataclass(frozen=True)
class MapSettings:
    """What an activation map is computed with besides the patient's files: the
    ``electrophysiology`` section's ``velocity_m_per_s`` (conduction velocities, m/s),
    ``action_potential`` (cycle length ms, APD gradients), ``device``, ``eikonal_refinements``
    and ``source_radius_edges`` (edge lengths), ``subendocardial_layer`` (its section; None: no
    fast subendocardial layer), the cohort's ``seed`` (random pacing sites) and
    the folder of the cached action-potential template."""

    velocities: Mapping[str, float]
    action_potential: Mapping[str, Any]
    seed: int
    device: str
    template_cache_dir: str | Path
    eikonal_refinements: int = 0
    source_radius_edges: float = 0.0
    subendocardial_layer: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], template_cache_dir: str | Path | None,
                    device: str = "cpu") -> MapSettings:
        """The settings of a whole workflow config (its ``electrophysiology`` section and the
        cohort's seed), solved on ``device`` (default the CPU, whatever the config says)."""
        physiology = config["electrophysiology"]
        return cls(velocities=physiology["velocity_m_per_s"], action_potential=physiology["action_potential"],
                   seed=config["cohort"]["seed"], device=device, template_cache_dir=template_cache_dir,
                   eikonal_refinements=physiology["eikonal_refinements"],
                   source_radius_edges=physiology["source_radius_edges"],
                   subendocardial_layer=physiology.get("subendocardial_layer"))


@dataclass
class PatientConduction:
    """A patient's inputs to its activation maps, read once and shared by them: fibres, heart
    surface, Purkinje junctions, the action-potential template and the eikonal grid."""

    fibres: MyocardialFibres
    heart: Surface
    junctions: dict[str, np.ndarray]
    template: ActionPotential
    grid: EikonalGrid

    @classmethod
    def read(cls, fibres_path: str | Path, heart_path: str | Path, junctions_path: str | Path,
             settings: MapSettings) -> PatientConduction:
        from ecgcohort.anatomy.outputs import read_surface
        from ecgcohort.conduction.action_potential import action_potential_template

        fibres = load_fibres(fibres_path)
        template = action_potential_template(float(settings.action_potential["cycle_length_ms"]),
                                             cache_dir=settings.template_cache_dir)
        return cls(fibres, read_surface(heart_path), load_junctions(junctions_path), template,
                   eikonal_grid(fibres, settings.eikonal_refinements, settings.source_radius_edges,
                                layer_velocity_scale(fibres, settings.subendocardial_layer, settings.velocities)))


@dataclass(frozen=True)
class SolvedMap:
    """A scenario's eikonal solution before its repolarisation: the scenario, the activation
    times per myocardial node (ms), its stimuli, when its solve started (perf_counter s) and the
    times of every node of the grid it was solved on (ms)."""

    name: str
    scenario: Scenario
    activation_ms: np.ndarray
    stimuli: MeshStimuli
    started: float
    grid_activation_ms: np.ndarray


def solve_map(patient: str, map_name: str, entry: Mapping[str, Any], conduction: PatientConduction,
              settings: MapSettings) -> SolvedMap:
    """The eikonal part of :func:`activation_map`: the activation times of one scenario on
    ``conduction.grid`` (what the solver threads of :func:`compute_activations` run)."""
    started = time.perf_counter()
    spec = Scenario.from_config(entry)
    rng = patient_rng(settings.seed, patient, f"pacing:{map_name}") if spec.kind == "random_pacing" else None
    try:
        tau, stimuli = scenario_grid_activation(spec, conduction.fibres, conduction.heart, conduction.junctions,
                                                rng, settings.velocities, settings.device, conduction.grid)
    except ScenarioError as error:
        raise ScenarioError(f"patient {patient}, scenario {map_name}: {error}") from error
    return SolvedMap(map_name, spec, conduction.grid.restrict(tau), stimuli, started, tau)


def repolarisation_fields(fibres, activation_ms: np.ndarray, template, action_potential: Mapping[str, Any]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The per-node APD scale (dimensionless) and upstroke spread (ms) of activation times
    ``activation_ms`` (ms) under the config's ``electrophysiology.action_potential`` section."""
    spread = float(action_potential.get("upstroke_spread", 0.0))
    return (repolarisation_scale(fibres, activation_ms, Repolarisation.from_config(action_potential), template),
            spread * upstroke_spread_ms(fibres.tetrahedra, activation_ms))


def finish_map(patient: str, solved: SolvedMap, conduction: PatientConduction, settings: MapSettings
               ) -> ActivationMap:
    """The activation map of a solved scenario (:func:`solve_map`): its times with their APD
    scales (intrinsic gradients and the repolarisation diffusion of
    :mod:`ecgcohort.conduction.repolarisation`) and upstroke spreads."""
    tau = solved.activation_ms
    apd_scale, upstroke_ms = repolarisation_fields(conduction.fibres, tau, conduction.template,
                                                   settings.action_potential)
    grid = conduction.grid
    # a uniformly refined grid, whose nodes the ECG job rebuilds (ecgcohort.ecg.source_grid)
    uniform = grid.refinements > 0 and grid.refine_above_ms is None
    refined = solved.grid_activation_ms[grid.mesh_nodes:] if uniform else None
    activation = ActivationMap(
        scenario=solved.name, kind=solved.scenario.kind, activation_ms=tau, apd_scale=apd_scale,
        sites_mm=solved.stimuli.positions_mm, site_times_ms=solved.stimuli.times_ms, upstroke_ms=upstroke_ms,
        refined_activation_ms=refined, refinements=grid.refinements if refined is not None else 0,
        upstroke_spread=float(settings.action_potential.get("upstroke_spread", 0.0)))
    log.info("patient %s, %s: %d stimuli, activation %.1f-%.1f ms (total %.1f ms) on %d nodes (solved on %d, "
             "%d refinements) in %.1f s", patient, solved.name, len(solved.stimuli.times_ms), tau.min(), tau.max(),
             activation.total_activation_ms, conduction.fibres.n_nodes, len(conduction.grid.points_mm),
             conduction.grid.refinements, time.perf_counter() - solved.started)
    return activation


def activation_map(patient: str, map_name: str, entry: Mapping[str, Any], conduction: PatientConduction,
                   settings: MapSettings) -> ActivationMap:
    """One activation map of a patient (``entry``: the scenario's config entry): eikonal
    activation times (ms per myocardial node) on ``conduction.grid`` (:func:`solve_map`) with
    their APD scales (:func:`finish_map`); a random pacing map draws its sites from
    (``settings.seed``, patient, map name), so it is the same map whichever job computes it."""
    return finish_map(patient, solve_map(patient, map_name, entry, conduction, settings), conduction, settings)


def compute_activations(patient: str, scenarios: Mapping[str, Mapping[str, Any]], fibres_path: str | Path,
                        heart_path: str | Path, junctions_path: str | Path, settings: MapSettings,
                        outputs: Mapping[str, tuple[str | Path, str | Path | None]], threads: int = 1
                        ) -> dict[str, ActivationMap]:
    """Every activation map of one patient (``scenarios``: map name -> scenario entry) in one
    job, sharing the patient's inputs and eikonal grid (:func:`activation_map`; solved on the
    myocardium refined ``settings.eikonal_refinements`` times, point sources started from balls
    of ``settings.source_radius_edges`` edge lengths; :class:`ecgcohort.conduction.eikonal.EikonalGrid`);
    writes each map (.npz, node order of fibres.npz) and its isochrone preview (``outputs``: map
    name -> (npz, png or None: not drawn; the workflow draws them in ``draw_patient``)). Stimuli come from the patient's heart surface (``heart_path``) and
    Purkinje ``junctions_path``, coupled to this mesh by position. The maps are solved on
    ``threads`` threads where the compiled CPU solver runs (it releases the GIL; each map is the
    same whatever the count; fim-python's GPU backend one at a time) while this thread writes
    and draws the finished ones."""
    from threadpoolctl import threadpool_limits

    # the job's threads are the solver threads; a multi-threaded BLAS in this thread's
    # finishing (the repolarisation CG) would spin against them for the same cores
    with threadpool_limits(limits=1, user_api="blas"):
        return _compute_activations(patient, scenarios, fibres_path, heart_path, junctions_path, settings, outputs,
                                    threads)


def _compute_activations(patient: str, scenarios: Mapping[str, Mapping[str, Any]], fibres_path: str | Path,
                         heart_path: str | Path, junctions_path: str | Path, settings: MapSettings,
                         outputs: Mapping[str, tuple[str | Path, str | Path | None]], threads: int
                         ) -> dict[str, ActivationMap]:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    conduction = PatientConduction.read(fibres_path, heart_path, junctions_path, settings)
    solver = conduction.grid.prepare(*conduction_velocities(settings.velocities), device=settings.device,
                                     threads=threads)
    # fim-python's cupy backend (device gpu) solves one map at a time
    workers = max(1, int(threads)) if solver == "cpu" else 1
    maps = {}
    # the maps whose front enters Purkinje trees (longer solves) start first, so the last map to
    # finish is a short one; each map is the same in any order. The threads only solve; this
    # thread finishes (repolarisation), writes and draws the solved maps once fewer solves run
    # than there are threads: finishing beside every solver thread would slow them all (five
    # maps on two threads leave one thread idle for the last map, long enough to finish the
    # other four; 1.5 s of the job at the default).
    longest_first = sorted(scenarios, key=lambda name: -len(Scenario.from_config(scenarios[name]).retrograde_trees))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="activation") as pool:
        futures = [pool.submit(solve_map, patient, map_name, scenarios[map_name], conduction, settings)
                   for map_name in longest_first]
        solved = []
        try:
            for future in as_completed(futures):
                solved.append(future.result())
                if sum(not other.done() for other in futures) >= workers:
                    continue
                for solution in solved:
                    activation = finish_map(patient, solution, conduction, settings)
                    activation_out, preview_out = outputs[activation.scenario]
                    save_activation(activation, activation_out)
                    if preview_out is not None:
                        plot_activation(conduction.fibres, activation, preview_out, patient)
                    maps[activation.scenario] = activation
                solved.clear()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return {map_name: maps[map_name] for map_name in scenarios}
