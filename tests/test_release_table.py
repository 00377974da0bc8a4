"""The release's metadata table (Parquet) and its Croissant description, on a synthetic cohort
of 3 patients (2 train, 1 test) x 2 scenarios."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import xarray as xr

from ecgcohort.release import croissant as cr
from ecgcohort.release.table import (
    column_descriptions,
    metadata_table,
    parquet_descriptions,
    read_anatomy_measures,
    read_table,
    write_table,
)

PATIENTS = ["train-0000", "train-0001", "test-0000"]
SCENARIOS = ["sinus", "lbbb"]
PARAMETERS = ["heart_mode_01", "rotation_x_deg", "translation_z_mm"]


@pytest.fixture
def cohort() -> xr.Dataset:
    rng = np.random.default_rng(3)
    return xr.Dataset(
        {
            "parameters": (("patient", "parameter"), rng.normal(size=(3, 3)),
                           {"units": "see parameter_units"}),
            "activation_duration": (("patient", "scenario"), [[0.091, 0.142], [0.085, 0.131], [0.097, 0.150]],
                                    {"units": "s"}),
            "node_count": ("patient", np.array([3800, 3750, 3900], dtype=np.int64)),
            "cell_count": ("patient", np.array([15000, 14800, 15500], dtype=np.int64)),
        },
        coords={
            "patient": PATIENTS,
            "split": ("patient", ["train", "train", "test"]),
            "sex": ("patient", ["female", "male", "female"]),
            "age": ("patient", [34.5, 61.25, 72.0], {"units": "year"}),
            "scenario": SCENARIOS,
            "parameter": PARAMETERS,
            "parameter_units": ("parameter", ["standard deviations", "degree", "mm"]),
            "parameter_description": ("parameter", ["weight of heart shape mode 1",
                                                    "heart rotation about x", "heart translation along z"]),
        },
        attrs={"git_revision": "0123abc", "created": "2026-01-01T00:00:00+00:00"},
    )


@pytest.fixture
def anatomy() -> dict[str, dict]:
    return {p: {"myocardial_volume_ml": 150.0 + i, "torso_volume_l": 30.0 + i,
                "heart_clearance_mm": 20.0 + i, "heart_area_mm2": 4.0e4 + i,
                "apex_mm": [1.0, 2.0, 3.0], "rotation_matrix": np.eye(3).tolist()}
            for i, p in enumerate(PATIENTS)}


@pytest.fixture
def features() -> pd.DataFrame:
    rows = [(p, s) for p in PATIENTS for s in SCENARIOS if (p, s) != ("train-0001", "lbbb")]
    return pd.DataFrame({
        "patient": [p for p, _ in rows], "scenario": [s for _, s in rows],
        "status": ["ok"] * len(rows),
        "qrs_duration_ms": [90 + i for i in range(len(rows))],  # integers, as in features.csv
        "qrs_axis_deg": np.linspace(-10.0, 60.0, len(rows)),
        "cornell_mv": np.linspace(1.0, 2.0, len(rows)),
        "t_unfinished": [False] * len(rows),
    })


@pytest.fixture
def criteria() -> pd.DataFrame:
    rows = []
    for p in PATIENTS:
        for s in SCENARIOS:
            if (p, s) == ("train-0001", "lbbb"):
                continue  # not assessed
            failing = (p, s) == ("train-0000", "sinus")
            rows += [(p, s, "qrs_duration", True), (p, s, "qrs_axis", not failing),
                     (p, s, "transition_zone", not failing)]
    return pd.DataFrame(rows, columns=["patient", "scenario", "criterion", "passed"])


@pytest.fixture
def table(cohort, anatomy, features, criteria) -> pd.DataFrame:
    return metadata_table(cohort, anatomy=anatomy, features=features, criteria=criteria)


def _row(table: pd.DataFrame, patient: str, scenario: str) -> pd.Series:
    rows = table[(table["patient"] == patient) & (table["scenario"] == scenario)]
    assert len(rows) == 1
    return rows.iloc[0]


# ---------------------------------------------------------------- the table
def test_one_row_per_patient_and_scenario_patient_major(table, cohort):
    assert len(table) == len(PATIENTS) * len(SCENARIOS)
    assert list(table["patient"]) == [p for p in PATIENTS for _ in SCENARIOS]
    assert list(table["scenario"]) == SCENARIOS * len(PATIENTS)
    assert list(table["split"]) == ["train"] * 4 + ["test"] * 2
    for _, row in table.iterrows():
        assert str(cohort.isel(patient=int(row["zarr_index"]))["patient"].values) == row["patient"]
        assert row["wfdb_record"] == f"wfdb/{row['patient']}/{row['scenario']}"


def test_values_equal_the_cohort(table, cohort):
    for _, row in table.iterrows():
        patient = cohort.sel(patient=row["patient"])
        for name in PARAMETERS:
            assert row[name] == float(patient["parameters"].sel(parameter=name))
        assert row["activation_duration_ms"] == pytest.approx(
            1e3 * float(patient["activation_duration"].sel(scenario=row["scenario"])), rel=1e-12)
        assert (row["sex"], row["age_years"]) == (str(patient["sex"].values), float(patient["age"]))
        assert row["node_count"] == int(patient["node_count"])
        assert row["cell_count"] == int(patient["cell_count"])
    assert table["activation_duration_ms"].iloc[0] == pytest.approx(91.0)


def test_anatomy_scalar_measures_prefixed_vectors_dropped(table, tmp_path):
    assert {"anatomy_myocardial_volume_ml", "anatomy_torso_volume_l", "anatomy_heart_clearance_mm",
            "anatomy_heart_area_mm2"} <= set(table.columns)
    assert not any(c in table.columns for c in ("anatomy_apex_mm", "anatomy_rotation_matrix"))
    assert _row(table, "test-0000", "lbbb")["anatomy_torso_volume_l"] == 32.0
    path = tmp_path / "anatomy.json"
    path.write_text(json.dumps({"patient": "x", "measures": {"a_mm": 1.5, "b_mm": [1, 2, 3], "ok": True}}))
    assert read_anatomy_measures(path) == {"a_mm": 1.5}


def test_missing_features_row_is_na_not_dropped(table):
    missing = _row(table, "train-0001", "lbbb")
    for column in ("ecg_status", "ecg_qrs_duration_ms", "ecg_qrs_axis_deg", "ecg_t_unfinished"):
        assert missing[column] is pd.NA
    present = _row(table, "train-0001", "sinus")
    assert present["ecg_status"] == "ok" and present["ecg_qrs_duration_ms"] == 92
    assert str(table["ecg_qrs_duration_ms"].dtype) == "Int64"  # integers stay integers
    assert str(table["ecg_qrs_axis_deg"].dtype) == "Float64"
    assert str(table["ecg_t_unfinished"].dtype) == "boolean"
    assert "ecg_patient" not in table.columns and "ecg_scenario" not in table.columns


def test_realism_pass_and_failed_criteria(table):
    failing = _row(table, "train-0000", "sinus")
    assert bool(failing["realism_pass"]) is False
    assert failing["realism_failed"] == "qrs_axis,transition_zone"
    passing = _row(table, "test-0000", "lbbb")
    assert bool(passing["realism_pass"]) is True and passing["realism_failed"] == ""
    unassessed = _row(table, "train-0001", "lbbb")
    assert unassessed["realism_pass"] is pd.NA
    assert str(table["realism_pass"].dtype) == "boolean"
    assert table["realism_pass"].sum() == 4


@pytest.mark.parametrize("which, column, value", [("features", "patient", "train-0099"),
                                                  ("features", "scenario", "crt"),
                                                  ("criteria", "patient", "test-0042")])
def test_rows_not_in_the_cohort_raise_naming_them(cohort, features, criteria, which, column, value):
    frame = (features if which == "features" else criteria).copy()
    frame.loc[0, column] = value
    with pytest.raises(ValueError, match=value):
        metadata_table(cohort, features=frame if which == "features" else None,
                       criteria=frame if which == "criteria" else None)


def test_without_realism_there_are_no_feature_columns(cohort):
    table = metadata_table(cohort)
    assert len(table) == 6
    assert not [c for c in table.columns if c.startswith("ecg_") or c.startswith("realism_")]
    assert not [c for c in table.columns if c.startswith("anatomy_")]


def test_column_descriptions_give_units(table, cohort):
    descriptions = column_descriptions(table, cohort)
    assert set(descriptions) == set(table.columns)
    units = {name: entry["units"] for name, entry in descriptions.items()}
    assert units["heart_mode_01"] == "standard deviations" and units["translation_z_mm"] == "mm"
    assert "heart rotation about x" in descriptions["rotation_x_deg"]["description"]
    assert units["anatomy_myocardial_volume_ml"] == "mL" and units["anatomy_torso_volume_l"] == "L"
    assert units["anatomy_heart_clearance_mm"] == "mm" and units["anatomy_heart_area_mm2"] == "mm2"
    assert units["ecg_qrs_duration_ms"] == "ms" and units["ecg_cornell_mv"] == "mV"
    assert units["ecg_qrs_axis_deg"] == "degree" and units["ecg_status"] == "1"
    assert units["activation_duration_ms"] == "ms" and units["realism_pass"] == "1"
    assert all(entry["description"] for entry in descriptions.values())


def test_parquet_round_trip_with_pandas_and_units_in_schema(table, cohort, tmp_path):
    path = write_table(table, tmp_path / "metadata.parquet", descriptions=column_descriptions(table, cohort),
                       metadata={"git_revision": cohort.attrs["git_revision"]})
    back = read_table(path)
    pd.testing.assert_frame_equal(back, table)
    assert back.loc[3, "ecg_qrs_duration_ms"] is pd.NA  # train-0001 × lbbb
    schema = pq.read_schema(path)
    assert schema.field("activation_duration_ms").metadata[b"units"] == b"ms"
    assert schema.field("anatomy_torso_volume_l").metadata[b"units"] == b"L"
    assert b"QRS" not in schema.field("heart_mode_01").metadata[b"description"]
    assert schema.metadata[b"git_revision"] == b"0123abc"
    assert parquet_descriptions(path)["rotation_x_deg"]["units"] == "degree"
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.parquet"]  # no temporary left
    (tmp_path / "sibling").write_text("")  # a released file is as readable as any other
    assert path.stat().st_mode == (tmp_path / "sibling").stat().st_mode


def test_write_table_leaves_the_old_file_on_failure(table, cohort, tmp_path, monkeypatch):
    path = tmp_path / "metadata.parquet"
    descriptions = column_descriptions(table, cohort)
    write_table(table, path, descriptions=descriptions)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="ecg_status"):
        write_table(table, path, descriptions={k: v for k, v in descriptions.items() if k != "ecg_status"})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_table(table.head(2), path, descriptions=descriptions)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.parquet"]


# ---------------------------------------------------------------- Croissant
@pytest.fixture
def release(table, cohort, tmp_path):
    """A release directory: metadata.parquet, a tiny cohort.zarr, wfdb/ and croissant.json."""
    root = tmp_path / "REL"
    descriptions = column_descriptions(table, cohort)
    write_table(table, root / "metadata.parquet", descriptions=descriptions)
    store = root / "cohort.zarr"
    store.mkdir()
    (store / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    for record in table["wfdb_record"]:
        (root / f"{record}.hea").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{record}.hea").write_text("record header\n")
        (root / f"{record}.dat").write_bytes(b"\x00\x01")
    metadata = cr.croissant_metadata(
        name="ecgcohort-test", description="synthetic test cohort", version="1.0.0",
        license="https://creativecommons.org/licenses/by/4.0/", url="https://example.org/ecgcohort",
        citation="@misc{ecgcohort, title={ecgcohort}}", table_path=root / "metadata.parquet", table=table,
        descriptions=descriptions, store_path=store, wfdb_dir=root / "wfdb", date_published="2026-01-01",
        creator={"@type": "sc:Organization", "name": "ecgcohort"})
    path = cr.write_croissant(metadata, root / "croissant.json")
    return path, metadata


def test_croissant_paths_are_relative_and_typed(release, table, cohort, tmp_path):
    path, metadata = release
    assert metadata["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    files = {entry["@id"]: entry for entry in metadata["distribution"]}
    assert files["metadata.parquet"]["contentUrl"] == "metadata.parquet"
    assert files["metadata.parquet"]["encodingFormat"] == "application/x-parquet"
    assert files["metadata.parquet"]["sha256"] == cr.sha256_of(path.parent / "metadata.parquet")
    assert files["cohort.zarr"]["@type"] == "cr:FileSet" and files["cohort.zarr"]["includes"] == ["cohort.zarr/**"]
    assert files["wfdb"]["includes"] == ["wfdb/**/*.hea", "wfdb/**/*.dat"]
    fields = metadata["recordSet"][0]["field"]
    assert [f["name"] for f in fields] == list(table.columns)
    types = {f["name"]: f["dataType"] for f in fields}
    assert types["patient"] == "sc:Text" and types["zarr_index"] == "sc:Integer"
    assert types["activation_duration_ms"] == "sc:Float" and types["realism_pass"] == "sc:Boolean"
    assert types["ecg_qrs_duration_ms"] == "sc:Integer"
    assert types["sex"] == "sc:Text" and types["age_years"] == "sc:Float"
    described = {f["name"]: f["description"] for f in fields}
    assert "female or male" in described["sex"] and "year" in described["age_years"]
    assert json.loads(path.read_text()) == metadata
    cr.check_croissant(path)
    outside = tmp_path / "elsewhere.zarr"
    outside.mkdir()
    with pytest.raises(ValueError, match="not inside the release directory"):
        cr.croissant_metadata(name="x", description="x", version="1", license="x", url="x", citation="x",
                              table_path=path.parent / "metadata.parquet", table=table,
                              descriptions=column_descriptions(table, cohort), store_path=outside)


def test_croissant_context_is_the_standard_1_0_one():
    from mlcroissant._src.core.context import Context
    from mlcroissant._src.core.rdf import make_context

    assert cr.CROISSANT_CONTEXT == make_context(Context())


def test_mlcroissant_loads_and_records_equal_the_table(release, table):
    import mlcroissant as mlc

    path, _ = release
    dataset = mlc.Dataset(jsonld=path)
    issues = dataset.metadata.ctx.issues
    assert not issues.errors and not issues.warnings, issues.report()
    records = list(dataset.records("ecg_records"))
    assert len(records) == len(table)

    def plain(value):
        if isinstance(value, bytes):
            return value.decode()
        return None if value is pd.NA or value is None or (isinstance(value, float) and math.isnan(value)) \
            else value

    for index in (0, 3):  # a full row, and train-0001 × lbbb with no features or criteria
        record, row = records[index], table.iloc[index]
        got = {name.split("/", 1)[1]: plain(value) for name, value in record.items()}
        want = {name: plain(value) for name, value in row.items()}
        assert got.keys() == want.keys()
        for name, value in want.items():
            if isinstance(value, float):
                assert got[name] == pytest.approx(value, rel=1e-12), name
            else:
                assert got[name] == value, name
    assert plain(records[3]["ecg_records/ecg_qrs_duration_ms"]) is None


@pytest.mark.parametrize("breakage", ["sha256", "column"])
def test_a_broken_croissant_file_fails(release, breakage):
    import mlcroissant as mlc

    path, metadata = release
    broken = json.loads(json.dumps(metadata))
    if breakage == "sha256":
        broken["distribution"][0]["sha256"] = "0" * 64
        expected = "sha256|Hash"
    else:
        broken["recordSet"][0]["field"][2]["source"]["extract"]["column"] = "no_such_column"
        expected = "no_such_column"
    cr.write_croissant(broken, path)
    with pytest.raises(ValueError, match=expected):
        cr.check_croissant(path)
    with pytest.raises(mlc.GenerationError) as failure:
        list(mlc.Dataset(jsonld=path).records("ecg_records"))
    chain, error = [], failure.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any(("Hash" if breakage == "sha256" else "no_such_column") in text for text in chain)
