"""The inverse benchmark's workflow jobs: per patient the surfaces and the transfer matrix of its
own mesh, per patient and mismatch the inversion's model, per patient and source the ground
truth, per patient, source and method the reconstructions in every setting (mismatch and
noise) and repeat; the fan-in is in :mod:`ecgcohort.inverse.report`."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.inverse.dynamics import MODEL_SOURCE, DynamicsSpec, HeartDynamics, aliev_panfilov_dynamics
from ecgcohort.inverse.methods import NEURAL_METHODS, reconstruct
from ecgcohort.inverse.metrics import (activation_errors, activation_times, correlation_coefficient,
                                       localisation_error, mean_squared_error, relative_error, spatial_correlation,
                                       temporal_correlation)
from ecgcohort.inverse.models import Mismatch
from ecgcohort.inverse.noise import NoiseModel, noisy_maps
from ecgcohort.inverse.problem import InverseError, SurfaceMesh
from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)

#: seconds of model time after the last activation that still count as depolarisation
DEPOLARISATION_MARGIN = 1.0
#: the heart-surface potential's unit the methods see: a cohort scenario's φ (mV) divided by the
#: action potential's amplitude (TP06, 100 mV), so that the Aliev–Panfilov prior of the
#: EP-informed methods (u of order 1) meets data of its own order; the estimates are scaled back
ACTION_POTENTIAL_MV = 100.0
METRIC_COLUMNS = ("patient", "source", "method", "setting", "mismatch", "noise", "snr_db", "repeat", "quantity",
                  "status", "re", "mse", "cc", "re_depolarisation", "spatial_cc", "temporal_cc", "activation_mae_ms",
                  "activation_cc", "localisation_mm", "seconds")
#: what a method reconstructs (the ``quantity`` column): the heart-surface potential, or the
#: normalised transmembrane potential of the EP-informed methods (their prior's u); each is scored
#: against the truth's own value of that quantity
POTENTIAL, EXCITATION = "potential", "excitation"


def inverse_surfaces_job(*, patient: str, mesh_path: str | Path, electrodes_csv: str | Path | None,
                         heart_nodes: int, heart_offset_mm: float, body: Mapping[str, Any],
                         out_surfaces: str | Path, out_preview: str | Path) -> None:
    """Remesh the patient's closed heart surface and pick the measurement points (rule
    ``inverse_surfaces``). ``electrodes_csv`` is read only where the measurement points are the
    electrodes."""
    from ecgcohort.ecg.forward import read_electrode_table
    from ecgcohort.inverse.figures import plot_surfaces
    from ecgcohort.inverse.surfaces import inverse_surfaces
    from ecgcohort.meshing.tetra import read_tagged_mesh

    try:
        electrodes = read_electrode_table(electrodes_csv) if electrodes_csv is not None else None
        surfaces = inverse_surfaces(read_tagged_mesh(mesh_path), heart_nodes, body["source"], body["nodes"],
                                    None if electrodes is None else np.array(electrodes.names),
                                    None if electrodes is None else electrodes.positions_mm,
                                    heart_offset_mm=heart_offset_mm)
    except InverseError as error:
        raise InverseError(f"patient {patient}: {error}") from None
    surfaces.save(out_surfaces)
    plot_surfaces(surfaces, None, out_preview, title=f"{patient}: heart {len(surfaces.heart.points)} nodes, "
                  f"{len(surfaces.measurement_points)} measurement points")


def transfer_matrix_job(*, patient: str, mesh_path: str | Path, surfaces_npz: str | Path, heart_offset_mm: float,
                        transfer: Mapping[str, Any], out_transfer: str | Path, out_preview: str | Path) -> None:
    """R of the patient's own mesh between the stored surfaces (rule ``transfer_matrix``; the
    Aliev–Panfilov source's body maps are made with it)."""
    from ecgcohort.inverse.figures import plot_surfaces
    from ecgcohort.inverse.surfaces import load_surfaces, reconstruction_surface
    from ecgcohort.inverse.transfer import patient_transfer_matrix
    from ecgcohort.meshing.tetra import read_tagged_mesh

    surfaces = load_surfaces(surfaces_npz)
    try:
        mesh = read_tagged_mesh(mesh_path)
        capped, _ = reconstruction_surface(mesh, heart_offset_mm)
        matrix, stats = patient_transfer_matrix(mesh, surfaces.heart, capped, surfaces.measurement_points,
                                                block=transfer["block"],
                                                row_sum_tolerance=transfer["row_sum_tolerance"],
                                                max_projection_mm=transfer["max_projection_mm"])
    except InverseError as error:
        raise InverseError(f"patient {patient}: {error}") from None
    with atomic_path(out_transfer) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, transfer=matrix, stats=json.dumps(stats.as_dict()))
    plot_surfaces(surfaces, matrix, out_preview, title=f"{patient}: R of the patient's mesh, "
                  f"{matrix.shape[0]} × {matrix.shape[1]}")


