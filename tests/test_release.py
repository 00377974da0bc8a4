"""Release stage: the packed store against the working store, the release directory (manifest,
table, Croissant, WFDB), verify finding a flipped byte, an incomplete cohort refused, and a
Python with only xarray + zarr opening the release."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from ecgcohort.dataset import assemble, assemble_cohort, open_cohort, open_patient_mesh
from ecgcohort.release import ReleaseInputs, build_release, pack_store, verify_release
from ecgcohort.release.build import MANIFEST, main as release_main
from test_dataset import PATIENTS, SCENARIOS, config, write_parts, write_patient  # noqa: F401 (fixture)




@pytest.fixture(scope="module")
def cohort_store(tmp_path_factory, config):
    root = tmp_path_factory.mktemp("release")
    inputs = {p: write_patient(root, p, config, mesh_cubes=2 + i, seed=10 + i) for i, p in enumerate(PATIENTS)}
    for patient in PATIENTS:
        anatomy = root / "results/patients" / patient / "anatomy/anatomy.json"
        anatomy.write_text(json.dumps({"patient": patient, "measures": {
            "myocardial_volume_ml": 150.0 + len(patient), "torso_volume_l": 40.0, "centre_mm": [1.0, 2.0, 3.0]}}))
    out = root / "results/dataset"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(assemble, "git_revision", lambda: "0123abc")
        assemble_cohort(PATIENTS, write_parts(root), config, out / "cohort.zarr", out / "README.md")
    return root, inputs


def release_inputs(root: Path, patients=PATIENTS) -> ReleaseInputs:
    return ReleaseInputs(store=root / "results/dataset/cohort.zarr",
                         anatomy={p: root / "results/patients" / p / "anatomy/anatomy.json" for p in patients})


@pytest.fixture(scope="module")
def release(cohort_store, tmp_path_factory):
    root, inputs = cohort_store
    out = tmp_path_factory.mktemp("published") / "release"
    sizes = build_release(release_inputs(root), out, patients=PATIENTS)
    return out, sizes, inputs


@pytest.mark.parametrize("inner_bytes", [2 ** 22, 2 ** 11])
def test_the_packed_store_holds_the_working_store_patient_by_patient(cohort_store, tmp_path, monkeypatch,
                                                                      inner_bytes):
    """With 2 KiB inner chunks and 8 KiB shards the meshes' shards hold pieces of several
    patients and patients straddle shards; every patient reads back exactly."""
    import ecgcohort.release.pack as pack

    root, _ = cohort_store
    working = root / "results/dataset/cohort.zarr"
    packed = tmp_path / "cohort.zarr"
    monkeypatch.setattr(pack, "_INNER_CHUNK_BYTES", inner_bytes)
    layout = pack_store(working, packed, shard_bytes=4 * inner_bytes)
    if inner_bytes < 2 ** 22:
        shard = json.loads((packed / "lead_matrix" / "zarr.json").read_text())["chunk_grid"]["configuration"]
        size = shard["chunk_shape"][1]
        ends = np.cumsum(open_cohort(working).node_count.values)
        first_shard, last_shard = (np.concatenate([[0], ends[:-1]]) // size), (ends - 1) // size
        assert (last_shard > first_shard).any(), "no patient straddles two shards"
        assert len(set(first_shard.tolist())) < len(PATIENTS), "no shard holds two patients"
        from ecgcohort.release.build import _patients_of_shard

        for index in range(int(last_shard.max()) + 1):
            named = _patients_of_shard(packed, Path("lead_matrix") / f"c.0.{index}", open_cohort(packed))
            holders = [p for p, a, b in zip(PATIENTS, first_shard, last_shard) if a <= index <= b]
            assert named == f"'lead_matrix' (patients {', '.join(holders)})"
    a, b = open_cohort(working), open_cohort(packed)
    for name, variable in a.data_vars.items():
        assert np.array_equal(variable.values, b[name].values), name
        assert b[name].attrs["units"] == variable.attrs["units"], name
    assert b.node_count.attrs["sample_dimension"] == "node" and b.cell_count.attrs["sample_dimension"] == "cell"
    for patient in PATIENTS:
        mine, theirs = open_patient_mesh(working, patient), open_patient_mesh(packed, patient)
        assert set(mine.data_vars) == set(theirs.data_vars)
        for name, variable in mine.data_vars.items():
            assert theirs[name].dims == variable.dims, name
            assert np.array_equal(theirs[name].values, variable.values), (patient, name)
        assert theirs.attrs["patient"] == patient and theirs.attrs["leadfield_stats"] == mine.attrs["leadfield_stats"]
        assert list(theirs.scenario.values) == SCENARIOS
    assert not list(packed.glob("patients"))  # no per-patient groups
    assert layout["patients_per_shard"] == (len(PATIENTS) if inner_bytes == 2 ** 22 else 1)
    with pytest.raises(KeyError, match="train-0042"):
        open_patient_mesh(packed, "train-0042")


def test_the_release_holds_store_table_croissant_wfdb_and_a_manifest_that_verifies(release):
    out, sizes, inputs = release
    for name in ("cohort.zarr", "metadata.parquet", "croissant.json", "wfdb", "README.md", "sizes.json", MANIFEST):
        assert (out / name).exists(), name
    listed = [line.split("  ", 1)[1] for line in (out / MANIFEST).read_text().splitlines()]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    assert sorted(listed) == on_disk
    report = verify_release(out)
    assert report.problems == [] and report.files == len(listed) and report.arrays > 20
    assert sizes["patients"] == 3 and sizes["parts"]["wfdb"]["files"] == 2 * len(PATIENTS) * len(SCENARIOS)
    # one shard per array at this size: the store's files are its metadata and one shard per array
    store = out / "cohort.zarr"
    arrays = [p for p in store.iterdir() if p.is_dir()]
    assert sizes["parts"]["cohort.zarr"]["files"] == sum(len(list(a.iterdir())) for a in arrays) + 1
    assert all(len([f for f in a.iterdir() if f.name != "zarr.json"]) <= 1 for a in arrays)

    card = (out / "README.md").read_text()
    assert "CF contiguous ragged arrays" in card and "one group per patient" not in card
    assert "| `lead_matrix` | (electrode, node) |" in card and "croissant.json" in card and "CC-BY-4.0" in card

    import pandas as pd
    import wfdb

    table = pd.read_parquet(out / "metadata.parquet")
    assert len(table) == len(PATIENTS) * len(SCENARIOS)
    assert table.anatomy_myocardial_volume_ml.tolist()[::2] == [150.0 + len(p) for p in PATIENTS]
    row = table[(table.patient == "test-0000") & (table.scenario == "lbbb")].iloc[0]
    record = wfdb.rdrecord(str(out / row.wfdb_record))
    expected = inputs["test-0000"]["ecg"]["lbbb"]["leads_v"] * 1e3  # mV
    step = 1 / np.asarray(record.adc_gain)
    assert np.abs(record.p_signal.T - expected).max() <= step.max() / 2 + 1e-12
    assert "patient: test-0000" in record.comments
    # the patients' sex and age, from the store to the table and every WFDB header
    cohort = open_cohort(out / "cohort.zarr")
    people = {str(p): (str(sex), float(age)) for p, sex, age in zip(cohort.patient.values, cohort.sex.values,
                                                                     cohort.age.values)}
    assert {sex for sex, _ in people.values()} <= {"female", "male"}
    for _, entry in table.iterrows():
        assert (entry.sex, entry.age_years) == people[entry.patient]
        comments = wfdb.rdheader(str(out / entry.wfdb_record)).comments
        sex, age = people[entry.patient]
        assert f"Sex: {sex.capitalize()}" in comments and f"Age: {age:.1f}" in comments


def test_mlcroissant_loads_the_release_table(release):
    import mlcroissant
    import pandas as pd

    out, _, _ = release
    dataset = mlcroissant.Dataset(jsonld=str(out / "croissant.json"))
    records = list(dataset.records("ecg_records"))
    assert len(records) == len(PATIENTS) * len(SCENARIOS)
    assert {r["ecg_records/patient"].decode() for r in records} == set(PATIENTS)
    table = pd.read_parquet(out / "metadata.parquet")
    assert [(r["ecg_records/sex"].decode(), r["ecg_records/age_years"]) for r in records] == \
        list(zip(table.sex, table.age_years))


def test_a_python_with_only_xarray_and_zarr_opens_the_release(release):
    out, _, inputs = release
    script = """
