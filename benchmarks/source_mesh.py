"""A finer heart for the sources than for the volume conductor (prints figures; not a test).

    .venv/bin/python benchmarks/source_mesh.py results/convergence/train-0000/level-{0,1,2,3,4,5}.npz \
        [--conductors 0 1] [--template-cache results/cache/action_potential]

Takes the convergence levels of one patient (``snakemake convergence``; the last is the
reference) and, for every pair (conductor level c, source level s ≥ c), builds the sinus 12-lead
ECG that a two-mesh pipeline would give: the lead fields Z solved on level c's heart-in-torso
mesh, interpolated (P1) onto level s's myocardial nodes, and the lead matrix assembled there
(L = −B Z with level s's fibre structure tensors), with level s's own activation, APD scales and
upstroke spread. Prints the mean relative ℓ2 error over the 12 leads against the reference's
ECG, beside each level's own (one-mesh) error and times — how much of a coarse mesh's error a
finer source mesh alone removes. The source times are the level's heart-in-torso mesh, fibres
and one activation map: a heart-only source mesh would mesh faster.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ecgcohort.conduction.action_potential import action_potential_template, transmembrane_potential, upstroke_spread_ms
from ecgcohort.convergence.summary import interpolate_nodal, relative_errors
from ecgcohort.ecg.leads import LEAD_ELECTRODES, standard_leads
from ecgcohort.leadfield.solver import lead_matrix_from_potentials
from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors


def source_ecg(conductor: dict, source: dict, sigma: Conductivities, template) -> np.ndarray:
    """(12, T) V: ``conductor``'s Z on ``source``'s myocardial mesh, activation and fibres."""
    z = interpolate_nodal(conductor["myocardial_points_mm"], conductor["myocardial_tetrahedra"],
                          conductor["lead_field_ohm"].T, source["myocardial_points_mm"]).T
    matrix = lead_matrix_from_potentials(source["myocardial_points_mm"] * 1e-3, source["myocardial_tetrahedra"],
                                         intracellular_tensors(source["structure_cell"], sigma), z)
    spread = float(source["upstroke_spread"]) * upstroke_spread_ms(source["myocardial_tetrahedra"],
                                                                   source["activation_ms"])
    vm = transmembrane_potential(source["activation_ms"], source["times_ms"], template, source["apd_scale"],
                                 upstroke_ms=spread)
    return standard_leads(matrix @ vm * 1e-3, LEAD_ELECTRODES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("levels", type=Path, nargs="+", help="level-*.npz, coarse to fine (the last: reference)")
    parser.add_argument("--conductors", type=int, nargs="*", default=[0, 1], help="conductor level indices")
    parser.add_argument("--template-cache", type=Path, default=Path("results/cache/action_potential"))
    parser.add_argument("--conductivities", type=json.loads, default={},
                        help="leadfield.conductivity_s_per_m as JSON (default: the schema's)")
    args = parser.parse_args()
    levels = [dict(np.load(path)) for path in args.levels]
    for level in levels:
        if "structure_cell" not in level:
            raise SystemExit("the levels predate the fibre structure tensors: re-run snakemake convergence")
    reference = levels[-1]
    truth = reference["leads_p1_v"]
    template = action_potential_template(1000.0, cache_dir=args.template_cache)
    sigma = Conductivities.from_config(args.conductivities)
    sizes = [json.loads(str(level["sizes_json"])) for level in levels]
    timings = [json.loads(str(level["timings_json"])) for level in levels]
    # the source mesh's own work (mesh, fibres, activation) and the conductor's lead fields
    source_s = [t["mesh_s"] + t["fibres_s"] + t["activation_s"] for t in timings]
    conductor_s = [t["mesh_s"] + t["fibres_s"] + t["lead_field_solve_s"] for t in timings]
    print("conductor (heart/torso mm) | source heart (mm) | sinus ECG error | the conductor level's own | "
          "conductor s (mesh, fibres, lead fields) | source s (mesh, fibres, activation)")
    for c in args.conductors:
        own = relative_errors(truth, levels[c]["leads_p1_v"]).mean()
        for s in range(c, len(levels) - 1):
            error = relative_errors(truth, source_ecg(levels[c], levels[s], sigma, template)).mean()
            print(f"{sizes[c]['heart_mm']:g}/{sizes[c]['torso_mm']:g} | {sizes[s]['heart_mm']:g} | {error:.1%} | "
                  f"{own:.1%} | {conductor_s[c]:.1f} | {source_s[s]:.1f}")


if __name__ == "__main__":
    main()