def load_transfer(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(R (m, n), its :class:`~ecgcohort.inverse.transfer.TransferStats` as a dict) of a job's file."""
    with np.load(path) as data:
        return data["transfer"], json.loads(str(data["stats"]))


def save_dynamics(path: str | Path, dynamics: HeartDynamics, clean_bspm: np.ndarray,
                  reciprocity: Mapping[str, Any] | None = None) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, source=dynamics.source, times=dynamics.times, u=dynamics.u, activation=dynamics.activation,
                 v=np.zeros((0, 0)) if dynamics.v is None else dynamics.v, clean_bspm=clean_bspm,
                 excitation=np.zeros((0, 0)) if dynamics.excitation is None else dynamics.excitation,
                 units=dynamics.units, polarity=dynamics.polarity,
                 electrogram_activation=(np.zeros(0) if dynamics.electrogram_activation is None
                                         else dynamics.electrogram_activation),
                 sites_mm=dynamics.sites_mm, reciprocity=json.dumps(dict(reciprocity or {})))


def load_dynamics(path: str | Path) -> tuple[HeartDynamics, np.ndarray]:
    """(the ground truth, the noise-free body-surface maps (m, T)) of a ``heart_surface_dynamics``
    file."""
    with np.load(path) as data:
        v = data["v"] if data["v"].size else None
        excitation = data["excitation"] if "excitation" in data.files and data["excitation"].size else None
        return (HeartDynamics(str(data["source"]), data["times"], data["u"], data["activation"], v,
                              units=str(data["units"]), polarity=str(data["polarity"]),
                              electrogram_activation=data["electrogram_activation"],
                              sites_mm=data["sites_mm"].reshape(-1, 3), excitation=excitation),
                data["clean_bspm"])


def load_reciprocity(path: str | Path) -> dict[str, Any]:
    """The reciprocity figures of a ``heart_surface_dynamics`` file (empty for the model source)."""
    with np.load(path) as data:
        return json.loads(str(data["reciprocity"]))


