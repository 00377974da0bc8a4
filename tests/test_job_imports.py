"""What the per-patient jobs import: each job module leaves out the heavy packages it does not
use (issue 61: start-up and imports were about 20 s of a patient's job time), and the readers
and writers that replaced pyvista's give the same arrays and bytes as pyvista."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ecgcohort.anatomy.assembly import Surface
from ecgcohort.anatomy.outputs import read_surface, write_surface
from ecgcohort.fibers.rule_based import FibreAngles, MyocardialFibres, save_fibres
from synthetic import lv_cup

SRC = Path(__file__).resolve().parents[1] / "src"


def modules_after(code: str) -> set[str]:
    """The modules loaded in a fresh interpreter after running ``code``."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("code, absent", [
    # patient_parameters: a JSON file
    ("from ecgcohort.cohort import write_patient_parameters", {"pandas"}),
    # assemble_anatomy: no electrode tables
    ("from ecgcohort.anatomy.jobs import assemble", {"pandas", "pyvista"}),
    # grow_purkinje grows and walks the trees: no eikonal, action potential, numba or pyvista
    ("from ecgcohort.conduction.purkinje_jobs import grow_purkinje", {"numba", "networkx", "pandas", "pyvista"}),
    # compute_activations and the bank read the Purkinje junctions, never walk the trees
    ("from ecgcohort.conduction.jobs import compute_activations", {"networkx", "pyvista"}),
    # dataset_part reads the electrode table, the lead-field chunks, the fibres and the maps
    ("from ecgcohort.dataset.parts import write_patient_part\n"
     "from ecgcohort.ecg.inputs import read_electrode_table, read_lead_field_chunks\n"
     "from ecgcohort.fibers.rule_based import load_fibres\nfrom ecgcohort.conduction.maps import load_activation",
     {"numba", "scipy", "gmsh", "pandas"}),
    # compute_lead_fields reads the electrode table and the 12-lead's names: pandas costs 0.2-0.4 s
    ("from ecgcohort.anatomy.electrode_csv import read_electrode_table\n"
     "from ecgcohort.anatomy.electrodes import STANDARD_ELECTRODES", {"pandas"}),
    # ... and the fibres' structure tensors it stores
    ("from ecgcohort.structure_tensors import fibre_structure", {"numba", "scipy"}),
])
def test_job_modules_leave_out_what_they_do_not_use(code: str, absent: set[str]) -> None:
    loaded = modules_after(code)
    assert not absent & loaded, f"{code!r} imports {sorted(absent & loaded)}"


def surface() -> Surface:
    points, faces, labels = lv_cup(rings=6, sectors=12)
    return Surface(points, faces, labels, {1: "lv_endocardium", 3: "epicardium", 4: "base"})


def test_read_surface_returns_what_was_written_as_pyvista_reads_it(tmp_path: Path) -> None:
    import pyvista

    original = surface()
    path = tmp_path / "heart.vtp"
    write_surface(original, path)
    read = read_surface(path)
    assert read.points.dtype == np.float64 and read.faces.dtype == np.int64 and read.labels.dtype == np.int32
    np.testing.assert_array_equal(read.points, original.points)
    np.testing.assert_array_equal(read.faces, original.faces)
    np.testing.assert_array_equal(read.labels, original.labels)
    assert read.label_names == original.label_names
    # the same arrays as pyvista's reader gives (the reader read_surface replaced)
    mesh = pyvista.read(path)
    np.testing.assert_array_equal(read.points, np.asarray(mesh.points, dtype=float))
    np.testing.assert_array_equal(read.faces, np.asarray(mesh.faces).reshape(-1, 4)[:, 1:])
    np.testing.assert_array_equal(read.labels, np.asarray(mesh.cell_data["region"]))
    assert read.label_names == {int(k): v for k, v in json.loads(str(mesh.field_data["region_names"][0])).items()}


def test_read_surface_names_a_missing_file_and_refuses_other_cells(tmp_path: Path) -> None:
    import pyvista

    with pytest.raises(FileNotFoundError, match="nope.vtp"):
        read_surface(tmp_path / "nope.vtp")
    quads = pyvista.PolyData(np.eye(4, 3), np.array([4, 0, 1, 2, 3]))
    quads.cell_data["region"] = np.array([1], dtype=np.int32)
    quads.field_data["region_names"] = [json.dumps({"1": "epicardium"})]
    quads.save(tmp_path / "quads.vtp")
    with pytest.raises(ValueError, match="quads.vtp"):
        read_surface(tmp_path / "quads.vtp")


def test_read_surface_does_not_import_pyvista(tmp_path: Path) -> None:
    write_surface(surface(), tmp_path / "heart.vtp")
    loaded = modules_after(f"""
        from ecgcohort.anatomy.outputs import read_surface
        read_surface({str(tmp_path / 'heart.vtp')!r})
    """)
    assert "pyvista" not in loaded


