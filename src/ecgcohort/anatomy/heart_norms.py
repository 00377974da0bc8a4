"""The heart's size and wall thickness for the patient's sex, from cardiac MRI norms.

The heart shape model describes an average adult of either sex. A patient's heart instance is
given the size and wall thickness of its sex by two factors:

* size: every length scaled about the heart's centroid by (EDV_sex / EDV_mean)^(1/3), EDV_mean
  the mean of the two sexes', so the LV cavity volume follows the sex's LV end-diastolic volume
  (Hudsmith et al. 2005: 160 mL in men, 135 mL in women by SSFP cine MRI) and the cohort's mean
  heart stays the model's;
* wall (women only): every point off the endocardium moved along the segment to its nearest
  endocardial point, to (t_female / t_male) / (size_female / size_male) of its distance, t the
  mean mid-cavity LV wall thickness (Kawel et al. 2012, MESA: 6.3 mm in men, 5.3 mm in women).
  A man's wall keeps the thickness his size gives it: moving points away from the endocardium
  folds the surface where the nearest endocardial point jumps (the RV insertions), moving them
  towards it does not. The endocardium, hence the cavities, stays where the size put it; the
  free walls, the apex and the base annulus take the sex's thickness. The septum lies between
  the two endocardia and keeps the thickness the size gives it.

A female and a male heart of equal mode weights then differ by (135/160)^(1/3) = 0.945 in every
cavity length (a cavity volume ratio of exactly 135/160) and by 5.3/6.3 = 0.84 in free-wall
thickness. Lengths in mm, volumes in mL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import igl
import numpy as np


@dataclass(frozen=True)
class HeartNorms:
    """Per sex ("female", "male"): LV end-diastolic volume (mL) and mean mid-cavity LV wall
    thickness (mm)."""

    lv_edv_ml: Mapping[str, float]
    wall_thickness_mm: Mapping[str, float]

    def factors(self, sex: str) -> tuple[float, float]:
        """(size, wall): the length scale of the heart of ``sex`` against the mean of the two
        sexes, and the further scale of its wall's thickness (1 for men: the size's alone)."""
        for name, table in (("lv_edv_ml", self.lv_edv_ml), ("wall_thickness_mm", self.wall_thickness_mm)):
            if set(table) != {"female", "male"}:
                raise ValueError(f"anatomy.heart_by_sex.{name}: expected female and male, got {sorted(table)}")
            if sex not in table:
                raise ValueError(f"anatomy.heart_by_sex.{name}: no value for sex '{sex}'")
        mean_volume = 0.5 * (self.lv_edv_ml["female"] + self.lv_edv_ml["male"])
        size = {s: (self.lv_edv_ml[s] / mean_volume) ** (1.0 / 3.0) for s in ("female", "male")}
        thickness = self.wall_thickness_mm
        wall = thickness[sex] / thickness["male"] / (size[sex] / size["male"])
        if wall > 1.0:
            raise ValueError(f"anatomy.heart_by_sex: the female wall ({thickness['female']:g} mm) is thicker, "
                             f"relative to her heart's size, than the male ({thickness['male']:g} mm); only "
                             "thinner walls are modelled")
        return size[sex], wall


def scale_heart(points: np.ndarray, faces: np.ndarray, endocardial_faces: np.ndarray, centre: np.ndarray,
                size: float, wall: float) -> np.ndarray:
    """Points (n, 3) mm of a heart surface (``points``, ``faces``) scaled by ``size`` about
    ``centre`` (mm) and with every point that is not on an endocardial face (rows of
    ``faces`` selected by the boolean ``endocardial_faces``) moved towards its nearest
    endocardial point to ``wall`` times its distance from it."""
    scaled = centre + size * (np.asarray(points, dtype=float) - centre)
    if wall == 1.0:
        return scaled
    endocardium = np.ascontiguousarray(faces[endocardial_faces], dtype=np.int64)
    off = np.setdiff1d(np.arange(len(scaled)), np.unique(endocardium))
    _, _, nearest = igl.point_mesh_squared_distance(np.ascontiguousarray(scaled[off]), np.ascontiguousarray(scaled),
                                                    endocardium)
    scaled[off] = nearest + wall * (scaled[off] - nearest)
    return scaled
