"""ADE20K (ADEChallengeData2016, 150 classes)."""

from __future__ import annotations

from pathlib import Path

from src.data.datasets.base import Transform, reduce_zero_label_map
from src.data.datasets.files import list_dir
from src.data.datasets.mmseg import MMSegLayoutDataset

__all__ = ["ADE20KDataset"]


class ADE20KDataset(MMSegLayoutDataset):
    """ADE20K (ADEChallengeData2016), 150 classes: raw 0 (other) → 255, k → k − 1.

    Args:
        root: ``.../ADEChallengeData2016``.
        split: ``'validation'`` or ``'training'``.
    """

    DATASET_NAME = "ADE20K"
    LAYOUT = """\
ADEChallengeData2016/                    <- data.root
├── images/validation/ADE_val_<id>.jpg
└── annotations/validation/ADE_val_<id>.png   (0 = other/ignored, 1..150 = classes)
"""
    HINT = "set data.root=/path/to/ADEChallengeData2016 (the official zip, unpacked)."
    NESTED_ROOTS = ("ADEChallengeData2016",)

    def __init__(self, root: str | Path, split: str = "validation",
                 transform: Transform | None = None) -> None:
        root, image_dir, mask_dir = self._split_dirs(root, "images", "annotations", split)
        ids = sorted(name[: -len(".jpg")] for name in list_dir(image_dir) if name.endswith(".jpg"))
        if not ids:
            raise self._empty(root, "the image folder", image_dir, "*.jpg image")
        samples = self._collect(root, ids, image_dir, ".jpg", [mask_dir], ".png", image_dir)
        super().__init__(samples, num_classes=150, label_map=reduce_zero_label_map(),
                         transform=transform, label_map_name="reduce_zero_label",
                         split_source=image_dir)
        self.root, self.split = root, split
