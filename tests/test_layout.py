"""The library's layout: no two modules of ``src/ecgcohort`` import each other (DESIGN.md: two
files that import each other are one concern or two badly cut). Every import statement counts,
at module level or inside a function: ``import ecgcohort.x``, ``from ecgcohort.x import y`` (an
import of the module ``ecgcohort.x.y`` where that is a module) and relative imports."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "ecgcohort"


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``src`` by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path], package: str = PACKAGE) -> set[str]:
    """The modules of ``package`` that the module ``name`` (file ``path``) imports anywhere in its
    body, each resolved to the deepest module the statement names."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # relative: level 1 is the module's own package (a package's __init__ is its own)
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # `import ecgcohort.a.b.c` where c is not a module (cannot happen) or a name below one
            while target and target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name and (target == package or target.startswith(package + ".")):
                found.add(target)
    return found


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(src, package)
    return {name: imported_modules(name, path, modules, package) for name, path in modules.items()}


def mutual_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every pair of modules that import each other, each pair once, sorted."""
    return sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph.get(b, ())})


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The parser finds module-level and function-level imports, ``import a.b``, ``from a import
    module``, ``from a.b import name`` and relative imports, so the check below can fail."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import b\n")
    (package / "a.py").write_text("def f():\n    import pkg.sub.b\n")
    (package / "sub" / "b.py").write_text("from ..a import f\n")
    (package / "sub" / "c.py").write_text("from pkg.sub import d\n")
    (package / "sub" / "d.py").write_text("def g():\n    from .c import nothing\n")
    (package / "e.py").write_text("from pkg.sub.d import g\nimport os\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.sub.c"] == {"pkg.sub.d"}
    assert graph["pkg.sub.d"] == {"pkg.sub.c"}
    assert graph["pkg.e"] == {"pkg.sub.d"}
    assert mutual_imports(graph) == [("pkg.a", "pkg.sub.b"), ("pkg.sub.c", "pkg.sub.d")]


def test_no_two_modules_import_each_other():
    graph = import_graph()
    assert len(graph) > 50 and graph["ecgcohort.surrogate.report"], "the library's modules were not found"
    pairs = mutual_imports(graph)
    assert not pairs, "modules that import each other (move the shared piece so the arrows point one way): " + \
        "; ".join(f"{a} <-> {b}" for a, b in pairs)
