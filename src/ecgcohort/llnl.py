"""The public LLNL dataset layout (Landajuela, Anirudh & Blake, "Dataset of simulated
intracardiac transmembrane voltage recordings and ECG signals", UCSD Library 2022), both ways.

One simulation is two NumPy files in one folder, paired by the part of the name after the
prefix: ``pECGData_<name>.npy`` and ``VmData_<name>.npy``.

* ``pECGData_<name>.npy`` — (T, 10) float, T = 500 samples of 1 ms; columns the unipolar
  electrode potentials :data:`LLNL_COLUMNS` = RA LA LL RL V1 … V6 (mV). RL is the ground
  electrode and enters no lead.
* ``VmData_<name>.npy`` — (T, 75) float: the transmembrane voltage (mV) at the 75 recording
  sites (17 LV endocardial AHA points, 13 RV endocardial, 20 epicardial, 25 mid-myocardial).

In memory (:class:`LLNLSamples`) the layout is the paper's: the 12-lead ECG X (S, 12, T) and
V_m as V (S, 75, T), sites before time — the layout Network II predicts — and activation times
A (S, 75) in ms by :func:`activation_times`.

:func:`write_llnl` writes arrays in this layout and :func:`export_bank` a whole simulation
bank store of the ``ecg2act`` stage (also ``python -m ecgcohort.llnl BANK.zarr FOLDER``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_WEIGHTS, lead_electrode_indices
from ecgcohort.io import atomic_path

#: Columns of a ``pECGData`` file: unipolar potentials, RL the ground electrode.
LLNL_COLUMNS: tuple[str, ...] = ("RA", "LA", "LL", "RL", "V1", "V2", "V3", "V4", "V5", "V6")
#: Number of V_m recording sites (columns of a ``VmData`` file).
N_SITES = 75
#: Sampling interval of both files, ms.
LLNL_DT_MS = 1.0
ECG_PREFIX = "pECGData_"
VM_PREFIX = "VmData_"
SUFFIX = ".npy"

_ECG_NAME = re.compile(rf"^{re.escape(ECG_PREFIX)}(.+){re.escape(SUFFIX)}$")
_VM_NAME = re.compile(rf"^{re.escape(VM_PREFIX)}(.+){re.escape(SUFFIX)}$")
#: positions of RA, LA, LL, V1…V6 (LEAD_ELECTRODES) among the LLNL columns
_LEAD_COLUMNS = lead_electrode_indices(LLNL_COLUMNS)


@dataclass(frozen=True)
class LLNLSamples:
    """Simulations of an LLNL folder, sorted by name.

    ``names`` (S,): the file-name part after the prefix; ``ecg`` (S, 12, T): the 12 leads in
    :data:`~ecgcohort.ecg.leads.LEAD_NAMES` order, in the file's units (mV); ``vm`` (S, 75, T):
    V_m in mV, sites × time (the files' (T, 75) transposed); ``activation_ms`` (S, 75): the
    first time V_m > 0 mV (:func:`activation_times`, NaN where a site never exceeds 0);
    ``dt_ms``: the sampling interval."""

    names: tuple[str, ...]
    ecg: np.ndarray
    vm: np.ndarray
    activation_ms: np.ndarray
    dt_ms: float = LLNL_DT_MS

    def __len__(self) -> int:
        return len(self.names)

    @property
    def n_times(self) -> int:
        return int(self.ecg.shape[-1])


def llnl_name(path: str | Path) -> tuple[str, str]:
    """(kind, name) of an LLNL file: kind ``"ecg"`` for ``pECGData_<name>.npy``, ``"vm"`` for
    ``VmData_<name>.npy``; ValueError naming any other file."""
    base = Path(path).name
    for kind, pattern in (("ecg", _ECG_NAME), ("vm", _VM_NAME)):
        match = pattern.match(base)
        if match:
            return kind, match.group(1)
    raise ValueError(f"{path} is not an LLNL data file: expected {ECG_PREFIX}<name>{SUFFIX} or "
                     f"{VM_PREFIX}<name>{SUFFIX}")


def _by_name(paths: Iterable[str | Path], kind: str) -> dict[str, Path]:
    prefix = ECG_PREFIX if kind == "ecg" else VM_PREFIX
    found: dict[str, Path] = {}
    for path in map(Path, paths):
        path_kind, name = llnl_name(path)
        if path_kind != kind:
            raise ValueError(f"{path} is not a {prefix}<name>{SUFFIX} file")
        if name in found:
            raise ValueError(f"two {prefix} files of the name '{name}': {found[name]} and {path}")
        found[name] = path
    return found


def pair_files(ecg_paths: Iterable[str | Path], vm_paths: Iterable[str | Path]) -> list[tuple[Path, Path]]:
    """(pECGData, VmData) pairs of the same name (the part after the prefix), sorted by name,
    whatever the order of the lists. ValueError naming every file without a partner, any
    duplicated name and any file of another pattern."""
    ecg, vm = _by_name(ecg_paths, "ecg"), _by_name(vm_paths, "vm")
    unpaired = sorted([str(ecg[n]) for n in set(ecg) - set(vm)] + [str(vm[n]) for n in set(vm) - set(ecg)])
    if unpaired:
        raise ValueError(f"{len(unpaired)} LLNL file(s) without a partner of the same name: {', '.join(unpaired)}")
    return [(ecg[name], vm[name]) for name in sorted(ecg)]


def twelve_leads_from_llnl(potentials: np.ndarray) -> np.ndarray:
    """The 12 leads (..., 12, T) (rows :data:`~ecgcohort.ecg.leads.LEAD_NAMES`, units of the
    input) of LLNL electrode potentials (..., T, 10) in :data:`LLNL_COLUMNS` order, by
    :data:`~ecgcohort.ecg.leads.LEAD_WEIGHTS` (Einthoven, Goldberger, Wilson); RL is unused."""
    phi = np.asarray(potentials, dtype=np.float64)
    if phi.ndim < 2 or phi.shape[-1] != len(LLNL_COLUMNS):
        raise ValueError(f"LLNL potentials must be (..., T, {len(LLNL_COLUMNS)}) with columns "
                         f"{' '.join(LLNL_COLUMNS)}, got shape {phi.shape}")
    return np.einsum("le,...te->...lt", LEAD_WEIGHTS, phi[..., _LEAD_COLUMNS])


def activation_times(vm: np.ndarray, dt_ms: float = LLNL_DT_MS, interpolate: bool = False) -> np.ndarray:
    """Activation times (..., 75) in ms of V_m (..., 75, T) in mV sampled every ``dt_ms`` from
    t = 0: the paper's A_i = min{t_j : V_ij > 0}, the first sample above 0 mV (as the dataset's
    tools, which take the sample index), so a step from −85 to +20 mV at t0 gives t0 exactly.

    ``interpolate=True`` gives instead the time at which the linear interpolant between the
    last sample ≤ 0 and the first > 0 crosses 0 (≤ one ``dt_ms`` earlier; 0 if the first sample
    is already > 0). Sites that never exceed 0 mV get NaN (the dataset's tools would give 0)."""
    v = np.asarray(vm, dtype=np.float64)
    if v.ndim < 2 or v.shape[-2] != N_SITES:
        raise ValueError(f"V_m must be (..., {N_SITES} sites, T samples), got shape {v.shape} (a file's (T, "
                         f"{N_SITES}) layout must be transposed)")
    if not dt_ms > 0:
        raise ValueError(f"dt_ms must be positive, got {dt_ms}")
    above = v > 0.0
    first = np.argmax(above, axis=-1)
    activated = np.take_along_axis(above, first[..., None], axis=-1)[..., 0]
    times = first.astype(np.float64)
    if interpolate:
        before = np.maximum(first - 1, 0)[..., None]
        v0 = np.take_along_axis(v, before, axis=-1)[..., 0]
        v1 = np.take_along_axis(v, first[..., None], axis=-1)[..., 0]
        later = first > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(later, -v0 / (v1 - v0), 0.0)  # v0 <= 0 < v1 where later
        times = np.where(later, first - 1 + fraction, times)
    return np.where(activated, times * dt_ms, np.nan)


def _load(path: Path, columns: int, dtype: np.dtype) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from None
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"{path}: shape {array.shape}, expected (T, {columns})")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{path}: dtype {array.dtype}, expected real numbers")
    bad = ~np.isfinite(array)
    if bad.any():
        t, c = np.argwhere(bad)[0]
        raise ValueError(f"{path}: {int(bad.sum())} non-finite value(s), the first at sample {t}, column {c}")
    return array.astype(dtype, copy=False)


