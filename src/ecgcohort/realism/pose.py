"""The heart's pose against anatomical references, beside the sinus QRS axis it produces.

In adults without structural heart disease the heart's long axis in the frontal plane measured
by CT is 38.1 ± 7.8° and the frontal QRS axis of the same 59 people 51.8 ± 26.6°, the two
uncorrelated (Br J Cardiol 2015;22(2), doi:10.5837/bjc.2015.016): a healthy cohort's electrical
axis sits, on average, near its anatomical one. In the transverse plane the long axis of 94
healthy volunteers by CMR points 46 ± 7° from the left towards anterior (38 ± 10° in their
frontal plane; Engblom et al. 2005, Am Heart J 150:507). The long axis alone does not fix the pose: the
rotation about it moves the QRS axis too (docs/changelog.md, "The heart's rotation about its long
axis"), so the table also gives the RV's share of the diaphragmatic and sternocostal surfaces
(:func:`ecgcohort.anatomy.assembly.epicardial_surface_shares`) beside the anatomy texts', and
where the apex lies against the chest's landmarks: Gray's Anatomy puts it behind the fifth left
intercostal space, 8 to 9 cm from the midsternal line, where V4 is placed (5th intercostal space,
mid-clavicular line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.stats

from ecgcohort.anatomy.assembly import long_axis_angles
from ecgcohort.anatomy.electrodes import ElectrodeRules

#: Frontal-plane long-axis angle by CT, mean and SD (degrees), and its source.
FRONTAL_LONG_AXIS_DEG = (38.1, 7.8)
#: Frontal QRS axis of the same people, mean and SD (degrees).
FRONTAL_QRS_AXIS_DEG = (51.8, 26.6)
POSE_SOURCE = "59 adults without structural heart disease, CT and ECG (Br J Cardiol 2015;22(2), doi:10.5837/bjc.2015.016)"
#: Transverse-plane long-axis angle by CMR (from the left towards anterior), mean and SD (degrees).
TRANSVERSE_LONG_AXIS_DEG = (46.0, 7.0)
TRANSVERSE_SOURCE = "94 healthy volunteers, CMR (Engblom et al. 2005, Am Heart J 150:507)"
#: Columns of the pose table, in order.
POSE_COLUMNS = ("patient", "long_axis_frontal_deg", "long_axis_transverse_deg", "long_axis_inclination_deg",
                "rv_share_of_diaphragmatic_surface", "rv_share_of_sternocostal_surface",
                "apex_left_of_midline_mm", "apex_sternum_fraction", "sinus_qrs_axis_deg", "qrs_minus_long_axis_deg",
                "sinus_every_criterion")
#: The transverse-angle bands of the pass-rate table: (low, high) in SDs of the reference about its mean.
TRANSVERSE_BANDS_SD = ((-np.inf, -1.0), (-1.0, 1.0), (1.0, np.inf))
#: Where the apex lies in the anatomy texts (distance from the midsternal line, mm), and the source.
APEX_LEFT_OF_MIDLINE_MM = (80.0, 90.0)
APEX_SOURCE = ("Gray's Anatomy, 20th ed. (1918): the apex behind the fifth left intercostal space, 8 to 9 cm "
               "from the mid-sternal line")
#: The RV's share of each epicardial surface in the anatomy texts.
SURFACE_SHARES = {"diaphragmatic": "about one third (two thirds LV)", "sternocostal": "most of it"}
SURFACE_SOURCE = ("Gray's Anatomy, 20th ed. (1918): the heart's diaphragmatic and sternocostal surfaces; "
                  "GPnotebook, Inferior surface (heart, anatomy): the RV about a third of the diaphragmatic one")


def _wrapped(angle_deg: float) -> float:
    return float((angle_deg + 180.0) % 360.0 - 180.0)


def pose_rows(anatomy_jsons: Sequence[str | Path], feature_rows: Sequence[Mapping[str, Any]],
              criteria_results: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """One row per patient: its long-axis angles (``anatomy.json``'s ``measures.long_axis``), the
    frontal QRS axis of its sinus beat (None where the beat was not delineated), degrees, and
    whether that beat passes every healthy criterion (``criteria_results``, the rows of
    :func:`ecgcohort.realism.summary.evaluate_cohort`; None where it has none)."""
    sinus_axis = {str(r["patient"]): r.get("qrs_axis_deg") for r in feature_rows
                  if r.get("kind") == "sinus" and r.get("status") == "ok"}
    every_criterion: dict[str, bool] = {}
    for result in criteria_results:
        if result["criteria_set"] == "healthy":
            patient = str(result["patient"])
            every_criterion[patient] = every_criterion.get(patient, True) and bool(result["passed"])
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
                     "long_axis_inclination_deg": angles["inclination_deg"], **shares,
                     **apex_position(summary), "sinus_qrs_axis_deg": qrs,
                     "qrs_minus_long_axis_deg": None if qrs is None else _wrapped(qrs - angles["frontal_deg"]),
                     "sinus_every_criterion": every_criterion.get(patient)})
    return rows


def apex_position(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The apex's distance left of the midsternal line (mm) and its height as a fraction of the
    way from the jugular notch to the xiphoid (the electrode rules' unit), from an ``anatomy.json``
    summary; None where it lacks the apex or those landmarks."""
    landmarks, apex = summary.get("landmarks_mm", {}), summary.get("measures", {}).get("apex_mm")
    if apex is None or not {"jugular_notch", "xiphoid"} <= set(landmarks):
        return {"apex_left_of_midline_mm": None, "apex_sternum_fraction": None}
    top, bottom, apex = (np.asarray(v, dtype=float) for v in (landmarks["jugular_notch"], landmarks["xiphoid"], apex))
    return {"apex_left_of_midline_mm": float(apex[0] - 0.5 * (top[0] + bottom[0])),
            "apex_sternum_fraction": float((apex[2] - top[2]) / (bottom[2] - top[2]))}


def _range(values: Sequence[float]) -> str:
    return f"{min(values):.0f}° to {max(values):.0f}° (median {float(np.median(values)):.0f}°)" if values else "none"


def pose_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The cohort's long-axis and QRS-axis ranges beside the CT reference."""
    frontal = [float(r["long_axis_frontal_deg"]) for r in rows]
    qrs = [float(r["sinus_qrs_axis_deg"]) for r in rows if r["sinus_qrs_axis_deg"] is not None]
    offset = [float(r["qrs_minus_long_axis_deg"]) for r in rows if r["qrs_minus_long_axis_deg"] is not None]
    (m_anat, sd_anat), (m_qrs, sd_qrs) = FRONTAL_LONG_AXIS_DEG, FRONTAL_QRS_AXIS_DEG
    within = sum(abs(a - m_anat) <= 2 * sd_anat for a in frontal)
    transverse = [float(r["long_axis_transverse_deg"]) for r in rows]
    m_trans, sd_trans = TRANSVERSE_LONG_AXIS_DEG
    # the transverse reference came with the apex columns (2026-11-30): a pose table recorded before
    # them renders as it was recorded
    with_references = any("apex_left_of_midline_mm" in r for r in rows)
    transverse_reference = (f"; {sum(abs(a - m_trans) <= 2 * sd_trans for a in transverse)}/{len(transverse)} "
                            f"within 2 SD | {m_trans:g}° ± {sd_trans:g}° |" if with_references else " | |")
    apex_lines = _apex_lines(rows)
    return "\n".join([
        "## Heart pose against anatomy", "",
        "| quantity | cohort | reference (mean ± SD) |", "|---|---|---|",
        f"| long axis, frontal plane | {_range(frontal)}; {within}/{len(frontal)} within 2 SD | {m_anat}° ± {sd_anat}° |",
        f"| long axis, transverse plane (from left towards anterior) | "
        f"{_range(transverse)}{transverse_reference}",
        f"| long axis below the horizontal plane | {_range([float(r['long_axis_inclination_deg']) for r in rows])} | |",
        *_share_lines(rows), *apex_lines,
        f"| sinus QRS axis, frontal plane | {_range(qrs)} | {m_qrs}° ± {sd_qrs}° |",
        f"| QRS axis minus long axis | {_range(offset)} | {m_qrs - m_anat:+.1f}° (difference of the means) |",
        "", f"References: {POSE_SOURCE}; " + (f"transverse plane: {TRANSVERSE_SOURCE}; " if with_references else "")
        + SURFACE_SOURCE + (f"; {APEX_SOURCE}" if apex_lines else "") + ".", "", *transverse_pass_lines(rows)])


def _passed(value: Any) -> bool | None:
    """A recorded pass flag (a bool, 0/1 or "True"/"False" read back from a CSV); None where empty."""
    if value is None or value == "" or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if isinstance(value, str):
        return {"true": True, "false": False}[value.strip().lower()]
    return bool(value)


def transverse_pass_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sinus beats passing every healthy criterion in bands of the long axis's transverse angle
    (degrees; below, within and above one SD of the CMR reference's mean), beside the share of
    healthy adults in each band were the reference normal; no lines for a table without the flags."""
    judged = [(float(r["long_axis_transverse_deg"]), _passed(r.get("sinus_every_criterion"))) for r in rows]
    judged = [(angle, passed) for angle, passed in judged if passed is not None]
    if not judged:
        return []
    mean, sd = TRANSVERSE_LONG_AXIS_DEG
    lines = ["Sinus beats passing every healthy criterion by the long axis's transverse angle:", "",
             "| transverse angle | patients (share) | healthy adults' share | every criterion |", "|---|---|---|---|"]
    for low, high in TRANSVERSE_BANDS_SD:
        inside = [passed for angle, passed in judged if mean + low * sd <= angle < mean + high * sd]
        if np.isinf(low):
            band = f"below {mean + high * sd:g}° (mean − 1 SD)"
        elif np.isinf(high):
            band = f"{mean + low * sd:g}° and above (mean + 1 SD)"
        else:
            band = f"{mean + low * sd:g}° to {mean + high * sd:g}°"
        expected = float(scipy.stats.norm.cdf(high) - scipy.stats.norm.cdf(low))
        rate = f"{sum(inside)}/{len(inside)} ({100 * sum(inside) / len(inside):.0f} %)" if inside else "none"
        lines.append(f"| {band} | {len(inside)} ({100 * len(inside) / len(judged):.0f} %) | {100 * expected:.0f} % | {rate} |")
    return lines + [""]


def _apex_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    left = [float(r["apex_left_of_midline_mm"]) for r in rows if r.get("apex_left_of_midline_mm") is not None]
    level = [float(r["apex_sternum_fraction"]) for r in rows if r.get("apex_sternum_fraction") is not None]
    if not left:
        return []
    low, high = APEX_LEFT_OF_MIDLINE_MM
    inside = sum(low <= value <= high for value in left)
    return [f"| apex left of the midsternal line | {min(left):.0f} to {max(left):.0f} mm (median "
            f"{float(np.median(left)):.0f} mm); {inside}/{len(left)} within {low:.0f}-{high:.0f} mm | {low / 10:.0f} to {high / 10:.0f} cm |",
            f"| apex height, fraction of jugular notch to xiphoid | {min(level):.2f} to {max(level):.2f} "
            f"(median {float(np.median(level)):.2f}) | behind the 5th intercostal space, where V4 is placed "
            f"({ElectrodeRules().fifth_intercostal_fraction:.2f} in the electrode rules) |"]


def _share_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for name, reference in SURFACE_SHARES.items():
        values = [float(r[f"rv_share_of_{name}_surface"]) for r in rows
                  if r.get(f"rv_share_of_{name}_surface") is not None]
        if values:
            lines.append(f"| RV share of the {name} surface | {min(values):.2f} to {max(values):.2f} "
                         f"(median {float(np.median(values)):.2f}) | {reference} |")
    return lines
