"""A patient's pictures, drawn in a job of their own after the data they show: the epicardial
fibres, the Purkinje trees, every activation map's isochrones, every 12-lead ECG and the SDF
samples. Off the data
chain, so a patient's data are not held up by drawing, and drawn only for the patients the
config's ``pictures.patients_per_split`` picks (``draw_patient`` in the workflow)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientData:
    """The files a patient's pictures are drawn from: fibres (.npz), heart surface (.vtp), the
    LV and RV Purkinje trees (.vtp), per scenario its activation map and ECG (.npz), and its SDF
    samples (.npz)."""

    fibres: str | Path
    heart: str | Path
    lv_tree: str | Path
    rv_tree: str | Path
    activations: Mapping[str, str | Path]
    ecgs: Mapping[str, str | Path]
    sdf: str | Path


@dataclass(frozen=True)
class PatientPictures:
    """Where a patient's pictures go (PNG): fibres, Purkinje trees, per scenario its isochrones
    and its 12-lead ECG, and the SDF samples."""

    fibres: str | Path
    purkinje: str | Path
    activations: Mapping[str, str | Path]
    ecgs: Mapping[str, str | Path]
    sdf: str | Path


def draw_patient(patient: str, data: PatientData, pictures: PatientPictures) -> None:
    """Draw every picture of one patient from its stored data (the same figures the data jobs
    drew before, :func:`ecgcohort.fibers.jobs.plot_fibres`,
    :func:`ecgcohort.conduction.purkinje_jobs.plot_purkinje`, :func:`ecgcohort.conduction.jobs.plot_activation`,
    :func:`ecgcohort.ecg.forward.plot_ecg` and :func:`ecgcohort.encoding.sdf.sdf_preview`)."""
    from ecgcohort.anatomy.outputs import read_surface
    from ecgcohort.conduction.jobs import plot_activation
    from ecgcohort.conduction.maps import load_activation
    from ecgcohort.conduction.purkinje import read_tree_vtk
    from ecgcohort.conduction.purkinje_jobs import plot_purkinje
    from ecgcohort.ecg.forward import EcgFigure
    from ecgcohort.encoding.sdf import read_sdf_samples, sdf_preview, sdf_preview_title
    from ecgcohort.fibers.jobs import plot_fibres
    from ecgcohort.fibers.rule_based import load_fibres

    for kind, given, wanted in (("activation maps", data.activations, pictures.activations),
                                ("ECGs", data.ecgs, pictures.ecgs)):
        if set(given) != set(wanted):
            raise ValueError(f"patient {patient}: {kind} of scenarios {sorted(given)} but pictures asked for "
                             f"{sorted(wanted)}")
    started = time.perf_counter()
    fibres = load_fibres(data.fibres)
    plot_fibres(fibres, pictures.fibres, title=patient)
    plot_purkinje(read_surface(data.heart), {"lv": read_tree_vtk(data.lv_tree), "rv": read_tree_vtk(data.rv_tree)},
                  pictures.purkinje, title=patient)
    for scenario, path in data.activations.items():
        activation = load_activation(path)
        if activation.scenario != scenario:
            raise ValueError(f"patient {patient}: {path} holds scenario '{activation.scenario}', not '{scenario}'")
        plot_activation(fibres, activation, pictures.activations[scenario], patient)
    figure = EcgFigure()
    try:
        for scenario, path in data.ecgs.items():
            with np.load(path) as ecg:
                figure.draw(ecg["time_s"], ecg["leads_v"], ecg["pseudo_leads_v"], pictures.ecgs[scenario],
                            title=f"{patient}, {scenario}: 12-lead ECG")
    finally:
        figure.close()
    sdf_preview(read_sdf_samples(data.sdf), pictures.sdf, title=sdf_preview_title(patient))
    log.info("patient %s: %d pictures in %.1f s", patient, 3 + len(data.activations) + len(data.ecgs),
             time.perf_counter() - started)
