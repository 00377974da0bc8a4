"""Files of the cohort stage: the design table with its sidecar, and per-patient parameters."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ecgcohort.cohort.sampling import (
    CohortDesign,
    design_from_config,
    patient_parameters,
    patient_person,
    sample_cohort,
    write_cohort,
)
from ecgcohort.io import atomic_path

if TYPE_CHECKING:  # pandas and pyarrow cost about 1 s to import; a patient's parameters do not need them
    import pandas as pd

log = logging.getLogger(__name__)


def write_design(cohort: Mapping[str, Any], table_path: str | Path, columns_path: str | Path,
                 preview_path: str | Path) -> pd.DataFrame:
    """Sample the design of the ``cohort`` config section; write CSV, JSON sidecar and PNG."""
    design = design_from_config(cohort)
    table = sample_cohort(design)
    write_cohort(table, design, table_path, columns_path)
    from ecgcohort.cohort.plot import plot_design  # matplotlib: not at the Snakefile's parse time

    plot_design(table, design, preview_path)
    counts = table.split.value_counts().to_dict()
    log.info("sampled %d patients (%s) over %d dimensions, seed %d", len(table), counts,
             len(design.dimensions), design.seed)
    return table


def patient_record(design: CohortDesign, patient: str) -> dict[str, Any]:
    """One patient's entry: id, split, sex, age (years), sampled parameters and their units."""
    person = patient_person(design, patient)
    return {
        "patient": patient,
        "split": patient.partition("-")[0],
        "sex": person.sex,
        "age_years": person.age_years,
        "parameters": patient_parameters(design, patient),
        "units": {d.name: d.unit for d in design.dimensions},
    }


def write_patient_parameters(record: Mapping[str, Any], output_path: str | Path) -> None:
    """Write a :func:`patient_record` as JSON (atomically)."""
    with atomic_path(output_path) as temporary:
        temporary.write_text(json.dumps(dict(record), indent=2) + "\n")
    log.info("patient %s (%s): %s, %.1f years, %d parameters", record["patient"], record["split"],
             record["sex"], record["age_years"], len(record["parameters"]))
