"""The encoding stage's jobs, free of Snakemake: SDF samples per patient, PCA codes, DeepSDF
training from the training patients' samples, MAP inference per held-out patient, Chamfer evaluation."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ecgcohort.io import atomic_path

log = logging.getLogger(__name__)

#: Keys of ``encoding.deepsdf`` that are the decoder's spec (the rest: training, inference, ...).
SPEC_KEYS = ("latent_dim", "hidden", "layers", "skip_at", "fourier_features", "fourier_scale", "lipschitz",
             "lambda_lipschitz", "lambda_prior", "code_std", "seed")
#: Points drawn on each true surface for the surface error.
SURFACE_ERROR_POINTS = 20_000
#: Bytes of one training row: shape index (int64), x (3 float32), 4 SDFs (float32).
_ROW_BYTES = 8 + 4 * 3 + 4 * 4


def _write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2) + "\n")


# ---------------------------------------------------------------- SDF samples
def sample_sdf_job(patient: str, heart_path: str | Path, torso_path: str | Path, section: Mapping[str, Any],
                   seed: int, out_npz: str | Path, out_png: str | Path | None = None) -> None:
    """Signed-distance samples of the patient's four closed surfaces (randomness from (seed,
    patient)) as ``sdf.npz``, and a preview PNG where ``out_png`` is given (the workflow draws it
    from the stored samples in ``draw_patient``)."""
    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.encoding.sdf import sample_sdf, sampling_spec, sdf_preview, sdf_preview_title, write_sdf_samples
    from ecgcohort.encoding.surfaces import closed_surfaces

    start = time.perf_counter()
    surfaces = closed_surfaces(read_surface(heart_path), read_surface(torso_path), patient=patient)
    samples = sample_sdf(surfaces, sampling_spec(section), patient_rng(seed, patient, "sdf"), patient=patient)
    write_sdf_samples(samples, out_npz)
    if out_png is not None:
        sdf_preview(samples, out_png, title=sdf_preview_title(patient))
    inside = {s: float((samples.sdf_mm[i] < 0).mean()) for i, s in enumerate(samples.surfaces)}
    log.info("patient %s: %d SDF samples of %s in %.1f s (fraction inside: %s)", patient, len(samples.points_mm),
             ", ".join(samples.surfaces), time.perf_counter() - start,
             ", ".join(f"{k} {v:.2f}" for k, v in inside.items()))


# ---------------------------------------------------------------- PCA codes
def pca_codes_job(parameters: Sequence[str | Path], include_translation: bool, out_csv: str | Path,
                  out_json: str | Path) -> None:
    """The cohort's PCA codes from every patient's ``parameters.json`` (the sampled shape modes
    and pose, the sex as 1 female / 0 male and the age in years, standardised on the ``train``
    patients), in the order given."""
    from ecgcohort.encoding.pca import pca_codes, write_pca_codes

    records = [json.loads(Path(path).read_text()) for path in parameters]
    if not records:
        raise ValueError("PCA codes need the parameters of at least one patient, none given")
    names = list(records[0]["parameters"])
    for path, record in zip(parameters, records):
        if list(record["parameters"]) != names:
            raise ValueError(f"patient {record['patient']}: {path} has the parameters {list(record['parameters'])}, "
                             f"expected {names} (those of {records[0]['patient']})")
    for path, record in zip(parameters, records):
        if record.get("sex") not in ("female", "male") or not isinstance(record.get("age_years"), (int, float)):
            raise ValueError(f"patient {record['patient']}: {path} has sex {record.get('sex')!r} and age_years "
                             f"{record.get('age_years')!r}; expected female or male and a number of years")
    values = np.array([[record["parameters"][name] for name in names]
                       + [float(record["sex"] == "female"), float(record["age_years"])] for record in records],
                      dtype=np.float64)
    units = [str(records[0]["units"][name]) for name in names] + ["1", "year"]
    names = [*names, "female", "age_years"]
    codes = pca_codes(values, names, units,
                      [record["patient"] for record in records], [record["split"] for record in records],
                      include_translation)
    write_pca_codes(codes, out_csv, out_json, source="parameters.json of each patient")
    log.info("PCA codes: %d patients x %d columns (%s)", len(codes.table), len(codes.columns), ", ".join(codes.columns))


# ---------------------------------------------------------------- DeepSDF training
def patient_sdf_rows(path: str | Path, patient: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(surface names, points mm (P, 3), sdf mm (P, S)) of one patient's ``sdf.npz``
    (:func:`sample_sdf_job`), quantised as the dataset stores them (float32 metres): a model
    trained from the files equals one trained from the store."""
    from ecgcohort.encoding.sdf import read_sdf_samples

    samples = read_sdf_samples(path)
    if not (np.isfinite(samples.points_mm).all() and np.isfinite(samples.sdf_mm).all()):
        raise ValueError(f"patient {patient}: {path} has non-finite signed distances or points")
    return list(samples.surfaces), _as_stored(samples.points_mm), _as_stored(samples.sdf_mm).T