import sys, numpy as np, pandas as pd, xarray as xr
cohort = xr.open_zarr("cohort.zarr")
table = pd.read_parquet("metadata.parquet")
i = int(table.loc[table.patient == "train-0001", "zarr_index"].iloc[0])
nodes = np.concatenate([[0], np.cumsum(cohort.node_count.values)])
cells = np.concatenate([[0], np.cumsum(cohort.cell_count.values)])
mesh = cohort[["node_position", "tetrahedra", "lead_matrix"]].isel(node=slice(nodes[i], nodes[i + 1]),
                                                                   cell=slice(cells[i], cells[i + 1]))
np.save("lead.npy", mesh.lead_matrix.values)
np.save("tets.npy", mesh.tetrahedra.values)
assert not [m for m in sys.modules if m.startswith("ecgcohort")], "ecgcohort was imported"
"""
    ran = subprocess.run([sys.executable, "-I", "-c", script], cwd=out, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert np.array_equal(np.load(out / "lead.npy"), inputs["train-0001"]["lead"])
    assert np.array_equal(np.load(out / "tets.npy"), inputs["train-0001"]["tets"])
    (out / "lead.npy").unlink(), (out / "tets.npy").unlink()


def test_verify_names_the_array_and_patient_of_a_flipped_byte(release, tmp_path, capsys):
    out, _, _ = release
    copy = tmp_path / "release"
    shutil.copytree(out, copy)
    shard = copy / "cohort.zarr" / "unipolar_ecg" / "c.0.0.0.0"
    data = bytearray(shard.read_bytes())
    # the inner chunks are one patient each, in patient order: a byte in the middle of the
    # data is in the second patient's chunk
    data[len(data) // 2] ^= 0x10
    shard.write_bytes(bytes(data))
    report = verify_release(copy)
    assert any("checksum mismatch: cohort.zarr/unipolar_ecg/c.0.0.0.0" in p and "unipolar_ecg" in p
               for p in report.problems), report.problems
    decoded = [p for p in report.problems if p.startswith("array 'unipolar_ecg', patient")]
    assert decoded == [f"array 'unipolar_ecg', patient train-0001: {decoded[0].split(': ', 1)[1]}"], report.problems
    assert "checksum" in decoded[0].lower()
    assert release_main(["verify", str(copy)]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert release_main(["verify", str(out)]) == 0


def test_an_incomplete_cohort_is_refused_naming_the_missing_patients(cohort_store, tmp_path):
    root, _ = cohort_store
    wanted = [*PATIENTS, "train-0007", "test-0003"]
    with pytest.raises(ValueError, match="incomplete.*2 of 5.*train-0007, test-0003"):
        build_release(release_inputs(root), tmp_path / "release", patients=wanted)
    inputs = release_inputs(root)
    inputs = ReleaseInputs(**{**inputs.__dict__, "anatomy": {p: inputs.anatomy[p] for p in PATIENTS[:2]}})
    with pytest.raises(ValueError, match="no anatomy.json for test-0000"):
        build_release(inputs, tmp_path / "release", patients=PATIENTS)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_the_release_opens_in_xarray_like_the_working_store(release, cohort_store):
    out, _, _ = release
    root, _ = cohort_store
    packed = xr.open_zarr(out / "cohort.zarr")
    working = open_cohort(root / "results/dataset/cohort.zarr")
    assert list(packed.patient.values) == list(working.patient.values)
    assert packed.attrs["layout"] == "packed" and packed.attrs["git_revision"] == "0123abc"


def test_the_llnl_export_and_the_pseudo_ecgs_when_asked(cohort_store, tmp_path):
    from ecgcohort.llnl import read_llnl
    from ecgcohort.release.wfdb_export import read_wfdb_ecg
    from test_ecg2act import _bank_store

    root, inputs = cohort_store
    banks = {}
    for k, patient in enumerate(PATIENTS):
        banks[patient] = tmp_path / f"bank-{patient}.zarr"
        _bank_store(banks[patient], np.random.default_rng(k), 3)
    release_in = ReleaseInputs(**{**release_inputs(root).__dict__, "banks": banks})
    out = tmp_path / "release"
    build_release(release_in, out, patients=PATIENTS, wfdb_source="pseudo")
    assert len(read_llnl(out / "llnl" / "test-0000")) == 3
    signals, _, _, comments = read_wfdb_ecg(out / "wfdb" / "train-0000" / "sinus")
    assert comments["source"] == "pseudo lead field"
    expected = inputs["train-0000"]["ecg"]["sinus"]["pseudo_leads_v"]
    assert np.abs(signals - expected).max() <= np.abs(expected).max() / 32000
    assert verify_release(out).problems == []
    assert any(line.endswith("llnl/test-0000/pECGData_train-0003_00000.npy")
               for line in (out / MANIFEST).read_text().splitlines())


def test_a_linked_release_links_the_stores_files_and_takes_their_checksums_from_the_parts(cohort_store, tmp_path,
                                                                                        monkeypatch, capsys):
    """release.layout linked: no byte of the store is rewritten or read again. Its files are the
    parts' (same inodes), the manifest's checksums of them come from the parts' digest files and
    equal an independent hashlib pass, the full verify decodes every array, and a flipped byte
    in a mesh group is named with its array and patient."""
    import hashlib

    import ecgcohort.release.build as build
    from ecgcohort.io import write_file_digests

    root, inputs = cohort_store
    parts = {p: root / "results/dataset/parts" / f"{p}.zarr" for p in PATIENTS}
    digests = {p: tmp_path / f"{p}.sha256.json" for p in PATIENTS}
    for patient in PATIENTS:
        write_file_digests(parts[patient], digests[patient])
    hashed = []
    monkeypatch.setattr(build, "sha256_of", lambda path: hashed.append(Path(path)) or hashlib.sha256(
        Path(path).read_bytes()).hexdigest())
    given = ReleaseInputs(**{**release_inputs(root).__dict__, "digests": digests})
    with pytest.raises(ValueError, match="none given for test-0000"):
        build_release(ReleaseInputs(**{**given.__dict__, "digests": {p: digests[p] for p in PATIENTS[:2]}}),
                      tmp_path / "refused", patients=PATIENTS, layout="linked")
    out = tmp_path / "release"
    sizes = build_release(given, out, patients=PATIENTS, layout="linked")

    store = out / "cohort.zarr"
    lead = store / "patients" / "train-0001" / "lead_matrix"
    shard = next(f for f in lead.iterdir() if f.name.startswith("c"))
    assert shard.stat().st_ino == (parts["train-0001"] / shard.relative_to(store)).stat().st_ino
    chunk_files = [p for p in store.rglob("c*") if p.is_file()]
    assert len(chunk_files) > 20 and sizes["store_files_linked"] >= len(chunk_files) - 10
    # the release read none of the parts' chunk files: the build's own check is presence
    assert not [p for p in hashed if p.is_relative_to(store) and p.name != "zarr.json"
                and any(p.stat().st_ino == q.stat().st_ino for q in parts["train-0001"].rglob(p.name))]
    manifest = dict(reversed(line.split("  ", 1)) for line in (out / MANIFEST).read_text().splitlines())
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
    assert sorted(manifest) == on_disk
    assert all(hashlib.sha256((out / r).read_bytes()).hexdigest() == d for r, d in manifest.items())

    report = verify_release(out)
    assert report.problems == [] and report.arrays > 20
    released, working = open_cohort(store), open_cohort(root / "results/dataset/cohort.zarr")
    assert released.attrs["layout"] == "linked"
    # no consolidated listing of every patient's nodes (230 MB at 10,000 patients)
    assert "consolidated_metadata" not in json.loads((store / "zarr.json").read_text())
    assert np.array_equal(xr.open_zarr(store, consolidated=False).parameters.values, working.parameters.values)
    assert np.array_equal(released.lead_ecg.values, working.lead_ecg.values)
    assert np.array_equal(open_patient_mesh(store, "train-0001").lead_matrix.values, inputs["train-0001"]["lead"])
    card = (out / "README.md").read_text()
    assert "patients/<patient>" in card and "CF contiguous ragged arrays in the root" not in card
    # the card's loading example, run by a Python that imports no ecgcohort
    example = card.split("```python\n")[-1].split("```")[0]
    script = example + (
        "import sys, numpy as np\nnp.save('lead.npy', mesh.lead_matrix.values); np.save('ecg.npy', ecg.values)\n"
        "assert not [m for m in sys.modules if m.startswith('ecgcohort')]\n")
    ran = subprocess.run([sys.executable, "-I", "-c", script], cwd=out, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    first = PATIENTS[0]
    assert np.array_equal(np.load(out / "lead.npy"), inputs[first]["lead"])
    assert np.array_equal(np.load(out / "ecg.npy"), working.lead_ecg.sel(patient=first, scenario="sinus").values)
    (out / "lead.npy").unlink(), (out / "ecg.npy").unlink()

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)  # copies: the original's files are the parts'
    flipped = copy / shard.relative_to(out)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x10
    flipped.write_bytes(bytes(data))
    problems = verify_release(copy).problems
    assert any(p.startswith("checksum mismatch: cohort.zarr/patients/train-0001/lead_matrix/")
               and "'lead_matrix' (patient train-0001)" in p for p in problems), problems
    assert any(p.startswith("array 'lead_matrix', patient train-0001") for p in problems), problems


def test_a_stale_checksum_of_a_part_is_not_taken(cohort_store, tmp_path):
    """A digest file whose inode, size or time is not the file's (the part was written again)
    is not believed: the file is hashed, and the manifest is still right."""
    import hashlib

    from ecgcohort.io import write_file_digests

    root, _ = cohort_store
    digests = {}
    for patient in PATIENTS:
        path = tmp_path / f"{patient}.sha256.json"
        write_file_digests(root / "results/dataset/parts" / f"{patient}.zarr", path)
        written = json.loads(path.read_text())
        for entry in written["files"].values():
            entry[0], entry[3] = "0" * 64, entry[3] + 1  # a wrong checksum of an older file
        path.write_text(json.dumps(written))
        digests[patient] = path
    out = tmp_path / "release"
    build_release(ReleaseInputs(**{**release_inputs(root).__dict__, "digests": digests}), out, patients=PATIENTS,
                  layout="linked", wfdb_source=None)
    lines = (out / MANIFEST).read_text().splitlines()
    assert not [line for line in lines if line.startswith("0" * 64)]
    assert all(hashlib.sha256((out / r).read_bytes()).hexdigest() == d
               for d, r in (line.split("  ", 1) for line in lines))
