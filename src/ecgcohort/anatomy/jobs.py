"""The anatomy stage's jobs: file paths in, files out (called by the workflow's scripts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from ecgcohort.anatomy.assembly import PlacementSettings, assemble_patient
from ecgcohort.anatomy.heart_norms import HeartNorms
from ecgcohort.anatomy.outputs import (
    plot_anatomy,
    read_landmarks,
    read_surface,
    write_anatomy,
    write_electrodes,
)
from ecgcohort.cohort import Person, patient_rng
from ecgcohort.shapes import load_npz

log = logging.getLogger(__name__)


def assemble(patient: str, heart_model: str | Path, torso_model: str | Path, parameters: str | Path,
             settings: Mapping[str, Any], heart_out: str | Path, torso_out: str | Path,
             summary_out: str | Path) -> None:
    """Assemble and check one patient; write its surfaces (``.vtp``, at the shape models'
    own resolution: the patient, whatever it is later meshed at) and summary (JSON).
    ``settings``: the ``anatomy`` config section (placement, checks, ``heart_by_sex``)."""
    record = json.loads(Path(parameters).read_text())
    for key in ("sex", "age_years"):
        if key not in record:
            raise ValueError(f"patient {patient}: {parameters} has no '{key}' (written by an older ecgcohort? "
                             "re-run its patient_parameters job)")
    placement = {key: value for key, value in settings.items() if key != "heart_by_sex"}
    anatomy = assemble_patient(patient, load_npz(heart_model), load_npz(torso_model), record["parameters"],
                               PlacementSettings(**placement), person=Person(record["sex"], float(record["age_years"])),
                               heart_norms=HeartNorms(**settings["heart_by_sex"]))
    write_anatomy(anatomy, heart_out, torso_out, summary_out)


def place_standard_electrodes(patient: str, torso: str | Path, summary: str | Path, rules: Mapping[str, Any],
                              output: str | Path) -> None:
    """Place the 9 electrodes of the 12-lead ECG on the patient's body surface (CSV): what the
    convergence ladder reads, apart from the anterior array."""
    # the electrodes' tables need pandas (about 1 s to import), which assembling a patient does not
    from ecgcohort.anatomy.electrodes import ElectrodeRules, standard_electrode_table

    surface = read_surface(torso)
    table = standard_electrode_table(surface.points, surface.faces, read_landmarks(summary), ElectrodeRules(**rules))
    write_electrodes(table, output)
    log.info("patient %s: %d standard electrodes", patient, len(table))


def place_electrodes(patient: str, seed: int, torso: str | Path, summary: str | Path, standard: str | Path,
                     anterior_count: int, output: str | Path) -> None:
    """The 12-lead electrodes of ``standard`` (CSV) and ``anterior_count`` anterior electrodes
    on the patient's body surface (CSV)."""
    import pandas as pd

    from ecgcohort.anatomy.electrodes import with_anterior_electrodes

    surface = read_surface(torso)
    # round_trip: the positions written by place_standard_electrodes, to the last bit
    standard_table = pd.read_csv(standard, float_precision="round_trip")
    table = with_anterior_electrodes(standard_table, surface.points, surface.faces, read_landmarks(summary),
                                     anterior_count, patient_rng(seed, patient, "electrodes"))
    write_electrodes(table, output)
    log.info("patient %s: %d electrodes", patient, len(table))


def preview(patient: str, heart: str | Path, torso: str | Path, electrodes: str | Path, output: str | Path) -> None:
    """PNG preview: translucent torso, heart regions, labelled electrodes."""
    from ecgcohort.anatomy.electrode_csv import read_electrode_table

    plot_anatomy(read_surface(heart), read_surface(torso), read_electrode_table(electrodes), output, title=patient)
