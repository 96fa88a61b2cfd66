"""The dataset registry: every ``data.dataset`` config key and the class it builds.

One explicit table, the only place a dataset is registered: the offline world
(:mod:`src.data.world`) is listed here too instead of adding itself when imported. Entries are
import paths resolved on first lookup, so listing a dataset imports nothing, and
:mod:`src.data.world` can import the base class from this package without an import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from src.data.datasets.base import SegmentationDataset

__all__ = ["DATASETS", "DatasetRegistry"]


class DatasetRegistry(Mapping[str, type[SegmentationDataset]]):
    """Read-only mapping of ``data.dataset`` keys to dataset classes, imported on first use.

    Looking up an unknown key with ``registry[name]`` raises ``KeyError(name)`` as a dict does;
    :meth:`resolve` raises a ``ValueError`` that lists the known keys, for config errors.

    Args:
        entries: key → ``(module, class name)``.
    """

    def __init__(self, entries: Mapping[str, tuple[str, str]]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> type[SegmentationDataset]:
        module, attr = self._entries[name]
        return getattr(importlib.import_module(module), attr)

    def __contains__(self, name: object) -> bool:
        # Membership needs no import (Mapping's default would import the class).
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        targets = ", ".join(f"{k!r}: '{m}.{c}'" for k, (m, c) in self._entries.items())
        return f"{type(self).__name__}({{{targets}}})"

    def resolve(self, name: str) -> type[SegmentationDataset]:
        """The dataset class registered as ``name``.

        Raises:
            ValueError: ``name`` is not registered; the message lists the registered keys.
        """
        if name not in self:
            raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(self)}.")
        return self[name]


#: Every dataset by its ``data.dataset`` config key (``conf/data/*.yaml``).
DATASETS = DatasetRegistry({
    "voc": ("src.data.datasets.voc", "VOCDataset"),
    "context": ("src.data.datasets.context", "PascalContextDataset"),
    "cocostuff": ("src.data.datasets.coco", "COCOStuffDataset"),
    "cocoobject": ("src.data.datasets.coco", "COCOObjectDataset"),
    "cityscapes": ("src.data.datasets.cityscapes", "CityscapesDataset"),
    "ade20k": ("src.data.datasets.ade20k", "ADE20KDataset"),
    "folder": ("src.data.datasets.folder", "FolderDataset"),
    "world": ("src.data.world", "WorldDataset"),
})
