"""Cityscapes (mmseg layout, 19 train ids)."""

from __future__ import annotations

from pathlib import Path

from src.data.datasets.base import Sample, Transform
from src.data.datasets.mmseg import MMSegLayoutDataset

__all__ = ["CityscapesDataset"]


class CityscapesDataset(MMSegLayoutDataset):
    """Cityscapes (mmseg layout), 19 classes (labelTrainIds 0..18, 255 = ignore).

    Args:
        root: ``.../cityscapes``.
        split: ``'val'`` or ``'train'``; every city folder of the split is used.
    """

    DATASET_NAME = "Cityscapes"
    LAYOUT = """\
cityscapes/                              <- data.root
├── leftImg8bit/val/<city>/<city>_<seq>_<frame>_leftImg8bit.png
└── gtFine/val/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (0..18, 255; made by
                                             cityscapesscripts' createTrainIdLabelImgs)
"""
    HINT = ("set data.root=/path/to/cityscapes and create the *_labelTrainIds.png masks with "
            "`pip install cityscapesscripts; csCreateTrainIdLabelImgs`.")
    NESTED_ROOTS = ("cityscapes",)

    def __init__(self, root: str | Path, split: str = "val",
                 transform: Transform | None = None) -> None:
        root, image_root, mask_root = self._split_dirs(root, "leftImg8bit", "gtFine", split,
                                                       "gtFine folder")
        samples: list[Sample] = []
        for image in sorted(image_root.glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            mask = mask_root / image.parent.name / f"{stem}_gtFine_labelTrainIds.png"
            if not mask.is_file():
                raise self._error(root, f"mask for {image.name!r}", mask)
            samples.append((image, mask, stem))
        if not samples:
            raise self._empty(root, "the image folder", image_root,
                              "<city>/*_leftImg8bit.png image")
        super().__init__(samples, num_classes=19, transform=transform, split_source=image_root)
        self.root, self.split = root, split
