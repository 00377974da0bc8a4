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

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # `make test` runs the modules on one pytest-xdist worker per core: a worker's intra-op
    # threads beyond its share of the cores only contend with the other workers
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def pytest_collection_modifyitems(config, items):
    """Modules in the order `make test`'s workers should start them: the module with the long
    Snakemake run first, then the SLURM runs (they mostly wait on the scheduler, so they overlap
    well with computing modules), then other long tests, then the other Snakemake runs, then the
    rest; each worker takes the next module as it finishes one (:func:`pytest_xdist_make_scheduler`),
    so a long module started late would run alone at the end."""
    def rank(item) -> int:
        marks = {name for name in ("long", "workflow", "slurm") if item.get_closest_marker(name)}
        return (0 if {"long", "workflow"} <= marks else 1 if "slurm" in marks else 2 if "long" in marks
                else 3 if "workflow" in marks else 4)

    module_rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        module_rank[module] = min(module_rank.get(module, 4), rank(item))
    items.sort(key=lambda item: module_rank[item.nodeid.split("::")[0]])


@pytest.hookimpl(optionalhook=True)  # pytest -p no:xdist runs the suite in one process
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's file scheduling (a module's tests on one worker, its module fixtures built
    once), in :func:`pytest_collection_modifyitems`' order, one module per worker at a time:
    xdist's own sorts modules by their number of tests and queues a second module behind a
    worker's first, which left the SLURM module waiting behind the long workflow test. The long
    workflow test keeps a second, short test after it in its module, so that nothing is queued
    behind it."""
    from xdist.scheduler import LoadFileScheduling

    class ModulesInOrder(LoadFileScheduling):
        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            # a worker runs a test once it knows the next one (for fixture teardown), so it
            # holds the last test of its module until it gets more work: one pending test is
            # the signal to send the next module
            if self._pending_of(self.assigned_work[node]) <= 1:
                self._assign_work_unit(node)

    config.option.loadscopereorder = False
    return ModulesInOrder(config, log)


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory) -> Path:
    """The caches of the session's workflow copies (built-in shape models: 20 s per copy),
    shared by the xdist workers and never the user's (``ECGCOHORT_CACHE``; the test of the
    whole workflow runs with an empty one of its own)."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "ecgcohort-cache"
    os.environ["ECGCOHORT_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def ventricles_dir(shared_cache) -> Path:
    """:func:`synthetic.meshed_ventricles` (seed 7) built once per test session: the xdist
    workers share it (the first builds, under a file lock, in about 20 s); read-only."""
    from filelock import FileLock

    from synthetic import meshed_ventricles

    root = shared_cache / "meshed-ventricles"
    with FileLock(str(root) + ".lock"):
        if not root.is_dir():
            building = root.with_name(root.name + ".building")
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir(parents=True)
            meshed_ventricles(building, seed=7)
            building.rename(root)
    return root


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

    def snakemake(self, *args: str, timeout: float = 600,
                  environment: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``snakemake --cores 2 *args`` in the copy; ``environment`` adds to the process's."""
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(environment or {})}
        return subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=self.root, env=environment,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workflow_copy(tmp_path: Path) -> WorkflowCopy:
    return WorkflowCopy(tmp_path / "workflow-copy")
