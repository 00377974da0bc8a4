"""The tutorials' pages with their outputs, recorded from a finished run instead of typed.

Each tutorial is a percent-format Python script, ``docs/tutorials/<name>.py``, that the test
suite runs against a finished two-patient run. ``record`` executes every script as a notebook
in a finished run's folder and writes ``docs/tutorials/<name>.ipynb``: the script's cells, the
text they printed on stdout and the figures they drew, and a provenance line under the title (commit,
command, date, machine). The site renders these notebooks; the scripts stay the runnable
source. ``check`` fails where a recorded notebook's cells differ from its script's, or where a
recorded cell raised: record again after editing a tutorial.

    python -m ecgcohort.tutorial_outputs record RUN_FOLDER --command "make run ..."
    python -m ecgcohort.tutorial_outputs check
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from ecgcohort.readme_results import REPOSITORY, ReadmeResultsError, commit_of, machine_description

#: The tutorials' scripts and their recorded notebooks.
TUTORIALS = REPOSITORY / "docs" / "tutorials"
#: The tag of the provenance cell that ``record`` adds under each notebook's title.
PROVENANCE_TAG = "provenance"


class TutorialOutputsError(ValueError):
    """A tutorial that cannot be recorded, or a recorded notebook that does not fit its script."""


def script_notebook(script: str | Path):
    """The tutorial ``script`` (percent format) as an unexecuted notebook."""
    import jupytext

    return jupytext.read(str(script), fmt="py:percent")


def script_cells(notebook) -> list[tuple[str, str]]:
    """(cell type, source) of every cell but the provenance cell: what a script and its
    recorded notebook must share."""
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells
            if PROVENANCE_TAG not in cell.metadata.get("tags", [])]


def raised_cells(notebook) -> list[int]:
    """Indices of the cells whose recorded outputs hold an error."""
    return [index for index, cell in enumerate(notebook.cells)
            if any(output.get("output_type") == "error" for output in cell.get("outputs", []))]


def provenance_text(command: str, commit: str, dirty: bool) -> str:
    """The Markdown line under a recorded tutorial's title."""
    state = " with uncommitted changes" if dirty else ""
    return (f"*Outputs recorded {datetime.date.today().isoformat()} by ecgcohort at commit `{commit[:10]}`{state}, "
            f"on {machine_description()}, in the folder of a finished run (`{command}`). Run the "
            f"script, `docs/tutorials/<name>.py`, after your own run to get yours.*")


def record_tutorial(script: Path, run_folder: Path, provenance: str, timeout_s: float = 900.0):
    """Execute ``script`` as a notebook with ``run_folder`` as its working directory and return it
    with its outputs and ``provenance`` under the title. Raises :class:`TutorialOutputsError`
    naming the tutorial and the cell where a cell raised."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = script_notebook(script)
    title = next((i for i, cell in enumerate(notebook.cells)
                  if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# ")), None)
    if title is None:
        raise TutorialOutputsError(f"{script}: no '# title' Markdown cell to put the provenance under")
    cell = nbformat.v4.new_markdown_cell(provenance, metadata={"tags": [PROVENANCE_TAG]})
    notebook.cells.insert(title + 1, cell)
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:02d}"  # stable ids: a re-recording differs only where outputs do
    client = NotebookClient(notebook, timeout=timeout_s, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(run_folder)}})
    try:
        client.execute()
    except CellExecutionError as error:
        raise TutorialOutputsError(f"tutorial {script.stem} failed in {run_folder}:\n{error}") from error
    for cell in notebook.cells:
        # stderr holds the recording machine's warnings (library paths, missing widgets), not the
        # tutorial's results; an error would have raised above
        if "outputs" in cell:
            cell.outputs = [output for output in cell.outputs if output.get("name") != "stderr"]
    return notebook


def record_all(run_folder: str | Path, command: str, tutorials: Path = TUTORIALS,
               names: list[str] | None = None) -> list[Path]:
    """Record every tutorial of ``tutorials`` (or those in ``names``) in ``run_folder``: writes
    ``<name>.ipynb`` beside each script and returns their paths."""
    import nbformat

    run_folder = Path(run_folder).resolve()
    if not (run_folder / "results").is_dir():
        raise TutorialOutputsError(f"{run_folder} has no results/ folder: give the folder a run was made in")
    try:
        commit, dirty = commit_of(REPOSITORY)
    except ReadmeResultsError as error:
        raise TutorialOutputsError(str(error)) from error
    provenance = provenance_text(command, commit, dirty)
    scripts = sorted(tutorials.glob("*.py"))
    if names:
        unknown = sorted(set(names) - {script.stem for script in scripts})
        if unknown:
            raise TutorialOutputsError(f"no tutorial named {unknown} in {tutorials}")
        scripts = [script for script in scripts if script.stem in names]
    written = []
    for script in scripts:
        print(f"recording {script.stem} in {run_folder} ...", flush=True)
        notebook = record_tutorial(script, run_folder, provenance)
        target = script.with_suffix(".ipynb")
        temporary = target.with_name(f".{target.name}.tmp")
        nbformat.write(notebook, str(temporary))
        temporary.replace(target)
        written.append(target)
    return written


def stale_tutorials(tutorials: Path = TUTORIALS) -> list[str]:
    """One line per tutorial whose recorded notebook is missing, differs from its script in any
    cell, or holds a cell that raised."""
    import nbformat

    problems = []
    for script in sorted(tutorials.glob("*.py")):
        recorded = script.with_suffix(".ipynb")
        if not recorded.exists():
            problems.append(f"{script.stem}: no recorded notebook {recorded.name}")
            continue
        notebook = nbformat.read(str(recorded), as_version=4)
        if script_cells(notebook) != script_cells(script_notebook(script)):
            problems.append(f"{script.stem}: {recorded.name} was recorded from another version of {script.name}")
        if raised_cells(notebook):
            problems.append(f"{script.stem}: cells {raised_cells(notebook)} of {recorded.name} raised")
    orphans = {path.stem for path in tutorials.glob("*.ipynb")} - {path.stem for path in tutorials.glob("*.py")}
    problems += [f"{name}: {name}.ipynb has no script {name}.py" for name in sorted(orphans)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgcohort.tutorial_outputs", description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    record = actions.add_parser("record", help="execute the tutorials in a finished run's folder")
    record.add_argument("run_folder", type=Path, help="the folder holding the run's results/")
    record.add_argument("--command", required=True, help="what produced the run, e.g. 'make run'")
    record.add_argument("names", nargs="*", help="only these tutorials (default: every one)")
    actions.add_parser("check", help="fail where a recorded notebook is missing, stale or raised")
    args = parser.parse_args(argv)
    if args.action == "record":
        for path in record_all(args.run_folder, args.command, names=args.names):
            print(f"recorded {path}")
        return 0
    problems = stale_tutorials()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
