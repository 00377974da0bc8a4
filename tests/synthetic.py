"""Closed-form test geometry: a spherical-cap LV shell, a capped elliptic-cylinder trunk and
concentric balls meshed with gmsh."""

from __future__ import annotations

import numpy as np


def _grid_sheet(radius: float, rings: int, sectors: int) -> np.ndarray:
    """Points of a hemisphere opening at z = 0 (apex at z = -radius): apex, then rings."""
    polar = np.linspace(0, np.pi / 2, rings + 1)[1:]
    azimuth = np.linspace(0, 2 * np.pi, sectors, endpoint=False)
    ring_points = [[radius * np.sin(t) * np.cos(a), radius * np.sin(t) * np.sin(a), -radius * np.cos(t)]
                   for t in polar for a in azimuth]
    return np.vstack([[0.0, 0.0, -radius], ring_points])


def _sheet_faces(rings: int, sectors: int, offset: int) -> np.ndarray:
    faces = [[0, 1 + (j + 1) % sectors, 1 + j] for j in range(sectors)]
    for i in range(rings - 1):
        for j in range(sectors):
            a, b = 1 + i * sectors + j, 1 + i * sectors + (j + 1) % sectors
            faces += [[a, b, a + sectors], [b, b + sectors, a + sectors]]
    return np.array(faces) + offset


def lv_cup(outer_mm: float = 35.0, inner_mm: float = 25.0, rings: int = 12, sectors: int = 40):
    """Hemispherical myocardial shell: (points, faces, labels) with labels 1 lv_endocardium,
    3 epicardium, 4 base; outward oriented. Its volume is 2/3 pi (R^3 - r^3) in the limit."""
    outer = _grid_sheet(outer_mm, rings, sectors)
    inner = _grid_sheet(inner_mm, rings, sectors)
    n = len(outer)
    epicardium = _sheet_faces(rings, sectors, 0)[:, ::-1]          # normals away from the centre
    endocardium = _sheet_faces(rings, sectors, n)                    # normals towards the cavity
    rim_outer = 1 + (rings - 1) * sectors + np.arange(sectors)
    rim_inner = rim_outer + n
    base = []
    for j in range(sectors):
        a, b = rim_outer[j], rim_outer[(j + 1) % sectors]
        c, d = rim_inner[j], rim_inner[(j + 1) % sectors]
        base += [[a, c, b], [b, c, d]]
    faces = np.vstack([epicardium, endocardium, np.array(base)])
    labels = np.r_[np.full(len(epicardium), 3), np.full(len(endocardium), 1), np.full(len(base), 4)]
    points = np.vstack([outer, inner])
    from ecgcohort.geometry import surface_volume

    if surface_volume(points, faces) < 0:
        faces = faces[:, ::-1]
    return points, faces.astype(np.int64), labels.astype(np.int32)


def trunk(half_width_mm: float = 170.0, half_depth_mm: float = 115.0, height_mm: float = 600.0,
          sections: int = 31, sectors: int = 48):
    """Closed elliptic cylinder (z from 0 at the neck to ``height_mm`` at the hips), capped,
    outward oriented, centred on x = y = 0, plus torso landmarks (mm)."""
    azimuth = np.linspace(0, 2 * np.pi, sectors, endpoint=False)
    heights = np.linspace(0, height_mm, sections)
    ring = np.column_stack([half_width_mm * np.cos(azimuth), half_depth_mm * np.sin(azimuth)])
    points = [np.column_stack([ring, np.full(sectors, z)]) for z in heights]
    points = np.vstack(points + [[[0, 0, 0]], [[0, 0, height_mm]]])
    top, bottom = len(points) - 2, len(points) - 1
    faces = []
    for i in range(sections - 1):
        for j in range(sectors):
            a, b = i * sectors + j, i * sectors + (j + 1) % sectors
            faces += [[a, a + sectors, b], [b, a + sectors, b + sectors]]
    for j in range(sectors):
        faces.append([top, j, (j + 1) % sectors])
        last = (sections - 1) * sectors
        faces.append([bottom, last + (j + 1) % sectors, last + j])
    faces = np.array(faces, dtype=np.int64)
    from ecgcohort.geometry import surface_volume

    if surface_volume(points, faces) < 0:
        faces = faces[:, ::-1]
    landmarks = {
        "jugular_notch": np.array([0.0, half_depth_mm, 60.0]),
        "xiphoid": np.array([0.0, half_depth_mm, 240.0]),
        "right_shoulder": np.array([-half_width_mm, 0.0, 20.0]),
        "left_shoulder": np.array([half_width_mm, 0.0, 20.0]),
        "right_hip": np.array([-half_width_mm, 0.0, 560.0]),
        "left_hip": np.array([half_width_mm, 0.0, 560.0]),
    }
    return points.astype(float), faces, landmarks


