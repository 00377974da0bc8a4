"""Robustness of meshing over a whole cohort (prints figures; not a test).

    .venv/bin/python benchmarks/meshing_cohort.py --configfile config/paper.yaml            # 110 patients
    .venv/bin/python benchmarks/meshing_cohort.py --configfile config/paper.yaml --sizes 4:30 1.2:8 0.9:4.5 \
        --patients train-0000 test-0003

Builds the config's shape models, assembles every patient of its cohort (or ``--patients``) and
meshes each at the config's element sizes (or every ``--sizes heart:torso`` pair, mm), with the
workflow's own job functions, in a temporary folder. Prints one line per patient and size:
nodes, tetrahedra, blood pools, minimum dihedral angle, seconds — or the error that stopped it —
and a summary of how many meshed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


from ecgcohort.cohort import design_from_config, patient_ids, patient_record
from ecgcohort.config import load_config_files

REPO = Path(__file__).resolve().parents[1]


def _config(paths: list[Path]) -> dict:
    return load_config_files(paths, REPO / "workflow/schemas/config.schema.yaml")


def main() -> None:
    from ecgcohort.anatomy.jobs import assemble
    from ecgcohort.meshing.jobs import MeshSizes, mesh_patient_at
    from ecgcohort.shapes.catalog import write_shape_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", type=Path, nargs="*", default=[], help="over config/config.yaml")
    parser.add_argument("--patients", nargs="*", help="only these patients")
    parser.add_argument("--sizes", nargs="*", help="heart:torso element sizes, mm (default: the config's)")
    args = parser.parse_args()
    config = _config([REPO / "config/config.yaml", *args.configfile])
    design = design_from_config(config["cohort"])
    patients = args.patients or patient_ids(design)
    sizes = ([MeshSizes(*map(float, pair.split(":"))) for pair in args.sizes] if args.sizes else
             [MeshSizes(config["meshing"]["heart_element_size_mm"], config["meshing"]["torso_element_size_mm"])])
    meshed, failed, seconds = 0, [], []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for organ in ("heart", "torso"):
            write_shape_model(organ, config["shapes"][organ], str(root / f"{organ}.npz"))
        for patient in patients:
            (root / patient).mkdir()
            (root / patient / "parameters.json").write_text(json.dumps(patient_record(design, patient)))
            try:
                assemble(patient, root / "heart.npz", root / "torso.npz", root / patient / "parameters.json",
                         config["anatomy"], root / patient / "heart.vtp", root / patient / "torso.vtp",
                         root / patient / "anatomy.json")
            except Exception as error:  # every failure is reported, none stops the sweep
                failed.append((patient, "anatomy", str(error)))
                print(f"{patient}: anatomy failed: {error}", flush=True)
                continue
            for size in sizes:
                start = time.perf_counter()
                try:
                    report, _ = mesh_patient_at(patient, root / patient / "heart.vtp", root / patient / "torso.vtp",
                                                root / "heart.npz", root / "torso.npz", size, config["meshing"],
                                                root / patient / "mesh.msh")
                except Exception as error:
                    failed.append((patient, f"{size.heart_mm:g}/{size.torso_mm:g} mm", str(error)))
                    print(f"{patient} {size.heart_mm:g}/{size.torso_mm:g} mm: FAILED {error}", flush=True)
                    continue
                elapsed = time.perf_counter() - start
                meshed += 1
                seconds.append(elapsed)
                print(f"{patient} {size.heart_mm:g}/{size.torso_mm:g} mm: {report.nodes} nodes, "
                      f"{report.tetrahedra} tetrahedra {report.tetrahedra_per_region}, min dihedral "
                      f"{report.min_dihedral_deg:.1f} deg, {elapsed:.1f} s", flush=True)
    total = len(patients) * len(sizes)
    print(f"\nmeshed {meshed} of {total} (patient, size) pairs; {len(failed)} failed")
    if seconds:
        print(f"meshing time per patient: median {sorted(seconds)[len(seconds) // 2]:.1f} s, max {max(seconds):.1f} s")
    for patient, where, error in failed:
        print(f"  {patient} ({where}): {error}")


if __name__ == "__main__":
    main()
