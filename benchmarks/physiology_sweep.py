"""The cohort's sinus, LBBB and CRT ECGs recomputed for a candidate physiology on a run's existing
patients, judged by the realism criteria and set beside healthy-adult values (prints figures;
not a test).

    nice -n 19 env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/physiology_sweep.py \\
        RESULTS [--configfile config/config.yaml more.yaml] [--set electrophysiology.velocity_m_per_s.fibre=0.7] \\
        [--patients train-0000 test-0001] [--out DIR] [--check]

RESULTS is a run's ``results/`` folder whose patients have their anatomy, fibres and lead fields
(``results/patients/{patient}/``). The candidate is the config files given (default
config/config.yaml) with each ``--set KEY=VALUE`` (a YAML value) merged in and validated by the
schema. Per patient it runs what the workflow's jobs run, with the library's own functions: the
Purkinje trees and junctions (:func:`ecgcohort.conduction.purkinje_jobs.grow_purkinje`), the activation maps
(:func:`ecgcohort.conduction.jobs.activation_map`), the FEM ECG (the lead matrix of the patient's
lead-field chunks with V_m where the ECG job carries it, :func:`ecgcohort.ecg.forward.source_potentials`,
:func:`ecgcohort.ecg.standard_leads`)
and the delineation, features and criteria of the realism stage
(:func:`ecgcohort.realism.jobs.beat_row`, :func:`ecgcohort.realism.summary.evaluate_cohort`). Only
the scenarios ``sinus``, ``lbbb`` and ``crt`` of the config are computed (``--scenarios``).

Printed per patient: sinus QRS duration, frontal QRS axis, the frontal angle of the heart's own
mean QRS vector (Σ vol G_i ∇τ over the myocardium, as in benchmarks/qrs_axis_sources.py), the R/S
transition lead, the frontal QRS–T angle, R in V1-V4 (progression), septal q and the failed healthy
criteria; LBBB QRS duration and Strauss's criteria at the men's (140 ms) and women's (130 ms)
threshold; CRT QRS duration. Then the cohort's pass rates, the LBBB maps' first LV endocardial and
latest LV epicardial activation (against Wyndham et al. 1980's LBBB maps), and the medians beside
ELSA-Brasil's (Pinto-Filho et al. 2017: QRS 92 / 86 ms, frontal QRS axis 35° / 39°, men / women).

``--leadfields`` recomputes, per patient, the fibres (the candidate's ``fibers`` angles, with
:func:`ecgcohort.fibers.rule_based.myocardial_fibres` on the patient's mesh) and the 12-lead's lead
fields and lead matrix (the candidate's ``leadfield`` conductivities and gradients, as the
workflow's lead-field job does) instead of reading the run's: what a candidate of fibre angles or
intracellular conductivities needs, since the lead matrix holds G_i and the lead fields the fibres
(the workflow's jobs take 21 s and 9 s for them on train-0000 at 1.2 mm); at the run's own values
it reproduces test-0001's fibres exactly and its features within 4e-4. With ``--out DIR`` it keeps
them per patient (``fibres.npz``, ``leadfield-12.npz``), and ``--leadfields-from DIR`` reads them
back for a later candidate with the same fibre angles and conductivities (the study cohort's 28
patients, three scenarios each: 397 s instead of 684 s). ``--intracellular`` only
rebuilds the lead matrix from the run's stored ∇Z (``grad_cells``) with the candidate's
intracellular tensors: exact for a candidate that keeps the run's fibres and bulk conductivities
σ_i + σ_e (then Z is the run's), e.g. another split of Potse's bulk between the intra- and
extracellular spaces; at the run's own values it reproduces the run's lead matrix to 5e-8 (the
stored gradients are float32) and its features within 5e-4 (axis 9e-5°, QRS–T angle 4e-4°). ``--run-maps``
takes the run's own activation times instead of recomputing them (no Purkinje trees, no eikonal
solves) and computes their APD scales and upstroke spreads for the candidate's
``electrophysiology.action_potential``: for such a candidate, or one that changes only the
repolarisation (the APD gradients, the electrotonic lengths).

``--from-json`` prints the figures of a saved ``features.json`` again. ``--check`` compares the
recomputed activation maps and features with the run's own (the
benchmark measures the workflow only where they agree). ``--out`` keeps the feature rows
(``features.json``) and the Purkinje outputs per patient (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
#: ELSA-Brasil (11,094 adults without heart disease, Glasgow program): medians, men / women
POPULATION_MEDIANS = {"qrs_duration_ms": (92.0, 86.0), "qrs_axis_deg": (35.0, 39.0)}
#: Strauss et al. 2011: LBBB QRS duration thresholds, men / women (ms)
STRAUSS_QRS_MIN_MS = {"men": 140.0, "women": 130.0}
PROGRESSION_LEADS = ("V1", "V2", "V3", "V4")
SEX_CHOICES = ("anatomy", "female", "male", "alternate")
#: What ``--leadfields --out`` keeps per patient beside its fibres, for ``--leadfields-from``.
SAVED_LEAD_FIELDS = "leadfield-12.npz"


def candidate_config(configfiles: list[Path], overrides: list[str]) -> dict[str, Any]:
    """The validated config of ``configfiles`` with every ``KEY=VALUE`` (dotted key, YAML value)
    merged in last."""
    from ecgcohort.config import load_config_files

    extra: dict[str, Any] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if not _:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        node = extra
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "overrides.yaml"
        path.write_text(yaml.safe_dump(extra))
        return load_config_files([*configfiles, path], SCHEMA)


def frontal_deg(vector: np.ndarray) -> float:
    """Frontal-plane angle of a vector in the anatomy frame (x right→left, z superior→inferior),
    in the QRS axis convention (0° the patient's left, +90° inferior)."""
    return float(np.degrees(np.arctan2(vector[2], vector[0])))


def heart_dipole_deg(fibres, activation_ms: np.ndarray, sigma) -> float:
    """Frontal angle of the heart's mean QRS vector Σ_c vol_c G_i,c ∇τ_c (the time integral of the
    intracellular source current over the QRS, up to the upstroke's height)."""
    from ecgcohort.fem import p1_gradients

    gradients, volumes = p1_gradients(fibres.points_mm, fibres.tetrahedra)
    grad_tau = np.einsum("cak,ca->ck", gradients, activation_ms[fibres.tetrahedra])
    along = (sigma.intra_fibre - sigma.intra_cross) * np.einsum("cij,cj->ci", fibres.cell_structure, grad_tau)
    return frontal_deg(((along + sigma.intra_cross * grad_tau) * volumes[:, None]).sum(axis=0))


def lbbb_lv_times_ms(fibres, activation_ms: np.ndarray) -> tuple[float, float]:
    """(first LV endocardial, latest LV epicardial) activation of an LBBB map, ms from its first
    activation: the end of transseptal conduction and the LV's last (benchmarks/lbbb_activation.py)."""
    from ecgcohort.conduction.scenarios import ENDOCARDIAL_BAND, EPICARDIAL_BAND

    times = activation_ms - activation_ms.min()
    lv = fibres.coordinates["ventricle"] < 0.5
    transmural = fibres.coordinates["transmural"]
    return (float(times[lv & (transmural < ENDOCARDIAL_BAND)].min()),
            float(times[lv & (transmural > EPICARDIAL_BAND)].max()))


def lv_endocardium_ms(fibres, activation_ms: np.ndarray) -> tuple[float, float]:
    """(half, 90 %) of the LV endocardial nodes activated, ms from the map's first activation:
    Durrer et al. 1970's three early LV areas are confluent by 15-20 ms."""
    from ecgcohort.conduction.scenarios import ENDOCARDIAL_BAND

    times = activation_ms - activation_ms.min()
    endocardium = (fibres.coordinates["ventricle"] < 0.5) & (fibres.coordinates["transmural"] < ENDOCARDIAL_BAND)
    return tuple(float(t) for t in np.percentile(times[endocardium], [50, 90]))


def standard_lead_fields(patient_dir: Path, config: dict[str, Any], scratch: Path) -> tuple[Path, dict[str, Any]]:
    """(fibres.npz, chunk) of the patient's 12-lead electrodes under the candidate ``config``: its
    fibre angles on the patient's mesh (written under ``scratch``), then its conductivities' lead
    fields and lead matrix at the run's electrode positions (chunk 0, :func:`standard_lead_matrix`)."""
    from ecgcohort.fibers.rule_based import FibreAngles, myocardial_fibres, save_fibres

    angles = config["fibers"]
    fibres = myocardial_fibres(patient_dir / "mesh/mesh.msh",
                               FibreAngles(alpha_endo=angles["alpha_endo_deg"], alpha_epi=angles["alpha_epi_deg"],
                                           beta_endo=angles["beta_endo_deg"], beta_epi=angles["beta_epi_deg"]))
    fibres_npz = save_fibres(fibres, scratch / "fibres.npz")
    chunk = standard_lead_matrix(patient_dir, config, fibres)
    np.savez(scratch / SAVED_LEAD_FIELDS, **chunk, candidate=lead_field_key(config))
    return fibres_npz, chunk


def standard_lead_matrix(patient_dir: Path, config: dict[str, Any], fibres) -> dict[str, Any]:
    """The 12-lead chunk (``electrode_names``, ``lead_matrix``) of the patient's mesh with
    ``fibres`` (:class:`ecgcohort.fibers.MyocardialFibres`) and the candidate's conductivities, at
    the run's electrode positions, with the workflow's gradient choice
    (:mod:`ecgcohort.leadfield.jobs`)."""
    from ecgcohort.leadfield.jobs import electrode_tolerance_mm
    from ecgcohort.leadfield.matrix import lead_matrix
    from ecgcohort.leadfield.solver import MM, LeadFieldSolver, lead_matrix_from_potentials
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors

    names, electrodes_m = standard_electrodes(patient_dir)
    leadfield = config["leadfield"]
    sigma = Conductivities.from_config(leadfield["conductivity_s_per_m"])
    solver = LeadFieldSolver(patient_dir / "mesh/mesh.msh", sigma, fibres.cell_structure, fibres.parent_cells,
                             low_rank_tolerance=leadfield["low_rank_tolerance"],
                             max_electrode_offset_mm=electrode_tolerance_mm(config["meshing"]["torso_element_size_mm"]))
    z = solver.solve(electrodes_m, names)
    intracellular = intracellular_tensors(fibres.cell_structure, sigma)
    if leadfield["cell_gradient"] == "recovered":
        matrix = lead_matrix(fibres.points_mm * MM, fibres.tetrahedra, intracellular,
                             solver.recovered_gradients(z, fibres.parent_cells))
    else:
        matrix = lead_matrix_from_potentials(fibres.points_mm * MM, fibres.tetrahedra, intracellular,
                                             z[:, fibres.parent_nodes])
    return {"electrode_names": np.array(names), "lead_matrix": matrix}


def lead_field_key(config: dict[str, Any]) -> str:
    """The candidate's values that the fibres and 12-lead lead matrix of ``--leadfields`` depend on."""
    leadfield = config["leadfield"]
    return json.dumps({"fibers": config["fibers"], "conductivity_s_per_m": leadfield["conductivity_s_per_m"],
                       "cell_gradient": leadfield["cell_gradient"],
                       "low_rank_tolerance": leadfield["low_rank_tolerance"]}, sort_keys=True)


def saved_lead_fields(folder: Path, patient: str, config: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """(fibres.npz, chunk) that an earlier ``--leadfields --out`` sweep saved for ``patient`` in
    ``folder``; SystemExit naming the patient where they are missing or the candidate's fibre
    angles or conductivities differ from theirs."""
    fibres_npz, saved = folder / patient / "fibres.npz", folder / patient / SAVED_LEAD_FIELDS
    if not (fibres_npz.exists() and saved.exists()):
        raise SystemExit(f"--leadfields-from {folder}: patient {patient} has no {SAVED_LEAD_FIELDS} and fibres.npz "
                         "(an earlier sweep with --leadfields --out writes them)")
    with np.load(saved) as archive:
        if str(archive["candidate"]) != lead_field_key(config):
            raise SystemExit(f"--leadfields-from {folder}: patient {patient}'s lead fields were computed for "
                             f"{archive['candidate']}, not this candidate's {lead_field_key(config)}")
        return fibres_npz, {"electrode_names": archive["electrode_names"], "lead_matrix": archive["lead_matrix"]}


def standard_electrodes(patient_dir: Path) -> tuple[list[str], np.ndarray]:
    """The 12-lead's electrode names and positions (m) of a patient: its lead-field chunk 0's, or,
    for a run stopped before its lead fields, the first rows of its electrode table (what
    chunk 0 solves)."""
    from ecgcohort.anatomy.electrode_csv import read_electrode_table
    from ecgcohort.leadfield.jobs import STANDARD_ELECTRODE_COUNT
    from ecgcohort.leadfield.solver import MM

    chunk = patient_dir / "leadfield/chunk-0.npz"
    if chunk.exists():
        with np.load(chunk) as archive:
            return [str(name) for name in archive["electrode_names"]], archive["electrode_positions_m"]
    table = read_electrode_table(patient_dir / "anatomy/electrodes.csv")
    return list(table.names[:STANDARD_ELECTRODE_COUNT]), table.positions_mm[:STANDARD_ELECTRODE_COUNT] * MM


def intracellular_lead_matrix(patient_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The 12-lead's chunk with its lead matrix rebuilt from the run's ∇Z per myocardial cell and
    the candidate's intracellular conductivities on the run's fibres (valid while the candidate's
    fibres and bulk conductivities are the run's, so that Z is)."""
    from ecgcohort.fibers import load_fibres
    from ecgcohort.leadfield.matrix import lead_matrix
    from ecgcohort.leadfield.solver import MM
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors

    fibres = load_fibres(patient_dir / "fibres/fibres.npz")
    sigma = Conductivities.from_config(config["leadfield"]["conductivity_s_per_m"])
    with np.load(patient_dir / "leadfield/chunk-0.npz") as archive:
        names, grad_cells = archive["electrode_names"].astype(str), archive["grad_cells"]
    return {"electrode_names": names,
            "lead_matrix": lead_matrix(fibres.points_mm * MM, fibres.tetrahedra,
                                       intracellular_tensors(fibres.cell_structure, sigma), grad_cells)}


def grow_candidate_purkinje(patient_dir: Path, config: dict[str, Any], folder: Path) -> Path:
    """The candidate's Purkinje trees and junctions for one patient, written into ``folder``
    (:func:`ecgcohort.conduction.purkinje_jobs.grow_purkinje`); returns the junctions file."""
    from ecgcohort.conduction.purkinje_jobs import grow_purkinje

    junctions = folder / "junctions.npz"
    grow_purkinje(patient_dir.name, patient_dir / "anatomy/heart.vtp", config["electrophysiology"]["purkinje"],
                  config["cohort"]["seed"], folder / "lv_tree.vtp", folder / "rv_tree.vtp", junctions,
                  folder / "purkinje.png")
    return junctions


def candidate_map_settings(config: dict[str, Any], template_cache: Path):
    """The :class:`ecgcohort.conduction.jobs.MapSettings` of the candidate's
    ``electrophysiology`` section (CPU solver)."""
    from ecgcohort.conduction.jobs import MapSettings

    return MapSettings.from_config(config, template_cache_dir=template_cache)


def patient_rows(patient_dir: Path, config: dict[str, Any], scenarios: list[str], *, scratch: Path,
                 template_cache: Path, check: bool, lead_fields: str = "run",
                 run_maps: bool = False, lead_fields_from: Path | None = None
                 ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The realism feature rows of one patient's scenarios under ``config`` and what else is
    printed per patient (heart dipole angle, map differences from the run's own maps); with
    ``lead_fields`` "recompute" on the candidate's own fibres and lead matrix
    (:func:`standard_lead_fields`), "intracellular" on the run's fibres and ∇Z with the candidate's
    G_i (:func:`intracellular_lead_matrix`), "run" on the run's; ``run_maps``: the run's own
    activation maps instead of the candidate's (for a candidate that changes only the lead fields);
    ``lead_fields_from``: the fibres and lead matrix an earlier "recompute" sweep saved there."""
    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.jobs import PatientConduction, activation_map, conduction_velocities
    from ecgcohort.conduction.maps import load_activation
    from ecgcohort.conduction.scenarios import scenarios_from_config
    from ecgcohort.ecg import read_lead_field_chunks, standard_leads, time_grid_ms
    from ecgcohort.ecg.forward import source_potentials
    from ecgcohort.ecg.source_grid import many_electrode_potentials
    from ecgcohort.fibers import load_fibres
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors
    from ecgcohort.realism.delineation import DelineationSettings
    from ecgcohort.realism.features import FeatureSettings
    from ecgcohort.realism.jobs import beat_row

    patient = patient_dir.name
    ep, realism = config["electrophysiology"], config["realism"]
    purkinje = scratch / patient
    purkinje.mkdir(parents=True, exist_ok=True)
    junctions = purkinje / "junctions.npz"
    if not run_maps:
        grow_candidate_purkinje(patient_dir, config, purkinje)
    settings = candidate_map_settings(config, template_cache)
    fibres_npz = patient_dir / "fibres/fibres.npz"
    if lead_fields_from is not None:
        fibres_npz, chunks = saved_lead_fields(lead_fields_from, patient, config)
    elif lead_fields == "recompute":
        fibres_npz, chunks = standard_lead_fields(patient_dir, config, purkinje)
    elif lead_fields == "intracellular":
        chunks = intracellular_lead_matrix(patient_dir, config)
    else:
        chunks = read_lead_field_chunks(sorted((patient_dir / "leadfield").glob("chunk-*.npz"),
                                               key=lambda p: int(p.stem.split("-")[1])),
                                        ("electrode_positions_m", "lead_matrix"))
    if run_maps:
        fibres, conduction = load_fibres(fibres_npz), None
    else:
        conduction = PatientConduction.read(fibres_npz, patient_dir / "anatomy/heart.vtp", junctions, settings)
        conduction.grid.prepare(*conduction_velocities(settings.velocities), device="cpu", threads=1)
        fibres = conduction.fibres
    names = [str(n) for n in chunks["electrode_names"]]
    template = action_potential_template(float(ep["action_potential"]["cycle_length_ms"]), cache_dir=template_cache)
    times_ms = time_grid_ms(config["ecg"]["duration_ms"], config["ecg"]["dt_ms"])
    sigma = Conductivities.from_config(config["leadfield"]["conductivity_s_per_m"])
    delineation = DelineationSettings.from_config(realism["delineation"])
    features = FeatureSettings.from_config(realism["features"])
    entries = {name: scenario for name, scenario in scenarios_from_config(ep["scenarios"]).items() if name in scenarios}
    rows, extra, maps = [], {}, {}
    for name, scenario in entries.items():
        recorded = patient_dir / "activation" / f"{name}.npz"
        maps[name] = (candidate_repolarisation(load_activation(recorded), fibres, template, ep["action_potential"])
                      if run_maps else activation_map(patient, name, dataclasses.asdict(scenario), conduction, settings))
        if check and recorded.exists() and not run_maps:
            extra[f"{name}_map_max_diff_ms"] = float(np.abs(load_activation(recorded).activation_ms
                                                            - maps[name].activation_ms).max())
    # V_m where the workflow's ECG job carries it (ecg.vm_nodes), one lead matrix for all maps
    matrix, sources = source_potentials(chunks["lead_matrix"], maps, fibres,
                                        intracellular_tensors(fibres.cell_structure, sigma), config["ecg"]["vm_nodes"])
    potentials = many_electrode_potentials(matrix, list(sources.values()), times_ms, template)
    for (name, scenario), unipolar in zip(entries.items(), potentials):
        activation = maps[name]
        leads_mv = standard_leads(unipolar, names) * 1e3
        row = beat_row(patient, name, scenario.kind, realism["judged_as"][scenario.kind], leads_mv, times_ms,
                       float(ep["action_potential"]["cycle_length_ms"]), delineation, features)
        rows.append(row)
        if scenario.kind == "sinus":
            extra["dipole_deg"] = heart_dipole_deg(fibres, activation.activation_ms, sigma)
            extra["lv_endocardium_ms"] = lv_endocardium_ms(fibres, activation.activation_ms)
        if scenario.kind == "lbbb":
            extra["lbbb_lv_ms"] = lbbb_lv_times_ms(fibres, activation.activation_ms)
    return rows, extra


def candidate_repolarisation(recorded, fibres, template, action_potential: dict[str, Any]):
    """A run's activation map (``ActivationMap``) with its activation times kept and its APD scales
    and upstroke spreads (ms) computed again for the candidate's ``action_potential`` section
    (:func:`ecgcohort.conduction.jobs.repolarisation_fields`, as the activation job computes them):
    a candidate that changes only the repolarisation needs no eikonal solve."""
    from ecgcohort.conduction.jobs import repolarisation_fields

    apd_scale, upstroke_ms = repolarisation_fields(fibres, recorded.activation_ms, template, action_potential)
    return dataclasses.replace(recorded, apd_scale=apd_scale, upstroke_ms=upstroke_ms,
                               upstroke_spread=float(action_potential.get("upstroke_spread", 0.0)))


def _number(row: dict[str, Any] | None, key: str) -> float:
    if row is None or row.get("status") != "ok":
        return float("nan")
    value = row.get(key)
    return float("nan") if value in (None, "") else float(value)


def recorded_features(results: Path) -> dict[tuple[str, str], dict[str, str]]:
    """The run's own feature rows (``results/ecg/features.csv``) by (patient, scenario)."""
    import csv

    path = results / "ecg" / "features.csv"
    if not path.exists():
        return {}
    with path.open() as handle:
        return {(row["patient"], row["scenario"]): row for row in csv.DictReader(handle)}


def patient_sexes(results: Path, patients: list[str], assumed: str) -> dict[str, str]:
    """Patient -> "female" / "male": from each patient's ``anatomy.json`` (``assumed`` "anatomy"),
    or the same ``assumed`` sex for all, "alternate" (female, male, ... in patient order) or
    "women=P1,P2,..." (those women, the rest men) for a run whose anatomy predates sex."""
    if assumed not in SEX_CHOICES and not assumed.startswith("women="):
        raise SystemExit(f"--sex {assumed!r}: expected one of {', '.join(SEX_CHOICES)} or women=P1,P2,...")
    if assumed in ("female", "male"):
        return dict.fromkeys(patients, assumed)
    if assumed == "alternate":
        return {patient: ("female", "male")[k % 2] for k, patient in enumerate(patients)}
    if assumed.startswith("women="):
        women = set(assumed.removeprefix("women=").split(","))
        return {patient: "female" if patient in women else "male" for patient in patients}
    from ecgcohort.realism.jobs import read_sex_and_age

    paths = [results / "patients" / patient / "anatomy" / "anatomy.json" for patient in patients]
    try:
        return {patient: values["sex"] for patient, values in read_sex_and_age(paths).items()}
    except ValueError as error:
        raise SystemExit(f"{error}\n(a run without sex: pass --sex male, female, alternate or "
                         "women=P1,P2,...)") from None


def summarise(rows: list[dict[str, Any]], extras: dict[str, dict[str, Any]], config: dict[str, Any],
              recorded: dict[tuple[str, str], dict[str, str]] | None, sexes: dict[str, str]) -> None:
    """Print the per-patient table, the pass rates and the medians (``sexes``: patient -> sex, which
    the sex-specific criteria read)."""
    from ecgcohort.realism.summary import evaluate_cohort

    rows = [{**row, "sex": sexes[row["patient"]]} for row in rows]

    criteria = {"healthy": config["realism"]["healthy"], "lbbb": config["realism"]["lbbb"]}
    results = evaluate_cohort(rows, criteria)
    failed: dict[tuple[str, str], list[str]] = {}
    for result in results:
        if not result["passed"]:
            failed.setdefault((result["patient"], result["scenario"]), []).append(
                f"{result['criterion']} {result['value']}")
    by_key = {(row["patient"], row["scenario"]): row for row in rows}
    patients = list(dict.fromkeys(row["patient"] for row in rows))
    print(f"{'patient':11s} {'sex':6s} {'QRS':>4s} {'axis':>5s} {'dipole':>6s} {'trans':>5s} {'QRS-T':>5s} "
          f"{'R V1/V2/V3/V4 (mV)':>20s} {'q V5/V6':>9s} | {'LBBB':>4s} {'notch':>5s} {'V1V2':>4s} "
          f"{'S140':>4s} {'S130':>4s} | {'CRT':>4s} | sinus criteria failed")
    sinus_pass, strauss, own_sex = [], {"men": [], "women": []}, []
    narrower = []
    for patient in patients:
        sinus, lbbb, crt = (by_key.get((patient, name)) for name in ("sinus", "lbbb", "crt"))
        r_values = [_number(sinus, f"r_mv_{lead}") for lead in PROGRESSION_LEADS]
        fails = failed.get((patient, "sinus"), [])
        sinus_pass.append(sinus is not None and not fails)
        lbbb_failed = [f.split()[0] for f in failed.get((patient, "lbbb"), [])]
        strauss_shape = lbbb is not None and not {"strauss_qs_or_rs_v1_v2", "strauss_mid_qrs_notch"} & set(lbbb_failed)
        for sex, limit in STRAUSS_QRS_MIN_MS.items():
            strauss[sex].append(strauss_shape and _number(lbbb, "qrs_duration_ms") >= limit)
        own_sex.append(strauss["women" if sexes[patient] == "female" else "men"][-1])
        narrower.append(_number(crt, "qrs_duration_ms") < _number(lbbb, "qrs_duration_ms"))
        notch = "" if lbbb is None else str(lbbb.get("notched_lead_count", ""))
        v1v2 = "no" if "strauss_qs_or_rs_v1_v2" in lbbb_failed else "ok"
        print(f"{patient:11s} {sexes[patient]:6s} {_number(sinus, 'qrs_duration_ms'):4.0f} "
              f"{_number(sinus, 'qrs_axis_deg'):+5.0f} "
              f"{extras.get(patient, {}).get('dipole_deg', float('nan')):+6.0f} "
              f"{'' if sinus is None else str(sinus.get('transition_lead', '')):>5s} "
              f"{_number(sinus, 'qrs_t_angle_deg'):5.0f} "
              f"{'/'.join(f'{r:.2f}' for r in r_values):>20s} "
              f"{_number(sinus, 'q_mv_V5'):.2f}/{_number(sinus, 'q_mv_V6'):.2f} | "
              f"{_number(lbbb, 'qrs_duration_ms'):4.0f} {notch:>5s} {v1v2:>4s} "
              f"{'yes' if strauss['men'][-1] else 'no':>4s} "
              f"{'yes' if strauss['women'][-1] else 'no':>4s} | {_number(crt, 'qrs_duration_ms'):4.0f} | "
              + ("; ".join(fails) if fails else "none"))
    n = len(patients)
    print(f"\nsinus, every healthy criterion: {sum(sinus_pass)}/{n}")
    per_criterion: dict[str, list[bool]] = {}
    for result in results:
        if result["criteria_set"] == "healthy":
            per_criterion.setdefault(result["criterion"], []).append(bool(result["passed"]))
    print("  criteria below 100 %: " + (", ".join(f"{name} {sum(v)}/{len(v)}" for name, v in per_criterion.items()
                                               if not all(v)) or "none"))
    computed = {scenario for _, scenario in by_key}
    if "lbbb" in computed:
        print(f"LBBB Strauss with the men's 140 ms: {sum(strauss['men'])}/{n}; with the women's 130 ms: "
              f"{sum(strauss['women'])}/{n}; with each patient's own sex: {sum(own_sex)}/{n}")
    if {"lbbb", "crt"} <= computed:
        print(f"CRT narrower than LBBB: {sum(narrower)}/{n}")
    for key, label in (("qrs_duration_ms", "sinus QRS duration (ms)"), ("qrs_axis_deg", "sinus frontal QRS axis (°)"),
                       ("qrs_t_angle_deg", "sinus frontal QRS-T angle (°)")):
        values = np.array([_number(by_key.get((p, "sinus")), key) for p in patients])
        population = POPULATION_MEDIANS.get(key)
        beside = f"; ELSA-Brasil median {population[0]:g} men / {population[1]:g} women" if population else ""
        print(f"{label}: median {np.nanmedian(values):.0f}, quartiles {np.nanpercentile(values, 25):.0f}-"
              f"{np.nanpercentile(values, 75):.0f}, range {np.nanmin(values):.0f}-{np.nanmax(values):.0f}{beside}")
    for sex in ("male", "female"):
        chosen = [p for p in patients if sexes[p] == sex]
        if chosen:
            print(f"{sex} ({len(chosen)}): sinus QRS median "
                  f"{np.nanmedian([_number(by_key.get((p, 'sinus')), 'qrs_duration_ms') for p in chosen]):.0f} ms, "
                  f"axis median {np.nanmedian([_number(by_key.get((p, 'sinus')), 'qrs_axis_deg') for p in chosen]):.0f}°")
    endocardium = np.array([extras[p]["lv_endocardium_ms"] for p in patients
                            if "lv_endocardium_ms" in extras.get(p, {})])
    if endocardium.size:
        print(f"sinus map: LV endocardium half activated at {np.median(endocardium[:, 0]):.0f} ms (median; range "
              f"{endocardium[:, 0].min():.0f}-{endocardium[:, 0].max():.0f}), 90 % at {np.median(endocardium[:, 1]):.0f} "
              "ms; Durrer et al. 1970: the early LV areas confluent by 15-20 ms")
    lbbb_qrs = np.array([_number(by_key.get((p, "lbbb")), "qrs_duration_ms") for p in patients])
    if np.isfinite(lbbb_qrs).any():
        print(f"LBBB QRS duration (ms): median {np.nanmedian(lbbb_qrs):.0f}, range {np.nanmin(lbbb_qrs):.0f}-"
              f"{np.nanmax(lbbb_qrs):.0f}")
    lv_times = np.array([extras[p]["lbbb_lv_ms"] for p in patients if "lbbb_lv_ms" in extras.get(p, {})])
    if lv_times.size:
        print(f"LBBB map: first LV endocardial activation {lv_times[:, 0].min():.0f}-{lv_times[:, 0].max():.0f} ms "
              f"(median {np.median(lv_times[:, 0]):.0f}), latest LV epicardial {lv_times[:, 1].min():.0f}-"
              f"{lv_times[:, 1].max():.0f} ms (median {np.median(lv_times[:, 1]):.0f}); Wyndham et al. 1980, "
              "five LBBB patients: latest LV epicardial 113-140 ms (mean 124), QRS 130-160 ms")
    if recorded:
        print("\nagainst the run's own features (recomputed − recorded): ", end="")
        diffs = []
        for (patient, scenario), row in by_key.items():
            own = recorded.get((patient, scenario))
            if own is None:
                continue
            for key in ("qrs_duration_ms", "qrs_axis_deg", "qrs_t_angle_deg", "sokolow_lyon_mv"):
                if own.get(key) not in (None, "", "nan"):
                    diffs.append((key, _number(row, key) - float(own[key])))
        for key in ("qrs_duration_ms", "qrs_axis_deg", "qrs_t_angle_deg", "sokolow_lyon_mv"):
            values = np.abs([d for k, d in diffs if k == key])
            print(f"{key} largest |difference| {values.max():.3g}", end="; " if key != "sokolow_lyon_mv" else "\n")
        for name in ("sinus", "lbbb", "crt"):
            values = [e[f"{name}_map_max_diff_ms"] for e in extras.values() if f"{name}_map_max_diff_ms" in e]
            if values:
                print(f"{name} activation maps: largest |difference| {max(values):.3g} ms")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a run's results/ folder")
    parser.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config/config.yaml"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--patients", nargs="+", help="default: every patient of the run with lead fields")
    parser.add_argument("--scenarios", nargs="+", default=["sinus", "lbbb", "crt"])
    parser.add_argument("--out", type=Path, help="keep the feature rows and Purkinje outputs here")
    parser.add_argument("--check", action="store_true", help="compare with the run's own maps and features")
    lead_fields = parser.add_mutually_exclusive_group()
    lead_fields.add_argument("--leadfields", dest="lead_fields", action="store_const", const="recompute",
                             default="run", help="recompute each patient's fibres and 12-lead lead fields with the "
                             "candidate's fibre angles and conductivities (instead of the run's)")
    lead_fields.add_argument("--intracellular", dest="lead_fields", action="store_const", const="intracellular",
                             help="rebuild the lead matrix from the run's lead-field gradients with the candidate's "
                                  "intracellular conductivities (the run's fibres and bulk conductivities kept)")
    lead_fields.add_argument("--leadfields-from", type=Path, metavar="DIR",
                             help="the fibres and 12-lead lead fields an earlier --leadfields --out DIR sweep saved "
                                  "(the candidate's fibre angles and conductivities must be theirs)")
    parser.add_argument("--run-maps", action="store_true",
                        help="the run's own activation times (no Purkinje or eikonal), their repolarisation computed "
                             "for the candidate: for a candidate that changes only the lead fields (e.g. with "
                             "--intracellular) or the action potential's repolarisation")
    parser.add_argument("--sex", default="anatomy", metavar="|".join(SEX_CHOICES) + "|women=P1,P2,...",
                        help="each patient's sex for the sex-specific criteria: from its anatomy.json (default), "
                             "the same for all, alternating female, male, ..., or the patients named women and "
                             "the rest men (a run whose anatomy has no sex)")
    parser.add_argument("--from-json", type=Path, metavar="FEATURES_JSON",
                        help="print the figures of an earlier sweep's features.json (with its --set) "
                             "without recomputing")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        config = candidate_config(args.configfile, saved["overrides"])
        patients = list(dict.fromkeys(row["patient"] for row in saved["rows"]))
        summarise(saved["rows"], saved["extras"], config, recorded_features(args.results) if args.check else None,
                  patient_sexes(args.results, patients, args.sex))
        return
    from mpi4py import MPI  # noqa: F401  (libmpi before dolfinx, which the fibre loader may import)

    config = candidate_config(args.configfile, args.overrides)
    patients_dir = args.results / "patients"
    names = args.patients or sorted(p.name for p in patients_dir.iterdir() if (p / "leadfield").is_dir())
    sexes = patient_sexes(args.results, names, args.sex)  # before the long part: a run without sex stops here
    out = args.out or Path(tempfile.mkdtemp(prefix="physiology-sweep-"))
    out.mkdir(parents=True, exist_ok=True)
    template_cache = out / "cache"  # a writable copy: the run's folder may be read-only
    if not template_cache.exists():
        shutil.copytree(args.results / "cache" / "action_potential", template_cache)
    rows: list[dict[str, Any]] = []
    extras: dict[str, dict[str, Any]] = {}
    for name in names:
        started = time.perf_counter()
        patient_rows_, extras[name] = patient_rows(patients_dir / name, config, args.scenarios, scratch=out,
                                                   template_cache=template_cache, check=args.check,
                                                   lead_fields=args.lead_fields, run_maps=args.run_maps,
                                                   lead_fields_from=args.leadfields_from)
        rows.extend(patient_rows_)
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    (out / "features.json").write_text(json.dumps({"overrides": args.overrides, "rows": rows, "extras": extras},
                                                  indent=1, default=float))
    summarise(rows, extras, config, recorded_features(args.results) if args.check else None, sexes)
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
