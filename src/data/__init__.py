"""Datasets, transforms and the LightningDataModule (labels: 0..C-1, 255 = ignore)."""

from src.data.datamodule import SegDataModule, list_collate, stack_collate
from src.data.datasets import (
    DATASETS,
    COCOStuffDataset,
    FolderDataset,
    PascalContextDataset,
    SegmentationDataset,
    VOCDataset,
)
from src.data.splits import ZERO_SHOT_UNSEEN, unseen_indices
from src.data.transforms import (
    IGNORE_INDEX,
    NORMALIZATION,
    RescaleToFit,
    build_eval_transform,
    build_train_transform,
)

__all__ = [
    "COCOStuffDataset",
    "DATASETS",
    "FolderDataset",
    "IGNORE_INDEX",
    "NORMALIZATION",
    "PascalContextDataset",
    "RescaleToFit",
    "SegDataModule",
    "SegmentationDataset",
    "VOCDataset",
    "ZERO_SHOT_UNSEEN",
    "build_eval_transform",
    "build_train_transform",
    "list_collate",
    "stack_collate",
    "unseen_indices",
]
