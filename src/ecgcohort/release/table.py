"""The cohort's metadata table: one row per patient × scenario with the patient's sex and age,
the sampled parameters,
anatomy measures, activation duration, mesh sizes, the ECG realism features and verdicts, and
where the patient's data lie (its index in ``cohort.zarr``, its WFDB record).

Written as Parquet with a description and units per column in the field metadata, so pandas
alone reads the table and pyarrow (or any Parquet reader) sees what each column means.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ecgcohort.io import atomic_path

#: Columns the table always has, with their description and units.
FIXED_COLUMNS: dict[str, dict[str, str]] = {
    "patient": {"description": "patient id (<split>-<index>)", "units": "1"},
    "split": {"description": "train or test split of the patient", "units": "1"},
    "sex": {"description": "sex of the patient (female or male): the body, the heart's size and wall "
                           "thickness and the sex-specific ECG thresholds follow it", "units": "1"},
    "age_years": {"description": "age of the patient (the body is drawn for it)", "units": "year"},
    "scenario": {"description": "activation scenario (sinus rhythm, bundle-branch block, pacing ...)",
                 "units": "1"},
    "zarr_index": {"description": "position of the patient along the `patient` dimension of "
                                  "cohort.zarr (for Dataset.isel(patient=...))", "units": "1"},
    "wfdb_record": {"description": "WFDB record of the 12-lead ECG of this patient and scenario: "
                                   "path relative to the release directory, without the "
                                   ".hea/.dat extension", "units": "1"},
    "activation_duration_ms": {"description": "time from the first to the last activated "
                                              "myocardial node", "units": "ms"},
    "node_count": {"description": "myocardial mesh nodes (size of node in patients/<id> of "
                                  "cohort.zarr)", "units": "1"},
    "cell_count": {"description": "myocardial tetrahedra (size of cell in patients/<id> of "
                                  "cohort.zarr)", "units": "1"},
    "realism_pass": {"description": "whether the simulated ECG met every realism criterion of "
                                    "its criteria set (NA: not assessed)", "units": "1"},
    "realism_failed": {"description": "realism criteria not met, comma-separated (empty: none; "
                                      "NA: not assessed)", "units": "1"},
}

ANATOMY_PREFIX = "anatomy_"
ECG_PREFIX = "ecg_"
WFDB_DIRECTORY = "wfdb"

#: Units of an anatomy measure from the suffix of its name.
ANATOMY_UNITS = {"ml": "mL", "l": "L", "mm": "mm", "mm2": "mm2"}
#: Units of an ECG feature from a unit token in its name (``qrs_duration_ms``, ``r_mv_V1``).
ECG_UNITS = {"ms": "ms", "mv": "mV", "uv": "uV", "deg": "degree"}

_ANATOMY_DESCRIPTIONS = {
    "torso_area_mm2": "area of the torso (body) surface",
    "heart_area_mm2": "area of the heart surface",
    "myocardial_volume_ml": "volume enclosed by the heart surface",
    "torso_volume_l": "volume enclosed by the torso surface",
    "heart_clearance_mm": "smallest depth of the heart surface below the body surface",
    "lv_long_axis_length_mm": "distance from the apex to the centre of the base",
    "heart_size_factor": "length scale of the heart instance for the patient's sex (LV end-diastolic volume "
                         "norms, anatomy.heart_by_sex)",
    "heart_wall_factor": "further scale of the wall thickness off the endocardium for the patient's sex "
                         "(1 for men)",
}

_ECG_DESCRIPTIONS = {
    "kind": "kind of activation of the scenario",
    "criteria_set": "set of realism criteria the ECG is judged by",
    "status": "outcome of the delineation (ok, or why the beat could not be measured)",
    "qrs_onset_ms": "QRS onset from the start of the record",
    "qrs_offset_ms": "QRS offset from the start of the record",
    "qrs_duration_ms": "QRS duration",
    "t_peak_ms": "T-wave peak from the start of the record",
    "t_offset_ms": "T-wave end from the start of the record",
    "qt_ms": "QT interval",
    "qtc_ms": "QT interval corrected for heart rate (Fridericia)",
    "t_residual_fraction": "fraction of the T wave left at the end of the record",
    "t_unfinished": "whether the T wave had not ended by the end of the record",
    "qrs_axis_deg": "frontal QRS axis",
    "t_axis_deg": "frontal T axis",
    "qrs_t_angle_deg": "frontal QRS-T angle",
    "transition_lead": "precordial R/S transition lead",
    "transition_index": "precordial R/S transition (1-6 for V1-V6, 7 none)",
    "cornell_mv": "Cornell voltage (R aVL + S V3)",
    "sokolow_lyon_mv": "Sokolow-Lyon index (S V1 + max R V5/V6)",
    "hf_fraction_above_cutoff": "fraction of the QRS energy above the high-frequency cutoff",
    "hf_band_peak_uv": "peak |V| of the 150-250 Hz band of the QRS, largest over the leads",
    "hf_band_rms_uv": "RMS of the 150-250 Hz band of the QRS, largest over the leads",
    "turning_points_max": "QRS turning points, largest over the leads",
    "turning_points_median": "QRS turning points, median over the leads",
    "notched_leads": "leads with a mid-QRS notch or slur (space-separated)",
    "notched_lead_count": "number of leads with a mid-QRS notch or slur",
}

_PER_LEAD = {
    "r_mv": "R-wave amplitude", "s_mv": "S-wave amplitude", "q_mv": "Q-wave depth",
    "rs_ratio": "R/S amplitude ratio", "t_mv": "T-wave amplitude (signed extremum)",
    "initial_deflection": "sign of the initial QRS deflection (+1 r, -1 q or QS, 0 none)",
    "turning_points": "QRS turning points",
}


# ---------------------------------------------------------------- inputs
def scalar_measures(measures: Mapping[str, Any]) -> dict[str, float]:
    """The scalar numbers of an anatomy.json ``measures`` dict (units in the name suffix:
    ``_ml`` mL, ``_l`` L, ``_mm`` mm, ``_mm2`` mm²); vectors, matrices and booleans are left out."""
    return {name: float(value) for name, value in measures.items()
            if isinstance(value, numbers.Real) and not isinstance(value, bool)}


def read_anatomy_measures(path: str | Path) -> dict[str, float]:
    """The scalar anatomy measures of one patient's ``anatomy.json`` (see :func:`scalar_measures`)."""
    with open(path) as file:
        document = json.load(file)
    if "measures" not in document:
        raise ValueError(f"{path}: no 'measures' in the anatomy file")
    return scalar_measures(document["measures"])


