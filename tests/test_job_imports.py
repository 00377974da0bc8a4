"""What the per-patient jobs import: each job module leaves out the heavy packages it does not
use (issue 61: start-up and imports were about 20 s of a patient's job time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def modules_after(code: str) -> set[str]:
    """The modules loaded in a fresh interpreter after running ``code``."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("code, absent", [
    # patient_parameters: a JSON file
    ("from ecgcohort.cohort import write_patient_parameters", {"pandas"}),
    # assemble_anatomy: no electrode tables
    ("from ecgcohort.anatomy.jobs import assemble", {"pandas", "pyvista"}),
    # compute_activations and the bank read the Purkinje junctions, never walk the trees
    ("from ecgcohort.conduction.jobs import compute_activations", {"networkx", "pyvista"}),
])
def test_job_modules_leave_out_what_they_do_not_use(code: str, absent: set[str]) -> None:
    loaded = modules_after(code)
    assert not absent & loaded, f"{code!r} imports {sorted(absent & loaded)}"
