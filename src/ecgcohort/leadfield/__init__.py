"""Lead fields: the FEM lead-field problem per electrode (paper eq. 4), its gradients and the
lead matrix that turns nodal transmembrane potentials into electrode potentials (eq. 3)."""

from ecgcohort.lazy import lazy_exports

_SOLVER = "ecgcohort.leadfield.solver"
_EXPORTS = {
    "lead_matrix": "ecgcohort.leadfield.matrix", "p1_gradients": "ecgcohort.fem",
    "SamplePoints": "ecgcohort.leadfield.sampling", "sample_points": "ecgcohort.leadfield.sampling",
    "ORDERINGS": _SOLVER, "LeadFieldError": _SOLVER, "LeadFieldResult": _SOLVER, "LeadFieldSolver": _SOLVER,
    "CholeskyFactor": _SOLVER, "project_on_surface": _SOLVER, "stiffness_matrix": "ecgcohort.fem",
    "SolverStats": _SOLVER, "lead_field_gradients": _SOLVER, "lead_matrix_from_potentials": _SOLVER,
    "Conductivities": "ecgcohort.leadfield.tensors", "bulk_tensors": "ecgcohort.leadfield.tensors",
    "intracellular_tensors": "ecgcohort.leadfield.tensors",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
