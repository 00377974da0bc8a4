"""PCA shape codes (paper 1, section 2.4): the parameters a patient was generated from — heart
and torso mode weights, the heart's rotation angles, the patient's sex and age (the torso is
drawn for them and the heart sized by sex), optionally the heart's translation — standardised
per column with the mean and standard deviation of the training split only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ecgcohort.io import atomic_path

CODE_PREFIXES = ("heart_mode_", "torso_mode_", "rotation_")
#: The patient's sex (1 female, 0 male) and age (years), after the paper's 23 columns: with them the
#: code determines the geometry (a torso mode weight is a residual for the sex and age)
PERSON_COLUMNS = ("female", "age_years")
TRANSLATION_PREFIX = "translation_"


@dataclass(frozen=True)
class PcaCodes:
    """Codes (patients × columns, standardised), the split of each patient and the scaling."""

    table: pd.DataFrame          # index: patient; columns: split, then the code columns
    columns: tuple[str, ...]
    mean: np.ndarray             # per column, in the parameter's units (sd of a mode, degree, mm)
    scale: np.ndarray
    units: tuple[str, ...]


def code_columns(parameter_names: Sequence[str], include_translation: bool) -> list[str]:
    """The parameters that make up the code, in the cohort's order: heart modes, torso modes,
    rotations (the paper's 10 + 10 + 3), sex and age where given, then translations when asked for."""
    prefixes = CODE_PREFIXES + ((TRANSLATION_PREFIX,) if include_translation else ())
    columns = [name for prefix in CODE_PREFIXES for name in parameter_names if name.startswith(prefix)]
    columns += [name for name in PERSON_COLUMNS if name in parameter_names]
    return columns + [name for prefix in prefixes[len(CODE_PREFIXES):] for name in parameter_names
                      if name.startswith(prefix)]


def pca_codes(parameters: np.ndarray, parameter_names: Sequence[str], parameter_units: Sequence[str],
              patients: Sequence[str], splits: Sequence[str], include_translation: bool = False) -> PcaCodes:
    """Standardise the code columns of ``parameters`` (patients × parameters) with the mean and
    sample standard deviation of the ``train`` patients. A column that does not vary over the
    training patients (or a single training patient) keeps scale 1: it carries no information
    but stays in the code."""
    parameters = np.asarray(parameters, dtype=float)
    splits = np.asarray(splits, dtype=str)
    train = splits == "train"
    if not train.any():
        raise ValueError("PCA codes need at least one training patient, the cohort has none")
    columns = code_columns(parameter_names, include_translation)
    if not columns:
        raise ValueError(f"no shape or pose parameters among {list(parameter_names)}")
    index = [list(parameter_names).index(c) for c in columns]
    values = parameters[:, index]
    if not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"patient {patients[bad[0]]}: parameter {columns[bad[1]]} is {values[tuple(bad)]}")
    mean = values[train].mean(axis=0)
    scale = values[train].std(axis=0, ddof=1) if train.sum() > 1 else np.ones(len(columns))
    scale = np.where(scale > 0, scale, 1.0)
    table = pd.DataFrame((values - mean) / scale, columns=columns, index=pd.Index(list(patients), name="patient"))
    table.insert(0, "split", splits)
    units = tuple(str(parameter_units[i]) for i in index)
    return PcaCodes(table, tuple(columns), mean, scale, units)


def write_pca_codes(codes: PcaCodes, csv_path: str | Path, json_path: str | Path, source: str = "") -> None:
    """``codes.csv`` (patient, split, one column per code entry) and its JSON sidecar: what each
    column is, its units before scaling, the training mean and standard deviation used."""
    with atomic_path(csv_path) as temporary:
        codes.table.to_csv(temporary, float_format="%.10g")
    sidecar = {
        "description": "PCA shape codes (paper 1, section 2.4): heart and torso mode weights, heart rotation "
                       "angles, sex (female 1) and age (and translations if configured), standardised per column as (value - mean) / sd "
                       "with the mean and sample sd of the training split only.",
        "source": source,
        "dimension": len(codes.columns),
        "train_patients": [p for p, s in codes.table["split"].items() if s == "train"],
        "columns": [{"name": c, "units_before_scaling": u, "mean": float(m), "sd": float(s)}
                    for c, u, m, s in zip(codes.columns, codes.units, codes.mean, codes.scale)],
    }
    with atomic_path(json_path) as temporary:
        temporary.write_text(json.dumps(sidecar, indent=2) + "\n")


def read_pca_codes(csv_path: str | Path) -> pd.DataFrame:
    """The codes table: index patient, column split, then the code columns."""
    return pd.read_csv(csv_path, index_col="patient")
