"""Network I's activation error by scenario kind on both splits, for runs of the ECG -> activation
stage side by side (writes a CSV and prints the Markdown; not a test).

    .venv/bin/python benchmarks/ecg2act_by_kind.py --out cuts/results/ecg2act_by_kind \
        "paper-cpu cuts=/runs/paper/results" "4 APD draws per activation=/runs/dup/results"

Each RUN is a label and a results/ folder with results/ecg2act/network-I/model.pt and the banks
it was trained and scored on; the scored samples are the model file's (the random split) and
every test-patient sample (the unseen patients), as the workflow's evaluation scores them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def run_rows(label: str, results: Path) -> list[dict]:
    """One run's Network I errors by kind on both splits, on the rows the workflow's evaluation
    scores (``evaluation_sets``, with its checks that the scored set never picked the epoch)."""
    from ecgcohort.ecg2act import load_network
    from ecgcohort.ecg2act.kinds import errors_by_kind, kind_labels
    from ecgcohort.ecg2act.networks import predict
    from ecgcohort.ecg2act.training import BankRows, evaluation_sets

    model, metadata = load_network(results / "ecg2act/network-I/model.pt", "I")
    banks = results / "ecg2act/bank"
    train_rows = BankRows(sorted(banks.glob("train-*.zarr")))
    test_rows = BankRows(sorted(banks.glob("test-*.zarr")), split="test")
    chosen = evaluation_sets(metadata, train_rows.samples, test_rows.samples, test_rows.patients, "I")
    rows = []
    for split, bank_rows in (("random_samples", train_rows), ("held_out_patients", test_rows)):
        labels, predicted, truth = [], [], []
        for bank, local in enumerate(bank_rows.local(np.sort(chosen[split]))):
            if not len(local):
                continue
            arrays = bank_rows.read(bank, ("ecg", "activation_time", "kind", "pacing_sites"), local)
            predicted.append(predict(model, arrays["ecg"]))
            truth.append(arrays["activation_time"])
            labels += kind_labels(arrays["kind"].astype(str), arrays["pacing_sites"])
        rows += [{"run": label, "network": "I", "split": split, **row}
                 for row in errors_by_kind(labels, np.concatenate(predicted), np.concatenate(truth))]
    return rows


def main() -> None:
    import pandas as pd

    from ecgcohort.readme_results import by_kind_markdown

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RESULTS_FOLDER, in the table's order")
    parser.add_argument("--out", type=Path, required=True, help="folder of by_kind.csv and by_kind.md")
    arguments = parser.parse_args()
    table = pd.DataFrame([row for run in arguments.runs for row in run_rows(*_split(run))])
    arguments.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(arguments.out / "by_kind.csv", index=False)
    markdown = by_kind_markdown(table)
    (arguments.out / "by_kind.md").write_text(markdown)
    print(markdown)


def _split(run: str) -> tuple[str, Path]:
    label, folder = run.split("=", 1)
    return label, Path(folder)


if __name__ == "__main__":
    main()
