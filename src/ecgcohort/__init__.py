"""ecgcohort: virtual heart-torso patient cohorts, lead fields and ECGs, stored in Zarr.

Stages are subpackages that follow the data flow (each imports only from those before it):
``cohort`` -> ``shapes`` -> ``anatomy`` -> ``meshing`` -> ``fibers`` -> ``conduction`` ->
``leadfield`` -> ``ecg`` -> ``dataset`` -> ``encoding`` -> ``surrogate`` -> ``evaluation``.
"""

import os

__version__ = "0.1.0"

# libigl's parallel loops use every core of the machine unless IGL_NUM_THREADS says otherwise: a
# workflow job declared one thread would take both of a workstation's, and a cluster job all of
# its node's threads inside its own cores. Snakemake sets OMP_NUM_THREADS to the job's threads;
# libigl follows it where IGL_NUM_THREADS is not set. Each query's answer does not depend on it.
if "OMP_NUM_THREADS" in os.environ:
    os.environ.setdefault("IGL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

# A workflow job under `python -m ecgcohort.worker run` hands its script to the worker, which has
# the heavy modules imported already (ecgcohort.worker); every script imports ecgcohort first
# (where the worker's sitecustomize has not handed it over already, or was refused).
if (os.environ.get("ECGCOHORT_WORKER_SOCKET") and not os.environ.get("ECGCOHORT_WORKER_JOB")
        and not os.environ.get("ECGCOHORT_WORKER_REFUSED")):
    from ecgcohort.worker import delegate_snakemake_script

    delegate_snakemake_script()
