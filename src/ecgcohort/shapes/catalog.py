"""Choose an organ's shape model from the configuration: built in, ``.npz`` or UK Digital Heart."""

from __future__ import annotations

from typing import Any, Mapping

from ecgcohort.shapes.model import ShapeModel, ShapeModelError, load_npz, load_uk_digital_heart

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


def write_shape_model(organ: str, spec: Mapping[str, Any], path: str) -> ShapeModel:
    """Build or load the organ's model (see :func:`shape_model_from_config`) and save it as ``.npz``."""
    model = shape_model_from_config(organ, spec)
    model.save(path)
    return model