def _sample_bounds(paths: Sequence[str | Path], patients: Sequence[str]) -> tuple[list[str], int, np.ndarray, np.ndarray]:
    """(surfaces, points per patient, lower and upper bounds in mm as the float32 store gives
    them) over the patients' samples; every patient must have the first one's surfaces and count."""
    surfaces, count, low, high = None, 0, None, None
    for path, patient in zip(paths, patients, strict=True):
        names, points, _ = patient_sdf_rows(path, patient)
        stored_m = (points * 1e-3).astype(np.float32)
        if surfaces is None:
            surfaces, count, low, high = names, len(points), stored_m.min(axis=0), stored_m.max(axis=0)
        elif names != surfaces or len(points) != count:
            raise ValueError(f"patient {patient}: {path} has the surfaces {names} and {len(points)} samples, "
                             f"expected {surfaces} and {count} (those of {patients[0]})")
        else:
            low, high = np.minimum(low, stored_m.min(axis=0)), np.maximum(high, stored_m.max(axis=0))
    if surfaces is None:
        raise ValueError("no signed-distance samples given")
    return surfaces, count, low * 1e3, high * 1e3


def _as_stored(values_mm: np.ndarray) -> np.ndarray:
    """Millimetres as the dataset holds them: float32 metres, read back as float64 mm."""
    return (values_mm.astype(np.float64) * 1e-3).astype(np.float32).astype(np.float64) * 1e3


def deepsdf_spec_section(section: Mapping[str, Any], surfaces: Sequence[str], clamp: float) -> dict[str, Any]:
    """The decoder's spec from an ``encoding.deepsdf`` section (clamp already normalised)."""
    return {**{k: section[k] for k in SPEC_KEYS}, "surfaces": list(surfaces), "clamp": clamp}


