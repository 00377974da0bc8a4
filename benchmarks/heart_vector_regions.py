"""Where the sinus QRS axis comes from, by wall: the heart's mean QRS vector split into its
isotropic and along-fibre parts and by the LV's walls, and the cohort's QRS axis against the
sampled pose (prints figures; not a test).

    .venv/bin/python benchmarks/heart_vector_regions.py RESULTS [--patients train-0000 ...]
        [--scenario sinus] [--features FEATURES] [--configfile config/config.yaml ...]

Per patient, from ``RESULTS/patients/{patient}/fibres/fibres.npz`` and its activation map, the mean
QRS vector D = Σ_c vol_c G_i,c ∇τ_c (as in ``benchmarks/qrs_axis_sources.py``, which reads the
dataset store instead) with G_i = σ_t I + (σ_f − σ_t) f fᵀ. Its isotropic part σ_t Σ vol ∇τ equals
σ_t ∮ τ n dA over the myocardium's boundary (the divergence theorem): the late-activated
surfaces' outward normals. D is then summed per region: the LV's septal, anterior, lateral and
inferior walls (the rotational coordinate in 90° sectors, 0 towards the RV) and the RV, each
in apical, mid and basal thirds of the distance along the long axis. Angles are frontal, in the
QRS axis convention (0° the patient's left, +90° inferior).

``--features`` (a ``features.csv`` of the realism stage or a ``features.json`` of
``benchmarks/physiology_sweep.py``) adds the cohort's sinus QRS axis regressed on the sampled
rotations of ``parameters.json`` (degrees of axis per degree of rotation about the LV–RV,
anterior–posterior and long axes, ``rotation_{x,y,z}_deg``), with each rotation's correlation.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ecgcohort.anatomy.assembly import long_axis_angles
from ecgcohort.config import load_config_files
from ecgcohort.fem import p1_gradients
from ecgcohort.fibers import load_fibres
from ecgcohort.leadfield.tensors import Conductivities

REPO = Path(__file__).resolve().parents[1]
SECTORS = ("septal", "anterior", "lateral", "inferior")
THIRDS = ("apex", "mid", "base")


def frontal_deg(vector: np.ndarray) -> float:
    """Frontal-plane angle of a vector, degrees (0° the patient's left, +90° inferior)."""
    return long_axis_angles(vector)["frontal_deg"]


def cell_vectors(results: Path, patient: str, scenario: str, sigma: Conductivities) -> dict[str, np.ndarray]:
    """Per myocardial cell: vol σ_t ∇τ and vol (σ_f − σ_t) f fᵀ ∇τ (mm³ · S/m · ms/mm), the wall
    (sector name, or RV) and the third along the long axis."""
    fibres = load_fibres(results / "patients" / patient / "fibres/fibres.npz")
    with np.load(results / "patients" / patient / "activation" / f"{scenario}.npz") as archive:
        tau_ms = np.asarray(archive["activation_ms"], float)
    points, tetrahedra = fibres.points_mm, fibres.tetrahedra
    gradients, volumes = p1_gradients(points, tetrahedra)
    grad_tau = np.einsum("cak,ca->ck", gradients, tau_ms[tetrahedra])
    isotropic = sigma.intra_cross * volumes[:, None] * grad_tau
    along = ((sigma.intra_fibre - sigma.intra_cross) * volumes[:, None]
             * np.einsum("cij,cj->ci", fibres.cell_structure, grad_tau))
    coordinates = fibres.coordinates
    apex = points[np.argmin(coordinates["apicobasal"])]
    base = points[coordinates["apicobasal"] >= coordinates["apicobasal"].max() - 1e-3].mean(axis=0)
    axis = (base - apex) / np.linalg.norm(base - apex)
    height = (points - apex) @ axis
    height = height[tetrahedra].mean(axis=1) / np.percentile(height, 99.5)
    angle = np.degrees(coordinates["rotational"][tetrahedra].mean(axis=1)) % 360.0
    sector = np.select([(angle < 45) | (angle >= 315), angle < 135, angle < 225], SECTORS[:3], SECTORS[3])
    wall = np.where(coordinates["ventricle"][tetrahedra].mean(axis=1) > 0.5, "RV", sector)
    third = np.select([height < 1 / 3, height < 2 / 3], THIRDS[:2], THIRDS[2])
    return {"isotropic": isotropic, "along": along, "wall": wall, "third": third, "volume": volumes}


def print_patient(patient: str, cells: dict[str, np.ndarray]) -> None:
    total = cells["isotropic"] + cells["along"]
    print(f"\n{patient}: D {frontal_deg(total.sum(axis=0)):+.0f}°, isotropic part "
          f"{frontal_deg(cells['isotropic'].sum(axis=0)):+.0f}°, along-fibre part {frontal_deg(cells['along'].sum(axis=0)):+.0f}°")
    print(f"{'region':16s} {'volume %':>8s} {'Dx (left)':>10s} {'Dy (ant)':>9s} {'Dz (inf)':>9s} {'frontal':>8s}")
    for wall in (*SECTORS, "RV"):
        for third in THIRDS:
            mask = (cells["wall"] == wall) & (cells["third"] == third)
            vector = total[mask].sum(axis=0)
            share = 100 * cells["volume"][mask].sum() / cells["volume"].sum()
            print(f"{wall + '/' + third:16s} {share:8.1f} {vector[0]:10.0f} {vector[1]:9.0f} {vector[2]:9.0f} "
                  f"{frontal_deg(vector):+7.0f}°")


def sinus_axes(path: Path) -> dict[str, float]:
    """Patient → sinus frontal QRS axis (degrees) from a features.csv or a sweep's features.json."""
    if path.suffix == ".json":
        rows = json.loads(path.read_text())["rows"]
    else:
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
    return {str(r["patient"]): float(r["qrs_axis_deg"]) for r in rows
            if r.get("scenario") == "sinus" and r.get("qrs_axis_deg") not in (None, "")}


def print_pose_regression(results: Path, axes: dict[str, float]) -> None:
    patients = sorted(axes)
    rotations = np.array([[json.loads((results / "patients" / p / "parameters.json").read_text())["parameters"]
                           [f"rotation_{a}_deg"] for a in "xyz"] for p in patients])
    axis = np.array([axes[p] for p in patients])
    slopes, *_ = np.linalg.lstsq(np.column_stack([rotations, np.ones(len(axis))]), axis, rcond=None)
    print(f"\nsinus QRS axis against the sampled rotations ({len(axis)} patients; degrees per degree, correlation):")
    for k, name in enumerate(("about the LV-RV axis (x)", "about the anterior-posterior axis (y)", "about the long axis (z)")):
        print(f"  {name:40s} {slopes[k]:+.2f}  r = {np.corrcoef(rotations[:, k], axis)[0, 1]:+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a run's results/ folder")
    parser.add_argument("--patients", nargs="+", help="default: every patient with fibres")
    parser.add_argument("--scenario", default="sinus")
    parser.add_argument("--features", type=Path, help="features.csv or a sweep's features.json: the pose regression")
    parser.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config/config.yaml"])
    args = parser.parse_args()
    config = load_config_files(args.configfile, REPO / "workflow/schemas/config.schema.yaml")
    sigma = Conductivities(**config["leadfield"]["conductivity_s_per_m"])
    patients = args.patients or sorted(p.parent.parent.name for p in args.results.glob("patients/*/fibres/fibres.npz"))
    for patient in patients:
        print_patient(patient, cell_vectors(args.results, patient, args.scenario, sigma))
    if args.features:
        print_pose_regression(args.results, sinus_axes(args.features))


if __name__ == "__main__":
    main()
