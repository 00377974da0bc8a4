"""The environment: the venv matches the lock, and the conda files list the same packages."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

import pytest
import yaml

# pyproject name -> conda-forge name, where they differ
CONDA_NAMES = {
    "dolfinx-solver-real": "fenics-dolfinx",
    "gmsh": "python-gmsh",
    "torch": "pytorch",
    "libigl": "igl",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])


@pytest.fixture(scope="module")
def dependencies(repo) -> list[str]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    return [requirement_name(r) for r in project["dependencies"]]


@pytest.fixture(scope="module")
def lock(repo) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^ \\;]+)", (repo / "requirements.lock").read_text(), re.M)
    return {canonical(name): version for name, version in pins}


def conda_packages(repo) -> dict[str, str]:
    """Every package named in envs/*.yaml (conda or pip section) -> its version spec."""
    found: dict[str, str] = {}
    for path in sorted((repo / "envs").glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text())["dependencies"]:
            specs = entry["pip"] if isinstance(entry, dict) else [entry]
            for spec in specs:
                match = re.match(r"([A-Za-z0-9_.\-]+)\s*(?:==|=)?\s*([0-9][^ ,]*)?", spec)
                found[canonical(match.group(1))] = match.group(2) or ""
    return found


def test_every_dependency_is_pinned_in_the_lock(dependencies, lock):
    missing = [name for name in dependencies if name not in lock]
    assert not missing, f"not in requirements.lock (run make lock): {missing}"
    assert "fenics-dolfinx" not in lock  # dropped by tools/overrides.txt


def test_the_installed_environment_is_the_lock(dependencies, lock):
    wrong = {}
    for name in dependencies:
        installed = importlib.metadata.version(name)
        if installed != lock[name]:
            wrong[name] = (installed, lock[name])
    assert not wrong, f"installed != locked (run make env): {wrong}"


def test_gpu_only_packages_are_an_extra_with_a_bounded_range_and_installed_within_it(repo, lock):
    """cupy (fim-python's GPU backend) is the `gpu` extra: bounded on both sides, never in the
    lock, and an installed cupy must lie inside the range (a cupy outside it is what broke the
    activation jobs of a GPU machine)."""
    from packaging.requirements import Requirement

    extras = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    gpu = [Requirement(spec) for spec in extras["gpu"]]
    assert any(canonical(req.name).startswith("cupy") for req in gpu)
    for req in gpu:
        operators = {spec.operator for spec in req.specifier}
        assert operators & {">=", ">", "=="} and operators & {"<", "<=", "=="}, f"{req} is not bounded"
        assert canonical(req.name) not in lock, f"{req.name} is GPU-only and must not be in requirements.lock"
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} is outside {req}"


def test_conda_envs_list_every_dependency_with_the_locked_minor_version(repo, dependencies, lock):
    conda = conda_packages(repo)
    for name in dependencies:
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda or name in conda, f"{name} is in no envs/*.yaml"
        spec = conda.get(conda_name) or conda.get(name)
        if spec:
            locked = lock[name].split("+")[0]
            assert locked.startswith(spec.rstrip(".*")), f"{name}: envs say {spec}, lock has {locked}"


def test_every_rule_environment_exists(repo):
    rules = "\n".join(p.read_text() for p in (repo / "workflow/rules").glob("*.smk"))
    referenced = set(re.findall(r'"\.\./\.\./envs/([^"]+)"', rules))
    assert referenced, "rules name no conda environment"
    for name in referenced:
        assert (repo / "envs" / name).is_file(), name


def test_a_process_that_renders_a_figure_can_then_train(tmp_path):
    """A patient's figure, then the training backbone's imports (Lightning loads torch._dynamo
    and with it libtriton) in one process: libtriton loaded after Mesa's LLVM segfaults, so
    every figure goes through ``offscreen_plotter``, which loads it first."""
    import subprocess
    import sys

    pytest.importorskip("triton")
    script = tmp_path / "render_then_train.py"
    script.write_text(
        "import pyvista\n"
        "from ecgcohort.rendering import offscreen_plotter\n"
        "plotter = offscreen_plotter(window_size=(200, 200))\n"
        "plotter.add_mesh(pyvista.Sphere())\n"
        f"plotter.screenshot({str(tmp_path / 'sphere.png')!r})\n"
        "plotter.close()\n"
        "import torch._dynamo\n"
        "from ecgcohort.learning import fit\n"
        "print('trained after rendering')\n")
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0 and "trained after rendering" in ran.stdout, (ran.returncode, ran.stderr[-2000:])
    assert (tmp_path / "sphere.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cached_compiled_kernels_call_only_kernels_of_their_own_file():
    """numba's on-disk cache is rebuilt when the kernel's own source file changes (its time stamp
    and size) or numba's version does, not when a file whose kernel it calls changes: a cached
    kernel calling another file's kernel could run stale code. So every cached kernel may call
    only kernels of its own module (then a change there recompiles it)."""
    import importlib
    import types
    from pathlib import Path

    from numba.core.registry import CPUDispatcher

    package = Path(importlib.import_module("ecgcohort").__file__).parent
    modules = sorted(".".join(("ecgcohort", *path.relative_to(package).with_suffix("").parts))
                     for path in package.rglob("*.py") if "cache=True" in path.read_text())
    assert {"ecgcohort.conduction.eikonal_compiled", "ecgcohort.fibers.frames", "ecgcohort.fem"} <= set(modules)
    cached, crossing = 0, []
    for name in modules:
        module = importlib.import_module(name)
        for kernel in vars(module).values():
            if not isinstance(kernel, CPUDispatcher) or type(kernel._cache).__name__ == "NullCache" \
                    or kernel.py_func.__module__ != name:
                continue
            cached += 1
            for called in kernel.py_func.__code__.co_names:
                target = kernel.py_func.__globals__.get(called)
                if isinstance(target, CPUDispatcher) and target.py_func.__module__ != name:
                    crossing.append(f"{name}.{kernel.__name__} -> {target.py_func.__module__}.{called}")
                elif isinstance(target, types.ModuleType) and target.__name__.startswith("ecgcohort."):
                    crossing.append(f"{name}.{kernel.__name__} -> module {target.__name__}")
    assert cached >= 15, cached
    assert not crossing, crossing
