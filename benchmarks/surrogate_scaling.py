"""How the surrogate's error falls with training patients, electrodes, points and training
budget, for both target forms (prints a table and writes CSV + PNG; not a test).

    # 1. rows of a cohort (training and test patients, DeepSDF codes) into one npz, here
    .venv/bin/python benchmarks/surrogate_scaling.py export --results /tmp/study/results --out .scaling/rows.npz
    # 2. the sweep, on a GPU when there is one (a CPU works, at about 70k samples/s on 2 cores)
    .venv/bin/python benchmarks/surrogate_scaling.py run --rows .scaling/rows.npz --out scaling.csv
    # 3. the figure
    .venv/bin/python benchmarks/surrogate_scaling.py plot --table scaling.csv --out scaling.png

Every run trains the paper-size NN_LF (5 x 256, Fourier 32, relative weighting unless stated)
through the backbone at batch 16,384 for a budget counted in samples — 21M samples is what 5
minutes buy on 2 CPU cores at the measured 70k samples/s, the budget of issue 12's reference —
and is scored on the test patients: the mean angular error of ∇Z in the heart region
(myocardium and within 10 mm of the heart), as Table 1. The workflow's validation patients
(20 % of the training patients, seed 0) are left out of every run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

BUDGET = 21_000_000
BATCH = 16_384
HEART_MARGIN_M = 0.010


def export(results: Path, out: Path) -> None:
    """Training and test patients' sample points, ∇Z, electrodes, heart mask and DeepSDF codes."""
    from ecgcohort.dataset import open_cohort
    from ecgcohort.surrogate.model import read_code_table

    cohort = open_cohort(results / "dataset/cohort.zarr").compute()
    codes = read_code_table(results / "encoding/deepsdf/codes.csv", "deepsdf")
    patients = [str(p) for p in cohort.patient.values]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, patients=np.array(patients), split=cohort.split.values.astype(str),
             points=cohort.sample_points.values.astype(np.float32),
             grad=cohort.grad_lead_field.values.astype(np.float32),
             electrodes=cohort.electrode_position.values.astype(np.float32),
             normalised=cohort.electrode_normalised_position.values.astype(np.float32),
             electrode_names=cohort.electrode.values.astype(str),
             heart=((cohort.sample_region.values == 1) | (cohort.distance_to_heart.values <= HEART_MARGIN_M)),
             codes=np.array([codes.code(p) for p in patients], dtype=np.float32))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(patients)} patients)")


def sweep() -> list[dict]:
    """The runs: each axis varied with the others at their full value, 21M samples; the budget
    axis for both targets; the uniform weighting (eq. 5's plain MSE) at the reference budget."""
    runs = []
    for target in ("pseudo_residual", "full"):
        base = {"target": target, "weighting": "relative", "patients": 0, "electrodes": 0, "points": 0,
                "samples": BUDGET}
        runs.append({**base, "axis": "all"})
        runs += [{**base, "axis": "patients", "patients": n} for n in (3, 6, 12)]
        runs += [{**base, "axis": "electrodes", "electrodes": n} for n in (9, 17)]
        runs += [{**base, "axis": "points", "points": n} for n in (1024, 2048)]
        runs += [{**base, "axis": "samples", "samples": n} for n in (5_000_000, 84_000_000, 168_000_000)]
        runs.append({**base, "axis": "uniform", "weighting": "uniform"})
    return runs


