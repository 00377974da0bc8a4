"""Which patients the inverse benchmark runs on: read when the workflow is planned, so this
module imports nothing heavy (every cluster job plans its own part of the workflow)."""

from __future__ import annotations

from typing import Sequence


def benchmark_patients(selection: str | int, patients: Sequence[str]) -> list[str]:
    """The patients the inverse benchmark runs on (config ``inverse.patients``): ``"test"`` every
    test patient, ``"all"`` every patient, an integer N the first N test patients in id order (a
    large cohort's benchmark needs tens of patients, not its thousand test patients)."""
    # by number, not by string: test-10000 comes after test-9999
    test = sorted((patient for patient in patients if patient.startswith("test-")),
                  key=lambda patient: int(patient.partition("-")[2]))
    if selection == "all":
        return list(patients)
    if selection == "test":
        return test
    if isinstance(selection, bool) or not isinstance(selection, int) or selection < 1:
        raise ValueError(f"inverse.patients: {selection!r} is neither test, all nor a positive number "
                         "of test patients")
    return test[:selection]