def read_realism_csv(path: str | Path | None) -> pd.DataFrame | None:
    """``features.csv`` or ``criteria.csv`` of the realism stage, or None when it is absent
    (the stage switched off)."""
    if path is None or not Path(path).exists():
        return None
    return pd.read_csv(path, dtype={"patient": str, "scenario": str})


# ---------------------------------------------------------------- the table
def _text(values: Any) -> pd.Series:
    return pd.Series(np.asarray(values).astype(str), dtype="string")


def _nullable(series: pd.Series, dtype: Any) -> pd.Series:
    """``series`` (which may hold NA or NaN) in the nullable pandas dtype matching ``dtype``,
    the column's dtype before NA crept in: boolean, Int64, Float64 or string."""
    series = series.reset_index(drop=True)
    if pd.api.types.is_bool_dtype(dtype):
        return series.astype("boolean")
    if pd.api.types.is_integer_dtype(dtype):
        return series.astype("Int64")
    if pd.api.types.is_float_dtype(dtype):
        return series.astype("Float64")
    present = series.dropna()
    if len(present) and present.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        return series.astype("boolean")  # a True/False column with gaps, read as object
    return series.astype("string")


def _check_known(frame: pd.DataFrame, what: str, patients: list[str], scenarios: list[str]) -> None:
    for column in ("patient", "scenario"):
        if column not in frame.columns:
            raise ValueError(f"{what}: no '{column}' column (columns: {list(frame.columns)})")
    for column, known in (("patient", patients), ("scenario", scenarios)):
        unknown = sorted(set(frame[column].astype(str)) - set(known))
        if unknown:
            raise ValueError(f"{what}: {column} {', '.join(unknown)} not in the cohort "
                             f"(cohort {column}s: {', '.join(known)})")


