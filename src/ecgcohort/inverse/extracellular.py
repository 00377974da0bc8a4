"""The extracellular potential of a patient's transmembrane potentials on the heart–torso mesh:
the inverse benchmark's ground truth made by the cohort's own 3-D physics, not by the transfer
matrix the methods invert.

Problem (the pseudo-bidomain model of the lead fields): −div(G∇φ) = div(G_i∇V_m) in the body,
G = G_i + G_e in the myocardium, σ_blood in the blood pools, σ0 in the torso; G∇φ·n = 0 on the
body surface Σ; ∫_Σ φ = 0. P1 on the lead-field mesh: K φ = −B V_m with K the lead fields'
stiffness matrix (:class:`~ecgcohort.leadfield.solver.LeadFieldSolver`, factored once) and B
the G_i stiffness matrix of the myocardial cells; one right-hand side per instant, one block
solve.

Reciprocity. Electrode e's lead field solves K Z_e = l_e (its discrete delta minus the uniform
sink), so l_eᵀφ = Z_eᵀKφ = −Z_eᵀB V_m = (L V_m)_e with the Galerkin lead matrix L = −(B Z)ᵀ:
φ read at the electrode with the delta's weights is the lead-field ECG, to solver round-off.
The workflow's ECGs use the recovered-gradient lead matrix (``leadfield.cell_gradient``), which
differs from the Galerkin one by a discretisation error; :func:`reciprocity_error` measures it.

Units: positions in mm at the interface (m inside the solver), V_m and φ in mV.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from ecgcohort.fem import p1_gradients, stiffness_matrix
from ecgcohort.inverse.problem import InverseError
from ecgcohort.leadfield.solver import DEFAULT_LOW_RANK_TOLERANCE, MM, LeadFieldSolver
from ecgcohort.leadfield.tensors import Conductivities, intracellular_tensors
from ecgcohort.meshing.tetra import VOLUME_TAGS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Myocardium:
    """The myocardial submesh that carries V_m: ``points_mm`` (n, 3), ``tetrahedra`` (c, 4)
    local node numbers, ``parent_nodes`` (n,) and ``parent_cells`` (c,) their indices in the
    full mesh, ``cell_structure`` (c, 3, 3) each cell's fibre structure tensor (the cell's mean
    of f fᵀ, trace 1)."""

    points_mm: np.ndarray
    tetrahedra: np.ndarray
    parent_nodes: np.ndarray
    parent_cells: np.ndarray
    cell_structure: np.ndarray

    @classmethod
    def from_fibres(cls, fibres) -> "Myocardium":
        """From a :class:`ecgcohort.fibers.MyocardialFibres`."""
        return cls(np.asarray(fibres.points_mm, float), np.asarray(fibres.tetrahedra, np.int64),
                   np.asarray(fibres.parent_nodes, np.int64), np.asarray(fibres.parent_cells, np.int64),
                   fibres.cell_structure)

    @classmethod
    def of_mesh(cls, points_mm: np.ndarray, tetrahedra: np.ndarray, cell_tags: np.ndarray,
                cell_structure: np.ndarray | None = None) -> "Myocardium":
        """The myocardial cells (tag ``myocardium``) of a tagged mesh, fibre structure
        ``cell_structure`` per myocardial cell (None: I/3, fibres in every direction alike — isotropic
        when the fibre and cross-fibre conductivities are equal)."""
        cells = np.flatnonzero(np.asarray(cell_tags) == VOLUME_TAGS["myocardium"])
        nodes, local = np.unique(np.asarray(tetrahedra)[cells], return_inverse=True)
        structure = np.broadcast_to(np.eye(3) / 3, (len(cells), 3, 3)).copy() if cell_structure is None else np.asarray(cell_structure, float)
        return cls(np.asarray(points_mm, float)[nodes], local.reshape(-1, 4), nodes, cells, structure)


class ExtracellularSolver:
    """φ (mV) of V_m (mV) on one patient's mesh: the lead-field matrix assembled and factored
    once (``mesh_path`` a tagged ``.msh`` in mm, the lead fields' ``conductivities`` and
    ``low_rank_tolerance``), the myocardium's G_i stiffness matrix built once."""

    def __init__(self, mesh_path, conductivities: Conductivities, myocardium: Myocardium, *,
                 low_rank_tolerance: float = DEFAULT_LOW_RANK_TOLERANCE, max_electrode_offset_mm: float = 1.0):
        self.solver = LeadFieldSolver(mesh_path, conductivities, myocardium.cell_structure, myocardium.parent_cells,
                                      low_rank_tolerance=low_rank_tolerance,
                                      max_electrode_offset_mm=max_electrode_offset_mm)
        offset = np.abs(self.solver.mesh.points_m[myocardium.parent_nodes] - myocardium.points_mm * MM).max()
        if offset > 1e-9:
            raise InverseError(f"the myocardium's nodes are {offset / MM:.3g} mm off the mesh's: another mesh")
        self.myocardium = myocardium
        self.conductivities = conductivities
        points_m = myocardium.points_mm * MM
        grads, volumes = p1_gradients(points_m, myocardium.tetrahedra)
        self.source_matrix = stiffness_matrix(myocardium.tetrahedra, grads, volumes,
                                              intracellular_tensors(myocardium.cell_structure, conductivities),
                                              len(points_m))
        self.solve_s = 0.0

    @property
    def n_nodes(self) -> int:
        return len(self.solver.mesh.points_m)

    def potentials(self, vm_mv: np.ndarray) -> np.ndarray:
        """φ (N, T) in mV on every mesh node, zero mean over the body surface, for V_m (n, T)
        in mV on the myocardium's nodes (one column per instant)."""
        vm = np.asarray(vm_mv, dtype=np.float64)
        if vm.ndim == 1:
            vm = vm[:, None]
        if vm.shape[0] != len(self.myocardium.points_mm):
            raise InverseError(f"V_m has {vm.shape[0]} nodes, the myocardium {len(self.myocardium.points_mm)}")
        start = time.perf_counter()
        rhs = np.zeros((self.n_nodes, vm.shape[1]))
        rhs[self.myocardium.parent_nodes] = -(self.source_matrix @ vm)
        rhs[self.solver.pinned] = 0.0
        phi = self.solver.cholesky.solve(rhs)
        phi = np.asarray(phi).reshape(self.n_nodes, -1)
        phi -= (self.solver.surface_mass @ phi)[None, :] / self.solver.surface_area
        self.solve_s += time.perf_counter() - start
        return phi

    def interpolation(self, points_mm: np.ndarray) -> scipy.sparse.csr_matrix:
        """The P1 interpolation (P, N) at points (P, 3) in mm inside the mesh (a containing
        cell's barycentric weights); a point outside the mesh raises."""
        points = np.asarray(points_mm, dtype=np.float64).reshape(-1, 3) * MM
        cells = self.solver.locate(points)
        tets = self.solver.mesh.tetrahedra[cells]
        offsets = points - self.solver.mesh.points_m[tets[:, 0]]
        weights = np.einsum("pai,pi->pa", self.solver.grads[cells], offsets)
        weights[:, 0] += 1.0
        rows = np.repeat(np.arange(len(points)), 4)
        return scipy.sparse.csr_matrix((weights.ravel(), (rows, tets.ravel())), shape=(len(points), self.n_nodes))

    def electrode_reading(self, electrodes_mm: np.ndarray) -> scipy.sparse.csr_matrix:
        """The reading (E, N) at electrodes (E, 3) in mm on the body surface: the weights of
        the lead fields' discrete delta (so that reciprocity is exact)."""
        nodes, weights = self.solver.electrode_loads(np.asarray(electrodes_mm, dtype=np.float64).reshape(-1, 3) * MM)
        rows = np.repeat(np.arange(len(nodes)), 3)
        return scipy.sparse.csr_matrix((weights.ravel(), (rows, nodes.ravel())), shape=(len(nodes), self.n_nodes))

    def galerkin_lead_matrix(self, electrodes_mm: np.ndarray) -> np.ndarray:
        """L (E, n) = −(B Z)ᵀ of the electrodes' lead fields, on the myocardium's nodes: the
        direct route to the same electrode potentials (L V_m)."""
        z = self.solver.solve(np.asarray(electrodes_mm, dtype=np.float64).reshape(-1, 3) * MM)
        return -np.ascontiguousarray((self.source_matrix @ z[:, self.myocardium.parent_nodes].T).T)


