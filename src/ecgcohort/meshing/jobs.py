"""The meshing stage's job: the patient's surfaces in, resampled to the element sizes, a tagged
``.msh`` and a quality report out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ecgcohort.io import atomic_path
from ecgcohort.meshing.surfaces import ResampledSurface, cavity_caps, check_heart_inside_torso, resample_surface
from ecgcohort.meshing.tetra import MeshReport, mesh_heart_in_torso


@dataclass(frozen=True)
class MeshSizes:
    """Element sizes of one mesh, mm: the heart's surfaces and myocardium, and the body
    surface and far torso."""

    heart_mm: float
    torso_mm: float


def patient_heart_element_size_mm(nominal_mm: float, anatomy_json: str | Path | None,
                                  settings: Mapping[str, Any]) -> float:
    """The heart element size (mm) of one patient: ``nominal_mm``, the size for the shape
    model's mean heart, times the patient's ``heart_size_factor`` (its ``anatomy.json``, the
    length scale of its sex's heart) where ``settings["heart_element_size_follows_heart"]``, so
    that every heart has as many elements per length as the mean heart at ``nominal_mm`` and
    the discretisation error the convergence ladder measured (docs/results/verification.md).
    ``anatomy_json`` None, or the setting off: ``nominal_mm``."""
    if anatomy_json is None or not settings.get("heart_element_size_follows_heart", False):
        return float(nominal_mm)
    measures = json.loads(Path(anatomy_json).read_text()).get("measures", {})
    if "heart_size_factor" not in measures:
        raise ValueError(f"{anatomy_json}: no measures.heart_size_factor for "
                         "meshing.heart_element_size_follows_heart (re-run the anatomy)")
    return float(nominal_mm) * float(measures["heart_size_factor"])


def patient_surfaces_at(patient: str, heart: str | Path, torso: str | Path, heart_model: str | Path,
                        torso_model: str | Path, sizes: MeshSizes, settings: Mapping[str, Any],
                        resampling_cache_dir: str | Path | None = None, *,
                        torso_max_surface_distance_mm: float | None = None
                        ) -> tuple[ResampledSurface, ResampledSurface, Mapping[int, str]]:
    """The patient's heart and body surfaces (anatomy ``.vtp`` files on the shape models'
    templates, ``.npz`` models) resampled to ``sizes``, checked against the patient; returns
    them with the heart's region names. ``resampling_cache_dir``: where the models' resampling
    plans are kept for the next patient (None: computed here). ``torso_max_surface_distance_mm``:
    the body surface's own allowed mean distance, mm (None: ``meshing.max_surface_distance_mm``,
    as the heart's), for a mesh whose torso elements are not used."""
    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.shapes import load_npz

    heart_surface, torso_surface = read_surface(heart), read_surface(torso)
    limits = {"max_volume_change": float(settings["max_volume_change"]),
              "max_surface_distance_mm": float(settings["max_surface_distance_mm"]), "cache_dir": resampling_cache_dir}
    torso_limits = limits if torso_max_surface_distance_mm is None else \
        {**limits, "max_surface_distance_mm": float(torso_max_surface_distance_mm)}
    heart_at = resample_surface(patient, "heart", load_npz(heart_model), heart_surface.points, heart_surface.faces,
                                heart_surface.labels, sizes.heart_mm, "meshing.heart_element_size_mm", **limits)
    torso_at = resample_surface(patient, "torso", load_npz(torso_model), torso_surface.points, torso_surface.faces,
                                torso_surface.labels, sizes.torso_mm, "meshing.torso_element_size_mm", **torso_limits)
    check_heart_inside_torso(patient, heart_at, torso_at, "meshing.torso_element_size_mm", sizes.torso_mm)
    return heart_at, torso_at, heart_surface.label_names