def heart_surface_dynamics_job(*, patient: str, source: str, surfaces_npz: str | Path, transfer_npz: str | Path | None,
                               anatomy_json: str | Path, scenario: Mapping[str, Any] | None,
                               dynamics: Mapping[str, Any], template_cache_dir: str | Path,
                               out_npz: str | Path, out_preview: str | Path) -> None:
    """The ground truth of one source (rule ``heart_surface_dynamics``): the Aliev–Panfilov
    model's u on the heart surface with y = R u through ``transfer_npz`` (the patient's own
    mesh), or a cohort scenario's extracellular potential from the 3-D solve. ``scenario``
    holds the scenario's inputs and the lead fields' settings: ``mesh``, ``fibres``,
    ``activation`` (the patient's map of the scenario, :func:`ecgcohort.conduction.maps.save_activation`),
    ``action_potential`` (its ``cycle_length_ms`` sets the template), ``electrodes`` (the
    standard electrodes' table, for the reciprocity check), ``conductivities``,
    ``low_rank_tolerance``, ``electrode_tolerance_mm``, ``cell_gradient``."""
    from ecgcohort.inverse.figures import plot_dynamics
    from ecgcohort.inverse.surfaces import load_surfaces

    spec = DynamicsSpec.from_config(dynamics)
    surfaces = load_surfaces(surfaces_npz)
    reciprocity: dict[str, Any] = {}
    try:
        if source == MODEL_SOURCE:
            if transfer_npz is None:
                raise InverseError("the model source needs the transfer matrix of the patient's mesh")
            frame = json.loads(Path(anatomy_json).read_text())["measures"]
            truth = aliev_panfilov_dynamics(surfaces.heart, spec, frame)
            truth = HeartDynamics(truth.source, truth.times, truth.u, truth.activation, truth.v,
                                  electrogram_activation=activation_times(truth.u, truth.times, "transmembrane"))
            clean = load_transfer(transfer_npz)[0] @ truth.u
        else:
            if scenario is None:
                raise InverseError("a cohort scenario needs its mesh, fibres, heart surface, Purkinje junctions and "
                                   "electrodes")
            result = _scenario_truth(source, surfaces, spec, scenario, template_cache_dir)
            truth, clean, reciprocity = result.dynamics, result.body, result.reciprocity
    except InverseError as error:
        raise InverseError(f"patient {patient}, source {source}: {error}") from None
    log.info("%s %s: %d nodes × %d instants, activation %.2f–%.2f time units, u in [%.3f, %.3f] %s", patient, source,
             *truth.u.shape, np.nanmin(truth.activation), np.nanmax(truth.activation), truth.u.min(), truth.u.max(),
             truth.units)
    save_dynamics(out_npz, truth, clean, reciprocity)
    plot_dynamics(surfaces.heart, truth, out_preview, title=f"{patient}: {source}")


def _scenario_truth(source: str, surfaces, spec: DynamicsSpec, scenario: Mapping[str, Any],
                    template_cache_dir: str | Path):
    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.maps import load_activation
    from ecgcohort.ecg.forward import read_electrode_table
    from ecgcohort.fibers.rule_based import load_fibres
    from ecgcohort.inverse.extracellular import ExtracellularSolver, Myocardium, scenario_truth
    from ecgcohort.leadfield.tensors import Conductivities

    activation = load_activation(scenario["activation"])
    if activation.scenario != source:
        raise InverseError(f"{scenario['activation']} holds the map of {activation.scenario!r}, not of {source!r}")
    fibres = load_fibres(scenario["fibres"])
    if len(activation.activation_ms) != fibres.n_nodes:
        raise InverseError(f"the map {scenario['activation']} has {len(activation.activation_ms)} nodes, the fibres "
                           f"{scenario['fibres']} {fibres.n_nodes}: files of different meshes")
    template = action_potential_template(float(scenario["action_potential"]["cycle_length_ms"]),
                                         cache_dir=template_cache_dir)
    solver = ExtracellularSolver(scenario["mesh"], Conductivities.from_config(scenario["conductivities"]),
                                 Myocardium.from_fibres(fibres), low_rank_tolerance=scenario["low_rank_tolerance"],
                                 max_electrode_offset_mm=scenario["electrode_tolerance_mm"])
    electrodes = read_electrode_table(scenario["electrodes"]).positions_mm
    return scenario_truth(solver, activation=activation, template=template, spec=spec,
                          heart_points_mm=surfaces.heart.points, measurement_points_mm=surfaces.measurement_points,
                          electrodes_mm=electrodes, cell_gradient=scenario["cell_gradient"])


