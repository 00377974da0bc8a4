"""The site's result tables come from recorded runs (docs/results/<label>), not from typing:
every results block equals its recorded table, and every recorded table is its recorded CSV
rendered again. The tolerance is the printed digits: a table that is not the CSV's fails."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecgcohort import readme_results
from ecgcohort.surrogate.report import PSEUDO, transfer_markdown

REPO = Path(__file__).resolve().parents[1]


def test_results_blocks_are_the_recorded_runs():
    pages = readme_results.pages_with_blocks()
    blocks = [(m["label"], m["path"]) for page in pages for m in readme_results.BLOCK.finditer(page.read_text())]
    assert ("default", "surrogate/table1.md") in blocks and ("default", "surrogate/ecg_transfer.md") in blocks
    for page in pages:
        assert readme_results.stale_blocks(page.read_text()) == [], \
            f"{page} tables differ from docs/results: run `python -m ecgcohort.readme_results update`"


@pytest.mark.parametrize("label", sorted(p.name for p in readme_results.RECORDED_ROOT.iterdir() if p.is_dir()))
def test_recorded_tables_are_their_csvs_rendered(label):
    folder = readme_results.RECORDED_ROOT / label
    provenance = json.loads((folder / "run.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", provenance["commit"]) and provenance["command"]
    rendered = readme_results.rerendered(label)
    assert rendered and set(rendered) <= set(provenance["tables"])
    for path, markdown in rendered.items():
        assert (folder / path).read_text() == markdown, f"{folder / path} is not its CSV rendered again"
    if set(rendered) == {"surrogate_scaling/scaling.md"}:  # a benchmark's sweep alone
        sweep = pd.read_csv(folder / "surrogate_scaling/scaling.csv")
        errors = sweep.heart_angular_error_deg
        assert ((errors > 0) & (errors < 90)).all() and (sweep.heart_angular_error_sd > 0).all()
        assert sweep.pseudo_heart_angular_error_deg.nunique() == 1
        return
    if set(rendered) == {"ecg/realism.md"}:  # a cohort's realism alone (its data half)
        rates = pd.read_csv(folder / "ecg/realism.csv")
        assert ((rates.passed >= 0) & (rates.passed <= rates.measured) & (rates.measured <= rates.beats)).all()
        features = pd.read_csv(folder / "ecg/features.csv")
        qrs = features[features.status == "ok"].pivot(index="patient", columns="scenario", values="qrs_duration_ms")
        # healthy adults' sinus QRS lies within 60-130 ms; a bundle-branch block widens every patient's,
        # by 20 ms or more on the median (the paper configuration's fast Purkinje and isotropic
        # cross-fibre conduction widen it by 9-20 ms in 23 of its 110 patients)
        assert qrs.sinus.between(60, 130).all() and (qrs.lbbb > qrs.sinus).all()
        assert (qrs.lbbb - qrs.sinus).median() >= 20
        return
    if set(rendered) == {"report/stage_timings.md"}:  # a per-patient profile alone
        timings = pd.read_csv(folder / "report/stage_timings.csv")
        split = timings[[f"{key}_s" for key in ("startup", "import", "compile", "pictures", "write", "read",
                                                 "compute")]].sum(axis=1)
        # the sampled split covers each job's wall time, within the sampling and the benchmark's overhead
        assert (timings.total_s > 0).all() and ((split > 0.7 * timings.total_s) & (split < 1.1 * timings.total_s)).all()
        return
    if set(rendered) == {"inverse/summary.md"}:  # the inverse benchmark alone
        summary = pd.read_csv(folder / "inverse/summary.csv")
        # correlations in [-1, 1]; a second-order Tikhonov that localises the pacing site within the heart
        assert summary[["cc_mean", "spatial_cc_mean"]].abs().le(1).all().all() and (summary.re_mean > 0).all()
        tikhonov = summary[summary.method == "tikhonov_2nd"]
        localised = tikhonov.localisation_mm_mean.dropna()  # the paced beats' rows only
        assert (tikhonov.cc_mean > 0.3).all() and len(localised) and (localised < 100).all()
        return
    if set(rendered) == {"inverse_paper/summary.md"}:  # paper 2's own setting
        rows = pd.read_csv(folder / "inverse_paper/summary.csv")
        assert rows.cc.abs().le(1).all() and (rows.re > 0).all() and (rows.status == "ok").all()
        # issue 62's figures: each network within paper 2's published RE at each noise level
        goals = {("eand_arn", 0.01): 0.10, ("eand_arn", 0.1): 0.13, ("ep_dl", 0.01): 0.15, ("ep_dl", 0.1): 0.16}
        networks = rows[rows.method.isin(["eand_arn", "ep_dl"])]
        assert len(networks) and all(row.re <= goals[(row.method, row.sigma)] for row in networks.itertuples())
        return
    if set(rendered) == {"eikonal_layouts/layouts.md"}:  # the eikonal grid layouts against the reference
        rows = pd.read_csv(folder / "eikonal_layouts/layouts.csv")
        for reference in rows[rows.to_finest_mean_ms.isna()].itertuples():  # zero against itself
            assert getattr(reference, f"share_vs_{reference.layout}") == 0.0, reference
        level = rows[rows.to_finest_mean_ms.notna()]
        shares = level.filter(like="share_vs_")
        assert ((shares > 0) & (shares < 1)).all().all()
        # Bey's grid refined more is closer to every reference, map by map
        for _, one_map in level[level.layout.str.fullmatch(r"r\d")].groupby("scenario"):
            ordered = one_map.sort_values("layout")
            assert (ordered.filter(like="share_vs_").diff().dropna() < 0).all().all()
        return
    if "ecg2act_by_kind/by_kind.md" in rendered:  # Network I's error by scenario kind
        kinds = pd.read_csv(folder / "ecg2act_by_kind/by_kind.csv")
        assert (kinds.activation_mae_ms > 0).all()
        for _, split in kinds.groupby(["run", "split"]):
            parts, whole = split[split.kind != "all"], split[split.kind == "all"].iloc[0]
            # the kinds partition the split: their samples add up, their shares to 1, their means to the whole's
            assert parts.samples.sum() == whole.samples and abs(parts.error_share.sum() - 1) < 1e-9
            assert abs((parts.activation_mae_ms * parts.samples).sum() / whole.samples - whole.activation_mae_ms) < 1e-6
    if "training_cuts/cuts.md" in rendered:  # runs of one cohort differing in their training
        runs = readme_results._csv_or_empty(folder / "training_cuts/surrogate.csv")
        if len(runs):  # a run list of networks only has no surrogate rows
            assert runs.angular_error_heart_deg_mean.between(0, 90).all() and (runs.ecg_relative_l2_mean_mean > 0).all()
            assert ((runs.best_epoch <= runs.epochs_trained) & (runs.epochs_trained <= runs.epochs_configured)).all()
            # at the same training settings the error falls as the fitting patients grow
            pca = runs[runs.encoding == "pca"]
            same = pca[pca.epochs_configured == pca.epochs_configured.max()].sort_values("fitting_patients")
            assert len(same) > 1 and (same.angular_error_heart_deg_mean.diff().dropna() < 0).all()
        networks = readme_results._csv_or_empty(folder / "training_cuts/ecg2act.csv")
        if len(networks):  # a run list of surrogates only has no network rows
            pearson = networks.get("vm_pearson", pd.Series(dtype=float))  # none in a list of Network I runs
            assert (networks.activation_mae_ms > 0).all() and pearson.dropna().between(0, 1).all()
            assert ((networks.best_epoch >= 1) & (networks.best_epoch <= networks.epochs)).all()
        assert len(runs) or len(networks)
        return
    if set(rendered) == {"ecg2act/summary.md"}:  # the ECG -> activation networks trained again alone
        metrics = pd.read_csv(folder / "ecg2act/metrics.csv")
        # a sinus QRS lasts about 100 ms: a network that had learned nothing would err by tens of ms,
        # one that had learned everything by nothing; V_m from the ECG correlates but not perfectly
        assert metrics.activation_mae_ms.between(1, 20).all() and metrics.vm_pearson.dropna().between(0.9, 1).all()
        assert ((metrics.best_epoch >= 1) & (metrics.best_epoch <= metrics.epochs)).all()
        assert set(metrics.split) == {"random_samples", "held_out_patients"}
        return
    if set(rendered) == {"surrogate/error_budget.md"}:  # a run's budget measured again
        budget = pd.read_csv(folder / "surrogate/error_budget.csv")
        angles = budget[["fitting_heart_angle_deg", "validation_heart_angle_deg", "test_angle_deg",
                         "fitting_points_angle_deg", "test_points_angle_deg"]]
        assert ((angles > 0) & (angles < 90)).all().all()
        # the gap on one point set, the heart + margin points
        assert (abs(budget.generalisation_gap_deg - (budget.test_angle_deg - budget.fitting_heart_angle_deg)) < 1e-4).all()
        return
    if "surrogate/table1.md" not in rendered:  # a convergence ladder alone
        ladder = pd.read_csv(folder / "convergence/convergence.csv")
        assert (ladder.ecg_error[~ladder.reference] < 1).all() and ladder.reference.any()
        return
    table = pd.read_csv(folder / "surrogate/table1.csv")
    ours = table[table.source == "ours"]
    # physiological sanity of a recorded run: angles in degrees, relative ECG errors in (0, 2)
    assert ((ours.angular_error_heart_deg_mean > 0) & (ours.angular_error_heart_deg_mean < 90)).all()
    assert ((ours.ecg_relative_l2_mean_mean > 0) & (ours.ecg_relative_l2_mean_mean < 2)).all()


def _transfer_frame(models: dict[str, float]) -> pd.DataFrame:
    rows = []
    for model, scale in models.items():
        for phase, factor in (("qrs", 1.0), ("t", 0.5), ("beat", 0.8)):
            rows.append({"model": model, "phase": phase, "lead": "all", "cell_angular_error_deg": 20 * scale,
                         "cell_magnitude_error": 0.3 * scale, "ecg_error": factor * scale,
                         "weighted_field_error": 0.7 * scale, "electrode_error": 0.75 * scale,
                         "difference_gain": 1.2, "magnitude_part": 0.4 * scale, "direction_part": 0.6 * scale})
            rows.append({**rows[-1], "lead": "V1", "ecg_error": 9.0})  # a single lead is not the mean row
    return pd.DataFrame(rows)


def test_transfer_markdown_takes_the_all_lead_rows_per_phase():
    transfer = _transfer_frame({"DeepSDF, pseudo_residual": 0.5, PSEUDO: 1.0})
    table = pd.DataFrame({"model": ["DeepSDF, pseudo_residual", PSEUDO], "angular_error_heart_deg_mean": [9.44, 16.9]})
    lines = transfer_markdown(transfer, table).splitlines()
    assert lines[0] == f"| | {PSEUDO} | DeepSDF, pseudo_residual |"  # the pseudo lead field first
    assert lines[2].endswith("| 16.9° | 9.4° |")
    assert lines[3].endswith("| 20.0° | 10.0° |")
    assert lines[7].endswith("| 1.00 / 0.50 / 0.80 | 0.50 / 0.25 / 0.40 |")
    assert lines[8].endswith("| 0.40 / 0.60 | 0.20 / 0.30 |")
    with pytest.raises(ValueError, match="no 'qrs' row of model 'DeepSDF, pseudo_residual'"):
        transfer_markdown(transfer[(transfer.phase != "qrs") | (transfer.model == PSEUDO)], table)


def _recorded_run(tmp_path: Path) -> tuple[Path, Path]:
    """A git checkout with a results/ folder holding a Table 1, and an empty recorded root."""
    checkout = tmp_path / "run"
    (checkout / "results/surrogate").mkdir(parents=True)
    table = pd.DataFrame({"model": ["pseudo lead field"], "source": ["ours"], "encoding": [""], "target": [""],
                          "test_patients": [2], "outliers": [""],
                          **{f"{metric}_{stat}": [value] for metric, value in
                             (("angular_error_heart_deg", 16.92), ("angular_error_precordial_heart_deg", 17.85),
                              ("ecg_relative_l2_mean", 0.706)) for stat in ("mean", "sd")}})
    table.to_csv(checkout / "results/surrogate/table1.csv", index=False)
    from ecgcohort.surrogate.report import read_table1, table1_markdown

    (checkout / "results/surrogate/table1.md").write_text(table1_markdown(read_table1(checkout / "results/surrogate/table1.csv")))
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"]):
        subprocess.run(["git", "-C", str(checkout), *command], check=True)
    return checkout / "results", tmp_path / "recorded"


def test_record_update_and_check_round_trip(tmp_path):
    results, root = _recorded_run(tmp_path)
    folder = readme_results.record_run(results, "default", "make run", root=root)
    provenance = json.loads((folder / "run.json").read_text())
    assert provenance["tables"] == ["surrogate/table1.md"] and not provenance["dirty"]
    table = lambda label, path: readme_results.recorded_table(label, path, root=root)  # noqa: E731
    readme = "intro\n<!-- results default surrogate/table1.md -->\n| typed | 1.00 |\n<!-- /results -->\nafter\n"
    assert readme_results.stale_blocks(readme, table) == ["default surrogate/table1.md"]
    updated = readme_results.update_readme(readme, table)
    assert updated.startswith("intro\n<!-- results default surrogate/table1.md -->\n| model |")
    assert updated.endswith("<!-- /results -->\nafter\n") and "16.92° ± 16.92°" in updated
    assert "| 0.706 ± 0.706 | – |" in updated  # a Table 1 written before the squared column
    assert readme_results.stale_blocks(updated, table) == []
    # one digit changed by hand is caught
    assert readme_results.stale_blocks(updated.replace("0.706", "0.707"), table) == ["default surrogate/table1.md"]
    np.testing.assert_equal(readme_results.rerendered("default", root=root)["surrogate/table1.md"],
                            (folder / "surrogate/table1.md").read_text())


def test_record_keeps_only_the_tables_asked_for(tmp_path):
    results, root = _recorded_run(tmp_path)
    (results / "encoding/deepsdf").mkdir(parents=True)
    for name in ("chamfer.md", "chamfer.csv"):
        (results / "encoding/deepsdf" / name).write_text("patient,chamfer_mm\ntest-0000,0.5\n")
    everything = readme_results.record_run(results, "both", "make run", root=root)
    assert json.loads((everything / "run.json").read_text())["tables"] == ["surrogate/table1.md",
                                                                           "encoding/deepsdf/chamfer.md"]
    folder = readme_results.record_run(results, "one", "benchmark", root=root, tables=["encoding/deepsdf/chamfer.md"])
    assert json.loads((folder / "run.json").read_text())["tables"] == ["encoding/deepsdf/chamfer.md"]
    assert not (folder / "surrogate").exists() and (folder / "encoding/deepsdf/chamfer.csv").exists()
    with pytest.raises(readme_results.ReadmeResultsError, match="cannot record one: surrogate/table2.md is not a recorded"):
        readme_results.record_run(results, "one", "benchmark", root=root, tables=["surrogate/table2.md"])
    with pytest.raises(readme_results.ReadmeResultsError, match="inverse/summary.md does not exist"):
        readme_results.record_run(results, "one", "benchmark", root=root, tables=["inverse/summary.md"])
    assert (folder / "encoding/deepsdf/chamfer.md").exists()  # a refused recording leaves the last one


def test_the_machine_names_its_cpu_model_where_the_kernel_gives_one(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9R14\n")
    assert readme_results.cpu_model(cpuinfo) == "AMD EPYC 9R14"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: \n")
    assert readme_results.cpu_model(cpuinfo) is None
    assert readme_results.cpu_model(tmp_path / "missing") is None
    model = readme_results.cpu_model()
    assert readme_results.machine_description().startswith(
        f"{os.cpu_count()} CPU cores" + (f" ({model})," if model else ","))


def test_bad_blocks_and_runs_are_named(tmp_path):
    with pytest.raises(readme_results.ReadmeResultsError, match="'study surrogate/table1.md'.*missing.*--label study"):
        readme_results.recorded_table("study", "surrogate/table1.md", root=tmp_path)
    with pytest.raises(readme_results.ReadmeResultsError, match="surrogate/table2.md is not a recorded table"):
        readme_results.recorded_table("default", "surrogate/table2.md", root=tmp_path)
    with pytest.raises(readme_results.ReadmeResultsError, match="holds none of"):
        readme_results.record_run(tmp_path, "default", "make run", root=tmp_path / "recorded")


def test_a_recorded_file_nests_under_the_page_heading():
    recorded = "# ECG realism\n\n## healthy (sinus)\n\n| a |\n|---|\n```\n# not a heading\n```\n"
    assert readme_results.nested_in_page(recorded) == "### healthy (sinus)\n\n| a |\n|---|\n```\n# not a heading\n```\n"
    assert readme_results.nested_in_page("| a |\n|---|\n") == "| a |\n|---|\n"


def _scaling_sweep() -> pd.DataFrame:
    """A sweep as benchmarks/surrogate_scaling.py writes it: both targets, the all-data run and
    two axes, in the CSV's order (not the table's)."""
    rows = []
    for target, shift in (("pseudo_residual", 0.0), ("full", 1.0)):
        for axis, patients, points, error in (("all", 19, 4096, 9.3942), ("patients", 6, 4096, 9.8179),
                                              ("patients", 3, 4096, 10.821), ("points", 19, 2048, 9.2585),
                                              ("points", 19, 1024, 8.125)):
            rows.append({"target": target, "weighting": "relative", "patients": patients, "electrodes": 25,
                         "points": points, "samples": 21_000_000, "axis": axis, "layout": "blocks",
                         "samples_trained": 21_401_600, "heart_angular_error_deg": error - shift,
                         "heart_angular_error_sd": 0.82074, "pseudo_heart_angular_error_deg": 17.371})
    return pd.DataFrame(rows)


def test_scaling_markdown_is_the_sweep_csv():
    table = readme_results.scaling_markdown(_scaling_sweep())
    assert table.splitlines() == [
        "| (patient blocks, relative weighting, 21M samples unless varied) | pseudo_residual | full |",
        "|---|---|---|",
        "| all data: 19 patients, 25 electrodes, 4,096 points | 9.39° ± 0.82° | 8.39° ± 0.82° |",
        "| 3 / 6 patients | 10.82° / 9.82° | 9.82° / 8.82° |",
        "| 1,024 / 2,048 points | 8.13° / 9.26° | 7.13° / 8.26° |",  # 8.125 half up, 1,024 before 2,048
        "| pseudo lead field | 17.37° | |",
    ]
    changed = _scaling_sweep()
    changed.loc[(changed.target == "full") & (changed.axis == "all"), "heart_angular_error_deg"] = 8.4
    assert "| 9.39° ± 0.82° | 8.40° ± 0.82° |" in readme_results.scaling_markdown(changed)
    with pytest.raises(ValueError, match="layouts"):
        readme_results.scaling_markdown(pd.concat([_scaling_sweep(), _scaling_sweep().assign(layout="rows")]))
    with pytest.raises(ValueError, match="same points"):
        readme_results.scaling_markdown(_scaling_sweep().drop(index=4))


def test_the_recorded_scaling_table_is_its_csv():
    folder = readme_results.RECORDED_ROOT / "scaling"
    recorded = (folder / "surrogate_scaling/scaling.md").read_text()
    sweep = pd.read_csv(folder / "surrogate_scaling/scaling.csv")
    assert readme_results.rerendered("scaling") == {"surrogate_scaling/scaling.md": recorded}
    assert "| 1,024 / 2,048 points | 9.03° / 9.26° | 8.13° / 8.21° |" in recorded
    sweep.loc[sweep.axis == "electrodes", "heart_angular_error_deg"] += 0.01  # one recorded value moved
    assert readme_results.scaling_markdown(sweep) != recorded
    provenance = json.loads((folder / "run.json").read_text())
    assert provenance["tables"] == ["surrogate_scaling/scaling.md"] and not provenance["dirty"]


def test_the_training_cuts_table_is_its_csvs():
    surrogate = pd.DataFrame([
        {"run": "study settings", "encoding": "pca", "shape_model_epochs": float("nan"), "fitting_patients": 19,
         "validation_patients": 5, "training_points": "all",
         "epochs_configured": 96, "epochs_trained": 61, "best_epoch": 53, "training_s": 1050.4, "test_patients": 4,
         "angular_error_heart_deg_mean": 9.214, "angular_error_heart_deg_sd": 0.5,
         "angular_error_precordial_heart_deg_mean": 8.0, "angular_error_precordial_heart_deg_sd": 0.25,
         "ecg_relative_l2_mean_mean": 0.3261, "ecg_relative_l2_mean_sd": 0.05,
         "ecg_relative_l2_squared_mean_mean": 0.13604, "ecg_relative_l2_squared_mean_sd": 0.01},
        {"run": "1,024 points", "encoding": "deepsdf", "shape_model_epochs": 19.0, "fitting_patients": 19,
         "validation_patients": 5, "training_points": "1024",
         "epochs_configured": 24, "epochs_trained": 24, "best_epoch": 24, "training_s": 250.0, "test_patients": 4,
         "angular_error_heart_deg_mean": 10.0, "angular_error_heart_deg_sd": 1.0,
         "angular_error_precordial_heart_deg_mean": 9.0, "angular_error_precordial_heart_deg_sd": 1.0,
         "ecg_relative_l2_mean_mean": 0.4, "ecg_relative_l2_mean_sd": 0.1,
         "ecg_relative_l2_squared_mean_mean": 0.2, "ecg_relative_l2_squared_mean_sd": 0.1}])
    ecg2act = pd.DataFrame([{"run": "study settings", "network": "II", "split": "random_samples", "samples": 240,
                             "epochs": 20, "best_epoch": 17, "activation_mae_ms": 3.456, "vm_pearson": 0.95},
                            {"run": "study settings", "network": "I", "split": "random_samples", "samples": 240,
                             "epochs": 30, "best_epoch": 30, "activation_mae_ms": 2.0, "vm_pearson": float("nan")}])
    lines = readme_results.training_cuts_markdown(surrogate, ecg2act).splitlines()
    assert lines[2] == ("| study settings | PCA | 19 | all | 61 (96; 53) | 1,050 | 9.21° ± 0.50° | 8.00° ± 0.25° | "
                        "0.326 ± 0.050 | 0.1360 ± 0.0100 |")
    assert lines[3].startswith("| 1,024 points | DeepSDF, 19 epochs | 19 | 1,024 | 24 (24; 24) | 250 | "
                               "10.00° ± 1.00° |")
    assert lines[-2:] == ["| study settings | II | random_samples | 240 | 20 (17) | 3.46 | 0.9500 |",
                          "| study settings | I | random_samples | 240 | 30 (30) | 2.00 | – |"]
    assert "activation MAE" not in readme_results.training_cuts_markdown(surrogate, pd.DataFrame())
    # a run list of networks only (the paper cohort's) has their table alone
    networks_only = readme_results.training_cuts_markdown(pd.DataFrame(), ecg2act).splitlines()
    assert networks_only[0].startswith("| run | network |") and len(networks_only) == 4
