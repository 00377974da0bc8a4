"""Training rows: resident on the training device (:class:`TensorTable`) or streamed block by
block from storage (:class:`StreamedTable`). Both hand the backbone the batch keys of an epoch
(a streamed table draws a group's when it reaches it), drawn from (seed, epoch) alone, so an
epoch's batches are the same in a resumed run."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, epoch)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class TensorTable:
    """Named tensors with a common first dimension (the rows). ``to(device)`` moves them once;
    :meth:`gather` then indexes on the device, so a training step copies no data."""

    resident = True

    def __init__(self, columns: Mapping[str, torch.Tensor]):
        lengths = {name: int(t.shape[0]) for name, t in columns.items()}
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(f"a table needs columns of one length, got {lengths}")
        self.columns = dict(columns)
        self._length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._length

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in self.columns.values())

    @property
    def device(self) -> torch.device:
        return next(iter(self.columns.values())).device

    def to(self, device: torch.device | str) -> "TensorTable":
        return TensorTable({name: t.to(device) for name, t in self.columns.items()})

    def batch_keys(self, epoch: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> list[torch.Tensor]:
        """Row indices of every batch of ``epoch``: a permutation of all rows from (seed, epoch)
        cut into ``batch_size`` pieces (the last may be shorter), ``rank``'s share under DDP."""
        order = torch.randperm(len(self), generator=epoch_generator(seed, epoch))[rank::world]
        return list(order.split(batch_size))

    def gather(self, key: torch.Tensor) -> dict[str, torch.Tensor]:
        key = key.to(self.device, non_blocking=True)
        return {name: t.index_select(0, key) for name, t in self.columns.items()}


class StreamedTable:
    """Rows in blocks that are read on demand (e.g. one patient of a Zarr store per block,
    computed with dask): each epoch visits groups of ``blocks_in_memory`` blocks in an order
    drawn from (seed, epoch) and shuffles rows within a group. Batches are gathered on the
    host and copied to the device by the trainer — the path for data that do not fit. A group's
    blocks are read by ``readers`` threads at once (default: the CPUs the process may use, at
    most 4) and the epoch's next group is read while the current one is used, so reading
    overlaps training (``load_block`` must be safe to call from several threads; the rows do
    not depend on it)."""

    resident = False

    def __init__(self, load_block: Callable[[int], Mapping[str, np.ndarray]], block_rows: Sequence[int],
                 blocks_in_memory: int = 4, readers: int | None = None):
        if not block_rows or min(block_rows) <= 0:
            raise ValueError("a streamed table needs at least one non-empty block")
        self.load_block = load_block
        self.block_rows = [int(n) for n in block_rows]
        self.blocks_in_memory = max(1, int(blocks_in_memory))
        if readers is None:  # the CPUs this process may use (os.process_cpu_count: Python 3.13)
            readers = min(4, (getattr(os, "process_cpu_count", None) or os.cpu_count)() or 1)
        self.readers = max(1, int(readers))
        self._cached: tuple[tuple[int, ...], dict[str, torch.Tensor]] | None = None
        self._following: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._pending: tuple[tuple[int, ...], Future] | None = None
        self._pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None

    def __getstate__(self) -> dict:
        # threads and futures stay with the process that made them
        return {**self.__dict__, "_cached": None, "_following": {}, "_pending": None, "_pools": None}

    def __len__(self) -> int:
        return sum(self.block_rows)

    def batch_keys(self, epoch: int, batch_size: int, seed: int, rank: int = 0,
                   world: int = 1) -> Iterator[tuple[tuple[int, ...], torch.Tensor]]:
        """The epoch's batch keys (group of blocks, rows within the group), a group's rows drawn
        when the iteration reaches it: drawn up front, 7,200 surrogate patients' epoch held 737
        million row indices (5.9 GB)."""
        generator = epoch_generator(seed, epoch)
        blocks = torch.randperm(len(self.block_rows), generator=generator).tolist()
        groups = list(self._groups(blocks))
        self._following = dict(zip(groups, groups[1:]))
        for group in groups:
            order = torch.randperm(sum(self.block_rows[b] for b in group), generator=generator)[rank::world]
            for piece in order.split(batch_size):
                yield group, piece

    def batch_count(self, epoch: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> int:
        """How many keys :meth:`batch_keys` yields for these arguments, without drawing the rows."""
        blocks = torch.randperm(len(self.block_rows), generator=epoch_generator(seed, epoch)).tolist()
        return sum(-(-len(range(rank, sum(self.block_rows[b] for b in group), world)) // batch_size)
                   for group in self._groups(blocks))

    def _groups(self, blocks: Sequence[int]) -> Iterator[tuple[int, ...]]:
        for start in range(0, len(blocks), self.blocks_in_memory):
            yield tuple(blocks[start:start + self.blocks_in_memory])

    def gather(self, key: tuple[tuple[int, ...], torch.Tensor]) -> dict[str, torch.Tensor]:
        group, rows = key
        if self._cached is None or self._cached[0] != group:
            if self._pending is not None and self._pending[0] == group:
                columns = self._pending[1].result()
            else:
                columns = self._read_group(group)
            self._cached, self._pending = (group, columns), None
            following = self._following.get(group)
            if following is not None:
                self._pending = (following, self._threads()[0].submit(self._read_group, following))
        return {name: t.index_select(0, rows) for name, t in self._cached[1].items()}

    def _threads(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        """(the thread that reads the next group, the threads that read a group's blocks)."""
        if self._pools is None:
            self._pools = (ThreadPoolExecutor(1, thread_name_prefix="next-group"),
                           ThreadPoolExecutor(self.readers, thread_name_prefix="block-reader"))
        return self._pools

    def _read_group(self, group: tuple[int, ...]) -> dict[str, torch.Tensor]:
        parts = list(self._threads()[1].map(self.load_block, group))
        return {name: torch.from_numpy(np.concatenate([np.asarray(p[name]) for p in parts])) for name in parts[0]}

