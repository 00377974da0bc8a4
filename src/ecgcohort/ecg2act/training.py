"""Training and evaluation of Networks I and II on the simulation banks (rules
``train_ecg2act`` and ``evaluate_ecg2act``).

Both splits come from one training run per network. The training patients' samples are split
at random three ways (:func:`random_splits`): ``scored_fraction`` (the paper: 5 %) held out and
scored — the paper's random split (a); ``validation_fraction`` held out to pick the best epoch;
the rest trained on. The set that picks the epoch is never the set that is scored, so the
random split's figures are not chosen on themselves. Split (b) scores the same network on every
sample of the test patients, whose banks no training rule reads: hearts and torsos the network
never saw. Each set must hold at least ``min_scored_samples`` samples (paper scale: 500).

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
import os
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


def random_splits(count: int, validation_fraction: float, scored_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training, validation, scored) sample indices, sorted and disjoint: one permutation of
    ``count`` from ``seed``, its first ``round(scored_fraction · count)`` scored, the next
    ``round(validation_fraction · count)`` for the best epoch (at least one each), the rest
    trained on. The scored set depends on (count, scored_fraction, seed) only."""
    for key, fraction in (("validation_fraction", validation_fraction), ("scored_fraction", scored_fraction)):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"ecg2act.{key} must be in (0, 1), got {fraction}")
    if count < 3:
        raise ValueError(f"the training banks hold {count} sample(s); need at least 3 to train, pick the epoch "
                         "and score")
    scored = max(1, int(round(scored_fraction * count)))
    validation = max(1, int(round(validation_fraction * count)))
    if scored + validation >= count:
        raise ValueError(f"ecg2act.scored_fraction ({scored_fraction}) and validation_fraction "
                         f"({validation_fraction}) leave none of the {count} training samples to train on")
    order = np.random.default_rng(seed).permutation(count)
    return (np.sort(order[scored + validation:]), np.sort(order[scored:scored + validation]),
            np.sort(order[:scored]))


def check_evaluation_size(split: str, count: int, minimum: int) -> None:
    """ValueError when ``split``'s scored set holds fewer than ``minimum`` samples
    (``ecg2act.min_scored_samples``)."""
    if count < minimum:
        raise ValueError(f"the {split} evaluation set holds {count} samples, fewer than ecg2act.min_scored_samples "
                         f"= {minimum}: grow ecg2act.bank.count, ecg2act.scored_fraction or the test patients")


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


def vm_metric_parts(predicted_mv: np.ndarray, true_mv: np.ndarray, dt_ms: float) -> dict[str, np.ndarray]:
    """What :func:`vm_metrics` is computed from, per series (S, 75) and as a sum, for V_m
    (S, 75, T) in mV: parts of several banks concatenate (:func:`metrics_of_vm_parts`), so the
    metrics of a cohort's banks need one bank in memory at a time."""
    true_mv = np.asarray(true_mv, dtype=np.float64)
    return {"pearson": pearson_per_series(predicted_mv, true_mv),
            "derived_ms": activation_times(predicted_mv, dt_ms), "true_ms": activation_times(true_mv, dt_ms),
            "apd_error_ms": np.abs(apd_ms(predicted_mv, dt_ms) - apd_ms(true_mv, dt_ms)),
            "squared_error_sum": np.array([np.sum((predicted_mv - true_mv) ** 2)]),
            "values": np.array([true_mv.size])}


