"""Files of the anatomy stage: labelled surfaces (VTK PolyData, mm), the assembly summary
(JSON), electrodes (CSV) and the preview (PNG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecgcohort.anatomy.assembly import Anatomy, Surface
from ecgcohort.io import atomic_path, vtk_array, vtk_cells, vtk_points, write_vtk_xml
from ecgcohort.rendering import offscreen_plotter

if TYPE_CHECKING:  # pandas costs 0.6 s to import; the surfaces' readers do not need it
    import pandas as pd

    from ecgcohort.anatomy.electrode_csv import ElectrodeTable


def write_surface(surface: Surface, path: str | Path) -> None:
    """Write a surface as ``.vtp`` (binary, zlib): cell array ``region`` and field data
    ``region_names``, ``units``. Written with VTK's own classes, the bytes pyvista wrote: pyvista
    costs about 0.4 s to import in a job that draws nothing."""
    from vtkmodules.vtkCommonCore import vtkStringArray
    from vtkmodules.vtkCommonDataModel import vtkPolyData

    mesh = vtkPolyData()
    mesh.SetPoints(vtk_points(surface.points))
    mesh.SetPolys(vtk_cells(surface.faces))
    mesh.GetCellData().AddArray(vtk_array(np.asarray(surface.labels).astype(np.int32), "region"))
    mesh.GetCellData().SetActiveScalars("region")
    for name, value in (("region_names", json.dumps({str(k): v for k, v in surface.label_names.items()})),
                        ("units", "mm")):
        strings = vtkStringArray()
        strings.SetName(name)
        strings.InsertNextValue(value)
        mesh.GetFieldData().AddArray(strings)
    write_vtk_xml(mesh, path)


def read_surface(path: str | Path) -> Surface:
    """Read a surface written by :func:`write_surface`."""
    # VTK's own XML reader, not pyvista's (pyvista and its plotting modules cost about 0.5 s to
    # import, and most jobs that read a surface draw nothing)
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    if not Path(path).is_file():
        raise FileNotFoundError(f"no surface file {path}")
    reader = vtkXMLPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    mesh = reader.GetOutput()
    polygons = mesh.GetPolys()
    if mesh.GetNumberOfCells() != polygons.GetNumberOfCells() or polygons.IsHomogeneous() != 3:
        raise ValueError(f"{path}: not a triangle surface written by write_surface")
    names = {int(k): v for k, v in json.loads(mesh.GetFieldData().GetAbstractArray("region_names").GetValue(0)).items()}
    return Surface(np.asarray(vtk_to_numpy(mesh.GetPoints().GetData()), dtype=float),
                   vtk_to_numpy(polygons.GetConnectivityArray()).reshape(-1, 3).astype(np.int64),
                   np.asarray(vtk_to_numpy(mesh.GetCellData().GetArray("region")), dtype=np.int32), names)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def write_anatomy(anatomy: Anatomy, heart_path: str | Path, torso_path: str | Path, summary_path: str | Path) -> None:
    """Write both surfaces and the JSON summary (sex, age in years, landmarks, axes, measures;
    mm, mL, L)."""
    write_surface(anatomy.heart, heart_path)
    write_surface(anatomy.torso, torso_path)
    summary = {"patient": anatomy.patient, "sex": anatomy.person.sex, "age_years": anatomy.person.age_years,
               "torso_follows_sex_and_age": anatomy.torso_follows_person,
               "units": {"length": "mm", "myocardial_volume": "mL", "torso_volume": "L", "age": "year"},
               "landmarks_mm": anatomy.landmarks, "measures": anatomy.measures}
    with atomic_path(summary_path) as temporary:
        temporary.write_text(json.dumps(_jsonable(summary), indent=2) + "\n")


def read_landmarks(summary_path: str | Path) -> dict[str, np.ndarray]:
    """Torso landmarks (mm) from an anatomy summary."""
    summary = json.loads(Path(summary_path).read_text())
    return {name: np.asarray(value, dtype=float) for name, value in summary["landmarks_mm"].items()}


def write_electrodes(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False)


def plot_anatomy(heart: Surface, torso: Surface, electrodes: ElectrodeTable, path: str | Path, title: str = "") -> None:
    """Front and left views: translucent torso, heart coloured by region, labelled electrodes
    (the 12-lead's by name)."""
    import pyvista

    torso_mesh = pyvista.PolyData(torso.points, np.column_stack([np.full(len(torso.faces), 3), torso.faces]).ravel())
    heart_mesh = pyvista.PolyData(heart.points, np.column_stack([np.full(len(heart.faces), 3), heart.faces]).ravel())
    heart_mesh.cell_data["region"] = heart.labels
    plotter = offscreen_plotter(shape=(1, 2), window_size=(1400, 800))
    is_standard = np.array([kind == "standard" for kind in electrodes.kinds], dtype=bool)
    standard_names = [name for name, kind in zip(electrodes.names, electrodes.kinds) if kind == "standard"]
    for column, view in enumerate(("front", "left")):
        plotter.subplot(0, column)
        plotter.add_mesh(torso_mesh, color="wheat", opacity=0.25)
        plotter.add_mesh(heart_mesh, scalars="region", cmap="Set1", show_scalar_bar=False)
        if not is_standard.all():
            plotter.add_points(electrodes.positions_mm[~is_standard], color="steelblue",
                               point_size=8, render_points_as_spheres=True)
        plotter.add_point_labels(electrodes.positions_mm[is_standard], standard_names,
                                 point_color="crimson", point_size=12, font_size=14,
                                 render_points_as_spheres=True, always_visible=True)
        # the patient frame has z pointing down: look from the front (+y) or the left (+x)
        plotter.camera_position = [(0, 1, 0), (0, 0, 0), (0, 0, -1)] if view == "front" else [(1, 0, 0), (0, 0, 0), (0, 0, -1)]
        plotter.reset_camera()
        plotter.add_text(f"{title} ({view})", font_size=10)
    with atomic_path(path) as temporary:
        plotter.screenshot(str(temporary))
    plotter.close()
