"""The LBBB activation sequence of a run's patients against epicardial and endocardial mapping
of human LBBB (prints figures; not a test).

    .venv/bin/python benchmarks/lbbb_activation.py results/patients [--scenario lbbb]

Per patient, from the workflow's fibres and activation map (times from the first activation,
which the QRS onset follows within 1 ms; README, "ECG realism"): the first LV endocardial
activation (the end of transseptal conduction), the latest LV epicardial activation and the
total activation time, ms. Wyndham et al. 1980 (Circulation 61:696) mapped the epicardium of
five patients with LBBB: latest LV epicardial activation 113-140 ms after QRS onset (mean 124),
QRS 130-160 ms.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ecgcohort.conduction.maps import load_activation
from ecgcohort.conduction.scenarios import ENDOCARDIAL_BAND, EPICARDIAL_BAND
from ecgcohort.fibers import load_fibres


def lbbb_landmarks_ms(patient_dir: Path, scenario: str) -> tuple[float, float, float]:
    """(first LV endocardial, latest LV epicardial, last) activation of one patient's map, ms
    from its first activation."""
    fibres = load_fibres(patient_dir / "fibres" / "fibres.npz")
    times = load_activation(patient_dir / "activation" / f"{scenario}.npz").activation_ms
    times = times - times.min()
    lv = fibres.coordinates["ventricle"] < 0.5
    endocardium = fibres.coordinates["transmural"] < ENDOCARDIAL_BAND
    epicardium = fibres.coordinates["transmural"] > EPICARDIAL_BAND
    return float(times[lv & endocardium].min()), float(times[lv & epicardium].max()), float(times.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("patients", type=Path, help="results/patients of a run")
    parser.add_argument("--scenario", default="lbbb", help="activation map name (default lbbb)")
    args = parser.parse_args()
    from mpi4py import MPI  # noqa: F401  (libmpi before dolfinx, which the fibre loader may import)

    rows = []
    print(f"{'patient':<12} {'first LV endo':>14} {'latest LV epi':>14} {'total':>8}  (ms)")
    for patient_dir in sorted(p for p in args.patients.iterdir() if (p / "activation").is_dir()):
        row = lbbb_landmarks_ms(patient_dir, args.scenario)
        rows.append(row)
        print(f"{patient_dir.name:<12} {row[0]:14.1f} {row[1]:14.1f} {row[2]:8.1f}")
    table = np.array(rows)
    for column, name in enumerate(("first LV endocardial", "latest LV epicardial", "total")):
        values = table[:, column]
        print(f"{name}: median {np.median(values):.0f} ms ({values.min():.0f}-{values.max():.0f}) over {len(values)} patients")
    print("Wyndham et al. 1980, five patients with LBBB: latest LV epicardial activation 113-140 ms (mean 124)")


if __name__ == "__main__":
    main()
