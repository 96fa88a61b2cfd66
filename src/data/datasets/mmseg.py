"""Shared code of the mmseg on-disk layouts (VOC, Context, COCO, Cityscapes, ADE20K).

Each subclass sets ``DATASET_NAME``, ``LAYOUT`` (the expected tree, printed in errors), ``HINT``
and ``NESTED_ROOTS`` (sub-folders that suggest data.root points one level too high).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src.data.datasets.base import Sample, SegmentationDataset, reduce_zero_label_map
from src.data.datasets.errors import (
    EmptySplitError,
    empty_split_error,
    layout_error,
    nested_hint,
)
from src.data.datasets.files import list_dir, read_split

__all__ = ["MMSegLayoutDataset", "pascal_nested_roots", "pascal_root_hint"]


def pascal_root_hint(release: str, then: str) -> str:
    """What to set for a PASCAL release (``VOC2012``, ``VOC2010``), then ``then``."""
    return (f"set data.root=/path/to/VOCdevkit/{release} (or paths.data_dir so that "
            f"${{paths.data_dir}}/VOCdevkit/{release} exists). {then}")


def pascal_nested_roots(release: str) -> tuple[str, ...]:
    """Sub-folders that mean data.root points above a PASCAL release."""
    return (release, f"VOCdevkit/{release}")


class MMSegLayoutDataset(SegmentationDataset):
    """Shared code of the mmseg layouts: root/img_dir/<id><img_suffix>, root/ann_dir/<id>...."""

    DATASET_NAME = ""
    LAYOUT = ""
    HINT = ""
    NESTED_ROOTS: tuple[str, ...] = ()

    def _error(self, root: Path, what: str, path: Path) -> FileNotFoundError:
        return layout_error(
            self.DATASET_NAME, what, path, root, self.LAYOUT,
            self.HINT + nested_hint(root, self.NESTED_ROOTS),
        )

    def _empty(self, root: Path, what: str, source: Path, expected: str) -> EmptySplitError:
        return empty_split_error(self.DATASET_NAME, what, source, expected, root, self.LAYOUT,
                                  self.HINT + nested_hint(root, self.NESTED_ROOTS))

    def _check_dir(self, root: Path, directory: Path, what: str) -> None:
        if not root.is_dir():
            raise self._error(root, "data root", root)
        if not directory.is_dir():
            raise self._error(root, what, directory)

    def _split_dirs(self, root: str | Path, images: str, masks: str, split: str,
                    mask_what: str = "annotation folder") -> tuple[Path, Path, Path]:
        """(root, root/images/split, root/masks/split), each checked to exist."""
        root = Path(root).expanduser()
        image_dir, mask_dir = root / images / split, root / masks / split
        self._check_dir(root, image_dir, f"image folder for split {split!r}")
        if not mask_dir.is_dir():
            raise self._error(root, f"{mask_what} for split {split!r}", mask_dir)
        return root, image_dir, mask_dir

    def _pascal_samples(self, root: Path, split: str, split_file: Path,
                        mask_dirs: Sequence[Path]) -> list[Sample]:
        """The PASCAL layout (VOC, Context): ids from ``split_file``, ``JPEGImages/<id>.jpg``,
        ``<id>.png`` from the first of ``mask_dirs`` that has it; each path checked."""
        image_dir = root / "JPEGImages"
        self._check_dir(root, image_dir, "image folder")
        if not split_file.is_file():
            raise self._error(root, f"split list for split {split!r}", split_file)
        if not any(d.is_dir() for d in mask_dirs):
            raise self._error(root, "mask folder", mask_dirs[0])
        return self._collect(root, read_split(split_file), image_dir, ".jpg", mask_dirs, ".png",
                             split_file)

    def _init_pascal(self, samples: list[Sample], num_classes: int, reduce_zero_label: bool,
                     transform, split_source: Path) -> None:
        """Background dropped (→ 255, mmseg's reduce_zero_label) or kept as class 0."""
        super().__init__(
            samples,
            num_classes=num_classes,
            label_map=reduce_zero_label_map() if reduce_zero_label else None,
            transform=transform,
            label_map_name="reduce_zero_label" if reduce_zero_label else None,
            split_source=split_source,
        )

    def _collect(
        self,
        root: Path,
        ids: Sequence[str],
        image_dir: Path,
        image_suffix: str,
        mask_dirs: Sequence[Path],
        mask_suffix: str,
        split_file: Path | str,
    ) -> list[Sample]:
        """Builds samples; each mask is taken from the first of ``mask_dirs`` that has it.

        Raises:
            EmptySplitError: ``ids`` is empty (an empty split list).
        """
        if not ids:
            source = Path(split_file)
            if source.is_file():
                raise self._empty(root, "the split list", source,
                                  f"image id (one per line: an image's name in {image_dir} "
                                  f"without {image_suffix!r})")
            raise self._empty(root, "the folder", source, f"*{image_suffix} image")
        images = list_dir(image_dir)
        mask_listings = [(d, list_dir(d)) for d in mask_dirs if d.is_dir()]
        samples: list[Sample] = []
        for name in ids:
            image_file = name + image_suffix
            if image_file not in images:
                raise self._error(
                    root, f"image {image_file!r} listed in {split_file}", image_dir / image_file
                )
            mask_file = name + mask_suffix
            mask_path = next((d / mask_file for d, ls in mask_listings if mask_file in ls), None)
            if mask_path is None:
                tried = ", ".join(str(d / mask_file) for d in mask_dirs)
                raise self._error(
                    root, f"mask for {name!r} (tried {tried})", mask_dirs[0] / mask_file
                )
            samples.append((image_dir / image_file, mask_path, name))
        return samples
