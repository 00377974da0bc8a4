"""The surrogate scaling sweep's table, rendered from its CSV for the results pages (not a test).

    .venv/bin/python benchmarks/surrogate_scaling_table.py scaling.csv --out .scaling/record
    .venv/bin/python -m ecgcohort.readme_results record .scaling/record --label scaling --command "..."

``benchmarks/surrogate_scaling.py run`` writes the CSV; this copies it to
``OUT/surrogate_scaling/scaling.csv`` and writes the Markdown table beside it
(``ecgcohort.readme_results.scaling_markdown``), the paths ``readme_results record`` copies
into ``docs/results/<label>/``. OUT must lie inside the git checkout (the recording names its
commit). Without ``--out`` the table is printed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from ecgcohort.readme_results import scaling_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path, help="the CSV of benchmarks/surrogate_scaling.py run")
    parser.add_argument("--out", type=Path, default=None, help="folder to lay the table out in for `record`")
    parser.add_argument("--layout", default=None, choices=("blocks", "rows"),
                        help="when the CSV holds both (the recorded CSV keeps that layout's rows only)")
    args = parser.parse_args()
    table = pd.read_csv(args.table)
    if args.layout is not None and "layout" in table:
        table = table[table.layout == args.layout]
    markdown = scaling_markdown(table, args.layout)
    if args.out is None:
        print(markdown, end="")
        return
    folder = args.out / "surrogate_scaling"
    folder.mkdir(parents=True, exist_ok=True)
    if args.layout is None:
        shutil.copyfile(args.table, folder / "scaling.csv")
    else:  # as surrogate_scaling.py writes it
        table.to_csv(folder / "scaling.csv", index=False, float_format="%.5g")
    (folder / "scaling.md").write_text(markdown)
    print(f"wrote {folder / 'scaling.csv'} and {folder / 'scaling.md'}")


if __name__ == "__main__":
    main()
