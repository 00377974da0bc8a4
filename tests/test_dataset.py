"""Dataset stage: fan-in of synthetic patients into cohort.zarr, lazy reading, provenance, card;
the patients' sex and age read back from the store."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import dask.array
import numpy as np
import pytest
import xarray
import yaml

from ecgcohort.cohort import design_from_config, patient_person, patient_record, write_patient_parameters
from ecgcohort.conduction.maps import ActivationMap, save_activation
from ecgcohort.config import load_schema, validate_config
from ecgcohort.dataset import assemble, card
from ecgcohort.dataset import parts as dataset_parts
from ecgcohort.dataset import store as store_layout
from ecgcohort.dataset import (assemble_cohort, group_patient_files, open_cohort, open_patient_mesh,
                               write_patient_part)
from ecgcohort.dataset.provenance import numeric_kernels
from ecgcohort.ecg.leads import LEAD_ELECTRODES, LEAD_NAMES, standard_leads
from ecgcohort.fibers.rule_based import FibreAngles, MyocardialFibres, save_fibres
from test_ecg import box_mesh

PATIENTS = ["train-0000", "train-0001", "test-0000"]
SCENARIOS = ["sinus", "lbbb"]
NAMES = list(LEAD_ELECTRODES) + ["A000", "A001"]
N_POINTS, N_TIMES = 40, 21


@pytest.fixture(scope="module")
def config(repo) -> dict:
    raw = yaml.safe_load((repo / "config/config.yaml").read_text())
    return validate_config(raw, load_schema(repo / "workflow/schemas/config.schema.yaml"))


def write_patient(root: Path, patient: str, config: dict, mesh_cubes: int, seed: int) -> dict:
    """Every input file of one patient under ``root/results/patients/<patient>``; returns the arrays."""
    rng = np.random.default_rng(seed)
    base = root / "results" / "patients" / patient
    write_patient_parameters(patient_record(design_from_config(config["cohort"]), patient), base / "parameters.json")
    positions = rng.normal(size=(len(NAMES), 3)) * 0.2
    (base / "anatomy").mkdir(parents=True)
    with open(base / "anatomy" / "electrodes.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["name", "kind", "x_mm", "y_mm", "z_mm", "x_norm", "y_norm", "z_norm"])
        for name, e in zip(NAMES, positions):
            writer.writerow([name, "standard" if name in LEAD_ELECTRODES else "anterior", *(e * 1e3), -0.5, 0.9, 0.4])
    points = {"points_m": rng.normal(size=(N_POINTS, 3)) * 0.1, "region": rng.integers(1, 3, N_POINTS),
              "distance_to_heart_m": rng.uniform(0, 0.1, N_POINTS)}
    (base / "leadfield").mkdir()
    np.savez(base / "leadfield" / "points.npz", **points)
    nodes_m, tets = box_mesh(mesh_cubes, 0.03)
    n_nodes, n_cells = len(nodes_m), len(tets)
    fibre_cell = rng.normal(size=(n_cells, 3))
    unit = np.tile([1.0, 0, 0], (n_nodes, 1))
    save_fibres(MyocardialFibres(nodes_m * 1e3, tets, unit, unit, unit, fibre_cell, fibre_cell, fibre_cell,
                                 {"transmural": np.zeros(n_nodes)}, np.arange(n_nodes), np.arange(n_cells),
                                 FibreAngles()), base / "fibres" / "fibres.npz")
    grad_points = rng.normal(size=(len(NAMES), N_POINTS, 3)).astype(np.float32)
    grad_cells = rng.normal(size=(len(NAMES), n_cells, 3)).astype(np.float32)
    lead = rng.normal(size=(len(NAMES), n_nodes))
    for k, part in enumerate((slice(0, 7), slice(7, None))):
        np.savez(base / "leadfield" / f"chunk-{k}.npz", electrode_names=np.array(NAMES[part]),
                 electrode_positions_m=positions[part], grad_points=grad_points[part], grad_cells=grad_cells[part],
                 lead_matrix=lead[part], stats_json=np.array(json.dumps({"chunk": k, "seconds": 1.5})))
    activation, ecgs = {}, {}
    for scenario in SCENARIOS:
        activation[scenario] = rng.uniform(0, 80, n_nodes)
        save_activation(ActivationMap(scenario, "test", activation[scenario], np.ones(n_nodes), np.zeros((1, 3)),
                                      np.zeros(1)), base / "activation" / f"{scenario}.npz")
        unipolar, pseudo = rng.normal(size=(2, len(NAMES), N_TIMES)) * 1e-3
        ecgs[scenario] = {"unipolar_v": unipolar, "pseudo_unipolar_v": pseudo,
                          "leads_v": standard_leads(unipolar, NAMES), "pseudo_leads_v": standard_leads(pseudo, NAMES)}
        (base / "ecg").mkdir(exist_ok=True)
        np.savez(base / "ecg" / f"{scenario}.npz", time_s=np.arange(N_TIMES) * 2e-3, electrode_names=np.array(NAMES),
                 lead_names=np.array(LEAD_NAMES), **ecgs[scenario])
    return {"points": points, "positions": positions, "grad_points": grad_points, "grad_cells": grad_cells,
            "lead": lead, "tets": tets, "nodes_m": nodes_m, "activation": activation, "ecg": ecgs}


def files_of(root: Path) -> dict:
    """Flat lists of input paths as the Snakemake rule lists them, grouped per patient."""
    base = root / "results" / "patients"
    return group_patient_files(
        PATIENTS, SCENARIOS,
        parameters=[base / p / "parameters.json" for p in PATIENTS],
        electrodes=[base / p / "anatomy" / "electrodes.csv" for p in PATIENTS],
        points=[base / p / "leadfield" / "points.npz" for p in PATIENTS],
        fibres=[base / p / "fibres" / "fibres.npz" for p in PATIENTS],
        leadfield_chunks=[base / p / "leadfield" / f"chunk-{k}.npz" for p in PATIENTS for k in (0, 1)],
        activation=[base / p / "activation" / f"{s}.npz" for p in PATIENTS for s in SCENARIOS],
        ecg=[base / p / "ecg" / f"{s}.npz" for p in PATIENTS for s in SCENARIOS])


def write_parts(root: Path, patients=PATIENTS, folder: str = "parts", scenarios=SCENARIOS) -> dict[str, Path]:
    """Every patient's part of the store (the per-patient job), under ``root/results/dataset/<folder>``."""
    files = files_of(root)
    parts = {p: root / "results" / "dataset" / folder / f"{p}.zarr" for p in patients}
    for patient in patients:
        write_patient_part(patient, files[patient], scenarios, parts[patient])
    return parts


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, config):
    root = tmp_path_factory.mktemp("cohort")
    inputs = {p: write_patient(root, p, config, mesh_cubes=2 + i, seed=i) for i, p in enumerate(PATIENTS)}
    out = root / "results" / "dataset"
    parts = write_parts(root)
    with pytest.MonkeyPatch.context() as patch:  # no git in tests
        patch.setattr(assemble, "git_revision", lambda: "0123abc")
        assemble_cohort(PATIENTS, parts, config, out / "cohort.zarr", out / "README.md")
    return root, inputs, out


