"""The cohort's diffused repolarisation times against a reaction–eikonal tissue model, on one
patient (prints figures; not a test).

    .venv/bin/python benchmarks/repolarisation_models.py results/patients/train-0000 \
        [--config config/config.yaml ...] [--scenario sinus] [--template-cache results/cache/action_potential]

For one activation map of a patient made by the workflow (its fibres, activation map and lead
fields), the repolarisation times r (ms per myocardial node) of

- the intrinsic APDs alone (no electrotonic coupling),
- the cohort's model: r₀ smoothed by r − ∇·(Λ∇r) = r₀ with the configured electrotonic lengths
  (:mod:`ecgcohort.conduction.repolarisation`), and with each length pair of a small scan,
- the reaction–eikonal model (:mod:`ecgcohort.conduction.reaction_eikonal`): TP06 cells (and
  Mitchell–Schaeffer ones, ``--cells``) with the same intrinsic APDs, forced at the same
  activation times, coupled by the monodomain diffusion (``--diffusion``, mm²/ms along and
  across the fibres); uncoupled (D = 0) as a check of its APD calibration,

and, for each, the dispersion of r and of the APD, the APD's transmural and apico-basal
differences and its slope against the activation time (Franz et al. 1987's inverse relation),
from one regression, the distance from the reaction–eikonal times, and the
sinus ECG's T wave (the workflow's lead matrix and TP06 template, the APD scales that put every
node's repolarisation at r): T amplitudes in I, II, V2 and V5 and the T-wave window's relative
ℓ2 distance from the reaction–eikonal model's. ``--tissue-ecg`` adds the ECG of the tissue
model's own coupled V_m (sampled every 1 ms) beside the stretched template's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ecgcohort.conduction.action_potential import action_potential_template, paced_state
from ecgcohort.conduction.maps import ActivationMap, load_activation
from ecgcohort.conduction.reaction_eikonal import MitchellSchaeffer, TenTusscher, reaction_eikonal_times
from ecgcohort.conduction.repolarisation import Repolarisation, diffuse_repolarisation, intrinsic_apd_scale
from ecgcohort.conduction.scenarios import ventricular_frame
from ecgcohort.config import load_config_files
from ecgcohort.ecg.forward import electrode_potentials, read_lead_field_chunks, relative_difference, time_grid_ms
from ecgcohort.ecg.leads import LEAD_NAMES, standard_leads
from ecgcohort.fibers import load_fibres

ROOT = Path(__file__).resolve().parents[1]
#: the reaction-eikonal's cell models and their time steps (ms)
CELLS = {"tp06": 0.02, "mitchell-schaeffer": 0.05}
LENGTH_SCAN_MM = [(0.0, 0.0), (2.0, 1.0), (3.0, 2.0), (4.0, 2.0), (4.0, 3.0), (6.0, 3.0), (6.0, 4.0), (8.0, 5.0),
                  (10.0, 6.0)]


def apd_gradients(apd_ms: np.ndarray, activation_ms: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Least-squares APD ≈ a + b·transmural + c·longitudinal + d·τ: (b, c, d), i.e. the APD
    difference epi − endo and base − apex (ms) and the APD's slope against activation time."""
    design = np.column_stack([np.ones_like(apd_ms), frame, activation_ms])
    return np.linalg.lstsq(design, apd_ms, rcond=None)[0][1:]


def summary(label: str, activation_ms: np.ndarray, repolarisation_ms: np.ndarray,
            reference_ms: np.ndarray | None, frame: np.ndarray) -> str:
    """One line: dispersion of r and APD (ms), the APD's gradients (:func:`apd_gradients`), RMS /
    max distance from ``reference_ms``."""
    apd = repolarisation_ms - activation_ms
    transmural, longitudinal, slope = apd_gradients(apd, activation_ms, frame)
    line = (f"{label:<36} r range {np.ptp(repolarisation_ms):5.1f} SD {repolarisation_ms.std():5.1f} | APD SD "
            f"{apd.std():5.1f}, epi-endo {transmural:+6.1f}, base-apex {longitudinal:+6.1f} ms, "
            f"dAPD/dtau {slope:+.2f}")
    if reference_ms is not None:
        difference = repolarisation_ms - reference_ms
        line += f" | vs tissue: RMS {np.sqrt(np.mean(difference ** 2)):5.2f} max {np.abs(difference).max():5.1f} ms"
    return line


