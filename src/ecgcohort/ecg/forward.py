"""Forward ECGs: electrode potentials φ(e_j, t) = L[j] @ V_m(t) (paper eq. 3 with P1 V_m) from a
patient's lead matrix and an activation map, the 12 leads, and the same with the pseudo lead
field (eq. 11) for comparison. Stored data in SI units (s, V); activation maps and the
action-potential template use ms and mV.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ecgcohort.conduction.action_potential import ActionPotential, action_potential_template
from ecgcohort.conduction.maps import ActivationMap, load_activation
from ecgcohort.ecg.inputs import read_electrode_table, read_lead_field_chunks
from ecgcohort.ecg.leads import LEAD_NAMES, standard_leads
from ecgcohort.ecg.pseudo import pseudo_lead_matrix
from ecgcohort.ecg.source_grid import (VM_BLOCK_VALUES, ColumnBlocks, GridLeadMatrix, SourceGrid,
                                      many_electrode_potentials)
from ecgcohort.fibers.rule_based import load_fibres
from ecgcohort.io import atomic_path
from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors

log = logging.getLogger(__name__)

#: V_m values sampled at once by :func:`electrode_potentials` (tests set it smaller)
_VM_BLOCK_VALUES = VM_BLOCK_VALUES


def time_grid_ms(duration_ms: float, dt_ms: float) -> np.ndarray:
    """Sampling times 0, dt, …, duration (inclusive when duration is a multiple of dt), ms."""
    if not (np.isfinite(duration_ms) and np.isfinite(dt_ms)) or duration_ms <= 0 or dt_ms <= 0:
        raise ValueError(f"ECG duration and dt must be > 0 ms, got {duration_ms!r} and {dt_ms!r}")
    # the tolerance keeps the end point that rounding of duration/dt would drop
    return np.arange(int(np.floor(duration_ms / dt_ms + 1e-9)) + 1) * float(dt_ms)


def electrode_potentials(lead_matrix: np.ndarray, activation: ActivationMap, times_ms: np.ndarray,
                         template: ActionPotential) -> np.ndarray:
    """Electrode potentials (E, T) in V from a lead matrix (E, N) on the activation map's N nodes.

    V_m = U(t − τ) (mV) is sampled for a block of nodes at a time (all time steps) and multiplied
    into the matrix's columns of those nodes while it is in the cache: memory stays at
    block × T, and the (N, T) V_m is never written out and read back (half the time at 71k nodes
    × 601 steps). Summing block by block changes only the order of the sum (relative 1e-15).
    (:func:`ecgcohort.ecg.source_grid.many_electrode_potentials` for one map.)
    """
    matrix = np.asarray(lead_matrix, dtype=np.float64)
    n_nodes = int(np.asarray(activation.activation_ms).size)
    if matrix.ndim != 2 or matrix.shape[1] != n_nodes:
        raise ValueError(f"lead matrix must be (n_electrodes, {n_nodes}) for this activation map, got {matrix.shape}")
    return many_electrode_potentials(matrix, [activation], times_ms, template, _VM_BLOCK_VALUES)[0]


def relative_difference(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per row ‖other − reference‖₂ / ‖reference‖₂ over time (NaN where the reference is 0)."""
    ref = np.asarray(reference, dtype=np.float64)
    norm = np.linalg.norm(ref, axis=-1)
    diff = np.linalg.norm(np.asarray(other, dtype=np.float64) - ref, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, diff / np.where(norm > 0, norm, 1.0), np.nan)


