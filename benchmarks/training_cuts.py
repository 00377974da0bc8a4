"""What the 2-core cuts of config/paper-cpu.yaml cost, measured on one cohort (issue 64): runs of
the same cohort's workflow that differ only in the training settings, their test-patient
figures side by side (writes two CSVs and prints the Markdown; not a test).

    # each RUN a label and a results/ folder holding a surrogate's evaluations (the paper's full
    # target: results/surrogate/{pca,deepsdf}/full/{model.pt,evaluation/*.json}) and, where run,
    # the ECG -> activation metrics (results/ecg2act/metrics.csv)
    .venv/bin/python benchmarks/training_cuts.py --out cuts/results/training_cuts \
        "study settings=/runs/study/results" "cut epochs=/runs/var/results" ...

Per run and encoding: the fitting patients, the DeepSDF epochs behind the codes, the surrogate's
epochs trained (fewer than configured where the validation's patience ended it) and the best one,
its training time, and Table 1's figures over the test patients (heart angle, V1-V6 angle, both
ECG error readings). Per ECG -> activation run:
each network's metrics on both splits. ``record`` then keeps the CSVs under docs/results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ENCODINGS = ("pca", "deepsdf")


def surrogate_row(label: str, results: Path, encoding: str) -> dict:
    """One run's surrogate (full target) of one encoding: training settings and Table 1's figures."""
    from ecgcohort.learning.modelfile import load_model
    from ecgcohort.surrogate.report import TABLE1_METRICS, error_table, table1

    folder = results / "surrogate" / encoding / "full"
    _, metadata = load_model(folder / "model.pt", kind="leadfield-surrogate")
    training = metadata["training"]
    summaries = [json.loads(path.read_text()) for path in sorted((folder / "evaluation").glob("*.json"))]
    if not summaries:
        raise FileNotFoundError(f"{label}: no evaluations under {folder / 'evaluation'}")
    ours = table1(error_table(summaries)).query(f"source == 'ours' and encoding == '{encoding}'").iloc[0]
    points = metadata["config"].get("training_points")
    shape_epochs = ""
    if encoding == "deepsdf":
        _, shape = load_model(results / "encoding/deepsdf/model.pt")
        shape_epochs = shape["training"]["epochs"]
    return {"run": label, "encoding": encoding, "shape_model_epochs": shape_epochs,
            "fitting_patients": len(metadata["training_patients"]),
            "validation_patients": len(metadata["validation_patients"]),
            "training_points": "all" if points is None else int(points),
            "epochs_configured": training["epochs_configured"], "epochs_trained": training["epochs"],
            "best_epoch": training["best_epoch"], "training_s": training["seconds"],
            "test_patients": int(ours["test_patients"]),
            **{f"{metric}_{stat}": float(ours[f"{metric}_{stat}"]) for metric in TABLE1_METRICS
               for stat in ("mean", "sd")}}


def ecg2act_rows(label: str, results: Path) -> list[dict]:
    """One run's ECG -> activation metrics, labelled (none where the run has none)."""
    import pandas as pd

    path = results / "ecg2act/metrics.csv"
    if not path.exists():
        return []
    return [{"run": label, **row} for row in pd.read_csv(path).to_dict("records")]


def main() -> None:
    import pandas as pd

    from ecgcohort.readme_results import training_cuts_markdown

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=RESULTS_FOLDER, in the table's order")
    parser.add_argument("--out", type=Path, required=True, help="folder of surrogate.csv and ecg2act.csv")
    parser.add_argument("--ecg2act-runs", nargs="*", help="the runs whose ECG -> activation metrics are listed "
                        "(default: every run that has them; a run that copied another's lists them twice)")
    parser.add_argument("--encodings", action="append", default=[], metavar="LABEL=ENCODING[,ENCODING]",
                        help="list only these encodings' surrogates of the run LABEL, none for LABEL= (default: every "
                             "one it has; a run that retrained one encoding over a copy of another's results has the "
                             "other's too)")
    arguments = parser.parse_args()
    runs = [(label, Path(folder)) for label, folder in (run.split("=", 1) for run in arguments.runs)]
    chosen = {label: [encoding for encoding in encodings.split(",") if encoding]
              for label, encodings in (item.split("=", 1) for item in arguments.encodings)}
    unknown = sorted(set(chosen) - {label for label, _ in runs}) + sorted(
        {encoding for encodings in chosen.values() for encoding in encodings} - set(ENCODINGS))
    if unknown:
        parser.error(f"--encodings names no run or encoding: {', '.join(unknown)}")
    surrogate = pd.DataFrame([surrogate_row(label, folder, encoding) for label, folder in runs
                              for encoding in chosen.get(label, ENCODINGS)
                              if (folder / "surrogate" / encoding / "full/model.pt").exists()])
    listed = [(label, folder) for label, folder in runs
              if arguments.ecg2act_runs is None or label in arguments.ecg2act_runs]
    ecg2act = pd.DataFrame([row for label, folder in listed for row in ecg2act_rows(label, folder)])
    arguments.out.mkdir(parents=True, exist_ok=True)
    surrogate.to_csv(arguments.out / "surrogate.csv", index=False)
    ecg2act.to_csv(arguments.out / "ecg2act.csv", index=False)
    markdown = training_cuts_markdown(surrogate, ecg2act)
    (arguments.out / "cuts.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
