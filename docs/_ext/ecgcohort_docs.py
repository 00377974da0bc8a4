"""Sphinx extension of the ecgcohort site: reference tables read from the workflow's sources.

``{stage-rules} meshing`` renders every rule of ``workflow/rules/meshing.smk``: its inputs and
outputs as written in the rule, the config sections it reads, its script and the library
function that script calls, with that function's docstring. It is read at build time from the
sources (``ast`` and the Snakefile's text, no import), so a stage page cannot drift from the rule.
``{dataset-variables}`` renders every variable the dataset stage writes into cohort.zarr, with
its dimensions, units and meaning, from the definitions in ``ecgcohort.dataset.parts``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive  # the base class MyST runs directives through
from docutils.statemachine import StringList

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "workflow" / "rules"
SCRIPTS = REPO / "workflow" / "scripts"
LIBRARY = REPO / "src"

SECTION = re.compile(r"^    (\w+):\s*(.*)$")
CONFIG_KEY = re.compile(r"""config((?:\[["'][\w-]+["']\])+)""")


@dataclass
class Rule:
    name: str
    doc: str = ""
    sections: dict[str, list[str]] = field(default_factory=dict)


def parse_rules(smk: Path) -> list[Rule]:
    """Every ``rule`` block of a Snakemake file with its sections' raw lines."""
    rules: list[Rule] = []
    section = None
    text = smk.read_text()
    for line in text.splitlines():
        header = re.match(r"^rule (\w+):", line)
        if header:
            rules.append(Rule(header[1]))
            section = None
            continue
        if not rules or (line and not line.startswith(" ")):
            if line and not line.startswith(" ") and not line.startswith("#"):
                section = None
                rules and rules[-1].sections.setdefault("_end", [])
            continue
        if "_end" in rules[-1].sections:
            continue
        found = SECTION.match(line)
        if found and not line.startswith("     "):
            section = found[1]
            rules[-1].sections.setdefault(section, [])
            if found[2]:
                rules[-1].sections[section].append(found[2])
        elif line.strip().startswith('"""') and section is None and not rules[-1].doc:
            rules[-1].doc = line.strip().strip('"')
        elif section is not None and line.strip():
            rules[-1].sections[section].append(line.strip())
    return rules


def named_entries(lines: list[str]) -> list[str]:
    """``name=value`` entries of an input/output section, joined over continuation lines."""
    entries: list[str] = []
    depth = 0
    for line in lines:
        if depth == 0:
            entries.append(line)
        else:
            entries[-1] += " " + line
        depth += line.count("(") + line.count("[") + line.count("{") - line.count(")") - line.count("]") - line.count("}")
    return [entry.rstrip(",") for entry in entries]


def config_keys(rule: Rule) -> list[str]:
    keys = set()
    for lines in rule.sections.values():
        for line in lines:
            for found in CONFIG_KEY.finditer(line):
                keys.add(".".join(re.findall(r"""\[["']([\w-]+)["']\]""", found[1])))
    return sorted(keys)


def library_calls(script: Path) -> list[tuple[str, str]]:
    """The ``ecgcohort`` functions a script imports and calls, with their docstrings' first paragraph."""
    tree = ast.parse(script.read_text())
    imported = {alias.asname or alias.name: node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ecgcohort")
                for alias in node.names}
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    calls = []
    for name in sorted(called & set(imported)):
        module = imported[name]
        if module == "ecgcohort.logs":
            continue  # the logging context every script opens
        calls.append((f"{module}.{name}", function_doc(module, name)))
    return calls


def function_doc(module: str, name: str) -> str:
    base = LIBRARY / Path(*module.split("."))
    source = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
    if not source.exists():
        return ""
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return (ast.get_docstring(node) or "").split("\n\n")[0].replace("\n", " ")
    return ""  # re-exported from a submodule: the name alone


def escape(text: str) -> str:
    """Plain text (a docstring) as Markdown that renders it unchanged: the pages are MyST, and a
    directive's nested content is parsed as Markdown."""
    for special in ("\\", "*", "`", "|", "_", "[", "]", "<", "$", "{", "}"):
        text = text.replace(special, "\\" + special)
    return text


def literal(text: str) -> str:
    """Inline code in Markdown whatever backticks it holds, its bars escaped for a table cell."""
    if not text:
        return ""
    code = f"`` {text} ``" if "`" in text else f"`{text}`"
    return code.replace("|", "\\|")


class StageRules(Directive):
    """``{stage-rules} NAME``: the rules of workflow/rules/NAME.smk."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        smk = RULES / f"{self.arguments[0]}.smk"
        if not smk.exists():
            raise self.error(f"stage-rules: {smk} does not exist")
        self.state.document.settings.record_dependencies.add(str(smk))
        container = nodes.container()
        for rule in parse_rules(smk):
            container += nodes.rubric(text=f"rule {rule.name}")
            markdown: list[str] = []
            if rule.doc:
                markdown += [escape(rule.doc), ""]
            for section in ("input", "output"):
                entries = named_entries(rule.sections.get(section, []))
                if entries:
                    markdown += [f"**{section}**", ""] + [f"- {literal(entry)}" for entry in entries] + [""]
            keys = config_keys(rule)
            if keys:
                markdown += ["**config keys read**: " + ", ".join(literal(key) for key in keys), ""]
            for kind in ("threads", "resources"):
                values = rule.sections.get(kind, [])
                if values:
                    markdown += [f"**{kind}**: " + " ".join(literal(value) for value in values), ""]
            script_lines = rule.sections.get("script", [])
            if script_lines:
                script = (smk.parent / script_lines[0].strip('"')).resolve()
                markdown += [f"**script**: `{script.relative_to(REPO)}`", ""]
                self.state.document.settings.record_dependencies.add(str(script))
                for function, doc in library_calls(script):
                    markdown += [f"- calls `{function}`" + (f": {escape(doc)}" if doc else ""), ""]
            self.state.nested_parse(StringList(markdown, source=str(smk)), self.content_offset, container)
        return container.children




#: Where the dataset's variables are defined: each ``"name": (dims, values, _attrs(units, meaning))``.
ASSEMBLE = LIBRARY / "ecgcohort" / "dataset" / "parts.py"
#: The function that builds each part of the store, and where that part lives in it.
STORE_PARTS = {"_patient_row": "root (one row per patient)", "_patient_group": "patients/<id> (one group per patient)"}


def _text(node: ast.AST, names: dict[str, tuple[str, ...]]) -> tuple[str, ...] | str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Tuple):
        parts = [_text(element, names) for element in node.elts]
        return tuple(part for part in parts if isinstance(part, str))
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


def dataset_variables() -> list[tuple[str, str, tuple[str, ...], str, str]]:
    """(store part, variable, dims, units, meaning) of every variable the dataset stage writes."""
    variables = []
    for function in ast.parse(ASSEMBLE.read_text()).body:
        if not isinstance(function, ast.FunctionDef) or function.name not in STORE_PARTS:
            continue
        names = {target.id: _text(node.value, {}) for node in ast.walk(function) if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name) and isinstance(node.value, ast.Tuple)}
        for node in ast.walk(function):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values):
                if not (isinstance(key, ast.Constant) and isinstance(value, ast.Tuple) and value.elts):
                    continue
                attrs = value.elts[-1]
                if not (isinstance(attrs, ast.Call) and getattr(attrs.func, "id", "") == "_attrs" and len(attrs.args) >= 2):
                    continue
                dims = _text(value.elts[0], names)
                dims = (dims,) if isinstance(dims, str) else tuple(dims or ())
                units, meaning = (_text(argument, {}) for argument in attrs.args[:2])
                variables.append((STORE_PARTS[function.name], key.value, dims, units or "", meaning or ""))
    return variables


class DatasetVariables(Directive):
    """``{dataset-variables}``: every variable of cohort.zarr with its dims, units and meaning."""

    def run(self) -> list[nodes.Node]:
        self.state.document.settings.record_dependencies.add(str(ASSEMBLE))
        variables = dataset_variables()
        if len(variables) < 10:
            raise self.error(f"dataset-variables: only {len(variables)} variables found in {ASSEMBLE}")
        markdown = ["| variable | dims | units | meaning | where |", "|---|---|---|---|---|"]
        for part, name, dims, units, meaning in variables:
            markdown.append(f"| `{name}` | {literal(', '.join(dims))} | {literal(units)} | {escape(meaning)} | {part} |")
        container = nodes.container()
        self.state.nested_parse(StringList(markdown, source=str(ASSEMBLE)), self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive("stage-rules", StageRules)
    app.add_directive("dataset-variables", DatasetVariables)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