def test_surface_vtp_has_the_bytes_pyvista_wrote(tmp_path: Path) -> None:
    """write_surface with VTK's classes writes the file pyvista wrote before, byte for byte, and
    imports no pyvista."""
    import pyvista

    original = surface()
    write_surface(original, tmp_path / "heart.vtp")
    mesh = pyvista.PolyData(original.points, np.column_stack([np.full(len(original.faces), 3), original.faces]).ravel())
    mesh.cell_data["region"] = original.labels.astype(np.int32)
    mesh.field_data["region_names"] = [json.dumps({str(k): v for k, v in original.label_names.items()})]
    mesh.field_data["units"] = ["mm"]
    mesh.save(tmp_path / "pyvista.vtp", binary=True)
    assert (tmp_path / "heart.vtp").read_bytes() == (tmp_path / "pyvista.vtp").read_bytes()
    loaded = modules_after(f"""
        from ecgcohort.anatomy.outputs import read_surface, write_surface
        write_surface(read_surface({str(tmp_path / 'pyvista.vtp')!r}), {str(tmp_path / 'again.vtp')!r})
    """)
    assert "pyvista" not in loaded
    assert (tmp_path / "again.vtp").read_bytes() == (tmp_path / "pyvista.vtp").read_bytes()


def fibres(seed: int = 3) -> MyocardialFibres:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(9, 3)) * 10.0
    tetrahedra = np.array([[0, 1, 2, 3], [1, 2, 3, 4], [4, 5, 6, 7], [5, 6, 7, 8]])
    unit = rng.normal(size=(9, 3))
    cell = rng.normal(size=(4, 3))
    return MyocardialFibres(points, tetrahedra, unit, unit[::-1].copy(), unit * 2, cell, cell[::-1].copy(), cell * 3,
                            {"transmural": rng.uniform(size=9), "ventricle": rng.integers(0, 2, 9).astype(float)},
                            np.arange(9), np.arange(4), FibreAngles())


def test_fibres_vtu_has_the_bytes_pyvista_wrote(tmp_path: Path) -> None:
    """The .vtu written with VTK's classes is the file pyvista wrote before, byte for byte."""
    import pyvista

    fibre_set = fibres()
    save_fibres(fibre_set, tmp_path / "fibres.npz", vtu=True)
    cells = np.hstack([np.full((fibre_set.n_cells, 1), 4), fibre_set.tetrahedra]).ravel()
    grid = pyvista.UnstructuredGrid(cells, np.full(fibre_set.n_cells, pyvista.CellType.TETRA), fibre_set.points_mm)
    for name in ("fibre", "sheet", "normal"):
        grid.point_data[name] = getattr(fibre_set, name)
        grid.cell_data[name] = getattr(fibre_set, f"{name}_cell")
    for name, value in fibre_set.coordinates.items():
        grid.point_data[name] = value
    grid.save(tmp_path / "pyvista.vtu", compression=None)
    assert (tmp_path / "fibres.vtu").read_bytes() == (tmp_path / "pyvista.vtu").read_bytes()
    back = pyvista.read(tmp_path / "fibres.vtu")
    np.testing.assert_array_equal(back.points, fibre_set.points_mm)
    np.testing.assert_array_equal(back.cell_data["normal"], fibre_set.normal_cell)
    np.testing.assert_array_equal(back.point_data["transmural"], fibre_set.coordinates["transmural"])


def test_saving_fibres_does_not_import_pyvista(tmp_path: Path) -> None:
    loaded = modules_after(f"""
        from pathlib import Path
        import numpy as np
        from ecgcohort.fibers.rule_based import FibreAngles, MyocardialFibres, save_fibres
        points, unit = np.eye(4, 3), np.tile([1.0, 0.0, 0.0], (4, 1))
        fibres = MyocardialFibres(points, np.array([[0, 1, 2, 3]]), unit, unit, unit, unit[:1], unit[:1], unit[:1],
                                  {{"transmural": np.zeros(4)}}, np.arange(4), np.arange(1), FibreAngles())
        save_fibres(fibres, Path({str(tmp_path / 'fibres.npz')!r}), vtu=True)
        assert Path({str(tmp_path / 'fibres.vtu')!r}).stat().st_size > 0
    """)
    assert "pyvista" not in loaded


def test_the_anatomy_preview_draws_the_electrode_table_without_pandas(tmp_path: Path) -> None:
    """preview_anatomy reads electrodes.csv with the standard library (pandas: 0.2-0.6 s to
    import) and draws the 12-lead's electrodes by name and the others as points."""
    write_surface(surface(), tmp_path / "heart.vtp")
    write_surface(surface(), tmp_path / "torso.vtp")
    rows = ["name,kind,x_mm,y_mm,z_mm,x_norm,y_norm,z_norm", "RA,standard,-5.0,1.0,2.0,-1.0,0.5,0.2",
            "LA,standard,5.0,1.0,2.0,1.0,0.5,0.2", "A01,anterior,0.0,3.0,4.0,0.0,1.0,0.4"]
    (tmp_path / "electrodes.csv").write_text("\n".join(rows) + "\n")
    png = tmp_path / "anatomy.png"
    loaded = modules_after(f"from ecgcohort.anatomy.jobs import preview\n"
                           f"preview('train-0001', {str(tmp_path / 'heart.vtp')!r}, {str(tmp_path / 'torso.vtp')!r}, "
                           f"{str(tmp_path / 'electrodes.csv')!r}, {str(png)!r})")
    assert "pyvista" in loaded and "pandas" not in loaded
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
