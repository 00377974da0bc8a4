"""The heart's LV long axis and its own mean QRS vector, in 3D and in the frontal and transverse
planes, beside healthy adults' (prints figures; not a test).

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/heart_axes.py RESULTS [--configfile ...]

RESULTS is a run's ``results/`` folder with its patients' anatomy and ``dataset/cohort.zarr``.
The LV long axis runs from the centre of the LV endocardium's basal ring (its nodes within
``--ring-mm`` of the base plane, the mitral annulus in the model) to the LV endocardial apex (its
node farthest from the base plane); ``anatomy.json``'s ``long_axis`` (the realism stage's pose
table) runs instead from the centroid of the whole biventricular base, right of the mitral
annulus, to the epicardial apex, and is the more horizontal of the two. The mean QRS vector is
D = Σ_c vol_c G_i,c ∇τ_c of the sinus map (:func:`qrs_axis_sources.mean_qrs_vector`), a
pose-dependent direction with no torso in it.

Angles in the anatomy frame (x right→left, y posterior→anterior, z superior→inferior): frontal from
the patient's left towards inferior (the QRS axis convention), transverse from the left towards
anterior. References: 94 healthy adults by CMR and 12-lead ECG, anatomical axis +38° ± 10° frontal
and +46° ± 7° transverse, electrical +39° ± 31° and −30° ± 18° (Engblom et al., Am Heart J
2005;150:507); 59 adults by CT, long axis +38.1° ± 7.8° frontal (Br J Cardiol 2015;22(2),
doi:10.5837/bjc.2015.016). The 3D angle between two axes given by those mean frontal and
transverse angles is printed as the reference's, an estimate from means, not a measured mean.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyvista as pv

from ecgcohort.config import load_config_files
from ecgcohort.dataset import open_cohort
from ecgcohort.leadfield.tensors import Conductivities
from qrs_axis_sources import fem_axes, mean_qrs_vector  # a sibling: run as a script, benchmarks/ is on the path

REPO = Path(__file__).resolve().parents[1]

#: Engblom et al. 2005, mean (frontal, transverse) angles in degrees.
ANATOMICAL_REFERENCE_DEG = (38.0, 46.0)
ELECTRICAL_REFERENCE_DEG = (39.0, -30.0)


def frontal_deg(vector: np.ndarray) -> float:
    """Frontal-plane angle, from the patient's left towards inferior, degrees."""
    return float(np.degrees(np.arctan2(vector[2], vector[0])))


def transverse_deg(vector: np.ndarray) -> float:
    """Transverse-plane angle, from the patient's left towards anterior, degrees."""
    return float(np.degrees(np.arctan2(vector[1], vector[0])))


def from_plane_angles(frontal: float, transverse: float) -> np.ndarray:
    """The unit vector whose frontal and transverse projections make these angles (degrees)."""
    vector = np.array([1.0, np.tan(np.radians(transverse)), np.tan(np.radians(frontal))])
    return vector / np.linalg.norm(vector)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """3D angle between two directions, degrees."""
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1.0, 1.0))))


def lv_long_axis(anatomy: Path, ring_mm: float) -> np.ndarray:
    """Unit vector from the LV basal ring's centre to the LV endocardial apex of a placed heart
    (``anatomy/heart.vtp`` with its ``region`` labels 1 LV endocardium, 4 base)."""
    summary = json.loads((anatomy / "anatomy.json").read_text())
    heart = pv.read(anatomy / "heart.vtp")
    faces = heart.faces.reshape(-1, 4)[:, 1:]
    region = np.asarray(heart["region"])
    points = np.asarray(heart.points)
    base = points[np.unique(faces[region == 4])]
    lv = points[np.unique(faces[region == 1])]
    centre = base.mean(axis=0)
    normal = np.linalg.svd(base - centre)[2][2]
    if normal @ np.asarray(summary["measures"]["long_axis"]) < 0:
        normal = -normal  # towards the apex
    depth = (lv - centre) @ normal
    ring = lv[depth < depth.min() + ring_mm].mean(axis=0)
    apex = lv[np.argmax((lv - ring) @ normal)]
    return (apex - ring) / np.linalg.norm(apex - ring)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a run's results/ folder")
    parser.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config/config.yaml"])
    parser.add_argument("--ring-mm", type=float, default=3.0,
                        help="LV endocardium within this distance of its basal end is the annulus, mm")
    args = parser.parse_args()
    config = load_config_files(args.configfile, REPO / "workflow/schemas/config.schema.yaml")
    sigma = Conductivities.from_config(config["leadfield"]["conductivity_s_per_m"])
    store = args.results / "dataset" / "cohort.zarr"
    ecg_axes = fem_axes(args.results, "sinus")
    reference = angle_deg(from_plane_angles(*ANATOMICAL_REFERENCE_DEG), from_plane_angles(*ELECTRICAL_REFERENCE_DEG))
    print("patient     ECG axis | LV axis frontal transverse | BiV axis frontal | D frontal transverse | D to LV axis 3D")
    rows = []
    for patient in [str(p) for p in open_cohort(store).patient.values]:
        along, cross, _ = mean_qrs_vector(store, patient, "sinus", sigma)
        dipole = (along + cross).sum(axis=0)
        anatomy = args.results / "patients" / patient / "anatomy"
        lv_axis = lv_long_axis(anatomy, args.ring_mm)
        biv_axis = np.asarray(json.loads((anatomy / "anatomy.json").read_text())["measures"]["long_axis"])
        row = (ecg_axes.get(patient, float("nan")), frontal_deg(lv_axis), transverse_deg(lv_axis),
               frontal_deg(biv_axis), frontal_deg(dipole), transverse_deg(dipole), angle_deg(dipole, lv_axis))
        rows.append(row)
        print(f"{patient:11s} {row[0]:+7.1f}° | {row[1]:+6.1f}° {row[2]:+6.1f}° | {row[3]:+6.1f}° | "
              f"{row[4]:+6.1f}° {row[5]:+6.1f}° | {row[6]:6.1f}°", flush=True)
    median = np.nanmedian(np.array(rows), axis=0)
    print(f"{'median':11s} {median[0]:+7.1f}° | {median[1]:+6.1f}° {median[2]:+6.1f}° | {median[3]:+6.1f}° | "
          f"{median[4]:+6.1f}° {median[5]:+6.1f}° | {median[6]:6.1f}°")
    print(f"{'healthy':11s} {ELECTRICAL_REFERENCE_DEG[0]:+7.1f}° | {ANATOMICAL_REFERENCE_DEG[0]:+6.1f}° "
          f"{ANATOMICAL_REFERENCE_DEG[1]:+6.1f}° |        | {ELECTRICAL_REFERENCE_DEG[0]:+6.1f}° "
          f"{ELECTRICAL_REFERENCE_DEG[1]:+6.1f}° | {reference:6.1f}° (Engblom et al. 2005; the electrical "
          "axis is the ECG's, with the torso)")


if __name__ == "__main__":
    main()
