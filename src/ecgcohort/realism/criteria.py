"""Realism criteria: named checks of a beat's features against clinical ranges, each with its
source. A scenario is judged by one criteria set (config ``realism.judged_as`` maps scenario
kinds to sets): ``healthy`` (a normal adult 12-lead ECG), ``lbbb`` (Strauss et al. 2011, plus
the AHA's absent lateral q), ``biv_pacing`` (narrower than the patient's LBBB) and ``paced``;
every set also asks for a T wave that ends inside the record.

A threshold that differs between women and men (Strauss's QRS duration, Cornell voltage, the
prolonged QTc) is a setting ``{"female": ..., "male": ...}``, and the beat is judged by the one of
its patient's sex (the row's ``sex``, from the patient's ``anatomy.json``).

Sources (full references: docs/methods/realism.md):
Surawicz et al. 2009 — AHA/ACCF/HRS recommendations for the standardization and interpretation
of the ECG, part III: intraventricular conduction disturbances. Rautaharju et al. 2009 — part IV:
the ST segment, T and U waves, and the QT interval. Hancock et al. 2009 — part V: chamber
hypertrophy. Casale et al. 1985 (Cornell voltage). Sokolow & Lyon 1949. Strauss et al. 2011
(LBBB). Das et al. 2006 (fragmented QRS). Durrer et al. 1970 (septal activation). Aro et al. 2012
(the frontal QRS-T angle). Surawicz & Knilans 2008, Chou's Electrocardiography in Clinical
Practice (R-wave progression, transition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ecgcohort.realism.features import LIMB_LEADS, PRECORDIAL_LEADS, STRAUSS_NOTCH_LEADS

#: A feature-table row: the features of one beat with ``patient``, ``scenario``, ``kind``,
#: ``criteria_set`` and ``status`` ("ok" or why it could not be delineated).
Row = Mapping[str, Any]
#: The criteria sets a scenario kind can be judged by (``none``: not judged).
CRITERIA_SETS: tuple[str, ...] = ("healthy", "lbbb", "biv_pacing", "paced")
#: The sexes a patient can have (anatomy.json's ``sex``), the keys of a sex-specific threshold.
SEXES: tuple[str, ...] = ("female", "male")
#: Lead groups of one coronary territory, in which Das et al. (2006) ask for two fragmented leads.
CONTIGUOUS_LEADS: dict[str, tuple[str, ...]] = {
    "anterior": ("V1", "V2", "V3", "V4", "V5"),
    "lateral": ("I", "aVL", "V6"),
    "inferior": ("II", "III", "aVF"),
}


@dataclass(frozen=True)
class Outcome:
    """A criterion on one beat: the measured value as text and whether it passed (None: not
    measurable, e.g. no T end or no LBBB of the same patient to compare with)."""

    value: str
    passed: bool | None


@dataclass(frozen=True)
class Criterion:
    """A named check. ``requirement`` is formatted with the criteria set's settings;
    ``check(row, settings, patient_rows)`` sees the beat's features, the set's settings and the
    same patient's rows by criteria set."""

    name: str
    criteria_set: str
    requirement: str
    source: str
    check: Callable[[Row, Mapping[str, Any], Mapping[str, Sequence[Row]]], Outcome]

    def describe(self, settings: Mapping[str, Any]) -> str:
        """The requirement with the set's values (lists of lead names as :class:`_LeadNames`)."""
        shown = {key: _LeadNames(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else value
                 for key, value in settings.items()}
        return self.requirement.format(**shown)


class _LeadNames(tuple):
    """Lead names in a requirement: ``{key}`` formats as "V3 or V4", ``{key:path}`` as
    "V1 → V2 → V3"."""

    def __format__(self, spec: str) -> str:
        return " → ".join(self) if spec == "path" else format(" or ".join(self), spec)


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not math.isnan(float(v)) for v in values)


def _within(value: float, bounds: Sequence[float], unit: str) -> Outcome:
    if not _finite(value):
        return Outcome("not measured", None)
    return Outcome(f"{value:.0f} {unit}", bool(bounds[0] <= value <= bounds[1]))


def _at_most(value: float, limit: float, unit: str, digits: int = 2) -> Outcome:
    if not _finite(value):
        return Outcome("not measured", None)
    return Outcome(f"{value:.{digits}f} {unit}", bool(value <= limit))


