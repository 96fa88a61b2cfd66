"""PASCAL Context (mmseg layout, 59 or 60 classes)."""

from __future__ import annotations

from pathlib import Path

from src.data.datasets.base import Transform
from src.data.datasets.mmseg import MMSegLayoutDataset, pascal_nested_roots, pascal_root_hint

__all__ = ["PascalContextDataset"]


class PascalContextDataset(MMSegLayoutDataset):
    """PASCAL Context (mmseg layout), 59 classes without background or 60 with.

    Args:
        root: ``.../VOCdevkit/VOC2010``.
        split: ``'train'`` or ``'val'``.
        num_classes: 59 (background → 255, reduce_zero_label) or 60 (background = 0, raw).
        transform: See :class:`SegmentationDataset`.
    """

    DATASET_NAME = "PASCAL Context"
    LAYOUT = """\
VOCdevkit/VOC2010/                      <- data.root
├── JPEGImages/<id>.jpg
├── SegmentationClassContext/<id>.png   (0 = background, 1..59; made by
│                                        scripts/convert_pascal_context.py)
└── ImageSets/SegmentationContext/
    └── train.txt, val.txt              (made by scripts/convert_pascal_context.py)
"""
    HINT = pascal_root_hint("VOC2010", "Run scripts/convert_pascal_context.py to make "
                            "SegmentationClassContext and the split lists.")
    NESTED_ROOTS = pascal_nested_roots("VOC2010")

    def __init__(self, root: str | Path, split: str = "val", num_classes: int = 59,
                 transform: Transform | None = None) -> None:
        if num_classes not in (59, 60):
            raise ValueError(f"PASCAL Context has 59 or 60 classes, got num_classes={num_classes}.")
        root = Path(root).expanduser()
        split_file = root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        samples = self._pascal_samples(root, split, split_file,
                                       [root / "SegmentationClassContext"])
        self._init_pascal(samples, num_classes, num_classes == 59, transform, split_file)
        self.root, self.split = root, split
