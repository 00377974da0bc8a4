"""The realism stage's report, ``realism.md``: the pass rates, the heart pose and the population
comparison in one page, and the same page rebuilt from the stage's CSVs (so that a recorded
run's page can be shown to be its tables rendered, :mod:`ecgcohort.readme_results`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

#: the CSVs of the stage that ``realism.md`` is rendered from, by role
REPORT_CSVS: dict[str, str] = {"rates": "realism.csv", "rows": "features.csv", "pose": "pose.csv",
                               "population": "population.csv"}


def realism_markdown(rates: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                     pose: Sequence[Mapping[str, Any]], population: Sequence[Mapping[str, Any]], norms) -> str:
    """``realism.md``: the pass rates per criteria set (with the beats not delineated), the heart
    pose against anatomy and the healthy beats against the ``norms``' populations."""
    from ecgcohort.realism.population import population_markdown
    from ecgcohort.realism.pose import pose_markdown
    from ecgcohort.realism.summary import markdown_summary

    return (markdown_summary(rates, rows) + "\n" + pose_markdown(pose) + "\n"
            + population_markdown(population, norms))


def read_csv_rows(path: str | Path, missing_text: str | None = None) -> list[dict[str, Any]]:
    """The rows of a CSV the stage wrote, with the values it held: an empty cell is None in a
    number column and ``missing_text`` in a text column, and a number column whose values are
    all whole is read as int."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    numeric = {column for column in frame.columns if pd.api.types.is_numeric_dtype(frame[column])}
    whole = {column for column in numeric
             if frame[column].notna().any() and bool((frame[column].dropna() % 1 == 0).all())}
    rows = []
    for record in frame.to_dict("records"):
        row = {}
        for key, value in record.items():
            if pd.isna(value):
                row[key] = None if key in numeric else missing_text
            else:
                row[key] = int(value) if key in whole else value
        rows.append(row)
    return rows


def realism_markdown_from_csvs(folder: str | Path, norms=None) -> str:
    """:func:`realism_markdown` of the CSVs in ``folder`` (:data:`REPORT_CSVS`; the rates' empty
    sources are empty text, every other empty cell None), with ``norms`` (default: the
    package's reference table)."""
    from ecgcohort.realism.population import load_norms

    folder = Path(folder)
    tables = {role: read_csv_rows(folder / name, "" if role == "rates" else None) for role, name in REPORT_CSVS.items()}
    return realism_markdown(tables["rates"], tables["rows"], tables["pose"], tables["population"],
                            load_norms() if norms is None else norms)