def test_cohort_is_lazy_one_patient_per_chunk_and_round_trips(cohort, config):
    _, inputs, out = cohort
    ds = open_cohort(out / "cohort.zarr")
    assert list(ds.patient.values) == PATIENTS and list(ds.split.values) == ["train", "train", "test"]
    design = design_from_config(config["cohort"])
    people = [patient_person(design, p) for p in PATIENTS]
    assert list(ds.sex.values) == [person.sex for person in people]
    np.testing.assert_array_equal(ds.age.values, [person.age_years for person in people])  # bit for bit
    assert ds.age.attrs["units"] == "year" and ds.sex.dims == ("patient",)
    assert list(ds.sel(patient=ds.sex == "female").patient.values) == [p for p, person in zip(PATIENTS, people)
                                                                        if person.sex == "female"]
    assert list(ds.electrode.values) == NAMES and list(ds.lead.values) == list(LEAD_NAMES)
    assert ds.sizes["point"] == N_POINTS and ds.sizes["time"] == N_TIMES
    grad = ds.grad_lead_field
    assert isinstance(grad.data, dask.array.Array) and grad.dtype == np.float32
    assert grad.chunks[0] == (1, 1, 1)
    for name, variable in ds.data_vars.items():
        if "patient" in variable.dims:
            assert variable.chunks[variable.dims.index("patient")] == (1, 1, 1), name
    for i, patient in enumerate(PATIENTS):
        mine = inputs[patient]
        row = ds.isel(patient=i)
        assert np.array_equal(row.grad_lead_field.values, mine["grad_points"])
        assert np.array_equal(row.sample_points.values, mine["points"]["points_m"])
        assert np.array_equal(row.sample_region.values, mine["points"]["region"])
        assert np.allclose(row.electrode_position.values, mine["positions"])
        assert np.array_equal(row.lead_ecg.sel(scenario="lbbb").values, mine["ecg"]["lbbb"]["leads_v"])
        assert np.array_equal(row.pseudo_unipolar_ecg.sel(scenario="sinus").values,
                              mine["ecg"]["sinus"]["pseudo_unipolar_v"])
        assert float(row.activation_duration.sel(scenario="sinus")) == pytest.approx(
            np.ptp(mine["activation"]["sinus"]) * 1e-3)
        assert int(row.node_count) == len(mine["nodes_m"]) and int(row.cell_count) == len(mine["tets"])
    record = json.loads((cohort[0] / "results/patients/test-0000/parameters.json").read_text())
    assert ds.parameters.sel(patient="test-0000").values == pytest.approx(list(record["parameters"].values()))
    assert list(ds.parameter_units.values) == list(record["units"].values())