def run(rows_path: Path, out: Path, device: str, only: str | None, layout: str) -> None:
    import pandas as pd
    import torch

    from ecgcohort.encoding.deepsdf import NormalisationBox
    from ecgcohort.learning import TensorTable, TrainingSpec, fit
    from ecgcohort.learning.splits import validation_split
    from ecgcohort.surrogate.metrics import angular_error_deg
    from ecgcohort.surrogate.blocks import PatientBlockTable
    from ecgcohort.surrogate.network import (SurrogateModel, SurrogateSpec, patient_block, predict_gradient,
                                             training_rows)

    data = dict(np.load(rows_path))
    train = [i for i, s in enumerate(data["split"]) if s == "train"]
    test = [i for i, s in enumerate(data["split"]) if s == "test"]
    train_ids, _ = validation_split([str(data["patients"][i]) for i in train], 0.2, 0)
    fit_ids = [i for i in train if str(data["patients"][i]) in train_ids]
    points_mm = data["points"][fit_ids].reshape(-1, 3).astype(np.float64) * 1e3
    box = NormalisationBox.from_bounds(points_mm.min(axis=0), points_mm.max(axis=0), 0.1)
    pseudo_error = None
    results = []
    for settings in sweep():
        if only and settings["axis"] not in only.split(","):
            continue
        spec = SurrogateSpec(code_dim=data["codes"].shape[1], target=settings["target"],
                             weighting=settings["weighting"], seed=0)
        patients = fit_ids[: settings["patients"] or None]
        electrodes = slice(0, settings["electrodes"] or None)
        points = slice(0, settings["points"] or None)
        arguments = [(spec, box, data["points"][i][points], data["electrodes"][i][electrodes],
                      data["normalised"][i][electrodes], data["codes"][i],
                      data["grad"][i][electrodes, points].astype(np.float64)) for i in patients]
        if layout == "blocks":
            table = PatientBlockTable([patient_block(*a) for a in arguments])
        else:
            pieces = [training_rows(*a) for a in arguments]
            table = TensorTable({k: torch.cat([p[k] for p in pieces]) for k in pieces[0]})
        epochs = max(1, round(settings["samples"] / len(table)))
        training = TrainingSpec(epochs=epochs, batch_size=BATCH, lr_milestones=(0.5,), device=device,
                                checkpoint_every=10_000, log_every_seconds=1e9, seed=0)
        model = SurrogateModel(spec)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as workdir:
            result = fit(model, table, training, workdir, name="scaling")
        seconds = time.perf_counter() - started
        model.load_state_dict(result.state_dict)
        network = model.network.eval()
        errors, pseudo = [], []
        for i in test:
            predicted = predict_gradient(network, data["points"][i], data["electrodes"][i], data["normalised"][i],
                                         data["codes"][i], box)
            heart = data["heart"][i]
            errors.append(float(angular_error_deg(predicted[:, heart], data["grad"][i][:, heart]).mean()))
            if pseudo_error is None:
                offset = data["electrodes"][i][:, None].astype(np.float64) - data["points"][i][None]
                pseudo.append(float(angular_error_deg(offset[:, heart], data["grad"][i][:, heart]).mean()))
        if pseudo_error is None:
            pseudo_error = float(np.mean(pseudo))
        row = {**settings, "layout": layout, "patients": len(patients), "electrodes": len(data["electrode_names"][electrodes]),
               "points": data["points"].shape[1] if not settings["points"] else settings["points"],
               "rows": len(table), "epochs": epochs, "samples_trained": epochs * len(table),
               "train_seconds": seconds, "samples_per_second": result.samples_per_second, "device": result.device,
               "precision": result.precision, "heart_angular_error_deg": float(np.mean(errors)),
               "heart_angular_error_sd": float(np.std(errors, ddof=1)) if len(errors) > 1 else float("nan"),
               "pseudo_heart_angular_error_deg": pseudo_error}
        results.append(row)
        print(f"{row['layout']:6s} {row['axis']:10s} {row['target']:16s} {row['weighting']:8s} patients {row['patients']:2d} "
              f"electrodes {row['electrodes']:2d} points {row['points']:4d} samples {row['samples_trained'] / 1e6:6.1f}M "
              f"({row['train_seconds']:6.1f} s): heart {row['heart_angular_error_deg']:5.2f}° "
              f"(pseudo lead field {pseudo_error:.2f}°)", flush=True)
        pd.DataFrame(results).to_csv(out, index=False, float_format="%.5g")


def plot(table_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.read_csv(table_path)
    if "layout" not in table:
        table["layout"] = "rows"
    blocks = table[table.layout == "blocks"]
    table = table[table.layout == "rows"] if (table.layout == "rows").any() else blocks
    axes_spec = (("patients", "training patients"), ("electrodes", "electrodes per patient"),
                 ("points", "sample points per patient"), ("samples", "training samples (millions)"))
    figure, axes = plt.subplots(1, 4, figsize=(17, 4.2), sharey=True)
    for axis, (name, label) in zip(axes, axes_spec):
        for k, target in enumerate(("pseudo_residual", "full")):
            rows = table[(table.target == target) & table.axis.isin([name, "all"])].copy()
            column = "samples_trained" if name == "samples" else name
            rows = rows.sort_values(column)
            x = rows[column] / (1e6 if name == "samples" else 1)
            axis.errorbar(x, rows.heart_angular_error_deg, yerr=rows.heart_angular_error_sd, marker="o", capsize=3,
                          color=f"C{k}", label=target)
            if name == "samples" and len(blocks) and (table.layout == "rows").all():
                along = blocks[(blocks.target == target) & blocks.axis.isin(["samples", "all"])]
                along = along.sort_values("samples_trained")
                axis.plot(along.samples_trained / 1e6, along.heart_angular_error_deg, marker="s", ls="--",
                          color=f"C{k}", label=f"{target}, patient blocks")
            uniform = table[(table.target == target) & (table.axis == "uniform")]
            if name == "samples" and len(uniform):
                axis.scatter(uniform.samples_trained / 1e6, uniform.heart_angular_error_deg, marker="x", s=60,
                             color=f"C{k}", label=f"{target}, uniform weighting")
        axis.axhline(table.pseudo_heart_angular_error_deg.iloc[0], color="0.4", ls="--", label="pseudo lead field")
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("angular error in the heart, test patients (°)")
    axes[-1].legend(fontsize=8)
    figure.suptitle("Lead-field surrogate on the study cohort: error against data and training budget (the others at "
                    "their full value, 21M samples; flat rows, and patient blocks dashed)")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("run")
    p.add_argument("--rows", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--only", default=None, help="axes of the sweep, comma-separated")
    p.add_argument("--layout", default="blocks", choices=("blocks", "rows"),
                   help="patient blocks (the workflow's) or flat rows")
    p = sub.add_parser("plot")
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "export":
        export(args.results, args.out)
    elif args.command == "run":
        run(args.rows, args.out, args.device, args.only, args.layout)
    else:
        plot(args.table, args.out)


if __name__ == "__main__":
    main()
