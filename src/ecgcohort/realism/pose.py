"""The heart's pose against anatomical references, beside the sinus QRS axis it produces.

In adults without structural heart disease the heart's long axis in the frontal plane measured
by CT is 38.1 ± 7.8° and the frontal QRS axis of the same 59 people 51.8 ± 26.6°, the two
uncorrelated (Br J Cardiol 2015;22(2), doi:10.5837/bjc.2015.016): a healthy cohort's electrical
axis sits, on average, near its anatomical one. The long axis alone does not fix the pose: the
rotation about it moves the QRS axis too (docs/changelog.md, "The heart's rotation about its long
axis"), so the table also gives the RV's share of the diaphragmatic and sternocostal surfaces
(:func:`ecgcohort.anatomy.assembly.epicardial_surface_shares`) beside the anatomy texts'.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.anatomy.assembly import long_axis_angles

#: Frontal-plane long-axis angle by CT, mean and SD (degrees), and its source.
FRONTAL_LONG_AXIS_DEG = (38.1, 7.8)
#: Frontal QRS axis of the same people, mean and SD (degrees).
FRONTAL_QRS_AXIS_DEG = (51.8, 26.6)
POSE_SOURCE = "59 adults without structural heart disease, CT and ECG (Br J Cardiol 2015;22(2), doi:10.5837/bjc.2015.016)"
#: Columns of the pose table, in order.
POSE_COLUMNS = ("patient", "long_axis_frontal_deg", "long_axis_transverse_deg", "long_axis_inclination_deg",
                "rv_share_of_diaphragmatic_surface", "rv_share_of_sternocostal_surface",
                "sinus_qrs_axis_deg", "qrs_minus_long_axis_deg")
#: The RV's share of each epicardial surface in the anatomy texts.
SURFACE_SHARES = {"diaphragmatic": "about one third (two thirds LV)", "sternocostal": "most of it"}
SURFACE_SOURCE = ("Gray's Anatomy, 20th ed. (1918): the heart's diaphragmatic and sternocostal surfaces; "
                  "GPnotebook, Inferior surface (heart, anatomy): the RV about a third of the diaphragmatic one")


def _wrapped(angle_deg: float) -> float:
    return float((angle_deg + 180.0) % 360.0 - 180.0)


def pose_rows(anatomy_jsons: Sequence[str | Path], feature_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per patient: its long-axis angles (``anatomy.json``'s ``measures.long_axis``) and
    the frontal QRS axis of its sinus beat (None where the beat was not delineated), degrees."""
    sinus_axis = {str(r["patient"]): r.get("qrs_axis_deg") for r in feature_rows
                  if r.get("kind") == "sinus" and r.get("status") == "ok"}
    rows = []
    for path in anatomy_jsons:
        summary = json.loads(Path(path).read_text())
        patient = str(summary["patient"])
        if "long_axis" not in summary.get("measures", {}):
            raise ValueError(f"patient {patient}: {path} has no measures.long_axis")
        angles = long_axis_angles(summary["measures"]["long_axis"])
        qrs = sinus_axis.get(patient)
        qrs = None if qrs is None or not np.isfinite(float(qrs)) else float(qrs)
        shares = {f"rv_share_of_{name}_surface": summary["measures"].get(f"rv_share_of_{name}_surface")
                  for name in SURFACE_SHARES}
        rows.append({"patient": patient, "long_axis_frontal_deg": angles["frontal_deg"],
                     "long_axis_transverse_deg": angles["transverse_deg"],
                     "long_axis_inclination_deg": angles["inclination_deg"], **shares, "sinus_qrs_axis_deg": qrs,
                     "qrs_minus_long_axis_deg": None if qrs is None else _wrapped(qrs - angles["frontal_deg"])})
    return rows


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.0f}° to {max(values):.0f}° (median {float(np.median(values)):.0f}°)" if values else "none"


def pose_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The cohort's long-axis and QRS-axis ranges beside the CT reference."""
    frontal = [float(r["long_axis_frontal_deg"]) for r in rows]
    qrs = [float(r["sinus_qrs_axis_deg"]) for r in rows if r["sinus_qrs_axis_deg"] is not None]
    offset = [float(r["qrs_minus_long_axis_deg"]) for r in rows if r["qrs_minus_long_axis_deg"] is not None]
    (m_anat, sd_anat), (m_qrs, sd_qrs) = FRONTAL_LONG_AXIS_DEG, FRONTAL_QRS_AXIS_DEG
    within = sum(abs(a - m_anat) <= 2 * sd_anat for a in frontal)
    return "\n".join([
        "## Heart pose against anatomy", "",
        "| quantity | cohort | reference (mean ± SD) |", "|---|---|---|",
        f"| long axis, frontal plane | {_range(frontal)}; {within}/{len(frontal)} within 2 SD | {m_anat}° ± {sd_anat}° |",
        f"| long axis, transverse plane (from left towards anterior) | "
        f"{_range([float(r['long_axis_transverse_deg']) for r in rows])} | |",
        f"| long axis below the horizontal plane | {_range([float(r['long_axis_inclination_deg']) for r in rows])} | |",
        *_share_lines(rows),
        f"| sinus QRS axis, frontal plane | {_range(qrs)} | {m_qrs}° ± {sd_qrs}° |",
        f"| QRS axis minus long axis | {_range(offset)} | {m_qrs - m_anat:+.1f}° (difference of the means) |",
        "", f"References: {POSE_SOURCE}; {SURFACE_SOURCE}.", ""])


def _share_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for name, reference in SURFACE_SHARES.items():
        values = [float(r[f"rv_share_of_{name}_surface"]) for r in rows
                  if r.get(f"rv_share_of_{name}_surface") is not None]
        if values:
            lines.append(f"| RV share of the {name} surface | {min(values):.2f} to {max(values):.2f} "
                         f"(median {float(np.median(values)):.2f}) | {reference} |")
    return lines