def _as_passed(values: pd.Series) -> pd.Series:
    """The ``passed`` column of criteria.csv as booleans (True/False or their text)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(bool)
    text = values.astype("string").str.strip().str.lower()
    mapping = {"true": True, "false": False, "1": True, "0": False}
    bad = sorted(set(text.dropna()) - set(mapping)) + (["NA"] if text.isna().any() else [])
    if bad:
        raise ValueError(f"criteria: 'passed' must be true or false, got {', '.join(map(str, bad))}")
    return text.map(mapping).astype(bool)


def _realism_verdicts(criteria: pd.DataFrame) -> pd.DataFrame:
    """Per patient × scenario: realism_pass (all criteria passed) and realism_failed (the names
    of the failed criteria in file order, comma-separated)."""
    for column in ("criterion", "passed"):
        if column not in criteria.columns:
            raise ValueError(f"criteria: no '{column}' column (columns: {list(criteria.columns)})")
    rows = criteria.assign(patient=criteria["patient"].astype(str),
                           scenario=criteria["scenario"].astype(str),
                           passed=_as_passed(criteria["passed"]))
    verdicts = []
    for (patient, scenario), group in rows.groupby(["patient", "scenario"], sort=False):
        failed = group.loc[~group["passed"], "criterion"].astype(str)
        verdicts.append({"patient": patient, "scenario": scenario,
                         "realism_pass": bool(group["passed"].all()),
                         "realism_failed": ",".join(dict.fromkeys(failed))})
    return pd.DataFrame(verdicts, columns=["patient", "scenario", "realism_pass", "realism_failed"])


def metadata_table(cohort, *, anatomy: Mapping[str, Mapping[str, float]] | None = None,
                   features: pd.DataFrame | None = None,
                   criteria: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per patient × scenario of ``cohort`` (the root Dataset of cohort.zarr),
    patient-major in the store's order.

    Columns: patient, split, sex, age_years (years), scenario, zarr_index (the patient's index in the store), wfdb_record
    (``wfdb/<patient>/<scenario>``), one column per sampled parameter (units in
    ``parameter_units``), ``anatomy_<measure>`` (scalar measures of ``anatomy``: patient ->
    measure -> value, units in the name suffix), activation_duration_ms (ms), node_count,
    cell_count, then — when given — ``ecg_<feature>`` for every column of the realism
    ``features`` table but patient and scenario, and realism_pass / realism_failed from the
    realism ``criteria`` table. What is missing for a patient or patient × scenario is NA
    (nullable dtypes); a features, criteria or anatomy row of a patient or scenario the cohort
    does not have raises ValueError.
    """
    patients = [str(p) for p in np.asarray(cohort["patient"].values)]
    scenarios = [str(s) for s in np.asarray(cohort["scenario"].values)]
    n_patients, n_scenarios = len(patients), len(scenarios)
    patient_index = np.repeat(np.arange(n_patients), n_scenarios)
    scenario_index = np.tile(np.arange(n_scenarios), n_patients)

    table = pd.DataFrame({
        "patient": _text(np.asarray(patients)[patient_index]),
        "split": _text(np.asarray(cohort["split"].values)[patient_index]),
        "sex": _text(np.asarray(cohort["sex"].values)[patient_index]),
        "age_years": pd.Series(np.asarray(cohort["age"].values, dtype=float)[patient_index], dtype="float64"),
        "scenario": _text(np.asarray(scenarios)[scenario_index]),
        "zarr_index": pd.Series(patient_index, dtype="int64"),
    })
    table["wfdb_record"] = (WFDB_DIRECTORY + "/" + table["patient"] + "/" + table["scenario"]).astype("string")

    parameters = cohort["parameters"].transpose("patient", "parameter")
    values = np.asarray(parameters.values, dtype=float)
    for k, name in enumerate(str(p) for p in np.asarray(cohort["parameter"].values)):
        if name in table.columns:
            raise ValueError(f"parameter '{name}' clashes with a column of the metadata table")
        table[name] = values[patient_index, k]

    if anatomy:
        unknown = sorted(set(map(str, anatomy)) - set(patients))
        if unknown:
            raise ValueError(f"anatomy: patient {', '.join(unknown)} not in the cohort")
        measures = {str(p): scalar_measures(m) for p, m in anatomy.items()}
        names = list(dict.fromkeys(name for p in patients for name in measures.get(p, {})))
        for name in names:
            per_patient = [measures.get(p, {}).get(name, np.nan) for p in patients]
            table[ANATOMY_PREFIX + name] = pd.array(np.asarray(per_patient, float)[patient_index],
                                                    dtype="Float64")

    duration = cohort["activation_duration"].transpose("patient", "scenario")
    table["activation_duration_ms"] = pd.array(
        np.asarray(duration.values, float)[patient_index, scenario_index] * 1e3, dtype="Float64")
    for name in ("node_count", "cell_count"):
        table[name] = np.asarray(cohort[name].values, dtype="int64")[patient_index]

    keys = table[["patient", "scenario"]].astype(str)
    if features is not None:
        _check_known(features, "features", patients, scenarios)
        duplicated = features.duplicated(["patient", "scenario"])
        if duplicated.any():
            first = features.loc[duplicated, ["patient", "scenario"]].iloc[0]
            raise ValueError(f"features: more than one row for patient {first['patient']}, "
                             f"scenario {first['scenario']}")
        renamed = features.rename(columns={c: ECG_PREFIX + c for c in features.columns
                                           if c not in ("patient", "scenario")})
        renamed = renamed.assign(patient=renamed["patient"].astype(str),
                                 scenario=renamed["scenario"].astype(str))
        merged = keys.merge(renamed, on=["patient", "scenario"], how="left", validate="one_to_one")
        for column in merged.columns[2:]:
            if column in table.columns:
                raise ValueError(f"feature column '{column}' clashes with a column of the table")
            table[column] = _nullable(merged[column], renamed[column].dtype)

    if criteria is not None:
        _check_known(criteria, "criteria", patients, scenarios)
        merged = keys.merge(_realism_verdicts(criteria), on=["patient", "scenario"], how="left")
        table["realism_pass"] = merged["realism_pass"].astype("boolean").array
        table["realism_failed"] = merged["realism_failed"].astype("string").array

    return table.reset_index(drop=True)


