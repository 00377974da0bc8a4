"""Resolutions and eikonal grids of one patient against a converged reference: which heart /
torso element sizes and eikonal refinements meet the convergence goals, and at what cost
(prints figures; not a test).

    .venv/bin/python benchmarks/resolution_levers.py results out/levers \
        4/30/1 1.65/30/0 1.2/30/0 --reference 0.7/4.5/1 [--patient train-0000] \
        [--config config/config.yaml ...]

A level is ``heart_mm/torso_mm/eikonal_refinements``. Each level is simulated with the
convergence stage's own function (:func:`ecgcohort.convergence.level.simulate_level`: mesh,
fibres, the sinus map, the 12-lead lead fields and the ECG) on the run's patient (its surfaces,
shape models, electrodes, Purkinje junctions and the convergence stage's evaluation points,
``results/convergence/{patient}/points.npz``, written here when missing) and kept in ``out``
(a level already there is reused). Writes the convergence stage's table of them
(``out/convergence/convergence.{csv,md}``, recordable with ``ecgcohort.readme_results``) and
prints, per level against the reference, the whole-pipeline
sinus ECG error, the lead-field and activation shares (the convergence summary's definitions),
the ∇Z angle in the myocardium, the node counts, and the level's wall time split by stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import mpi4py.MPI  # noqa: F401  (dolfinx needs libmpi from the mpich wheel, loaded first)
import numpy as np

from ecgcohort.config import load_config_files
from ecgcohort.conduction.action_potential import action_potential_template
from ecgcohort.conduction.scenarios import scenarios_from_config
from ecgcohort.convergence.level import PatientFiles, Physics, simulate_level, write_evaluation_points
from ecgcohort.convergence.summary import compare_levels, load_level, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def parse_level(text: str) -> tuple[float, float, int]:
    heart, torso, refinements = text.split("/")
    return float(heart), float(torso), int(refinements)


def level_name(level: tuple[float, float, int]) -> str:
    return f"level-{level[0]:g}-{level[1]:g}-r{level[2]}.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("levels", nargs="+", type=parse_level)
    parser.add_argument("--reference", type=parse_level, default=(0.7, 4.5, 1))
    parser.add_argument("--patient", default="train-0000")
    parser.add_argument("--config", nargs="+", default=[str(ROOT / "config/config.yaml")])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    config = load_config_files(args.config, ROOT / "workflow/schemas/config.schema.yaml")
    section = config["electrophysiology"]
    scenario = scenarios_from_config(section["scenarios"])[config["convergence"]["scenario"]]
    patient_dir = args.results / "patients" / args.patient
    points = args.results / "convergence" / args.patient / "points.npz"
    args.out.mkdir(parents=True, exist_ok=True)
    if not points.exists():
        points = args.out / f"{args.patient}-points.npz"
        if not points.exists():
            write_evaluation_points(args.patient, patient_dir / "anatomy/heart.vtp", patient_dir / "anatomy/torso.vtp",
                                    int(config["cohort"]["seed"]), config["convergence"], points)
    files = PatientFiles(heart=patient_dir / "anatomy/heart.vtp", torso=patient_dir / "anatomy/torso.vtp",
                         heart_model=args.results / "shapes/heart.npz", torso_model=args.results / "shapes/torso.npz",
                         electrodes=patient_dir / "anatomy/electrodes.csv",
                         junctions=patient_dir / "purkinje/junctions.npz", points=points,
                         anatomy=patient_dir / "anatomy/anatomy.json")
    cache = args.results / "cache/action_potential"
    physics = dict(meshing={key: value for key, value in config["meshing"].items()
                            if key not in ("heart_element_size_mm", "torso_element_size_mm")},
                   fibres=config["fibers"], velocities=section["velocity_m_per_s"],
                   action_potential=section["action_potential"], conductivities=config["leadfield"]["conductivity_s_per_m"],
                   scenario=dataclasses.asdict(scenario), duration_ms=config["ecg"]["duration_ms"],
                   dt_ms=config["ecg"]["dt_ms"], vm_nodes=config["ecg"]["vm_nodes"], seed=int(config["cohort"]["seed"]),
                   low_rank_tolerance=config["leadfield"]["low_rank_tolerance"], template_cache=cache,
                   source_radius_edges=section["source_radius_edges"])

    paths = []
    for level in [*args.levels, args.reference]:
        path = args.out / f"{args.patient}-{level_name(level)}"
        if not path.exists():
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as workdir:
                arrays = simulate_level(args.patient, level[0], level[1], files,
                                        Physics(**physics, eikonal_refinements=level[2]), workdir, args.threads)
            np.savez_compressed(path, **arrays)
            print(f"simulated {path.name} in {time.perf_counter() - start:.1f} s", flush=True)
        paths.append(path)

    template = action_potential_template(float(section["action_potential"]["cycle_length_ms"]), cache_dir=cache)
    levels = [load_level(args.patient, path) for path in paths]
    # compare_levels judges every level against its last; equal heart sizes keep their order
    table, _ = compare_levels(levels, template)
    # the convergence stage's own table, so a run of this script can be recorded like a ladder
    # (python -m ecgcohort.readme_results record OUT --label ...)
    (args.out / "convergence").mkdir(exist_ok=True)
    table.to_csv(args.out / "convergence/convergence.csv", index=False, float_format="%.6g")
    (args.out / "convergence/convergence.md").write_text(markdown_table(table))
    print(f"\n{args.patient} against {args.reference[0]:g}/{args.reference[1]:g} mm refined {args.reference[2]}; "
          "ECG errors with the P1 / recovered lead matrix")
    print("| heart / torso (mm) | eikonal refinements | nodes | myocardial nodes | ECG | lead-field share | "
          "activation share | ∇Z angle myo (°) | activation (ms) | level time (s) | mesh / fibres / activation / "
          "lead fields / ECG (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    p1 = table[table.gradient == "p1"].reset_index(drop=True)
    recovered = table[table.gradient == "recovered"].reset_index(drop=True)
    for level, row, other, path in zip([*args.levels, args.reference], p1.itertuples(), recovered.itertuples(), paths):
        with np.load(path) as stored:
            timings = json.loads(str(stored["timings_json"]))
        split = " / ".join(f"{timings[key]:.1f}" for key in ("mesh_s", "fibres_s", "activation_s",
                                                              "lead_field_solve_s", "ecg_s"))
        total = sum(value for key, value in timings.items() if key.endswith("_s") and key not in
                    ("assembly_s", "factorisation_s", "solve_s"))
        print(f"| {level[0]:g} / {level[1]:g} | {level[2]} | {int(row.nodes):,} | {int(row.myocardial_nodes):,} | "
              f"{row.ecg_error:.1%} / {other.ecg_error:.1%} | {row.lead_field_share:.1%} / {other.lead_field_share:.1%} | "
              f"{row.activation_share:.1%} | {row.grad_angle_deg_myocardium:.2f} / {other.grad_angle_deg_myocardium:.2f} | {row.activation_span_ms:.1f} | {total:.1f} | {split} |")


if __name__ == "__main__":
    main()
