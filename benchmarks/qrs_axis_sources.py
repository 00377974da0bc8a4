"""Where the sinus QRS axis comes from: the heart's mean QRS vector taken apart by region and by
the along-fibre and cross-fibre parts of the intracellular current (prints figures; not a test).

    .venv/bin/python benchmarks/qrs_axis_sources.py results [--configfile config/config.yaml]

Over the QRS, with V_m a step of height A at the activation time τ, the time integral of the
source G_i ∇V_m is −A G_i ∇τ per cell, so the QRS area of a lead whose lead field is uniform over
the heart is proportional to the mean QRS vector D = Σ_c vol_c G_i,c ∇τ_c (mm³ S/m · ms/mm; its
direction is what matters). G_i = σ_t I + (σ_f − σ_t) A_f splits D into the along-fibre part
(σ_f − σ_t) vol A_f ∇τ and the cross-fibre part σ_t vol ∇τ. Per patient: the frontal angle of D,
of its two parts and of its regions' sums (RV, LV septum, LV free wall by transmural thirds), in
the QRS axis convention (0° the patient's left, +90° inferior); beside it the frontal QRS axis
of the FEM ECG (the realism stage's ``features.csv``), whose difference from D's is the torso's.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from ecgcohort.config import load_config_files
from ecgcohort.dataset import open_cohort, open_patient_mesh
from ecgcohort.fem import p1_gradients
from ecgcohort.fibers import load_fibres
from ecgcohort.leadfield.tensors import Conductivities

REPO = Path(__file__).resolve().parents[1]


def frontal_deg(vector: np.ndarray) -> float:
    """Frontal-plane angle of a vector in the anatomy frame (x right→left, z superior→inferior)."""
    return float(np.degrees(np.arctan2(vector[2], vector[0])))


def mean_qrs_vector(store: Path, patient: str, scenario: str,
                    sigma: Conductivities) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per myocardial cell (C, 3), in mm³ · S/m · ms/mm (mm frame): the along-fibre and the
    cross-fibre parts of vol G_i ∇τ; and the cells' tetrahedra (C, 4), node indices, from which
    the regions are taken."""
    mesh = open_patient_mesh(store, patient).compute()
    nodes_mm = mesh.node_position.values * 1e3
    tetrahedra = mesh.tetrahedra.values
    tau_ms = mesh.activation_time.sel(scenario=scenario).values * 1e3
    gradients, volumes = p1_gradients(nodes_mm, tetrahedra)
    grad_tau = np.einsum("cak,ca->ck", gradients, tau_ms[tetrahedra])
    structure = mesh.fibre_structure.values
    along = (sigma.intra_fibre - sigma.intra_cross) * volumes[:, None] * np.einsum("cij,cj->ci", structure, grad_tau)
    cross = sigma.intra_cross * volumes[:, None] * grad_tau
    return along, cross, tetrahedra


def fem_axes(results: Path, scenario: str) -> dict[str, float]:
    """The delineated frontal QRS axis of each patient's ``scenario`` beat, degrees."""
    path = results / "ecg" / "features.csv"
    if not path.exists():
        return {}
    with path.open() as handle:
        return {row["patient"]: float(row["qrs_axis_deg"]) for row in csv.DictReader(handle)
                if row["scenario"] == scenario and row["qrs_axis_deg"] not in ("", "nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a run's results/ folder")
    parser.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config/config.yaml"])
    parser.add_argument("--scenario", default="sinus")
    args = parser.parse_args()
    config = load_config_files(args.configfile, REPO / "workflow/schemas/config.schema.yaml")
    sigma = Conductivities.from_config(config["leadfield"]["conductivity_s_per_m"])
    store = args.results / "dataset" / "cohort.zarr"
    axes = fem_axes(args.results, args.scenario)
    print(f"{'patient':11s} {'ECG':>6s} {'D':>6s} {'torso':>6s} {'along':>6s} {'cross':>6s} |along|/|D| "
          "| RV, LV septum, LV free wall endo / mid / epi (frontal angle, share of |D|)")
    for patient in [str(p) for p in open_cohort(store).patient.values]:
        along, cross, tetrahedra = mean_qrs_vector(store, patient, args.scenario, sigma)
        total = (along + cross).sum(axis=0)
        coordinates = load_fibres(args.results / "patients" / patient / "fibres" / "fibres.npz").coordinates
        cell = {name: coordinates[name][tetrahedra].mean(axis=1) for name in ("ventricle", "transmural", "rotational")}
        lv = cell["ventricle"] < 0.5
        septum = lv & (((np.degrees(cell["rotational"]) + 45.0) % 360.0) < 90.0)
        free = lv & ~septum
        regions = {"RV": ~lv, "LV septum": septum, "LV endo": free & (cell["transmural"] < 1 / 3),
                   "LV mid": free & (cell["transmural"] >= 1 / 3) & (cell["transmural"] < 2 / 3),
                   "LV epi": free & (cell["transmural"] >= 2 / 3)}
        parts = []
        for name, selected in regions.items():
            vector = (along + cross)[selected].sum(axis=0)
            parts.append(f"{name} {frontal_deg(vector):+4.0f}° {np.linalg.norm(vector) / np.linalg.norm(total):.2f}")
        ecg = axes.get(patient, float("nan"))
        dipole = frontal_deg(total)
        print(f"{patient:11s} {ecg:+5.0f}° {dipole:+5.0f}° {ecg - dipole:+5.0f}° {frontal_deg(along.sum(axis=0)):+5.0f}° "
              f"{frontal_deg(cross.sum(axis=0)):+5.0f}° {np.linalg.norm(along.sum(axis=0)) / np.linalg.norm(total):10.2f} | "
              + ", ".join(parts))


if __name__ == "__main__":
    main()
