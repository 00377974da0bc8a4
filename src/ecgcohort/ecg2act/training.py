"""Training and evaluation of Networks I and II on the simulation banks (rules
``train_ecg2act`` and ``evaluate_ecg2act``).

Both splits come from one training run per network. The training patients' samples are split
at random into ``validation_fraction`` (the paper: 5 %) and the rest, on which the network is
trained — the paper's random split (a), scored on those held-out samples. Split (b) scores the
same network on every sample of the test patients, whose banks no training rule reads: hearts
and torsos the network never saw.

Metrics (paper 3, sec. 3), per network and split:

* Network I: mean absolute activation-time error over sites and samples (ms) and its sd;
* Network II: Pearson's r of V_m per (sample, site) series, averaged; RMSE of V_m (mV);
  activation times derived from predicted V_m (first sample > 0 mV) against the true ones
  (ms); APD error (ms): APD = time from activation to the last sample above the 90 %
  repolarisation level V_rest + 0.1 (V_peak − V_rest) of the series.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.io import atomic_path
from ecgcohort.llnl import activation_times

log = logging.getLogger(__name__)

NETWORK_TARGETS = {"I": "activation", "II": "vm"}
SPLITS = ("random_samples", "held_out_patients")


def open_banks(paths: Sequence[str | Path]):
    """The banks of several patients as one lazy Dataset along ``sample`` (``patient`` per
    sample added)."""
    import xarray as xr

    if not paths:
        raise ValueError("no simulation banks given")
    banks = []
    for path in paths:
        bank = xr.open_zarr(path, consolidated=True)
        banks.append(bank.assign_coords(patient=("sample", np.full(bank.sizes["sample"], bank.attrs["patient"]))))
    return xr.concat(banks, dim="sample", data_vars="minimal", coords="minimal", compat="override",
                     join="override", combine_attrs="drop_conflicts")


def random_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) sample indices: ``fraction`` of ``count`` at random (at least one
    each when count ≥ 2)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"ecg2act.validation_fraction must be in (0, 1), got {fraction}")
    if count < 2:
        raise ValueError(f"the training banks hold {count} sample(s); need at least 2 to split")
    order = np.random.default_rng(seed).permutation(count)
    held = min(count - 1, max(1, int(round(fraction * count))))
    return np.sort(order[held:]), np.sort(order[:held])


def apd_ms(vm: np.ndarray, dt_ms: float = 1.0) -> np.ndarray:
    """APD (ms) of V_m series (..., T) in mV: from the first sample > 0 mV to the last sample
    above V_rest + 0.1 (V_peak − V_rest), V_rest the series' first sample; NaN for a series
    that never exceeds 0 mV."""
    v = np.asarray(vm, dtype=np.float64)
    level = v[..., :1] + 0.1 * (v.max(axis=-1, keepdims=True) - v[..., :1])
    above = v > level
    last = v.shape[-1] - 1 - np.argmax(above[..., ::-1], axis=-1)
    positive = v > 0.0
    first = np.argmax(positive, axis=-1)
    return np.where(positive.any(axis=-1), (last - first) * dt_ms, np.nan)


def pearson_per_series(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson's r of every series (..., T)."""
    p = predicted - predicted.mean(axis=-1, keepdims=True)
    t = true - true.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((p * p).sum(axis=-1) * (t * t).sum(axis=-1))
    return np.where(denominator > 0, (p * t).sum(axis=-1) / np.where(denominator > 0, denominator, 1.0), np.nan)


def activation_metrics(predicted_ms: np.ndarray, true_ms: np.ndarray) -> dict[str, float]:
    error = np.abs(predicted_ms - true_ms)
    return {"activation_mae_ms": float(np.nanmean(error)), "activation_error_sd_ms": float(np.nanstd(error))}


def vm_metrics(predicted_mv: np.ndarray, true_mv: np.ndarray, dt_ms: float) -> dict[str, float]:
    """Network II's metrics (module docstring) of V_m (S, 75, T) in mV."""
    derived = activation_times(predicted_mv, dt_ms)
    truth = activation_times(true_mv, dt_ms)
    return {"vm_pearson": float(np.nanmean(pearson_per_series(predicted_mv, true_mv))),
            "vm_rmse_mv": float(np.sqrt(np.mean((predicted_mv - true_mv) ** 2))),
            **activation_metrics(derived, truth),
            "activation_undetected_fraction": float(np.mean(np.isnan(derived))),
            "apd_error_ms": float(np.nanmean(np.abs(apd_ms(predicted_mv, dt_ms) - apd_ms(true_mv, dt_ms))))}