def relative_l2(reference: np.ndarray, other: np.ndarray) -> float:
    """‖other − reference‖₂ / ‖reference‖₂ over all entries."""
    reference = np.asarray(reference, dtype=np.float64)
    return float(np.linalg.norm(np.asarray(other, dtype=np.float64) - reference) / np.linalg.norm(reference))


def reciprocity_error(electrode_potentials: np.ndarray, lead_field_potentials: np.ndarray) -> float:
    """Relative ℓ2 difference (over electrodes and instants) of the extracellular solve's
    electrode potentials (E, T) from the lead-field ECG's (E, T), both referenced to the
    body-surface mean (as the lead fields are); the common mode over electrodes is removed
    first, since only differences between electrodes are measured."""
    a = np.asarray(electrode_potentials, dtype=np.float64)
    b = np.asarray(lead_field_potentials, dtype=np.float64)
    if a.shape != b.shape:
        raise InverseError(f"electrode potentials {a.shape} and lead-field potentials {b.shape} differ in shape")
    return relative_l2(b - b.mean(axis=0), a - a.mean(axis=0))


@dataclass
class ScenarioTruth:
    """A cohort scenario's ground truth: the heart-surface ``dynamics`` (φ in mV), the body
    potentials (m, T) in mV at the measurement points, and the reciprocity figures: the
    relative ℓ2 difference of φ at the standard electrodes from their Galerkin lead-field ECG
    (round-off) and from the workflow's lead-field ECG (its ``cell_gradient``)."""

    dynamics: object
    body: np.ndarray
    reciprocity: dict


