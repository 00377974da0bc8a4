"""Which part of the surrogate's ∇Z error becomes ECG error (prints figures; not a test).

    .venv/bin/python benchmarks/surrogate_ecg_transfer.py results [--config config/config.yaml ...] \
        [--scenario sinus] [--template-cache results/cache/action_potential]

For every trained surrogate of a run (``results/surrogate/<encoding>/<target>/model.pt``) and
the pseudo lead field, on every test patient of ``results/dataset/cohort.zarr``: ∇Z per
myocardial cell against the FEM's (the field the stored lead matrix integrates, checked), then
:func:`ecgcohort.surrogate.transfer.ecg_transfer` over the QRS, the T wave and the beat of the
scenario's V_m. Prints per model the cell-level angular and magnitude errors of the electrodes,
the source-weighted error of the electrodes' and of the leads' fields, the difference gain,
and the ECG error with its magnitude-only and direction-only parts; then per lead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ecgcohort.config import load_config_files

ROOT = Path(__file__).resolve().parents[1]
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--config", nargs="+", default=[ROOT / "config/config.yaml"])
    parser.add_argument("--scenario", default="sinus")
    parser.add_argument("--template-cache", default=None)
    arguments = parser.parse_args()

    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.maps import ActivationMap
    from ecgcohort.dataset import open_cohort, open_patient_mesh
    from ecgcohort.ecg.forward import time_grid_ms
    from ecgcohort.ecg.pseudo import pseudo_lead_field_gradient
    from ecgcohort.leadfield.matrix import lead_matrix
    from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors
    from ecgcohort.surrogate.metrics import angular_error_deg, relative_magnitude_error
    from ecgcohort.surrogate.model import load_surrogate, read_code_table
    from ecgcohort.surrogate.transfer import Myocardium, ecg_transfer, qrs_and_t_phases

    config = load_config_files(arguments.config, ROOT / "workflow/schemas/config.schema.yaml")
    sigma = Conductivities.from_config(config["leadfield"]["conductivity_s_per_m"])
    evaluation = config["surrogate"]["evaluation"]
    results = arguments.results
    store = results / "dataset/cohort.zarr"
    cohort = open_cohort(store)
    test_patients = [str(p) for p, s in zip(cohort.patient.values, cohort.split.values) if str(s) == "test"]
    names = [str(n) for n in cohort.electrode.values]
    template = action_potential_template(config["electrophysiology"]["action_potential"]["cycle_length_ms"],
                                         cache_dir=arguments.template_cache or results / "cache/action_potential")
    times_ms = time_grid_ms(config["ecg"]["duration_ms"], config["ecg"]["dt_ms"])
    models = sorted(results.glob("surrogate/*/*/model.pt"))
    rows: dict[str, list[dict]] = {}
    for patient in test_patients:
        mesh = open_patient_mesh(store, patient).compute()
        one = cohort.sel(patient=patient).compute()
        nodes_m, tetrahedra = mesh.node_position.values, mesh.tetrahedra.values
        fibres = mesh.fibre_structure if "fibre_structure" in mesh else mesh.fibre_direction
        intracellular = intracellular_tensors(fibres.values, sigma)
        fem = mesh.grad_lead_field_cell.values.astype(np.float64)
        if not np.isfinite(fem).all():
            raise SystemExit(f"{patient}: the store keeps the per-cell gradients of some electrodes only "
                             "(leadfield.cell_gradient_electrodes: standard); this benchmark needs all")
        rebuilt = lead_matrix(nodes_m, tetrahedra, intracellular, fem)
        mismatch = np.abs(rebuilt - mesh.lead_matrix.values).max() / np.abs(mesh.lead_matrix.values).max()
        activation_ms = mesh.activation_time.sel(scenario=arguments.scenario).values * 1e3
        activation = ActivationMap(
            scenario=arguments.scenario, kind="", activation_ms=activation_ms,
            apd_scale=mesh.apd_scale.sel(scenario=arguments.scenario).values, sites_mm=np.zeros((0, 3)),
            site_times_ms=np.zeros(0), upstroke_ms=mesh.upstroke_spread.sel(scenario=arguments.scenario).values * 1e3)
        vm = activation.transmembrane_potential_mv(times_ms, template)
        phases = qrs_and_t_phases(times_ms, float(activation_ms.max()), evaluation["qrs_margin_ms"])
        myocardium = Myocardium(nodes_m, tetrahedra, intracellular)
        centroids = nodes_m[tetrahedra].mean(axis=1)
        electrodes_m = one.electrode_position.values
        candidates = {"pseudo lead field": pseudo_lead_field_gradient(electrodes_m, centroids, sigma.torso)}
        for path in models:
            surrogate = load_surrogate(path)
            code = read_code_table(results / f"encoding/{surrogate.encoding}/codes.csv", surrogate.encoding).code(patient)
            label = f"{surrogate.encoding}, {surrogate.metadata['target']}"
            candidates[label] = surrogate.cell_gradient(nodes_m, tetrahedra, electrodes_m,
                                                        one.electrode_normalised_position.values, code)
        print(f"{patient}: FEM lead matrix rebuilt from the stored cell gradients within {mismatch:.1e} (max, relative)")
        for label, gradient in candidates.items():
            transfer = ecg_transfer(myocardium, vm, fem, gradient, names, phases)
            rows.setdefault(label, []).append({
                "angle": float(angular_error_deg(gradient, fem).mean()),
                "magnitude": float(np.nanmean(relative_magnitude_error(gradient, fem))),
                **{f"{phase}_{key}": values for phase, result in transfer.items() for key, values in result.items()},
            })
    header = ("model", "cell angle (deg)", "cell |dZ|/|Z|", "electrode weighted", "lead weighted", "difference gain",
              "ECG QRS", "ECG T", "ECG beat", "magnitude part", "direction part")
    print(f"\n{arguments.scenario}, mean over {len(test_patients)} test patients and the 12 leads "
          "(weighted: by |G_i grad V_m| over the beat)")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for label, patient_rows in rows.items():
        def mean(key: str) -> float:
            return float(np.mean([np.mean(row[key]) for row in patient_rows]))
        print(f"| {label} | {mean('angle'):.2f} | {mean('magnitude'):.3f} | {mean('beat_electrode_error'):.3f} | "
              f"{mean('beat_weighted_field_error'):.3f} | {mean('beat_difference_gain'):.2f} | "
              f"{mean('qrs_ecg_error'):.3f} | {mean('t_ecg_error'):.3f} | {mean('beat_ecg_error'):.3f} | "
              f"{mean('beat_magnitude_part'):.3f} | {mean('beat_direction_part'):.3f} |")
    print("\nper lead, beat: ECG error / lead weighted field error / difference gain")
    print("| model | " + " | ".join(LEADS) + " |\n|" + "---|" * (len(LEADS) + 1))
    for label, patient_rows in rows.items():
        per_lead = [np.mean([row[key] for row in patient_rows], axis=0)
                    for key in ("beat_ecg_error", "beat_weighted_field_error", "beat_difference_gain")]
        cells = [f"{a:.2f} / {b:.2f} / {c:.1f}" for a, b, c in zip(*per_lead)]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