def write_metrics(rows: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    columns = sorted({key for row in rows for key in row}, key=lambda k: (k not in ("network", "split", "samples",
                                                                                     "patients"), k))
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in row.items()})


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The metrics table beside paper 3's values."""
    lines = ["| network | split | samples | patients | activation MAE (ms) | sd (ms) | V_m Pearson | V_m RMSE (mV) "
             "| APD error (ms) |", "|---|---|---|---|---|---|---|---|---|"]

    def cell(row: Mapping[str, Any], key: str, digits: int = 2) -> str:
        value = row.get(key)
        return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"

    for row in rows:
        lines.append(f"| {row['network']} | {row['split']} | {row['samples']} | {row['patients']} | "
                     f"{cell(row, 'activation_mae_ms')} | {cell(row, 'activation_error_sd_ms')} | "
                     f"{cell(row, 'vm_pearson', 4)} | {cell(row, 'vm_rmse_mv')} | {cell(row, 'apd_error_ms')} |")
    lines.append("| I (paper 3) | random 95/5 | 807 | 1 heart | 1.66 | 1.49 | – | – | – |")
    lines.append("| II (paper 3) | random 95/5 | 807 | 1 heart | 6.5 | – | 0.9745 | – | 9.79 |")
    return "\n".join(lines) + "\n"


def train_ecg2act_job(*, network: str, bank_paths: Sequence[str | Path], section: Mapping[str, Any], workdir: str | Path,
                      out_model: str | Path, out_losses: str | Path, out_plot: str | Path) -> None:
    """Train Network ``network`` on the training patients' banks (rule ``train_ecg2act``)."""
    import torch

    from ecgcohort.ecg2act.networks import (Ecg2ActNetwork, NetworkSpec, activation_normalisation, count_parameters,
                                            normalise_ecg, normalise_vm, save_network)
    from ecgcohort.learning import TensorTable, TrainingSpec, fit
    from ecgcohort.learning.backbone import write_history

    banks = open_banks(bank_paths)
    test_banks = [str(p) for p, split in zip(bank_paths, _bank_splits(bank_paths)) if split != "train"]
    if test_banks:
        raise ValueError(f"train_ecg2act reads training patients' banks only, got {', '.join(test_banks)}")
    count = banks.sizes["sample"]
    fit_rows, validation_rows = random_split(count, float(section["validation_fraction"]), int(section["seed"]))
    ecg = normalise_ecg(banks.ecg.values).astype(np.float32)
    spec = NetworkSpec(network=network, n_times=ecg.shape[-1], seed=int(section["seed"]),
                       **dict(section["networks"][network].get("architecture", {})))
    model = Ecg2ActNetwork(spec)
    metadata: dict[str, Any] = {"config": json.loads(json.dumps(dict(section), default=list)),
                                "patients": sorted(set(banks.patient.values.tolist())),
                                "validation_samples": banks.sample.values[validation_rows].tolist(),
                                "dt_ms": float(np.diff(banks.time.values[:2])[0])}
    if network == "I":
        target = banks.activation_time.values
        if np.isnan(target).any():
            raise ValueError("the training banks have sites that never exceed 0 mV (NaN activation times)")
        offset, scale = activation_normalisation(target[fit_rows])
        model.set_target_normalisation(offset, scale)
        target = target.astype(np.float32)
    else:
        vm = banks.vm.values
        _, vm_scale = normalise_vm(vm[fit_rows])
        metadata["vm_bounds_mv"] = [float(vm_scale.low), float(vm_scale.high)]
        target = normalise_vm(vm, bounds_mv=(vm_scale.low, vm_scale.high))[0].astype(np.float32)
    training = TrainingSpec.from_config(section["networks"][network]["training"], seed=int(section["seed"]))

    def table(rows: np.ndarray) -> TensorTable:
        return TensorTable({"ecg": torch.from_numpy(ecg[rows]), "target": torch.from_numpy(target[rows])})

    log.info("Network %s: %d parameters (paper %s), %d training and %d validation samples from %d patients",
             network, count_parameters(model), {"I": "486,657", "II": "392,907"}[network], len(fit_rows),
             len(validation_rows), len(metadata["patients"]))
    result = fit(model, table(fit_rows), training, workdir, validation=table(validation_rows),
                 settings={"spec": spec.to_config(), "samples": banks.sample.values.tolist(), **metadata},
                 name=f"ecg2act Network {network}")
    model.load_state_dict(result.best_state_dict)
    write_history(result.history, out_losses, out_plot, title=f"ECG -> activation, Network {network}")
    metadata["training"] = {"epochs": training.epochs, "best_epoch": result.best_epoch,
                            "samples_per_second": result.samples_per_second, "seconds": result.seconds,
                            "device": result.device, "precision": result.precision,
                            "parameters": count_parameters(model), "training_samples": len(fit_rows)}
    save_network(out_model, model, metadata)
    log.info("Network %s: %d epochs in %.1f s on %s (%.0f samples/s), best epoch %d", network, training.epochs,
             result.seconds, result.device, result.samples_per_second, result.best_epoch)