def train_shape_model_job(samples: Sequence[str | Path], fit_patients: Sequence[str],
                          validation_patients: Sequence[str], section: Mapping[str, Any], sdf_sampling: Mapping[str, Any],
                          out_model: str | Path, out_losses: str | Path, out_plot: str | Path,
                          workdir: str | Path, *, memory_mb: float | None = None) -> None:
    """Train the DeepSDF auto-decoder on the SDF samples (``sdf.npz``, one per patient of
    ``fit_patients``, in that order) of the training patients other than the validation ones
    (``validation_fraction``, seeded: the rule splits). Held-out patients are never read. The
    rows stay in memory when they fit the budget of the job's ``memory_mb``
    (:func:`~ecgcohort.learning.device.memory_budget_bytes`), else a patient per block is read."""
    import torch

    from ecgcohort.encoding.deepsdf import AutoDecoder, DeepSdfSpec, NormalisationBox
    from ecgcohort.learning import StreamedTable, TensorTable, TrainingSpec, fit, save_model
    from ecgcohort.learning.backbone import write_history
    from ecgcohort.learning.device import memory_budget_bytes, resolve_device

    fit_ids, validation_ids = list(fit_patients), list(validation_patients)
    if not fit_ids:
        raise ValueError("the cohort has no training patients to train the shape model on")
    log.info("DeepSDF: training on %d patients (%s), %d held out for validation (%s)", len(fit_ids),
             ", ".join(fit_ids), len(validation_ids), ", ".join(validation_ids) or "none")
    surfaces, n_points, low_mm, high_mm = _sample_bounds(samples, fit_ids)
    box = NormalisationBox.from_bounds(low_mm, high_mm, section["box_padding"])
    spec = DeepSdfSpec.from_config(deepsdf_spec_section(section, surfaces, section["clamp_mm"] / box.scale_mm))
    training = TrainingSpec.from_config(section["training"], seed=section["seed"])
    rows = len(fit_ids) * n_points
    device = resolve_device(training.device)
    resident = rows * _ROW_BYTES <= memory_budget_bytes(device, job_mb=memory_mb)

    def patient_block(index: int) -> dict[str, np.ndarray]:
        _, points, sdf = patient_sdf_rows(samples[index], fit_ids[index])
        return {"shape": np.full(n_points, index, dtype=np.int64),
                "x": box.normalise(points).astype(np.float32), "sdf": box.normalise_sdf(sdf).astype(np.float32)}

    if resident:  # allocated once and filled a patient at a time: no list of blocks beside the table
        columns: dict[str, np.ndarray] = {}
        for index in range(len(fit_ids)):
            for name, values in patient_block(index).items():
                if name not in columns:
                    columns[name] = np.empty((rows, *values.shape[1:]), dtype=values.dtype)
                columns[name][index * n_points:(index + 1) * n_points] = values
        table = TensorTable({name: torch.from_numpy(values) for name, values in columns.items()})
    else:
        table = StreamedTable(patient_block, [n_points] * len(fit_ids))
    model = AutoDecoder(spec, len(fit_ids))
    settings = {"spec": spec.to_config(), "normalisation": box.to_dict(), "patients": fit_ids, "points": n_points,
                "samples": [str(Path(path).resolve()) for path in samples]}
    result = fit(model, table, training, workdir, settings=settings, name="DeepSDF")
    write_history(result.history, out_losses, out_plot, title=f"DeepSDF, {len(fit_ids)} patients")
    save_model(out_model, result.state_dict, {
        "kind": "deepsdf", "config": dict(section), "spec": spec.to_config(), "normalisation": box.to_dict(),
        "training_patients": fit_ids, "validation_patients": validation_ids,
        "sdf_sampling": dict(sdf_sampling),
        "training": {"epochs": training.epochs, "final_loss": result.history[-1]["loss"],
                     "samples_per_second": result.samples_per_second, "seconds": result.seconds,
                     "device": result.device, "precision": result.precision,
                     "resumed_from_epoch": result.resumed_from_epoch, "resident": resident},
    })
    log.info("DeepSDF: %d epochs in %.1f s on %s (%s), %.0f samples/s, final loss %.3g (SDF %.3g = %.2f mm RMS)",
             training.epochs, result.seconds, result.device, "resident" if resident else "streamed",
             result.samples_per_second, result.history[-1]["loss"], result.history[-1]["sdf"],
             np.sqrt(result.history[-1]["sdf"]) * box.scale_mm)


# ---------------------------------------------------------------- MAP inference
def map_spec(section: Mapping[str, Any], patient_seed: int):
    """The MAP settings of an ``encoding.deepsdf.inference`` section."""
    from ecgcohort.encoding.deepsdf import MapSpec

    keys = ("iterations", "learning_rate", "lr_decay", "decay_at", "gamma", "points_per_iteration")
    return MapSpec(**{k: section[k] for k in keys}, seed=patient_seed)