def save_model(path: str | Path, model) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, transfer=model.transfer, heart_points_mm=model.heart.points, heart_faces=model.heart.faces,
                 measurement_points_mm=model.measurement_points, mismatch=json.dumps(model.mismatch.as_dict()),
                 figures=json.dumps(model.figures),
                 vm_transfer=np.zeros((0, 0)) if model.vm_transfer is None else model.vm_transfer)


def load_model(path: str | Path):
    """The :class:`~ecgcohort.inverse.models.InversionModel` of an ``inversion_model`` file."""
    from ecgcohort.inverse.models import InversionModel

    with np.load(path) as data:
        mismatch = json.loads(str(data["mismatch"]))
        vm_transfer = data["vm_transfer"] if "vm_transfer" in data.files and data["vm_transfer"].size else None
        return InversionModel(Mismatch(**mismatch), data["transfer"],
                              SurfaceMesh(data["heart_points_mm"], data["heart_faces"]),
                              data["measurement_points_mm"], json.loads(str(data["figures"])), vm_transfer)


def inversion_model_job(*, patient: str, mismatch: str, section: Mapping[str, Any] | None, seed: int,
                        surfaces_npz: str | Path, mesh_path: str | Path, inversion: Mapping[str, Any],
                        transfer: Mapping[str, Any], out_npz: str | Path) -> None:
    """The inversion's model of one patient under one mismatch (rule ``inversion_model``): the
    patient's heart surface moved as ``section`` says, the body surface of the truth's mesh
    remeshed to ``inversion.body_nodes``, the torso between meshed at
    ``inversion.element_size_mm``, R checked (R·1 = 1), and on the same geometry the V_m-based
    operator of the EP-informed methods (equivalent double layer of ``inversion.double_layer_mv``).
    Directions are drawn from the patient's seed stream of that mismatch."""
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.inverse.models import inversion_model
    from ecgcohort.inverse.surfaces import body_surface, load_surfaces
    from ecgcohort.meshing.tetra import read_tagged_mesh

    surfaces = load_surfaces(surfaces_npz)
    try:
        body = body_surface(read_tagged_mesh(mesh_path))
        spec = Mismatch.from_config(mismatch, section)
        model = inversion_model(surfaces.heart, body, surfaces.measurement_points,
                                spec, patient_rng(seed, patient, f"inverse-mismatch/{mismatch}"),
                                body_nodes=inversion["body_nodes"], element_size_mm=inversion["element_size_mm"],
                                max_projection_mm=transfer["max_projection_mm"],
                                row_sum_tolerance=transfer["row_sum_tolerance"],
                                double_layer_mv=inversion["double_layer_mv"])
    except InverseError as error:
        raise InverseError(f"patient {patient}: {error}") from None
    save_model(out_npz, model)


def depolarisation_instants(dynamics: HeartDynamics) -> np.ndarray:
    """Boolean (T,): the instants up to the last activation plus :data:`DEPOLARISATION_MARGIN`."""
    return dynamics.times <= np.nanmax(dynamics.activation) + DEPOLARISATION_MARGIN


def setting_name(mismatch: str, noise: str) -> str:
    """The benchmark row of one mismatch and one noise model, e.g. ``shift_10mm/snr30``."""
    return f"{mismatch}/{noise}"


