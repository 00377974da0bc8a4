"""Every level of a patient against its finest (the reference): ∇Z errors at the evaluation
points, ECG errors of the whole pipeline and of the lead field alone, the activation span,
the geometry, observed orders and timings; a table per level and gradient form, a per-lead
table, and a figure.

Definitions (ECG errors are relative ℓ2 norms over time, per lead, then averaged over the 12
leads; the QRS window runs from the reference's first activation to 10 ms after its last):

* ``ecg_error`` / ``ecg_error_qrs``: the level's own ECG (its mesh, fibres, activation, lead
  matrix) against the reference's — the whole pipeline;
* ``lead_field_share`` / ``lead_field_share_qrs``: the reference's activation and APD scales
  interpolated onto the nodes the level carries V_m on (its eikonal grid's, ``ecg.vm_nodes``),
  through the level's lead matrix — what the lead field (and those nodes) alone gets wrong;
* ``activation_share``: the level's activation interpolated onto the reference's V_m nodes,
  through the reference's lead matrix;
* ``grad_angle_deg_{myocardium,torso}``, ``grad_magnitude_{...}``: mean angle between the
  level's ∇Z and the reference's recovered ∇Z, and mean relative magnitude error, over the 9
  electrodes and the evaluation points of that region;
* ``order_*``: log(e_i / e_i+1) / log(h_i / h_i+1) between consecutive levels (heart sizes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ecgcohort.convergence.level import GRADIENT_FORMS
from ecgcohort.ecg.leads import LEAD_NAMES


@dataclass(frozen=True)
class Level:
    """One level's arrays (see :func:`ecgcohort.convergence.level.simulate_level`)."""

    patient: str
    sizes: dict
    timings: dict
    arrays: dict[str, np.ndarray]

    @property
    def heart_mm(self) -> float:
        return float(self.sizes["heart_mm"])


def load_level(patient: str, path: str | Path) -> Level:
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    return Level(patient, json.loads(str(arrays.pop("sizes_json"))), json.loads(str(arrays.pop("timings_json"))),
                 arrays)


def interpolate_nodal(points: np.ndarray, tetrahedra: np.ndarray, values: np.ndarray, targets: np.ndarray,
                      candidates: int = 16) -> np.ndarray:
    """A P1 field (``values`` (N, ...) on ``points``) at ``targets`` (K, 3): linear in the
    tetrahedron holding each target, or in the one nearest to holding it (clamped barycentric
    coordinates) for a target just outside the mesh. Same units as ``points``."""
    from ecgcohort.fem import locate_points

    cells, weights = locate_points(points, tetrahedra, targets, candidates)
    return np.einsum("kc,kc...->k...", weights, values[tetrahedra[cells]])


