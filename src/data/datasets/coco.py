"""The COCO family: COCO-Stuff 164k and COCO-Object (which shares COCO-Stuff's images)."""

from __future__ import annotations

from pathlib import Path

from src.data.datasets.base import Transform
from src.data.datasets.files import list_dir
from src.data.datasets.mmseg import MMSegLayoutDataset

__all__ = ["COCOObjectDataset", "COCOStuffDataset"]


class COCOStuffDataset(MMSegLayoutDataset):
    """COCO-Stuff 164k (mmseg layout), 171 classes (labelTrainIds 0..170, 255 = ignore).

    Args:
        root: ``.../coco_stuff164k``.
        split: ``'train2017'`` or ``'val2017'``; all images of the split folder are used.
        transform: See :class:`SegmentationDataset`.
    """

    DATASET_NAME = "COCO-Stuff 164k"
    LAYOUT = """\
coco_stuff164k/                         <- data.root
├── images/
│   ├── train2017/<id>.jpg
│   └── val2017/<id>.jpg
└── annotations/
    ├── train2017/<id>_labelTrainIds.png    (0..170, 255 = ignore; made by
    └── val2017/<id>_labelTrainIds.png       scripts/convert_coco_stuff.py)
"""
    HINT = (
        "set data.root=/path/to/coco_stuff164k (or paths.data_dir so that "
        "${paths.data_dir}/coco_stuff164k exists) and run scripts/convert_coco_stuff.py to make "
        "the *_labelTrainIds.png masks."
    )
    NESTED_ROOTS = ("coco_stuff164k",)

    def __init__(
        self,
        root: str | Path,
        split: str = "val2017",
        transform: Transform | None = None,
    ) -> None:
        root = Path(root).expanduser()
        image_dir = root / "images" / split
        self._check_dir(root, image_dir, f"image folder for split {split!r}")
        mask_dir = root / "annotations" / split
        if not mask_dir.is_dir():
            raise self._error(root, f"annotation folder for split {split!r}", mask_dir)
        ids = sorted(name[: -len(".jpg")] for name in list_dir(image_dir) if name.endswith(".jpg"))
        if not ids:
            raise self._empty(root, "the image folder", image_dir, "*.jpg image")
        samples = self._collect(
            root, ids, image_dir, ".jpg", [mask_dir], "_labelTrainIds.png", image_dir
        )
        super().__init__(samples, num_classes=171, transform=transform, split_source=image_dir)
        self.root, self.split = root, split


class COCOObjectDataset(MMSegLayoutDataset):
    """COCO-Object (SCLIP/GroupViT protocol): COCO val2017 instances as 81-class object masks.

    Label 0 is background, 1..80 the COCO things in category-id order (255 = ignore). The masks
    are made from the instance annotations by ``scripts/convert_coco_object.py``.

    Args:
        root: ``.../coco_stuff164k`` (the images are shared with COCO-Stuff).
        split: ``'val2017'`` (or ``'train2017'``).
    """

    DATASET_NAME = "COCO-Object"
    LAYOUT = """\
coco_stuff164k/                         <- data.root (images shared with COCO-Stuff)
├── images/val2017/<id>.jpg
└── annotations/val2017/<id>_instanceTrainIds.png   (0 = background, 1..80 = things; made by
                                                     scripts/convert_coco_object.py)
"""
    HINT = ("set data.root=/path/to/coco_stuff164k and run scripts/convert_coco_object.py "
            "--annotations instances_val2017.json to make the *_instanceTrainIds.png masks.")
    NESTED_ROOTS = ("coco_stuff164k",)

    def __init__(self, root: str | Path, split: str = "val2017",
                 transform: Transform | None = None) -> None:
        root, image_dir, mask_dir = self._split_dirs(root, "images", "annotations", split)
        masks = list_dir(mask_dir)
        ids = sorted(name[: -len("_instanceTrainIds.png")] for name in masks
                     if name.endswith("_instanceTrainIds.png"))
        if not ids:
            raise self._empty(root, "the annotation folder", mask_dir,
                              "*_instanceTrainIds.png mask")
        samples = self._collect(root, ids, image_dir, ".jpg", [mask_dir],
                                "_instanceTrainIds.png", mask_dir)
        super().__init__(samples, num_classes=81, transform=transform, split_source=mask_dir)
        self.root, self.split = root, split
