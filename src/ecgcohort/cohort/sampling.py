"""Latin-hypercube sampling of the virtual-patient design.

Each split (train, test) is drawn from its own random stream, in consecutive Latin-hypercube
batches of ``lhs_batch`` patients. Batch ``b`` of split ``s`` is generated from
``(seed, s, b)`` alone, so

* every complete batch is an exact Latin hypercube (one sample per stratum and dimension),
* growing a split appends rows and never changes existing ones,
* test patients are never a subset of the training design.

A split whose count is a multiple of its batch size is therefore a union of exact Latin
hypercubes; with ``lhs_batch == count`` it is one Latin hypercube (the paper's design).

Heart size can be coupled to body size (people with larger bodies have larger hearts) by
re-pairing, within each batch, the heart size mode's values with the torso size mode's
(Iman & Conover 1982): the column keeps its values, so every batch stays an exact Latin
hypercube, and only which patient gets which value changes.

Sex and age come from a second Latin hypercube per batch, drawn from a stream of their own
(``(seed, split, batch, DEMOGRAPHICS_STREAM)``), so adding them left every shape and pose
column of an existing seed unchanged. Within a complete batch the sexes follow the configured
proportions to one patient (one stratum per patient) and the ages are stratified over the
configured range, which must lie inside the body model's calibrated range
(:data:`BODY_MODEL_AGE_YEARS`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ecgcohort.io import atomic_path, code_and_library_versions, user_cache_dir

if TYPE_CHECKING:  # pandas and scipy.stats are imported where used: patient_rng is needed by
    import pandas as pd  # every stage, the Latin hypercube by one

SPLITS: tuple[str, ...] = ("train", "test")
PATIENT_ID_PATTERN = r"(train|test)-[0-9]+"
AXIS_WORDS = {
    "x": "about the LV-RV axis (patient right to left)",
    "y": "about the anterior-posterior axis",
    "z": "about the LV long axis",
}
#: The sexes of the body model (Anny) and of the cardiac norms the anatomy applies.
SEXES: tuple[str, ...] = ("female", "male")
#: Ages (years) over which the built-in torso model's population is drawn and its sex-and-age
#: regression fitted (shapes.torso): a patient's age must lie inside.
BODY_MODEL_AGE_YEARS: tuple[float, float] = (20.0, 80.0)
#: Last seed word of the demographic Latin hypercube's stream (any value the shape-and-pose
#: stream, seeded by three words, cannot take).
DEMOGRAPHICS_STREAM = 0x5E7A6E
TRANSLATION_WORDS = {
    "x": "right to left",
    "y": "posterior to anterior",
    "z": "superior to inferior",
}


@dataclass(frozen=True)
class Dimension:
    """One sampled column: uniform on [low, high] in ``unit``."""

    name: str
    low: float
    high: float
    unit: str
    description: str


@dataclass(frozen=True)
class SplitDesign:
    """Size of a split and the size of its Latin-hypercube batches."""

    count: int
    lhs_batch: int


@dataclass(frozen=True)
class SizeCoupling:
    """Heart size mode ``heart_column`` paired with torso size mode ``torso_column`` at a
    Gaussian-copula correlation ``correlation`` (Spearman's rho about (6/pi) asin(correlation/2))."""

    heart_column: str
    torso_column: str
    correlation: float


@dataclass(frozen=True)
class Demographics:
    """Sex proportions (``sex_proportions``: sex -> fraction, in :data:`SEXES` order, summing
    to 1) and the age interval ``age_years`` (years), sampled per patient."""

    sex_proportions: tuple[tuple[str, float], ...]
    age_years: tuple[float, float]


@dataclass(frozen=True)
class Person:
    """The sex (one of :data:`SEXES`) and age (years) of one patient."""

    sex: str
    age_years: float


@dataclass(frozen=True)
class CohortDesign:
    """Everything that determines the cohort table."""

    seed: int
    splits: Mapping[str, SplitDesign]
    dimensions: tuple[Dimension, ...]
    demographics: Demographics
    size_coupling: SizeCoupling | None = None

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]