def infer_shape_code_job(patient: str, samples: str | Path, model_path: str | Path, section: Mapping[str, Any],
                         seed: int, role: str, out_json: str | Path) -> None:
    """The patient's code by MAP inference (eq. 7) from its SDF samples (``sdf.npz``);
    ``role`` is ``validation`` (a training patient held out of the decoder) or ``test``."""
    from ecgcohort.cohort.sampling import patient_rng
    from ecgcohort.encoding.model import infer_code_from_samples, load_shape_model

    inference = section["inference"]
    surfaces, points, sdf = patient_sdf_rows(samples, patient)
    model = load_shape_model(model_path, expected=section, prior_shrinkage=inference["prior_shrinkage"],
                             surfaces=surfaces)
    if patient in model.training_patients:
        raise ValueError(f"patient {patient} trained the shape model: its code is in the model, not inferred")
    if (role == "validation") != (patient in model.metadata.get("validation_patients", [])):
        raise ValueError(f"patient {patient}: role {role!r}, but the model's validation patients are "
                         f"{model.metadata.get('validation_patients', [])}")
    order = [surfaces.index(name) for name in model.surfaces]
    patient_seed = int(patient_rng(seed, patient, "map-inference").integers(2 ** 31))
    inferred = infer_code_from_samples(model, points, sdf[:, order], map_spec(inference, patient_seed),
                                       inference["outlier_mahalanobis"], name=f"patient {patient}")
    _write_json(out_json, {"patient": patient, "role": role, **inferred.to_dict(),
                           "outlier_threshold": inference["outlier_mahalanobis"]})


def shape_codes_job(model_path: str | Path, inferred: Sequence[str | Path], out_csv: str | Path,
                    out_json: str | Path) -> None:
    """One table of DeepSDF codes for the cohort: training codes from the model, validation and
    test codes from MAP inference, with their Mahalanobis distances and outlier flags."""
    import pandas as pd

    from ecgcohort.learning.modelfile import load_model

    state, meta = load_model(model_path, kind="deepsdf")
    codes = state["codes.weight"].double().numpy()
    rows = [{"patient": p, "role": "train", "source": "training", "mahalanobis": np.nan, "outlier": False,
             **{f"z_{i:02d}": v for i, v in enumerate(code)}} for p, code in zip(meta["training_patients"], codes)]
    for path in inferred:
        record = json.loads(Path(path).read_text())
        rows.append({"patient": record["patient"], "role": record["role"], "source": "map_inference",
                     "mahalanobis": record["mahalanobis"], "outlier": record["outlier"],
                     **{f"z_{i:02d}": v for i, v in enumerate(record["code"])}})
    table = pd.DataFrame(rows).set_index("patient")
    with atomic_path(out_csv) as temporary:
        table.to_csv(temporary, float_format="%.8g")
    _write_json(out_json, {
        "description": "DeepSDF shape codes (paper 1, section 2.5): training patients' codes are the auto-decoder's "
                       "trained codes; validation and test patients' codes come from MAP inference (eq. 7) with the "
                       "decoder frozen. mahalanobis: distance to the training codes' distribution.",
        "model": str(model_path), "latent_dim": int(codes.shape[1]),
        "roles": {role: int((table.role == role).sum()) for role in ("train", "validation", "test")},
        "outliers": [str(p) for p in table.index[table.outlier.astype(bool)]],
    })


# ---------------------------------------------------------------- evaluation
def _grids(surfaces: Mapping[str, Any], resolution: int, padding_mm: float) -> dict[str, np.ndarray]:
    """Two regular grids (mm): over the torso's bounding box and over the heart's."""
    from ecgcohort.encoding.chamfer import regular_grid

    def grid(points):
        return regular_grid(points.min(axis=0) - padding_mm, points.max(axis=0) + padding_mm, resolution)

    return {"torso": grid(surfaces["torso"][0]), "heart": grid(surfaces["epicardium"][0])}


