"""PASCAL VOC 2012 (mmseg layout, optional SBD ``aug`` split)."""

from __future__ import annotations

from pathlib import Path

from src.data.datasets.base import Transform
from src.data.datasets.mmseg import MMSegLayoutDataset, pascal_nested_roots, pascal_root_hint

__all__ = ["VOCDataset"]


class VOCDataset(MMSegLayoutDataset):
    """PASCAL VOC 2012 (mmseg layout), 20 classes without background or 21 with.

    Args:
        root: ``.../VOCdevkit/VOC2012``.
        split: ``'train'``, ``'val'``, ``'trainval'`` or ``'aug'`` (10,582 train+SBD ids; masks from
            ``SegmentationClassAug``, falling back to ``SegmentationClass``).
        with_background: False: 20 classes, background → 255 (reduce_zero_label, the MaskCLIP
            annotation-free protocol); True: 21 classes with background = 0 (raw labels).
        transform: See :class:`SegmentationDataset`.
    """

    DATASET_NAME = "PASCAL VOC 2012"
    LAYOUT = """\
VOCdevkit/VOC2012/                      <- data.root
├── JPEGImages/<id>.jpg
├── SegmentationClass/<id>.png          (palette PNG: 0 = background, 1..20, 255 = void)
├── SegmentationClassAug/<id>.png       (split 'aug' only, made by scripts/convert_sbd.py)
└── ImageSets/Segmentation/
    ├── train.txt, val.txt, trainval.txt
    └── aug.txt                         (split 'aug' only, made by scripts/convert_sbd.py)
"""
    HINT = pascal_root_hint("VOC2012", "For the 'aug' split (train + SBD) run "
                            "scripts/convert_sbd.py first.")
    NESTED_ROOTS = pascal_nested_roots("VOC2012")

    def __init__(self, root: str | Path, split: str = "val", with_background: bool = False,
                 transform: Transform | None = None) -> None:
        root = Path(root).expanduser()
        split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        mask_dirs = [root / "SegmentationClass"]
        if split == "aug":
            mask_dirs.insert(0, root / "SegmentationClassAug")
        samples = self._pascal_samples(root, split, split_file, mask_dirs)
        self._init_pascal(samples, 21 if with_background else 20, not with_background, transform,
                          split_file)
        self.root, self.split = root, split
