"""Does R u reproduce the 3-D truth's body maps? The forward misfit ‖y − R u‖ / ‖y‖ of a
patient's pacing-00 truth (prints figures; not a test), with R of the patient's own mesh and u
read on the closed heart surface remeshed to a node count, moved outwards by an offset — the
surface must enclose every source (docs/methods/inverse.md, ``inverse.heart_offset_mm``).

    .venv/bin/python benchmarks/inverse_enclosure.py RESULTS_DIR [PATIENT]

RESULTS_DIR: a finished run's ``results/`` holding the patient, its ``inverse/<patient>/surfaces.npz``
(for the measurement points) and the action-potential cache. Measured 2026-11-26 on test-0000 of
the default cohort (1.2 / 30 mm): 300 nodes unmoved 25.4 %, 1,500 unmoved 6.8 %, 300 moved 3 mm
6.9 %, 300 moved 6 mm 5.7 %.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

from ecgcohort.conduction.action_potential import action_potential_template
from ecgcohort.conduction.maps import load_activation
from ecgcohort.fibers import load_fibres
from ecgcohort.inverse.extracellular import ExtracellularSolver, Myocardium, relative_l2
from ecgcohort.inverse.surfaces import load_surfaces, reconstruction_surface, remesh_to_nodes
from ecgcohort.inverse.transfer import patient_transfer_matrix
from ecgcohort.leadfield import Conductivities
from ecgcohort.meshing.tetra import read_tagged_mesh


def main(results: str, patient: str = "test-0000") -> None:
    warnings.filterwarnings("ignore")
    folder = f"{results}/patients/{patient}"
    mesh = read_tagged_mesh(f"{folder}/mesh/mesh.msh")
    solver = ExtracellularSolver(f"{folder}/mesh/mesh.msh", Conductivities(),
                                 Myocardium.from_fibres(load_fibres(f"{folder}/fibres/fibres.npz")),
                                 max_electrode_offset_mm=6.0)
    activation = load_activation(f"{folder}/activation/pacing-00.npz")
    template = action_potential_template(1000.0, cache_dir=f"{results}/cache/action_potential")
    phi = solver.potentials(activation.transmembrane_potential_mv(np.linspace(0.0, 516.0, 41), template))
    points = load_surfaces(f"{results}/inverse/{patient}/surfaces.npz").measurement_points
    body = solver.electrode_reading(points) @ phi
    print("| heart nodes | offset (mm) | forward misfit |\n|---|---|---|")
    for nodes, offset in ((300, 0.0), (1500, 0.0), (300, 3.0), (300, 6.0)):
        surface, _ = reconstruction_surface(mesh, offset)
        heart = remesh_to_nodes(surface, nodes, "the heart surface")
        transfer, _ = patient_transfer_matrix(mesh, heart, surface, points)
        print(f"| {len(heart.points)} | {offset:g} | {relative_l2(body, transfer @ (solver.interpolation(heart.points) @ phi)):.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
