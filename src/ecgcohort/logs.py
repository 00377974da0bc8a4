"""Logging for workflow jobs: everything a job says goes to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def logging_to(path: str | Path) -> Iterator[logging.Logger]:
    """Send the ``ecgcohort`` loggers to ``path`` and stderr; log a failure before re-raising.
    The job's time split (:mod:`ecgcohort.profiling`) goes beside the log when it succeeds."""
    from ecgcohort.profiling import StackSampler, profile_path, write_profile

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("ecgcohort")
    handlers = [logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with StackSampler() as sampler:
            yield logger
        write_profile(sampler, profile_path(path))
    except BaseException:
        logger.exception("job failed")
        raise
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
