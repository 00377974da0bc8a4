"""Lead fields: the FEM lead-field problem per electrode (paper eq. 4), its gradients and the
lead matrix that turns nodal transmembrane potentials into electrode potentials (eq. 3)."""

from ecgcohort.leadfield.matrix import lead_matrix, p1_gradients
from ecgcohort.leadfield.sampling import SamplePoints, sample_points
from ecgcohort.leadfield.solver import (
    ORDERINGS,
    LeadFieldError,
    LeadFieldResult,
    LeadFieldSolver,
    SolverStats,
    lead_field_gradients,
    lead_matrix_from_potentials,
)
from ecgcohort.leadfield.tensors import Conductivities, bulk_tensors, intracellular_tensors

__all__ = ["ORDERINGS", "Conductivities", "LeadFieldError", "LeadFieldResult", "LeadFieldSolver", "SamplePoints",
           "SolverStats", "bulk_tensors", "intracellular_tensors", "lead_field_gradients", "lead_matrix",
           "lead_matrix_from_potentials", "p1_gradients", "sample_points"]
