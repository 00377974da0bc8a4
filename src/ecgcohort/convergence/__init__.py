"""Mesh convergence of the ground truth: one patient taken through a ladder of resolutions,
every level against the finest."""
