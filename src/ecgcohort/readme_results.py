"""The documentation's result tables, generated from recorded runs instead of typed.

A run's tables are recorded with ``record``: its Markdown tables and the CSVs they are rendered
from are copied from the run's ``results/`` into ``docs/results/<label>/`` (same relative paths),
with ``run.json`` saying which commit, command, date and machine produced them. A page of the
site (``docs/**/*.md``) or the README marks each generated table with
``<!-- results <label> <path> -->`` … ``<!-- /results -->``; ``update`` pastes the recorded
Markdown and its provenance line between the markers and ``check`` fails where a page differs.
Without file arguments both act on every page that holds a marker.

    python -m ecgcohort.readme_results record RESULTS_DIR --label default --command "make run"
    python -m ecgcohort.readme_results update
    python -m ecgcohort.readme_results check

To show a new table: add its path and CSVs to ``RECORDED_TABLES`` (and its renderer to
``rerendered``), record a run, put a marker on a results page, run ``update``.

A benchmark script's table is recorded the same way from a folder holding its paths, e.g. the
surrogate scaling sweep (``benchmarks/surrogate_scaling.py``, rendered by ``scaling_markdown``):

    python benchmarks/surrogate_scaling_table.py scaling.csv --out .scaling/record
    python -m ecgcohort.readme_results record .scaling/record --label scaling --command "..."
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[2]
#: The recorded runs live here, one folder per label.
RECORDED_ROOT = REPOSITORY / "docs" / "results"

#: The Markdown tables a run records, each with the CSVs it is rendered from (paths under results/).
RECORDED_TABLES: dict[str, tuple[str, ...]] = {
    "surrogate/table1.md": ("surrogate/table1.csv",),
    "surrogate/ecg_transfer.md": ("surrogate/ecg_transfer.csv", "surrogate/table1.csv"),
    "surrogate/error_budget.md": ("surrogate/error_budget.csv",),
    # the pass rates, pose and population comparison (ecgcohort.realism.report): rendered again
    # where a recording holds all four CSVs (recordings before 2026-11-28 hold realism.csv only);
    # the findings against their prevalence where it holds prevalence.csv too (from 2026-12-01),
    # the QRS against the heart's size where it holds heart_size.csv (from 2026-12-03)
    "ecg/realism.md": ("ecg/realism.csv", "ecg/features.csv", "ecg/pose.csv", "ecg/population.csv",
                       "ecg/prevalence.csv", "ecg/heart_size.csv"),
    "convergence/convergence.md": ("convergence/convergence.csv",),
    "encoding/deepsdf/chamfer.md": ("encoding/deepsdf/chamfer.csv",),
    # the inverse-ECG and the ECG -> activation benchmarks, for the results pages
    "inverse/summary.md": ("inverse/summary.csv",),
    "ecg2act/summary.md": ("ecg2act/metrics.csv",),
    # the run's time per rule and its split (start-up, imports, compilation, ...)
    "report/stage_timings.md": ("report/stage_timings.csv",),
    # not the workflow's: the surrogate scaling sweep of benchmarks/surrogate_scaling.py, laid out
    # for `record` by benchmarks/surrogate_scaling_table.py (a workflow run has neither file)
    "surrogate_scaling/scaling.md": ("surrogate_scaling/scaling.csv",),
    # not the workflow's either: paper 2's own setting, benchmarks/inverse_paper_setting.py --out
    "inverse_paper/summary.md": ("inverse_paper/summary.csv",),
    # not the workflow's: the eikonal grid layouts against the reference, benchmarks/eikonal_layouts.py
    "eikonal_layouts/layouts.md": ("eikonal_layouts/layouts.csv",),
    # not the workflow's: runs of one cohort differing in their training, benchmarks/training_cuts.py
    "training_cuts/cuts.md": ("training_cuts/surrogate.csv", "training_cuts/ecg2act.csv"),
    # not the workflow's: Network I's error by scenario kind, benchmarks/ecg2act_by_kind.py
    "ecg2act_by_kind/by_kind.md": ("ecg2act_by_kind/by_kind.csv",),
}
#: CSVs of RECORDED_TABLES that runs of older code lack; recorded where the run has them.
OPTIONAL_CSVS: frozenset[str] = frozenset({"ecg/prevalence.csv", "ecg/heart_size.csv"})

BLOCK = re.compile(r"^(<!-- results (?P<label>\S+) (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S | re.M)


class ReadmeResultsError(ValueError):
    """A results block or a recorded run that does not fit (names the label and path)."""


def commit_of(directory: Path) -> tuple[str, bool]:
    """The git commit of the checkout that holds ``directory`` and whether its tree was dirty."""
    try:
        commit = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip() != ""
    except (OSError, subprocess.CalledProcessError) as error:
        raise ReadmeResultsError(f"{directory} is not inside a git checkout: a recorded run names its commit") from error
    return commit, dirty


def record_run(results: str | Path, label: str, command: str, root: Path = RECORDED_ROOT,
               tables: Sequence[str] | None = None) -> Path:
    """Copy a run's results tables and their CSVs from ``results`` into ``root/label`` with its
    provenance (``run.json``); tables the run did not produce are left out. ``tables`` records only
    those (each must be a known table the run holds), so that a benchmark's recording over a run
    does not copy the run's own tables again. Returns the folder."""
    results = Path(results)
    if tables is not None:
        unknown = [path for path in tables if path not in RECORDED_TABLES]
        missing = [path for path in tables if path in RECORDED_TABLES and not (results / path).exists()]
        if unknown or missing:
            raise ReadmeResultsError(f"cannot record {label}: " + "; ".join(
                [f"{path} is not a recorded table (one of {sorted(RECORDED_TABLES)})" for path in unknown]
                + [f"{results / path} does not exist" for path in missing]))
    present = [path for path in RECORDED_TABLES if (results / path).exists() and (tables is None or path in tables)]
    if not present:
        raise ReadmeResultsError(f"{results} holds none of {sorted(RECORDED_TABLES)}: is it a run's results/ folder?")
    commit, dirty = commit_of(results)
    target = root / label
    if target.exists():
        shutil.rmtree(target)
    for table in present:
        for path in (table, *RECORDED_TABLES[table]):
            if path in OPTIONAL_CSVS and not (results / path).exists():
                continue
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(results / path, target / path)
    provenance = {"label": label, "commit": commit, "dirty": dirty, "command": command,
                  "recorded": datetime.date.today().isoformat(), "machine": machine_description(),
                  "tables": present}
    (target / "run.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return target


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The CPU's model name as the kernel reports it (None where there is no ``/proc/cpuinfo``):
    2-core hosts ran the same jobs 1.4-1.9 times apart on different days."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("model name") and ":" in line), None) or None


def machine_description() -> str:
    """The recording machine in words: its CPU count and model, architecture and operating system."""
    model = cpu_model()
    cores = f"{os.cpu_count()} CPU cores" + (f" ({model})" if model else "")
    return f"{cores}, {platform.machine()}, {platform.system()} {platform.release()}"


def provenance_line(label: str, root: Path = RECORDED_ROOT) -> str:
    """One Markdown line saying where a recorded run's tables come from (from its run.json)."""
    run = json.loads((root / label / "run.json").read_text())
    state = " with uncommitted changes" if run.get("dirty") else ""
    machine = f", on {run['machine']}" if run.get("machine") else ""
    return (f"Recorded run `{label}`: commit `{run['commit'][:10]}`{state}, {run['recorded']}{machine}; "
            f"command: `{run['command']}`\n")


def nested_in_page(markdown: str) -> str:
    """A recorded Markdown file placed inside a page's section: its own title (a leading
    ``# …`` line) left out, its other headings one level down, so a table's sections nest
    under the heading the page puts above the block."""
    lines = markdown.split("\n")
    if lines and lines[0].startswith("# "):
        lines = lines[2:] if len(lines) > 1 and not lines[1].strip() else lines[1:]
    fence = False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            lines[number] = "#" + line
    return "\n".join(lines)


def recorded_block(label: str, path: str, root: Path = RECORDED_ROOT) -> str:
    """What a results block holds: the recorded table (nested in the page's section), a blank
    line and its provenance line."""
    return nested_in_page(recorded_table(label, path, root)) + "\n" + provenance_line(label, root)


def pages_with_blocks(docs: Path = REPOSITORY / "docs", readme: Path = REPOSITORY / "README.md") -> list[Path]:
    """The README and every page of the site that holds a results block (not the recorded files)."""
    candidates = [readme, *sorted(docs.rglob("*.md"))]
    return [page for page in candidates
            if page.exists() and "_build" not in page.parts
            and not any(page.is_relative_to(folder) for folder in RECORDED_ROOT.iterdir() if folder.is_dir())
            and BLOCK.search(page.read_text())]


def recorded_table(label: str, path: str, root: Path = RECORDED_ROOT) -> str:
    """The Markdown of a recorded run's table."""
    if path not in RECORDED_TABLES:
        raise ReadmeResultsError(f"results block '{label} {path}': {path} is not a recorded table "
                                 f"(one of {sorted(RECORDED_TABLES)})")
    file = root / label / path
    if not file.exists():
        raise ReadmeResultsError(f"results block '{label} {path}': {file} is missing; record the run with "
                                 f"`python -m ecgcohort.readme_results record RESULTS --label {label}`")
    return file.read_text()


def update_readme(text: str, table: Callable[[str, str], str] = recorded_block) -> str:
    """``text`` with every results block's body replaced by its recorded table."""
    return BLOCK.sub(lambda m: m.group(1) + table(m["label"], m["path"]) + m.group(5), text)


def stale_blocks(text: str, table: Callable[[str, str], str] = recorded_block) -> list[str]:
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
    if (folder / "eikonal_layouts/layouts.csv").exists():
        from ecgcohort.convergence.summary import layouts_markdown

        rendered["eikonal_layouts/layouts.md"] = layouts_markdown(pd.read_csv(folder / "eikonal_layouts/layouts.csv"))
    if (folder / "encoding/deepsdf/chamfer.csv").exists():
        from ecgcohort.encoding.jobs import encoding_markdown

        rendered["encoding/deepsdf/chamfer.md"] = encoding_markdown(pd.read_csv(folder / "encoding/deepsdf/chamfer.csv"))
    if (folder / "inverse/summary.csv").exists():
        from ecgcohort.inverse.report import markdown_table as inverse_markdown

        rendered["inverse/summary.md"] = inverse_markdown(pd.read_csv(folder / "inverse/summary.csv"))
    from ecgcohort.realism.report import REPORT_CSVS, realism_markdown_from_csvs

    if all((folder / "ecg" / name).exists() for name in REPORT_CSVS.values()):
        rendered["ecg/realism.md"] = realism_markdown_from_csvs(folder / "ecg")
    if (folder / "report/stage_timings.csv").exists():
        from ecgcohort.timings import stage_timings_markdown

        rendered["report/stage_timings.md"] = stage_timings_markdown(pd.read_csv(folder / "report/stage_timings.csv"))
    if (folder / "inverse_paper/summary.csv").exists():
        from ecgcohort.inverse.report import paper_setting_markdown

        rendered["inverse_paper/summary.md"] = paper_setting_markdown(pd.read_csv(folder / "inverse_paper/summary.csv"))
    if (folder / "training_cuts/surrogate.csv").exists():
        rendered["training_cuts/cuts.md"] = training_cuts_markdown(
            _csv_or_empty(folder / "training_cuts/surrogate.csv"), _csv_or_empty(folder / "training_cuts/ecg2act.csv"))
    if (folder / "ecg2act_by_kind/by_kind.csv").exists():
        rendered["ecg2act_by_kind/by_kind.md"] = by_kind_markdown(pd.read_csv(folder / "ecg2act_by_kind/by_kind.csv"))
    if (folder / "ecg2act/metrics.csv").exists():
        rendered["ecg2act/summary.md"] = ecg2act_markdown(pd.read_csv(folder / "ecg2act/metrics.csv"))
    if (folder / "surrogate_scaling/scaling.csv").exists():
        sweep = pd.read_csv(folder / "surrogate_scaling/scaling.csv")
        rendered["surrogate_scaling/scaling.md"] = scaling_markdown(sweep)
    return rendered


def ecg2act_markdown(metrics: "pd.DataFrame") -> str:
    """The ECG -> activation metrics table (ms, mV) as the stage writes it, from its metrics CSV."""
    from ecgcohort.ecg2act.training import markdown_table

    rows = [{key: value.item() if hasattr(value, "item") else value for key, value in row.items()}
            for row in metrics.to_dict("records")]
    return markdown_table(rows)


def _csv_or_empty(path: Path) -> "pd.DataFrame":
    """A CSV as a frame; an empty frame where pandas finds no columns (a run list without any)."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def training_cuts_markdown(surrogate: "pd.DataFrame", ecg2act: "pd.DataFrame") -> str:
    """The runs of benchmarks/training_cuts.py as Markdown: each run's surrogates (PCA or DeepSDF
    codes, the full target), their training and Table 1 figures over the test patients (mean ±
    sd; angles in degrees, ECG errors dimensionless), then the ECG -> activation metrics (ms) of
    the runs that list them; a run list without surrogates has the second table only."""
    def both(row, metric: str, digits: int, unit: str = "") -> str:
        return f"{row[metric + '_mean']:.{digits}f}{unit} ± {row[metric + '_sd']:.{digits}f}{unit}"

    lines = ["| run | codes | fitting patients | points a patient | epochs trained (configured; best) | training (s) | "
             "angular error, heart | angular error, V1–V6 | ECG relative ℓ2 | ECG relative ℓ2, squared |",
             "|---|---|---|---|---|---|---|---|---|---|"] if len(surrogate) else []
    for _, row in surrogate.iterrows():
        points = row["training_points"] if row["training_points"] == "all" else f"{int(row['training_points']):,}"
        codes = "PCA" if row["encoding"] == "pca" else f"DeepSDF, {int(row['shape_model_epochs'])} epochs"
        lines.append(f"| {row['run']} | {codes} | {row['fitting_patients']} | {points} | {row['epochs_trained']} "
                     f"({row['epochs_configured']}; {row['best_epoch']}) | {row['training_s']:,.0f} | "
                     f"{both(row, 'angular_error_heart_deg', 2, '°')} | "
                     f"{both(row, 'angular_error_precordial_heart_deg', 2, '°')} | "
                     f"{both(row, 'ecg_relative_l2_mean', 3)} | {both(row, 'ecg_relative_l2_squared_mean', 4)} |")
    if len(ecg2act):
        lines += [""] if lines else []
        lines += ["| run | network | split | samples | epochs (best) | activation MAE (ms) | V_m Pearson |",
                  "|---|---|---|---|---|---|---|"]
        for _, row in ecg2act.iterrows():
            vm_pearson = row.get("vm_pearson", math.nan)  # none in a run list of Network I alone
            pearson = "–" if math.isnan(vm_pearson) else f"{vm_pearson:.4f}"
            lines.append(f"| {row['run']} | {row['network']} | {row['split']} | {row['samples']} | "
                         f"{row['epochs']} ({row['best_epoch']}) | {row['activation_mae_ms']:.2f} | {pearson} |")
    return "\n".join(lines) + "\n"


def by_kind_markdown(table: "pd.DataFrame") -> str:
    """benchmarks/ecg2act_by_kind.py's rows as Markdown: per run, split and scenario kind the
    samples, Network I's activation MAE (ms, mean over samples of each sample's mean over its
    sites), its sd over samples, and the kind's share of the split's summed error."""
    lines = ["| run | split | kind | samples | activation MAE (ms) | sd over samples (ms) | share of the error |",
             "|---|---|---|---|---|---|---|"]
    for _, row in table.iterrows():
        lines.append(f"| {row['run']} | {row['split']} | {row['kind']} | {row['samples']} | "
                     f"{row['activation_mae_ms']:.2f} | {row['sample_mae_sd_ms']:.2f} | {100 * row['error_share']:.0f} % |")
    return "\n".join(lines) + "\n"


#: The scaling sweep's target forms (columns) and varied axes (rows, in the table's order), each
#: with the column of benchmarks/surrogate_scaling.py's CSV that holds its value.
SCALING_TARGETS = ("pseudo_residual", "full")
SCALING_AXES = (("patients", "patients"), ("electrodes", "electrodes"), ("points", "points"),
                ("samples", "samples_trained"))


def _degrees(value: float) -> str:
    """An angle to 0.01°, rounded half up from the digits the CSV holds (8.125 -> 8.13)."""
    return f"{Decimal(repr(float(value))).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}°"


def _millions(samples: float) -> str:
    """A sample count in millions as the table writes it: 5.8M, 21M, 167M."""
    millions = samples / 1e6
    return f"{millions:.1f}M" if millions < 10 else f"{millions:.0f}M"


def scaling_markdown(table: "pd.DataFrame", layout: str | None = None) -> str:
    """The surrogate scaling sweep (the CSV of ``benchmarks/surrogate_scaling.py run``) as a
    Markdown table: one column per target form, the heart-region angle over the test patients
    (``heart_angular_error_deg``); the all-data run as mean ± sd, each varied axis's runs as
    their means in the axis's order, the uniform weighting, then the pseudo lead field. Rows of
    one training layout (``layout``; needed when the CSV holds two); axes not run are left out."""
    table = table.copy()
    if "layout" not in table:
        table["layout"] = "rows"
    layouts = sorted(table.layout.unique())
    if layout is None and len(layouts) != 1:
        raise ValueError(f"the scaling table holds the layouts {layouts}: name one")
    table = table[table.layout == (layout or layouts[0])]
    targets = [target for target in SCALING_TARGETS if (table.target == target).any()]
    base = table[table.axis == "all"]
    if not targets or len(base) != len(targets):
        raise ValueError(f"the scaling table needs one 'all' run per target form ({targets}), has {len(base)}")
    first = base.iloc[0]
    pseudo = table.pseudo_heart_angular_error_deg.unique()
    if len(pseudo) != 1:
        raise ValueError(f"the pseudo lead field's error differs between runs: {sorted(pseudo)}")
    words = "patient blocks" if first.layout == "blocks" else "rows"
    lines = [f"| ({words}, {first.weighting} weighting, {_millions(first.samples)} samples unless varied) | "
             + " | ".join(targets) + " |", "|---" * (len(targets) + 1) + "|"]

    def cells(rows: "pd.DataFrame", column: str) -> list["pd.DataFrame"]:
        per_target = [rows[rows.target == target].sort_values(column) for target in targets]
        if any(list(part[column]) != list(per_target[0][column]) for part in per_target):
            raise ValueError(f"the target forms were not run at the same {column}")
        return per_target

    def means(per_target: list["pd.DataFrame"]) -> str:
        return " | ".join(" / ".join(_degrees(v) for v in part.heart_angular_error_deg) for part in per_target)

    spread = " | ".join(f"{_degrees(run.heart_angular_error_deg.iloc[0])} ± "
                        f"{_degrees(run.heart_angular_error_sd.iloc[0])}" for run in cells(base, "axis"))
    lines.append(f"| all data: {first.patients} patients, {first.electrodes} electrodes, {first.points:,} points | "
                 f"{spread} |")
    for axis, column in SCALING_AXES:
        rows = table[table.axis == axis]
        if rows.empty:
            continue
        per_target = cells(rows, column)
        values = " / ".join(_millions(v) if axis == "samples" else f"{v:,}" for v in per_target[0][column])
        lines.append(f"| {values} {axis} | {means(per_target)} |")
    uniform = table[table.axis == "uniform"]
    if not uniform.empty:
        lines.append(f"| uniform weighting (eq. 5 as published) | {means(cells(uniform, 'axis'))} |")
    lines.append("| pseudo lead field | " + _degrees(pseudo[0]) + " |" + " |" * (len(targets) - 1))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgcohort.readme_results", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    record = commands.add_parser("record", help="copy a run's tables into docs/results/LABEL")
    record.add_argument("results", type=Path, help="the run's results/ folder")
    record.add_argument("--label", required=True, help="e.g. default or study")
    record.add_argument("--command", required=True, help="the command that produced the run, e.g. 'make run'")
    record.add_argument("--tables", nargs="+", metavar="TABLE",
                        help="record only these tables (paths under results/, e.g. training_cuts/cuts.md)")
    for action in ("update", "check"):
        commands.add_parser(action, help=f"{action} the results blocks of pages (default: every page with one)"
                            ).add_argument("pages", type=Path, nargs="*")
    args = parser.parse_args(argv)
    if args.action == "record":
        print(f"recorded {record_run(args.results, args.label, args.command, tables=args.tables)}")
        return 0
    stale_count = 0
    for page in args.pages or pages_with_blocks():
        text = page.read_text()
        blocks = [f"{m['label']} {m['path']}" for m in BLOCK.finditer(text)]
        if args.action == "update":
            page.write_text(update_readme(text))
            print(f"{page}: {len(blocks)} results blocks written from {RECORDED_ROOT}")
            continue
        for block in stale_blocks(text):
            stale_count += 1
            print(f"{page}: results block '{block}' differs from its recorded run", file=sys.stderr)
    return 1 if stale_count else 0


if __name__ == "__main__":
    sys.exit(main())
