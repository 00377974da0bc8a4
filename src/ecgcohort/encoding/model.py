"""A trained DeepSDF shape model as one object: decoder, normalisation box, the training
codes and their prior, the SDF sampling it was trained with — and the library call that
gives a new heart and torso their code from surfaces alone (:func:`infer_code`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ecgcohort.encoding.deepsdf import (
    DeepSdfSpec,
    MapSpec,
    NormalisationBox,
    ShapeDecoder,
    latent_prior,
    map_code,
    mahalanobis,
)
from ecgcohort.learning.modelfile import ModelFileError, check_compatible, load_model

log = logging.getLogger(__name__)

KIND = "deepsdf"
#: Keys of the ``encoding.deepsdf`` config section that a model file must match: the
#: architecture and the normalisation box's padding.
ARCHITECTURE_KEYS = ("latent_dim", "hidden", "layers", "skip_at", "fourier_features", "fourier_scale", "lipschitz",
                     "box_padding")


@dataclass
class ShapeModel:
    """A frozen decoder with everything inference needs (lengths in mm unless named ``_n``)."""

    decoder: ShapeDecoder
    box: NormalisationBox
    training_patients: list[str]
    training_codes: np.ndarray          # (N, d), rows in training_patients order
    prior_mean: np.ndarray
    prior_cov: np.ndarray
    sdf_sampling: dict[str, Any]       # the encoding.sdf section the training samples were drawn with
    metadata: dict[str, Any]

    @property
    def surfaces(self) -> tuple[str, ...]:
        return tuple(self.decoder.spec.surfaces)

    def mahalanobis(self, code: np.ndarray) -> float:
        """Distance of ``code`` from the training codes' distribution (their shrunk covariance)."""
        return mahalanobis(code, self.prior_mean, self.prior_cov)

    def predict_sdf_mm(self, code: np.ndarray, points_mm: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """Signed distances (P, S) in mm of the shape ``code`` at ``points_mm`` (P, 3)."""
        from ecgcohort.encoding.deepsdf import predict_sdf

        return self.box.denormalise_sdf(predict_sdf(self.decoder, code, self.box.normalise(points_mm), batch_size))


def load_shape_model(path: str | Path, *, expected: Mapping[str, Any] | None = None, prior_shrinkage: float = 0.1,
                     device: str | torch.device = "cpu", surfaces: Sequence[str] | None = None) -> ShapeModel:
    """Read a model file written by the ``train_shape_model`` rule. ``expected`` (an
    ``encoding.deepsdf`` config section) given: a model of another architecture or box padding
    is refused with the differing keys named; ``surfaces`` given: a model of other surfaces is."""
    state, meta = load_model(path, kind=KIND, map_location=device)
    if expected is not None:
        check_compatible(path, meta["config"], {k: expected[k] for k in ARCHITECTURE_KEYS if k in expected})
    if surfaces is not None and list(meta["spec"]["surfaces"]) != list(surfaces):
        raise ModelFileError(f"{path} decodes the surfaces {list(meta['spec']['surfaces'])}, the data have "
                             f"{list(surfaces)}")
    spec = DeepSdfSpec.from_config(meta["spec"])
    decoder = ShapeDecoder(spec)
    decoder.load_state_dict({k.removeprefix("decoder."): v for k, v in state.items() if k.startswith("decoder.")})
    decoder.to(device).eval().requires_grad_(False)
    codes = state["codes.weight"].double().cpu().numpy()
    mean, cov = latent_prior(codes, prior_shrinkage) if len(codes) >= 2 else (codes[0], np.eye(codes.shape[1]))
    return ShapeModel(decoder, NormalisationBox.from_dict(meta["normalisation"]), list(meta["training_patients"]),
                      codes, mean, cov, dict(meta.get("sdf_sampling", {})), meta)


@dataclass(frozen=True)
class InferredCode:
    """A code from MAP inference: ``code`` (d,), its Mahalanobis distance to the training
    codes, whether that exceeds the outlier threshold, and the fit (clamped SDF mean squared
    error in mm², over all samples)."""

    code: np.ndarray
    mahalanobis: float
    outlier: bool
    sdf_rmse_mm: float
    seconds: float
    iterations: int

    def to_dict(self) -> dict[str, Any]:
        return {"code": [float(c) for c in self.code], "mahalanobis": self.mahalanobis, "outlier": self.outlier,
                "sdf_rmse_mm": self.sdf_rmse_mm, "seconds": self.seconds, "iterations": self.iterations}


def infer_code_from_samples(model: ShapeModel, points_mm: np.ndarray, sdf_mm: np.ndarray, spec: MapSpec = MapSpec(),
                            outlier_mahalanobis: float = 5.0, name: str = "geometry") -> InferredCode:
    """MAP code (eq. 7) of signed-distance samples: ``points_mm`` (P, 3), ``sdf_mm`` (P, S) in the
    model's surface order. A code farther than ``outlier_mahalanobis`` from the training codes
    is returned with a warning in the log and ``outlier`` set."""
    start = time.perf_counter()
    result = map_code(model.decoder, model.box.normalise(points_mm), model.box.normalise_sdf(sdf_mm),
                      model.prior_mean, model.prior_cov, spec)
    seconds = time.perf_counter() - start
    outlier = bool(result.mahalanobis > outlier_mahalanobis)
    rmse = float(np.sqrt(result.sdf_loss)) * model.box.scale_mm
    if outlier:
        log.warning("%s: code at Mahalanobis distance %.2f from the training codes (threshold %.2f): the shape is far "
                    "from the training distribution; its code and everything computed from it are extrapolations",
                    name, result.mahalanobis, outlier_mahalanobis)
    log.info("%s: code inferred in %.1f s (%d iterations), clamped SDF RMSE %.2f mm, Mahalanobis %.2f", name, seconds,
             spec.iterations, rmse, result.mahalanobis)
    return InferredCode(result.code, result.mahalanobis, outlier, rmse, seconds, spec.iterations)


def infer_code(heart_surface: Any, torso_surface: Any, model: ShapeModel | str | Path, *,
               spec: MapSpec = MapSpec(), outlier_mahalanobis: float = 5.0, seed: int = 0,
               name: str = "geometry") -> InferredCode:
    """The shape code of a heart and a torso from their surfaces alone — no volume mesh.

    ``heart_surface``: the closed myocardium with face labels (an
    :class:`ecgcohort.anatomy.Surface` or a ``heart.vtp`` path as the anatomy stage writes);
    ``torso_surface``: the closed body surface (a Surface or ``torso.vtp``); both in mm, in the
    frame of the cohort. ``model``: a :class:`ShapeModel` or its file. Signed distances are
    sampled as the model's training samples were (its stored ``encoding.sdf`` settings, drawn
    from ``seed``), then the code is found by MAP inference (eq. 7)."""
    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.encoding.sdf import sample_sdf, sampling_spec
    from ecgcohort.encoding.surfaces import closed_surfaces

    if not isinstance(model, ShapeModel):
        model = load_shape_model(model)
    heart = read_surface(heart_surface) if isinstance(heart_surface, (str, Path)) else heart_surface
    torso = read_surface(torso_surface) if isinstance(torso_surface, (str, Path)) else torso_surface
    surfaces = closed_surfaces(heart, torso, patient=name)
    samples = sample_sdf(surfaces, sampling_spec(model.sdf_sampling), np.random.default_rng(seed), patient=name)
    order = [list(samples.surfaces).index(s) for s in model.surfaces]
    return infer_code_from_samples(model, samples.points_mm, samples.sdf_mm[order].T, spec, outlier_mahalanobis, name)
