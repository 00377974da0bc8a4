"""The surrogate evaluation's row and curve labels, shared by the tables (``surrogate.report``)
and the figures (``surrogate.figures``): both import them from here, neither imports the other's
labels."""

from __future__ import annotations

ENCODING_LABELS = {"pca": "PCA", "deepsdf": "DeepSDF"}
PSEUDO = "pseudo lead field"


def model_label(encoding: str, target: str) -> str:
    """A model's row label, e.g. ``DeepSDF, pseudo_residual``."""
    return f"{ENCODING_LABELS.get(encoding, encoding)}, {target}"
