"""Statistical shape models of the heart and the torso."""

from ecgcohort.shapes.model import (
    ShapeModel,
    ShapeModelError,
    from_training_shapes,
    load_npz,
    load_uk_digital_heart,
)

__all__ = ["ShapeModel", "ShapeModelError", "from_training_shapes", "load_npz", "load_uk_digital_heart"]
