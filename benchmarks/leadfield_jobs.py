"""A patient's lead fields as one job (``leadfield.electrodes_per_job: all``) against one job per
chunk, each job a fresh process as Snakemake runs it (prints figures; not a test).

    .venv/bin/python benchmarks/leadfield_jobs.py results/patients/train-0000 [--config config/config.yaml ...]
        [--before-src /tmp/before/src] [--rounds 2]

A B A B: A is the per-chunk jobs (chunk 0 from the 12-lead's own table, chunk 1 from the whole
table; with ``--before-src``, an older checkout's ``src`` whose ``compute_lead_field_chunk``
wrote one chunk per call, e.g. ``git archive 9dd6924 src | tar -x -C /tmp/before``), B the one
job writing both. Prints each round's wall-clock and CPU seconds (the CPU figure is the steadier
on a loaded machine), their ratios, and whether B's arrays equal A's bit for bit.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# the job: (src, patient folder, electrode table, chunks, outputs, lead-field settings) as arguments
JOB = """
import json, sys
src, root, table, chunks, outs, settings = sys.argv[1:7]
sys.path.insert(0, src)
import ecgcohort
assert ecgcohort.__file__.startswith(src), ecgcohort.__file__
from ecgcohort.leadfield import jobs
chunks, outs, lf = json.loads(chunks), json.loads(outs), json.loads(settings)
inputs = (root.rsplit("/", 1)[-1], root + "/mesh/mesh.msh", root + "/fibres/fibres.npz", root + "/anatomy/" + table,
          root + "/leadfield/points.npz")
options = dict(threads=2, low_rank_tolerance=lf["low_rank_tolerance"], electrode_tolerance_mm=lf["electrode_tolerance_mm"],
               point_gradient=lf["point_gradient"], cell_gradient=lf["cell_gradient"])
if hasattr(jobs, "compute_lead_field_chunks"):
    jobs.compute_lead_field_chunks(*inputs, chunks=chunks, electrodes_per_job=0,
                                   conductivities=lf["conductivity_s_per_m"], out_npzs=outs, **options)
else:
    (chunk,), (out,) = chunks, outs
    jobs.compute_lead_field_chunk(*inputs, chunk, 0, lf["conductivity_s_per_m"], out, **options)
"""

ARRAYS = ("electrode_names", "electrode_positions_m", "grad_points", "grad_cells", "lead_matrix")


def run_job(src: Path, patient: Path, table: str, chunks: list[int], outs: list[Path], settings: str) -> tuple[float, float]:
    """(wall-clock s, CPU s) of one job in a fresh process."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-c", JOB, str(src), str(patient), table, json.dumps(chunks),
                    json.dumps([str(out) for out in outs]), settings], check=True, cwd=REPO,
                   env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patient", type=Path, help="a finished patient folder (results/patients/<id>)")
    parser.add_argument("--config", type=Path, action="append", help="config files in order (default config/config.yaml)")
    parser.add_argument("--before-src", type=Path, default=REPO / "src", help="the per-chunk jobs' library (default: this one)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from ecgcohort.config import load_config_files
    from ecgcohort.leadfield.jobs import electrode_tolerance_mm

    config = load_config_files(args.config or [REPO / "config/config.yaml"], REPO / "workflow/schemas/config.schema.yaml")
    settings = json.dumps({**config["leadfield"],
                           "electrode_tolerance_mm": electrode_tolerance_mm(config["meshing"]["torso_element_size_mm"])})
    patient = args.patient.resolve()
    with tempfile.TemporaryDirectory(prefix="leadfield-jobs-") as scratch:
        folder = Path(scratch)
        ratios = []
        for round_ in range(args.rounds):
            apart = [folder / f"A-chunk-{chunk}.npz" for chunk in (0, 1)]
            a0 = run_job(args.before_src.resolve(), patient, "electrodes_standard.csv", [0], apart[:1], settings)
            a1 = run_job(args.before_src.resolve(), patient, "electrodes.csv", [1], apart[1:], settings)
            together = [folder / f"B-chunk-{chunk}.npz" for chunk in (0, 1)]
            b = run_job(REPO / "src", patient, "electrodes.csv", [0, 1], together, settings)
            same = True
            for one, other in zip(together, apart):
                with np.load(one) as mine, np.load(other) as theirs:
                    same &= all(np.array_equal(mine[key], theirs[key]) for key in ARRAYS)
            ratios.append((b[0] / (a0[0] + a1[0]), b[1] / (a0[1] + a1[1])))
            print(f"round {round_}: per-chunk jobs {a0[0]:.1f} + {a1[0]:.1f} s wall, {a0[1]:.1f} + {a1[1]:.1f} s CPU; "
                  f"one job {b[0]:.1f} s wall, {b[1]:.1f} s CPU; ratio {ratios[-1][0]:.3f} wall, {ratios[-1][1]:.3f} CPU; "
                  f"arrays bit for bit the same: {same}", flush=True)
        print(f"mean ratio (one job / per-chunk jobs): {np.mean([r[0] for r in ratios]):.3f} wall, "
              f"{np.mean([r[1] for r in ratios]):.3f} CPU")


if __name__ == "__main__":
    main()
