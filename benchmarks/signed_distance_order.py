"""The convergence stage's evaluation points with libigl's signed distances answered in the
given order against in spatial order (:func:`ecgcohort.geometry.signed_distance`), on finished
patients' surfaces (prints figures; not a test).

    .venv/bin/python benchmarks/signed_distance_order.py results/patients/train-0000 [more patients] \\
        [--repeats 2] [--seed 20260]

Per patient, :func:`ecgcohort.convergence.level.evaluation_points` is run with each variant,
alternating, ``--repeats`` times (the default config's 2,000 + 2,000 points); the script prints
the seconds of each, their ratio, and whether the two gave the same points bit for bit.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from unittest import mock

import igl
import numpy as np


def given_order(points: np.ndarray, faces: np.ndarray, queries: np.ndarray, closed_surface: bool = False) -> np.ndarray:
    """libigl's signed distance in the queries' own order (the code before spatial ordering)."""
    sign = igl.SIGNED_DISTANCE_TYPE_PSEUDONORMAL if closed_surface else igl.SIGNED_DISTANCE_TYPE_DEFAULT
    return np.asarray(igl.signed_distance(np.ascontiguousarray(queries, dtype=np.float64),
                                          np.ascontiguousarray(points, dtype=np.float64),
                                          np.ascontiguousarray(faces, dtype=np.int64), sign_type=sign)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patients", type=Path, nargs="+", help="finished patient folders (results/patients/<id>)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20260)
    args = parser.parse_args()

    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.convergence import level

    totals = {"given": 0.0, "spatial": 0.0}
    for folder in args.patients:
        heart, torso = read_surface(folder / "anatomy/heart.vtp"), read_surface(folder / "anatomy/torso.vtp")
        seconds: dict[str, list[float]] = {"given": [], "spatial": []}
        results = {}
        for _ in range(args.repeats):
            for variant in ("given", "spatial"):
                # evaluation_points imports signed_distance when called: the patch reaches it
                patch = mock.patch("ecgcohort.geometry.signed_distance", given_order) if variant == "given" else None
                with patch or contextlib.nullcontext():
                    start = time.perf_counter()
                    results[variant] = level.evaluation_points(heart, torso, patient_rng(args.seed, folder.name,
                                                                                         "convergence-points"),
                                                               2000, 2000, 3.0, 40.0)
                    seconds[variant].append(time.perf_counter() - start)
        same = all(np.array_equal(a, b) for a, b in zip(results["given"], results["spatial"]))
        best = {variant: min(values) for variant, values in seconds.items()}
        for variant in totals:
            totals[variant] += best[variant]
        print(f"{folder.name}: given order {best['given']:.2f} s, spatial order {best['spatial']:.2f} s "
              f"(ratio {best['given'] / best['spatial']:.2f}); the same points: {same}")
    print(f"all: {totals['given']:.2f} s -> {totals['spatial']:.2f} s (ratio {totals['given'] / totals['spatial']:.2f})")


if __name__ == "__main__":
    main()
