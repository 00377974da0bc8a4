"""Choose an organ's shape model from the configuration: built in, ``.npz`` or UK Digital Heart."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Mapping

from ecgcohort.cohort import sampling as cohort_sampling
from ecgcohort.io import atomic_path, code_and_library_versions
from ecgcohort.shapes.model import ShapeModel, ShapeModelError, load_npz, load_uk_digital_heart

log = logging.getLogger(__name__)

#: What a built-in model is computed from besides its config section: this package's modules (and
#: ecgcohort.cohort.sampling, whose BODY_MODEL_AGE_YEARS the torso population is drawn over)
#: and the libraries that build (anny with roma, warp and torch for the bodies; libigl, gmsh,
#: scipy for the hearts). A cached model made by other code or other library versions is never used.
BUILT_FROM_MODULES = ("catalog.py", "model.py", "heart.py", "torso.py")
BUILT_FROM_LIBRARIES = ("numpy", "scipy", "libigl", "gmsh", "anny", "roma", "warp-lang", "torch")

REQUIRED_REGIONS = {
    "heart": {"lv_endocardium", "rv_endocardium", "epicardium", "base"},
    "torso": {"body_surface"},
}
REQUIRED_LANDMARKS = {"heart": set(), "torso": {"jugular_notch", "xiphoid", "right_shoulder", "left_shoulder",
                                                 "right_hip", "left_hip"}}


def shape_model_from_config(organ: str, spec: Mapping[str, Any]) -> ShapeModel:
    """The ``organ`` ("heart" or "torso") model described by its ``shapes.<organ>`` config section.

    The built-in heart is generated on a template of ``template_edge_mm`` edges, a setting
    of the shape model, not of the meshing: a patient is the same surface whatever mesh is
    later made of it. Raises :class:`ShapeModelError` naming the missing regions or
    landmarks a model needs.
    """
    source = spec["source"]
    if source == "builtin" and organ == "heart":
        from ecgcohort.shapes.heart import build_heart_model

        model = build_heart_model(n_modes=spec["n_modes"], population=spec["population"], seed=spec["seed"],
                                  edge_length_mm=spec["template_edge_mm"])
    elif source == "builtin" and organ == "torso":
        from ecgcohort.shapes.torso import build_torso_model

        model = build_torso_model(n_modes=spec["n_modes"], population=spec["population"], seed=spec["seed"])
    elif source == "npz":
        model = load_npz(_required(spec, "npz", organ))
    elif source == "uk_digital_heart":
        files = spec["uk_digital_heart"]
        model = load_uk_digital_heart(_required(files, "mean_vtk", organ), _required(files, "modes_csv", organ),
                                      _required(files, "variances_csv", organ), n_modes=spec["n_modes"],
                                      label_array=files.get("label_array"),
                                      label_names={int(k): v for k, v in files.get("label_names", {}).items()})
    else:
        raise ShapeModelError(f"shapes.{organ}.source: unknown source '{source}'")
    missing = REQUIRED_REGIONS[organ] - set(model.label_names.values())
    if missing:
        raise ShapeModelError(f"shapes.{organ}: model '{model.name}' lacks regions {sorted(missing)} "
                              f"(has {sorted(model.label_names.values())})")
    missing = REQUIRED_LANDMARKS[organ] - set(model.landmarks)
    if missing:
        raise ShapeModelError(f"shapes.{organ}: model '{model.name}' lacks landmarks {sorted(missing)}")
    return model


def _required(spec: Mapping[str, Any], key: str, organ: str) -> str:
    value = spec.get(key)
    if not value:
        raise ShapeModelError(f"shapes.{organ}: '{key}' must name a file for this source")
    return str(value)


def shape_model_cache_key(organ: str, spec: Mapping[str, Any]) -> str:
    """The version of a built-in model: a hash of its config section, the source of
    :data:`BUILT_FROM_MODULES` and the versions of :data:`BUILT_FROM_LIBRARIES`."""
    digest = hashlib.sha256(json.dumps([organ, dict(spec)], sort_keys=True, default=str).encode())
    here = Path(__file__).parent
    # the torso's population is drawn over the ages the cohort design allows (BODY_MODEL_AGE_YEARS)
    sources = [here / module for module in BUILT_FROM_MODULES] + [Path(cohort_sampling.__file__)]
    digest.update(code_and_library_versions(sources, BUILT_FROM_LIBRARIES))
    return digest.hexdigest()[:16]


def write_shape_model(organ: str, spec: Mapping[str, Any], path: str | Path,
                      cache_dir: str | Path | None = None) -> None:
    """Build or load the organ's model (see :func:`shape_model_from_config`) and save it as
    ``.npz``. A built-in model is also kept in ``cache_dir`` under its
    :func:`shape_model_cache_key` and copied from there when the key matches (it takes 10-20 s
    to build; workflow copies and a run after ``rm -rf results`` share it)."""
    cached = None
    if cache_dir is not None and spec["source"] == "builtin":
        cached = Path(cache_dir) / f"{organ}-{shape_model_cache_key(organ, spec)}.npz"
        if cached.is_file():
            with atomic_path(path) as temporary:
                shutil.copyfile(cached, temporary)
            log.info("%s model %s copied from the cache (built by the same code and libraries)", organ, cached)
            return
    shape_model_from_config(organ, spec).save(path)
    if cached is not None:
        try:
            with atomic_path(cached) as temporary:  # parallel builders each write a whole file
                shutil.copyfile(path, temporary)
        except OSError as error:  # a read-only or full cache costs the next run the build, not this job
            log.warning("%s model not cached (%s): set ECGCOHORT_CACHE to a writable folder", organ, error)
        else:
            log.info("%s model cached as %s", organ, cached)
