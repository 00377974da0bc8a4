"""The compiled eikonal solver with its geometry in single against double precision, on a
finished patient's refined grid (prints figures; not a test).

    .venv/bin/python benchmarks/eikonal_precision.py results/patients/train-0000 [--config config/config.yaml]

Every map of the config's scenarios that starts from fixed sources (sinus: the Purkinje
junctions) is solved with both geometries, alternating, ``--repeats`` times; the script
prints the seconds per solve of each, their ratio, and how far the single-precision times lie
from the double ones (ms, over all grid nodes).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patient", type=Path, help="a finished patient folder (results/patients/<id>)")
    parser.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from ecgcohort.conduction import eikonal
    from ecgcohort.conduction.jobs import MapSettings, PatientConduction, conduction_velocities, scenario_sources
    from ecgcohort.conduction.scenarios import Scenario
    from ecgcohort.config import load_config_files

    config = load_config_files([args.config], REPO / "workflow/schemas/config.schema.yaml")
    settings = MapSettings.from_config(config, template_cache_dir=None)
    conduction = PatientConduction.read(args.patient / "fibres/fibres.npz", args.patient / "anatomy/heart.vtp",
                                        args.patient / "purkinje/junctions.npz", settings)
    grid = conduction.grid
    velocities = conduction_velocities(settings.velocities)
    tensors = eikonal.conduction_tensors(grid.mesh_structure, *velocities[:2], grid.mesh_normal_structure,
                                         velocities[2] if len(velocities) > 2 else None)
    geometries = {precision: eikonal._compiled_geometry(grid.points_mm, grid.tetrahedra, tensors, grid.parent,
                                                        single_precision=precision == "single")
                  for precision in ("double", "single")}
    sources = scenario_sources(Scenario(name="sinus", kind="sinus"), grid, conduction.heart, conduction.junctions,
                               None, settings.velocities)
    nodes, times = eikonal._unique_sources(sources.nodes, sources.node_times_ms, len(grid.points_mm))
    print(f"{args.patient.name}: grid {len(grid.points_mm):,} nodes, {len(grid.tetrahedra):,} tetrahedra; "
          f"forms {geometries['double'].forms.nbytes / 2**20:.0f} MB double, "
          f"{geometries['single'].forms.nbytes / 2**20:.0f} MB single")
    seconds: dict[str, list[float]] = {"double": [], "single": []}
    maps = {}
    for precision, geometry in geometries.items():
        eikonal._solve_compiled(geometry, nodes, times)  # compile and warm the caches
    for _ in range(args.repeats):
        for precision, geometry in geometries.items():
            start = time.perf_counter()
            maps[precision] = eikonal._solve_compiled(geometry, nodes, times)
            seconds[precision].append(time.perf_counter() - start)
    difference = np.abs(maps["single"] - maps["double"])
    double, single = np.median(seconds["double"]), np.median(seconds["single"])
    print(f"sinus solve, median of {args.repeats}: double {double:.2f} s, single {single:.2f} s "
          f"(ratio {single / double:.2f})")
    print(f"|single - double|: mean {difference.mean():.2e} ms, largest {difference.max():.2e} ms "
          f"(map span {np.ptp(maps['double']):.1f} ms)")
    print("the geometries hold the same arrays but for their types:",
          all(np.array_equal(getattr(geometries['double'], f.name), getattr(geometries['single'], f.name))
              for f in dataclasses.fields(geometries['double']) if f.name in ("order", "position", "locals_")))


if __name__ == "__main__":
    main()
