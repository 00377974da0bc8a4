"""Statistical shape models (SSM): a mean surface, orthonormal modes and their standard deviations.

An instance is ``mean + sum_k w_k * sd_k * mode_k`` with the weights ``w`` in standard
deviations. Every instance shares the template's triangles, face labels and landmark vertices
(point correspondence). Coordinates are in millimetres in the patient frame: x right to left,
y posterior to anterior, z superior to inferior.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.io import atomic_path


class ShapeModelError(ValueError):
    """An inconsistent shape model or a shape-model file that cannot be read."""


@dataclass(frozen=True)
class ShapeModel:
    """A triangulated SSM. ``modes`` has shape (n_modes, 3 * n_points), rows orthonormal."""

    name: str
    mean: np.ndarray
    faces: np.ndarray
    face_labels: np.ndarray
    label_names: Mapping[int, str]
    modes: np.ndarray
    sd: np.ndarray
    landmarks: Mapping[str, int] = field(default_factory=dict)
    #: how the built-in families made their triangulation, e.g. {"kind": "biventricular",
    #: "edge_length_mm": 1.0}: what :mod:`ecgcohort.shapes.resample` needs to resample an
    #: instance at another resolution (empty for loaded atlases)
    template: Mapping[str, float | str] = field(default_factory=dict)
    #: the template's vertices on the family's reference shape (n_points, 3) mm, where the
    #: template's parametrisation is exact (built-in heart only)
    reference: np.ndarray | None = None
    #: the mode weights as a linear function of the training population's sex and age, where
    #: the family was built from people (built-in torso); see :func:`phenotype_weights`
    phenotype_regression: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_points = self.mean.shape[0]
        if self.mean.ndim != 2 or self.mean.shape[1] != 3:
            raise ShapeModelError(f"{self.name}: mean must be (n_points, 3), got {self.mean.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or self.faces.max(initial=-1) >= n_points:
            raise ShapeModelError(f"{self.name}: faces must be (n_faces, 3) indices below {n_points}")
        if self.face_labels.shape != (self.faces.shape[0],):
            raise ShapeModelError(f"{self.name}: one label per face expected")
        if self.modes.shape != (self.sd.shape[0], 3 * n_points):
            raise ShapeModelError(f"{self.name}: modes {self.modes.shape} do not match "
                                  f"{self.sd.shape[0]} sd and {n_points} points")
        unknown = set(np.unique(self.face_labels).tolist()) - set(self.label_names)
        if unknown:
            raise ShapeModelError(f"{self.name}: face labels {sorted(unknown)} have no name")
        if self.reference is not None and self.reference.shape != self.mean.shape:
            raise ShapeModelError(f"{self.name}: reference {self.reference.shape} does not match the mean "
                                  f"{self.mean.shape}")
        for landmark, index in self.landmarks.items():
            if not 0 <= index < n_points:
                raise ShapeModelError(f"{self.name}: landmark {landmark} is vertex {index}, "
                                      f"outside 0..{n_points - 1}")

    @property
    def n_modes(self) -> int:
        return int(self.sd.shape[0])

    def label(self, name: str) -> int:
        """The integer label of a named region."""
        for value, label_name in self.label_names.items():
            if label_name == name:
                return int(value)
        raise KeyError(f"{self.name} has no region '{name}' (has {sorted(self.label_names.values())})")

    def instance(self, weights: Sequence[float]) -> np.ndarray:
        """Points (n_points, 3) in mm for mode weights in standard deviations (missing = 0)."""
        weights = np.asarray(weights, dtype=float)
        if weights.ndim != 1 or weights.size > self.n_modes:
            raise ShapeModelError(f"{self.name}: {weights.size} weights for {self.n_modes} modes")
        displacement = (weights * self.sd[: weights.size]) @ self.modes[: weights.size]
        return self.mean + displacement.reshape(-1, 3)

    def project(self, points: np.ndarray, n_modes: int | None = None) -> np.ndarray:
        """Weights (standard deviations) of the closest instance to corresponding ``points``."""
        k = self.n_modes if n_modes is None else n_modes
        return (self.modes[:k] @ (np.asarray(points) - self.mean).ravel()) / self.sd[:k]

    def save(self, path: str | Path) -> None:
        """Write the plain ``.npz`` format read by :func:`load_npz`."""
        extra = {} if self.reference is None else {"reference": self.reference}
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as stream:
                np.savez_compressed(
                    stream, mean=self.mean, faces=self.faces, face_labels=self.face_labels,
                    modes=self.modes, sd=self.sd, **extra,
                    metadata=json.dumps({"name": self.name,
                                         "label_names": {str(k): v for k, v in self.label_names.items()},
                                         "landmarks": dict(self.landmarks), "template": dict(self.template),
                                         "phenotype_regression": dict(self.phenotype_regression),
                                         "units": "mm"}),
                )


def from_training_shapes(name: str, shapes: np.ndarray, faces: np.ndarray, face_labels: np.ndarray,
                         label_names: Mapping[int, str], n_modes: int,
                         landmarks: Mapping[str, int] | None = None,
                         template: Mapping[str, float | str] | None = None,
                         reference: np.ndarray | None = None) -> ShapeModel:
    """PCA of corresponding shapes (n_shapes, n_points, 3), mm: the leading ``n_modes`` modes.

    Mode signs are fixed by the training shapes, not by the triangulation: each mode points
    towards the training shape that lies farthest along it (that shape's score is positive).
    The same population on a finer or coarser template then gives modes of the same sign,
    where "the largest vertex component is positive" depends on which vertices the template
    has. ``template`` and ``reference``: see :class:`ShapeModel`.
    """
    shapes = np.asarray(shapes, dtype=float)
    if shapes.ndim != 3 or shapes.shape[2] != 3:
        raise ShapeModelError(f"{name}: shapes must be (n_shapes, n_points, 3), got {shapes.shape}")
    if n_modes > shapes.shape[0] - 1:
        raise ShapeModelError(f"{name}: {n_modes} modes need at least {n_modes + 1} shapes")
    mean = shapes.mean(axis=0)
    centred = (shapes - mean).reshape(shapes.shape[0], -1)
    scores, singular, modes = _leading_singular_triplets(centred, n_modes)
    extreme = np.abs(scores).argmax(axis=0)
    signs = np.sign(scores[extreme, np.arange(n_modes)])
    modes = modes * signs[:, None]
    sd = singular / np.sqrt(shapes.shape[0] - 1)
    return ShapeModel(name, mean, np.asarray(faces, dtype=np.int64), np.asarray(face_labels, dtype=np.int32),
                      dict(label_names), modes, sd, dict(landmarks or {}), dict(template or {}),
                      None if reference is None else np.asarray(reference, dtype=float))


#: The regressors of :func:`phenotype_regression`, in the order of its coefficient rows.
PHENOTYPE_REGRESSORS: tuple[str, ...] = ("intercept", "female", "age_years")


def phenotype_regression(scores: np.ndarray, female: np.ndarray, age_years: np.ndarray,
                         age_range_years: Sequence[float]) -> dict[str, Any]:
    """Least-squares fit of the training shapes' mode weights ``scores`` (n_shapes, n_modes;
    standard deviations) on an intercept, the female indicator and the age (years) of each
    training body: the ``coefficients`` (3, n_modes; rows :data:`PHENOTYPE_REGRESSORS`), the
    residual standard deviation of every mode (``residual_sd``, standard deviations of the
    mode, the fit's 3 degrees of freedom removed) and the ages it was fitted over."""
    design = np.column_stack([np.ones(len(scores)), np.asarray(female, float), np.asarray(age_years, float)])
    coefficients, *_ = np.linalg.lstsq(design, scores, rcond=None)
    residual = scores - design @ coefficients
    return {"regressors": list(PHENOTYPE_REGRESSORS), "coefficients": coefficients.tolist(),
            "residual_sd": np.sqrt((residual ** 2).sum(axis=0) / (len(scores) - design.shape[1])).tolist(),
            "age_range_years": [float(v) for v in age_range_years]}


def phenotype_weights(model: ShapeModel, residual: Sequence[float], sex: str, age_years: float) -> np.ndarray:
    """Mode weights (standard deviations) of a ``sex`` ("female" or "male"), ``age_years`` person
    whose deviation from the mean body of that sex and age is ``residual`` (in residual standard
    deviations of each mode): mean(sex, age) + residual_sd * residual. Raises
    :class:`ShapeModelError` where the model has no regression or the age lies outside the
    ages it was fitted over."""
    regression = model.phenotype_regression
    if not regression:
        raise ShapeModelError(f"{model.name}: the model carries no sex-and-age regression of its modes")
    low, high = regression["age_range_years"]
    if not low <= age_years <= high:
        raise ShapeModelError(f"{model.name}: age {age_years:g} years is outside the ages its sex-and-age "
                              f"regression was fitted over, [{low:g}, {high:g}] years")
    if sex not in ("female", "male"):
        raise ShapeModelError(f"{model.name}: sex '{sex}' is neither female nor male")
    residual = np.asarray(residual, dtype=float)
    count = residual.size
    regressors = np.array([1.0, float(sex == "female"), float(age_years)])
    mean = regressors @ np.asarray(regression["coefficients"], dtype=float)[:, :count]
    return mean + np.asarray(regression["residual_sd"], dtype=float)[:count] * residual


def _leading_singular_triplets(centred: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``count`` leading (left vectors (m, count), singular values (count,), right vectors
    (count, n)) of a wide (m, n) matrix. From the eigenvectors of its m × m Gram matrix: for a
    population of 200 hearts of 158k coordinates that takes 0.8 s where LAPACK's thin SVD
    takes 30 s, and the modes agree to 3e-13. The Gram matrix squares the condition number,
    so where a requested mode is below :data:`GRAM_RELATIVE_FLOOR` of the first (a population
    with fewer independent factors than modes) the thin SVD is used instead."""
    eigenvalues, vectors = np.linalg.eigh(centred @ centred.T)
    order = np.argsort(eigenvalues)[::-1][:count]
    singular = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    if singular[-1] < GRAM_RELATIVE_FLOOR * singular[0]:
        left, singular, right = np.linalg.svd(centred, full_matrices=False)
        return left[:, :count], singular[:count], right[:count]
    left = vectors[:, order]
    return left, singular, (left.T @ centred) / singular[:, None]


#: The smallest singular value, relative to the first, of a mode taken from the Gram matrix:
#: its right vector's error there is about ε·(σ₁/σ_k)² ≈ 2e-8 (ε = 2.2e-16).
GRAM_RELATIVE_FLOOR = 1e-4


def load_npz(path: str | Path) -> ShapeModel:
    """Read an SSM from ``.npz``: arrays ``mean`` (n, 3), ``faces`` (m, 3), ``modes`` (k, 3n),
    ``sd`` (k,), optional ``face_labels`` (m,), and optional JSON ``metadata`` with ``name``,
    ``label_names`` ({label: name}) and ``landmarks`` ({name: vertex})."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ShapeModelError(f"cannot read shape model {path}: {error}") from error
    missing = {"mean", "faces", "modes", "sd"} - set(arrays)
    if missing:
        raise ShapeModelError(f"shape model {path} lacks arrays {sorted(missing)}")
    metadata = json.loads(str(arrays["metadata"])) if "metadata" in arrays else {}
    labels = arrays.get("face_labels", np.zeros(len(arrays["faces"]), dtype=np.int32))
    names = {int(k): v for k, v in metadata.get("label_names", {}).items()} or {
        int(v): f"region_{int(v)}" for v in np.unique(labels)}
    return ShapeModel(metadata.get("name", Path(path).stem), arrays["mean"].astype(float),
                      arrays["faces"].astype(np.int64), labels.astype(np.int32), names,
                      arrays["modes"].astype(float), arrays["sd"].astype(float),
                      {k: int(v) for k, v in metadata.get("landmarks", {}).items()},
                      dict(metadata.get("template", {})),
                      arrays["reference"].astype(float) if "reference" in arrays else None,
                      dict(metadata.get("phenotype_regression", {})))


def _read_csv_matrix(path: str | Path) -> np.ndarray:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as stream:
        return np.loadtxt(stream, delimiter=",", ndmin=2)


def load_uk_digital_heart(mean_vtk: str | Path, modes_csv: str | Path, variances_csv: str | Path,
                          n_modes: int | None = None, label_array: str | None = None,
                          label_names: Mapping[int, str] | None = None) -> ShapeModel:
    """Read an atlas in the Bai et al. / UK Digital Heart layout.

    ``mean_vtk``: the mean shape (VTK polydata, mm). ``modes_csv`` (``*_pc_100_modes.csv.gz``):
    a (3 n_points, n_modes) matrix whose columns are the principal components, coordinates
    interleaved x1, y1, z1, x2, ... ``variances_csv`` (``*_var_100_modes.csv.gz``): the
    n_modes variances (mm^2). Face labels come from the cell array ``label_array`` if given.
    """
    import pyvista

    surface = pyvista.read(mean_vtk).triangulate()
    points = np.asarray(surface.points, dtype=float)
    faces = np.asarray(surface.faces).reshape(-1, 4)[:, 1:]
    components = _read_csv_matrix(modes_csv)
    variances = _read_csv_matrix(variances_csv).ravel()
    if components.shape[0] != 3 * len(points) and components.shape[1] == 3 * len(points):
        components = components.T
    if components.shape[0] != 3 * len(points):
        raise ShapeModelError(f"{modes_csv}: {components.shape} principal components do not match "
                              f"{len(points)} points of {mean_vtk}")
    k = min(components.shape[1], variances.size, n_modes or components.shape[1])
    if label_array is not None:
        if label_array not in surface.cell_data:
            raise ShapeModelError(f"{mean_vtk} has no cell array '{label_array}'")
        labels = np.asarray(surface.cell_data[label_array]).astype(np.int32)
    else:
        labels = np.zeros(len(faces), dtype=np.int32)
    names = dict(label_names) if label_names else {int(v): f"region_{int(v)}" for v in np.unique(labels)}
    return ShapeModel(Path(mean_vtk).stem, points, faces.astype(np.int64), labels, names,
                      components[:, :k].T.copy(), np.sqrt(variances[:k]))