def test_per_patient_groups_hold_the_ragged_mesh_data(cohort):
    _, inputs, out = cohort
    sizes = set()
    for patient in PATIENTS:
        mine = inputs[patient]
        mesh = open_patient_mesh(out / "cohort.zarr", patient)
        assert isinstance(mesh.lead_matrix.data, dask.array.Array)
        assert np.array_equal(mesh.tetrahedra.values, mine["tets"])
        assert np.allclose(mesh.node_position.values, mine["nodes_m"], rtol=0, atol=1e-15)
        assert np.array_equal(mesh.lead_matrix.values, mine["lead"])
        assert np.array_equal(mesh.grad_lead_field_cell.values, mine["grad_cells"])
        assert np.allclose(mesh.activation_time.sel(scenario="lbbb").values, mine["activation"]["lbbb"] * 1e-3)
        assert mesh.attrs["patient"] == patient
        assert [s["chunk"] for s in json.loads(mesh.attrs["leadfield_stats"])] == [0, 1]
        sizes.add(mesh.sizes["node"])
    assert len(sizes) == 3  # the meshes really differ
    with pytest.raises(KeyError, match="train-0042"):
        open_patient_mesh(out / "cohort.zarr", "train-0042")


def test_reading_one_patient_touches_only_its_chunks(cohort, tmp_path):
    import shutil

    _, inputs, out = cohort
    store = tmp_path / "cohort.zarr"
    shutil.copytree(out / "cohort.zarr", store)
    # corrupt every chunk of the second patient's grad Z: reading the first must not notice
    corrupted = list((store / "grad_lead_field").glob("c.1.*"))
    assert [f for f in corrupted if f.is_file()]
    for f in corrupted:
        if f.is_file():
            f.write_bytes(b"not a zstd frame")
    ds = open_cohort(store)
    assert np.array_equal(ds.grad_lead_field.sel(patient="train-0000").values, inputs["train-0000"]["grad_points"])
    assert np.array_equal(ds.grad_lead_field.sel(patient="test-0000").values, inputs["test-0000"]["grad_points"])
    with pytest.raises(Exception):
        ds.grad_lead_field.sel(patient="train-0001").values


