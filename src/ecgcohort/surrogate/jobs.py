"""Job-level functions of the surrogate stage (``workflow/rules/surrogate.smk``): training on
the training patients' lead-field files, evaluation of one test patient against FEM and the
pseudo lead field, and the fan-in to Table 1, the figures and the timing table."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)

#: Network keys of a ``surrogate`` config section (the rest: training, evaluation, splits).
NETWORK_KEYS: tuple[str, ...] = ("hidden", "layers", "inject_at", "fourier_features", "fourier_scale",
                                 "lambda_cos", "pseudo_factor", "weighting", "region_inputs", "seed")
#: float32 values per (electrode, point) pair resident in patient blocks: target, reference.
_PAIR_FLOATS = 6
#: The third seed word of the training-point subset (the myocardial cells' stream has two).
_TRAINING_POINTS_STREAM = 1
PRECORDIAL: tuple[str, ...] = ("V1", "V2", "V3", "V4", "V5", "V6")
STANDARD: tuple[str, ...] = ("RA", "LA", "LL") + PRECORDIAL


def _write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    with atomic_path(path) as temporary:
        Path(temporary).write_text(json.dumps(payload, indent=2, default=float) + "\n")


def surrogate_spec(section: Mapping[str, Any], code_dim: int, target: str, sigma0: float):
    """The :class:`~ecgcohort.surrogate.network.SurrogateSpec` of a ``surrogate`` config section
    for codes of ``code_dim`` entries, target form ``target`` and torso conductivity σ0 (S/m)."""
    from ecgcohort.surrogate.network import SurrogateSpec

    return SurrogateSpec(code_dim=code_dim, target=target, sigma0=float(sigma0),
                         **{key: section[key] for key in NETWORK_KEYS})


def myocardial_points(store: str | Path, patient: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` myocardial cells of ``patient`` of the cohort store (or its part) drawn without
    replacement (seeded by ``seed`` and the patient): their centroids (k, 3) in m and the FEM ∇Z
    the lead matrix integrates there (E, k, 3) in Ω/m — training points where the ECG's source lives."""
    from ecgcohort.dataset import open_patient_mesh

    mesh = open_patient_mesh(store, patient)
    return _myocardial_sample(patient, mesh.node_position.values, mesh.tetrahedra.values,
                              mesh.grad_lead_field_cell, count, seed)


