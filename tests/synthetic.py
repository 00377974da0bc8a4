"""Closed-form test geometry: a spherical-cap LV shell and a capped elliptic-cylinder trunk."""

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
