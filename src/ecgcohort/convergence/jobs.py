"""The convergence stage's jobs: one (patient, level) simulation, and the summary of all levels."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.convergence.level import PatientFiles, Physics, simulate_level
from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)


def convergence_level_job(*, patient: str, level: Mapping[str, float], files: Mapping[str, str | Path],
                          physics: Mapping[str, Any], threads: int, out_npz: str | Path) -> None:
    """Simulate the patient at one level of the ladder (``level``: ``heart_mm``, ``torso_mm``,
    optionally its own ``eikonal_refinements``) and write its arrays (``.npz``, atomically); the
    mesh lives in a temporary folder."""
    patient_files = PatientFiles(**{key: Path(value) for key, value in files.items()})
    settings = Physics(**{**physics, "template_cache": Path(physics["template_cache"]),
                          "eikonal_refinements": int(level.get("eikonal_refinements",
                                                               physics.get("eikonal_refinements", 0)))})
    with tempfile.TemporaryDirectory(prefix=f"convergence-{patient}-") as workdir:
        arrays = simulate_level(patient, float(level["heart_mm"]), float(level["torso_mm"]), patient_files, settings,
                                workdir, threads)
    with atomic_path(out_npz) as temporary, open(temporary, "wb") as stream:
        np.savez_compressed(stream, **arrays)


def convergence_summary_job(*, level_paths: Mapping[str, Sequence[str | Path]], cycle_length_ms: float,
                            template_cache: str | Path, table_out: str | Path, markdown_out: str | Path,
                            leads_out: str | Path, figure_out: str | Path) -> None:
    """Compare every patient's levels (``level_paths``: patient -> level files, coarse to fine,
    the last the reference); write the table (CSV and Markdown), the per-lead table and the
    figure."""
    import pandas as pd

    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.convergence.summary import compare_levels, load_level, markdown_table, plot_convergence

    template = action_potential_template(cycle_length_ms, cache_dir=template_cache)
    tables, lead_tables = [], []
    for patient, paths in level_paths.items():
        levels = sorted((load_level(patient, path) for path in paths), key=lambda level: -level.heart_mm)
        table, leads = compare_levels(levels, template)
        tables.append(table)
        lead_tables.append(leads)
        log.info("patient %s: %s", patient, json.dumps(
            table[["heart_mm", "gradient", "ecg_error", "lead_field_share", "grad_angle_deg_myocardium"]]
            .round(4).to_dict(orient="records")))
    table, leads = pd.concat(tables, ignore_index=True), pd.concat(lead_tables, ignore_index=True)
    for frame, path in ((table, table_out), (leads, leads_out)):
        with atomic_path(path) as temporary:
            frame.to_csv(temporary, index=False, float_format="%.6g")
    with atomic_path(markdown_out) as temporary:
        temporary.write_text(markdown_table(table))
    plot_convergence(table, figure_out)
