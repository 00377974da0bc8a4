"""A trained lead-field surrogate as a library: load the model file, look up or pass a code,
and get ∇Z at any points, a patient's lead matrix and its ECGs — the FEM path's code
(:func:`~ecgcohort.leadfield.matrix.lead_matrix`, :func:`~ecgcohort.ecg.forward.electrode_potentials`)
with the surrogate's ∇Z per myocardial cell in place of the FEM one.

Electrodes are given in m with their normalised torso coordinates (the network's input; x ∈ [−1,
1], y, z ∈ [0, 1] across the torso's bounding box); :func:`normalised_electrodes` computes those
from a torso surface the way the electrode stage does.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

#: Columns of a codes table that are not code entries (PCA: patient, split; DeepSDF: patient,
#: role, source, mahalanobis, outlier).
_CODE_METADATA = ("patient", "split", "role", "source", "mahalanobis", "outlier")
ENCODINGS: tuple[str, ...] = ("pca", "deepsdf")


@dataclass(frozen=True)
class CodeTable:
    """Every patient's geometry code of one encoding (``results/encoding/<encoding>/codes.csv``):
    ``values`` (N, d), the Mahalanobis distance and outlier flag where the encoding has them
    (DeepSDF MAP inference; PCA codes are projections and never flagged)."""

    encoding: str
    patients: tuple[str, ...]
    columns: tuple[str, ...]
    values: np.ndarray
    outlier: np.ndarray
    mahalanobis: np.ndarray

    def code(self, patient: str) -> np.ndarray:
        """The code (d,) of ``patient``; KeyError naming the table's encoding if it has none."""
        try:
            return self.values[self.patients.index(patient)]
        except ValueError:
            raise KeyError(f"patient {patient} has no {self.encoding} code (codes of {len(self.patients)} patients: "
                           f"{', '.join(self.patients[:5])}{', ...' if len(self.patients) > 5 else ''})") from None

    def is_outlier(self, patient: str) -> bool:
        """Whether the patient's code was flagged as an outlier of the training codes."""
        self.code(patient)
        return bool(self.outlier[self.patients.index(patient)])