def _leads(row: Row, feature: str, leads: Sequence[str], test: Callable[[float], bool], unit: str = "mV"
           ) -> Outcome:
    """Pass when ``test`` holds for ``{feature}_{lead}`` in every lead; the value lists the
    leads that fail (or all values when all pass)."""
    values = {lead: float(row[f"{feature}_{lead}"]) for lead in leads}
    if not _finite(*values.values()):
        return Outcome("not measured", None)
    failing = [lead for lead, v in values.items() if not test(v)]
    shown = failing or list(values)
    text = ", ".join(f"{lead} {values[lead]:.2f}" for lead in shown) + (f" {unit}" if unit else "")
    return Outcome(("fails " if failing else "") + text, not failing)


def patient_sex(row: Row) -> str:
    """The sex of the beat's patient ("female" or "male"); ValueError naming the patient, the
    key and the value where the row has none or another."""
    sex = row.get("sex")
    if sex not in SEXES:
        found = "no 'sex'" if sex is None else f"sex {sex!r}"
        raise ValueError(f"patient {row.get('patient')}, {row.get('scenario')}: {found} in its feature row; a "
                         f"sex-specific criterion needs 'sex' ({' or '.join(SEXES)}) from the patient's anatomy.json")
    return str(sex)


def for_sex(row: Row, settings: Mapping[str, Any], key: str) -> Any:
    """The setting ``key`` for the beat's patient's sex (``settings[key]`` is ``{sex: value}``)."""
    return settings[key][patient_sex(row)]


