"""The configuration schema: defaults, documentation, and clear rejection of bad input."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ecgcohort.config import ConfigError, load_schema, schema_markdown, validate_config


@pytest.fixture(scope="module")
def schema(repo) -> dict:
    return load_schema(repo / "workflow/schemas/config.schema.yaml")


def leaves(schema: dict, prefix: str = ""):
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object":
            assert sub.get("description"), f"{prefix}{key} has no description"
            yield from leaves(sub, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", sub


def test_every_key_has_a_default_and_a_description(schema):
    names = []
    for name, sub in leaves(schema):
        names.append(name)
        assert "default" in sub, f"{name} has no default"
        assert len(sub.get("description", "")) > 10, f"{name} has no description"
    assert "cohort.train.lhs_batch" in names and "cohort.rotation_deg.z" in names


def test_defaults_fill_an_empty_config_and_equal_the_shipped_small_config(repo, schema):
    from_defaults = validate_config({}, schema)
    shipped = validate_config(yaml.safe_load((repo / "config/config.yaml").read_text()), schema)
    assert from_defaults == shipped
    assert from_defaults["cohort"]["heart_modes"] == {"count": 10, "range": [-1.0, 1.0]}


def test_a_partial_section_keeps_the_defaults_of_its_other_keys(schema):
    config = validate_config({"cohort": {"train": {"count": 40}}}, schema)
    assert config["cohort"]["train"] == {"count": 40, "lhs_batch": 6}
    assert config["cohort"]["test"]["count"] == 2


def test_paper_config_has_the_published_scale(repo, schema):
    paper = validate_config(yaml.safe_load((repo / "config/paper.yaml").read_text()), schema)
    assert paper["cohort"]["train"] == {"count": 100, "lhs_batch": 100}
    assert paper["cohort"]["test"] == {"count": 10, "lhs_batch": 10}
    assert paper["electrodes"]["anterior_count"] == 100
    assert paper["leadfield"]["sample_points"] == 2**16
    assert paper["meshing"]["heart_element_size_mm"] == 1.2
    assert paper["meshing"]["torso_element_size_mm"] == 8.0
    # the paper's surrogate reads no per-cell gradient of the anterior array (443 MB a patient)
    assert paper["leadfield"]["cell_gradient_electrodes"] == "standard" and paper["surrogate"]["myocardial_points"] == 0


def test_the_2_core_paper_overlay_cuts_the_training_and_nothing_the_data_half_computes(repo, schema):
    """config/paper-cpu.yaml on top of config/paper.yaml: the same patients, meshes, lead fields,
    activations, SDF samples and banks (every section a patient's files depend on), the
    training reduced."""
    paper_raw = yaml.safe_load((repo / "config/paper.yaml").read_text())
    overlay = yaml.safe_load((repo / "config/paper-cpu.yaml").read_text())
    paper = validate_config(paper_raw, schema)
    both = validate_config(_merged(paper_raw, overlay), schema)
    data_half = ("cohort", "shapes", "anatomy", "meshing", "electrodes", "fibers", "electrophysiology", "leadfield", "ecg",
                 "pictures", "realism")
    for section in data_half:
        assert both[section] == paper[section], section
    assert both["encoding"]["sdf"] == paper["encoding"]["sdf"]
    assert {k: v for k, v in both["ecg2act"].items() if k != "networks"} == \
        {k: v for k, v in paper["ecg2act"].items() if k != "networks"}
    assert both["surrogate"]["training_points"] == 4096 and paper["surrogate"]["training_points"] is None
    assert both["surrogate"]["training"]["precision"] == "bf16"  # autocast only where the CPU has native bf16
    assert both["surrogate"]["training"]["epochs"] < paper["surrogate"]["training"]["epochs"]
    assert both["encoding"]["deepsdf"]["training"]["epochs"] < paper["encoding"]["deepsdf"]["training"]["epochs"]
    # smaller batches keep thousands of optimiser steps in the shorter training
    assert both["surrogate"]["training"]["batch_size"] < paper["surrogate"]["training"]["batch_size"]
    for network in ("I", "II"):
        assert both["ecg2act"]["networks"][network]["training"]["epochs"] < 100
        assert both["ecg2act"]["networks"][network]["architecture"] == paper["ecg2act"]["networks"][network]["architecture"]


def _merged(base: dict, overlay: dict) -> dict:
    """Snakemake's merge of two --configfile files: nested mappings updated key by key."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        merged[key] = _merged(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


@pytest.mark.parametrize(
    "change,message",
    [
        ({"cohort": {"train": {"count": -3}}}, r"'cohort\.train\.count': -3 is less than the minimum of 0"),
        ({"cohort": {"train": {"count": "eight"}}}, r"'cohort\.train\.count': 'eight' is not of type 'integer'"),
        ({"cohort": {"test": {"lhs_batch": 0}}}, r"'cohort\.test\.lhs_batch': 0 is less than the minimum"),
        ({"cohort": {"heart_modes": {"range": [1.0]}}}, r"'cohort\.heart_modes\.range'"),
        ({"cohort": {"rotation_deg": {"y": [10, -10]}}}, r"'cohort\.rotation_deg\.y': interval \[10, -10\]"),
        ({"cohort": {"seeed": 3}}, r"unknown config key 'cohort\.seeed'"),
        ({"cohort": {"size_coupling": {"correlation": 1.0}}},
         r"'cohort\.size_coupling\.correlation': 1\.0 is greater than the maximum of 0\.95"),
        ({"meshing": {"heart_element_size_mm": 0}}, r"'meshing\.heart_element_size_mm': 0 is less than the minimum of 0.3"),
        ({"leadfeld": {}}, r"unknown config key 'leadfeld'"),
        ({"electrophysiology": {"eikonal_refinements": -1}},
         r"'electrophysiology\.eikonal_refinements': -1 is less than the minimum of 0"),
        ({"convergence": {"levels": [{"heart_mm": 4.0, "torso_mm": 30.0, "eikonal_refinements": 1.5},
                                     {"heart_mm": 2.0, "torso_mm": 15.0}]}},
         r"'convergence\.levels\[0\]\.eikonal_refinements': 1\.5 is not of type 'integer'"),
        ({"inverse": {"patients": 0}}, r"'inverse\.patients': 0 is not valid"),
        ({"inverse": {"patients": "some"}}, r"'inverse\.patients': 'some' is not valid"),
        ({"cluster": {"max_submissions": 0}}, r"'cluster\.max_submissions': 0 is less than the minimum of 1"),
        # outside the measured 1.6-4 m/s (docs/methods/physiology.md)
        ({"electrophysiology": {"purkinje": {"conduction_velocity_m_per_s": 4.5}}},
         r"'electrophysiology\.purkinje\.conduction_velocity_m_per_s': 4\.5 is greater than the maximum of 4\.0"),
        ({"leadfield": {"cell_gradient_electrodes": "anterior"}}, r"'leadfield\.cell_gradient_electrodes': 'anterior'"),
        # the surrogate's myocardial points are drawn with every electrode's per-cell gradient
        ({"leadfield": {"cell_gradient_electrodes": "standard"}, "surrogate": {"myocardial_points": 2048}},
         r"'surrogate\.myocardial_points' \(2048\) and 'leadfield\.cell_gradient_electrodes' \('standard'\)"),
    ],
)
def test_invalid_values_are_rejected_naming_the_key(schema, change, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(change, schema)


def test_validation_does_not_modify_its_input(schema):
    config = {"cohort": {"train": {"count": 3}}}
    before = copy.deepcopy(config)
    validate_config(config, schema)
    assert config == before


def test_docs_config_md_is_generated_from_the_schema(repo, schema):
    generated = schema_markdown(schema)
    assert (repo / "docs/config.md").read_text() == generated, "run `make docs`"
    for name, _ in leaves(schema):
        assert f"`{name}`" in generated


def test_config_files_merge_key_by_key_at_every_depth(tmp_path):
    """As Snakemake's --configfile: a later file's nested key replaces only that key."""
    from ecgcohort.config import load_config_files

    repo = Path(__file__).resolve().parents[1]
    extra = tmp_path / "extra.yaml"
    extra.write_text("electrophysiology:\n  action_potential:\n    apd_endo_to_epi: -0.05\n")
    config = load_config_files([repo / "config/config.yaml", extra], repo / "workflow/schemas/config.schema.yaml")
    action_potential = config["electrophysiology"]["action_potential"]
    assert action_potential["apd_endo_to_epi"] == -0.05
    assert action_potential["electrotonic_length_mm"] == {"fibre": 6.0, "cross": 4.0}  # kept from config.yaml
    assert config["cohort"]["train"]["count"] == 6


def test_the_inverse_benchmark_runs_on_the_test_patients_all_or_the_first_n(schema):
    from ecgcohort.inverse.selection import benchmark_patients

    patients = ["train-0000", "train-0001", "test-0002", "test-0000", "test-0001"]
    assert benchmark_patients("test", patients) == ["test-0000", "test-0001", "test-0002"]
    assert benchmark_patients("all", patients) == patients
    assert benchmark_patients(2, patients) == ["test-0000", "test-0001"]
    assert benchmark_patients(10, patients) == ["test-0000", "test-0001", "test-0002"]
    assert benchmark_patients(1, ["test-10000", "test-9999"]) == ["test-9999"]
    with pytest.raises(ValueError, match="inverse.patients"):
        benchmark_patients(0, patients)
    assert validate_config({"inverse": {"patients": 20}}, schema)["inverse"]["patients"] == 20


def test_the_release_is_packed_up_to_the_set_cohort_size_and_linked_above(schema):
    from ecgcohort.config import release_layout

    release = validate_config({}, schema)["release"]
    assert (release["layout"], release["pack_up_to_patients"]) == ("auto", 200)
    assert [release_layout(release, n) for n in (8, 200, 201, 10_000)] == ["packed", "packed", "linked", "linked"]
    assert release_layout({**release, "layout": "packed"}, 10_000) == "packed"
    assert release_layout({**release, "layout": "linked"}, 8) == "linked"
    with pytest.raises(ConfigError, match="layout"):
        validate_config({"release": {"layout": "zip"}}, schema)