def scenario_truth(solver: ExtracellularSolver, *, activation, template, spec, heart_points_mm: np.ndarray,
                   measurement_points_mm: np.ndarray, electrodes_mm: np.ndarray,
                   cell_gradient: str = "recovered") -> ScenarioTruth:
    """The extracellular truth of one activation map (``activation``, an
    :class:`~ecgcohort.conduction.maps.ActivationMap` on the solver's myocardium) with the TP06
    ``template``, at the instants of ``spec`` (a :class:`~ecgcohort.inverse.dynamics.DynamicsSpec`,
    times × ``time_unit_ms``): φ read at the heart-surface nodes (P1 interpolation) and at the
    measurement points and ``electrodes_mm`` (the lead fields' delta weights)."""
    from ecgcohort.inverse.dynamics import HeartDynamics, myocardial_boundary
    from ecgcohort.inverse.metrics import activation_times
    from ecgcohort.leadfield.matrix import lead_matrix
    from ecgcohort.leadfield.solver import project_on_surface

    myocardium = solver.myocardium
    if activation.activation_ms.shape != (len(myocardium.points_mm),):
        raise InverseError(f"the activation map has {activation.activation_ms.size} nodes, the myocardium "
                           f"{len(myocardium.points_mm)}")
    if not np.isfinite(activation.activation_ms).all():
        raise InverseError(f"scenario {activation.scenario}: the activation map has non-finite times")
    times_ms = spec.times * spec.time_unit_ms
    vm = activation.transmembrane_potential_mv(times_ms, template)
    phi = solver.potentials(vm)
    heart = solver.interpolation(heart_points_mm) @ phi
    body = solver.electrode_reading(measurement_points_mm) @ phi

    electrodes = np.asarray(electrodes_mm, dtype=np.float64).reshape(-1, 3)
    read = solver.electrode_reading(electrodes) @ phi
    z = solver.solver.solve(electrodes * MM)
    galerkin = -((solver.source_matrix @ z[:, myocardium.parent_nodes].T).T) @ vm
    reciprocity = {"galerkin": reciprocity_error(read, galerkin), "cell_gradient": cell_gradient}
    if cell_gradient == "recovered":
        gradients = solver.solver.recovered_gradients(z, myocardium.parent_cells)
        workflow = lead_matrix(myocardium.points_mm * MM, myocardium.tetrahedra,
                               intracellular_tensors(myocardium.cell_structure, solver.conductivities), gradients) @ vm
        reciprocity["workflow"] = reciprocity_error(read, workflow)
    else:
        reciprocity["workflow"] = reciprocity["galerkin"]
    if not reciprocity["galerkin"] < 1e-6:
        raise InverseError(f"scenario {activation.scenario}: φ at the electrodes differs from the Galerkin lead-field "
                           f"ECG by {reciprocity['galerkin']:.3g} (relative ℓ2): the solve is not reciprocal")

    _, nodes, weights = project_on_surface(myocardium.points_mm, myocardial_boundary(myocardium.tetrahedra),
                                           np.asarray(heart_points_mm, dtype=np.float64))
    tau = np.einsum("nk,nk->n", weights, activation.activation_ms[nodes]) / spec.time_unit_ms
    # the excitation the EP-informed methods reconstruct: V_m of the nearest myocardial boundary,
    # normalised by the template's resting and peak values to the [0, 1] of the Aliev–Panfilov u
    surface_vm = np.einsum("nk,nkt->nt", weights, vm[nodes])
    rest, peak = float(vm.min()), float(vm.max())
    excitation = (surface_vm - rest) / max(peak - rest, 1e-12)
    sites = (np.asarray(activation.sites_mm, dtype=np.float64).reshape(-1, 3) if activation.kind == "random_pacing"
             else np.zeros((0, 3)))
    dynamics = HeartDynamics(activation.scenario, spec.times, heart, tau, units="mV", polarity="extracellular",
                             electrogram_activation=activation_times(heart, spec.times, "extracellular"),
                             sites_mm=sites, excitation=excitation)
    log.info("%s: φ of %d instants on %d nodes in %.2f s; heart surface %.1f to %.1f mV, body %.2f to %.2f mV; "
             "reciprocity with the lead-field ECG %.2g (Galerkin), %.3g (%s)", activation.scenario, len(times_ms),
             solver.n_nodes, solver.solve_s, heart.min(), heart.max(), body.min(), body.max(), reciprocity["galerkin"],
             reciprocity["workflow"], cell_gradient)
    return ScenarioTruth(dynamics, body, reciprocity)