def mesh_patient_at(patient: str, heart: str | Path, torso: str | Path, heart_model: str | Path,
                    torso_model: str | Path, sizes: MeshSizes, settings: Mapping[str, Any],
                    mesh_out: str | Path, resampling_cache_dir: str | Path | None = None, *,
                    torso_max_surface_distance_mm: float | None = None) -> tuple[MeshReport, dict[str, Any]]:
    """Mesh one patient at ``sizes`` (see :func:`patient_surfaces_at`, also for
    ``torso_max_surface_distance_mm``) with the ``meshing`` settings (gmsh on
    ``settings["threads"]`` threads: the mesh depends on it); returns the mesh report and the
    resampled surfaces' measures."""
    heart_at, torso_at, names = patient_surfaces_at(patient, heart, torso, heart_model, torso_model, sizes, settings,
                                                    resampling_cache_dir,
                                                    torso_max_surface_distance_mm=torso_max_surface_distance_mm)
    report = mesh_surfaces(patient, heart_at, torso_at, names, sizes, settings, mesh_out)
    return report, {"heart": heart_at.measures(), "torso": torso_at.measures()}


def mesh_surfaces(patient: str, heart_at: ResampledSurface, torso_at: ResampledSurface,
                  region_names: Mapping[int, str], sizes: MeshSizes, settings: Mapping[str, Any],
                  mesh_out: str | Path) -> MeshReport:
    """Mesh a patient's resampled surfaces (heart regions named by ``region_names``) at ``sizes``
    with the ``meshing`` settings; write ``mesh_out``. A surface gmsh cannot mesh fails naming
    the patient and the settings with their values: there is no fall-back to another algorithm,
    which would make another mesh."""
    from ecgcohort.meshing.tetra import MeshingError

    algorithm, threads = settings["algorithm_3d"], int(settings.get("threads", 1))
    caps = cavity_caps(heart_at.points, heart_at.faces, heart_at.labels, region_names, sizes.heart_mm) \
        if settings["blood_pools"] else []
    try:
        return mesh_heart_in_torso(
            torso_at.points, torso_at.faces, heart_at.points, heart_at.faces, heart_at.labels, region_names,
            heart_size_mm=sizes.heart_mm, torso_size_mm=sizes.torso_mm, output_path=mesh_out, threads=threads,
            algorithm=algorithm, optimize_netgen=settings["optimize_netgen"],
            sliver_threshold_deg=settings["sliver_angle_deg"], max_sliver_fraction=settings["max_sliver_fraction"],
            caps=caps)
    except MeshingError as error:
        raise MeshingError(f"patient {patient}: no mesh with meshing.algorithm_3d = {algorithm!r}, meshing.threads = "
                           f"{threads}, meshing.heart_element_size_mm = {sizes.heart_mm:g}, "
                           f"meshing.torso_element_size_mm = {sizes.torso_mm:g}: {error}") from error


def mesh_patient(patient: str, heart: str | Path, torso: str | Path, heart_model: str | Path, torso_model: str | Path,
                 settings: Mapping[str, Any], mesh_out: str | Path, quality_out: str | Path,
                 resampling_cache_dir: str | Path | None = None, anatomy_json: str | Path | None = None) -> None:
    """Mesh one patient's anatomy at the configured element sizes (the heart's scaled to the
    patient's heart, :func:`patient_heart_element_size_mm` of ``anatomy_json``); write the
    ``.msh`` and the quality report (mesh sizes and quality, the element sizes used, and how far
    the resampled surfaces lie from the patient's). ``resampling_cache_dir``: see
    :func:`patient_surfaces_at`."""
    sizes = MeshSizes(patient_heart_element_size_mm(float(settings["heart_element_size_mm"]), anatomy_json, settings),
                      float(settings["torso_element_size_mm"]))
    report, surfaces = mesh_patient_at(patient, heart, torso, heart_model, torso_model, sizes, settings, mesh_out,
                                       resampling_cache_dir)
    with atomic_path(quality_out) as temporary:
        temporary.write_text(json.dumps({**report.as_dict(), "element_sizes_mm": {"heart": sizes.heart_mm,
                                                                                 "torso": sizes.torso_mm},
                                         "surfaces": surfaces}, indent=2) + "\n")
