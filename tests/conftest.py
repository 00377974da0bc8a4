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


@pytest.fixture(scope="session")
def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


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
