"""The meshing stage's job: surfaces in, tagged ``.msh`` and quality report out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ecgcohort.io import atomic_path
from ecgcohort.meshing.tetra import mesh_heart_in_torso


def mesh_patient(heart: str | Path, torso: str | Path, settings: Mapping[str, Any], threads: int,
                 mesh_out: str | Path, quality_out: str | Path) -> None:
    """Mesh one patient's anatomy (surfaces written by the anatomy stage)."""
    from ecgcohort.anatomy.outputs import read_surface

    heart_surface, torso_surface = read_surface(heart), read_surface(torso)
    report = mesh_heart_in_torso(
        torso_surface.points, torso_surface.faces, heart_surface.points, heart_surface.faces,
        heart_surface.labels, heart_surface.label_names,
        heart_size_mm=settings["heart_element_size_mm"], torso_size_mm=settings["torso_element_size_mm"],
        output_path=mesh_out, threads=threads, algorithm=settings["algorithm_3d"],
        optimize_netgen=settings["optimize_netgen"], sliver_threshold_deg=settings["sliver_angle_deg"],
        max_sliver_fraction=settings["max_sliver_fraction"])
    with atomic_path(quality_out) as temporary:
        temporary.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
