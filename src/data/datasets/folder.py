"""A custom dataset: a folder of images, optional index masks and a ``classes.txt`` vocabulary."""

from __future__ import annotations

from pathlib import Path

from src.data.datasets.base import Sample, SegmentationDataset, Transform, reduce_zero_label_map
from src.data.datasets.errors import empty_split_error, layout_error
from src.data.datasets.files import list_dir, read_class_lines, read_split
from src.data.images import PREDICT_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "FolderDataset"]

#: Image files a folder dataset lists: everything :func:`~src.data.images.read_rgb` reads that
#: photo folders hold (the same list as ``src.predict``), so no image is silently left out.
IMAGE_EXTENSIONS = PREDICT_EXTENSIONS


class FolderDataset(SegmentationDataset):
    """A custom dataset: a folder of images, optional index masks and a vocabulary file.

    Masks hold class indices into ``classes.txt`` (0..C-1, 255 = ignore). Without a ``masks/``
    folder the dataset is image-only (for prediction). Every image file in ``images/`` with an
    extension of :data:`IMAGE_EXTENSIONS` is listed (hidden files such as macOS ``._x.jpg`` are
    not images and are ignored), so no image is silently left out.

    Args:
        root: The folder (see :attr:`LAYOUT`).
        split: Name of a stem list ``root/splits/<split>.txt``; None uses every image.
        reduce_zero_label: Treat mask value 0 as ignore and shift the others down by one (for
            masks whose 0 is an unlabelled background not listed in ``classes.txt``).
        transform: See :class:`SegmentationDataset`.
    """

    DATASET_NAME = "Folder dataset"
    LAYOUT = """\
<root>/                                 <- data.root
├── classes.txt          one class per line: "<dataset name>[: <prompt>[, <synonym>...]]";
│                        no empty lines; lines starting with '#' are comments; UTF-8
├── images/<stem>.jpg    (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp or .gif)
├── masks/<stem>.png     optional; single-channel PNG of class indices (0-based position of
│                        the class among the non-comment lines of classes.txt), 255 = ignore;
│                        no masks/ = prediction only
└── splits/<split>.txt   optional; one image stem per line (data.test_split=<split>)
"""
    HINT = "set data.root=/path/to/your/folder (default ${paths.data_dir}/custom)."

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        reduce_zero_label: bool = False,
        transform: Transform | None = None,
    ) -> None:
        root = Path(root).expanduser()
        image_dir, mask_dir, classes_file = root / "images", root / "masks", root / "classes.txt"
        for what, path, ok in (
            ("data root", root, root.is_dir()),
            ("image folder", image_dir, image_dir.is_dir()),
            ("vocabulary file", classes_file, classes_file.is_file()),
        ):
            if not ok:
                raise layout_error(self.DATASET_NAME, what, path, root, self.LAYOUT, self.HINT)
        class_lines = read_class_lines(classes_file)
        if not class_lines:
            raise ValueError(f"Vocabulary file {classes_file} lists no classes; expected one "
                             "class per line.")

        by_stem: dict[str, Path] = {}
        for name in sorted(list_dir(image_dir)):
            path = image_dir / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if path.stem in by_stem:
                raise ValueError(
                    f"Two images share the stem {path.stem!r}: {by_stem[path.stem]}, {path}."
                )
            by_stem[path.stem] = path
        if split is None:
            stems = sorted(by_stem)
            split_source: Path = image_dir
        else:
            split_source = root / "splits" / f"{split}.txt"
            if not split_source.is_file():
                raise layout_error(
                    self.DATASET_NAME, f"split list for split {split!r}", split_source, root,
                    self.LAYOUT, self.HINT,
                )
            stems = read_split(split_source)
        if not stems:
            if split is None:
                raise empty_split_error(
                    self.DATASET_NAME, "the image folder", image_dir,
                    f"image file ({', '.join(IMAGE_EXTENSIONS)})", root, self.LAYOUT, self.HINT)
            raise empty_split_error(
                self.DATASET_NAME, "the split list", split_source,
                f"image stem (one per line, the file name in {image_dir} without extension)",
                root, self.LAYOUT, self.HINT)

        masks = list_dir(mask_dir) if mask_dir.is_dir() else None
        samples: list[Sample] = []
        for stem in stems:
            if stem not in by_stem:
                hint = self.HINT
                if Path(stem).stem in by_stem:
                    hint = f"list image stems without extension ({Path(stem).stem!r})."
                raise layout_error(
                    self.DATASET_NAME, f"image {stem!r} listed in {split_source}",
                    image_dir / f"{stem}.jpg", root, self.LAYOUT, hint,
                )
            mask_path = None
            if masks is not None:
                if f"{stem}.png" not in masks:
                    raise layout_error(
                        self.DATASET_NAME, f"mask for image {by_stem[stem].name!r}",
                        mask_dir / f"{stem}.png", root, self.LAYOUT,
                        "every image needs a mask once masks/ exists (remove masks/ to predict "
                        "without labels).",
                    )
                mask_path = mask_dir / f"{stem}.png"
            samples.append((by_stem[stem], mask_path, stem))
        super().__init__(
            samples,
            num_classes=len(class_lines),
            label_map=reduce_zero_label_map() if reduce_zero_label else None,
            transform=transform,
            label_map_name="reduce_zero_label" if reduce_zero_label else None,
            split_source=split_source,
        )
        self.root, self.split = root, split
        self.classes_file = classes_file
        self.class_lines = class_lines
