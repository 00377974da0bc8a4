"""Electrical activation: Purkinje trees, anisotropic eikonal activation times and the
transmembrane potential built from an action-potential template."""
