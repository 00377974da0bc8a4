"""Imported as the interpreter starts by every Python process of a command run under
``python -m ecgcohort.worker run`` (this folder is on its PYTHONPATH): a Snakemake ``script:``
job hands its script to the worker here, before the script's preamble imports Snakemake
(:func:`ecgcohort.worker.delegate_at_startup`). Other processes only read their command line
and two variables."""

import os
import sys

if (os.environ.get("ECGCOHORT_WORKER_SOCKET") and not os.environ.get("ECGCOHORT_WORKER_JOB")
        and sys.argv and f"{os.sep}.snakemake{os.sep}scripts{os.sep}" in os.path.abspath(sys.argv[0])):
    from ecgcohort.worker import delegate_at_startup

    delegate_at_startup()
