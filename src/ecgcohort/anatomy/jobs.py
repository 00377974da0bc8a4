"""The anatomy stage's jobs: file paths in, files out (called by the workflow's scripts)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from ecgcohort.anatomy.assembly import PlacementSettings, assemble_patient
from ecgcohort.anatomy.electrodes import ElectrodeRules, electrode_table
from ecgcohort.anatomy.outputs import (
    plot_anatomy,
    read_landmarks,
    read_surface,
    write_anatomy,
    write_electrodes,
)
from ecgcohort.cohort import patient_rng
from ecgcohort.shapes import load_npz

log = logging.getLogger(__name__)


def assemble(patient: str, heart_model: str | Path, torso_model: str | Path, parameters: str | Path,
             settings: Mapping[str, Any], heart_out: str | Path, torso_out: str | Path,
             summary_out: str | Path) -> None:
    """Assemble and check one patient; write its surfaces (``.vtp``, at the shape models'
    own resolution: the patient, whatever it is later meshed at) and summary (JSON)."""
    row = json.loads(Path(parameters).read_text())["parameters"]
    anatomy = assemble_patient(patient, load_npz(heart_model), load_npz(torso_model), row,
                               PlacementSettings(**settings))
    write_anatomy(anatomy, heart_out, torso_out, summary_out)


def place_electrodes(patient: str, seed: int, torso: str | Path, summary: str | Path, anterior_count: int,
                     rules: Mapping[str, Any], output: str | Path) -> None:
    """Place the 12-lead and anterior electrodes on the patient's body surface (CSV)."""
    surface = read_surface(torso)
    table = electrode_table(surface.points, surface.faces, read_landmarks(summary), anterior_count,
                            patient_rng(seed, patient, "electrodes"), ElectrodeRules(**rules))
    write_electrodes(table, output)
    log.info("patient %s: %d electrodes", patient, len(table))


def preview(patient: str, heart: str | Path, torso: str | Path, electrodes: str | Path, output: str | Path) -> None:
    """PNG preview: translucent torso, heart regions, labelled electrodes."""
    import pandas as pd

    plot_anatomy(read_surface(heart), read_surface(torso), pd.read_csv(electrodes), output, title=patient)
