"""Time one patient's anatomy stages at a given resolution; prints a table.

    .venv/bin/python benchmarks/anatomy_stages.py                         # default sizes (config.yaml)
    .venv/bin/python benchmarks/anatomy_stages.py --heart 0.8 --torso 11.8   # the paper's sizes

Stages: building both shape models (once per cohort), assembling and checking a patient
(instances, torso remeshing, placement, checks), electrodes, and the tetrahedral mesh.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from ecgcohort.anatomy import PlacementSettings, assemble_patient, electrode_table
from ecgcohort.cohort import design_from_config, patient_parameters
from ecgcohort.config import load_schema, validate_config
from ecgcohort.meshing import mesh_heart_in_torso
from ecgcohort.shapes.catalog import shape_model_from_config

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heart", type=float, help="heart element size, mm (default: config.yaml)")
    parser.add_argument("--torso", type=float, help="torso element size, mm (default: config.yaml)")
    parser.add_argument("--patient", default="train-0000")
    parser.add_argument("--no-netgen", action="store_true", help="skip gmsh's Netgen optimiser")
    parser.add_argument("--algorithm", choices=["delaunay", "hxt"], help="gmsh 3D algorithm (default: config)")
    parser.add_argument("--threads", type=int, default=2, help="gmsh threads (hxt; the meshing rule uses 2)")
    arguments = parser.parse_args()

    config = validate_config(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                             load_schema(REPO / "workflow/schemas/config.schema.yaml"))
    meshing = dict(config["meshing"])
    meshing["heart_element_size_mm"] = arguments.heart or meshing["heart_element_size_mm"]
    meshing["torso_element_size_mm"] = arguments.torso or meshing["torso_element_size_mm"]
    meshing["algorithm_3d"] = arguments.algorithm or meshing["algorithm_3d"]
    heart_edge, torso_edge = meshing["heart_element_size_mm"], meshing["torso_element_size_mm"]
    row = patient_parameters(design_from_config(config["cohort"]), arguments.patient)
    timings = {}

    start = time.perf_counter()
    heart = shape_model_from_config("heart", config["shapes"]["heart"], heart_edge)
    timings["heart model (once per cohort)"] = time.perf_counter() - start
    start = time.perf_counter()
    torso = shape_model_from_config("torso", config["shapes"]["torso"], heart_edge)
    timings["torso model (once per cohort)"] = time.perf_counter() - start

    start = time.perf_counter()
    anatomy = assemble_patient(arguments.patient, heart, torso, row, torso_edge, PlacementSettings(**config["anatomy"]))
    timings["assemble + check patient"] = time.perf_counter() - start
    start = time.perf_counter()
    electrode_table(anatomy.torso.points, anatomy.torso.faces, anatomy.landmarks,
                    config["electrodes"]["anterior_count"], np.random.default_rng(0))
    timings["electrodes"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report = mesh_heart_in_torso(
            anatomy.torso.points, anatomy.torso.faces, anatomy.heart.points, anatomy.heart.faces,
            anatomy.heart.labels, anatomy.heart.label_names, heart_edge, torso_edge, Path(folder) / "mesh.msh",
            threads=arguments.threads, algorithm=meshing["algorithm_3d"], optimize_netgen=not arguments.no_netgen and meshing["optimize_netgen"],
            sliver_threshold_deg=meshing["sliver_angle_deg"], max_sliver_fraction=1.0)
        timings["tetrahedral mesh"] = time.perf_counter() - start

    print(f"patient {arguments.patient}: heart {heart_edge} mm, torso {torso_edge} mm, "
          f"{meshing['algorithm_3d']} ({arguments.threads} threads), "
          f"netgen {'off' if arguments.no_netgen else meshing['optimize_netgen']}")
    print(f"  heart surface {len(heart.mean)} points / {len(heart.faces)} triangles; "
          f"torso surface {len(anatomy.torso.points)} points / {len(anatomy.torso.faces)} triangles")
    print(f"  mesh: {report.nodes} nodes, {report.tetrahedra} tetrahedra {report.tetrahedra_per_region}, "
          f"min dihedral {report.min_dihedral_deg:.2f} deg, slivers (< {report.sliver_threshold_deg} deg) "
          f"{report.sliver_fraction:.4%}")
    for stage, seconds in timings.items():
        print(f"  {stage:32s} {seconds:8.3f} s")
    per_patient = sum(v for k, v in timings.items() if "once" not in k)
    print(f"  {'per patient (without models)':32s} {per_patient:8.3f} s")
    print(f"  peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