def read_code_table(path: str | Path, encoding: str) -> CodeTable:
    """Read a codes CSV of the encoding stage (columns: patient, metadata, then the code)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding '{encoding}'; known: {', '.join(ENCODINGS)}")
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows or "patient" not in rows[0]:
        raise ValueError(f"{path}: expected a 'patient' column and at least one row")
    columns = tuple(c for c in rows[0] if c not in _CODE_METADATA)
    if not columns:
        raise ValueError(f"{path}: no code columns")
    try:
        values = np.array([[float(row[c]) for c in columns] for row in rows])
    except ValueError as error:
        raise ValueError(f"{path}: a code entry is not a number ({error})") from None
    outlier = np.array([str(row.get("outlier", "False")).strip().lower() == "true" for row in rows])
    mahalanobis = np.array([float(row["mahalanobis"]) if row.get("mahalanobis") else np.nan for row in rows])
    return CodeTable(encoding=encoding, patients=tuple(row["patient"] for row in rows), columns=columns,
                     values=values, outlier=outlier, mahalanobis=mahalanobis)


@dataclass
class TrainedSurrogate:
    """A loaded surrogate: the network (eval mode, on ``device``), the cohort's normalisation box
    of the points, the encoding and code columns it was trained with, and the file's metadata."""

    network: Any
    box: Any
    encoding: str
    code_columns: tuple[str, ...]
    metadata: Mapping[str, Any]

    @property
    def spec(self):
        """The :class:`~ecgcohort.surrogate.network.SurrogateSpec` of the network."""
        return self.network.spec

    def check_code_table(self, codes: CodeTable) -> None:
        """Refuse codes of another encoding or with other columns than the training codes."""
        if codes.encoding != self.encoding or codes.columns != self.code_columns:
            raise ValueError(f"the surrogate takes {self.encoding} codes with {len(self.code_columns)} entries "
                             f"({', '.join(self.code_columns[:3])}, ...), got {codes.encoding} codes with "
                             f"{len(codes.columns)} ({', '.join(codes.columns[:3])}, ...)")

    def gradient(self, points_m: np.ndarray, electrodes_m: np.ndarray, electrodes_normalised: np.ndarray,
                 code: np.ndarray, batch_size: int = 8192, *, region: np.ndarray | None = None) -> np.ndarray:
        """∇Z (E, P, 3) in Ω/m at points (P, 3, m) of electrodes (E, 3, m, with their normalised
        torso coordinates) for the patient with ``code``, the points' volume tags ``region``
        (P,; needed by a ``region_inputs`` surrogate); see
        :func:`~ecgcohort.surrogate.network.predict_gradient`."""
        from ecgcohort.surrogate.network import predict_gradient

        return predict_gradient(self.network, points_m, electrodes_m, electrodes_normalised, code, self.box,
                                batch_size=batch_size, region=region)

    def cell_gradient(self, nodes_m: np.ndarray, tetrahedra: np.ndarray, electrodes_m: np.ndarray,
                      electrodes_normalised: np.ndarray, code: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """∇Z (E, C, 3) in Ω/m at the centroids of tetrahedra (C, 4) of nodes (N, 3, m): the
        cell-constant field the lead matrix integrates, as the FEM's P1 ∇Z per cell. The cells are
        myocardium."""
        from ecgcohort.surrogate.network import MYOCARDIUM

        centroids = np.asarray(nodes_m, dtype=np.float64)[np.asarray(tetrahedra)].mean(axis=1)
        return self.gradient(centroids, electrodes_m, electrodes_normalised, code, batch_size,
                             region=np.full(len(centroids), MYOCARDIUM))

    def lead_matrix(self, nodes_m: np.ndarray, tetrahedra: np.ndarray, intracellular: np.ndarray,
                    electrodes_m: np.ndarray, electrodes_normalised: np.ndarray, code: np.ndarray) -> np.ndarray:
        """(E, N) lead matrix of a myocardium (nodes in m, G_i per cell (C, 3, 3) in S/m) from
        the surrogate's ∇Z per cell: electrode potentials = result @ V_m."""
        from ecgcohort.leadfield.matrix import lead_matrix

        gradient = self.cell_gradient(nodes_m, tetrahedra, electrodes_m, electrodes_normalised, code)
        return lead_matrix(nodes_m, tetrahedra, intracellular, gradient)


def load_surrogate(path: str | Path, device: str = "cpu") -> TrainedSurrogate:
    """Load a model file written by the ``train_surrogate`` rule on ``device`` (cpu|cuda|auto);
    a file of another kind is refused (:class:`~ecgcohort.learning.modelfile.ModelFileError`)."""
    from ecgcohort.encoding.deepsdf import NormalisationBox
    from ecgcohort.learning.device import resolve_device
    from ecgcohort.learning.modelfile import load_model
    from ecgcohort.surrogate.network import LeadFieldNetwork, SurrogateSpec

    state, metadata = load_model(path, kind="leadfield-surrogate")
    network = LeadFieldNetwork(SurrogateSpec.from_config(metadata["spec"]))
    network.load_state_dict({k.removeprefix("network."): v for k, v in state.items()})
    network.eval().to(resolve_device(device))
    return TrainedSurrogate(network=network, box=NormalisationBox.from_dict(metadata["normalisation"]),
                            encoding=metadata["encoding"], code_columns=tuple(metadata["code_columns"]),
                            metadata=metadata)


def normalised_electrodes(electrodes_mm: np.ndarray, torso_points_mm: np.ndarray) -> np.ndarray:
    """Normalised torso coordinates (E, 3) of electrodes (E, 3, mm) on a torso whose surface
    points (mm) set the bounding box — the electrode stage's definition
    (:func:`~ecgcohort.anatomy.electrodes.normalised_coordinates`: x ∈ [−1, 1], y, z ∈ [0, 1]
    across the box)."""
    from ecgcohort.anatomy.electrodes import normalised_coordinates

    return normalised_coordinates(np.asarray(torso_points_mm, dtype=np.float64),
                                  np.asarray(electrodes_mm, dtype=np.float64))


def ecg_from_potentials(lead: np.ndarray, electrode_names: Sequence[str], vm_mv: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(unipolar (E, T), 12 leads (12, T)) in V from a lead matrix (E, N) and the beat's V_m
    (N, T) in mV, for callers that form several lead matrices' ECGs from one V_m."""
    from ecgcohort.ecg.leads import standard_leads

    unipolar = (np.asarray(lead, dtype=np.float64) @ vm_mv) * 1e-3  # mV -> V: the lead matrix is dimensionless
    return unipolar, standard_leads(unipolar, list(electrode_names))


def ecg_from_lead_matrix(lead: np.ndarray, electrode_names: Sequence[str], activation_ms: np.ndarray,
                         apd_scale: np.ndarray, times_ms: np.ndarray, template: Any,
                         upstroke_ms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(unipolar (E, T), 12 leads (12, T)) in V from a lead matrix (E, N) and an activation map
    (τ per node, ms; APD scale per node; upstroke spread per node, ms, the store's
    ``upstroke_spread``) on the 1 ms grid ``times_ms`` — the FEM path's
    :func:`~ecgcohort.ecg.forward.electrode_potentials` and :func:`~ecgcohort.ecg.leads.standard_leads`."""
    from ecgcohort.conduction.maps import ActivationMap
    from ecgcohort.ecg.forward import electrode_potentials
    from ecgcohort.ecg.leads import standard_leads

    activation = ActivationMap(scenario="", kind="", activation_ms=np.asarray(activation_ms, dtype=np.float64),
                               apd_scale=np.asarray(apd_scale, dtype=np.float64), sites_mm=np.zeros((0, 3)),
                               site_times_ms=np.zeros(0),
                               upstroke_ms=None if upstroke_ms is None else np.asarray(upstroke_ms, dtype=np.float64))
    unipolar = electrode_potentials(lead, activation, times_ms, template)
    return unipolar, standard_leads(unipolar, list(electrode_names))
