"""The inverse benchmark's workflow jobs: per patient the surfaces and transfer matrix, per
patient and source the ground-truth dynamics, per patient, source and method the
reconstructions at every noise level and repeat; the fan-in is in
:mod:`ecgcohort.inverse.report`."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.inverse.dynamics import (MODEL_SOURCE, DynamicsSpec, HeartDynamics, aliev_panfilov_dynamics,
                                        noisy_bspm, physiological_dynamics)
from ecgcohort.inverse.methods import NEURAL_METHODS, reconstruct
from ecgcohort.inverse.metrics import correlation_coefficient, mean_squared_error, relative_error
from ecgcohort.inverse.problem import InverseError, SurfaceMesh
from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)

#: seconds of model time after the last activation that still count as depolarisation
DEPOLARISATION_MARGIN = 1.0
METRIC_COLUMNS = ("patient", "source", "method", "noise", "repeat", "re", "mse", "cc", "re_depolarisation",
                  "seconds")


def transfer_matrix_job(*, patient: str, mesh_path: str | Path, electrodes_csv: str | Path | None, heart_nodes: int,
                        body: Mapping[str, Any], transfer: Mapping[str, Any], out_surfaces: str | Path,
                        out_transfer: str | Path, out_preview: str | Path) -> None:
    """Remesh the patient's heart and body surfaces and compute R (rule ``transfer_matrix``).
    ``electrodes_csv`` is read only where the body's measurement points are the electrodes."""
    from ecgcohort.ecg.forward import read_electrode_table
    from ecgcohort.inverse.figures import plot_surfaces
    from ecgcohort.inverse.surfaces import heart_surface, inverse_surfaces
    from ecgcohort.inverse.transfer import patient_transfer_matrix
    from ecgcohort.meshing.tetra import read_tagged_mesh

    try:
        mesh = read_tagged_mesh(mesh_path)
        electrodes = read_electrode_table(electrodes_csv) if electrodes_csv is not None else None
        surfaces = inverse_surfaces(mesh, heart_nodes, body["source"], body["nodes"],
                                    None if electrodes is None else np.array(electrodes.names),
                                    None if electrodes is None else electrodes.positions_mm)
        capped, _ = heart_surface(mesh)
        matrix, stats = patient_transfer_matrix(mesh, surfaces.heart, capped, surfaces.measurement_points,
                                                block=transfer["block"],
                                                row_sum_tolerance=transfer["row_sum_tolerance"],
                                                max_projection_mm=transfer["max_projection_mm"])
    except InverseError as error:
        raise InverseError(f"patient {patient}: {error}") from None
    surfaces.save(out_surfaces)
    with atomic_path(out_transfer) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, transfer=matrix, stats=json.dumps(stats.as_dict()))
    plot_surfaces(surfaces, matrix, out_preview, title=f"{patient}: heart {len(surfaces.heart.points)} nodes, "
                  f"{len(surfaces.measurement_points)} measurement points")


def load_transfer(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(R (m, n), its :class:`~ecgcohort.inverse.transfer.TransferStats` as a dict) of a job's file."""
    with np.load(path) as data:
        return data["transfer"], json.loads(str(data["stats"]))


def save_dynamics(path: str | Path, dynamics: HeartDynamics, clean_bspm: np.ndarray) -> None:
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, source=dynamics.source, times=dynamics.times, u=dynamics.u, activation=dynamics.activation,
                 v=np.zeros((0, 0)) if dynamics.v is None else dynamics.v, clean_bspm=clean_bspm)


def load_dynamics(path: str | Path) -> tuple[HeartDynamics, np.ndarray]:
    """(the ground truth, the noise-free BSPM R u (m, T)) of a ``heart_surface_dynamics`` file."""
    with np.load(path) as data:
        v = data["v"] if data["v"].size else None
        return (HeartDynamics(str(data["source"]), data["times"], data["u"], data["activation"], v),
                data["clean_bspm"])


def heart_surface_dynamics_job(*, patient: str, source: str, surfaces_npz: str | Path, transfer_npz: str | Path,
                               anatomy_json: str | Path, fibres_npz: str | Path | None,
                               activation_npz: str | Path | None, dynamics: Mapping[str, Any],
                               cycle_length_ms: float, template_cache_dir: str | Path, out_npz: str | Path,
                               out_preview: str | Path) -> None:
    """Ground-truth u on the heart surface and the clean BSPM (rule ``heart_surface_dynamics``);
    a cohort scenario's from the patient's myocardial mesh (``fibres_npz``) and that scenario's
    activation map (``activation_npz``), which the Aliev-Panfilov source does not read."""
    from ecgcohort.inverse.figures import plot_dynamics
    from ecgcohort.inverse.surfaces import load_surfaces

    spec = DynamicsSpec.from_config(dynamics)
    surfaces = load_surfaces(surfaces_npz)
    transfer, _ = load_transfer(transfer_npz)
    try:
        if source == MODEL_SOURCE:
            frame = json.loads(Path(anatomy_json).read_text())["measures"]
            truth = aliev_panfilov_dynamics(surfaces.heart, spec, frame)
        else:
            if fibres_npz is None or activation_npz is None:
                raise InverseError("a cohort scenario needs the patient's fibre file and activation map")
            truth = _scenario_dynamics(source, surfaces.heart, fibres_npz, activation_npz, spec, cycle_length_ms,
                                       template_cache_dir)
    except InverseError as error:
        raise InverseError(f"patient {patient}, source {source}: {error}") from None
    log.info("%s %s: %d nodes × %d instants, activation %.2f–%.2f time units, u in [%.3f, %.3f]", patient, source,
             *truth.u.shape, np.nanmin(truth.activation), np.nanmax(truth.activation), truth.u.min(), truth.u.max())
    save_dynamics(out_npz, truth, transfer @ truth.u)
    plot_dynamics(surfaces.heart, truth, out_preview, title=f"{patient}: {source}")