def evaluate_shape_code_job(patient: str, role: str, model_path: str | Path, codes_csv: str | Path,
                            heart_path: str | Path, torso_path: str | Path, section: Mapping[str, Any],
                            out_json: str | Path, out_png: str | Path | None = None) -> None:
    """Chamfer distance (eq. 8, mm) per surface between the decoded and the true interiors on a
    regular grid (section 3.1): the torso on a grid over the torso, the three heart surfaces on
    a grid over the heart. The true interior is the exact one (the parity of the surface's
    crossings along the grid's lines, :func:`~ecgcohort.geometry.grid_inside`). Eq. 8 on
    interior clouds counts every interior grid point, most of which both clouds share, so it is
    much smaller than the distance between the surfaces; the surface error — the mean |decoded
    SDF| (mm) at points drawn uniformly on the true surface — is reported beside it, and the
    decoded and true interior volumes (mL) on the same grid. Optionally a PNG of both zero level
    sets on three slices."""
    import pandas as pd

    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.encoding.chamfer import interior_chamfer, interior_volume
    from ecgcohort.encoding.model import load_shape_model
    from ecgcohort.encoding.sdf import sample_on_surface
    from ecgcohort.encoding.surfaces import closed_surfaces
    from ecgcohort.geometry import grid_inside

    evaluation = section["evaluation"]
    start = time.perf_counter()
    model = load_shape_model(model_path, expected=section)
    codes = pd.read_csv(codes_csv, index_col="patient")
    if patient not in codes.index:
        raise KeyError(f"patient {patient} has no code in {codes_csv}")
    code = codes.loc[patient, [c for c in codes.columns if c.startswith("z_")]].to_numpy(dtype=float)
    surfaces = closed_surfaces(read_surface(heart_path), read_surface(torso_path), patient=patient)
    grids = _grids(surfaces, evaluation["grid_resolution"], evaluation["grid_padding_mm"])
    rng = np.random.default_rng(0)
    surface_error = {}
    for index, surface in enumerate(model.surfaces):
        on_surface, _ = sample_on_surface(*surfaces[surface], SURFACE_ERROR_POINTS, rng)
        surface_error[surface] = float(np.abs(model.predict_sdf_mm(code, on_surface)[:, index]).mean())
    chamfer, fields, volume, true_volume = {}, {}, {}, {}
    resolution = evaluation["grid_resolution"]
    for grid_name, grid in grids.items():
        predicted = model.predict_sdf_mm(code, grid)
        for index, surface in enumerate(model.surfaces):
            if (surface == "torso") != (grid_name == "torso"):
                continue
            points, faces = surfaces[surface]
            lattice = grid.reshape(resolution, resolution, resolution, 3)
            inside = grid_inside(points, faces, lattice[:, 0, 0, 0], lattice[0, :, 0, 1], lattice[0, 0, :, 2]).reshape(-1)
            true_sdf = np.where(inside, -1.0, 1.0)  # only the sign enters eq. 8's interior clouds
            chamfer[surface] = interior_chamfer(predicted[:, index], true_sdf, grid)
            volume[surface] = interior_volume(predicted[:, index], grid, resolution) / 1e3
            true_volume[surface] = interior_volume(true_sdf, grid, resolution) / 1e3
            fields[surface] = (grid_name, predicted[:, index], inside)
    seconds = time.perf_counter() - start
    _write_json(out_json, {"patient": patient, "role": role, "chamfer_mm": chamfer, "surface_error_mm": surface_error,
                           "volume_ml": volume, "true_volume_ml": true_volume,
                           "grid_resolution": evaluation["grid_resolution"], "seconds": seconds,
                           "outlier": bool(codes.loc[patient].get("outlier", False))})
    log.info("patient %s (%s): Chamfer %s mm; surface error %s mm; decoded / true volume %s mL; %.1f s", patient,
             role, ", ".join(f"{k} {v:.2f}" for k, v in chamfer.items()),
             ", ".join(f"{k} {v:.2f}" for k, v in surface_error.items()),
             ", ".join(f"{k} {volume[k]:.0f} / {true_volume[k]:.0f}" for k in volume), seconds)
    if out_png is not None:
        level_set_slices(patient, grids, fields, evaluation["grid_resolution"], out_png)


