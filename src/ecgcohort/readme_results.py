"""The README's result tables, generated from recorded runs instead of typed.

A run's tables are recorded with ``record``: its Markdown tables and the CSVs they are rendered
from are copied from the run's ``results/`` into ``docs/results/<label>/`` (same relative paths),
with ``run.json`` saying which commit and command produced them. The README marks each generated
table with ``<!-- results <label> <path> -->`` … ``<!-- /results -->``; ``update`` pastes the
recorded Markdown between the markers and ``check`` fails where the README differs.

    python -m ecgcohort.readme_results record RESULTS_DIR --label default --command "make run"
    python -m ecgcohort.readme_results update README.md
    python -m ecgcohort.readme_results check README.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

#: The README's recorded runs live here, one folder per label.
RECORDED_ROOT = Path(__file__).resolve().parents[2] / "docs" / "results"

#: The Markdown tables a run records, each with the CSVs it is rendered from (paths under results/).
RECORDED_TABLES: dict[str, tuple[str, ...]] = {
    "surrogate/table1.md": ("surrogate/table1.csv",),
    "surrogate/ecg_transfer.md": ("surrogate/ecg_transfer.csv", "surrogate/table1.csv"),
    "surrogate/error_budget.md": ("surrogate/error_budget.csv",),
    "ecg/realism.md": ("ecg/realism.csv",),
    "convergence/convergence.md": ("convergence/convergence.csv",),
    "encoding/deepsdf/chamfer.md": ("encoding/deepsdf/chamfer.csv",),
}

BLOCK = re.compile(r"(<!-- results (?P<label>\S+) (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


class ReadmeResultsError(ValueError):
    """A README block or a recorded run that does not fit (names the label and path)."""


def _commit_of(directory: Path) -> tuple[str, bool]:
    """The git commit of the checkout that holds ``directory`` and whether its tree was dirty."""
    try:
        commit = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip() != ""
    except (OSError, subprocess.CalledProcessError) as error:
        raise ReadmeResultsError(f"{directory} is not inside a git checkout: a recorded run names its commit") from error
    return commit, dirty


def record_run(results: str | Path, label: str, command: str, root: Path = RECORDED_ROOT) -> Path:
    """Copy a run's README tables and their CSVs from ``results`` into ``root/label`` with its
    provenance (``run.json``); tables the run did not produce are left out. Returns the folder."""
    results = Path(results)
    present = [path for path in RECORDED_TABLES if (results / path).exists()]
    if not present:
        raise ReadmeResultsError(f"{results} holds none of {sorted(RECORDED_TABLES)}: is it a run's results/ folder?")
    commit, dirty = _commit_of(results)
    target = root / label
    if target.exists():
        shutil.rmtree(target)
    for table in present:
        for path in (table, *RECORDED_TABLES[table]):
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(results / path, target / path)
    provenance = {"label": label, "commit": commit, "dirty": dirty, "command": command,
                  "recorded": datetime.date.today().isoformat(), "tables": present}
    (target / "run.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return target


def recorded_table(label: str, path: str, root: Path = RECORDED_ROOT) -> str:
    """The Markdown of a recorded run's table."""
    if path not in RECORDED_TABLES:
        raise ReadmeResultsError(f"README block '{label} {path}': {path} is not a recorded table "
                                 f"(one of {sorted(RECORDED_TABLES)})")
    file = root / label / path
    if not file.exists():
        raise ReadmeResultsError(f"README block '{label} {path}': {file} is missing; record the run with "
                                 f"`python -m ecgcohort.readme_results record RESULTS --label {label}`")
    return file.read_text()


def update_readme(text: str, table: Callable[[str, str], str] = recorded_table) -> str:
    """``text`` with every results block's body replaced by its recorded table."""
    return BLOCK.sub(lambda m: m.group(1) + table(m["label"], m["path"]) + m.group(5), text)


def stale_blocks(text: str, table: Callable[[str, str], str] = recorded_table) -> list[str]:
    """The results blocks of ``text`` whose body differs from their recorded table (``label path``)."""
    return [f"{m['label']} {m['path']}" for m in BLOCK.finditer(text) if m["body"] != table(m["label"], m["path"])]


def rerendered(label: str, root: Path = RECORDED_ROOT) -> Mapping[str, str]:
    """Each recorded table of a run rendered again from its recorded CSVs (the tables whose
    renderer is known), to show that the Markdown is the CSV's and not typed."""
    import pandas as pd

    from ecgcohort.surrogate.report import budget_markdown, read_table1, table1_markdown, transfer_markdown

    folder = root / label
    rendered = {}
    if (folder / "surrogate/table1.csv").exists():
        table = read_table1(folder / "surrogate/table1.csv")
        rendered["surrogate/table1.md"] = table1_markdown(table)
        if (folder / "surrogate/ecg_transfer.csv").exists():
            transfer = pd.read_csv(folder / "surrogate/ecg_transfer.csv")
            rendered["surrogate/ecg_transfer.md"] = transfer_markdown(transfer, table)
    if (folder / "surrogate/error_budget.csv").exists():
        rendered["surrogate/error_budget.md"] = budget_markdown(pd.read_csv(folder / "surrogate/error_budget.csv"))
    if (folder / "convergence/convergence.csv").exists():
        from ecgcohort.convergence.summary import markdown_table

        rendered["convergence/convergence.md"] = markdown_table(pd.read_csv(folder / "convergence/convergence.csv"))
    if (folder / "encoding/deepsdf/chamfer.csv").exists():
        from ecgcohort.encoding.jobs import encoding_markdown

        rendered["encoding/deepsdf/chamfer.md"] = encoding_markdown(pd.read_csv(folder / "encoding/deepsdf/chamfer.csv"))
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgcohort.readme_results", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    record = commands.add_parser("record", help="copy a run's tables into docs/results/LABEL")
    record.add_argument("results", type=Path, help="the run's results/ folder")
    record.add_argument("--label", required=True, help="e.g. default or study")
    record.add_argument("--command", required=True, help="the command that produced the run, e.g. 'make run'")
    for action in ("update", "check"):
        commands.add_parser(action, help=f"{action} the README's results blocks").add_argument(
            "readme", type=Path, nargs="?", default=Path("README.md"))
    args = parser.parse_args(argv)
    if args.action == "record":
        print(f"recorded {record_run(args.results, args.label, args.command)}")
        return 0
    text = args.readme.read_text()
    blocks = [f"{m['label']} {m['path']}" for m in BLOCK.finditer(text)]
    if args.action == "update":
        args.readme.write_text(update_readme(text))
        print(f"{args.readme}: {len(blocks)} results blocks written from {RECORDED_ROOT}")
        return 0
    stale = stale_blocks(text)
    for block in stale:
        print(f"{args.readme}: results block '{block}' differs from its recorded run", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
