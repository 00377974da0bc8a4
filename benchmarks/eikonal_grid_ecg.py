"""V_m carried on the eikonal grid instead of the mesh nodes, against mesh convergence (prints
figures; not a test).

    .venv/bin/python benchmarks/eikonal_grid_ecg.py results 0 1 2 [--config config/config.yaml ...] \
        [--patient train-0000] [--template-cache results/cache/action_potential]

Takes a run's convergence levels (``results/convergence/{patient}/level-*.npz``, the last the
reference) and the patient's heart surface and Purkinje junctions, and for each level given
re-solves the sinus activation on its eikonal grid (the myocardium refined once, the configured
source balls: the pipeline's own times at the mesh nodes) and builds the sinus 12-lead ECG with
V_m on the grid's nodes: the grid's own activation times, the level's APD scales interpolated,
the upstroke spread of the grid's cells, and the level's P1 lead fields interpolated onto the
grid (each child cell has its parent's ∇Z). Prints, against the reference's ECG (recovered lead
matrix), the level's own error with V_m on the mesh (P1 and recovered lead matrices), the error
with V_m on the grid, the lead-field share on the grid (the reference's activation and APD
interpolated onto the grid), and the times.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ecgcohort.anatomy.outputs import read_surface
from ecgcohort.conduction.action_potential import action_potential_template
from ecgcohort.conduction.eikonal import EikonalGrid
from ecgcohort.conduction.jobs import conduction_velocities, load_junctions, scenario_sources
from ecgcohort.conduction.scenarios import Scenario
from ecgcohort.config import load_config_files
from ecgcohort.convergence.summary import _ecg, interpolate_nodal, load_level, relative_errors
from ecgcohort.leadfield.solver import lead_matrix_from_potentials
from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("levels", type=int, nargs="+", help="level indices to judge")
    parser.add_argument("--patient", default="train-0000")
    parser.add_argument("--config", nargs="+", default=[str(ROOT / "config/config.yaml")])
    parser.add_argument("--template-cache", default=str(ROOT / "results/cache/action_potential"))
    args = parser.parse_args()

    config = load_config_files(args.config, ROOT / "workflow/schemas/config.schema.yaml")
    section = config["electrophysiology"]
    velocities = section["velocity_m_per_s"]
    sigma = Conductivities.from_config(config["leadfield"]["conductivity_s_per_m"])
    patient_dir = args.results / "patients" / args.patient
    heart = read_surface(patient_dir / "anatomy/heart.vtp")
    junctions = load_junctions(patient_dir / "purkinje/junctions.npz")
    template = action_potential_template(float(section["action_potential"]["cycle_length_ms"]),
                                         cache_dir=args.template_cache)
    level_files = sorted((args.results / "convergence" / args.patient).glob("level-*.npz"),
                         key=lambda path: int(path.stem.split("-")[1]))
    reference = load_level(args.patient, level_files[-1]).arrays
    truth, times = reference["leads_recovered_v"], reference["times_ms"]
    spread = float(reference["upstroke_spread"])
    sinus = Scenario.from_config(next(entry for entry in section["scenarios"] if entry["name"] == "sinus"))
    for index in args.levels:
        level = load_level(args.patient, level_files[index])
        arrays = level.arrays
        started = time.perf_counter()
        grid = EikonalGrid.refined(arrays["myocardial_points_mm"], arrays["myocardial_tetrahedra"],
                                   arrays["structure_cell"], 1, float(section["source_radius_edges"]),
                                   normals=arrays.get("normal_structure_cell"))
        stimuli = scenario_sources(sinus, grid, heart, junctions, None, velocities)
        v_fibre, v_cross, v_normal = conduction_velocities(velocities)
        tau = grid.activation_times(v_fibre, v_cross, stimuli.nodes, stimuli.node_times_ms, device="cpu",
                                    v_normal=v_normal)
        eikonal_s = time.perf_counter() - started
        deviation = np.abs(grid.restrict(tau) - arrays["activation_ms"]).max()
        started = time.perf_counter()
        lead_fields = interpolate_nodal(arrays["myocardial_points_mm"], arrays["myocardial_tetrahedra"],
                                        arrays["lead_field_ohm"].T, grid.points_mm).T
        apd = interpolate_nodal(arrays["myocardial_points_mm"], arrays["myocardial_tetrahedra"], arrays["apd_scale"],
                                grid.points_mm)
        matrix = lead_matrix_from_potentials(grid.points_mm * 1e-3, grid.tetrahedra,
                                             intracellular_tensors(grid.structure, sigma), lead_fields)
        on_grid = _ecg(matrix, tau, apd, times, template, grid.tetrahedra, spread)
        ecg_s = time.perf_counter() - started
        onto = interpolate_nodal(reference["myocardial_points_mm"], reference["myocardial_tetrahedra"],
                                 np.column_stack([reference["activation_ms"], reference["apd_scale"]]), grid.points_mm)
        lead_field_share = _ecg(matrix, onto[:, 0], onto[:, 1], times, template, grid.tetrahedra, spread)
        print(f"{level.heart_mm:g} mm: {len(arrays['activation_ms'])} nodes, grid {len(grid.points_mm)}; "
              f"grid times at the mesh nodes within {deviation:.1e} ms of the level's; ECG error, V_m on the mesh "
              f"{relative_errors(truth, arrays['leads_p1_v']).mean():.1%} (P1) / "
              f"{relative_errors(truth, arrays['leads_recovered_v']).mean():.1%} (recovered), on the grid "
              f"{relative_errors(truth, on_grid).mean():.1%}; lead-field share on the grid "
              f"{relative_errors(truth, lead_field_share).mean():.1%}; eikonal {eikonal_s:.1f} s, ECG {ecg_s:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