def _myocardial_sample(patient: str, node_position: np.ndarray, tetrahedra: np.ndarray, grad_cells,
                       count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`myocardial_points` on the patient's mesh arrays (m; ∇Z per cell (E, m, 3) Ω/m, an
    array or a lazy DataArray: only the chosen cells are read)."""
    import zlib

    chosen = np.sort(np.random.default_rng([seed, zlib.crc32(patient.encode())]).choice(
        len(tetrahedra), size=min(count, len(tetrahedra)), replace=False))
    centroids = node_position[tetrahedra[chosen]].mean(axis=1)
    cell_grad_z = grad_cells[:, chosen]
    return centroids, np.asarray(getattr(cell_grad_z, "values", cell_grad_z)).astype(np.float64)


@dataclass(frozen=True)
class LeadFieldFiles:
    """One patient's files the surrogate trains on: its lead-field sample points, electrodes,
    myocardial mesh (the fibre file) and lead-field chunks in electrode order."""

    points: Path
    electrodes: Path
    fibres: Path
    chunks: tuple[Path, ...]


def group_lead_field_files(patients: Sequence[str], *, points: Sequence[str | Path],
                           electrodes: Sequence[str | Path], fibres: Sequence[str | Path],
                           chunks: Sequence[str | Path]) -> dict[str, LeadFieldFiles]:
    """Each patient's :class:`LeadFieldFiles` from the rule's flat lists (one file per patient,
    in ``patients``' order; chunks recognised by the patient's folder)."""
    from ecgcohort.dataset.parts import files_by_patient

    indexed = {name: files_by_patient(paths, patients) for name, paths in
               (("points", points), ("electrodes", electrodes), ("fibres", fibres), ("chunks", chunks))}
    grouped = {}
    for patient in patients:
        found = {name: indexed[name][patient] for name in ("points", "electrodes", "fibres")}
        if any(len(paths) != 1 for paths in found.values()) or not indexed["chunks"][patient]:
            raise ValueError(f"patient {patient}: expected one points, electrodes and fibre file and its lead-field "
                             f"chunks, got {found} and {indexed['chunks'][patient]}")
        grouped[patient] = LeadFieldFiles(found["points"][0], found["electrodes"][0], found["fibres"][0],
                                          tuple(indexed["chunks"][patient]))
    return grouped


@dataclass(frozen=True)
class PatientLeadFields:
    """What the surrogate trains on of one patient, as the cohort store holds it (∇Z in float32):
    sample points (P, 3) m and their regions, ∇Z there (E, P, 3) Ω/m, the electrodes' positions
    (E, 3) m and normalised torso coordinates, the myocardial mesh (nodes m, tetrahedra) and ∇Z
    per myocardial cell (E, m, 3) Ω/m."""

    sample_points: np.ndarray
    sample_region: np.ndarray
    grad_lead_field: np.ndarray
    electrode_position: np.ndarray
    electrode_normalised_position: np.ndarray
    node_position: np.ndarray
    tetrahedra: np.ndarray
    grad_lead_field_cell: np.ndarray


class ElectrodeStack:
    """Arrays (E_k, ...) of several lead-field chunks as one (E, ...) array, read lazily:
    ``stack[:, rows]`` reads only those rows of each chunk (chunks are memory maps)."""

    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = list(parts)
        self.shape = (sum(part.shape[0] for part in self.parts), *self.parts[0].shape[1:])
        self.dtype = self.parts[0].dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        if not (isinstance(key, tuple) and key and key[0] == slice(None)):
            raise IndexError("an electrode stack is indexed as [:, ...] (every electrode)")
        return np.concatenate([np.asarray(part[key]) for part in self.parts])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = np.concatenate([np.asarray(part) for part in self.parts])
        return whole if dtype is None else whole.astype(dtype)


def read_patient_lead_fields(patient: str, files: LeadFieldFiles) -> PatientLeadFields:
    """One patient's :class:`PatientLeadFields` from its per-patient files. ∇Z per cell
    (100 MB a patient at 1.2 mm) and the tetrahedra are memory maps of the files (an
    :class:`ElectrodeStack` over several chunks): what indexes them reads only its rows."""
    from ecgcohort.ecg.forward import read_electrode_table
    from ecgcohort.io import npz_members

    electrodes = read_electrode_table(files.electrodes)
    if not files.chunks:
        raise ValueError(f"patient {patient}: no lead-field chunks given")
    chunks = [npz_members(path, ("electrode_names", "electrode_positions_m", "grad_points", "grad_cells"))
              for path in files.chunks]
    names = [str(name) for chunk in chunks for name in np.atleast_1d(chunk["electrode_names"])]
    if names != list(electrodes.names):
        raise ValueError(f"patient {patient}: the lead-field chunks' electrodes differ from {files.electrodes}")
    with np.load(files.points) as points:
        sample_points, region = points["points_m"].astype(np.float64), points["region"].astype(np.int8)
    mesh = npz_members(files.fibres, ("points_mm", "tetrahedra"))
    grad_points = np.concatenate([np.asarray(chunk["grad_points"]) for chunk in chunks])
    grad_cells = chunks[0]["grad_cells"] if len(chunks) == 1 else ElectrodeStack([c["grad_cells"] for c in chunks])
    n_cells = len(mesh["tetrahedra"])
    if grad_points.shape != (len(electrodes.names), len(sample_points), 3) or grad_cells.shape[1] != n_cells:
        raise ValueError(f"patient {patient}: ∇Z is {grad_points.shape} at the points and {grad_cells.shape} per cell "
                         f"for {len(electrodes.names)} electrodes, {len(sample_points)} points, {n_cells} cells")
    if grad_cells.dtype != np.float32:
        raise ValueError(f"patient {patient}: ∇Z per cell is {grad_cells.dtype}, the lead-field stage writes float32")
    return PatientLeadFields(
        sample_points=sample_points, sample_region=region,
        grad_lead_field=grad_points.astype(np.float32).astype(np.float64),
        electrode_position=np.concatenate([np.asarray(c["electrode_positions_m"]) for c in chunks]).astype(np.float64),
        electrode_normalised_position=electrodes.normalised.astype(np.float64),
        node_position=np.asarray(mesh["points_mm"]) * 1e-3, tetrahedra=mesh["tetrahedra"],
        grad_lead_field_cell=grad_cells)


def surrogate_training_patients(train_patients: Sequence[str], count: int | None) -> list[str]:
    """The training patients the surrogate learns from (fitting and validation together): the
    first ``count`` by id, so that a curve over ``count`` nests each smaller set in the larger
    (``surrogate.training_patients``); every one when ``count`` is None.

    Raises ValueError naming the key and value when the cohort has fewer training patients.
    """
    ordered = sorted(train_patients)
    if count is None:
        return ordered
    if count > len(ordered):
        raise ValueError(f"surrogate.training_patients = {count}: the cohort has only {len(ordered)} training "
                         "patients (cohort.train.count)")
    return ordered[:count]


def training_point_subset(patient: str, available: int, count: int | None, seed: int) -> np.ndarray:
    """Indices (sorted) of the ``count`` sample points of ``patient`` the surrogate trains on,
    drawn without replacement once per patient (seeded by ``seed`` and the patient; another
    stream than the myocardial cells'); every point when ``count`` is None or not below
    ``available``."""
    import zlib

    if count is None or count >= available:
        return np.arange(available)
    generator = np.random.default_rng([seed, zlib.crc32(patient.encode()), _TRAINING_POINTS_STREAM])
    return np.sort(generator.choice(available, size=count, replace=False))


def _patient_block(fields: PatientLeadFields, patient: str, spec, box, codes, *, myocardial_count: int = 0,
                   training_points: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """One patient's training block (:func:`~ecgcohort.surrogate.network.patient_block`): its
    sample points (``training_points`` of them, :func:`training_point_subset`), and
    ``myocardial_count`` myocardial cell centroids with them."""
    from ecgcohort.surrogate.network import MYOCARDIUM, patient_block

    kept = training_point_subset(patient, len(fields.sample_points), training_points, seed)
    points, grad_z, region = fields.sample_points[kept], fields.grad_lead_field[:, kept], fields.sample_region[kept]
    if myocardial_count:
        centroids, cell_grad_z = _myocardial_sample(patient, fields.node_position, fields.tetrahedra,
                                                    fields.grad_lead_field_cell, myocardial_count, seed)
        points, grad_z = np.concatenate([points, centroids]), np.concatenate([grad_z, cell_grad_z], axis=1)
        region = np.concatenate([region, np.full(len(centroids), MYOCARDIUM, dtype=region.dtype)])
    return patient_block(spec, box, points, fields.electrode_position, fields.electrode_normalised_position,
                         codes.code(patient), grad_z, region=region)


def _flat_rows(block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A patient block as flat (electrode, point) rows, electrode-major (the streamed layout)."""
    n_e, n_p = block["target"].shape[:2]
    rows = {"x": np.tile(block["x"], (n_e, 1)), "electrode": np.repeat(block["electrode"], n_p, axis=0),
            "code": np.repeat(block["code"][None], n_e * n_p, axis=0), "target": block["target"].reshape(-1, 3)}
    if "reference" in block:
        rows["reference"] = block["reference"].reshape(-1, 3)
    if "region" in block:
        rows["region"] = np.tile(block["region"], (n_e, 1))
    return rows


def _angular_errors_of(network, table) -> list[np.ndarray]:
    """The angular error (degrees) of ∇Z of a :class:`~ecgcohort.surrogate.network.LeadFieldNetwork`
    at every (electrode, row) of each patient of a block table, (E, P) per patient."""
    import torch

    from ecgcohort.surrogate.metrics import angular_error_deg

    device = next(network.parameters()).device
    errors = []
    with torch.no_grad():
        for patient in range(table.patients):
            batch = {k: v.to(device) for k, v in table.gather((patient, torch.arange(table.points))).items()}
            predicted = network.forward_leads(batch["x"], batch["electrodes"], batch["code"],
                                              region=batch.get("region")).reshape(-1, 3)
            predicted, target = predicted.float(), batch["target"]
            if "reference" in batch:
                predicted, target = predicted + batch["reference"], target + batch["reference"]
            errors.append(angular_error_deg(predicted.cpu().numpy(), target.cpu().numpy()).reshape(table.electrodes, -1))
    return errors


def training_row_sets(patient: str, points_file: str | Path, *, training_points: int | None, myocardial_count: int,
                      seed: int, heart_margin_mm: float) -> dict[str, np.ndarray]:
    """Masks over the rows of ``patient``'s training block (its kept sample points, then
    ``myocardial_count`` myocardial cells): ``rows`` every row, ``points`` the sample points (the
    evaluation's whole-torso set) and ``heart`` the sample points in the heart or within
    ``heart_margin_mm`` of its surface (the evaluation's heart set, Table 1's)."""
    with np.load(points_file) as data:
        region, distance_m = data["region"], data["distance_to_heart_m"]
    kept = training_point_subset(patient, len(region), training_points, seed)
    heart = (region[kept] == 1) | (distance_m[kept] <= heart_margin_mm * 1e-3)
    extra = np.zeros(myocardial_count, dtype=bool)
    return {"rows": np.ones(len(kept) + myocardial_count, dtype=bool), "points": np.concatenate([np.ones(len(kept), dtype=bool), extra]),
            "heart": np.concatenate([heart, extra])}


def mean_angle_by_row_set(errors: Sequence[np.ndarray], row_sets: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Per row set (:func:`training_row_sets`), the mean angular error (degrees) over every
    electrode and row of that set of every patient; ``errors`` (E, P) per patient."""
    names = row_sets[0].keys() if row_sets else ()
    return {name: float(np.mean(np.concatenate([error[:, rows[name]].ravel() for error, rows in zip(errors, row_sets)])))
            for name in names}


def trained_angles(model_path: str | Path, patients: Mapping[str, LeadFieldFiles], codes_csv: str | Path, *,
                   heart_margin_mm: float) -> dict[str, dict[str, float]]:
    """A trained surrogate's mean angular error (degrees) on its fitting and validation patients
    (``patients``: their files), measured again from the model file on the rows its training
    built (the same point subset and myocardial cells): ``{"fitting"|"validation": {set: angle}}``
    per :func:`training_row_sets` set (NaN for a split without patients). The angles the training
    job records, for a model file written before it recorded them."""
    from ecgcohort.surrogate.blocks import PatientBlockTable
    from ecgcohort.surrogate.model import load_surrogate, read_code_table

    surrogate = load_surrogate(model_path)
    section, metadata = surrogate.metadata["config"], surrogate.metadata
    codes = read_code_table(codes_csv, surrogate.encoding)
    surrogate.check_code_table(codes)
    kept = dict(training_points=section.get("training_points"), myocardial_count=int(section["myocardial_points"]),
                seed=section["seed"])
    angles = {}
    for split, ids in (("fitting", metadata["training_patients"]), ("validation", metadata["validation_patients"])):
        missing = [p for p in ids if p not in patients]
        if missing:
            raise KeyError(f"{model_path}: no files of its {split} patients {', '.join(missing)}")
        errors, row_sets = [], []
        for patient in ids:
            block = _patient_block(read_patient_lead_fields(patient, patients[patient]), patient, surrogate.spec,
                                   surrogate.box, codes, myocardial_count=kept["myocardial_count"],
                                   training_points=kept["training_points"], seed=kept["seed"])
            errors += _angular_errors_of(surrogate.network, PatientBlockTable([block]))
            row_sets.append(training_row_sets(patient, patients[patient].points, heart_margin_mm=heart_margin_mm,
                                              **kept))
        angles[split] = (mean_angle_by_row_set(errors, row_sets) if ids
                         else dict.fromkeys(("rows", "points", "heart"), float("nan")))
    return angles


def train_surrogate_job(patients: Mapping[str, LeadFieldFiles], codes_csv: str | Path, encoding: str, target: str,
                        section: Mapping[str, Any], sigma0: float, out_model: str | Path, out_losses: str | Path,
                        out_plot: str | Path, workdir: str | Path, *, heart_margin_mm: float,
                        memory_mb: float | None = None) -> None:
    """Train NN_LF (paper 1, sec. 2.3) for one encoding and target form on the training patients
    (``patients``: their files, :func:`group_lead_field_files`) minus a validation share
    (``validation_fraction``, seeded; the best validation epoch's weights are kept). Test
    patients are never read. The model file records the best weights' angular error on the
    fitting and validation patients over every training row, over the sample points and over the
    heart + ``heart_margin_mm`` sample points: the point sets the evaluation scores test patients on. σ0 in S/m. The training rows stay in memory when they fit the budget of
    the job's ``memory_mb`` (:func:`~ecgcohort.learning.device.memory_budget_bytes`), else they
    are streamed a patient per block."""
    import torch

    from ecgcohort.encoding.deepsdf import NormalisationBox
    from ecgcohort.learning import StreamedTable, TrainingSpec, fit, save_model
    from ecgcohort.learning.backbone import write_history
    from ecgcohort.learning.device import memory_budget_bytes, resolve_device
    from ecgcohort.learning.splits import validation_split
    from ecgcohort.surrogate.blocks import PatientBlockTable
    from ecgcohort.surrogate.model import read_code_table
    from ecgcohort.surrogate.network import SurrogateModel

    codes = read_code_table(codes_csv, encoding)
    train_ids = list(patients)
    fit_ids, validation_ids = validation_split(train_ids, section["validation_fraction"], section["seed"])
    if not fit_ids:
        raise ValueError("the cohort has no training patients to train the lead-field surrogate on")
    for patient in fit_ids + validation_ids:
        codes.code(patient)  # a KeyError naming the patient before any work
    log.info("surrogate (%s, %s): training on %d patients (%s), %d held out for validation (%s)", encoding, target,
             len(fit_ids), ", ".join(fit_ids), len(validation_ids), ", ".join(validation_ids) or "none")
    if len(fit_ids) < 2:
        log.warning("surrogate (%s, %s): fitted on one geometry, whose code does not vary: it cannot learn how the "
                    "lead field follows the geometry, and its errors on the test patients measure nothing of that "
                    "(cohort.train.count is %d)", encoding, target, len(train_ids))
    from ecgcohort.ecg.forward import read_lead_field_chunks

    # the normalisation box from the sample points alone: the lead fields and fibres (about
    # 200 MB a patient at 1.2 mm) are read once, when the patient's block is built
    low, high, shape = None, None, None
    for patient in fit_ids:
        with np.load(patients[patient].points) as points:
            points_mm = points["points_m"].astype(np.float64) * 1e3
        electrodes = len(read_lead_field_chunks(patients[patient].chunks, ())["electrode_names"])
        if shape is None:
            low, high, shape = points_mm.min(axis=0), points_mm.max(axis=0), (electrodes, len(points_mm))
        elif (electrodes, len(points_mm)) != shape:
            raise ValueError(f"patient {patient}: {(electrodes, len(points_mm))} electrodes x points, the first "
                             f"training patient {fit_ids[0]} has {shape}")
        else:
            low, high = np.minimum(low, points_mm.min(axis=0)), np.maximum(high, points_mm.max(axis=0))
    box = NormalisationBox.from_bounds(low, high, section["box_padding"])
    spec = surrogate_spec(section, len(codes.columns), target, sigma0)
    training = TrainingSpec.from_config(section["training"], seed=section["seed"])
    myocardial_count = int(section["myocardial_points"])
    training_points = section.get("training_points")
    points_per_patient = shape[1] if training_points is None else min(int(training_points), shape[1])
    per_patient = shape[0] * (points_per_patient + myocardial_count)
    device = resolve_device(training.device)
    resident = len(fit_ids) * per_patient * 4 * _PAIR_FLOATS <= memory_budget_bytes(device, job_mb=memory_mb)

    def block_of(patient: str) -> dict[str, np.ndarray]:
        return _patient_block(read_patient_lead_fields(patient, patients[patient]), patient, spec, box, codes,
                              myocardial_count=myocardial_count, training_points=training_points,
                              seed=section["seed"])

    def rows_of(index: int) -> dict[str, np.ndarray]:
        return _flat_rows(block_of(fit_ids[index]))

    def blocks(ids: Sequence[str]) -> PatientBlockTable:
        return PatientBlockTable.from_blocks((block_of(p) for p in ids), len(ids))

    table = blocks(fit_ids) if resident else StreamedTable(rows_of, [per_patient] * len(fit_ids))
    validation = blocks(validation_ids) if validation_ids else None
    model = SurrogateModel(spec)
    settings = {"spec": spec.to_config(), "normalisation": box.to_dict(), "patients": fit_ids,
                "encoding": encoding, "codes": codes.values[[codes.patients.index(p) for p in fit_ids]].tolist(),
                "files": {p: str(patients[p].points.parent.parent.resolve()) for p in fit_ids}}
    result = fit(model, table, training, workdir, validation=validation, settings=settings,
                 name=f"surrogate {encoding}/{target}")
    model.load_state_dict(result.best_state_dict)

    def row_sets(ids: Sequence[str]) -> list[dict[str, np.ndarray]]:
        return [training_row_sets(p, patients[p].points, training_points=training_points,
                                  myocardial_count=myocardial_count, seed=section["seed"],
                                  heart_margin_mm=heart_margin_mm) for p in ids]

    nan = dict.fromkeys(("rows", "points", "heart"), float("nan"))
    validation_angles = (mean_angle_by_row_set(_angular_errors_of(model.network, validation), row_sets(validation_ids))
                         if validation is not None else nan)
    # the fitting patients' own error, for the generalisation term of the error budget (resident only:
    # a streamed table is too large to sweep again)
    fitting_angles = mean_angle_by_row_set(_angular_errors_of(model.network, table), row_sets(fit_ids)) if resident else nan
    write_history(result.history, out_losses, out_plot, title=f"lead-field surrogate, {encoding} codes, {target}")
    save_model(out_model, result.best_state_dict, {
        "kind": "leadfield-surrogate", "config": dict(section), "encoding": encoding, "target": target,
        "code_columns": list(codes.columns), "spec": spec.to_config(), "normalisation": box.to_dict(),
        "training_patients": fit_ids, "validation_patients": validation_ids,
        # epochs trained: fewer than configured where training.patience ended the run
        "training": {"epochs": len(result.history), "epochs_configured": training.epochs,
                     "best_epoch": result.best_epoch,
                     "final_loss": result.history[-1]["loss"], "samples_per_second": result.samples_per_second,
                     "seconds": result.seconds, "device": result.device, "precision": result.precision,
                     "resumed_from_epoch": result.resumed_from_epoch, "resident": resident,
                     "rows_per_epoch": len(table), "heart_margin_mm": heart_margin_mm,
                     "validation_angular_error_deg": validation_angles["rows"],
                     "training_angular_error_deg": fitting_angles["rows"],
                     **{f"{split}_{name}_angular_error_deg": angles[name] for split, angles in
                        (("validation", validation_angles), ("fitting", fitting_angles)) for name in ("points", "heart")}},
    })
    log.info("surrogate (%s, %s): %d epochs in %.1f s on %s, %.0f samples/s, final loss %.4g, best epoch %d, "
             "angular error at the heart + %g mm points %.2f deg on the validation patients, %.2f deg on the fitting "
             "patients (every training row: %.2f, %.2f deg)", encoding, target,
             len(result.history), result.seconds, result.device, result.samples_per_second, result.history[-1]["loss"],
             result.best_epoch, heart_margin_mm, validation_angles["heart"], fitting_angles["heart"],
             validation_angles["rows"], fitting_angles["rows"])


# ---------------------------------------------------------------- evaluation of one test patient
def qrs_window(leads_v: np.ndarray, times_ms: np.ndarray, last_activation_ms: float, margin_ms: float,
               threshold: float) -> tuple[float, float]:
    """QRS onset and offset (ms) of a 12-lead ECG (12, T): the first and last time in
    [0, last activation + ``margin_ms``] at which the RMS over the leads reaches ``threshold``
    times its maximum there (the spatial-magnitude definition of QRS duration)."""
    inside = times_ms <= last_activation_ms + margin_ms
    rms = np.sqrt(np.mean(np.square(leads_v[:, inside]), axis=0))
    above = np.flatnonzero(rms >= threshold * rms.max())
    return float(times_ms[inside][above[0]]), float(times_ms[inside][above[-1]])


def qrs_differences(reference: np.ndarray, other: np.ndarray, times_ms: np.ndarray, last_activation_ms: float,
                    margin_ms: float, threshold: float) -> dict[str, float]:
    """QRS amplitude (peak to peak over the QRS window, per lead, mV) and duration (ms)
    differences of a 12-lead ECG ``other`` against ``reference`` (12, T, V): mean over leads of
    |Δ amplitude| in mV and relative to the reference amplitude, and |Δ duration|."""
    window = times_ms <= last_activation_ms + margin_ms
    amplitude_ref = np.ptp(reference[:, window], axis=1) * 1e3
    amplitude = np.ptp(other[:, window], axis=1) * 1e3
    onset_r, offset_r = qrs_window(reference, times_ms, last_activation_ms, margin_ms, threshold)
    onset, offset = qrs_window(other, times_ms, last_activation_ms, margin_ms, threshold)
    return {"qrs_amplitude_difference_mv": float(np.mean(np.abs(amplitude - amplitude_ref))),
            "qrs_amplitude_relative_difference": float(np.mean(np.abs(amplitude - amplitude_ref) / amplitude_ref)),
            "qrs_duration_ms": offset - onset, "qrs_duration_reference_ms": offset_r - onset_r,
            "qrs_duration_difference_ms": abs((offset - onset) - (offset_r - onset_r))}


def _field_errors(predicted: np.ndarray, fem: np.ndarray, heart: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Angular (degrees) and relative magnitude errors of ∇Z (E, P, 3) against FEM: means over
    the torso and over the heart + margin, for all electrodes, per electrode and for V1–V6."""
    from ecgcohort.surrogate.metrics import angular_error_deg, relative_magnitude_error

    angle = angular_error_deg(predicted, fem)
    magnitude = relative_magnitude_error(predicted, fem)
    precordial = [names.index(n) for n in PRECORDIAL if n in names]
    return {
        "angle": angle, "magnitude": magnitude,
        "summary": {
            "angular_error_torso_deg": float(angle.mean()),
            "angular_error_heart_deg": float(angle[:, heart].mean()),
            "angular_error_precordial_heart_deg": float(angle[precordial][:, heart].mean()) if precordial else np.nan,
            "magnitude_error_torso": float(magnitude.mean()),
            "magnitude_error_heart": float(magnitude[:, heart].mean()),
            "per_electrode": {name: {"angular_error_heart_deg": float(angle[j, heart].mean()),
                                     "angular_error_torso_deg": float(angle[j].mean()),
                                     "magnitude_error_heart": float(magnitude[j, heart].mean())}
                              for j, name in enumerate(names)},
        },
    }


def _jsonable(transfer: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, list[float]]]:
    return {phase: {key: np.asarray(values, dtype=float).tolist() for key, values in result.items()}
            for phase, result in transfer.items()}


def _best_time(call, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return float(best)


def evaluate_surrogate_job(*, patient: str, store: str | Path, model_path: str | Path, codes_csv: str | Path,
                           evaluation: Mapping[str, Any], conductivities: Mapping[str, float],
                           duration_ms: float, dt_ms: float, cycle_length_ms: float, template_cache_dir: str | Path,
                           out_json: str | Path, out_npz: str | Path) -> None:
    """Evaluate a trained surrogate on one held-out patient of ``store`` (the cohort store or the
    patient's part of it) against its FEM lead
    field, with the pseudo lead field (eq. 11, σ0 of ``conductivities``) on the same points:

    * ∇Z at every sample point: angular and relative magnitude errors over the torso and over
      the heart + ``evaluation.heart_margin_mm`` (myocardial points and points that close to the
      heart surface), per electrode and for V1–V6;
    * ECGs of every activation scenario from the surrogate's ∇Z per myocardial cell through the
      FEM path's lead matrix and φ = L V_m: relative ℓ2 per lead against the FEM ECG, QRS
      amplitude and duration differences. The FEM ECG is recomputed from the stored lead matrix
      and must equal the stored one of V_m at the mesh's nodes (a check that template and
      settings match the dataset);
    * the ECG transfer (:func:`~ecgcohort.surrogate.transfer.ecg_transfer`) of every scenario:
      per phase and lead, the ECG error beside the source-weighted error of the lead's field,
      its magnitude and direction parts and the difference gain; and the unweighted errors of
      ∇Z per myocardial cell;
    * timings: one lead at ``evaluation.timing_points`` points, all leads at the sample points,
      the lead matrix; the FEM time per lead from the patient's lead-field statistics.

    Writes a JSON summary and an npz of the per-point errors and ECGs for the figures."""
    import torch

    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.maps import ActivationMap
    from ecgcohort.dataset import open_cohort, open_patient_mesh
    from ecgcohort.ecg.forward import time_grid_ms
    from ecgcohort.ecg.pseudo import pseudo_lead_field_gradient, pseudo_lead_matrix
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors
    from ecgcohort.surrogate.metrics import relative_l2
    from ecgcohort.ecg.leads import standard_leads
    from ecgcohort.surrogate.model import load_surrogate, read_code_table
    from ecgcohort.surrogate.transfer import (Myocardium, cell_errors, qrs_and_t_phases, source_weights,
                                             transfer_fields, transfer_of_signals)

    cohort = open_cohort(store)
    if patient not in cohort.patient.values:
        raise KeyError(f"patient {patient} is not in {store}")
    surrogate = load_surrogate(model_path, device=evaluation["device"])
    if patient in surrogate.metadata["training_patients"]:
        raise ValueError(f"patient {patient} trained the surrogate {model_path}: evaluate held-out patients only")
    codes = read_code_table(codes_csv, surrogate.encoding)
    surrogate.check_code_table(codes)
    code = codes.code(patient)
    sigma = Conductivities.from_config(conductivities)
    if not np.isclose(sigma.torso, surrogate.spec.sigma0):
        raise ValueError(f"the surrogate was trained with sigma0 = {surrogate.spec.sigma0} S/m, the config's torso "
                         f"conductivity is {sigma.torso} S/m")
    one = cohort.sel(patient=patient).compute()
    names = [str(n) for n in cohort.electrode.values]
    points = one.sample_points.values
    electrodes_m = one.electrode_position.values
    normalised = one.electrode_normalised_position.values
    fem = one.grad_lead_field.values.astype(np.float64)
    region = one.sample_region.values
    heart = (region == 1) | (one.distance_to_heart.values <= evaluation["heart_margin_mm"] * 1e-3)

    start = time.perf_counter()
    predicted = surrogate.gradient(points, electrodes_m, normalised, code, batch_size=evaluation["batch_size"],
                                   region=region)
    all_leads_s = time.perf_counter() - start
    pseudo = pseudo_lead_field_gradient(electrodes_m, points, sigma.torso)
    errors = {"surrogate": _field_errors(predicted, fem, heart, names), "pseudo": _field_errors(pseudo, fem, heart, names)}

    mesh = open_patient_mesh(store, patient).compute()
    nodes_m, tetrahedra = mesh.node_position.values, mesh.tetrahedra.values
    # the cells' mean fibre structure, as the FEM lead matrix (datasets before it held centroid fibres)
    fibres = mesh.fibre_structure if "fibre_structure" in mesh else mesh.fibre_direction
    intracellular = intracellular_tensors(fibres.values, sigma)
    myocardium = Myocardium(nodes_m, tetrahedra, intracellular)
    start = time.perf_counter()
    cell_gradients = {"surrogate": surrogate.cell_gradient(nodes_m, tetrahedra, electrodes_m, normalised, code,
                                                           batch_size=evaluation["batch_size"])}
    matrices = {"fem": mesh.lead_matrix.values, "surrogate": myocardium.lead_matrix(cell_gradients["surrogate"])}
    lead_matrix_s = time.perf_counter() - start
    matrices["pseudo"] = pseudo_lead_matrix(electrodes_m, nodes_m, tetrahedra, intracellular, sigma.torso)
    cell_gradients["pseudo"] = pseudo_lead_field_gradient(electrodes_m, nodes_m[tetrahedra].mean(axis=1), sigma.torso)
    fem_cells = mesh.grad_lead_field_cell.values.astype(np.float64)
    # the electrodes whose per-cell ∇Z the store kept (leadfield.cell_gradient_electrodes): the
    # 12-lead's always, so the transfer's leads are whole either way
    kept = np.flatnonzero(np.isfinite(fem_cells).all(axis=(1, 2)))
    kept = slice(None) if len(kept) == len(fem_cells) else kept  # a view, not a copy of the (E, C, 3) arrays
    transfer = {kind: {"cells": cell_errors(cell_gradients[kind][kept], fem_cells[kept])} for kind in ("surrogate", "pseudo")}
    # the transfer's lead matrices do not depend on the beat: built once, not per scenario
    fields = {kind: transfer_fields(myocardium, fem_cells, cell_gradients[kind], names) for kind in ("surrogate", "pseudo")}
    # every lead matrix of a beat (the three ECGs', the transfer's) in one product per scenario:
    # V_m (400 MB at a 1.2 mm heart) read once instead of 11 times
    blocks = {("ecg", kind): matrix for kind, matrix in matrices.items()}
    blocks.update({(kind, name): matrix for kind in fields for name, matrix in fields[kind].matrices.items()})
    stacked = np.vstack(list(blocks.values()))
    bounds = np.cumsum([0] + [len(matrix) for matrix in blocks.values()])
    template = action_potential_template(cycle_length_ms, cache_dir=template_cache_dir)
    times_ms = time_grid_ms(duration_ms, dt_ms)
    scenarios = [str(s) for s in cohort.scenario.values]
    ecgs = {kind: {"unipolar": [], "leads": []} for kind in matrices}
    ecg_summary = {"surrogate": {}, "pseudo": {}}
    # one V_m buffer for every scenario: 400 MB at a 1.2 mm heart, and fresh memory is dear
    vm_buffer = np.empty((len(nodes_m), len(times_ms)))
    for scenario in scenarios:
        activation_ms = mesh.activation_time.sel(scenario=scenario).values * 1e3
        apd = mesh.apd_scale.sel(scenario=scenario).values
        spread = mesh.upstroke_spread.sel(scenario=scenario).values * 1e3 if "upstroke_spread" in mesh else None
        # one V_m per scenario for every lead matrix and the transfer (it was built four times)
        vm = ActivationMap(scenario=scenario, kind="", activation_ms=activation_ms, apd_scale=apd,
                           sites_mm=np.zeros((0, 3)), site_times_ms=np.zeros(0),
                           upstroke_ms=spread).transmembrane_potential_mv(times_ms, template, out=vm_buffer)
        products = stacked @ vm
        signals = {key: products[bounds[k]:bounds[k + 1]] for k, key in enumerate(blocks)}
        for kind in matrices:
            unipolar = signals[("ecg", kind)] * 1e-3  # mV -> V: the lead matrix is dimensionless
            ecgs[kind]["unipolar"].append(unipolar)
            ecgs[kind]["leads"].append(standard_leads(unipolar, names))
        # the stored ECG of V_m at the mesh's nodes, as recomputed here (lead_ecg may carry it on a finer grid)
        stored = (one.lead_ecg_mesh_vm if "lead_ecg_mesh_vm" in one else one.lead_ecg).sel(scenario=scenario).values
        mismatch = float(np.max(relative_l2(ecgs["fem"]["leads"][-1], stored)))
        if mismatch > 1e-6:
            raise ValueError(f"patient {patient}, {scenario}: the FEM ECG recomputed from the stored lead matrix "
                             f"differs from the dataset's by {mismatch:.2e} (relative l2); the ECG settings differ "
                             "from the dataset's")
        phases = qrs_and_t_phases(times_ms, float(activation_ms.max()), evaluation["qrs_margin_ms"])
        weights = source_weights(myocardium, vm, phases)
        for kind in ("surrogate", "pseudo"):
            transfer[kind][scenario] = _jsonable(transfer_of_signals(
                fields[kind], {name: signals[(kind, name)] for name in fields[kind].matrices}, phases, weights))
            leads, reference = ecgs[kind]["leads"][-1], ecgs["fem"]["leads"][-1]
            per_lead = relative_l2(leads, reference)
            ecg_summary[kind][scenario] = {
                "relative_l2_per_lead": dict(zip(_lead_names(), per_lead.tolist())),
                "relative_l2_mean": float(per_lead.mean()),
                "unipolar_rmse_mv": (np.sqrt(np.mean(np.square(ecgs[kind]["unipolar"][-1]
                                                               - ecgs["fem"]["unipolar"][-1]), axis=1)) * 1e3).tolist(),
                **qrs_differences(reference, leads, times_ms, float(activation_ms.max()), evaluation["qrs_margin_ms"],
                                  evaluation["qrs_threshold"]),
            }

    one_lead_points = np.resize(points, (evaluation["timing_points"], 3))
    one_lead_region = np.resize(region, evaluation["timing_points"])
    per_lead_s = _best_time(lambda: surrogate.gradient(one_lead_points, electrodes_m[:1], normalised[:1], code,
                                                       batch_size=evaluation["timing_points"], region=one_lead_region))
    stats = json.loads(mesh.attrs.get("leadfield_stats", "[]"))
    solved = sum(s["electrodes_solved"] for s in stats) or 1
    timing = {
        "device": str(next(surrogate.network.parameters()).device), "threads": torch.get_num_threads(),
        "surrogate_one_lead_s": per_lead_s, "timing_points": evaluation["timing_points"],
        "surrogate_all_leads_sample_points_s": all_leads_s, "sample_points": len(points), "electrodes": len(names),
        "surrogate_lead_matrix_s": lead_matrix_s, "myocardial_cells": len(tetrahedra),
        "fem_total_s_per_lead": sum(s["total_s"] for s in stats) / solved,
        "fem_marginal_s_per_lead": sum(s["solve_s"] + s["gradients_s"] for s in stats) / solved,
    }
    summary = {
        "patient": patient, "split": str(one.split.values), "encoding": surrogate.encoding,
        "target": surrogate.metadata["target"], "model": str(model_path),
        "outlier": codes.is_outlier(patient), "mahalanobis": float(codes.mahalanobis[codes.patients.index(patient)]),
        "heart_margin_mm": evaluation["heart_margin_mm"], "heart_points": int(heart.sum()),
        "timing": timing,
    }
    for kind in ("surrogate", "pseudo"):
        summary[kind] = {**errors[kind]["summary"], "ecg": ecg_summary[kind],
                         "ecg_relative_l2_mean": float(np.mean([s["relative_l2_mean"] for s in ecg_summary[kind].values()])),
                         "ecg_transfer": transfer[kind]}
    _write_json(out_json, summary)
    with atomic_path(out_npz) as temporary, open(temporary, "wb") as stream:
        np.savez_compressed(
            stream, patient=np.array(patient), electrode_names=np.array(names),
            electrode_kinds=np.array([str(k) for k in cohort.electrode_kind.values]),
            electrode_normalised=normalised, heart=heart, scenarios=np.array(scenarios), time_s=times_ms * 1e-3,
            **{f"angle_{kind}": errors[kind]["angle"].astype(np.float32) for kind in errors},
            **{f"magnitude_{kind}": errors[kind]["magnitude"].astype(np.float32) for kind in errors},
            **{f"leads_{kind}": np.array(ecgs[kind]["leads"]) for kind in ecgs},
            **{f"unipolar_{kind}": np.array(ecgs[kind]["unipolar"]) for kind in ecgs})
    log.info("patient %s (%s, %s): angular error heart %.2f deg (pseudo %.2f), precordial %.2f (pseudo %.2f), ECG "
             "relative l2 %.3f (pseudo %.3f); one lead at %d points in %.3f s, FEM %.3f s per lead",
             patient, surrogate.encoding, summary["target"], summary["surrogate"]["angular_error_heart_deg"],
             summary["pseudo"]["angular_error_heart_deg"], summary["surrogate"]["angular_error_precordial_heart_deg"],
             summary["pseudo"]["angular_error_precordial_heart_deg"], summary["surrogate"]["ecg_relative_l2_mean"],
             summary["pseudo"]["ecg_relative_l2_mean"], evaluation["timing_points"], per_lead_s,
             timing["fem_total_s_per_lead"])


def ground_truth_errors(*, surrogate: np.ndarray, fem: np.ndarray, reference: np.ndarray,
                        myocardium: np.ndarray) -> dict[str, float]:
    """The ground-truth term of the error budget at fixed points: mean ∇Z angle (degrees) and
    relative magnitude error over the electrodes and the ``myocardium`` points (P,) of the
    dataset mesh's FEM against the converged ``reference``, of the surrogate against that FEM, and
    of the surrogate against the reference (arrays (E, P, 3), any one unit)."""
    from ecgcohort.convergence.summary import gradient_errors

    pairs = {"fem_vs_reference": (reference, fem), "surrogate_vs_fem": (fem, surrogate),
             "surrogate_vs_reference": (reference, surrogate)}
    errors = {}
    for name, (truth, other) in pairs.items():
        angle, magnitude = gradient_errors(truth[:, myocardium], other[:, myocardium])
        errors[f"{name}_angle_deg"], errors[f"{name}_magnitude"] = angle, magnitude
    return errors


def surrogate_ground_truth_job(*, patient: str, electrodes_csv: str | Path, leadfield_chunks: Sequence[str | Path],
                               model_path: str | Path, codes_csv: str | Path, points_npz: str | Path,
                               dataset_level_npz: str | Path, reference_level_npz: str | Path, device: str,
                               out_json: str | Path) -> None:
    """The surrogate of ``model_path`` on one held-out patient at the convergence stage's
    evaluation points, against the FEM ∇Z of the dataset's mesh (P1, ``dataset_level_npz``) and
    the converged reference (recovered ∇Z of ``reference_level_npz``), for the nine electrodes
    of the 12-lead ECG (positions from the patient's ``electrodes_csv`` and lead-field chunks, as
    the surrogate saw them in training): :func:`ground_truth_errors` as a JSON summary."""
    from ecgcohort.ecg.forward import read_electrode_table, read_lead_field_chunks
    from ecgcohort.ecg.leads import lead_electrode_indices
    from ecgcohort.surrogate.model import load_surrogate, read_code_table

    surrogate = load_surrogate(model_path, device=device)
    if patient in surrogate.metadata["training_patients"]:
        raise ValueError(f"patient {patient} trained the surrogate {model_path}: evaluate held-out patients only")
    codes = read_code_table(codes_csv, surrogate.encoding)
    surrogate.check_code_table(codes)
    electrodes = read_electrode_table(electrodes_csv)
    chunks = read_lead_field_chunks(leadfield_chunks, ("electrode_positions_m",))
    if list(chunks["electrode_names"].astype(str)) != list(electrodes.names):
        raise ValueError(f"patient {patient}: the lead-field chunks' electrodes differ from {electrodes_csv}")
    lead = lead_electrode_indices(list(electrodes.names))
    positions_m = chunks["electrode_positions_m"][lead].astype(np.float64)
    normalised = electrodes.normalised[lead].astype(np.float64)
    with np.load(points_npz) as points, np.load(dataset_level_npz) as level, np.load(reference_level_npz) as finest:
        points_m, points_region = points["points_mm"] * 1e-3, points["region"]
        myocardium = points_region == 1
        fem, reference = level["grad_points_p1"].astype(np.float64), finest["grad_points_recovered"].astype(np.float64)
    # the convergence stage's points are tagged 1 myocardium, 2 outside the heart (torso); only the
    # myocardial ones are compared
    predicted = surrogate.gradient(points_m, positions_m, normalised, codes.code(patient), region=points_region)
    errors = ground_truth_errors(surrogate=predicted, fem=fem, reference=reference, myocardium=myocardium)
    log.info("patient %s, %s %s: %s", patient, surrogate.encoding, surrogate.metadata["target"],
             json.dumps({key: round(value, 3) for key, value in errors.items()}))
    _write_json(out_json, {"patient": patient, "encoding": surrogate.encoding, "target": surrogate.metadata["target"],
                           "myocardial_points": int(myocardium.sum()), **errors})


def _lead_names() -> list[str]:
    from ecgcohort.ecg.leads import LEAD_NAMES

    return list(LEAD_NAMES)