def _scores(estimate: np.ndarray, reference: np.ndarray, reference_activation: np.ndarray, polarity: str,
            truth: HeartDynamics, spec: DynamicsSpec, heart_points_mm: np.ndarray, columns: int) -> dict:
    """The metrics of one estimate (n, T) against ``reference`` (n, T), the truth's value of the
    quantity the method reconstructs, over the record's first ``columns`` instants (a network's
    window); activation times detected from the estimate with ``polarity`` against
    ``reference_activation`` (n,), the same detector's on the reference (model time units)."""
    estimate, reference = estimate[:, :columns], reference[:, :columns]
    times = truth.times[:columns]
    early = depolarisation_instants(truth)[:columns]
    detected = activation_times(estimate, times, polarity)
    mae, correlation = activation_errors(detected * spec.time_unit_ms, reference_activation * spec.time_unit_ms)
    spatial = spatial_correlation(estimate[:, early], reference[:, early])
    return {"re": relative_error(estimate, reference), "mse": mean_squared_error(estimate, reference),
            "cc": correlation_coefficient(estimate, reference),
            "re_depolarisation": relative_error(estimate[:, early], reference[:, early]),
            "spatial_cc": float(np.nanmean(spatial)) if np.isfinite(spatial).any() else float("nan"),
            "temporal_cc": float(np.nanmedian(temporal_correlation(estimate, reference))),
            "activation_mae_ms": mae, "activation_cc": correlation,
            "localisation_mm": (localisation_error(detected, heart_points_mm, truth.sites_mm[0])
                                if len(truth.sites_mm) == 1 else float("nan"))}


#: the metrics a failed repeat leaves empty (it is reported, never scored)
SCORED = ("re", "mse", "cc", "re_depolarisation", "spatial_cc", "temporal_cc", "activation_mae_ms", "activation_cc",
          "localisation_mm")