def test_every_array_has_units_and_long_name_and_metadata_is_consolidated(cohort, config):
    _, _, out = cohort
    ds = open_cohort(out / "cohort.zarr")
    for dataset in (ds, open_patient_mesh(out / "cohort.zarr", "train-0001")):
        for name, variable in dataset.variables.items():
            assert variable.attrs.get("units"), name
            assert variable.attrs.get("long_name"), name
    assert ds.grad_lead_field.attrs["units"] == "ohm/m" and ds.unipolar_ecg.attrs["units"] == "V"
    root = json.loads((out / "cohort.zarr" / "zarr.json").read_text())
    listed = root["consolidated_metadata"]["metadata"]
    assert "grad_lead_field" in listed and "patients/train-0001/lead_matrix" in listed
    assert json.loads(ds.attrs["config"]) == json.loads(json.dumps(config))
    software = json.loads(ds.attrs["software"])
    assert software["numpy"]["version"] == np.__version__ and "zarr" in software and "xarray" in software
    hardware = json.loads(ds.attrs["hardware"])
    assert hardware["logical_cores"] >= 1 and hardware["cpu_model"]
    assert hardware["numeric_kernels"] == numeric_kernels() and hardware["numeric_kernels"]["blas"]
    assert ds.attrs["git_revision"] == "0123abc" and ds.attrs["created"].startswith("20")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_dataset_card_lists_variables_sizes_ranges_and_licences(cohort, config):
    _, _, out = cohort
    card = (out / "README.md").read_text()
    people = [patient_person(design_from_config(config["cohort"]), p) for p in PATIENTS]
    ages = [person.age_years for person in people]
    assert f"| age | {min(ages):.1f} to {max(ages):.1f} years |" in card  # the patients', not placeholders
    counts = {sex: sum(person.sex == sex for person in people) for sex in ("female", "male")}
    assert "| sex | " + ", ".join(f"{sex}: {n}" for sex, n in counts.items() if n) + " |" in card
    for text in ("| `grad_lead_field` | (patient, electrode, point, component) | float32 | ohm/m |",
                 "| `lead_matrix` | (electrode, node) |", "| `heart_mode_01` | standard deviations | [-1, 1] |",
                 "| `rotation_x_deg` | degree | [-10, 10] |", "patients | 3 (test: 1, train: 2)",
                 "electrodes | 11 (anterior: 2, standard: 9)", "bytes on disk", "AGPL", "LGPL", "CC0",
                 "0123abc", "logical cores", f"numeric kernels (assembly job): BLAS {numeric_kernels()['blas'][0]}"):
        assert text in card, text


@pytest.mark.skipif(platform.machine() != "x86_64" or "avx2" not in Path("/proc/cpuinfo").read_text(),
                    reason="OpenBLAS's Haswell kernels need an x86 processor with AVX2")
