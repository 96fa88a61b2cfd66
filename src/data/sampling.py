"""Training samples as a pure function of (seed, position): exact resume and DDP sharding.

Training is iteration-based, so the loader is an endless stream of *positions* (global sample
counters). Position ``p`` maps to a dataset index through a per-epoch permutation seeded by
``(seed, p // len(dataset))``, and its augmentation is reseeded by ``(seed, p)``. A run resumed
from a checkpoint at step ``k`` starts the stream at step ``k`` and sees exactly the samples and
crops the uninterrupted run saw. Each rank takes its own slice of every global batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import torch
from torch.utils.data import Dataset, Sampler

from src.data.datasets import SegmentationDataset


class StepSeededDataset(Dataset):
    """Wraps a training dataset so that item ``position`` is deterministic.

    Args:
        base: the training dataset; its ``transform`` should be a ``SegTransform`` whose
            albumentations pipeline can be reseeded.
        seed: the run's seed.
    """

    def __init__(self, base: SegmentationDataset, seed: int) -> None:
        self.base = base
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.base)

    @lru_cache(maxsize=4)
    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.base), generator=generator)

    def index_of(self, position: int) -> int:
        epoch, offset = divmod(int(position), len(self.base))
        return int(self._permutation(epoch)[offset])

    def __getitem__(self, position: int):
        pipeline = getattr(self.base.transform, "pipeline", None)
        if pipeline is not None and hasattr(pipeline, "set_random_seed"):
            pipeline.set_random_seed((self.seed * 7_919 + int(position)) % 2**31)
        return self.base[self.index_of(position)]


class StepSampler(Sampler[int]):
    """Endless positions for one rank, starting at a given micro-step.

    Micro-step ``m`` covers positions ``[m·G, (m+1)·G)`` with ``G = world_size × batch_size``;
    rank ``r`` takes ``[m·G + r·B, m·G + (r+1)·B)``.

    Args:
        batch_size: per-device batch B.
        rank, world_size: this process's slice.
        start_step: first micro-step (optimizer step × gradient accumulation on resume).
    """

    def __init__(self, batch_size: int, rank: int = 0, world_size: int = 1,
                 start_step: int = 0) -> None:
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        global_batch = self.batch_size * self.world_size
        while True:
            first = step * global_batch + self.rank * self.batch_size
            yield from range(first, first + self.batch_size)
            step += 1
