"""One patient at one resolution, end to end: the patient's surfaces resampled and meshed,
fibres, one activation scenario, the lead fields of the 12-lead electrodes, ∇Z at fixed
evaluation points and the ECG — the same library calls as the workflow's per-patient stages,
so what converges here is what the cohort is made of.

Both ∇Z forms are kept: the P1 gradient (piecewise constant) and the recovered one
(:meth:`ecgcohort.leadfield.LeadFieldSolver.recovered_gradients`), each with the lead matrix
it gives (P1: L = −B Z, the Galerkin form; recovered: L[j, a] = −∫ G_i ∇φ_a · R∇Z_j), so
their errors can be compared at the same cost. The ECG carries V_m where the workflow's does
(``ecg.vm_nodes``: the eikonal grid's nodes, :mod:`ecgcohort.ecg.source_grid`); the level keeps
the grid's other times (``refined_activation_ms``) and its refinements (``vm_refinements``) so
that the summary can move V_m between levels on those nodes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

log = logging.getLogger(__name__)

GRADIENT_FORMS = ("p1", "recovered")


@dataclass(frozen=True)
class PatientFiles:
    """What defines the patient (none of it depends on the mesh): its surfaces (``.vtp``), the
    shape models they are instances of (``.npz``), its electrodes (CSV), Purkinje junctions
    (``.npz``), the evaluation points (``.npz`` of :func:`write_evaluation_points`) and its
    ``anatomy.json`` (the heart's size factor that scales every level's heart element size where
    ``meshing.heart_element_size_follows_heart``; None: the levels' sizes as given)."""

    heart: Path
    torso: Path
    heart_model: Path
    torso_model: Path
    electrodes: Path
    junctions: Path
    points: Path
    anatomy: Path | None = None


@dataclass(frozen=True)
class Physics:
    """The workflow's settings a level is simulated with (its config sections): ``meshing``,
    ``fibres`` angles, ``velocities`` (m/s), ``action_potential``, ``conductivities`` (S/m),
    the ``scenario`` entry, the ECG ``duration_ms`` and ``dt_ms``, the ``seed``, the MUMPS
    ``low_rank_tolerance``, the action-potential template's cache folder and the eikonal grid's
    refinements."""

    meshing: Mapping[str, Any]
    fibres: Mapping[str, Any]
    velocities: Mapping[str, float]
    action_potential: Mapping[str, float]
    conductivities: Mapping[str, float]
    scenario: Mapping[str, Any]
    duration_ms: float
    dt_ms: float
    seed: int
    low_rank_tolerance: float
    template_cache: Path
    #: the eikonal grid's uniform refinements (:class:`ecgcohort.conduction.eikonal.EikonalGrid`)
    eikonal_refinements: int = 0
    #: point sources start from balls of this many edge lengths (:func:`ecgcohort.conduction.coupling.couple_points`)
    source_radius_edges: float = 0.0
    #: the fast subendocardial layer's section (:class:`ecgcohort.conduction.tensors.SubendocardialLayer`; None: none)
    subendocardial_layer: Mapping[str, Any] | None = None
    #: where the ECG carries V_m (``ecg.vm_nodes``: :func:`ecgcohort.ecg.forward.source_potentials`)
    vm_nodes: str = "eikonal_grid"


def evaluation_points(heart, torso, rng: np.random.Generator, myocardium_count: int, torso_count: int,
                      min_depth_mm: float, torso_shell_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed points (mm) where ∇Z is compared across levels, from the patient's own surfaces
    (``anatomy.Surface``): ``myocardium_count`` uniform in the myocardium at least
    ``min_depth_mm`` inside it, and ``torso_count`` uniform in the torso within
    ``torso_shell_mm`` of the heart, at least ``min_depth_mm`` from it and 15 mm inside the
    body surface (so inside every level's mesh). Returns (points (P, 3) mm, region (P,):
    1 myocardium, 2 torso)."""
    from ecgcohort.geometry import signed_distance, winding_numbers

    low, high = heart.points.min(axis=0) - torso_shell_mm, heart.points.max(axis=0) + torso_shell_mm
    kept: dict[int, list[np.ndarray]] = {1: [], 2: []}
    wanted = {1: myocardium_count, 2: torso_count}
    draw, rounds, block = 20000, 200, 8
    # rounds of `draw` candidates, classified `block` rounds at a time: one closest-point tree per
    # block instead of per round, the same candidates in the same order (the generator fills an
    # array in sequence) and the same stopping round, so the same points

    def have(region: int) -> bool:
        return sum(len(part) for part in kept[region]) >= wanted[region]

    def enough() -> bool:
        return all(have(region) for region in kept)

    for first in range(0, rounds, block):
        if enough():
            break
        count = min(block, rounds - first)
        candidates = low + rng.random((count * draw, 3)) * (high - low)
        # the anatomy stage checked both surfaces closed and consistently oriented. The heart's
        # distances only where a region still wants points: inside the heart for the myocardium
        # (the winding number's side is the distance's sign wherever |distance| reaches
        # min_depth_mm), outside it for the shell while the shell wants points (the first block
        # fills it). A region with enough points only has its surplus cut: the points are the
        # same as with every distance (the default's three patients: 8.0-8.5 -> 4.0-4.5 s).
        inside_heart = winding_numbers(heart.points, heart.faces, candidates) > 0.5
        needed = np.flatnonzero(inside_heart if have(2) else np.ones(len(candidates), dtype=bool))
        heart_distance = np.full(len(candidates), np.nan)  # < 0 inside; NaN: not asked
        heart_distance[needed] = signed_distance(heart.points, heart.faces, candidates[needed], closed_surface=True)
        myocardium = inside_heart & (heart_distance <= -min_depth_mm)
        shell = np.flatnonzero(~inside_heart & (heart_distance >= min_depth_mm) & (heart_distance <= torso_shell_mm))
        # the body tests only where they can matter: they cost more than the heart's
        shell = shell[winding_numbers(torso.points, torso.faces, candidates[shell]) > 0.5]
        shell = shell[signed_distance(torso.points, torso.faces, candidates[shell], closed_surface=True) <= -15.0]
        in_torso = np.zeros(len(candidates), dtype=bool)
        in_torso[shell] = True
        for start in range(0, count * draw, draw):
            if enough():
                break
            rows = slice(start, start + draw)
            kept[1].append(candidates[rows][myocardium[rows]])
            kept[2].append(candidates[rows][in_torso[rows]])
    points = [np.concatenate(kept[region])[:wanted[region]] for region in (1, 2)]
    if any(len(p) < wanted[region] for p, region in zip(points, (1, 2))):
        raise ValueError(f"only {len(points[0])} myocardial and {len(points[1])} torso evaluation points found")
    return np.concatenate(points), np.repeat([1, 2], [len(points[0]), len(points[1])]).astype(np.int32)


def write_evaluation_points(patient: str, heart: str | Path, torso: str | Path, seed: int,
                            settings: Mapping[str, Any], out_npz: str | Path) -> None:
    """The patient's evaluation points (:func:`evaluation_points`, randomness from (seed,
    patient)) as ``.npz``: ``points_mm``, ``region``."""
    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.io import atomic_path

    points, region = evaluation_points(read_surface(heart), read_surface(torso),
                                       patient_rng(seed, patient, "convergence-points"),
                                       int(settings["myocardium_points"]), int(settings["torso_points"]),
                                       float(settings["min_depth_mm"]), float(settings["torso_shell_mm"]))
    with atomic_path(out_npz) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, points_mm=points, region=region)


def simulate_level(patient: str, heart_mm: float, torso_mm: float, files: PatientFiles, physics: Physics,
                   workdir: str | Path, threads: int = 1) -> dict[str, np.ndarray]:
    """The patient at element sizes ``heart_mm`` / ``torso_mm`` (the heart's for the mean heart,
    scaled to the patient's as the workflow's mesh is:
    :func:`~ecgcohort.meshing.jobs.patient_heart_element_size_mm`): arrays to compare with other
    levels (see the module notes), timings in ``timings_json``. ``workdir`` holds the mesh."""
    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.conduction.action_potential import action_potential_template, upstroke_spread_ms
    from ecgcohort.conduction.jobs import eikonal_grid, layer_velocity_scale, load_junctions, scenario_grid_activation
    from ecgcohort.conduction.maps import ActivationMap
    from ecgcohort.conduction.repolarisation import Repolarisation, repolarisation_scale
    from ecgcohort.conduction.scenarios import Scenario
    from ecgcohort.ecg.forward import read_electrode_table, source_potentials, time_grid_ms
    from ecgcohort.ecg.source_grid import many_electrode_potentials
    from ecgcohort.ecg.leads import LEAD_ELECTRODES, standard_leads
    from ecgcohort.fibers.rule_based import FibreAngles, myocardial_fibres
    from ecgcohort.leadfield.jobs import electrode_tolerance_mm
    from ecgcohort.leadfield.matrix import lead_matrix
    from ecgcohort.leadfield.solver import MM, LeadFieldSolver, lead_matrix_from_potentials
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors
    from ecgcohort.meshing.jobs import MeshSizes, mesh_patient_at, patient_heart_element_size_mm

    timings: dict[str, float] = {}
    start = time.perf_counter()
    mesh_path = Path(workdir) / "mesh.msh"
    patient_heart_mm = patient_heart_element_size_mm(heart_mm, files.anatomy, physics.meshing)
    report, surfaces = mesh_patient_at(patient, files.heart, files.torso, files.heart_model, files.torso_model,
                                       MeshSizes(patient_heart_mm, torso_mm), physics.meshing, mesh_path)
    timings["mesh_s"] = time.perf_counter() - start

    start = time.perf_counter()
    angles = physics.fibres
    fibres = myocardial_fibres(mesh_path, FibreAngles(alpha_endo=angles["alpha_endo_deg"],
                                                      alpha_epi=angles["alpha_epi_deg"],
                                                      beta_endo=angles["beta_endo_deg"], beta_epi=angles["beta_epi_deg"]))
    timings["fibres_s"] = time.perf_counter() - start

    start = time.perf_counter()
    spec = Scenario.from_config(physics.scenario)
    rng = patient_rng(physics.seed, patient, f"pacing:{spec.name}") if spec.kind == "random_pacing" else None
    grid = eikonal_grid(fibres, physics.eikonal_refinements, physics.source_radius_edges,
                        layer_velocity_scale(fibres, physics.subendocardial_layer, physics.velocities))
    tau_grid, stimuli = scenario_grid_activation(spec, fibres, read_surface(files.heart),
                                                 load_junctions(files.junctions), rng, physics.velocities, grid=grid)
    tau = grid.restrict(tau_grid)
    refined = tau_grid[grid.mesh_nodes:] if grid.refinements > 0 and physics.vm_nodes == "eikonal_grid" else None
    vm_refinements = grid.refinements if refined is not None else 0
    eikonal = {"eikonal_refinements": grid.refinements, "source_radius_edges": grid.source_radius_edges,
               "eikonal_nodes": int(len(grid.points_mm)),
               "eikonal_tetrahedra": int(len(grid.tetrahedra))}
    del grid  # a refined reference level's grid is millions of cells: free it before the lead fields
    template = action_potential_template(float(physics.action_potential["cycle_length_ms"]),
                                         cache_dir=physics.template_cache)
    scale = repolarisation_scale(fibres, tau, Repolarisation.from_config(physics.action_potential), template)
    timings["activation_s"] = time.perf_counter() - start

    start = time.perf_counter()
    sigma = Conductivities.from_config(physics.conductivities)
    table = read_electrode_table(files.electrodes)
    index = [table.names.index(name) for name in LEAD_ELECTRODES]
    electrodes_m = table.positions_mm[index] * MM
    solver = LeadFieldSolver(mesh_path, sigma, fibres.cell_structure, fibres.parent_cells, threads=threads,
                             low_rank_tolerance=physics.low_rank_tolerance,
                             max_electrode_offset_mm=electrode_tolerance_mm(torso_mm))
    z = solver.solve(electrodes_m, list(LEAD_ELECTRODES))
    timings["lead_field_solve_s"] = time.perf_counter() - start
    with np.load(files.points) as data:
        points_m, region = data["points_mm"] * MM, data["region"]
    cells = solver.locate(points_m, outside="mark")
    inside = cells >= 0
    gradients = {form: np.full((len(LEAD_ELECTRODES), len(points_m), 3), np.nan) for form in GRADIENT_FORMS}
    start = time.perf_counter()
    gradients["p1"][:, inside] = solver.cell_gradients(z, cells[inside])
    timings["gradient_p1_s"] = time.perf_counter() - start
    start = time.perf_counter()
    gradients["recovered"][:, inside] = solver.recovered_gradients(z, cells[inside], points_m[inside])
    timings["gradient_recovered_s"] = time.perf_counter() - start

    nodes_m = fibres.points_mm * MM
    intracellular = intracellular_tensors(fibres.cell_structure, sigma)
    start = time.perf_counter()
    matrices = {"p1": lead_matrix_from_potentials(nodes_m, fibres.tetrahedra, intracellular, z[:, fibres.parent_nodes])}
    timings["lead_matrix_p1_s"] = time.perf_counter() - start
    start = time.perf_counter()
    matrices["recovered"] = lead_matrix(nodes_m, fibres.tetrahedra, intracellular,
                                        solver.recovered_gradients(z, fibres.parent_cells))
    timings["lead_matrix_recovered_s"] = time.perf_counter() - start

    start = time.perf_counter()
    times_ms = time_grid_ms(physics.duration_ms, physics.dt_ms)
    spread = float(physics.action_potential.get("upstroke_spread", 0.0))
    activation = ActivationMap(spec.name, spec.kind, tau, scale, stimuli.positions_mm, stimuli.times_ms,
                               spread * upstroke_spread_ms(fibres.tetrahedra, tau), refined_activation_ms=refined,
                               refinements=vm_refinements, upstroke_spread=spread)
    matrix, sources = source_potentials(np.vstack([matrices[form] for form in GRADIENT_FORMS]),
                                        {spec.name: activation}, fibres, intracellular, physics.vm_nodes)
    potentials = many_electrode_potentials(matrix, list(sources.values()), times_ms, template)[0]
    leads = {form: standard_leads(potentials[k * 9:(k + 1) * 9], LEAD_ELECTRODES)
             for k, form in enumerate(GRADIENT_FORMS)}
    timings["ecg_s"] = time.perf_counter() - start

    timings.update({key: getattr(solver.stats, key) for key in ("assembly_s", "factorisation_s", "solve_s")})
    sizes = {"heart_mm": heart_mm, "patient_heart_mm": patient_heart_mm, "torso_mm": torso_mm,
             "nodes": report.nodes, "tetrahedra": report.tetrahedra,
             "myocardial_nodes": fibres.n_nodes, "myocardial_tetrahedra": int(len(fibres.tetrahedra)),
             **eikonal,
             "myocardial_volume_ml": report.volume_per_region_mm3["myocardium"] / 1e3,
             "torso_volume_ml": report.volume_per_region_mm3["torso"] / 1e3, "surfaces": surfaces,
             "junction_times_ms": [float(t) for t in np.sort(stimuli.times_ms)[:3]],
             "conductivities": dict(physics.conductivities)}
    log.info("patient %s at %g/%g mm: %d nodes (%d myocardial), activation %.1f ms, %s", patient, heart_mm, torso_mm,
             report.nodes, fibres.n_nodes, float(np.ptp(tau)), json.dumps({k: round(v, 2) for k, v in timings.items()}))
    return {"myocardial_points_mm": fibres.points_mm, "myocardial_tetrahedra": fibres.tetrahedra,
            "structure_cell": fibres.cell_structure,
            "normal_structure_cell": fibres.normal_structure,
            "lead_field_ohm": z[:, fibres.parent_nodes], "activation_ms": tau, "apd_scale": scale,
            # V_m's grid: its refinements of the myocardium (0: the mesh's nodes) and its other nodes' times
            "vm_refinements": np.array(activation.refinements),
            "refined_activation_ms": np.zeros(0) if refined is None else refined,
            "upstroke_spread": np.array(spread),
            "stimulus_positions_mm": stimuli.positions_mm,
            "stimulus_times_ms": stimuli.times_ms, "points_region": region,
            **{f"lead_matrix_{form}": matrices[form] for form in GRADIENT_FORMS},
            **{f"grad_points_{form}": gradients[form].astype(np.float32) for form in GRADIENT_FORMS},
            **{f"leads_{form}_v": leads[form] for form in GRADIENT_FORMS},
            "times_ms": times_ms, "sizes_json": np.array(json.dumps(sizes)), "timings_json": np.array(json.dumps(timings))}