def level_set_slices(patient: str, grids: Mapping[str, np.ndarray], fields: Mapping[str, tuple], resolution: int,
                     out_png: str | Path) -> None:
    """Predicted (solid) and true (dashed) zero level sets on the middle coronal, sagittal and
    axial slices: the torso on its grid (top row), the heart surfaces on theirs (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"torso": "0.3", "lv_endocardium": "tab:red", "rv_endocardium": "tab:blue", "epicardium": "tab:green"}
    axes_names = ("x (mm, right to left)", "y (mm, posterior to anterior)", "z (mm, superior to inferior)")
    planes = ((0, 2, 1, "coronal"), (1, 2, 0, "sagittal"), (0, 1, 2, "axial"))
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    for row, grid_name in enumerate(("torso", "heart")):
        cube = grids[grid_name].reshape(resolution, resolution, resolution, 3)
        for column, (u, v, normal, title) in enumerate(planes):
            ax = axes[row, column]
            index = [slice(None)] * 3
            index[normal] = resolution // 2
            section = cube[tuple(index)]
            for surface, (name, predicted, inside) in fields.items():
                if name != grid_name:
                    continue
                shape = (resolution,) * 3
                p = predicted.reshape(shape)[tuple(index)]
                t = np.where(inside.reshape(shape)[tuple(index)], -1.0, 1.0)
                ax.contour(section[..., u], section[..., v], p, levels=[0], colors=colours[surface], linewidths=1.5)
                ax.contour(section[..., u], section[..., v], t, levels=[0], colors=colours[surface], linewidths=1,
                           linestyles="dashed")
                ax.plot([], [], color=colours[surface], label=surface)
            ax.set_title(f"{grid_name} grid, {title} slice")
            ax.set_xlabel(axes_names[u])
            ax.set_ylabel(axes_names[v])
            ax.set_aspect("equal")
            if title != "axial":
                ax.invert_yaxis()
            if column == 0:
                ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{patient}: DeepSDF zero level sets (solid) against the true surfaces (dashed)")
    fig.tight_layout()
    with atomic_path(out_png) as temporary:
        fig.savefig(temporary, dpi=100)
    plt.close(fig)


#: Row order and labels of the encoding summary (roles) and its column groups (surfaces).
_ROLES = {"train": "fitted", "validation": "validation", "test": "test"}
_SHORT = {"torso": "torso", "lv_endocardium": "LV", "rv_endocardium": "RV", "epicardium": "epicardium"}


def encoding_markdown(table) -> str:
    """The shape model's summary as a Markdown table: per role (fitted, validation, test), the
    number of patients and the mean over them of the surface error (mm), the Chamfer distance
    (eq. 8, mm) and the decoded / true interior volume of each surface, from ``chamfer.csv``."""
    import pandas as pd

    surfaces = [s for s in _SHORT if s in set(table.surface)]
    resolution = table.grid_resolution.dropna().unique() if "grid_resolution" in table else []
    grid = f"{int(resolution[0])}³ grids" if len(resolution) == 1 else "regular grids"
    names = " / ".join(_SHORT[s] for s in surfaces)
    lines = [f"| patients | surface error (mm): {names} | Chamfer (eq. 8, {grid}, mm): {names} | "
             f"decoded / true volume: {names} |", "|---|---|---|---|"]

    def cell(values) -> str:
        return " / ".join("inf" if np.isinf(v) else ("–" if pd.isna(v) else f"{v:.2f}") for v in values)

    for role, label in _ROLES.items():
        part = table[table.role == role]
        if part.empty:
            continue
        means = part.groupby("surface")[["surface_error_mm", "chamfer_mm", "volume_ml", "true_volume_ml"]].mean()
        means = means.reindex(surfaces)
        ratio = means.volume_ml / means.true_volume_ml
        lines.append(f"| {label} ({part.patient.nunique()}) | {cell(means.surface_error_mm)} | "
                     f"{cell(means.chamfer_mm)} | {cell(ratio)} |")
    return "\n".join(lines) + "\n"


def summarize_shape_model_job(evaluations: Sequence[str | Path], out_csv: str | Path, out_png: str | Path,
                              out_md: str | Path | None = None) -> None:
    """``chamfer.csv`` (patient, role, surface, chamfer_mm, surface_error_mm, decoded and true
    interior volume_ml / true_volume_ml, outlier, grid_resolution), a Fig. 4-style heat map:
    surfaces × patients, train + validation on the left, test on the right, sorted by error,
    and optionally the summary by role as Markdown (:func:`encoding_markdown`)."""
    import pandas as pd

    records = [json.loads(Path(p).read_text()) for p in evaluations]
    table = pd.DataFrame([{"patient": r["patient"], "role": r["role"], "surface": s, "chamfer_mm": v,
                           "surface_error_mm": r["surface_error_mm"][s],
                           "volume_ml": r.get("volume_ml", {}).get(s, np.nan),
                           "true_volume_ml": r.get("true_volume_ml", {}).get(s, np.nan),
                           "outlier": r.get("outlier", False), "grid_resolution": r.get("grid_resolution")}
                          for r in records for s, v in r["chamfer_mm"].items()])
    with atomic_path(out_csv) as temporary:
        table.to_csv(temporary, index=False, float_format="%.4f")
    summary = table.groupby(["role", "surface"])[["chamfer_mm", "surface_error_mm"]].agg(["mean", "max"])
    log.info("Chamfer distance and surface error (mm) by role and surface:\n%s", summary.to_string())
    chamfer_heatmap(table, out_png)
    if out_md is not None:
        with atomic_path(out_md) as temporary:
            temporary.write_text(encoding_markdown(table))


def chamfer_heatmap(table, out_png: str | Path) -> None:
    """Fig. 4 of paper 1: Chamfer distance (mm) per surface and patient, training/validation
    patients (left) and test patients (right). Every panel has the same rows, in the decoder's
    surface order, labelled once on the left; patients are sorted by mean error within a panel.
    A surface the decoder lost (no interior point: Chamfer ``inf``) is drawn red and reads "inf"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ecgcohort.encoding.surfaces import SURFACES

    order = [s for s in SURFACES if s in set(table.surface)] + sorted(set(table.surface) - set(SURFACES))
    panels = [("training / validation", table[table.role != "test"]), ("test", table[table.role == "test"])]
    panels = [(title, part) for title, part in panels if len(part)]
    finite = table.chamfer_mm[np.isfinite(table.chamfer_mm)]
    vmax = float(finite.max()) if len(finite) else 1.0
    colours = matplotlib.colormaps["viridis"].copy()
    colours.set_bad("tab:red")
    widths = [max(len(part.patient.unique()), 2) for _, part in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.5 + 0.5 * sum(widths), 3.6), squeeze=False, sharey=True,
                             gridspec_kw={"width_ratios": widths})
    image = None
    for column, (ax, (title, part)) in enumerate(zip(axes[0], panels)):
        grid = part.pivot_table(index="surface", columns="patient", values="chamfer_mm").reindex(order)
        grid = grid[grid.mean(axis=0).sort_values().index]
        values = np.ma.masked_invalid(grid.to_numpy(dtype=float))
        image = ax.imshow(values, cmap=colours, vmin=0, vmax=vmax, aspect="auto")
        labels = [f"{p} (val)" if (part[(part.patient == p)].role == "validation").any() else p for p in grid.columns]
        ax.set_xticks(range(len(grid.columns)), labels, rotation=60, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelleft=column == 0)
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            text = "inf" if np.isinf(value) else ("–" if np.isnan(value) else f"{value:.2f}")
            ax.text(j, i, text, ha="center", va="center", fontsize=6,
                    color="w" if not np.isfinite(value) or value < vmax / 2 else "k")
        ax.set_title(title, fontsize=9)
    axes[0, 0].set_yticks(range(len(order)), order, fontsize=8)  # shared by every panel
    fig.colorbar(image, ax=axes[0].tolist(), label="Chamfer distance (mm); red: surface not decoded")
    with atomic_path(out_png) as temporary:
        fig.savefig(temporary, dpi=110, bbox_inches="tight")
    plt.close(fig)