class EcgFigure:
    """The 12-lead preview (6 × 2 grid, mV vs ms): FEM lead field solid, pseudo lead field
    dashed, the relative difference per lead in its title. Built once and redrawn per ECG:
    laying out twelve panels costs more than drawing into them (1.0 s against 0.3 s a PNG)."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self._plt = plt
        self.figure, axes = plt.subplots(6, 2, figsize=(11, 13), sharex=True)
        self.axes = [axes[k % 6, k // 6] for k in range(len(LEAD_NAMES))]  # limb leads left, precordial right
        self.lines = []
        for k, axis in enumerate(self.axes):
            fem, = axis.plot([], [], color="C0", lw=1.2, label="FEM lead field")
            pseudo, = axis.plot([], [], color="C3", lw=1.0, ls="--", label="pseudo lead field")
            self.lines.append((fem, pseudo))
            axis.axhline(0.0, color="0.7", lw=0.5)
            axis.set_ylabel("mV")
            axis.grid(alpha=0.3)
            axis.set_title(f"{LEAD_NAMES[k]}  (relative difference 0.00)", fontsize=9)
        for axis in axes[-1]:
            axis.set_xlabel("time (ms)")
        axes[0, 0].legend(fontsize=8, loc="upper right")
        self.title = self.figure.suptitle("")
        self.figure.tight_layout()

    def draw(self, time_s: np.ndarray, leads_v: np.ndarray, pseudo_leads_v: np.ndarray, path: str | Path,
             title: str = "") -> None:
        """Draw one ECG (12, T) in V with its pseudo-lead-field counterpart and write the PNG."""
        difference = relative_difference(leads_v, pseudo_leads_v)
        t_ms = np.asarray(time_s) * 1e3
        for k, (axis, (fem, pseudo)) in enumerate(zip(self.axes, self.lines)):
            fem.set_data(t_ms, leads_v[k] * 1e3)
            pseudo.set_data(t_ms, pseudo_leads_v[k] * 1e3)
            axis.set_title(f"{LEAD_NAMES[k]}  (relative difference {difference[k]:.2f})", fontsize=9)
            axis.relim()
            axis.autoscale_view()
        self.title.set_text(title)
        with atomic_path(path) as temporary:
            self.figure.savefig(temporary, dpi=110, format="png")

    def close(self) -> None:
        self._plt.close(self.figure)


def plot_ecg(time_s: np.ndarray, leads_v: np.ndarray, pseudo_leads_v: np.ndarray, path: str | Path,
             title: str = "") -> None:
    """One 12-lead preview (:class:`EcgFigure`) as PNG."""
    figure = EcgFigure()
    try:
        figure.draw(time_s, leads_v, pseudo_leads_v, path, title)
    finally:
        figure.close()


#: where V_m is carried (``ecg.vm_nodes``)
VM_NODES = ("eikonal_grid", "mesh")


def source_potentials(lead_matrix: np.ndarray, maps: Mapping[str, ActivationMap], fibres, intracellular: np.ndarray,
                      vm_nodes: str = "eikonal_grid") -> tuple[np.ndarray | ColumnBlocks, dict[str, ActivationMap]]:
    """(the lead matrix, the maps) on the nodes V_m is carried on (``vm_nodes``): the eikonal
    grid's when the maps hold its times (:mod:`ecgcohort.ecg.source_grid`: ``lead_matrix``
    (R, N) on the myocardial ``fibres``' nodes with their ``intracellular`` tensors per cell,
    S/m), else, or with ``vm_nodes`` "mesh", the mesh's. All maps of a patient were solved on
    one grid."""
    if vm_nodes not in VM_NODES:
        raise ValueError(f"ecg.vm_nodes must be one of {VM_NODES}, got {vm_nodes!r}")
    on_grid = {name for name, activation in maps.items() if activation.refined_activation_ms is not None}
    if not on_grid or vm_nodes == "mesh":
        return lead_matrix, dict(maps)
    refinements = {maps[name].refinements for name in on_grid}
    if on_grid != set(maps) or len(refinements) > 1:
        raise ValueError(f"the activation maps were solved on different grids: {sorted(set(maps) - on_grid)} on the "
                         f"mesh, refinements {sorted(refinements)} elsewhere; recompute them together")
    grid = SourceGrid.refined(fibres.points_mm, fibres.tetrahedra, refinements.pop())
    return (GridLeadMatrix(lead_matrix, grid, intracellular),
            {name: grid.activation(activation) for name, activation in maps.items()})


def compute_ecgs(patient: str, activation_paths: Mapping[str, str | Path], chunk_paths: Sequence[str | Path],
                 fibres_npz: str | Path, electrodes_csv: str | Path, conductivities: Mapping[str, float],
                 duration_ms: float, dt_ms: float, template_cache_dir: str | Path,
                 outputs: Mapping[str, tuple[str | Path, str | Path | None]], cycle_length_ms: float = 1000.0,
                 vm_nodes: str = "eikonal_grid") -> None:
    """One patient's ECGs, one per activation map (``activation_paths``: scenario -> map), with
    the FEM and the pseudo lead field; the lead matrices are read and built once. V_m is carried
    on the eikonal grid the maps were solved on or on the mesh's nodes (``vm_nodes``,
    :func:`source_potentials`).

    Writes per scenario (``outputs``: scenario -> (npz, png)) the ``.npz`` (time_s,
    electrode_names, unipolar_v (E, T), leads_v (12, T), lead_names, pseudo_unipolar_v,
    pseudo_leads_v, pseudo_relative_difference (12,), mesh_vm_leads_v (12, T: the FEM leads of
    V_m at the mesh's nodes, lead_matrix @ V_m of the stored map; leads_v when V_m is carried
    there), evaluation_s: the job's evaluation time per map; SI units) and the 12-lead
    preview (png None: not drawn; the workflow draws them in ``draw_patient``).
    """
    chunks = read_lead_field_chunks(chunk_paths, ("electrode_positions_m", "lead_matrix"))
    names = [str(n) for n in chunks["electrode_names"]]
    table = read_electrode_table(electrodes_csv)
    if names != list(table.names):
        mismatch = next((i for i, (a, b) in enumerate(zip(names, table.names)) if a != b),
                        min(len(names), len(table.names)))
        raise ValueError(f"patient {patient}: the lead-field chunks' electrodes ({len(names)}) differ from "
                         f"{electrodes_csv} ({len(table.names)}) at position {mismatch}")
    fibres = load_fibres(fibres_npz)
    lead = chunks["lead_matrix"]
    if lead.shape[1] != fibres.n_nodes:
        raise ValueError(f"patient {patient}: the lead matrix has {lead.shape[1]} nodes, the fibres {fibres.n_nodes}")
    sigma = Conductivities.from_config(conductivities)
    pseudo = pseudo_lead_matrix(chunks["electrode_positions_m"], fibres.points_mm * 1e-3, fibres.tetrahedra,
                                intracellular_tensors(fibres.cell_structure, sigma), sigma.torso)
    both_matrices = np.vstack([lead, pseudo])
    template = action_potential_template(cycle_length_ms, cache_dir=template_cache_dir)
    times_ms = time_grid_ms(duration_ms, dt_ms)
    maps = {}
    for scenario, activation_npz in activation_paths.items():
        activation = load_activation(activation_npz)
        if activation.scenario != scenario:
            raise ValueError(f"patient {patient}: {activation_npz} holds scenario '{activation.scenario}', "
                             f"not '{scenario}'")
        if activation.activation_ms.size != fibres.n_nodes:
            raise ValueError(f"patient {patient}: the activation map has {activation.activation_ms.size} nodes, the "
                             f"fibres {fibres.n_nodes}")
        maps[scenario] = activation
    started = time.perf_counter()
    matrix, sources = source_potentials(both_matrices, maps, fibres, intracellular_tensors(fibres.cell_structure, sigma),
                                        vm_nodes)
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    # one V_m per map for both matrices; the grid's lead matrix is formed once for all maps
    potentials = dict(zip(maps, many_electrode_potentials(matrix, list(sources.values()), times_ms, template)))
    evaluation_s = (time.perf_counter() - started) / max(len(maps), 1)
    on_grid = matrix is not both_matrices
    log.info("patient %s: V_m on %d nodes (%s; lead matrix on them in %.2f s), %d maps in %.2f s", patient,
             matrix.shape[1], "the eikonal grid" if on_grid else "the mesh", setup_s, len(maps),
             evaluation_s * len(maps))
    preview = None
    for scenario, both in potentials.items():
        unipolar, pseudo_unipolar = both[:len(names)], both[len(names):]
        leads = standard_leads(unipolar, names)
        # the FEM leads of V_m at the mesh's nodes: what the stored lead matrix and map give exactly
        mesh_leads = (standard_leads(electrode_potentials(lead, maps[scenario], times_ms, template), names)
                      if on_grid else leads)
        pseudo_leads = standard_leads(pseudo_unipolar, names)
        difference = relative_difference(leads, pseudo_leads)
        log.info("patient %s, %s: ECG of %d electrodes x %d steps (FEM + pseudo); relative difference pseudo vs "
                 "FEM per lead %s", patient, scenario, len(names), times_ms.size,
                 json.dumps({name: round(float(d), 4) for name, d in zip(LEAD_NAMES, difference)}))
        out_npz, out_png = outputs[scenario]
        time_s = times_ms * 1e-3
        # uncompressed: float64 signals deflate by 3 % in 0.15 s a scenario (109 electrodes)
        with atomic_path(out_npz) as temporary, open(temporary, "wb") as stream:
            np.savez(stream, patient=np.array(patient), scenario=np.array(scenario), time_s=time_s,
                     electrode_names=np.array(names), unipolar_v=unipolar, leads_v=leads,
                     lead_names=np.array(LEAD_NAMES), pseudo_unipolar_v=pseudo_unipolar,
                     pseudo_leads_v=pseudo_leads, pseudo_relative_difference=difference,
                     mesh_vm_leads_v=mesh_leads, evaluation_s=np.array(evaluation_s))
        if out_png is not None:
            preview = preview or EcgFigure()
            preview.draw(time_s, leads, pseudo_leads, out_png, title=f"{patient}, {scenario}: 12-lead ECG")
    if preview is not None:
        preview.close()
