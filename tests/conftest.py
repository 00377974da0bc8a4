"""Shared fixtures: the repository, and throw-away copies of the workflow to run Snakemake in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch._dynamo  # noqa: F401  (see below)
import yaml

# Importing triton (torch._dynamo does; anny -> roma -> torch does) segfaults once VTK's
# off-screen rendering has loaded Mesa's llvmpipe LLVM into the process (the torso model
# refuses with a message then, see ecgcohort.shapes.torso). Workflow jobs are separate
# processes; the test session is one, so triton is loaded first.

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "envs", "profiles")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


#: The resolution the workflow tests run at: a 4 mm heart in a 30 mm torso, the eikonal refined
#: once (the default before the converged one; its figures are what the tests' physiological
#: gates were measured on). The tests check what the workflow does; the convergence ladder
#: (docs/results/verification.md) checks what the resolution gets wrong.
TEST_RESOLUTION = {"meshing": {"heart_element_size_mm": 4.0, "torso_element_size_mm": 30.0},
                   "electrophysiology": {"eikonal_refinements": 1}}


@pytest.fixture(scope="session")
def workflow_config() -> dict:
    """config/config.yaml at :data:`TEST_RESOLUTION`."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for section, values in TEST_RESOLUTION.items():
        config.setdefault(section, {}).update(values)
    return config


class WorkflowCopy:
    """A copy of the workflow in a temporary directory, with its own config and results."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True)
        for part in WORKFLOW_PARTS:
            source = REPO / part
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / part)
        (root / "src").symlink_to(REPO / "src")

    def write_config(self, config: dict, name: str = "config/config.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def snakemake(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=self.root, env=environment,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workflow_copy(tmp_path: Path) -> WorkflowCopy:
    return WorkflowCopy(tmp_path / "workflow-copy")
