"""Training samples as a pure function of (seed, position): exact resume and DDP sharding.

Training is iteration-based, so the loader is an endless stream of *positions* (global sample
counters). Position ``p`` maps to a dataset index through a per-epoch permutation seeded by
``(seed, p // len(dataset))``, and its augmentation is reseeded by ``(seed, p)``. A run resumed
from a checkpoint at step ``k`` starts the stream at step ``k`` and sees exactly the samples and
crops the uninterrupted run saw. Each rank takes its own slice of every global batch.

An unreadable training file stops the run (:class:`~src.data.images.UnreadableImageError`)
unless ``skip_unreadable``: then position ``p`` takes the next readable index after its own, in
dataset order, with ``p``'s augmentation seed. Which file a position yields depends only on
which files are readable, so a resumed run still sees what the uninterrupted one saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from src.data.datasets import SegmentationDataset
from src.data.images import UnreadableImageError


class StepSeededDataset(Dataset):
    """Wraps a training dataset so that item ``position`` is deterministic.

    Args:
        base: the training dataset; its ``transform`` should be a ``SegTransform`` whose
            albumentations pipeline can be reseeded.
        seed: the run's seed.
        skip_unreadable: replace a sample whose image or mask cannot be decoded by the next
            readable one (dataset order, wrapping around) instead of stopping. The item then
            carries ``skipped``: the unreadable file paths (str) it stands in for, which
            :meth:`SegDataModule.on_before_batch_transfer` counts and logs in the main process
            (worker processes cannot update the main process's state).

    Attributes:
        unreadable: ``{dataset index: (path, message)}`` of the unreadable samples met *in this
            process* (each DataLoader worker has its own copy); a cache, so a bad file is not
            decoded again.
    """

    def __init__(self, base: SegmentationDataset, seed: int,
                 skip_unreadable: bool = False) -> None:
        self.base = base
        self.seed = int(seed)
        self.skip_unreadable = bool(skip_unreadable)
        self.unreadable: dict[int, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self.base)

    @lru_cache(maxsize=4)
    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.base), generator=generator)

    def index_of(self, position: int) -> int:
        epoch, offset = divmod(int(position), len(self.base))
        return int(self._permutation(epoch)[offset])

    def _reseed(self, position: int) -> None:
        pipeline = getattr(self.base.transform, "pipeline", None)
        if pipeline is not None and hasattr(pipeline, "set_random_seed"):
            pipeline.set_random_seed((self.seed * 7_919 + int(position)) % 2**31)

    def __getitem__(self, position: int) -> dict[str, Any]:
        """The sample of ``position`` (a dict as from the base dataset).

        Raises:
            UnreadableImageError: the sample's file cannot be decoded and ``skip_unreadable`` is
                off, or every file of the dataset is unreadable.
        """
        first = self.index_of(position)
        n = len(self.base)
        skipped: list[str] = []
        for step in range(n):
            index = (first + step) % n
            if index in self.unreadable:
                skipped.append(self.unreadable[index][0])
                continue
            self._reseed(position)  # the same augmentation whichever index stands in
            try:
                sample = self.base[index]
            except UnreadableImageError as err:
                if not self.skip_unreadable:
                    raise
                path = str(err.path) if err.path is not None else self.base.samples[index][0]
                self.unreadable[index] = (str(path), str(err))
                skipped.append(str(path))
                continue
            if skipped:
                sample["skipped"] = skipped
            return sample
        raise UnreadableImageError(
            f"All {n} training samples are unreadable (data.skip_unreadable=true found no "
            f"readable one); first: {self.unreadable[first][1]}", self.unreadable[first][0])


class StepSampler(Sampler[int]):
    """Endless positions for one rank, starting at a given micro-step.

    Micro-step ``m`` covers positions ``[m·G, (m+1)·G)`` with ``G = world_size × batch_size``;
    rank ``r`` takes ``[m·G + r·B, m·G + (r+1)·B)``.

    Args:
        batch_size: per-device batch B.
        rank, world_size: this process's slice.
        start_step: first micro-step (optimizer step × gradient accumulation on resume).
        cycle: None, or repeat the first ``cycle`` micro-steps' positions forever (``debug=overfit``:
            the same few batches many times; crops and augmentation repeat with them).
    """

    def __init__(self, batch_size: int, rank: int = 0, world_size: int = 1,
                 start_step: int = 0, cycle: int | None = None) -> None:
        if cycle is not None and int(cycle) < 1:
            raise ValueError(f"data.overfit_batches must be >= 1 (or null), got {cycle}")
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step
        self.cycle = None if cycle is None else int(cycle)

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        global_batch = self.batch_size * self.world_size
        while True:
            position = step % self.cycle if self.cycle else step
            first = position * global_batch + self.rank * self.batch_size
            yield from range(first, first + self.batch_size)
            step += 1
