"""The error budget of a run whose model files predate the heart + margin fitting angle: each
trained surrogate's angle on its fitting and validation patients measured again from its model
file and the run's data (:func:`ecgcohort.surrogate.jobs.trained_angles`, the rows its training
built), and the run's budget written again with those columns, the test patients' all-points
angle from its ``errors.csv`` and every other term as the run wrote it.

    python benchmarks/surrogate_budget_angles.py RESULTS [--heart-margin-mm 10] [--out FOLDER]

Writes ``FOLDER/surrogate/error_budget.csv`` and ``.md`` (default FOLDER:
``RESULTS/benchmarks/budget_angles``, a folder ``readme_results record --tables
surrogate/error_budget.md`` takes) and prints the Markdown. Reads ``RESULTS/surrogate/{encoding}/
{target}/model.pt``, ``table1.csv``, ``errors.csv``, ``ecg_transfer.csv``, ``error_budget.csv``,
``RESULTS/encoding/{encoding}/codes.csv`` and the training patients' files under
``RESULTS/patients``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from ecgcohort.learning.modelfile import load_model
from ecgcohort.surrogate.jobs import group_lead_field_files, trained_angles
from ecgcohort.surrogate.labels import model_label
from ecgcohort.surrogate.report import (GROUND_TRUTH_COLUMNS, budget_markdown, error_budget_table, read_table1)


def patient_files(results: Path, patients: list[str]):
    """The lead-field files of ``patients`` as the workflow lays them out under ``results``."""
    folders = [results / "patients" / p for p in patients]
    return group_lead_field_files(patients, points=[f / "leadfield/points.npz" for f in folders],
                                  electrodes=[f / "anatomy/electrodes.csv" for f in folders],
                                  fibres=[f / "fibres/fibres.npz" for f in folders],
                                  chunks=[c for f in folders for c in sorted((f / "leadfield").glob("chunk-*.npz"))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a run's results/ folder")
    parser.add_argument("--heart-margin-mm", type=float, default=10.0,
                        help="the heart region's margin (the run's surrogate.evaluation.heart_margin_mm)")
    parser.add_argument("--out", type=Path, help="default RESULTS/benchmarks/budget_angles")
    args = parser.parse_args(argv)
    surrogate = args.results / "surrogate"
    out = (args.out or args.results / "benchmarks/budget_angles") / "surrogate"
    models = sorted(surrogate.glob("*/*/model.pt"))
    if not models:
        print(f"no trained surrogates under {surrogate}", file=sys.stderr)
        return 1
    errors = pd.read_csv(surrogate / "errors.csv")
    table = read_table1(surrogate / "table1.csv")
    torso = errors.groupby("model", sort=False)["angular_error_torso_deg"].mean()
    table["angular_error_torso_deg_mean"] = table["model"].map(torso)
    recorded = pd.read_csv(surrogate / "error_budget.csv").set_index("model")
    ground_truth = {model: {c: recorded.loc[model, c] for c in (*GROUND_TRUTH_COLUMNS, "ground_truth_patients")
                            if c in recorded} for model in recorded.index}
    labelled = {}
    for path in models:
        metadata = load_model(path, kind="leadfield-surrogate")[1]
        labelled[model_label(metadata["encoding"], metadata["target"])] = (path, metadata)
    trainings = {}
    for label in sorted(labelled, key=lambda label: (label not in recorded.index, list(recorded.index).index(label)
                                                     if label in recorded.index else 0, label)):
        path, metadata = labelled[label]
        patients = [*metadata["training_patients"], *metadata["validation_patients"]]
        start = time.perf_counter()
        angles = trained_angles(path, patient_files(args.results, patients),
                                args.results / "encoding" / metadata["encoding"] / "codes.csv",
                                heart_margin_mm=args.heart_margin_mm)
        print(f"{label}: {len(patients)} patients in {time.perf_counter() - start:.0f} s: {angles}", flush=True)
        trainings[label] = {**metadata["training"],
                            **{f"{split}_{name}_angular_error_deg": angles[split][name]
                               for split in ("fitting", "validation") for name in ("points", "heart")}}
    budget = error_budget_table(table, pd.read_csv(surrogate / "ecg_transfer.csv"), trainings, ground_truth)
    out.mkdir(parents=True, exist_ok=True)
    budget.to_csv(out / "error_budget.csv", index=False, float_format="%.6g")
    markdown = budget_markdown(pd.read_csv(out / "error_budget.csv"))
    (out / "error_budget.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
