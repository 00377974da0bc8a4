"""The jobs' time split: stacks classified by the code they are in, the sampler's seconds adding
up to the wall clock, and the report's per-rule sums of the jobs' profiles."""

import io
import json
import time

import numpy as np
import pytest

from ecgcohort.logs import logging_to
from ecgcohort.profiling import CATEGORIES, StackSampler, classify, process_age_s, profile_path
from ecgcohort.timings import SPLIT, stage_timings


def frame_in(filename: str, function: str = "work"):
    """A live frame whose code claims to be ``function`` in ``filename``, called from here."""
    namespace: dict = {}
    exec(compile(f"import sys\ndef {function}():\n    return sys._getframe()\n", filename, "exec"), namespace)
    return namespace[function]()


@pytest.mark.parametrize(("filename", "function", "category"), [
    ("/venv/lib/matplotlib/figure.py", "savefig", "pictures"),
    ("/venv/lib/numba/core/compiler.py", "compile_extra", "compile"),
    # after compiled code returns, the first Python frame is numba's unboxing: the time is the call's
    ("/venv/lib/numba/core/serialize.py", "_numba_unpickle", "compute"),
    ("/venv/lib/zarr/core/array.py", "__setitem__", "write"),
    ("/venv/lib/numpy/lib/_npyio_impl.py", "savez_compressed", "write"),
    ("/venv/lib/numpy/lib/_npyio_impl.py", "load", "read"),
    ("/venv/lib/pandas/io/parsers/readers.py", "read_csv", "read"),
    ("<frozen importlib._bootstrap>", "_find_and_load", "import"),
    ("/venv/lib/gmsh.py", "open", "read"),
    ("/venv/lib/gmsh.py", "generate", "compute"),
    ("/work/src/ecgcohort/conduction/eikonal.py", "solve", "compute"),
])
def test_a_stack_is_classified_by_the_code_it_is_in(filename, function, category):
    assert classify(frame_in(filename, function)) == category


def test_an_import_inside_a_picture_counts_as_an_import():
    namespace: dict = {}
    exec(compile("def draw(inner):\n    return inner()\n", "/venv/lib/matplotlib/pyplot.py", "exec"), namespace)
    inner = compile("import sys\ndef _find_and_load():\n    return sys._getframe()\n",
                    "<frozen importlib._bootstrap>", "exec")
    exec(inner, namespace)
    assert classify(namespace["draw"](namespace["_find_and_load"])) == "import"


def test_the_sampled_seconds_add_up_to_the_wall_clock_and_find_the_writing():
    with StackSampler(interval_s=0.002) as sampler:
        start = time.perf_counter()
        while time.perf_counter() - start < 0.3:
            np.linalg.svd(np.random.default_rng(0).random((60, 60)))
        computing = time.perf_counter() - start
        buffer = io.BytesIO()
        start = time.perf_counter()
        while time.perf_counter() - start < 0.3:
            np.savez_compressed(buffer, values=np.random.default_rng(1).random(200_000))
        writing = time.perf_counter() - start  # past 0.3 s by the last call, longer on a slow machine
    summary = sampler.summary()
    sampled = sum(summary[f"{key}_s"] for key in CATEGORIES)
    assert sampled == pytest.approx(summary["run_s"], abs=0.03)
    assert summary["compute_s"] == pytest.approx(computing, abs=0.08)
    assert summary["write_s"] == pytest.approx(writing, abs=0.08)
    assert 0.0 < summary["startup_s"] < 24 * 3600 and process_age_s() > summary["startup_s"]


def test_a_job_leaves_its_profile_beside_its_log_and_the_report_sums_them(tmp_path):
    for patient in ("train-0000", "test-0000"):
        log = tmp_path / "logs/patients" / patient / "compute_fibres.log"
        with logging_to(log):
            start = time.perf_counter()
            while time.perf_counter() - start < 0.1:
                pass
        bench = tmp_path / "benchmarks/patients" / patient / "compute_fibres.tsv"
        bench.parent.mkdir(parents=True)
        bench.write_text("s\th:m:s\tmax_rss\tcpu_time\n0.5\t0:00:00\t10\t0.4\n")
    profile = json.loads(profile_path(tmp_path / "logs/patients/train-0000/compute_fibres.log").read_text())
    assert profile["compute_s"] >= 0.08 and profile["startup_s"] > 0
    # a rule without profiles has no split, rather than a split of zeros
    other = tmp_path / "benchmarks/dataset/assemble_dataset.tsv"
    other.parent.mkdir(parents=True)
    other.write_text("s\th:m:s\tmax_rss\tcpu_time\n0.2\t0:00:00\t10\t0.1\n")
    # a batch job (cluster.patients_per_job) wraps nested jobs that are counted on their own
    batch = tmp_path / "benchmarks/batches/train-0000-0009.tsv"
    batch.parent.mkdir(parents=True)
    batch.write_text("s\th:m:s\tmax_rss\tcpu_time\n9.0\t0:00:09\t10\t8.0\n")
    table = stage_timings(tmp_path / "benchmarks", tmp_path / "logs").set_index("rule")
    assert table.loc["compute_fibres", "compute_s"] >= 0.16
    assert np.isnan(table.loc["assemble_dataset", "startup_s"])
    assert table.total_s.sum() == pytest.approx(1.2) and set(table.group) == {"patients", "dataset"}
    assert set(f"{key}_s" for key in SPLIT) <= set(table.columns)


def test_a_failed_job_leaves_no_profile(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(RuntimeError), logging_to(log):
        raise RuntimeError("boom")
    assert log.exists() and not profile_path(log).exists()


def test_the_markdown_table_is_the_csv_rendered(tmp_path):
    import pandas as pd

    from ecgcohort.timings import stage_timings_job, stage_timings_markdown

    log = tmp_path / "logs/patients/train-0000/compute_fibres.log"
    with logging_to(log):
        sum(range(100_000))
    bench = tmp_path / "benchmarks/patients/train-0000/compute_fibres.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\tcpu_time\n1234.5678\t0:20:34\t1500\t1000.25\n")
    out = tmp_path / "report"
    out.mkdir()
    stage_timings_job(tmp_path / "benchmarks", tmp_path / "logs", out / "t.csv", out / "t.png", out / "t.md")
    markdown = (out / "t.md").read_text()
    assert markdown == stage_timings_markdown(pd.read_csv(out / "t.csv"))
    assert "| compute_fibres | 1 | 1235.0 |" in markdown and markdown.splitlines()[-1].startswith("| all | 1 |")


def test_the_command_line_tables_a_run_without_its_store(tmp_path, capsys):
    """A run whose targets skip the cohort store (the paper run) cannot make the workflow's
    stage_timings rule, which waits for the store; ``python -m ecgcohort.timings`` tables it."""
    import pandas as pd

    from ecgcohort.timings import main

    results = tmp_path / "results"
    for rule, seconds in (("surrogate/train_surrogate-pca-full", 3520.0), ("patients/train-0000/mesh_anatomy", 24.5),
                          ("patients/train-0001/mesh_anatomy", 25.5)):
        bench = results / "benchmarks" / f"{rule}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{seconds}\t0:00:00\t10\t{seconds / 2}\n")
    main([str(results)])
    table = pd.read_csv(results / "report/stage_timings.csv").set_index("rule")
    assert table.loc["mesh_anatomy", "jobs"] == 2 and table.loc["mesh_anatomy", "total_s"] == pytest.approx(50.0)
    assert table.total_s.sum() == pytest.approx(3570.0)
    assert (results / "report/stage_timings.png").stat().st_size > 0
    assert "stage_timings.md" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no benchmark files"):
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
