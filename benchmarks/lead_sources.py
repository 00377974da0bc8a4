"""Which walls write a lead's QRS: one scenario's 12-lead QRS of a candidate physiology split by
the region of the myocardium its sources lie in (prints figures; not a test).

    nice -n 19 env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/lead_sources.py \\
        RESULTS [--configfile config/config.yaml more.yaml] [--set KEY=VALUE] [--patients train-0000] \\
        [--scenario sinus] [--leads V1 V2 V3]

A lead is linear in the lead matrix's columns, lead(t) = Σ_n L_n V_m,n(t) over the myocardial
nodes n, so splitting the nodes splits the lead exactly: the parts add up to the lead at every
instant. The regions, from :func:`ecgcohort.conduction.tensors.wall_distances` and the fibres'
rotational coordinate: the septum (nodes nearer to the other ventricle's endocardium than to the
epicardium) in its LV and RV halves, the LV free wall in anterior, lateral and inferior sectors
of the rotational coordinate (0–135°, 135–225°, 225–360°; 0° towards the RV, positive anterior),
and the RV free wall. The map is the candidate's, made as :mod:`physiology_sweep` makes it (the
candidate is the config files with each ``--set`` merged in); the lead matrix is the run's. Per
patient and lead: the lead's largest and smallest values in the QRS (its R and S, from the first
activation to 10 ms after the last) with their times, and each region's part at those two instants, in mV.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from physiology_sweep import REPO, candidate_config, candidate_map_settings, grow_candidate_purkinje  # noqa: E402

REGIONS = ("LV septum", "LV anterior", "LV lateral", "LV inferior", "RV septum", "RV free wall")


def node_regions(fibres) -> np.ndarray:
    """(n_nodes,) the region name of every myocardial node (:data:`REGIONS`)."""
    from ecgcohort.conduction.tensors import wall_distances

    coordinates = fibres.coordinates
    d_lv, d_rv, d_epi = wall_distances(fibres.points_mm, fibres.tetrahedra, coordinates["transmural"],
                                       coordinates["ventricle"])
    septum = np.maximum(d_lv, d_rv) < d_epi
    lv = d_lv <= d_rv
    angle = np.degrees(coordinates["rotational"]) % 360.0
    # 0° towards the RV, positive anterior (counter-clockwise seen from the base)
    sector = np.select([angle < 135.0, angle < 225.0], ["LV anterior", "LV lateral"], "LV inferior")
    return np.where(septum, np.where(lv, "LV septum", "RV septum"), np.where(lv, sector, "RV free wall"))


def lead_parts(patient_dir: Path, config: dict, scenario_name: str, leads: list[str], scratch: Path) -> dict:
    """The candidate's map of ``scenario_name`` on one patient and, per lead, its R and S (mV, ms)
    with every region's part at those instants."""
    from ecgcohort.conduction.action_potential import action_potential_template
    from ecgcohort.conduction.jobs import PatientConduction, activation_map, conduction_velocities
    from ecgcohort.conduction.scenarios import scenarios_from_config
    from ecgcohort.ecg import electrode_potentials, read_lead_field_chunks, standard_leads, time_grid_ms
    from ecgcohort.ecg.leads import LEAD_NAMES

    patient, ep = patient_dir.name, config["electrophysiology"]
    junctions = grow_candidate_purkinje(patient_dir, config, scratch)
    settings = candidate_map_settings(config, scratch / "cache")
    conduction = PatientConduction.read(patient_dir / "fibres/fibres.npz", patient_dir / "anatomy/heart.vtp",
                                        junctions, settings)
    conduction.grid.prepare(*conduction_velocities(settings.velocities), device="cpu", threads=1)
    scenario = scenarios_from_config(ep["scenarios"])[scenario_name]
    activation = activation_map(patient, scenario_name, dataclasses.asdict(scenario), conduction, settings)
    chunks = read_lead_field_chunks(sorted((patient_dir / "leadfield").glob("chunk-*.npz"),
                                           key=lambda p: int(p.stem.split("-")[1])),
                                    ("electrode_positions_m", "lead_matrix"))
    names = [str(n) for n in chunks["electrode_names"]]
    template = action_potential_template(float(ep["action_potential"]["cycle_length_ms"]), cache_dir=scratch / "cache")
    times = time_grid_ms(config["ecg"]["duration_ms"], config["ecg"]["dt_ms"])
    tau = activation.activation_ms
    window = (times >= tau.min()) & (times <= tau.max() + 10.0)
    regions = node_regions(conduction.fibres)
    rows = [LEAD_NAMES.index(lead) for lead in leads]
    parts = {}
    for region in REGIONS:
        matrix = np.where(regions == region, chunks["lead_matrix"], 0.0)
        parts[region] = standard_leads(electrode_potentials(matrix, activation, times, template), names)[rows] * 1e3
    total = sum(parts.values())
    result = {}
    for i, lead in enumerate(leads):
        signal = np.where(window, total[i], np.nan)
        peaks = {"R": int(np.nanargmax(signal)), "S": int(np.nanargmin(signal))}
        result[lead] = {wave: (float(times[k]), float(total[i, k]), {r: float(parts[r][i, k]) for r in REGIONS})
                        for wave, k in peaks.items()}
    shares = {region: int((regions == region).sum()) for region in REGIONS}
    return {"leads": result, "nodes": shares}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config/config.yaml"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--patients", nargs="+", help="default: every patient of the run with lead fields")
    parser.add_argument("--scenario", default="sinus")
    parser.add_argument("--leads", nargs="+", default=["V1", "V2", "V3"])
    args = parser.parse_args()
    config = candidate_config(args.configfile, args.overrides)
    patients = args.patients or sorted(p.name for p in (args.results / "patients").iterdir()
                                       if (p / "leadfield").is_dir())
    print(f"{args.scenario}, parts (mV) at each lead's R and S; regions: {', '.join(REGIONS)}")
    for patient in patients:
        with tempfile.TemporaryDirectory() as scratch:
            found = lead_parts(args.results / "patients" / patient, config, args.scenario, args.leads, Path(scratch))
        print(f"{patient}: nodes " + ", ".join(f"{r} {n}" for r, n in found["nodes"].items()))
        for lead, waves in found["leads"].items():
            for wave, (time_ms, value, parts) in waves.items():
                print(f"  {lead} {wave} {value:+.2f} mV at {time_ms:.0f} ms = "
                      + " ".join(f"{parts[r]:+.2f}" for r in REGIONS))


if __name__ == "__main__":
    main()
