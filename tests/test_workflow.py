"""Snakemake itself on copies of the workflow: runs, incremental re-runs, validation, lint."""

from __future__ import annotations

import copy
import json
import re

import pandas as pd
import pytest

from conftest import REPO

pytestmark = pytest.mark.workflow


def cohort_config(workflow_config: dict, train: int, batch: int, test: int = 1) -> dict:
    config = copy.deepcopy(workflow_config)
    config["cohort"]["train"] = {"count": train, "lhs_batch": batch}
    config["cohort"]["test"] = {"count": test, "lhs_batch": test}
    return config


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake run or dry run."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def planned_patients(output: str) -> set[str]:
    """Patients whose parameters a (dry) run will write."""
    return set(re.findall(r"output: results/patients/([\w-]+)/parameters\.json", output))


def succeed(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def test_the_workflow_runs_and_a_second_run_does_nothing(workflow_copy, workflow_config):
    workflow_copy.write_config(cohort_config(workflow_config, train=3, batch=3, test=1))
    log = succeed(workflow_copy.snakemake("cohort"))
    assert job_counts(log) == {"sample_cohort": 1, "patient_parameters": 4, "cohort": 1}

    root = workflow_copy.root
    table = pd.read_csv(root / "results/cohort/cohort.csv")
    assert list(table.patient) == ["train-0000", "train-0001", "train-0002", "test-0000"]
    for patient in table.patient:
        record = json.loads((root / f"results/patients/{patient}/parameters.json").read_text())
        stored = table.set_index("patient").loc[patient, list(record["parameters"])]
        assert record["parameters"] == pytest.approx(stored.astype(float).to_dict(), abs=0)
        assert (root / f"results/logs/patients/{patient}/patient_parameters.log").exists()
        assert (root / f"results/benchmarks/patients/{patient}/patient_parameters.tsv").exists()
    assert "sampled 4 patients" in (root / "results/logs/cohort/sample_cohort.log").read_text()

    assert "Nothing to be done" in succeed(workflow_copy.snakemake("cohort"))


def test_growing_the_cohort_runs_only_the_new_patients(workflow_copy, workflow_config):
    # two Latin-hypercube batches of two, then a third
    workflow_copy.write_config(cohort_config(workflow_config, train=4, batch=2))
    succeed(workflow_copy.snakemake("cohort"))
    root = workflow_copy.root
    before = pd.read_csv(root / "results/cohort/cohort.csv")
    stamps = {p: (root / f"results/patients/{p}/parameters.json").stat().st_mtime_ns for p in before.patient}

    workflow_copy.write_config(cohort_config(workflow_config, train=6, batch=2))
    plan = succeed(workflow_copy.snakemake("cohort", "--dry-run"))
    assert job_counts(plan) == {"sample_cohort": 1, "patient_parameters": 2, "cohort": 1}
    assert planned_patients(plan) == {f"train-{i:04d}" for i in range(4, 6)}
    # on SLURM the new patients' work is one group job holding only them (profiles/slurm)
    grouped = succeed(workflow_copy.snakemake("cohort", "--dry-run", "--profile", "profiles/slurm"))
    assert grouped.count("Group job patient") == 1
    assert planned_patients(grouped) == {f"train-{i:04d}" for i in range(4, 6)}

    succeed(workflow_copy.snakemake("cohort"))
    after = pd.read_csv(root / "results/cohort/cohort.csv")
    pd.testing.assert_frame_equal(after[after.patient.isin(before.patient)].reset_index(drop=True), before)
    for patient, stamp in stamps.items():
        assert (root / f"results/patients/{patient}/parameters.json").stat().st_mtime_ns == stamp, patient
    summary = succeed(workflow_copy.snakemake("cohort", "--summary"))
    assert "update pending" not in summary and "missing" not in summary


def test_changing_a_range_reruns_sampling_and_every_patient(workflow_copy, workflow_config):
    config = cohort_config(workflow_config, train=4, batch=4, test=2)
    workflow_copy.write_config(config)
    succeed(workflow_copy.snakemake("cohort"))

    config["cohort"]["rotation_deg"]["z"] = [-20.0, 20.0]
    workflow_copy.write_config(config)
    plan = succeed(workflow_copy.snakemake("cohort", "--dry-run"))
    assert job_counts(plan) == {"sample_cohort": 1, "patient_parameters": 6, "cohort": 1}
    assert "Params have changed since last execution" in plan
    summary = succeed(workflow_copy.snakemake("cohort", "--summary"))
    assert summary.count("update pending") >= 7


@pytest.mark.parametrize(
    "section,value,key",
    [
        ("train", {"count": -1, "lhs_batch": 4}, "cohort.train.count"),
        ("test", {"count": 2, "lhs_batch": 2, "size": 3}, "cohort.test.size"),
    ],
)
def test_an_invalid_config_stops_snakemake_before_any_job(workflow_copy, workflow_config, section, value, key):
    config = copy.deepcopy(workflow_config)
    config["cohort"][section] = value
    workflow_copy.write_config(config)
    result = workflow_copy.snakemake("cohort")
    assert result.returncode != 0
    assert key in result.stderr + result.stdout
    assert not (workflow_copy.root / "results").exists()


def test_an_inverse_source_that_is_not_a_cohort_map_is_refused_when_the_benchmark_is_planned(
        workflow_copy, workflow_config):
    """The default source pacing-00 with the scenarios cut to sinus: the data chain still plans
    (the benchmark is not asked for), the benchmark is refused naming the setting and the maps."""
    config = copy.deepcopy(workflow_config)
    config["electrophysiology"]["scenarios"] = [{"name": "sinus", "kind": "sinus"}]
    workflow_copy.write_config(config)
    succeed(workflow_copy.snakemake("--dry-run", "results/patients/test-0000/ecg/sinus.npz"))
    refused = workflow_copy.snakemake("--dry-run", "inverse")
    assert refused.returncode != 0
    assert "inverse.dynamics.sources: 'pacing-00' is neither aliev_panfilov nor one of the cohort's activation " \
           "maps (sinus)" in refused.stdout + refused.stderr


def test_lint_is_clean(workflow_copy):
    result = workflow_copy.snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_the_paper_config_plans_its_110_patients(workflow_copy):
    """config/paper.yaml plans (its time is benchmarks/planning.py's, not a timed test)."""
    plan = succeed(workflow_copy.snakemake("--dry-run", "--configfile", "config/paper.yaml"))
    assert job_counts(plan)["patient_parameters"] == 110
    # the 2-core recording's targets (config/paper-cpu.yaml): every learning stage, a dataset part
    # for the 10 test patients only and no cohort store (24 GiB of parts the tables do not read)
    recorded = succeed(workflow_copy.snakemake("surrogates", "ecg2act", "encodings", "realism", "--dry-run",
                                               "--configfile", "config/paper.yaml", "config/paper-cpu.yaml"))
    jobs = job_counts(recorded)
    assert jobs["compute_lead_fields"] == jobs["simulation_bank"] == 110 and jobs["dataset_part"] == 10
    assert jobs["train_surrogate"] == 2 and jobs["train_ecg2act"] == 2 and jobs["evaluate_surrogate"] == 20
    assert "assemble_dataset" not in jobs and jobs["evaluate_shape_code"] == 30  # the held-out patients only


def test_the_ecg2act_evaluation_promises_only_the_trained_networks_figures(workflow_copy):
    """ecg2act.networks_to_train: Network I alone draws no V_m overlays (Fig. 4) and Network II
    alone no activation map (Fig. 3b/d), so neither run may list them as outputs (the paper
    cohort's Network I run stopped on the missing vm_overlays.png)."""
    overlay = workflow_copy.root / "networks.yaml"
    for networks, drawn, not_drawn in ((["I"], "activation_map.png", "vm_overlays.png"),
                                       (["II"], "vm_overlays.png", "activation_map.png")):
        overlay.write_text(f"ecg2act:\n  networks_to_train: {networks}\n")
        plan = succeed(workflow_copy.snakemake("ecg2act", "--dry-run", "--configfile", str(overlay)))
        outputs = re.search(r"rule evaluate_ecg2act:.*?output: ([^\n]*)", plan, re.S).group(1)
        assert f"results/ecg2act/{drawn}" in outputs and not_drawn not in outputs, (networks, outputs)


def test_a_surrogate_on_the_first_training_patients_plans_their_lead_fields_only(workflow_copy):
    """surrogate.training_patients (the curve over the cohort's size, issue 64): the paper cohort's
    surrogate on its first 19 training patients needs their lead fields and no others; more
    patients than the cohort has stops the plan naming the key and the value."""
    overlay = workflow_copy.root / "first-19.yaml"
    overlay.write_text("surrogate:\n  training_patients: 19\n")
    plan = succeed(workflow_copy.snakemake("results/surrogate/pca/full/model.pt", "--dry-run", "--configfile",
                                           "config/paper.yaml", "config/paper-cpu.yaml", str(overlay)))
    jobs = job_counts(plan)
    assert jobs["train_surrogate"] == 1 and jobs["compute_lead_fields"] == 19
    assert set(re.findall(r"results/patients/(train-\d+)/leadfield/chunk-0\.npz", plan)) == {
        f"train-{index:04d}" for index in range(19)}
    overlay.write_text("surrogate:\n  training_patients: 101\n")
    refused = workflow_copy.snakemake("results/surrogate/pca/full/model.pt", "--dry-run", "--configfile",
                                      "config/paper.yaml", str(overlay))
    assert refused.returncode != 0
    assert "surrogate.training_patients = 101: the cohort has only 100 training patients" in (refused.stdout
                                                                                              + refused.stderr)


def test_the_large_cohort_config_plans_one_job_per_batch_of_patients(workflow_copy, workflow_config):
    """config/large.yaml on 27 + 3 patients: one patient_batch job per 10 patients (by number,
    per split) and no per-patient stage job; the per-test-patient stages and the fan-ins wait
    on the batch markers; the inverse benchmark and the convergence ladder on the patients the
    file names (the timing at 10,000 patients is benchmarks/planning.py's)."""
    workflow_copy.write_config(cohort_config(workflow_config, train=27, batch=27, test=3))
    plan = succeed(workflow_copy.snakemake("--dry-run", "--configfile", "config/config.yaml", "config/large.yaml"))
    jobs = job_counts(plan)
    assert jobs["patient_batch"] == 4 and not planned_patients(plan)
    batches = set(re.findall(r"output: results/batches/([\w-]+)\.json", plan))
    assert batches == {"train-0000-0009", "train-0010-0019", "train-0020-0029", "test-0000-0009", "train"}
    assert jobs["split_batches"] == 1  # the test split is one batch: its marker is the split's
    assert not {"compute_fibres", "compute_lead_fields", "dataset_part", "simulation_bank"} & set(jobs)
    assert jobs["inverse_surfaces"] == 3 and jobs["convergence_points"] == 4  # train-0000 and three test patients
    # a fan-in over whole splits waits on their markers; a job of one patient on its own batch
    assert re.search(r"rule assemble_dataset:\n    input: results/batches/test-0000-0009.json, results/batches/train.json\n", plan)
    assert re.search(r"rule split_batches:\n    input: results/batches/train-0000-0009.json, "
                     r"results/batches/train-0010-0019.json, results/batches/train-0020-0029.json\n", plan)
    assert re.search(r"rule inverse_surfaces:\n    input: results/batches/test-0000-0009.json\n", plan)


def test_the_slurm_profile_scales_resources_with_the_attempt(workflow_copy):
    plan = succeed(workflow_copy.snakemake("cohort", "--dry-run", "--profile", "profiles/slurm", "--executor", "local"))
    first = re.search(r"rule sample_cohort:.*?resources: ([^\n]+)", plan, re.S).group(1)
    assert "mem_mb=1000" in first and "runtime=5" in first


def test_every_report_caption_is_valid_restructuredtext():
    """Snakemake renders the captions with docutils: a stray ``|x|`` (a substitution reference)
    printed an error into the report's build and the caption."""
    import io

    import docutils.core

    captions = sorted((REPO / "workflow/report").glob("*.rst"))
    assert len(captions) >= 10
    for caption in captions:
        warnings = io.StringIO()
        docutils.core.publish_string(caption.read_text(), writer_name="null",
                                     settings_overrides={"report_level": 2, "warning_stream": warnings})
        assert warnings.getvalue() == "", f"{caption.name}: {warnings.getvalue()}"


PATIENT_LISTS = re.compile(r"\b(PATIENTS|TRAIN_PATIENTS|TEST_PATIENTS|SHAPE_FIT_PATIENTS|INFERRED_PATIENTS|"
                           r"SHAPE_EVALUATED_PATIENTS|GROUND_TRUTH_PATIENTS|CONVERGENCE_PATIENTS|INVERSE_PATIENTS|"
                           r"INVERSE_RUNS)\b")


def test_inputs_over_the_cohort_are_input_functions():
    """A fan-in's input list over the cohort is built when its job is planned, not when the
    Snakefile is read: every cluster job reads the Snakefile, and 10,000 patients' static lists
    made each one's start-up 31 s and 0.9 GB instead of 3.9 s and 0.23 GB (benchmarks in the
    changelog). Every input item of every rule that names a patient list must be a lambda (or
    come from a ChainInputs, whose input function expands it)."""
    static = []
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        blocks = re.findall(r"^    input:\n((?:^(?:        .*|\s*)\n)+)", path.read_text(), re.M)
        for block in blocks:
            items = re.split(r"\n(?=        \S)", block)
            for item in items:
                if PATIENT_LISTS.search(item) and not re.match(r"\s*(\w+=)?lambda wildcards:", item):
                    static.append(f"{path.name}: {item.strip().splitlines()[0]}")
    assert static == []
    # the check sees the inputs: the dataset's fan-in takes its parts from a ChainInputs, whose
    # input function expands the patient list when the job is planned
    dataset = (REPO / "workflow/rules/dataset.smk").read_text()
    assert "parts=(rules.dataset_part.output.part, PATIENTS)" in dataset
    assert "unpack(ASSEMBLE_DATASET_CHAIN.input)" in dataset