#: Purkinje settings of the meshed test ventricles (small trees: a few hundred junctions).
PURKINJE = {
    "his_long_axis_position": 0.85, "moderator_band_position": 0.4, "conduction_velocity_m_per_s": 2.5,
    "lv_tree": {"initial_length_mm": 30.0, "branch_length_mm": 8.0, "branch_angle_deg": 15.0, "generations": 10,
                "segment_length_mm": 1.0, "repulsivity": 0.1, "fascicles_angles_deg": [-70.0, 20.0],
                "fascicles_lengths_mm": [20.0, 20.0]},
    "rv_tree": {"initial_length_mm": 15.0, "branch_length_mm": 8.0, "branch_angle_deg": 15.0, "generations": 10,
                "segment_length_mm": 1.0, "repulsivity": 0.1, "fascicles_angles_deg": [], "fascicles_lengths_mm": []},
}


def meshed_ventricles(root, edge_mm: float = 4.0, base_z_mm: float = 300.0, seed: int = 7) -> None:
    """The mean bi-ventricular heart of a small shape model meshed inside :func:`trunk`, with
    LDRB fibres and Purkinje trees: writes ``mesh.msh``, ``fibres.npz``, ``heart.vtp`` and
    ``junctions.npz`` (with tree previews) into ``root``."""
    from mpi4py import MPI  # noqa: F401  (libmpi before dolfinx)

    from ecgcohort.anatomy.assembly import Surface
    from ecgcohort.anatomy.outputs import write_surface
    from ecgcohort.conduction.purkinje_jobs import grow_purkinje
    from ecgcohort.fibers import myocardial_fibres, save_fibres
    from ecgcohort.meshing import mesh_heart_in_torso
    from ecgcohort.shapes.heart import build_heart_model

    model = build_heart_model(n_modes=2, population=10, seed=0, edge_length_mm=edge_mm)
    heart_points = model.mean + np.array([0.0, 0.0, base_z_mm])
    torso_points, torso_faces, _ = trunk()
    mesh_heart_in_torso(torso_points, torso_faces, heart_points, model.faces, model.face_labels, model.label_names,
                        heart_size_mm=edge_mm, torso_size_mm=40.0, output_path=root / "mesh.msh")
    save_fibres(myocardial_fibres(root / "mesh.msh"), root / "fibres.npz")
    write_surface(Surface(heart_points, model.faces, model.face_labels, model.label_names), root / "heart.vtp")
    grow_purkinje("train-0003", root / "heart.vtp", PURKINJE, seed, root / "lv.vtp", root / "rv.vtp",
                  root / "junctions.npz", root / "purkinje.png")


def concentric_balls_mesh(path, size_mm: float, outer_mm: float, inner_mm: float, inner: str = "myocardium",
                          shell_size_mm: float | None = None) -> None:
    """Two concentric balls meshed with gmsh at ``size_mm`` and tagged like a patient mesh: the
    inner ball ``inner`` (a volume tag name, its surface the epicardium), the shell torso, the
    outer sphere the body surface. With ``shell_size_mm`` the shell is meshed at that size
    beyond 10 mm from the inner ball (a fine heart in a coarse torso)."""
    import gmsh

    from ecgcohort.meshing import FACET_TAGS, VOLUME_TAGS

    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("balls")
        outer = gmsh.model.occ.addSphere(0, 0, 0, outer_mm)
        core = gmsh.model.occ.addSphere(0, 0, 0, inner_mm)
        gmsh.model.occ.fragment([(3, outer)], [(3, core)])
        gmsh.model.occ.synchronize()
        volumes = sorted(gmsh.model.getEntities(3), key=lambda entity: gmsh.model.occ.getMass(*entity))
        surfaces = sorted(gmsh.model.getEntities(2), key=lambda entity: gmsh.model.occ.getMass(*entity))
        gmsh.model.addPhysicalGroup(3, [volumes[0][1]], VOLUME_TAGS[inner], inner)
        gmsh.model.addPhysicalGroup(3, [volumes[1][1]], VOLUME_TAGS["torso"], "torso")
        gmsh.model.addPhysicalGroup(2, [surfaces[1][1]], FACET_TAGS["body_surface"], "body_surface")
        gmsh.model.addPhysicalGroup(2, [surfaces[0][1]], FACET_TAGS["epicardium"], "epicardium")
        if shell_size_mm is None:
            gmsh.option.setNumber("Mesh.MeshSizeMax", size_mm)
            gmsh.option.setNumber("Mesh.MeshSizeMin", size_mm)
        else:
            ball = gmsh.model.mesh.field.add("Ball")
            for name, value in (("Radius", inner_mm), ("Thickness", 10.0), ("VIn", size_mm), ("VOut", shell_size_mm),
                                ("XCenter", 0.0), ("YCenter", 0.0), ("ZCenter", 0.0)):
                gmsh.model.mesh.field.setNumber(ball, name, value)
            gmsh.model.mesh.field.setAsBackgroundMesh(ball)
            for option in ("Mesh.MeshSizeExtendFromBoundary", "Mesh.MeshSizeFromPoints", "Mesh.MeshSizeFromCurvature"):
                gmsh.option.setNumber(option, 0)
        gmsh.model.mesh.generate(3)
        gmsh.write(str(path))
    finally:
        gmsh.finalize()
