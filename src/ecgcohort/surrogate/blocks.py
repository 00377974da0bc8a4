"""Training rows of the surrogate in patient blocks: every (electrode, point) pair of a patient
without repeating the point per electrode or the code per pair, and batches of one patient's
points × all its electrodes, which :meth:`~ecgcohort.surrogate.network.LeadFieldNetwork.forward_leads`
evaluates sharing the layers before the injection across electrodes.

Memory per pair: 6 float32 (target and reference) against 12 + d in flat rows (x, electrode,
code, target, reference), so 2.3–4.8× less; at the paper's scale (80 patients × 109 electrodes
× 65,536 points = 571M pairs) 14 GB, which stays resident on one GPU.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from ecgcohort.learning.data import epoch_generator


class PatientBlockTable:
    """Per patient: points ``x`` (P, 3) box-normalised (and their ``region`` one-hot (P, 3) for a
    ``region_inputs`` surrogate), ``electrode`` (E, 3) normalised, ``code``
    (d,), ``target`` and, for ``pseudo_residual``, ``reference`` (E, P, 3); the same P and E for
    every patient. A batch is one patient's ``max(1, batch_size // E)`` points × all its
    electrodes: keys are (patient, point indices), drawn from (seed, epoch) — points permuted
    within each patient, the pieces of all patients shuffled together."""

    resident = True

    def __init__(self, patients: Sequence[Mapping[str, np.ndarray | torch.Tensor]]):
        self._fill(patients, len(patients))

    @classmethod
    def from_blocks(cls, blocks: Iterable[Mapping[str, np.ndarray | torch.Tensor]], count: int) -> "PatientBlockTable":
        """The table of ``count`` patients' blocks, read one at a time from ``blocks`` (e.g. a
        generator) into columns allocated once: the blocks are not held beside the table (1,800
        validation patients at 10,000 held their float64 blocks and the table, 10 GiB)."""
        table = cls.__new__(cls)
        table._fill(blocks, count)
        return table

    def _fill(self, blocks: Iterable[Mapping[str, np.ndarray | torch.Tensor]], count: int) -> None:
        self.columns, filled = {}, 0
        for index, block in enumerate(blocks):
            if index == 0:
                names = ("x", "electrode", "code", "target") + tuple(name for name in ("reference", "region")
                                                                     if name in block)
                self.columns = {name: torch.empty((count, *np.shape(block[name])), dtype=torch.float32)
                                for name in names}
            for name, column in self.columns.items():
                value = torch.as_tensor(block[name], dtype=torch.float32)
                if value.shape != column.shape[1:]:
                    raise ValueError("every patient needs x and region (P, 3), electrode (E, 3) and target (E, P, 3) "
                                     f"of one P and E: patient {index}'s {name} is {tuple(value.shape)}, the first's "
                                     f"{tuple(column.shape[1:])}")
                column[index] = value
            filled = index + 1
        if filled == 0:
            raise ValueError("a block table needs at least one patient")
        if filled != count:
            raise ValueError(f"a block table of {count} patients was given {filled}")
        n, e, p = self.columns["target"].shape[:3]
        if (self.columns["x"].shape != (n, p, 3) or self.columns["electrode"].shape != (n, e, 3)
                or ("region" in self.columns and self.columns["region"].shape[:2] != (n, p))):
            raise ValueError("every patient needs x and region (P, 3), electrode (E, 3) and target (E, P, 3) of one "
                             "P and E")
        self.patients, self.electrodes, self.points = n, e, p

    def __len__(self) -> int:
        return self.patients * self.electrodes * self.points

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in self.columns.values())

    @property
    def device(self) -> torch.device:
        return self.columns["x"].device

    def to(self, device: torch.device | str) -> "PatientBlockTable":
        moved = PatientBlockTable.__new__(PatientBlockTable)
        moved.columns = {name: t.to(device) for name, t in self.columns.items()}
        moved.patients, moved.electrodes, moved.points = self.patients, self.electrodes, self.points
        return moved

    def batch_keys(self, epoch: int, batch_size: int, seed: int, rank: int = 0,
                   world: int = 1) -> list[tuple[int, torch.Tensor]]:
        generator = epoch_generator(seed, epoch)
        per_batch = max(1, batch_size // self.electrodes)
        pieces = [(patient, piece) for patient in range(self.patients)
                  for piece in torch.randperm(self.points, generator=generator).split(per_batch)]
        order = torch.randperm(len(pieces), generator=generator)[rank::world].tolist()
        return [pieces[i] for i in order]

    def gather(self, key: tuple[int, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The block as a batch: ``target`` (and ``reference``) flattened electrode-major to
        (E·P_b, 3) first (the backbone counts a batch's rows by its first entry), ``x`` (and
        ``region``) (P_b, 3), ``electrodes`` (E, 3), ``code`` (d,)."""
        patient, points = key
        points = points.to(self.device, non_blocking=True)
        batch = {"target": self.columns["target"][patient][:, points].reshape(-1, 3)}
        if "reference" in self.columns:
            batch["reference"] = self.columns["reference"][patient][:, points].reshape(-1, 3)
        batch.update(x=self.columns["x"][patient][points], electrodes=self.columns["electrode"][patient],
                     code=self.columns["code"][patient])
        if "region" in self.columns:
            batch["region"] = self.columns["region"][patient][points]
        return batch
