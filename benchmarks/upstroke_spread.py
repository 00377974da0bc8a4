"""Upstroke spread against mesh convergence (prints figures; not a test).

    .venv/bin/python benchmarks/upstroke_spread.py results/convergence/train-0000/level-0.npz \
        results/convergence/train-0000/level-1.npz [--factors 0 0.25 0.5 0.75 1]

Takes convergence levels of one patient (``snakemake convergence``; the last is the reference)
and recomputes each level's sinus 12-lead ECG from its own activation, APD scales and P1 lead
matrix with every upstroke-spread factor
(``electrophysiology.action_potential.upstroke_spread``). Prints the mean relative ℓ2 error
over the 12 leads of each (level, factor) against the reference computed with the same and
with other factors, and how much the reference itself moves with the factor.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ecgcohort.conduction.action_potential import action_potential_template, transmembrane_potential, upstroke_spread_ms
from ecgcohort.convergence.summary import relative_errors
from ecgcohort.ecg.leads import LEAD_ELECTRODES, standard_leads


def level_ecg(level: dict, factor: float, template) -> np.ndarray:
    """(12, T) V: the level's sinus ECG with upstrokes spread by ``factor``."""
    spread = factor * upstroke_spread_ms(level["myocardial_tetrahedra"], level["activation_ms"]) if factor else None
    vm = transmembrane_potential(level["activation_ms"], level["times_ms"], template, level["apd_scale"],
                                 upstroke_ms=spread)
    return standard_leads(level["lead_matrix_p1"] @ vm * 1e-3, LEAD_ELECTRODES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("levels", type=Path, nargs="+", help="level-*.npz, coarse to fine (the last: reference)")
    parser.add_argument("--factors", type=float, nargs="*", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--template-cache", type=Path, default=Path("results/cache/action_potential"))
    args = parser.parse_args()
    template = action_potential_template(1000.0, cache_dir=args.template_cache)
    levels = [dict(np.load(path)) for path in args.levels]
    reference = {factor: level_ecg(levels[-1], factor, template) for factor in args.factors}
    print("reference moved by the factor (mean relative l2 against unspread):",
          {f: round(float(relative_errors(reference[args.factors[0]], reference[f]).mean()), 4) for f in args.factors})
    for level in levels[:-1]:
        heart_mm = json.loads(str(level["sizes_json"]))["heart_mm"]
        for factor in args.factors:
            ecg = level_ecg(level, factor, template)
            errors = {f: round(float(relative_errors(reference[f], ecg).mean()), 4) for f in args.factors}
            print(f"level {heart_mm:g} mm, factor {factor:g}: error against the reference spread by {errors}")


if __name__ == "__main__":
    main()