def relative_errors(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per row ‖other − reference‖ / ‖reference‖ over the last axis."""
    return np.linalg.norm(other - reference, axis=-1) / np.linalg.norm(reference, axis=-1)


def gradient_errors(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(mean angle in degrees, mean relative magnitude error) of ∇Z arrays (E, P, 3), over the
    pairs finite in both."""
    valid = np.isfinite(reference).all(axis=-1) & np.isfinite(other).all(axis=-1)
    ref, oth = reference[valid], other[valid]
    cosine = np.einsum("pi,pi->p", ref, oth) / np.linalg.norm(ref, axis=1) / np.linalg.norm(oth, axis=1)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    magnitude = np.abs(np.linalg.norm(oth, axis=1) / np.linalg.norm(ref, axis=1) - 1.0)
    return float(angle.mean()), float(magnitude.mean())


@dataclass(frozen=True)
class _Source:
    """A level's V_m nodes (its eikonal grid's, or its myocardium's) and both gradient forms'
    lead matrices on them (rows: the forms' electrodes stacked in GRADIENT_FORMS order)."""

    points_mm: np.ndarray
    tetrahedra: np.ndarray
    activation_ms: np.ndarray
    apd_scale: np.ndarray
    matrix: object

    def interpolated(self, onto: "_Source") -> np.ndarray:
        """(τ, APD scale) of this source at ``onto``'s nodes (N, 2)."""
        return interpolate_nodal(self.points_mm, self.tetrahedra, np.column_stack([self.activation_ms, self.apd_scale]),
                                 onto.points_mm)


def _source(level: Level) -> _Source:
    """The nodes a level's ECG carried V_m on (:func:`ecgcohort.ecg.forward.source_potentials`)."""
    from ecgcohort.ecg.source_grid import GridLeadMatrix, SourceGrid
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors

    arr = level.arrays
    rows = np.vstack([arr[f"lead_matrix_{form}"] for form in GRADIENT_FORMS])
    refinements = int(arr["vm_refinements"]) if "vm_refinements" in arr else 0
    if refinements == 0:
        return _Source(arr["myocardial_points_mm"], arr["myocardial_tetrahedra"], arr["activation_ms"],
                       arr["apd_scale"], rows)
    grid = SourceGrid.refined(arr["myocardial_points_mm"], arr["myocardial_tetrahedra"], refinements)
    intracellular = intracellular_tensors(arr["structure_cell"], Conductivities.from_config(level.sizes["conductivities"]))
    return _Source(grid.points_mm, grid.tetrahedra, np.concatenate([arr["activation_ms"], arr["refined_activation_ms"]]),
                   grid.prolongation @ arr["apd_scale"], GridLeadMatrix(rows, grid, intracellular))


def _ecg(source: _Source, activation_ms: np.ndarray, apd_scale: np.ndarray, times_ms: np.ndarray, template,
         spread: float) -> dict[str, np.ndarray]:
    """The 12 leads (V) per gradient form of a V_m on ``source``'s nodes."""
    from ecgcohort.conduction.action_potential import upstroke_spread_ms
    from ecgcohort.conduction.maps import ActivationMap
    from ecgcohort.ecg.leads import LEAD_ELECTRODES, standard_leads
    from ecgcohort.ecg.source_grid import many_electrode_potentials

    activation = ActivationMap("interpolated", "sinus", activation_ms, apd_scale, np.zeros((0, 3)), np.zeros(0),
                               spread * upstroke_spread_ms(source.tetrahedra, activation_ms))
    potentials = many_electrode_potentials(source.matrix, [activation], times_ms, template)[0]
    count = len(LEAD_ELECTRODES)
    return {form: standard_leads(potentials[k * count:(k + 1) * count], LEAD_ELECTRODES)
            for k, form in enumerate(GRADIENT_FORMS)}


def compare_levels(levels: Sequence[Level], template) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per level and gradient form, one row per level, form and lead) against the
    last level of ``levels`` (the finest)."""
    reference = levels[-1]
    ref = reference.arrays
    times = ref["times_ms"]
    tau_ref = ref["activation_ms"]
    qrs = (times >= tau_ref.min()) & (times <= tau_ref.max() + 10.0)
    region = ref["points_region"]
    spread = float(ref["upstroke_spread"]) if "upstroke_spread" in ref else 0.0
    rows, lead_rows = [], []
    reference_source = _source(reference)
    for level in levels:
        arr = level.arrays
        source = _source(level) if level is not reference else reference_source
        # the reference against itself: its own values, not an interpolation onto its own nodes
        own_values = np.column_stack([reference_source.activation_ms, reference_source.apd_scale])
        onto_level = reference_source.interpolated(source) if level is not reference else own_values
        onto_reference = source.interpolated(reference_source) if level is not reference else own_values
        lead_field_only = _ecg(source, onto_level[:, 0], onto_level[:, 1], times, template, spread)
        activation_only = _ecg(reference_source, onto_reference[:, 0], onto_reference[:, 1], times, template, spread)
        for form in GRADIENT_FORMS:
            own, truth = arr[f"leads_{form}_v"], ref[f"leads_{form}_v"]
            per_lead = {"ecg_error": relative_errors(truth, own),
                        "ecg_error_qrs": relative_errors(truth[:, qrs], own[:, qrs]),
                        "lead_field_share": relative_errors(truth, lead_field_only[form]),
                        "lead_field_share_qrs": relative_errors(truth[:, qrs], lead_field_only[form][:, qrs]),
                        "activation_share": relative_errors(truth, activation_only[form])}
            row = {"patient": level.patient, "heart_mm": level.heart_mm,
                   # the size the patient's heart was meshed at (meshing.heart_element_size_follows_heart)
                   "patient_heart_mm": float(level.sizes.get("patient_heart_mm", level.heart_mm)),
                   "torso_mm": float(level.sizes["torso_mm"]),
                   "gradient": form, "reference": level is reference,
                   "eikonal_refinements": int(level.sizes.get("eikonal_refinements", 0)),
                   **{key: float(level.sizes[key]) for key in ("nodes", "tetrahedra", "myocardial_nodes",
                                                                "myocardial_volume_ml")},
                   "myocardial_volume_change": level.sizes["myocardial_volume_ml"]
                   / reference.sizes["myocardial_volume_ml"] - 1.0,
                   "heart_surface_distance_mm": level.sizes["surfaces"]["heart"]["mean_distance_mm"],
                   "activation_span_ms": float(np.ptp(arr["activation_ms"])),
                   "activation_span_change_ms": float(np.ptp(arr["activation_ms"]) - np.ptp(tau_ref)),
                   **{key: float(np.mean(value)) for key, value in per_lead.items()}}
            for name, selected in (("myocardium", region == 1), ("torso", region == 2)):
                angle, magnitude = gradient_errors(ref["grad_points_recovered"][:, selected],
                                                   arr[f"grad_points_{form}"][:, selected])
                row[f"grad_angle_deg_{name}"], row[f"grad_magnitude_{name}"] = angle, magnitude
            row["lead_field_s"] = float(level.timings["lead_field_solve_s"] + level.timings[f"lead_matrix_{form}_s"])
            row["total_s"] = float(sum(value for key, value in level.timings.items()
                                       if key not in ("assembly_s", "factorisation_s", "solve_s")))
            rows.append(row)
            for k, lead in enumerate(LEAD_NAMES):
                lead_rows.append({"patient": level.patient, "heart_mm": level.heart_mm, "gradient": form, "lead": lead,
                                  **{key: float(value[k]) for key, value in per_lead.items()}})
    table = pd.DataFrame(rows)
    return add_orders(table), pd.DataFrame(lead_rows)


ORDER_COLUMNS = ("ecg_error", "lead_field_share", "grad_angle_deg_myocardium", "grad_angle_deg_torso")


def add_orders(table: pd.DataFrame) -> pd.DataFrame:
    """Observed orders of the error columns between consecutive non-reference levels of each
    patient and form (NaN for the last of them and for the reference)."""
    table = table.copy()
    for column in ORDER_COLUMNS:
        table[f"order_{column}"] = np.nan
    keys = ["patient", "gradient", *(["eikonal_refinements"] if "eikonal_refinements" in table else [])]
    for _, group in table[~table.reference].groupby(keys):
        group = group.sort_values("heart_mm", ascending=False)
        for (i, coarse), (_, fine) in zip(group.iterrows(), group.iloc[1:].iterrows()):
            for column in ORDER_COLUMNS:
                if coarse[column] > 0 and fine[column] > 0:
                    table.loc[i, f"order_{column}"] = (np.log(coarse[column] / fine[column])
                                                       / np.log(coarse["heart_mm"] / fine["heart_mm"]))
    return table


def plot_convergence(table: pd.DataFrame, path: str | Path) -> None:
    """Errors against the heart element size (log-log), per gradient form; one line per patient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ecgcohort.io import atomic_path

    panels = (("ecg_error", "ECG, whole pipeline"), ("lead_field_share", "ECG, lead field alone"),
              ("ecg_error_qrs", "ECG in the QRS, whole pipeline"), ("grad_angle_deg_myocardium", "∇Z angle, myocardium (°)"),
              ("grad_angle_deg_torso", "∇Z angle, torso (°)"), ("activation_span_change_ms", "activation span − reference (ms)"))
    figure, axes = plt.subplots(2, 3, figsize=(14, 8))
    data = table[~table.reference]
    for axis, (column, title) in zip(axes.ravel(), panels):
        for (patient, form), group in data.groupby(["patient", "gradient"]):
            group = group.sort_values("heart_mm")
            values = group[column].to_numpy()
            axis.plot(group.heart_mm, np.abs(values) if column.endswith("_ms") else values, "o-" if form == "recovered" else "s--",
                      label=f"{patient}, {form}")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("heart element size (mm)")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=7)
    figure.suptitle("Mesh convergence against the finest level (P1 and recovered ∇Z)")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


