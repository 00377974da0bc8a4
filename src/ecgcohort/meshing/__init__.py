"""Tetrahedral meshing of the joint heart-torso anatomy with gmsh."""

from ecgcohort.meshing.tetra import (
    FACET_TAGS,
    VOLUME_TAGS,
    MeshingError,
    MeshReport,
    TaggedMesh,
    mesh_heart_in_torso,
    read_tagged_mesh,
    tetrahedron_quality,
)

__all__ = ["FACET_TAGS", "VOLUME_TAGS", "MeshReport", "MeshingError", "TaggedMesh", "mesh_heart_in_torso",
           "read_tagged_mesh", "tetrahedron_quality"]
