"""ecgcohort: virtual heart-torso patient cohorts, lead fields and ECGs, stored in Zarr.

Stages are subpackages that follow the data flow (each imports only from those before it):
``cohort`` -> ``shapes`` -> ``anatomy`` -> ``meshing`` -> ``fibers`` -> ``conduction`` ->
``leadfield`` -> ``ecg`` -> ``dataset`` -> ``encoding`` -> ``surrogate`` -> ``evaluation``.
"""

__version__ = "0.1.0"
