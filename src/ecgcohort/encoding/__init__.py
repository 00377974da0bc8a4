"""Geometry encodings of a patient's heart and torso (paper 1, sections 2.4-2.6): signed-distance
samples of the four closed surfaces, PCA codes, the DeepSDF auto-decoder, MAP inference of a
code from surfaces alone (:func:`infer_code`) and the Chamfer evaluation."""

from ecgcohort.lazy import lazy_exports

_EXPORTS = {
    "SURFACES": "ecgcohort.encoding.surfaces",
    "SurfaceError": "ecgcohort.encoding.surfaces",
    "closed_surfaces": "ecgcohort.encoding.surfaces",
    "SdfSamplingSpec": "ecgcohort.encoding.sdf",
    "SdfSamples": "ecgcohort.encoding.sdf",
    "SdfSignError": "ecgcohort.encoding.sdf",
    "sample_sdf": "ecgcohort.encoding.sdf",
    "read_sdf_samples": "ecgcohort.encoding.sdf",
    "pca_codes": "ecgcohort.encoding.pca",
    "read_pca_codes": "ecgcohort.encoding.pca",
    "DeepSdfSpec": "ecgcohort.encoding.deepsdf",
    "MapSpec": "ecgcohort.encoding.deepsdf",
    "NormalisationBox": "ecgcohort.encoding.deepsdf",
    "ShapeModel": "ecgcohort.encoding.model",
    "InferredCode": "ecgcohort.encoding.model",
    "load_shape_model": "ecgcohort.encoding.model",
    "infer_code": "ecgcohort.encoding.model",
    "infer_code_from_samples": "ecgcohort.encoding.model",
    "chamfer_distance": "ecgcohort.encoding.chamfer",
    "interior_chamfer": "ecgcohort.encoding.chamfer",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