def _bank_splits(paths: Sequence[str | Path]) -> list[str]:
    import xarray as xr

    return [str(xr.open_zarr(path, consolidated=True).attrs.get("split", "")) for path in paths]


def evaluate_ecg2act_job(*, model_paths: Mapping[str, str | Path], train_bank_paths: Sequence[str | Path],
                         test_bank_paths: Sequence[str | Path], out_metrics: str | Path, out_summary: str | Path,
                         out_boxes: str | Path, out_map: str | Path, out_overlays: str | Path) -> None:
    """Score both networks on both splits (module docstring): ``metrics.csv``, a markdown
    summary beside the paper, and Figs. 3b–d and 4a–c (rule ``evaluate_ecg2act``)."""
    import time

    import xarray as xr

    from ecgcohort.ecg2act.figures import activation_map_comparison, site_error_boxes, vm_overlays
    from ecgcohort.ecg2act.networks import load_network, predict

    train_banks, test_banks = open_banks(train_bank_paths), open_banks(test_bank_paths)
    positions = {str(bank.attrs["patient"]): bank.site_position.values
                 for bank in (xr.open_zarr(path, consolidated=True) for path in test_bank_paths)}
    rows, boxes = [], {}
    labels = [str(s) for s in train_banks.site_label.values[:75]] if "site_label" in train_banks else []
    for network, path in sorted(model_paths.items()):
        model, metadata = load_network(path, network)
        dt_ms = float(metadata["dt_ms"])
        validation = train_banks.sel(sample=train_banks.sample.isin(metadata["validation_samples"]))
        for split, bank in (("random_samples", validation), ("held_out_patients", test_banks)):
            ecg = bank.ecg.values
            start = time.perf_counter()
            predicted = predict(model, ecg)
            per_ecg_ms = (time.perf_counter() - start) / len(ecg) * 1e3
            row: dict[str, Any] = {"network": network, "split": split, "samples": int(len(ecg)),
                                   "patients": len(set(bank.patient.values.tolist())),
                                   "inference_ms_per_ecg": per_ecg_ms}
            if network == "I":
                truth = bank.activation_time.values
                row |= activation_metrics(predicted, truth)
                boxes[split] = predicted - truth
                if split == "held_out_patients":
                    sample = int(np.argmin(np.abs(np.nanmean(np.abs(predicted - truth), axis=1)
                                                  - row["activation_mae_ms"])))
                    activation_map_comparison(positions[str(bank.patient.values[sample])], truth[sample],
                                              predicted[sample], out_map,
                                              f"Network I on a held-out patient ({bank.sample.values[sample]})")
            else:
                low, high = metadata["vm_bounds_mv"]
                predicted_mv = low + (high - low) * predicted
                truth = bank.vm.values.astype(np.float64)
                row |= vm_metrics(predicted_mv, truth, dt_ms)
                if split == "held_out_patients":
                    vm_overlays(bank.time.values, truth[0], predicted_mv[0], [0, 16, 66], labels or
                                [str(k + 1) for k in range(75)], out_overlays,
                                f"Network II on a held-out patient ({bank.sample.values[0]})")
            rows.append(row)
            log.info("Network %s, %s: %s", network, split, json.dumps({k: (round(v, 4) if isinstance(v, float)
                                                                          else v) for k, v in row.items()}))
    write_metrics(rows, out_metrics)
    with atomic_path(out_summary) as temporary:
        temporary.write_text(markdown_table(rows))
    site_error_boxes(boxes, labels, out_boxes)