def _scenario_dynamics(scenario: str, heart: SurfaceMesh, fibres_npz: str | Path, activation_npz: str | Path,
                       spec: DynamicsSpec, cycle_length_ms: float, template_cache_dir: str | Path) -> HeartDynamics:
    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.maps import load_activation
    from ecgcohort.fibers.rule_based import load_fibres

    fibres = load_fibres(fibres_npz)
    activation = load_activation(activation_npz)
    if activation.activation_ms.shape != (fibres.n_nodes,):
        raise InverseError(f"{activation_npz} has {activation.activation_ms.shape[0]} activation times for the "
                           f"{fibres.n_nodes} nodes of {fibres_npz}")
    template = action_potential_template(cycle_length_ms, cache_dir=template_cache_dir)
    # positions and times through the dataset's units (m, s), as the store holds them
    return physiological_dynamics(
        heart, scenario=scenario, node_positions_mm=(fibres.points_mm * 1e-3) * 1e3,
        tetrahedra=fibres.tetrahedra.astype(np.int64), activation_ms=(activation.activation_ms * 1e-3) * 1e3,
        apd_scale=np.broadcast_to(activation.apd_scale, (fibres.n_nodes,)), template=template, spec=spec)


def depolarisation_instants(dynamics: HeartDynamics) -> np.ndarray:
    """Boolean (T,): the instants up to the last activation plus :data:`DEPOLARISATION_MARGIN`."""
    return dynamics.times <= np.nanmax(dynamics.activation) + DEPOLARISATION_MARGIN


def reconstruct_job(*, patient: str, source: str, method: str, seed: int, surfaces_npz: str | Path,
                    dynamics_npz: str | Path, transfer_npz: str | Path, noise_levels: Sequence[float], repeats: int,
                    method_config: Mapping[str, Any], dynamics: Mapping[str, Any], workdir: str | Path,
                    out_csv: str | Path, out_npz: str | Path) -> None:
    """Every noise level and repeat of one method (rule ``reconstruct_inverse``): per repeat its
    own noise draw (shared by all methods) and network seed; metrics per repeat in ``out_csv``,
    the best repeat's Û per noise level (for the figures) in ``out_npz``."""
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.inverse.surfaces import load_surfaces

    spec = DynamicsSpec.from_config(dynamics)
    surface = load_surfaces(surfaces_npz).heart.scaled(1.0 / spec.length_unit_mm)
    truth, _ = load_dynamics(dynamics_npz)
    transfer, _ = load_transfer(transfer_npz)
    early = depolarisation_instants(truth)
    rows, best, histories = [], [], {}
    for sigma in noise_levels:
        best_re, best_estimate = np.inf, None
        for repeat in range(repeats):
            noise_rng = patient_rng(seed, patient, f"inverse-noise/{source}/{sigma:g}/{repeat}")
            bspm = noisy_bspm(transfer, truth.u, sigma, noise_rng)
            config = dict(method_config)
            if method in NEURAL_METHODS:
                network_seed = int(patient_rng(seed, patient, f"inverse-network/{source}/{method}/{sigma:g}/{repeat}")
                                   .integers(2 ** 31))
                config.update(seed=network_seed, workdir=str(Path(workdir) / f"sigma-{sigma:g}" / f"repeat-{repeat}"),
                              model=asdict(spec.model))
            start = time.perf_counter()
            try:
                result = reconstruct(method, transfer, bspm, surface, truth.times, config)
            except InverseError as error:
                raise InverseError(f"patient {patient}, source {source}, method {method}: {error}") from None
            seconds = time.perf_counter() - start
            row = {"patient": patient, "source": source, "method": method, "noise": sigma, "repeat": repeat,
                   "re": relative_error(result.estimate, truth.u),
                   "mse": mean_squared_error(result.estimate, truth.u),
                   "cc": correlation_coefficient(result.estimate, truth.u),
                   "re_depolarisation": relative_error(result.estimate[:, early], truth.u[:, early]),
                   "seconds": seconds}
            rows.append(row)
            if result.history:
                histories[f"{sigma:g}/{repeat}"] = result.history
            log.info("%s %s %s σ=%g repeat %d: RE %.4f, MSE %.4g, CC %.4f, RE (depolarisation) %.4f, %.1f s %s",
                     patient, source, method, sigma, repeat, row["re"], row["mse"], row["cc"],
                     row["re_depolarisation"], seconds, json.dumps(result.info, default=float))
            if row["re"] < best_re:
                best_re, best_estimate = row["re"], result.estimate
        best.append(best_estimate.astype(np.float32))
    with atomic_path(out_csv) as temporary, open(temporary, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with atomic_path(out_npz) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, noise=np.asarray(noise_levels, dtype=float), best_estimate=np.stack(best),
                 histories=json.dumps(histories))