def design_from_config(cohort: Mapping[str, Any]) -> CohortDesign:
    """Build the design from the validated ``cohort`` config section."""
    dimensions: list[Dimension] = []
    for organ in ("heart", "torso"):
        modes = cohort[f"{organ}_modes"]
        low, high = modes["range"]
        for k in range(1, modes["count"] + 1):
            dimensions.append(Dimension(
                f"{organ}_mode_{k:02d}", float(low), float(high), "standard deviations",
                f"weight of {organ} shape mode {k}",
            ))
    for axis, words in AXIS_WORDS.items():
        low, high = cohort["rotation_deg"][axis]
        dimensions.append(Dimension(f"rotation_{axis}_deg", float(low), float(high), "degree",
                                    f"heart rotation {words}, about its centroid"))
    for axis, words in TRANSLATION_WORDS.items():
        low, high = cohort["translation_mm"][axis]
        dimensions.append(Dimension(f"translation_{axis}_mm", float(low), float(high), "mm",
                                    f"heart translation from the reference position, {words}"))
    splits = {name: SplitDesign(int(cohort[name]["count"]), int(cohort[name]["lhs_batch"]))
              for name in SPLITS}
    return CohortDesign(seed=int(cohort["seed"]), splits=splits, dimensions=tuple(dimensions),
                        demographics=demographics_from_config(cohort),
                        size_coupling=_size_coupling(cohort, [d.name for d in dimensions]))


def demographics_from_config(cohort: Mapping[str, Any]) -> Demographics:
    """The sex proportions and age range of the ``cohort`` section, checked: a sex outside
    :data:`SEXES`, a negative proportion, proportions not summing to 1, or ages outside
    :data:`BODY_MODEL_AGE_YEARS` raise ValueError naming the key and the value."""
    proportions = dict(cohort["sex_proportions"])
    for sex, fraction in proportions.items():
        if sex not in SEXES:
            raise ValueError(f"cohort.sex_proportions: sex '{sex}' is not one of the body model's sexes "
                             f"({', '.join(SEXES)})")
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError(f"cohort.sex_proportions.{sex}: {fraction} is not a fraction in [0, 1]")
    total = sum(float(v) for v in proportions.values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"cohort.sex_proportions: the fractions {proportions} sum to {total:g}, not 1")
    low, high = (float(v) for v in cohort["age_years"])
    calibrated_low, calibrated_high = BODY_MODEL_AGE_YEARS
    for bound in (low, high):
        if not calibrated_low <= bound <= calibrated_high:
            raise ValueError(f"cohort.age_years: {bound:g} years is outside the body model's calibrated range "
                             f"[{calibrated_low:g}, {calibrated_high:g}] years")
    if low > high:
        raise ValueError(f"cohort.age_years: [{low:g}, {high:g}] has its lower bound above its upper bound")
    return Demographics(tuple((sex, float(proportions.get(sex, 0.0))) for sex in SEXES), (low, high))


def _size_coupling(cohort: Mapping[str, Any], names: list[str]) -> SizeCoupling | None:
    spec = cohort.get("size_coupling") or {}
    correlation = float(spec.get("correlation", 0.0))
    if correlation == 0.0:
        return None
    columns = (f"heart_mode_{int(spec['heart_mode']):02d}", f"torso_mode_{int(spec['torso_mode']):02d}")
    for column in columns:
        if column not in names:
            organ = column.split("_")[0]
            raise ValueError(
                f"cohort.size_coupling couples {column}, but cohort.{organ}_modes.count is "
                f"{sum(n.startswith(organ + '_mode_') for n in names)}: raise the count or set "
                "cohort.size_coupling.correlation to 0")
    return SizeCoupling(*columns, correlation)


def patient_ids(design: CohortDesign, split: str | None = None) -> list[str]:
    """Patient ids (``train-0000``, ...), train first, in table order."""
    chosen = SPLITS if split is None else (split,)
    return [f"{name}-{i:04d}" for name in chosen for i in range(design.splits[name].count)]


def _unit_batch(design: CohortDesign, split: str, batch: int) -> np.ndarray:
    """Batch ``batch`` of ``split``: an exact Latin hypercube on [0, 1)^d, shape (lhs_batch, d),
    read-only (computed once per batch: planning a cohort asks for every patient's row)."""
    return _latin_hypercube(design.seed, SPLITS.index(split), batch, design.splits[split].lhs_batch,
                            design.dimensions, design.size_coupling)


#: What a Latin-hypercube batch is computed from besides its arguments: this module and the
#: libraries that draw it. A cached batch made by other code or other versions is never used.
DRAWN_WITH_LIBRARIES = ("numpy", "scipy")


def latin_hypercube_cache_key(seed: int, split_index: int, batch: int, size: int, names: tuple[str, ...],
                              size_coupling: SizeCoupling | None) -> str:
    """The version of one unit Latin-hypercube batch: a hash of what draws it (its arguments,
    this module's source, the versions of :data:`DRAWN_WITH_LIBRARIES`); the bounds of the
    dimensions are not in it (the batch is on the unit cube)."""
    coupling = None if size_coupling is None else [size_coupling.heart_column, size_coupling.torso_column,
                                                    size_coupling.correlation]
    digest = hashlib.sha256(json.dumps([seed, split_index, batch, size, list(names), coupling]).encode())
    digest.update(_drawn_with())
    return digest.hexdigest()[:20]


