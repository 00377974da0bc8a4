"""The realism stage's report, ``realism.md``: the pass rates, the heart pose, the population
comparison, the findings against their prevalence and the QRS against the heart's size in one
page, and the same page rebuilt from the stage's CSVs (so that a recorded run's page can be
shown to be its tables rendered, :mod:`ecgcohort.readme_results`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

#: the CSVs of the stage that ``realism.md`` is rendered from, by role
REPORT_CSVS: dict[str, str] = {"rates": "realism.csv", "rows": "features.csv", "pose": "pose.csv",
                               "population": "population.csv"}
#: the CSV of the prevalence section, which runs recorded before it have not
PREVALENCE_CSV = "prevalence.csv"
#: the CSV of the QRS against the heart's size, which runs recorded before 2026-12-03 have not
HEART_SIZE_CSV = "heart_size.csv"


def realism_markdown(rates: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                     pose: Sequence[Mapping[str, Any]], population: Sequence[Mapping[str, Any]], norms,
                     prevalence: Sequence[Mapping[str, Any]] | None = None,
                     heart_size: Sequence[Mapping[str, Any]] | None = None) -> str:
    """``realism.md``: the pass rates per criteria set (with the beats not delineated), the heart
    pose against anatomy, the healthy beats against the ``norms``' populations and, where given,
    the healthy criteria's failures against the findings' prevalence and the QRS against the
    heart's size."""
    from ecgcohort.realism.heart_size import heart_size_markdown
    from ecgcohort.realism.population import population_markdown
    from ecgcohort.realism.pose import pose_markdown
    from ecgcohort.realism.prevalence import prevalence_markdown
    from ecgcohort.realism.summary import markdown_summary

    page = (markdown_summary(rates, rows) + "\n" + pose_markdown(pose) + "\n"
            + population_markdown(population, norms))
    if prevalence is not None:
        page += "\n" + prevalence_markdown(prevalence, norms)
    return page if heart_size is None else page + "\n" + heart_size_markdown(heart_size, norms)


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
    """:func:`realism_markdown` of the CSVs in ``folder`` (:data:`REPORT_CSVS`, and
    :data:`PREVALENCE_CSV` and :data:`HEART_SIZE_CSV` where the folder has them; the rates' empty
    sources and the prevalence table's empty notes are empty text, every other empty cell None),
    with ``norms`` (default: the package's reference table)."""
    from ecgcohort.realism.population import load_norms

    folder = Path(folder)
    tables = {role: read_csv_rows(folder / name, "" if role == "rates" else None) for role, name in REPORT_CSVS.items()}
    prevalence = None
    if (folder / PREVALENCE_CSV).exists():
        prevalence = [row | {"note": row["note"] or ""} for row in read_csv_rows(folder / PREVALENCE_CSV)]
    heart_size = read_csv_rows(folder / HEART_SIZE_CSV) if (folder / HEART_SIZE_CSV).exists() else None
    return realism_markdown(tables["rates"], tables["rows"], tables["pose"], tables["population"],
                            load_norms() if norms is None else norms, prevalence, heart_size)