def test_the_provenance_names_the_numeric_kernels_the_processor_chose():
    """Pinned OpenBLAS kernels and NumPy SIMD targets turned off in a fresh interpreter are what
    the provenance reports (docs/methods/meshing.md: they decide the anatomy's last bits)."""
    script = "import json; from ecgcohort.dataset.provenance import numeric_kernels; print(json.dumps(numeric_kernels()))"
    pinned = {**os.environ, "OPENBLAS_CORETYPE": "Haswell",
              "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
    reported = json.loads(subprocess.run([sys.executable, "-c", script], env=pinned, capture_output=True, text=True,
                                         check=True).stdout)
    assert reported["blas"] and all(entry.endswith(" Haswell") for entry in reported["blas"])
    assert not {"X86_V4", "AVX512_ICL", "AVX512_SPR"} & set(reported["numpy_simd"])
    unpinned = {name: value for name, value in os.environ.items()
                if name not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    native = json.loads(subprocess.run([sys.executable, "-c", script], env=unpinned, capture_output=True, text=True,
                                       check=True).stdout)
    assert "X86_V3" in reported["numpy_simd"] and set(reported["numpy_simd"]) <= set(native["numpy_simd"])


def test_a_failing_assembly_leaves_no_store_and_keeps_the_previous_one(cohort, config, monkeypatch, tmp_path):
    root, _, _ = cohort
    parts = {p: root / "results/dataset/parts" / f"{p}.zarr" for p in PATIENTS}
    out = tmp_path / "dataset"
    monkeypatch.setattr(assemble, "git_revision", lambda: "0123abc")
    real = assemble._place_part
    calls = []

    def dies_on_the_second_patient(part, store, patient, *args):
        calls.append(patient)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(part, store, patient, *args)

    monkeypatch.setattr(assemble, "_place_part", dies_on_the_second_patient)
    with pytest.raises(RuntimeError, match="killed"):
        assemble_cohort(PATIENTS, parts, config, out / "cohort.zarr", out / "README.md")
    assert calls == PATIENTS[:2]
    assert list(out.iterdir()) == []  # neither a store, nor a temporary, nor a card

    monkeypatch.setattr(assemble, "_place_part", real)
    assemble_cohort(PATIENTS[:1], parts, config, out / "cohort.zarr", out / "README.md")
    calls.clear()
    monkeypatch.setattr(assemble, "_place_part", dies_on_the_second_patient)
    with pytest.raises(RuntimeError):
        assemble_cohort(PATIENTS, parts, config, out / "cohort.zarr", out / "README.md")
    assert list(open_cohort(out / "cohort.zarr").patient.values) == PATIENTS[:1]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "cohort.zarr"]


def test_electrodes_without_per_cell_gradients_are_nan_rows_and_small(cohort, tmp_path):
    """A patient's anterior chunk written with ``leadfield.cell_gradient_electrodes: standard``
    (grad_cells (E, 0, 3)): the part's rows of those electrodes are NaN, the 12-lead's and every
    other array as before, and the NaN rows cost next to nothing on disk."""
    root, inputs, _ = cohort
    files = files_of(root)["train-0000"]
    mine = inputs["train-0000"]
    trimmed = tmp_path / "chunk-1.npz"
    with np.load(files.leadfield_chunks[1]) as chunk:
        arrays = dict(chunk)
    arrays["grad_cells"] = arrays["grad_cells"][:, :0]
    np.savez(trimmed, **arrays)
    standard = dataclasses.replace(files, leadfield_chunks=[files.leadfield_chunks[0], trimmed])
    write_patient_part("train-0000", standard, SCENARIOS, tmp_path / "standard.zarr")
    write_patient_part("train-0000", files, SCENARIOS, tmp_path / "all.zarr")
    mesh = xarray.open_zarr(tmp_path / "standard.zarr", group="patients/train-0000", consolidated=False)
    cells = mesh.grad_lead_field_cell.values
    assert np.array_equal(cells[:7], mine["grad_cells"][:7]) and np.isnan(cells[7:]).all()
    assert np.array_equal(mesh.lead_matrix.values, mine["lead"])
    cell_bytes = {name: sum(f.stat().st_size for f in (tmp_path / f"{name}.zarr" / "patients" / "train-0000"
                                                        / "grad_lead_field_cell").rglob("*") if f.is_file())
                  for name in ("standard", "all")}
    # 7 of 9 electrodes' rows kept; the 2 NaN rows compress to almost nothing
    assert cell_bytes["standard"] < 0.85 * cell_bytes["all"]


def test_a_failing_part_leaves_no_part(cohort, monkeypatch, tmp_path):
    root, _, _ = cohort

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(dataset_parts, "_patient_row", killed)
    with pytest.raises(RuntimeError, match="killed"):
        write_patient_part("train-0000", files_of(root)["train-0000"], SCENARIOS, tmp_path / "train-0000.zarr")
    assert list(tmp_path.iterdir()) == []


def test_inconsistent_patients_are_named(cohort, config, tmp_path):
    root, _, _ = cohort
    files = files_of(root)
    bad = tmp_path / "electrodes.csv"
    bad.write_text((root / "results/patients/train-0001/anatomy/electrodes.csv").read_text().replace("A001", "A009"))
    broken = dataset_parts.PatientFiles(**{**files["train-0001"].__dict__, "electrodes": bad})
    with pytest.raises(ValueError, match="train-0001.*lead-field electrodes"):
        write_patient_part("train-0001", broken, SCENARIOS, tmp_path / "train-0001.zarr")
    assert not (tmp_path / "train-0001.zarr").exists()
    parts = {p: root / "results/dataset/parts" / f"{p}.zarr" for p in PATIENTS}
    parts["test-0000"] = tmp_path / "test-0000.zarr"
    write_patient_part("test-0000", files["test-0000"], SCENARIOS[:1], parts["test-0000"])
    with pytest.raises(ValueError, match="test-0000.*scenario"):
        assemble_cohort(PATIENTS, parts, config, tmp_path / "cohort.zarr", tmp_path / "README.md")
    assert not (tmp_path / "cohort.zarr").exists()
    with pytest.raises(ValueError, match="train-0042"):
        assemble_cohort(["train-0042"], parts, config, tmp_path / "cohort.zarr", tmp_path / "README.md")
    with pytest.raises(ValueError, match="test-0000.*scenario.*lbbb"):
        group_patient_files(["test-0000"], SCENARIOS, parameters=["a/test-0000/p.json"], electrodes=["a/test-0000/e"],
                            points=["a/test-0000/x"], fibres=["a/test-0000/f"], leadfield_chunks=["a/test-0000/c"],
                            activation=["a/test-0000/sinus.npz"], ecg=["a/test-0000/sinus.npz"])


def _array_files(store: Path) -> dict[str, bytes]:
    """Every chunk (shard) file of a store, by relative path (metadata files left out: they hold
    the creation time and the consolidated listing)."""
    return {str(f.relative_to(store)): f.read_bytes() for f in sorted(store.rglob("*"))
            if f.is_file() and f.name != "zarr.json"}


def test_adding_a_patient_writes_only_its_part_and_equals_a_store_assembled_at_once(cohort, config, tmp_path,
                                                                                    monkeypatch):
    """Patients A (two) then B added equals A + B at once, byte for byte in the arrays; adding B
    wrote B's part only: A's parts are untouched and A's shards in the new store are A's files."""
    root, _, _ = cohort
    monkeypatch.setattr(assemble, "git_revision", lambda: "0123abc")
    first, added = PATIENTS[:2], PATIENTS[2]
    parts = write_parts(root, first, folder="growing")
    step = tmp_path / "step"
    assemble_cohort(first, parts, config, step / "cohort.zarr", step / "README.md")
    before = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for p in first for f in parts[p].rglob("*") if f.is_file()}
    parts |= write_parts(root, [added], folder="growing")
    assemble_cohort(PATIENTS, parts, config, step / "cohort.zarr", step / "README.md")
    after = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for p in first for f in parts[p].rglob("*") if f.is_file()}
    assert after == before
    grown = step / "cohort.zarr"
    for index, patient in enumerate(PATIENTS):
        shard = grown / "grad_lead_field" / f"c.{index}.0.0.0"
        own = parts[patient] / "grad_lead_field" / "c.0.0.0.0"
        assert shard.stat().st_ino == own.stat().st_ino  # linked, not rewritten
        mesh = grown / "patients" / patient / "lead_matrix" / "c.0.0"
        assert mesh.stat().st_ino == (parts[patient] / "patients" / patient / "lead_matrix" / "c.0.0").stat().st_ino

    at_once = tmp_path / "once"
    assemble_cohort(PATIENTS, write_parts(root, PATIENTS, folder="at-once"), config, at_once / "cohort.zarr",
                    at_once / "README.md")
    grown_files, once_files = _array_files(grown), _array_files(at_once / "cohort.zarr")
    assert sorted(grown_files) == sorted(once_files) and len(once_files) > 40
    assert [k for k in once_files if grown_files[k] != once_files[k]] == []
    a, b = open_cohort(grown).compute(), open_cohort(at_once / "cohort.zarr").compute()
    assert a.drop_attrs().identical(b.drop_attrs())