@functools.cache
def _drawn_with() -> bytes:
    """This module's source and the versions of :data:`DRAWN_WITH_LIBRARIES` (read once: a
    10,000-patient plan asks for a hundred batches)."""
    return code_and_library_versions([__file__], DRAWN_WITH_LIBRARIES)


@functools.lru_cache(maxsize=256)
def _latin_hypercube(seed: int, split_index: int, batch: int, size: int, dimensions: tuple[Dimension, ...],
                     size_coupling: SizeCoupling | None) -> np.ndarray:
    """The unit batch, from the user cache (``designs``) when it holds this version: a cluster
    job plans its patients' rows, and drawing them imports scipy.stats (about 1 s of every job's
    start-up); a batch drawn here is cached for the next job."""
    key = latin_hypercube_cache_key(seed, split_index, batch, size, tuple(d.name for d in dimensions), size_coupling)
    cached = user_cache_dir("designs") / f"lhs-{key}.npy"
    try:
        unit = np.load(cached)
        if unit.shape == (size, len(dimensions)):
            unit.flags.writeable = False
            return unit
    except (OSError, ValueError):
        pass  # absent or unreadable: drawn below
    unit = _draw_latin_hypercube(seed, split_index, batch, size, dimensions, size_coupling)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as temporary, open(temporary, "wb") as stream:
            np.save(stream, unit)
    except OSError:  # a read-only or full cache costs the next job the draw, not this one
        pass
    return unit


def _draw_latin_hypercube(seed: int, split_index: int, batch: int, size: int, dimensions: tuple[Dimension, ...],
                          size_coupling: SizeCoupling | None) -> np.ndarray:
    from scipy.stats import qmc

    stream = np.random.default_rng([seed, split_index, batch])
    unit = qmc.LatinHypercube(d=len(dimensions), rng=stream).random(size)
    if size_coupling is not None:
        names = [d.name for d in dimensions]
        unit = couple_columns(unit, names.index(size_coupling.heart_column), names.index(size_coupling.torso_column),
                              size_coupling.correlation)
    unit.flags.writeable = False
    return unit


def couple_columns(unit: np.ndarray, moved: int, leading: int, correlation: float) -> np.ndarray:
    """Re-pair column ``moved`` of a unit-cube sample with column ``leading``: the values of
    ``moved`` are handed out in the rank order of correlation * z(leading) + sqrt(1 -
    correlation**2) * z(moved), z the standard-normal scores, so the column keeps its values
    (and its Latin-hypercube strata) and gains a Gaussian-copula correlation with ``leading``.
    Correlation 0 returns the sample unchanged."""
    from scipy.stats import norm

    scores = (correlation * norm.ppf(unit[:, leading])
              + np.sqrt(1.0 - correlation**2) * norm.ppf(unit[:, moved]))
    coupled = unit.copy()
    coupled[np.argsort(scores), moved] = np.sort(unit[:, moved])
    return coupled


def _scale(design: CohortDesign, unit: np.ndarray) -> np.ndarray:
    low = np.array([d.low for d in design.dimensions])
    high = np.array([d.high for d in design.dimensions])
    return low + unit * (high - low)