def reconstruct_job(*, patient: str, source: str, method: str, seed: int, surfaces_npz: str | Path,
                    dynamics_npz: str | Path, model_npzs: Mapping[str, str | Path],
                    settings: Sequence[Mapping[str, str]], noise_models: Mapping[str, Mapping[str, Any] | None],
                    repeats: int, method_config: Mapping[str, Any], dynamics: Mapping[str, Any],
                    workdir: str | Path, out_csv: str | Path, out_npz: str | Path) -> None:
    """Every setting (a mismatch's model from ``model_npzs`` and a noise model) and repeat of one
    method (rule ``reconstruct_inverse``). The data: the truth's own body maps, or, for a
    ``crime`` mismatch, the inversion's own operator applied to the truth. Each repeat draws its
    own noise (shared by all methods) and network seed; metrics against the truth at the same
    heart nodes per repeat in ``out_csv``, the best repeat's Û per setting (for the figures) in
    ``out_npz``.

    The EP-informed networks reconstruct the normalised transmembrane potential of a cohort
    scenario through the inversion's equivalent-double-layer operator (its prior's u; the
    potential, with R, for the model source, whose u is both) and are told the noise's share of
    the data's mean square (their discrepancy rule); they are scored against the truth's
    normalised V_m over their window, activation times from upstrokes on both sides. A repeat the
    zero-map detector fails is logged, recorded with ``status`` ``failed: ...`` and no metrics."""
    from ecgcohort.inverse.double_layer import calibrated_gain
    from ecgcohort.inverse.methods import surface_laplacian
    from ecgcohort.inverse.neural import window_samples
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.inverse.surfaces import load_surfaces

    spec = DynamicsSpec.from_config(dynamics)
    truth_points = load_surfaces(surfaces_npz).heart.points
    truth, body = load_dynamics(dynamics_npz)
    neural = method in NEURAL_METHODS
    # what the method reconstructs, in the unit it sees, and the truth it is scored against
    excitation = neural and truth.units == "mV"
    reference = truth.normalised_vm if excitation else truth.u
    polarity = "transmembrane" if excitation else truth.polarity
    scale = 1.0 if excitation or truth.units != "mV" else ACTION_POTENTIAL_MV
    columns = window_samples(truth.times, float(method_config.get("window", 0.0))) if neural else len(truth.times)
    # the detector on the truth's own quantity over the instants the method reconstructs
    reference_activation = (activation_times(reference[:, :columns], truth.times[:columns], polarity) if neural
                            else truth.electrogram_activation)
    times_ms = truth.times * spec.time_unit_ms
    rows, best, histories, names = [], [], {}, []
    for setting in settings:
        name = setting_name(setting["mismatch"], setting["noise"])
        names.append(name)
        model = load_model(model_npzs[setting["mismatch"]])
        noise = NoiseModel.from_config(setting["noise"], noise_models[setting["noise"]])
        operator = model.transfer
        if excitation:
            if model.vm_transfer is None:
                raise InverseError(f"patient {patient}, mismatch {setting['mismatch']}: the inversion model has no "
                                   "V_m-based operator (a file written before it existed: run inversion_model again)")
            operator = model.vm_transfer
        clean = operator @ reference if model.mismatch.crime else body
        surface = model.heart.scaled(1.0 / spec.length_unit_mm)
        if excitation:
            laplacian = surface_laplacian(surface)
        best_re, best_estimate = np.inf, None
        for repeat in range(repeats):
            noise_rng = patient_rng(seed, patient, f"inverse-noise/{source}/{name}/{repeat}")
            bspm = noisy_maps(clean, model.measurement_points, times_ms, noise, noise_rng)
            config = dict(method_config)
            if neural:
                network_seed = int(patient_rng(seed, patient, f"inverse-network/{source}/{method}/{name}/{repeat}")
                                   .integers(2 ** 31))
                # the noise's share of the data's mean square over the network's window: the
                # level its discrepancy rule stops at (the benchmark knows it, as the paper's σ)
                noise_level = float(np.mean((bspm - clean)[:, :columns] ** 2) / np.mean(bspm[:, :columns] ** 2))
                config.update(seed=network_seed, workdir=str(Path(workdir) / name.replace("/", "-") / f"repeat-{repeat}"),
                              model=asdict(spec.model), noise_level=noise_level)
            start = time.perf_counter()
            gain = 1.0
            try:
                if excitation:
                    # the layer's strength from the data alone (calibrated_gain: the torso's
                    # conductivities set it, and the inversion does not know them)
                    gain = calibrated_gain(operator, bspm[:, :columns], laplacian, truth.times[:columns])
                result = reconstruct(method, gain * operator, bspm / scale, surface, truth.times, config)
            except InverseError as error:
                raise InverseError(f"patient {patient}, source {source}, method {method}, setting {name}: "
                                   f"{error}") from None
            estimate = result.estimate * scale
            result.info["operator_gain"] = gain
            failure = result.info.get("failed")
            scores = (_scores(estimate, reference, reference_activation, polarity, truth, spec, truth_points, columns)
                      if failure is None else dict.fromkeys(SCORED, float("nan")))
            row = {"patient": patient, "source": source, "method": method, "setting": name,
                   "mismatch": setting["mismatch"], "noise": setting["noise"], "snr_db": noise.snr_db,
                   "repeat": repeat, "quantity": EXCITATION if excitation else POTENTIAL,
                   "status": "ok" if failure is None else f"failed: {failure}", **scores,
                   "seconds": time.perf_counter() - start}
            rows.append(row)
            if result.history:
                histories[f"{name}/{repeat}"] = result.history
            if failure is not None:
                log.warning("%s %s %s %s repeat %d FAILED, not scored: %s", patient, source, method, name, repeat,
                            failure)
            log.info("%s %s %s %s repeat %d (%s): RE %.4f, CC %.4f, spatial CC %.3f, activation MAE %.1f ms (r %.2f), "
                     "localisation %.1f mm, %.1f s %s", patient, source, method, name, repeat, row["quantity"],
                     row["re"], row["cc"], row["spatial_cc"], row["activation_mae_ms"], row["activation_cc"],
                     row["localisation_mm"], row["seconds"], json.dumps(result.info, default=float))
            # the figures show the best scored repeat (a failed one only where every repeat failed)
            rank = row["re"] if failure is None else np.inf
            if best_estimate is None or rank < best_re:
                best_re, best_estimate = rank, estimate
        best.append(best_estimate.astype(np.float32))
    with atomic_path(out_csv) as temporary, open(temporary, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with atomic_path(out_npz) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, settings=np.array(names), best_estimate=np.stack(best), histories=json.dumps(histories))