# ---------------------------------------------------------------- descriptions
def _anatomy_units(measure: str) -> str:
    return ANATOMY_UNITS.get(measure.rsplit("_", 1)[-1].lower(), "1")


def _ecg_units(feature: str) -> str:
    tokens = [token.lower() for token in feature.split("_")]
    found = [ECG_UNITS[token] for token in tokens if token in ECG_UNITS]
    return found[-1] if found else "1"


def _ecg_description(feature: str) -> str:
    if feature in _ECG_DESCRIPTIONS:
        return _ECG_DESCRIPTIONS[feature]
    for stem, text in _PER_LEAD.items():
        if feature.startswith(stem + "_"):
            return f"{text} in lead {feature[len(stem) + 1:]}"
    return f"ECG realism feature {feature}"


def column_descriptions(table: pd.DataFrame, cohort) -> dict[str, dict[str, str]]:
    """Per column of ``table`` its ``description`` and ``units`` ("1" dimensionless):
    parameters from the cohort's ``parameter_description`` / ``parameter_units``; anatomy
    measures from the name suffix (``_ml`` mL, ``_l`` L, ``_mm`` mm, ``_mm2`` mm2); ECG
    features from a unit token of the name (``_ms`` ms, ``_mv`` mV, ``_uv`` uV, ``_deg``
    degree)."""
    names = [str(p) for p in np.asarray(cohort["parameter"].values)]
    units = ([str(u) for u in np.asarray(cohort["parameter_units"].values)]
             if "parameter_units" in cohort else ["1"] * len(names))
    texts = ([str(d) for d in np.asarray(cohort["parameter_description"].values)]
             if "parameter_description" in cohort else [""] * len(names))
    parameters = {n: {"description": f"sampled patient parameter: {t}" if t else "sampled patient parameter",
                      "units": u} for n, u, t in zip(names, units, texts)}
    descriptions: dict[str, dict[str, str]] = {}
    for column in table.columns:
        if column in FIXED_COLUMNS:
            descriptions[column] = dict(FIXED_COLUMNS[column])
        elif column in parameters:
            descriptions[column] = parameters[column]
        elif column.startswith(ANATOMY_PREFIX):
            measure = column[len(ANATOMY_PREFIX):]
            descriptions[column] = {
                "description": "anatomy measure (anatomy.json): "
                               + _ANATOMY_DESCRIPTIONS.get(measure, measure.replace("_", " ")),
                "units": _anatomy_units(measure)}
        elif column.startswith(ECG_PREFIX):
            feature = column[len(ECG_PREFIX):]
            descriptions[column] = {"description": "ECG realism feature: " + _ecg_description(feature),
                                    "units": _ecg_units(feature)}
        else:
            descriptions[column] = {"description": column.replace("_", " "), "units": "1"}
    return descriptions


# ---------------------------------------------------------------- Parquet
def write_table(table: pd.DataFrame, path: str | Path, *, descriptions: Mapping[str, Mapping[str, str]],
                metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``table`` as Parquet (pyarrow, no index) with ``description`` and ``units`` of
    every column in its field metadata and ``metadata`` (e.g. git_revision) in the schema
    metadata; atomically: a temporary file beside ``path``, then os.replace."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    missing = [c for c in table.columns if c not in descriptions]
    if missing:
        raise ValueError(f"no description for column(s) {', '.join(map(str, missing))}")
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    fields = []
    for field in arrow.schema:
        entry = descriptions[field.name]
        fields.append(field.with_metadata({b"description": str(entry.get("description", "")).encode(),
                                           b"units": str(entry.get("units", "1")).encode()}))
    schema_metadata = dict(arrow.schema.metadata or {})
    schema_metadata.update({str(k).encode(): str(v).encode() for k, v in (metadata or {}).items()})
    arrow = arrow.cast(pa.schema(fields, metadata=schema_metadata))

    path = Path(path)
    with atomic_path(path) as temporary:
        pq.write_table(arrow, temporary)
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """The metadata table written by :func:`write_table`, with pandas alone."""
    return pd.read_parquet(path)


def parquet_descriptions(path: str | Path) -> dict[str, dict[str, str]]:
    """Column -> {description, units} from the field metadata of a Parquet file."""
    import pyarrow.parquet as pq

    return {field.name: {key.decode(): value.decode() for key, value in (field.metadata or {}).items()}
            for field in pq.read_schema(path)}