def sample_split(design: CohortDesign, split: str) -> np.ndarray:
    """All rows of one split in physical units, shape (count, number of dimensions)."""
    spec = design.splits[split]
    batches = -(-spec.count // spec.lhs_batch)
    if batches == 0:
        return np.empty((0, len(design.dimensions)))
    unit = np.vstack([_unit_batch(design, split, b) for b in range(batches)])[: spec.count]
    return _scale(design, unit)


def sample_cohort(design: CohortDesign) -> pd.DataFrame:
    """The cohort table: one row per patient (``patient``, ``split``, ``sex``, ``age_years``,
    then every dimension)."""
    import pandas as pd

    frames = []
    for split in SPLITS:
        values = sample_split(design, split)
        frame = pd.DataFrame(values, columns=design.names)
        people = [patient_person(design, patient) for patient in patient_ids(design, split)]
        frame.insert(0, "age_years", [person.age_years for person in people])
        frame.insert(0, "sex", [person.sex for person in people])
        frame.insert(0, "split", split)
        frame.insert(0, "patient", patient_ids(design, split))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def patient_parameters(design: CohortDesign, patient: str) -> dict[str, float]:
    """One patient's row, computed from its own batch only (no need for the whole table)."""
    split, index = _split_and_index(design, patient)
    spec = design.splits[split]
    unit = _unit_batch(design, split, index // spec.lhs_batch)[index % spec.lhs_batch]
    return dict(zip(design.names, (float(v) for v in _scale(design, unit[None, :])[0])))


@functools.lru_cache(maxsize=256)
def _demographic_batch(seed: int, split_index: int, batch: int, size: int) -> np.ndarray:
    """Batch ``batch`` of a split's demographic unit sample, shape (size, 2) (sex, age): a
    Latin hypercube drawn with numpy alone (no scipy at a job's start-up), read-only."""
    stream = np.random.default_rng([seed, split_index, batch, DEMOGRAPHICS_STREAM])
    unit = np.column_stack([(stream.permutation(size) + stream.random(size)) / size for _ in range(2)])
    unit.flags.writeable = False
    return unit


def _person(demographics: Demographics, unit: np.ndarray) -> Person:
    """The sex whose share of the cumulative proportions holds ``unit[0]``, the age at ``unit[1]``
    of the range."""
    bounds = np.cumsum([fraction for _, fraction in demographics.sex_proportions])
    index = min(int(np.searchsorted(bounds, unit[0], side="right")), len(bounds) - 1)
    while demographics.sex_proportions[index][1] == 0.0:  # the last bound can round below 1
        index -= 1
    low, high = demographics.age_years
    return Person(demographics.sex_proportions[index][0], float(low + unit[1] * (high - low)))


def _split_and_index(design: CohortDesign, patient: str) -> tuple[str, int]:
    split, _, number = patient.partition("-")
    if split not in SPLITS or not number.isdigit():
        raise ValueError(f"patient id '{patient}' does not match {PATIENT_ID_PATTERN}")
    index = int(number)
    if index >= design.splits[split].count:
        raise ValueError(f"patient '{patient}' is outside the cohort ({split} has {design.splits[split].count})")
    return split, index


def patient_person(design: CohortDesign, patient: str) -> Person:
    """One patient's sex and age, from its own batch only."""
    split, index = _split_and_index(design, patient)
    size = design.splits[split].lhs_batch
    unit = _demographic_batch(design.seed, SPLITS.index(split), index // size, size)[index % size]
    return _person(design.demographics, unit)


def patient_rng(seed: int, patient: str, stream: str) -> np.random.Generator:
    """The random generator of one patient for one purpose (``stream``, e.g. "electrodes"):
    derived from (seed, patient, stream) alone, so it never depends on the cohort's size."""
    split, _, number = patient.partition("-")
    return np.random.default_rng([seed, SPLITS.index(split), int(number), zlib.crc32(stream.encode())])


def column_descriptions(design: CohortDesign) -> dict[str, Any]:
    """The JSON sidecar: columns with units, ranges and meaning, and the sampling method."""
    columns: dict[str, Any] = {
        "patient": {"description": "patient id: <split>-<index>, index from 0 within the split"},
        "split": {"description": "train or test; the splits are independent Latin hypercubes"},
        "sex": {"description": "sex of the patient: the body drawn, the heart's size and wall thickness, and "
                               "the sex-specific ECG thresholds follow it",
                "values": [sex for sex, _ in design.demographics.sex_proportions],
                "proportions": dict(design.demographics.sex_proportions)},
        "age_years": {"description": "age of the patient (the body is drawn for it)", "units": "year",
                      "range": list(design.demographics.age_years)},
    }
    for d in design.dimensions:
        columns[d.name] = {"description": d.description, "units": d.unit, "range": [d.low, d.high]}
    coupling = design.size_coupling
    return {
        "method": "Latin hypercube (scipy.stats.qmc.LatinHypercube), uniform distribution, in "
                  "batches per split seeded by (seed, split, batch)"
                  + ("" if coupling is None else
                     f"; {coupling.heart_column} re-paired with {coupling.torso_column} within each "
                     f"batch at Gaussian-copula correlation {coupling.correlation} (Iman-Conover)")
                  + "; sex and age from a second Latin hypercube per batch with a stream of its own",
        "seed": design.seed,
        "splits": {name: {"count": s.count, "lhs_batch": s.lhs_batch}
                   for name, s in design.splits.items()},
        "columns": columns,
    }


def write_cohort(table: pd.DataFrame, design: CohortDesign, csv_path: str | Path,
                 json_path: str | Path) -> None:
    """Write the table (CSV, full float precision) and its JSON sidecar atomically."""
    with atomic_path(csv_path) as temporary:
        table.to_csv(temporary, index=False)
    with atomic_path(json_path) as temporary:
        temporary.write_text(json.dumps(column_descriptions(design), indent=2) + "\n")