def test_every_array_is_one_checksummed_shard_per_patient(cohort):
    _, _, out = cohort
    store = out / "cohort.zarr"
    ds = open_cohort(store)
    for name, variable in ds.data_vars.items():
        meta = json.loads((store / name / "zarr.json").read_text())
        (codec,) = meta["codecs"]
        assert codec["name"] == "sharding_indexed", name
        assert [c["name"] for c in codec["configuration"]["codecs"]][-1] == "crc32c", name
        # byte shuffle by the item size (the shuffle is what compresses the floats), then LZ4
        blosc = codec["configuration"]["codecs"][1]
        assert blosc["name"] == "blosc" and blosc["configuration"]["shuffle"] == "shuffle", name
        assert blosc["configuration"]["typesize"] == variable.dtype.itemsize, name
        assert sorted(f.name for f in (store / name).glob("c.*")) == [
            ".".join(["c", str(i)] + ["0"] * (variable.ndim - 1)) for i in range(len(PATIENTS))], name
    for patient in PATIENTS:
        group = store / "patients" / patient
        for array in ("lead_matrix", "tetrahedra", "activation_time"):
            assert len(list((group / array).glob("c.*"))) == 1, (patient, array)


def test_a_flipped_byte_fails_the_read_of_that_patient_only(cohort, tmp_path):
    import shutil

    _, inputs, out = cohort
    store = tmp_path / "cohort.zarr"
    shutil.copytree(out / "cohort.zarr", store)
    shard = store / "lead_ecg" / "c.1.0.0.0"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside the compressed chunk, before the shard index
    shard.write_bytes(bytes(data))
    ds = open_cohort(store)
    assert np.array_equal(ds.lead_ecg.sel(patient="test-0000", scenario="sinus").values,
                          inputs["test-0000"]["ecg"]["sinus"]["leads_v"])
    with pytest.raises(Exception, match="(?i)checksum"):
        ds.lead_ecg.sel(patient="train-0001").values