def load_pair(ecg_path: str | Path, vm_path: str | Path,
              dtype: np.dtype | type = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The raw arrays of one simulation in the files' layout: potentials (T, 10) and V_m
    (T, 75), checked (shape, finite values, equal T); ValueError naming the file."""
    ecg_path, vm_path = Path(ecg_path), Path(vm_path)
    ecg = _load(ecg_path, len(LLNL_COLUMNS), np.dtype(dtype))
    vm = _load(vm_path, N_SITES, np.dtype(dtype))
    if len(ecg) != len(vm):
        raise ValueError(f"{vm_path}: {len(vm)} samples, its ECG {ecg_path} has {len(ecg)}")
    return ecg, vm


def read_llnl(folder: str | Path, *, recursive: bool = False, dtype: np.dtype | type = np.float32,
              dt_ms: float = LLNL_DT_MS) -> LLNLSamples:
    """Every simulation of an LLNL ``folder`` (its sub-folders too if ``recursive``; names must
    then be unique across them) as :class:`LLNLSamples` with ``ecg`` and ``vm`` of ``dtype``
    (float32 keeps the 16,140 simulations' V_m at 2.4 GB; activation times are taken from the
    file's values). Refuses, naming the file: an unpaired file, an array of the wrong shape,
    non-finite values, a length other than the first simulation's."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"LLNL data folder {root} does not exist")
    glob = root.rglob if recursive else root.glob
    pairs = pair_files(glob(f"{ECG_PREFIX}*{SUFFIX}"), glob(f"{VM_PREFIX}*{SUFFIX}"))
    if not pairs:
        raise ValueError(f"{root} holds no {ECG_PREFIX}<name>{SUFFIX} / {VM_PREFIX}<name>{SUFFIX} files")
    names, ecgs, vms, times = [], [], [], []
    for ecg_path, vm_path in pairs:
        potentials, vm = load_pair(ecg_path, vm_path)
        if ecgs and len(potentials) != ecgs[0].shape[-1]:
            raise ValueError(f"{ecg_path}: {len(potentials)} samples, {pairs[0][0]} has {ecgs[0].shape[-1]}")
        names.append(llnl_name(ecg_path)[1])
        ecgs.append(twelve_leads_from_llnl(potentials).astype(dtype))
        vms.append(vm.T.astype(dtype))
        times.append(activation_times(vm.T, dt_ms))
    return LLNLSamples(tuple(names), np.stack(ecgs), np.stack(vms), np.stack(times), dt_ms)


def _check_names(names: Sequence[str]) -> list[str]:
    names = [str(name) for name in names]
    for name in names:
        if not name or name in (".", "..") or any(c in name for c in ("/", "\\", "\0")):
            raise ValueError(f"'{name}' cannot be an LLNL file name part (empty, '.', '..', or a path separator)")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"repeated simulation name(s): {', '.join(repeated)}")
    return names


def write_llnl(folder: str | Path, names: Sequence[str], unipolar_ecg: np.ndarray, vm: np.ndarray,
               dtype: np.dtype | type = np.float64) -> list[tuple[Path, Path]]:
    """Write simulations in the LLNL layout (each file atomically) and return the (pECGData,
    VmData) paths in the order of ``names``.

    ``unipolar_ecg`` (S, 10, T): electrode potentials in :data:`LLNL_COLUMNS` order, or
    (S, 9, T) in :data:`~ecgcohort.ecg.leads.LEAD_ELECTRODES` order (RA LA LL V1…V6), RL then
    written as 0 (the ground); ``vm`` (S, 75, T) V_m in mV; both sampled every 1 ms for the
    dataset's tools. Files of other names already in ``folder`` are left alone."""
    names = _check_names(names)
    phi = np.asarray(unipolar_ecg, dtype=np.float64)
    v = np.asarray(vm, dtype=np.float64)
    s = len(names)
    if phi.ndim != 3 or phi.shape[0] != s or phi.shape[1] not in (len(LLNL_COLUMNS), len(LEAD_ELECTRODES)):
        raise ValueError(f"unipolar_ecg must be ({s} names, 10 LLNL columns or 9 electrodes, T), got {phi.shape}")
    if v.shape != (s, N_SITES, phi.shape[2]):
        raise ValueError(f"vm must be (S, {N_SITES}, T) = {(s, N_SITES, phi.shape[2])}, got {v.shape}")
    if phi.shape[1] == len(LEAD_ELECTRODES):
        full = np.zeros((s, len(LLNL_COLUMNS), phi.shape[2]))
        full[:, _LEAD_COLUMNS] = phi
        phi = full
    for label, array in (("unipolar_ecg", phi), ("vm", v)):
        bad = ~np.isfinite(array).reshape(s, -1).all(axis=1)
        if bad.any():
            raise ValueError(f"{label} of simulation '{names[int(np.argmax(bad))]}' has non-finite values")
    root = Path(folder)
    written = []
    for name, potentials, voltage in zip(names, phi, v):
        pair = (root / f"{ECG_PREFIX}{name}{SUFFIX}", root / f"{VM_PREFIX}{name}{SUFFIX}")
        for path, array in zip(pair, (potentials, voltage)):
            with atomic_path(path) as temporary, open(temporary, "wb") as stream:
                np.save(stream, np.ascontiguousarray(array.T, dtype=dtype))
        written.append(pair)
    return written


def export_bank(bank_zarr: str | Path, folder: str | Path, *, limit: int | None = None,
                dtype: np.dtype | type = np.float64) -> list[tuple[Path, Path]]:
    """Write a simulation bank (``results/ecg2act/bank/<patient>.zarr``) in the LLNL layout:
    one pair per sample, named after its ``sample`` label with ``/`` as ``_``
    (``test-0000_00012``), electrode potentials and V_m in mV every 1 ms. ``limit`` keeps the
    first samples only. A bank sampled at another interval, or lacking a variable, is refused
    with the store named; nothing is written then."""
    import xarray as xr

    bank_path = Path(bank_zarr)
    try:
        bank = xr.open_zarr(bank_path)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise ValueError(f"{bank_path} is not a simulation bank store: {error}") from None
    missing = sorted({"unipolar_ecg", "vm"} - set(bank.data_vars) | {"electrode", "time"} - set(bank.coords))
    if missing:
        raise ValueError(f"{bank_path} lacks {', '.join(missing)}: not a simulation bank store")
    steps = np.diff(bank.time.values)
    if len(steps) and not np.allclose(steps, LLNL_DT_MS):
        raise ValueError(f"{bank_path} is sampled every {steps[0]:g} ms; the LLNL layout is {LLNL_DT_MS:g} ms")
    if limit is not None:
        bank = bank.isel(sample=slice(0, limit))
    names = [str(label).replace("/", "_") for label in bank.sample.values]
    unipolar = bank.unipolar_ecg.sel(electrode=list(LEAD_ELECTRODES)).transpose("sample", "electrode", "time")
    vm = bank.vm.transpose("sample", "site", "time")
    return write_llnl(folder, names, unipolar.values, vm.values, dtype=dtype)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m ecgcohort.llnl BANK.zarr FOLDER [--limit N]``: :func:`export_bank`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecgcohort.llnl",
                                     description="Write a simulation bank in the LLNL dataset layout.")
    parser.add_argument("bank", help="a results/ecg2act/bank/<patient>.zarr store")
    parser.add_argument("folder", help="where the pECGData_/VmData_ files go (created)")
    parser.add_argument("--limit", type=int, help="the first N samples only")
    args = parser.parse_args(argv)
    try:
        written = export_bank(args.bank, args.folder, limit=args.limit)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    print(f"{len(written)} simulation(s) written to {args.folder} ({ECG_PREFIX}<name>{SUFFIX}, "
          f"{VM_PREFIX}<name>{SUFFIX})")


__all__ = ["LLNLSamples", "LLNL_COLUMNS", "LLNL_DT_MS", "N_SITES", "activation_times", "export_bank", "llnl_name",
           "load_pair", "pair_files", "read_llnl", "twelve_leads_from_llnl", "write_llnl"]

if __name__ == "__main__":
    main()
