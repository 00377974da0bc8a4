"""Accuracy of the realism stage's delineation against the activation maps (prints a table; not
a test).

    .venv/bin/python benchmarks/realism.py                       # results/patients
    .venv/bin/python benchmarks/realism.py --patients /work/baseline/results/patients

For every patient and scenario with both an ECG (``ecg/{scenario}.npz``) and an activation map
(``activation/{scenario}.npz``): the delineated QRS onset and offset against the first
activation and the last activation + 1 ms (the action potential's upstroke), and the T end
against the time by which 95 % of the myocardium has repolarised (activation + APD90 × the
node's APD scale, APD90 of the cached TP06 template). Prints, per scenario, the mean and the
largest absolute error and the delineation time per beat. Uses the config's default settings.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ecgcohort.conduction.action_potential import action_potential_template
from ecgcohort.conduction.maps import load_activation
from ecgcohort.realism.delineation import delineate
from ecgcohort.realism.jobs import read_beat

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=Path, default=REPO / "results/patients")
    parser.add_argument("--cycle-length-ms", type=float, default=1000.0)
    parser.add_argument("--template-cache", type=Path, default=REPO / "results/cache/action_potential")
    args = parser.parse_args()
    apd90_ms = action_potential_template(args.cycle_length_ms, cache_dir=args.template_cache).apd90_ms
    errors: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    seconds: list[float] = []
    for ecg_path in sorted(args.patients.glob("*/ecg/*.npz")):
        patient, scenario = ecg_path.parents[1].name, ecg_path.stem
        activation_path = ecg_path.parents[1] / "activation" / f"{scenario}.npz"
        if not activation_path.exists():
            continue
        leads_mv, times_ms = read_beat(ecg_path, patient, scenario)
        activation = load_activation(activation_path)
        started = time.perf_counter()
        found = delineate(leads_mv, times_ms - times_ms[0], args.cycle_length_ms)
        seconds.append(time.perf_counter() - started)
        onset, offset = activation.activation_ms.min(), activation.activation_ms.max() + 1.0
        repolarised = np.percentile(activation.activation_ms + apd90_ms * activation.apd_scale, 95)
        errors[scenario].append((found.qrs_onset_ms - onset, found.qrs_offset_ms - offset,
                                 found.qrs_duration_ms - (offset - onset), found.t_offset_ms - repolarised))
    print(f"{'scenario':10s} {'beats':>5s}  error mean / max |error| (ms): QRS onset, offset, duration, "
          "T end vs 95 % repolarised")
    for scenario, rows in errors.items():
        table = np.array(rows)
        cells = []
        for column in table.T:
            finite = column[np.isfinite(column)]
            cells.append(f"{finite.mean():+6.1f} / {np.abs(finite).max():5.1f}" if finite.size else "  not measured")
        print(f"{scenario:10s} {len(rows):5d}  " + "   ".join(cells))
    if seconds:
        print(f"delineation: {np.mean(seconds):.2f} s per beat (first call includes imports: {seconds[0]:.2f} s)")


if __name__ == "__main__":
    main()