def test_the_consolidated_listing_is_what_zarr_writes(cohort, tmp_path):
    """The fan-in writes the consolidated metadata from the parts' listings (fast); zarr's own
    consolidation of the same store gives the same listing."""
    import shutil

    import zarr

    _, _, out = cohort
    store = tmp_path / "cohort.zarr"
    shutil.copytree(out / "cohort.zarr", store)
    ours = json.loads((store / "zarr.json").read_text())["consolidated_metadata"]
    with pytest.warns(UserWarning, match="Consolidated metadata"):
        zarr.consolidate_metadata(str(store))
    theirs = json.loads((store / "zarr.json").read_text())["consolidated_metadata"]
    assert ours == theirs
    assert len(ours["metadata"]) > 3 * 12


def test_the_root_is_what_xarray_would_write(cohort, config):
    """The fan-in writes the root's metadata from the first part's (fast); xarray writing the same
    Dataset lazily (``to_zarr(compute=False)``) gives the same metadata for every array, and
    reading the store gives every coordinate as a coordinate."""
    root, _, out = cohort
    store = out / "cohort.zarr"
    first = assemble._open_part(root / "results/dataset/parts" / f"{PATIENTS[0]}.zarr")
    described = card._parameter_descriptions(config)
    summaries = [assemble._read_part_summary(root / "results/dataset/parts" / f"{p}.zarr", p) for p in PATIENTS]
    template = assemble._template(first, summaries, PATIENTS,
                                  [described[str(n)]["description"] for n in first.parameter.values], {})
    reference = root / "reference.zarr"
    template.to_zarr(reference, mode="w-", compute=False, consolidated=False, encoding=store_layout._row_encoding(first))
    names = sorted(p.name for p in reference.iterdir() if (p / "zarr.json").is_file())
    assert names == sorted(p.name for p in store.iterdir() if p.name != "patients" and (p / "zarr.json").is_file())
    for name in names:
        ours, theirs = (json.loads((s / name / "zarr.json").read_text()) for s in (store, reference))
        assert ours == theirs, name
    ds = open_cohort(store)
    assert set(ds.coords) - set(ds.dims) == {"split", "sex", "electrode_kind", "parameter_units",
                                             "parameter_description"}
    assert list(ds.data_vars) == sorted(first.data_vars)


def test_files_are_sorted_to_their_patients_in_one_pass():
    """A rule's flat file list split per patient by the patient's folder, in the given order (a
    chunk list keeps its chunk order); train-0001's files are not train-00010's (the time at
    10,000 patients is benchmarks/fan_ins.py's)."""
    from ecgcohort.dataset.parts import files_by_patient

    paths = ["r/patients/train-0001/leadfield/chunk-1.npz", "r/patients/train-00010/leadfield/chunk-0.npz",
             "r/patients/train-0001/leadfield/chunk-0.npz"]
    found = files_by_patient(paths, ["train-0001", "train-00010", "test-0000"])
    assert found == {"train-0001": [Path(paths[0]), Path(paths[2])], "train-00010": [Path(paths[1])], "test-0000": []}
    patients = [f"train-{i:05d}" for i in range(2_000)]
    found = files_by_patient([f"r/patients/{p}/fibres/fibres.npz" for p in reversed(patients)], patients)
    assert all(paths == [Path(f"r/patients/{p}/fibres/fibres.npz")] for p, paths in found.items())
