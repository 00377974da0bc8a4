"""The Latin-hypercube cohort sampler: stratification, ranges, determinism, growth."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from ecgcohort.cohort import (
    design_from_config,
    patient_ids,
    patient_parameters,
    patient_person,
    patient_record,
    sample_cohort,
    sample_split,
    write_design,
    write_patient_parameters,
)
from ecgcohort.config import load_schema, validate_config


@pytest.fixture
def cohort_config(repo, workflow_config) -> dict:
    schema = load_schema(repo / "workflow/schemas/config.schema.yaml")
    return validate_config(workflow_config, schema)["cohort"]


def with_split(cohort: dict, split: str, count: int, batch: int) -> dict:
    changed = copy.deepcopy(cohort)
    changed[split] = {"count": count, "lhs_batch": batch}
    return changed


def strata_counts(values: np.ndarray, low: float, high: float, strata: int) -> np.ndarray:
    index = np.floor((values - low) / (high - low) * strata).astype(int)
    return np.bincount(np.clip(index, 0, strata - 1), minlength=strata)


@pytest.mark.parametrize("count,batch", [(8, 8), (12, 4), (100, 100), (7, 7)])
def test_every_complete_batch_has_one_sample_per_stratum_in_every_dimension(cohort_config, count, batch):
    design = design_from_config(with_split(cohort_config, "train", count, batch))
    values = sample_split(design, "train")
    assert values.shape == (count, len(design.dimensions))
    for start in range(0, count - count % batch, batch):
        block = values[start:start + batch]
        for column, dimension in enumerate(design.dimensions):
            counts = strata_counts(block[:, column], dimension.low, dimension.high, batch)
            assert np.all(counts == 1), (dimension.name, start, counts)


def test_one_batch_over_the_whole_split_is_not_stratified_by_chance(cohort_config):
    # The check above can fail: plain uniform draws almost never put one point per stratum.
    rng = np.random.default_rng(0)
    uniform = rng.uniform(-1, 1, size=(8, 26))
    stratified = [np.all(strata_counts(uniform[:, c], -1, 1, 8) == 1) for c in range(26)]
    assert not all(stratified)


def test_samples_lie_in_the_configured_ranges(cohort_config):
    changed = copy.deepcopy(cohort_config)
    changed["rotation_deg"]["z"] = [-30.0, 5.0]
    changed["translation_mm"]["y"] = [2.0, 2.0]
    changed["heart_modes"] = {"count": 4, "range": [-2.0, 0.5]}
    design = design_from_config(with_split(changed, "train", 40, 40))
    table = sample_cohort(design)
    assert table["rotation_z_deg"].between(-30, 5).all()
    assert (table["translation_y_mm"] == 2.0).all()
    heart = table.filter(like="heart_mode_")
    assert list(heart.columns) == [f"heart_mode_{k:02d}" for k in range(1, 5)]
    assert heart.to_numpy().min() >= -2.0 and heart.to_numpy().max() <= 0.5
    # a 40-point Latin hypercube reaches into both outer strata of [-30, 5]
    assert table["rotation_z_deg"].min() < -30 + 35 / 40 and table["rotation_z_deg"].max() > 5 - 35 / 40


def test_same_config_gives_the_same_table_and_another_seed_a_different_one(cohort_config):
    first = sample_cohort(design_from_config(cohort_config))
    again = sample_cohort(design_from_config(copy.deepcopy(cohort_config)))
    pd.testing.assert_frame_equal(first, again)
    reseeded = sample_cohort(design_from_config({**cohort_config, "seed": cohort_config["seed"] + 1}))
    numeric = ["age_years", *design_from_config(cohort_config).names]
    assert not np.allclose(first[numeric].to_numpy(), reseeded[numeric].to_numpy())


def test_growing_a_split_keeps_existing_rows_and_the_other_split(cohort_config):
    small = sample_cohort(design_from_config(with_split(cohort_config, "train", 8, 4)))
    grown = sample_cohort(design_from_config(with_split(cohort_config, "train", 12, 4)))
    small_train, grown_train = small[small.split == "train"], grown[grown.split == "train"]
    pd.testing.assert_frame_equal(small_train.reset_index(drop=True),
                                  grown_train.iloc[:8].reset_index(drop=True))
    pd.testing.assert_frame_equal(small[small.split == "test"].reset_index(drop=True),
                                  grown[grown.split == "test"].reset_index(drop=True))
    assert len(grown_train) == 12 and grown_train.patient.is_unique


def test_test_patients_are_an_independent_design(cohort_config):
    config = with_split(with_split(cohort_config, "train", 10, 10), "test", 10, 10)
    design = design_from_config(config)
    table = sample_cohort(design)
    train = table.loc[table.split == "train", design.names].to_numpy()
    test = table.loc[table.split == "test", design.names].to_numpy()
    distances = np.linalg.norm(train[:, None, :] - test[None, :, :], axis=-1)
    assert distances.min() > 1e-6  # no test patient repeats a training patient
    assert table.patient.is_unique


def test_one_patient_is_computed_without_the_table(cohort_config):
    design = design_from_config(with_split(cohort_config, "train", 13, 5))
    table = sample_cohort(design).set_index("patient")
    for patient in patient_ids(design):
        row = patient_parameters(design, patient)
        assert row == pytest.approx(table.loc[patient, design.names].astype(float).to_dict(), abs=0)
    with pytest.raises(ValueError, match="train-0013"):
        patient_parameters(design, "train-0013")
    with pytest.raises(ValueError, match="control-0001"):
        patient_parameters(design, "control-0001")


def test_written_files_describe_every_column_and_patient_files_match_the_table(cohort_config, tmp_path):
    table = write_design(cohort_config, tmp_path / "cohort.csv", tmp_path / "cohort.json", tmp_path / "cohort.png")
    sidecar = json.loads((tmp_path / "cohort.json").read_text())
    assert set(sidecar["columns"]) == set(table.columns)
    assert sidecar["columns"]["rotation_x_deg"]["units"] == "degree"
    assert sidecar["columns"]["translation_z_mm"]["units"] == "mm"
    assert (tmp_path / "cohort.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reread = pd.read_csv(tmp_path / "cohort.csv")
    pd.testing.assert_frame_equal(reread, table)  # full float precision survives the CSV

    design = design_from_config(cohort_config)
    record = patient_record(design, "test-0001")
    write_patient_parameters(record, tmp_path / "p.json")
    stored = json.loads((tmp_path / "p.json").read_text())
    assert stored["split"] == "test" and stored["units"]["rotation_y_deg"] == "degree"
    row = reread.set_index("patient").loc["test-0001"]
    assert stored["parameters"] == pytest.approx(row[design.names].astype(float).to_dict(), abs=0)
    assert (stored["sex"], stored["age_years"]) == (row["sex"], row["age_years"])
    assert sidecar["columns"]["age_years"]["units"] == "year"


def with_demographics(cohort: dict, **changes) -> dict:
    changed = copy.deepcopy(cohort)
    changed.update(changes)
    return changed


@pytest.mark.parametrize("female,batch", [(0.5, 10), (0.3, 10), (0.75, 8)])
def test_each_batch_holds_the_configured_sex_proportions_and_stratified_ages(cohort_config, female, batch):
    config = with_demographics(with_split(cohort_config, "train", 4 * batch, batch),
                               sex_proportions={"female": female, "male": 1 - female}, age_years=[30.0, 70.0])
    table = sample_cohort(design_from_config(config))
    train = table[table.split == "train"]
    for start in range(0, 4 * batch, batch):
        block = train.iloc[start:start + batch]
        # one patient per stratum of [0, 1): the number of strata below the female fraction, give or take one
        assert abs((block.sex == "female").sum() - female * batch) <= 1, block.sex.tolist()
        assert np.all(strata_counts(block.age_years.to_numpy(), 30.0, 70.0, batch) == 1)
    assert set(train.sex) == {"female", "male"}
    only_women = sample_cohort(design_from_config(with_demographics(config, sex_proportions={"female": 1.0})))
    assert (only_women.sex == "female").all()


def test_sex_and_age_leave_the_shape_and_pose_columns_of_a_seed_unchanged(cohort_config):
    base = sample_cohort(design_from_config(cohort_config))
    older = sample_cohort(design_from_config(with_demographics(cohort_config, age_years=[60.0, 80.0],
                                                               sex_proportions={"female": 0.2, "male": 0.8})))
    names = design_from_config(cohort_config).names
    pd.testing.assert_frame_equal(base[names], older[names])
    assert older.age_years.min() >= 60.0 and not np.allclose(base.age_years, older.age_years)
    design = design_from_config(cohort_config)
    for patient, sex, age in base[["patient", "sex", "age_years"]].itertuples(index=False):
        person = patient_person(design, patient)
        assert (person.sex, person.age_years) == (sex, age)


@pytest.mark.parametrize("changes,message", [
    ({"sex_proportions": {"female": 0.5, "diverse": 0.5}}, r"cohort\.sex_proportions: sex 'diverse'"),
    ({"sex_proportions": {"female": 0.7, "male": 0.7}}, r"cohort\.sex_proportions: .* sum to 1\.4"),
    ({"sex_proportions": {"female": -0.5, "male": 1.5}}, r"cohort\.sex_proportions\.female: -0\.5"),
    ({"age_years": [18.0, 60.0]}, r"cohort\.age_years: 18 years is outside the body model's calibrated range "
                                  r"\[20, 80\]"),
    ({"age_years": [40.0, 95.0]}, r"cohort\.age_years: 95 years"),
])
def test_a_sex_or_age_outside_the_model_stops_the_design_naming_key_and_value(cohort_config, changes, message):
    with pytest.raises(ValueError, match=message):
        design_from_config(with_demographics(cohort_config, **changes))


def with_coupling(cohort: dict, correlation: float, **modes: int) -> dict:
    changed = copy.deepcopy(cohort)
    changed["size_coupling"] = {"correlation": correlation, "heart_mode": 1, "torso_mode": 1, **modes}
    return changed


def test_size_coupling_only_re_pairs_the_heart_size_mode_within_each_batch(cohort_config):
    base = with_split(cohort_config, "train", 12, 4)
    independent = sample_split(design_from_config(with_coupling(base, 0.0)), "train")
    coupled_design = design_from_config(with_coupling(base, 0.8))
    coupled = sample_split(coupled_design, "train")
    heart = coupled_design.names.index("heart_mode_01")
    others = [c for c in range(coupled.shape[1]) if c != heart]
    np.testing.assert_array_equal(coupled[:, others], independent[:, others])
    for start in (0, 4, 8):  # the same values in every batch, so the strata stay exact
        np.testing.assert_array_equal(np.sort(coupled[start:start + 4, heart]),
                                      np.sort(independent[start:start + 4, heart]))
    assert not np.array_equal(coupled[:, heart], independent[:, heart])


@pytest.mark.parametrize("correlation", [0.5, -0.5, 0.9])
def test_size_coupling_reaches_the_copula_rank_correlation(cohort_config, correlation):
    from scipy.stats import spearmanr

    config = with_coupling(with_split(cohort_config, "train", 400, 400), correlation)
    table = sample_cohort(design_from_config(config))
    train = table[table.split == "train"]
    rho = spearmanr(train.heart_mode_01, train.torso_mode_01).statistic
    expected = 6 / np.pi * np.arcsin(correlation / 2)
    assert abs(rho - expected) < 0.1, (rho, expected)
    independent = sample_cohort(design_from_config(with_coupling(config, 0.0)))
    assert abs(spearmanr(independent.heart_mode_01[:400], independent.torso_mode_01[:400]).statistic) < 0.15


def test_size_coupling_names_the_missing_mode(cohort_config):
    config = with_coupling(cohort_config, 0.5, torso_mode=12)
    with pytest.raises(ValueError, match=r"torso_mode_12.*cohort\.torso_modes\.count is 10"):
        design_from_config(config)
    assert design_from_config(with_coupling(config, 0.0)).size_coupling is None


ONE_ROW = """
import json, sys
from ecgcohort.cohort import design_from_config, patient_parameters
row = patient_parameters(design_from_config(json.loads(sys.argv[1])), "train-0003")
print(json.dumps({"row": row, "scipy.stats imported": "scipy.stats" in sys.modules}))
"""


def test_a_jobs_patient_rows_come_from_the_design_cache_without_scipy(cohort_config, tmp_path, monkeypatch):
    """A cluster job plans its patients' rows: the first draw caches its Latin-hypercube batch
    (in $ECGCOHORT_CACHE/designs), a later process reads it back - the same row, bit for bit,
    without importing scipy.stats (about 1 s of every job's start-up); a damaged cache file is
    drawn again; another seed or coupling is another batch."""
    import subprocess
    import sys

    from ecgcohort.cohort.sampling import SizeCoupling, latin_hypercube_cache_key

    monkeypatch.setenv("ECGCOHORT_CACHE", str(tmp_path))
    cohort = with_split(cohort_config, "train", 8, 8)

    def one_row() -> dict:
        ran = subprocess.run([sys.executable, "-c", ONE_ROW, json.dumps(cohort)], capture_output=True, text=True,
                             check=True)
        return json.loads(ran.stdout)

    drawn = one_row()
    cached = list((tmp_path / "designs").glob("lhs-*.npy"))
    assert drawn["scipy.stats imported"] and len(cached) == 1
    read = one_row()
    assert not read["scipy.stats imported"] and read["row"] == drawn["row"]
    assert drawn["row"] == patient_parameters(design_from_config(cohort), "train-0003")

    cached[0].write_bytes(b"not an array")
    redrawn = one_row()
    assert redrawn["scipy.stats imported"] and redrawn["row"] == drawn["row"]
    assert np.load(cached[0]).shape == (8, len(design_from_config(cohort).dimensions))

    names = tuple(design_from_config(cohort).names)
    coupling = SizeCoupling("heart_mode_01", "torso_mode_01", 0.5)
    keys = {latin_hypercube_cache_key(seed, 0, 0, 8, names, coupled)
            for seed in (1, 2) for coupled in (None, coupling, SizeCoupling("heart_mode_01", "torso_mode_01", 0.4))}
    assert len(keys) == 6