def sampled_voltage(result, times_ms: np.ndarray) -> np.ndarray:
    """The tissue's sampled voltage (n, k) at ``times_ms``: linear between samples, the first
    sample before them and the last after (the tissue is at rest at both ends)."""
    position = np.clip((times_ms - result.sample_times_ms[0]) / np.diff(result.sample_times_ms[:2])[0], 0.0,
                       result.voltage.shape[1] - 1)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, result.voltage.shape[1] - 1)
    fraction = position - lower
    return result.voltage[:, lower] * (1.0 - fraction) + result.voltage[:, upper] * fraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patient_dir", type=Path)
    parser.add_argument("--config", nargs="+", default=[str(ROOT / "config/config.yaml")])
    parser.add_argument("--scenario", default="sinus")
    parser.add_argument("--diffusion", nargs=2, type=float, default=(0.11, 0.017), metavar=("ALONG", "ACROSS"))
    parser.add_argument("--cells", nargs="+", choices=sorted(CELLS), default=["tp06"])
    parser.add_argument("--coupled-only", action="store_true", help="skip the uncoupled calibration check")
    parser.add_argument("--tissue-ecg", action="store_true",
                        help="also the ECG of the first cell model's own coupled V_m (not the stretched template)")
    parser.add_argument("--template-cache", default=str(ROOT / "results/cache/action_potential"))
    args = parser.parse_args()

    config = load_config_files(args.config, ROOT / "workflow/schemas/config.schema.yaml")
    section = config["electrophysiology"]["action_potential"]
    settings = Repolarisation.from_config(section)
    fibres = load_fibres(args.patient_dir / "fibres/fibres.npz")
    activation = load_activation(args.patient_dir / f"activation/{args.scenario}.npz")
    template = action_potential_template(float(section["cycle_length_ms"]), cache_dir=args.template_cache)
    tau = activation.activation_ms
    peak, span = template.peak_time_ms, template.apd90_ms - template.peak_time_ms
    longitudinal = ventricular_frame(fibres).longitudinal
    frame = np.column_stack([np.clip(fibres.coordinates["transmural"], 0.0, 1.0), longitudinal])
    intrinsic = intrinsic_apd_scale(longitudinal, fibres.coordinates["transmural"], fibres.coordinates["ventricle"],
                                    settings)
    intrinsic_apd = peak + intrinsic * span
    r0 = tau + intrinsic_apd
    print(f"{args.patient_dir.name}, {args.scenario}: {fibres.n_nodes} nodes, {len(fibres.tetrahedra)} cells; "
          f"activation span {np.ptp(tau):.1f} ms; "
          f"intrinsic APD {intrinsic_apd.min():.0f}-{intrinsic_apd.max():.0f} ms; "
          f"configured lengths {settings.length_fibre_mm:g} / {settings.length_cross_mm:g} mm; "
          f"D {args.diffusion[0]:g} / {args.diffusion[1]:g} mm^2/ms")

    tissue = {}
    for cell in args.cells:
        dt_ms = CELLS[cell]
        # TP06 cells start from the paced limit cycle (the template's), at rest before the stimulus
        model = (TenTusscher(tuple(paced_state(float(section["cycle_length_ms"])))) if cell == "tp06"
                 else MitchellSchaeffer())
        for diffusion in ((tuple(args.diffusion),) if args.coupled_only else ((0.0, 0.0), tuple(args.diffusion))):
            started = time.perf_counter()
            sampled = args.tissue_ecg and cell == args.cells[0] and diffusion != (0.0, 0.0)
            result = reaction_eikonal_times(fibres.points_mm, fibres.tetrahedra, fibres.cell_structure, tau,
                                            intrinsic_apd, diffusion_mm2_per_ms=diffusion, model=model, dt_ms=dt_ms,
                                            sample_every_ms=1.0 if sampled else None)
            label = f"reaction-eikonal {cell}" + (", uncoupled" if diffusion == (0.0, 0.0) else "")
            tissue[label] = result.repolarisation_ms
            if sampled:
                own_voltage = result
            print(f"{label}: {result.steps} steps of {dt_ms:g} ms, {result.diffusion_substeps} diffusion sub-steps, "
                  f"{time.perf_counter() - started:.1f} s; depolarisation - tau: median "
                  f"{np.median(result.depolarisation_ms - tau):.2f} ms, max "
                  f"{np.abs(result.depolarisation_ms - tau).max():.2f}")
        if not args.coupled_only:
            print(f"APD calibration ({cell} uncoupled against the intrinsic r0): max "
                  f"{np.abs(tissue[f'reaction-eikonal {cell}, uncoupled'] - r0).max():.2f} ms")
    reference_label = f"reaction-eikonal {args.cells[0]}"
    reference = tissue[reference_label]

    coupled = {label: r for label, r in tissue.items() if "uncoupled" not in label}
    candidates = {"intrinsic (no coupling)": r0, **coupled}
    for lengths in LENGTH_SCAN_MM:
        candidates[f"diffused, lengths {lengths[0]:g} / {lengths[1]:g} mm"] = diffuse_repolarisation(
            fibres.points_mm, fibres.tetrahedra, fibres.cell_structure, r0, *lengths)
    configured = f"diffused, lengths {settings.length_fibre_mm:g} / {settings.length_cross_mm:g} mm"
    if configured not in candidates:
        candidates[configured] = diffuse_repolarisation(fibres.points_mm, fibres.tetrahedra, fibres.cell_structure,
                                                        r0, settings.length_fibre_mm, settings.length_cross_mm)
    for label, r in candidates.items():
        print(summary(label, tau, r, None if label == reference_label else reference, frame))
    best = min((label for label in candidates if label.startswith("diffused")),
               key=lambda label: np.mean((candidates[label] - reference) ** 2))
    print(f"closest diffused lengths to the {reference_label} times: {best}")

    chunks = sorted((args.patient_dir / "leadfield").glob("chunk-*.npz"), key=lambda p: int(p.stem.split("-")[1]))
    lead_fields = read_lead_field_chunks(chunks, ("lead_matrix",))
    names = [str(n) for n in lead_fields["electrode_names"]]
    times_ms = time_grid_ms(float(config["ecg"]["duration_ms"]), float(config["ecg"]["dt_ms"]))
    t_window = times_ms >= tau.max() + 20.0
    ecgs = {}
    for label in dict.fromkeys(["intrinsic (no coupling)", configured, best, *coupled]):
        scale = (candidates[label] - tau - peak) / span
        beat = ActivationMap(activation.scenario, activation.kind, tau, scale, activation.sites_mm,
                             activation.site_times_ms, activation.upstroke_ms)
        ecgs[label] = standard_leads(electrode_potentials(lead_fields["lead_matrix"], beat, times_ms, template), names)
    if args.tissue_ecg:
        ecgs[f"{reference_label}, its own V_m"] = standard_leads(
            lead_fields["lead_matrix"] @ sampled_voltage(own_voltage, times_ms) * 1e-3, names)
    shown = [LEAD_NAMES.index(lead) for lead in ("I", "II", "V2", "V5")]
    print(f"T wave (t >= {tau.max() + 20:.0f} ms): largest |T| in I, II, V2, V5 (mV); T-window distance from the "
          f"{reference_label} ECG (mean relative l2 over the 12 leads)")
    for label, leads in ecgs.items():
        amplitude = np.abs(leads[:, t_window]).max(axis=1) * 1e3
        distance = relative_difference(ecgs[reference_label][:, t_window], leads[:, t_window]).mean()
        print(f"  {label:<34} " + " ".join(f"{amplitude[i]:5.2f}" for i in shown) + f" | {distance:6.1%}")


if __name__ == "__main__":
    main()