def metrics_of_vm_parts(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Network II's metrics (module docstring) from :func:`vm_metric_parts` of one or more banks."""
    whole = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return {"vm_pearson": float(np.nanmean(whole["pearson"])),
            "vm_rmse_mv": float(np.sqrt(whole["squared_error_sum"].sum() / whole["values"].sum())),
            **activation_metrics(whole["derived_ms"], whole["true_ms"]),
            "activation_undetected_fraction": float(np.mean(np.isnan(whole["derived_ms"]))),
            "apd_error_ms": float(np.nanmean(whole["apd_error_ms"]))}


def vm_metrics(predicted_mv: np.ndarray, true_mv: np.ndarray, dt_ms: float) -> dict[str, float]:
    """Network II's metrics (module docstring) of V_m (S, 75, T) in mV."""
    return metrics_of_vm_parts([vm_metric_parts(predicted_mv, true_mv, dt_ms)])


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
    lines.append("| I (paper 3) | random 95/5 | 807 | several hearts | 1.66 | 1.49 | – | – | – |")
    lines.append("| II (paper 3) | random 95/5 | 807 | several hearts | 6.5 | – | 0.9745 | – | 9.79 |")
    lines.append("")
    for row in rows:
        if row["split"] == "random_samples" and "best_epoch" in row:
            lines.append(f"Network {row['network']}: best epoch {row['best_epoch']} of {row['epochs']}, picked on "
                         f"{row['validation_samples']} validation samples of the training patients, disjoint from "
                         f"the {row['samples']} scored.")
    return "\n".join(lines) + "\n"


class BankRows:
    """The banks of one ``split``'s patients read one patient at a time, for tables of selected
    samples: ``counts`` samples per bank, the samples' names, the patients, the time step (ms). Rows are numbered
    across the banks in the order of ``paths``, as :func:`open_banks` numbers them. Each array
    is opened on its own (zarr, without the group's consolidated metadata: 2 ms where opening
    the group takes 13 ms and xarray about 70 ms; a 10,000-patient cohort has 9,000 banks)."""

    def __init__(self, paths: Sequence[str | Path], split: str = "train"):
        import zarr

        if not paths:
            raise ValueError("no simulation banks given")
        self.paths = [str(path) for path in paths]
        self.counts, self.samples, self.patients, not_train = [], [], [], []
        dt_ms = None
        for path in self.paths:
            attributes = zarr.open_group(path, mode="r", use_consolidated=False).attrs
            if str(attributes.get("split", "")) != split:
                not_train.append(path)
            names = [str(name) for name in zarr.open_array(path, path="sample", mode="r")[:]]
            self.counts.append(len(names))
            self.samples.extend(names)
            self.patients.append(str(attributes["patient"]))
            if dt_ms is None:
                dt_ms = float(np.diff(zarr.open_array(path, path="time", mode="r")[:2])[0])
        if not_train:
            which = {"train": "training", "test": "test"}.get(split, split)
            raise ValueError(f"expected the {which} patients' banks only, got {', '.join(not_train)}")
        self.dt_ms = float(dt_ms)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def local(self, rows: np.ndarray) -> list[np.ndarray]:
        """``rows`` (sorted, global) as each bank's own sample indices."""
        return [rows[(rows >= start) & (rows < stop)] - start for start, stop in zip(self.starts[:-1], self.starts[1:])]

    def sample_name(self, bank: int, row: int) -> str:
        """The name of bank ``bank``'s sample ``row`` (its own index)."""
        return self.samples[int(self.starts[bank]) + int(row)]

    def read(self, bank: int, names: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        import zarr

        return {name: zarr.open_array(self.paths[bank], path=name, mode="r")[:][rows] for name in names}


def _ecg2act_tables(network: str, bank_rows: BankRows, fit_rows: np.ndarray, validation_rows: np.ndarray,
                    budget_bytes: int):
    """(training table, validation table, normalisation, resident) for ``network``: the ECGs
    normalised per lead, the target (Network I: activation times, ms, normalised by the model;
    Network II: V_m scaled to [0, 1] by the training rows' range). The training table stays
    in memory when it fits ``budget_bytes`` - rows in global order, as one concatenated array
    gives them - else it is streamed one bank per block (:class:`~ecgcohort.learning.StreamedTable`)
    from a scratch file (:class:`SpilledRows`) that the same pass fills: an epoch then reads its
    rows back from one file instead of decoding 9,000 banks again (358 s an epoch at 10,000
    patients) - or, where the scratch directory has no room for them (:func:`scratch_fits`),
    from the banks. The validation rows are held in memory. One pass over the banks finds the
    normalisation, reads the validation rows into their table and the training rows into
    memory or the scratch file; each table is allocated once and filled bank by bank."""
    import torch

    from ecgcohort.ecg2act.networks import activation_normalisation, normalise_ecg, normalise_vm
    from ecgcohort.learning import StreamedTable, TensorTable

    target_name = {"I": "activation_time", "II": "vm"}[network]
    names = ("ecg", target_name)
    fit_local, validation_local = bank_rows.local(fit_rows), bank_rows.local(validation_rows)
    first = bank_rows.read(0, names, np.arange(1))
    shapes = {"ecg": first["ecg"].shape[1:], "target": first[target_name].shape[1:]}
    row_bytes = 4 * (int(np.prod(shapes["ecg"])) + int(np.prod(shapes["target"])))
    resident = len(fit_rows) * row_bytes <= budget_bytes

    def empty(rows: int) -> dict[str, np.ndarray]:
        return {name: np.empty((rows, *shape), dtype=np.float32) for name, shape in shapes.items()}

    # the pass: the target's training statistics (Network I: every training time, 300 bytes a
    # sample; Network II: the range), the validation rows (V_m scaled once the range is known),
    # the training rows (the target scaled once the range is known: in memory, or when read back)
    validation, filled = empty(len(validation_rows)), 0
    spilled = not resident and scratch_fits(len(fit_rows) * row_bytes)
    training = empty(len(fit_rows)) if resident else {
        name: SpilledRows(f"ecg2act-{network}-{name}", shape) for name, shape in shapes.items()} if spilled else {}
    fit_times, low, high, trained_rows = [], np.inf, -np.inf, 0
    for bank, (fit, held) in enumerate(zip(fit_local, validation_local)):
        arrays = bank_rows.read(bank, names, np.concatenate([fit, held]))
        target = arrays[target_name]
        if network == "I":
            if np.isnan(target).any():
                raise ValueError(f"{bank_rows.paths[bank]} has sites that never exceed 0 mV (NaN activation times)")
            fit_times.append(target[:len(fit)])
        elif len(fit):
            trained = np.asarray(target[:len(fit)], dtype=np.float64)
            low, high = min(low, float(trained.min())), max(high, float(trained.max()))
        block = slice(filled, filled + len(held))
        validation["ecg"][block] = normalise_ecg(arrays["ecg"][len(fit):])
        validation["target"][block] = target[len(fit):]
        filled += len(held)
        if len(fit) and resident:
            block = slice(trained_rows, trained_rows + len(fit))
            training["ecg"][block] = normalise_ecg(arrays["ecg"][:len(fit)])
            training["target"][block] = target[:len(fit)]
        elif len(fit) and spilled:
            training["ecg"].append(normalise_ecg(arrays["ecg"][:len(fit)]))
            training["target"].append(target[:len(fit)])
        trained_rows += len(fit)

    if network == "I":
        offset, scale = activation_normalisation(np.concatenate(fit_times))
        normalisation: dict[str, Any] = {"offset": offset, "scale": scale}

        def scaled_target(raw: np.ndarray) -> np.ndarray:
            return raw
    else:
        if not high > low:
            raise ValueError("V_m is constant over the training samples: no [0, 1] scaling")
        normalisation = {"vm_bounds_mv": (low, high)}

        def scaled_target(raw: np.ndarray) -> np.ndarray:
            return normalise_vm(raw, bounds_mv=(low, high))[0]

        tables = [validation["target"]] + ([training["target"]] if resident else [])
        for table in tables:
            for start in range(0, len(table), 256):  # in place, in float64 a slice at a time
                piece = table[start:start + 256]
                piece[...] = scaled_target(piece)

    validation_table = TensorTable({name: torch.from_numpy(array) for name, array in validation.items()})
    if resident:
        return (TensorTable({name: torch.from_numpy(array) for name, array in training.items()}), validation_table,
                normalisation, resident)
    with_rows = [bank for bank, fit in enumerate(fit_local) if len(fit)]
    counts = [len(fit_local[bank]) for bank in with_rows]
    starts = np.concatenate([[0], np.cumsum(counts)])

    def block_of(index: int) -> dict[str, np.ndarray]:
        if spilled:
            start, stop = int(starts[index]), int(starts[index + 1])
            ecg, raw = training["ecg"].read(start, stop), training["target"].read(start, stop)
        else:  # read from the bank again
            arrays = bank_rows.read(with_rows[index], names, fit_local[with_rows[index]])
            ecg, raw = normalise_ecg(arrays["ecg"]).astype(np.float32), arrays[target_name]
        return {"ecg": ecg, "target": scaled_target(raw).astype(np.float32)}

    log.info("ECG -> activation Network %s: %d training rows streamed %s", network, len(fit_rows),
             "from a scratch file" if spilled else "from the banks (no room for them in the scratch directory)")
    return StreamedTable(block_of, counts), validation_table, normalisation, resident


def scratch_fits(size_bytes: int, *, margin: float = 1.2, keep_bytes: int = 5 * 2 ** 30) -> bool:
    """Whether ``size_bytes`` (times ``margin``) fit in the scratch directory (``$TMPDIR``) and
    leave ``keep_bytes`` free: a 10,000-patient cohort's Network II rows are about 86 GB."""
    import shutil
    import tempfile

    return shutil.disk_usage(tempfile.gettempdir()).free - margin * size_bytes >= keep_bytes


class SpilledRows:
    """Rows of float32 arrays of one shape appended to a scratch file in ``$TMPDIR`` (node-local
    scratch on a cluster) and read back by row range. The file's name is removed at once: the
    open descriptor keeps it while the object lives, and its space comes back when the process
    ends, killed or not, leaving no file behind. Plain reads and writes, not a memory map, so
    its pages are the kernel's cache, not the job's resident memory."""

    def __init__(self, name: str, row_shape: tuple[int, ...]):
        import tempfile

        self.row_shape = tuple(int(n) for n in row_shape)
        self.row_bytes = 4 * int(np.prod(self.row_shape, dtype=np.int64))
        self.rows = 0
        handle, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".f32")
        os.unlink(path)
        self._file = os.fdopen(handle, "r+b", buffering=0)

    def append(self, rows: np.ndarray) -> None:
        data = np.ascontiguousarray(rows, dtype=np.float32)
        if data.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {data.shape[1:]} appended to rows of shape {self.row_shape}")
        self._file.seek(self.rows * self.row_bytes)
        self._file.write(memoryview(data).cast("B"))
        self.rows += len(data)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` (a new array)."""
        out = np.empty((stop - start, *self.row_shape), dtype=np.float32)
        view = memoryview(out).cast("B")
        done = 0
        while done < len(view):
            count = os.preadv(self._file.fileno(), [view[done:]], start * self.row_bytes + done)
            if count <= 0:
                raise OSError(f"the scratch file of {self.rows} rows ended before row {stop}")
            done += count
        return out


def train_ecg2act_job(*, network: str, bank_paths: Sequence[str | Path], section: Mapping[str, Any], workdir: str | Path,
                      out_model: str | Path, out_losses: str | Path, out_plot: str | Path,
                      memory_mb: float | None = None) -> None:
    """Train Network ``network`` on the training patients' banks (rule ``train_ecg2act``): the
    banks read one at a time, the training rows held in memory when they fit the device's
    budget (:func:`~ecgcohort.learning.device.memory_budget_bytes` of the job's ``memory_mb``),
    else streamed a bank per block."""
    from ecgcohort.ecg2act.networks import Ecg2ActNetwork, NetworkSpec, count_parameters, save_network
    from ecgcohort.learning import TrainingSpec, fit
    from ecgcohort.learning.backbone import write_history
    from ecgcohort.learning.device import memory_budget_bytes, resolve_device

    bank_rows = BankRows(bank_paths)
    fit_rows, validation_rows, scored_rows = random_splits(
        len(bank_rows), float(section["validation_fraction"]), float(section["scored_fraction"]), int(section["seed"]))
    check_evaluation_size("random_samples", len(scored_rows), int(section["min_scored_samples"]))
    network_section = section["networks"][network]
    training = TrainingSpec.from_config(network_section["training"], seed=int(section["seed"]))
    table, validation, normalisation, resident = _ecg2act_tables(
        network, bank_rows, fit_rows, validation_rows, memory_budget_bytes(resolve_device(training.device), job_mb=memory_mb))
    spec = NetworkSpec(network=network, n_times=int(validation.columns["ecg"].shape[-1]), seed=int(section["seed"]),
                       **dict(network_section.get("architecture", {})))
    model = Ecg2ActNetwork(spec)
    onset_shift_ms = float(network_section["training"].get("onset_shift_ms", 0.0))
    model.set_onset_shift(int(round(onset_shift_ms / bank_rows.dt_ms)), bank_rows.dt_ms)
    metadata: dict[str, Any] = {"config": json.loads(json.dumps(dict(section), default=list)),
                                "patients": sorted(set(bank_rows.patients)),
                                "validation_samples": [bank_rows.samples[i] for i in validation_rows],
                                "scored_samples": [bank_rows.samples[i] for i in scored_rows],
                                "dt_ms": bank_rows.dt_ms}
    if network == "I":
        model.set_target_normalisation(normalisation["offset"], normalisation["scale"])
    else:
        metadata["vm_bounds_mv"] = [float(bound) for bound in normalisation["vm_bounds_mv"]]

    log.info("Network %s: %d parameters (paper %s), %d training (%s), %d validation (best epoch) and %d scored "
             "samples from %d patients; dropout %g, onset shift 0-%g ms", network, count_parameters(model),
             {"I": "486,657", "II": "392,907"}[network], len(fit_rows),
             "in memory" if resident else "streamed a bank at a time", len(validation_rows), len(scored_rows),
             len(metadata["patients"]), spec.dropout, model.onset_shift_samples * model.dt_ms)
    result = fit(model, table, training, workdir, validation=validation,
                 settings={"spec": spec.to_config(), "samples": bank_rows.samples, **metadata},
                 name=f"ecg2act Network {network}")
    model.load_state_dict(result.best_state_dict)
    write_history(result.history, out_losses, out_plot, title=f"ECG -> activation, Network {network}")
    metadata["training"] = {"epochs": training.epochs, "best_epoch": result.best_epoch,
                            "samples_per_second": result.samples_per_second, "seconds": result.seconds,
                            "device": result.device, "precision": result.precision,
                            "parameters": count_parameters(model), "training_samples": len(fit_rows),
                            "validation_samples": len(validation_rows), "scored_samples": len(scored_rows),
                            "dropout": spec.dropout, "onset_shift_ms": model.onset_shift_samples * model.dt_ms,
                            "resident": resident}
    save_network(out_model, model, metadata)
    log.info("Network %s: %d epochs in %.1f s on %s (%.0f samples/s), best epoch %d", network, training.epochs,
             result.seconds, result.device, result.samples_per_second, result.best_epoch)


def evaluation_sets(metadata: Mapping[str, Any], train_samples: Sequence[str], test_samples: Sequence[str],
                    test_patients: Sequence[str], network: str = "") -> dict[str, np.ndarray]:
    """The rows each split scores for a trained network's ``metadata``: ``random_samples`` —
    the scored samples it recorded, indices into ``train_samples``; ``held_out_patients`` —
    every one of ``test_samples``. ValueError when the scored set meets the set that picked the
    epoch, a scored sample is missing from the banks, a sample is in both banks' sets or a test
    patient was trained on."""
    name = f"Network {network}" if network else "the network"
    if "scored_samples" not in metadata:
        raise ValueError(f"{name}'s model file records no scored samples (trained before the best epoch was picked "
                         "on a set of its own): train it again")
    scored, validation = set(metadata["scored_samples"]), set(metadata["validation_samples"])
    shared = sorted(scored & validation)
    if shared:
        raise ValueError(f"{name}: {len(shared)} scored sample(s) also picked the best epoch, e.g. {shared[0]}")
    index = {sample: row for row, sample in enumerate(train_samples)}
    missing = sorted(scored - set(index))
    if missing:
        raise ValueError(f"{name}: scored sample {missing[0]} (and {len(missing) - 1} more) is not in the training "
                         "patients' banks")
    trained_on = sorted(set(test_patients) & set(metadata["patients"]))
    if trained_on:
        raise ValueError(f"{name} was trained on test patient(s) {', '.join(trained_on)}: no unseen-patient split")
    both = sorted(set(train_samples) & set(test_samples))
    if both:
        raise ValueError(f"sample {both[0]} (and {len(both) - 1} more) is in both the training and the test banks")
    return {"random_samples": np.sort(np.array([index[sample] for sample in scored], dtype=np.int64)),
            "held_out_patients": np.arange(len(test_samples), dtype=np.int64)}


def evaluate_ecg2act_job(*, model_paths: Mapping[str, str | Path], train_bank_paths: Sequence[str | Path],
                         test_bank_paths: Sequence[str | Path], out_metrics: str | Path, out_summary: str | Path,
                         out_boxes: str | Path, out_map: str | Path, out_overlays: str | Path,
                         min_scored_samples: int = 1) -> None:
    """Score both networks on both splits (module docstring): ``metrics.csv``, a markdown
    summary beside the paper, and Figs. 3b–d and 4a–c (rule ``evaluate_ecg2act``). The banks
    are read one at a time (the held-out patients' V_m is about 8 GB at 10,000 patients); per
    sample only the (S, 75) site values the metrics and figures need are kept."""
    import time

    import zarr

    from ecgcohort.ecg2act.figures import activation_map_comparison, site_error_boxes, vm_overlays
    from ecgcohort.ecg2act.networks import load_network, predict

    train_rows, test_rows = BankRows(train_bank_paths), BankRows(test_bank_paths, split="test")
    try:  # the array on its own: listing the group meets Snakemake's .snakemake_timestamp
        labels = [str(s) for s in zarr.open_array(str(train_bank_paths[0]), path="site_label", mode="r")[:75]]
    except (FileNotFoundError, KeyError):
        labels = []
    rows, boxes = [], {}
    for network, path in sorted(model_paths.items()):
        model, metadata = load_network(path, network)
        dt_ms = float(metadata["dt_ms"])
        chosen_rows = evaluation_sets(metadata, train_rows.samples, test_rows.samples, test_rows.patients, network)
        for split, bank_rows in (("random_samples", train_rows), ("held_out_patients", test_rows)):
            chosen = chosen_rows[split]
            check_evaluation_size(split, len(chosen), min_scored_samples)
            target = {"I": "activation_time", "II": "vm"}[network]
            seconds, parts, patients, overlay = 0.0, [], set(), None
            for bank, local in enumerate(bank_rows.local(chosen)):
                if not len(local):
                    continue
                arrays = bank_rows.read(bank, ("ecg", target), local)
                start = time.perf_counter()
                predicted = predict(model, arrays["ecg"])
                seconds += time.perf_counter() - start
                patients.add(bank_rows.patients[bank])
                if network == "I":
                    parts.append({"predicted": predicted, "truth": arrays[target], "bank": np.full(len(local), bank),
                                  "sample": local})
                else:
                    low, high = metadata["vm_bounds_mv"]
                    predicted_mv = low + (high - low) * predicted
                    parts.append(vm_metric_parts(predicted_mv, arrays[target], dt_ms))
                    if overlay is None:
                        overlay = (bank, int(local[0]), arrays[target][0].astype(np.float64), predicted_mv[0])
            count = int(len(chosen))
            trained = metadata["training"]
            row: dict[str, Any] = {"network": network, "split": split, "samples": count, "patients": len(patients),
                                   "inference_ms_per_ecg": seconds / max(count, 1) * 1e3,
                                   "best_epoch": trained["best_epoch"], "epochs": trained["epochs"],
                                   "validation_samples": len(metadata["validation_samples"])}
            if network == "I":
                predicted, truth = (np.concatenate([p[name] for p in parts]) for name in ("predicted", "truth"))
                row |= activation_metrics(predicted, truth)
                boxes[split] = predicted - truth
                if split == "held_out_patients":
                    sample = int(np.argmin(np.abs(np.nanmean(np.abs(predicted - truth), axis=1)
                                                  - row["activation_mae_ms"])))
                    bank = int(np.concatenate([p["bank"] for p in parts])[sample])
                    local = int(np.concatenate([p["sample"] for p in parts])[sample])
                    positions = zarr.open_array(bank_rows.paths[bank], path="site_position", mode="r")[:]
                    activation_map_comparison(positions, truth[sample], predicted[sample], out_map,
                                              "Network I on a held-out patient "
                                              f"({bank_rows.sample_name(bank, local)})")
            else:
                row |= metrics_of_vm_parts(parts)
                if split == "held_out_patients":
                    bank, local, truth_mv, predicted_mv = overlay
                    times = zarr.open_array(bank_rows.paths[bank], path="time", mode="r")[:]
                    vm_overlays(times, truth_mv, predicted_mv, [0, 16, 66], labels or
                                [str(k + 1) for k in range(75)], out_overlays,
                                f"Network II on a held-out patient ({bank_rows.sample_name(bank, local)})")
            rows.append(row)
            log.info("Network %s, %s: %s", network, split, json.dumps({k: (round(v, 4) if isinstance(v, float)
                                                                          else v) for k, v in row.items()}))
    write_metrics(rows, out_metrics)
    with atomic_path(out_summary) as temporary:
        temporary.write_text(markdown_table(rows))
    if boxes:  # Network I's figure; a Network II-only evaluation has none
        site_error_boxes(boxes, labels, out_boxes)