def markdown_table(table: pd.DataFrame) -> str:
    """The main columns as a Markdown table (percentages for relative errors); the size the
    patient's heart was meshed at beside the level's where the two differ."""
    scaled = "patient_heart_mm" in table and bool((table["patient_heart_mm"] != table["heart_mm"]).any())
    columns = [("patient", "patient", "{}"), ("heart_mm", "heart / mm", "{:g}"),
               *([("patient_heart_mm", "patient's heart / mm", "{:.3f}")] if scaled else []),
               ("torso_mm", "torso / mm", "{:g}"),
               ("gradient", "∇Z", "{}"),
               *([("eikonal_refinements", "eikonal refined", "{:.0f}")] if "eikonal_refinements" in table else []),
               ("nodes", "nodes", "{:,.0f}"),
               ("myocardial_volume_change", "volume", "{:+.2%}"), ("activation_span_ms", "activation (ms)", "{:.1f}"),
               ("ecg_error", "ECG", "{:.1%}"), ("ecg_error_qrs", "ECG, QRS", "{:.1%}"),
               ("lead_field_share", "lead field share", "{:.1%}"), ("lead_field_share_qrs", "LF share, QRS", "{:.1%}"),
               ("activation_share", "activation share", "{:.1%}"),
               ("grad_angle_deg_myocardium", "∇Z angle myo (°)", "{:.2f}"), ("grad_magnitude_myocardium", "|∇Z| myo", "{:.1%}"),
               ("grad_angle_deg_torso", "∇Z angle torso (°)", "{:.2f}"),
               ("order_ecg_error", "order ECG", "{:.2f}"), ("order_grad_angle_deg_myocardium", "order ∇Z myo", "{:.2f}"),
               ("total_s", "time (s)", "{:.0f}")]
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        cells = []
        for key, _, fmt in columns:
            value = row[key]
            if row["reference"] and key not in ("patient", "heart_mm", "patient_heart_mm", "torso_mm", "gradient",
                                                 "eikonal_refinements", "nodes", "activation_span_ms", "total_s"):
                cells.append("ref")
            elif isinstance(value, float) and not np.isfinite(value):
                cells.append("–")
            else:
                cells.append(fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def layouts_markdown(table: pd.DataFrame) -> str:
    """The eikonal-grid layout table of ``benchmarks/eikonal_layouts.py`` (one row per scenario,
    myocardium and layout; ``share_vs_<layout>`` columns: the activation share against the
    reference myocardium solved in that layout) as Markdown."""
    shares = [column for column in table.columns if column.startswith("share_vs_")]
    header = ["patient", "map", "myocardium", "layout", "grid nodes", "grid cells", "solve (s)",
              "activation span (ms)", "to the finest: mean / mean abs (ms)",
              *[f"share vs reference {column.removeprefix('share_vs_')}" for column in shares]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        difference = ("–" if not np.isfinite(row["to_finest_mean_ms"])
                      else f"{row['to_finest_mean_ms']:+.3f} / {row['to_finest_abs_ms']:.3f}")
        cells = [row["patient"], row["scenario"], row["myocardium"], row["layout"], f"{row['grid_nodes']:,.0f}",
                 f"{row['grid_cells']:,.0f}", f"{row['solve_s']:.1f}", f"{row['activation_span_ms']:.2f}", difference,
                 *["–" if not np.isfinite(row[column]) else f"{row[column]:.1%}" for column in shares]]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"