def _t_wave_complete(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    fraction = float(row["t_residual_fraction"])
    if not _finite(fraction):
        return Outcome("not measured", None)
    return Outcome(f"{100 * fraction:.0f} % of T left", not bool(row["t_unfinished"]))


def _transition(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    lead = str(row["transition_lead"])
    return Outcome(lead if lead != "none" else "beyond V6", lead in settings["transition_leads"])


def _fragmentation(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    limit = settings["max_turning_points"]
    failing = {group: fragmented for group, leads in CONTIGUOUS_LEADS.items()
               if len(fragmented := [lead for lead in leads if int(row[f"turning_points_{lead}"]) > limit]) >= 2}
    if failing:
        return Outcome("fragmented in " + "; ".join(f"{group} {' '.join(leads)}" for group, leads in failing.items()),
                       False)
    return Outcome(f"at most {row['turning_points_max']} turning points in a lead", True)


def _septal_activation(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    """An initial r in V1 and a q of at least ``septal_q_min_mv`` in V5 or V6: the septum
    activated from left to right before the free walls."""
    initial_v1 = int(row["initial_deflection_V1"])
    q = {lead: float(row[f"q_mv_{lead}"]) for lead in ("V5", "V6")}
    if not _finite(*q.values()):
        return Outcome("not measured", None)
    deep_enough = [lead for lead, depth in q.items() if depth >= settings["septal_q_min_mv"]]
    v1 = {1: "initial r in V1", -1: "initial q/QS in V1", 0: "no initial wave in V1"}[initial_v1]
    return Outcome(f"{v1}; q " + ", ".join(f"{lead} {depth:.3f} mV" for lead, depth in q.items()),
                   initial_v1 > 0 and bool(deep_enough))


def _r_wave_rise(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    """R rising (never falling by ``r_fall_min_mv`` or more) from lead to lead through
    ``r_rise_leads``."""
    leads = list(settings["r_rise_leads"])
    r = [float(row[f"r_mv_{lead}"]) for lead in leads]
    if not _finite(*r):
        return Outcome("not measured", None)
    least = float(settings["r_fall_min_mv"])
    falls = [f"{a} {ra:.2f} > {b} {rb:.2f} mV" for a, b, ra, rb in zip(leads, leads[1:], r, r[1:])
             if rb < ra and ra - rb >= least]
    return Outcome("falls: " + "; ".join(falls) if falls else " < ".join(f"{v:.2f}" for v in r) + " mV", not falls)


def _cornell(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    """Cornell voltage at most the limit of the patient's sex (above it: left-ventricular hypertrophy)."""
    sex, value = patient_sex(row), float(row["cornell_mv"])
    limit = for_sex(row, settings, "cornell_max_mv")
    if not _finite(value):
        return Outcome("not measured", None)
    return Outcome(f"{value:.2f} mV ({sex}: ≤ {limit:g})", bool(value <= limit))


def _qrs_duration(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    """QRS duration within the normal limits of the patient's sex (both ends included)."""
    sex, value = patient_sex(row), float(row["qrs_duration_ms"])
    low, high = for_sex(row, settings, "qrs_duration_ms")
    if not _finite(value):
        return Outcome("not measured", None)
    return Outcome(f"{value:.0f} ms ({sex}: {low:g} to {high:g})", bool(low <= value <= high))


def _qtc(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    """QTc from the lower bound up to, not including, the prolonged QTc of the patient's sex."""
    sex, value = patient_sex(row), float(row["qtc_ms"])
    low, prolonged = for_sex(row, settings, "qtc_ms")
    if not _finite(value):
        return Outcome("not measured", None)
    return Outcome(f"{value:.0f} ms ({sex}: {low:g} to < {prolonged:g})", bool(low <= value < prolonged))


def _strauss_duration(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    """QRS at least Strauss's minimum for the patient's sex."""
    sex, value = patient_sex(row), float(row["qrs_duration_ms"])
    minimum = for_sex(row, settings, "qrs_min_ms")
    if not _finite(value):
        return Outcome("not measured", None)
    return Outcome(f"{value:.0f} ms ({sex}: ≥ {minimum:g})", bool(value >= minimum))


def _narrower_than_lbbb(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    lbbb = [r for r in patient.get("lbbb", ()) if r["status"] == "ok"]
    own = float(row["qrs_duration_ms"])
    if not lbbb or not _finite(own):
        return Outcome("no LBBB beat of this patient", None)
    reference = float(lbbb[0]["qrs_duration_ms"])
    return Outcome(f"{own:.0f} vs LBBB {reference:.0f} ms", bool(own < reference))


def _strauss_v1_v2(row: Row, settings: Mapping[str, Any], patient: Mapping[str, Sequence[Row]]) -> Outcome:
    return _leads(row, "rs_ratio", ("V1", "V2"), lambda ratio: ratio <= settings["rs_max_v1_v2"], unit="")


T_WAVE_COMPLETE_SOURCE = ("a property of the record, not a clinical range: the T wave must end before the "
                          "simulated beat does")

CRITERIA: tuple[Criterion, ...] = (
    # --- healthy adult 12-lead ECG
    Criterion("qrs_duration", "healthy",
              "QRS {qrs_duration_ms[female][0]:g}-{qrs_duration_ms[female][1]:g} ms (women), "
              "{qrs_duration_ms[male][0]:g}-{qrs_duration_ms[male][1]:g} ms (men)",
              "normal limits, the 2nd-98th percentiles of healthy adults (Rautaharju et al. 2013, 36,299 women: "
              "70-104 ms; Mason et al. 2007, both sexes: from 69 ms); Surawicz et al. 2009 (AHA/ACCF/HRS part "
              "III): ≥ 110 ms is an intraventricular conduction delay", _qrs_duration),
    Criterion("qrs_axis", "healthy", "frontal QRS axis {qrs_axis_deg[0]:g}° to {qrs_axis_deg[1]:g}°",
              "Surawicz et al. 2009 (AHA/ACCF/HRS part III): left axis deviation beyond −30°, right beyond +90°",
              lambda row, s, p: _within(float(row["qrs_axis_deg"]), s["qrs_axis_deg"], "°")),
    Criterion("transition_zone", "healthy", "R/S transition in {transition_leads}",
              "conventional normal transition V3-V4 (Surawicz & Knilans, Chou's Electrocardiography in Clinical "
              "Practice)", _transition),
    Criterion("rs_ratio_v1", "healthy", "R/S < 1 in V1",
              "Hancock et al. 2009 (AHA/ACCF/HRS part V): R/S ≥ 1 in V1 is a right-ventricular hypertrophy sign",
              lambda row, s, p: _leads(row, "rs_ratio", ("V1",), lambda ratio: ratio < 1.0, unit="")),
    Criterion("rs_ratio_v5_v6", "healthy", "R/S > 1 in V5 and V6",
              "Hancock et al. 2009 (AHA/ACCF/HRS part V): R/S ≤ 1 in V5 or V6 is a right-ventricular hypertrophy sign",
              lambda row, s, p: _leads(row, "rs_ratio", ("V5", "V6"), lambda ratio: ratio > 1.0, unit="")),
    Criterion("r_wave_progression", "healthy", "R in V3 > {r_v3_min_mv:g} mV",
              "conventional definition of poor R-wave progression (R in V3 ≤ 3 mm)",
              lambda row, s, p: _leads(row, "r_mv", ("V3",), lambda r: r > s["r_v3_min_mv"])),
    Criterion("r_wave_rise", "healthy", "R never falls by {r_fall_min_mv:g} mV or more along {r_rise_leads:path}",
              "normal R-wave progression: R grows from V1 towards V4-V5; a fall is reversed R-wave progression "
              "(Surawicz & Knilans, Chou's Electrocardiography in Clinical Practice); a fall under half a "
              "millimetre at 10 mm/mV is not read on a printout", _r_wave_rise),
    Criterion("septal_activation", "healthy", "initial r in V1 and a q ≥ {septal_q_min_mv:g} mV in V5 or V6",
              "the septum is activated from left to right first (Durrer et al. 1970): an initial r in V1 with a "
              "septal q in V5-V6", _septal_activation),
    Criterion("t_upright", "healthy", "T upright in I, II, V3-V6",
              "Rautaharju et al. 2009 (AHA/ACCF/HRS part IV); Chou's Electrocardiography in Clinical Practice",
              lambda row, s, p: _leads(row, "t_mv", ("I", "II", "V3", "V4", "V5", "V6"), lambda t: t > 0)),
    Criterion("t_inverted_avr", "healthy", "T inverted in aVR",
              "Rautaharju et al. 2009 (AHA/ACCF/HRS part IV); Chou's Electrocardiography in Clinical Practice",
              lambda row, s, p: _leads(row, "t_mv", ("aVR",), lambda t: t < 0)),
    Criterion("t_amplitude_limb", "healthy", "T amplitude ≤ {t_limb_max_mv:g} mV in the limb leads",
              "conventional upper limit (5 mm) of limb-lead T waves",
              lambda row, s, p: _leads(row, "t_mv", LIMB_LEADS, lambda t: abs(t) <= s["t_limb_max_mv"])),
    Criterion("t_amplitude_precordial", "healthy", "T amplitude ≤ {t_precordial_max_mv:g} mV in V1-V6",
              "conventional upper limit (10-15 mm) of precordial T waves",
              lambda row, s, p: _leads(row, "t_mv", PRECORDIAL_LEADS, lambda t: abs(t) <= s["t_precordial_max_mv"])),
    Criterion("cornell_voltage", "healthy",
              "R aVL + S V3 ≤ {cornell_max_mv[female]:g} mV (women), ≤ {cornell_max_mv[male]:g} mV (men)",
              "Casale et al. 1985 (Cornell voltage: above 2.8 mV in men, 2.0 mV in women is left-ventricular "
              "hypertrophy)", _cornell),
    Criterion("sokolow_lyon", "healthy", "S V1 + max(R V5, R V6) < {sokolow_lyon_max_mv:g} mV",
              "Sokolow & Lyon 1949",
              lambda row, s, p: Outcome(f"{float(row['sokolow_lyon_mv']):.2f} mV",
                                        float(row["sokolow_lyon_mv"]) < s["sokolow_lyon_max_mv"])),
    Criterion("qtc", "healthy",
              "QTc (Fridericia) {qtc_ms[female][0]:g} to < {qtc_ms[female][1]:g} ms (women), "
              "{qtc_ms[male][0]:g} to < {qtc_ms[male][1]:g} ms (men)",
              "Rautaharju et al. 2009 (AHA/ACCF/HRS part IV): QTc ≥ 450 ms in men, ≥ 460 ms in women is prolonged",
              _qtc),
    Criterion("qrs_t_angle", "healthy", "frontal QRS-T angle ≤ {qrs_t_angle_max_deg:g}°",
              "a wide frontal QRS-T angle predicts sudden cardiac death in the general population (Aro et al. "
              "2012: > 100°); the normal angle is narrow",
              lambda row, s, p: _at_most(float(row["qrs_t_angle_deg"]), s["qrs_t_angle_max_deg"], "°", 0)),
    Criterion("qrs_not_fragmented", "healthy",
              "no two leads of a territory with more than {max_turning_points} turning points in the QRS",
              "fragmented QRS (Das et al. 2006): extra notches in two contiguous leads", _fragmentation),
    Criterion("hf_band_amplitude", "healthy", "150-250 Hz QRS band peak ≤ {hf_band_peak_max_uv:g} µV",
              "limit from signal-averaged clinical ECGs (20-75 µV)",
              lambda row, s, p: _at_most(float(row["hf_band_peak_uv"]), s["hf_band_peak_max_uv"], "µV", 0)),
    Criterion("t_wave_complete", "healthy", "T wave ends inside the record", T_WAVE_COMPLETE_SOURCE,
              _t_wave_complete),
    # --- left bundle branch block
    Criterion("strauss_qrs_duration", "lbbb",
              "QRS ≥ {qrs_min_ms[female]:g} ms (women), ≥ {qrs_min_ms[male]:g} ms (men)",
              "Strauss et al. 2011 (≥ 140 ms men, ≥ 130 ms women)", _strauss_duration),
    Criterion("strauss_qs_or_rs_v1_v2", "lbbb", "QS or rS in V1 and V2 (R/S ≤ {rs_max_v1_v2:g})",
              "Strauss et al. 2011", _strauss_v1_v2),
    Criterion("strauss_mid_qrs_notch", "lbbb",
              "mid-QRS notch or slur in ≥ {notched_leads_min} of " + ", ".join(STRAUSS_NOTCH_LEADS),
              "Strauss et al. 2011",
              lambda row, s, p: Outcome(str(row["notched_leads"]) or "none",
                                        int(row["notched_lead_count"]) >= s["notched_leads_min"])),
    Criterion("lbbb_no_lateral_q", "lbbb", "no q in I, V5, V6",
              "Surawicz et al. 2009 (AHA/ACCF/HRS part III, LBBB)",
              lambda row, s, p: _leads(row, "q_mv", ("I", "V5", "V6"), lambda q: q == 0)),
    Criterion("t_wave_complete", "lbbb", "T wave ends inside the record", T_WAVE_COMPLETE_SOURCE,
              _t_wave_complete),
    # --- biventricular pacing (cardiac resynchronisation)
    Criterion("narrower_than_lbbb", "biv_pacing", "QRS narrower than the same patient's LBBB",
              "resynchronisation shortens the LBBB's QRS", _narrower_than_lbbb),
    Criterion("t_wave_complete", "biv_pacing", "T wave ends inside the record", T_WAVE_COMPLETE_SOURCE,
              _t_wave_complete),
    # --- single-site pacing
    Criterion("t_wave_complete", "paced", "T wave ends inside the record", T_WAVE_COMPLETE_SOURCE,
              _t_wave_complete),
)


def criteria_of(criteria_set: str) -> tuple[Criterion, ...]:
    """The criteria of one set, in table order."""
    if criteria_set not in CRITERIA_SETS:
        raise ValueError(f"unknown criteria set '{criteria_set}'; known: {', '.join(CRITERIA_SETS)}")
    return tuple(c for c in CRITERIA if c.criteria_set == criteria_set)


def evaluate_row(row: Row, settings: Mapping[str, Mapping[str, Any]], patient_rows: Mapping[str, Sequence[Row]]
                 ) -> list[dict[str, Any]]:
    """Every criterion of the row's set on one beat: dicts with patient, scenario, criteria_set,
    criterion, requirement, value, measured and passed (False when not measured). A beat that
    could not be delineated fails every criterion, with its status as the value."""
    criteria_set = str(row["criteria_set"])
    section = settings.get(criteria_set, {})
    results = []
    for criterion in criteria_of(criteria_set):
        outcome = (criterion.check(row, section, patient_rows) if row["status"] == "ok"
                   else Outcome(f"not delineated: {row['status']}", None))
        results.append({"patient": row["patient"], "scenario": row["scenario"], "criteria_set": criteria_set,
                        "criterion": criterion.name, "requirement": criterion.describe(section),
                        "value": outcome.value, "measured": outcome.passed is not None,
                        "passed": bool(outcome.passed)})
    return results
