"""Semantic-segmentation datasets in the mmseg on-disk layouts, plus a generic folder layout.

Label convention: mask pixels are class indices ``0..C-1`` in the vocabulary's order and 255 means
ignore. Raw mask values go through an optional label map first (e.g. ``reduce_zero_label``:
background 0 → 255, class k → k-1) and are then validated.

Every sample is returned as a dict::

    image:     float32 tensor 3×h×w (rescaled and normalised by the transform)
    mask:      int64 tensor H×W at the ORIGINAL resolution (eval transform) or h×w (train crop);
               absent when the sample has no mask
    name:      str, the sample id (file stem)
    orig_size: (H, W) of the original image

Bad input fails loudly and names its file: images go through the project's one reader
(:func:`src.data.images.read_rgb`: any PIL mode, 16-bit scaled, never clipped to white); an
unreadable image or mask raises :class:`UnreadableImageError` naming the file and the split list
to remove it from; an empty split raises :class:`EmptySplitError`; split lists and class files are
decoded by :func:`src.utils.io.read_text_lines` (UTF-8 / UTF-16 with BOM, else an error naming
the line).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from src.data.images import PREDICT_EXTENSIONS, UnreadableImageError, describe_error, read_rgb
from src.data.transforms import IGNORE_INDEX
from src.utils.io import TextFileError, read_text_lines

__all__ = [
    "DATASETS",
    "COCOStuffDataset",
    "EmptySplitError",
    "FolderDataset",
    "PascalContextDataset",
    "Sample",
    "SegmentationDataset",
    "UnreadableImageError",
    "VOCDataset",
    "read_class_lines",
    "reduce_zero_label_map",
]

#: ``(image_path, mask_path or None, name)``.
Sample = tuple[Path, Path | None, str]

#: ``transform(image=H×W×3 uint8, mask=H×W uint8 | absent) -> dict(image=..., mask=...)``.
Transform = Callable[..., Mapping[str, Any]]

#: Image files a folder dataset lists: everything :func:`~src.data.images.read_rgb` reads that
#: photo folders hold (the same list as ``src.predict``), so no image is silently left out.
IMAGE_EXTENSIONS = PREDICT_EXTENSIONS


class EmptySplitError(ValueError, FileNotFoundError):
    """A split (a split list file, or a folder) that yields no sample.

    A zero-length dataset would otherwise reach Lightning, which only warns and then evaluates
    nothing. A ``ValueError`` (the split's content is wrong) and, for callers that catch layout
    problems, a ``FileNotFoundError`` (nothing was found where the layout says).
    """


def reduce_zero_label_map() -> dict[int, int]:
    """mmseg ``reduce_zero_label``: 0 (background) → 255, k → k-1 for 1..254, 255 stays 255."""
    return {0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 255)}}


def read_class_lines(path: str | Path) -> list[str]:
    """Class lines of a vocabulary file, stripped, without ``#`` comment lines.

    The reader of :func:`src.prompts.vocabulary.load_vocabulary` itself, so that the class count
    (and hence the valid mask range) matches the text classifier, and with its checks: an empty
    line before the last class, a malformed or repeated class, or bytes that are not UTF-8/UTF-16
    raise a ``ValueError`` naming the file and line (a dropped line would shift every later
    class index).
    """
    from src.prompts.vocabulary import read_class_file  # lazy: src.prompts imports open_clip

    return [line for _, line in read_class_file(path)]


class SegmentationDataset(Dataset):
    """A list of (image, mask) files with label mapping, validation and a transform.

    Args:
        samples: ``(image_path, mask_path | None, name)`` triples.
        num_classes: C; valid mask values after the label map are ``0..C-1`` and 255.
        label_map: Raw mask value → label; values not in it are kept as they are.
        transform: Called as ``transform(image=..., mask=...)`` (``mask`` only when the sample
            has one) and returning a dict with ``image`` (and ``mask``); see
            :mod:`src.data.transforms`. ``None`` gives the unnormalised 0..255 float image at
            original size.
        label_map_name: Short description of the label map, used in error messages.
        split_source: The split list file (or the folder) the samples were listed from, so
            that an error about one sample can say where to leave it out.

    Raises:
        EmptySplitError: ``samples`` is empty.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        num_classes: int,
        label_map: Mapping[int, int] | None = None,
        transform: Transform | None = None,
        label_map_name: str | None = None,
        split_source: str | Path | None = None,
    ) -> None:
        if num_classes < 1 or num_classes > IGNORE_INDEX:
            raise ValueError(f"num_classes must be in 1..{IGNORE_INDEX}, got {num_classes}.")
        self.samples: list[Sample] = [
            (Path(img), None if mask is None else Path(mask), str(name))
            for img, mask, name in samples
        ]
        self.split_source = None if split_source is None else Path(split_source)
        if not self.samples:
            where = f" listed by {self.split_source}" if self.split_source is not None else ""
            raise EmptySplitError(
                f"{type(self).__name__}: no samples{where}; a dataset needs at least one "
                "(image, mask) pair.")
        self.num_classes = num_classes
        self.label_map = None if label_map is None else dict(label_map)
        self.label_map_name = label_map_name or ("custom" if label_map else None)
        self.transform = transform
        # A 256-entry lookup table applies the label map to a uint8 mask in one indexing op.
        self._lut: np.ndarray | None = None
        if self.label_map is not None:
            lut = np.arange(256, dtype=np.int64)
            for src, dst in self.label_map.items():
                lut[src] = dst
            self._lut = lut.astype(np.uint8) if lut.max() <= 255 else lut

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def has_masks(self) -> bool:
        """Whether every sample has a mask (False for image-only prediction sets)."""
        return all(mask is not None for _, mask, _ in self.samples)

    @property
    def names(self) -> list[str]:
        """Sample ids in dataset order."""
        return [name for _, _, name in self.samples]

    def load_image(self, index: int) -> np.ndarray:
        """Reads sample ``index``'s image as an H×W×3 uint8 RGB array.

        Through :func:`~src.data.images.read_rgb`, the reader ``src.predict`` uses, so a 16-bit
        PNG is scaled (not clipped to white) and CMYK/LA/P/1-bit images convert the same way.

        Raises:
            UnreadableImageError: the file cannot be decoded; names it and how to leave it out.
        """
        path = self.samples[index][0]
        try:
            return read_rgb(path)
        except UnreadableImageError as err:
            raise self._unreadable(index, "image", path, err.cause) from err

    def leave_out_hint(self, index: int) -> str:
        """How to leave sample ``index`` out of this split (for error messages)."""
        image, mask, name = self.samples[index]
        files = f"{image}" + ("" if mask is None else f" and its mask {mask}")
        source = self.split_source
        if source is not None and source.is_file():
            return f"remove its id {name!r} from the split list {source}"
        if source is not None:
            return f"move {files} out of the dataset (every file in {source} is used)"
        return f"remove sample {name!r} ({files}) from the sample list"

    def _unreadable(self, index: int, kind: str, path: Path, cause: str) -> UnreadableImageError:
        """The error for an undecodable image or mask of sample ``index``: file, cause, fix."""
        return UnreadableImageError(
            f"Unreadable {kind} file {path} (sample {self.samples[index][2]!r}): {cause}. "
            f"Re-download or re-convert this file (open it in an image viewer; save it again), "
            f"or {self.leave_out_hint(index)}. Training can instead use the next readable sample "
            "with data.skip_unreadable=true; evaluation always stops, because leaving a sample "
            "out would change the score.",
            path, cause)

    def load_mask(self, index: int) -> np.ndarray | None:
        """Reads, label-maps and validates sample ``index``'s mask.

        Returns:
            H×W uint8 labels in ``0..C-1`` ∪ {255}, or None if the sample has no mask.

        Raises:
            ValueError: If the PNG is not single-channel or a label is out of range.
        """
        path = self.samples[index][1]
        if path is None:
            return None
        try:
            with Image.open(path) as im:
                # Palette PNGs must stay palette indices: converting to RGB/L would give colours.
                raw = np.array(im)
        except MemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError...
            raise self._unreadable(index, "mask", path, describe_error(err)) from err
        if raw.ndim == 0 or raw.size == 0:  # PIL gives a 0-d object array for some broken files
            raise self._unreadable(index, "mask", path, "no pixel data")
        if raw.ndim != 2:
            raise ValueError(
                f"Mask {path} has shape {raw.shape}; expected a single-channel (palette or "
                "grayscale) PNG of class indices, not a colour image."
            )
        if raw.dtype == bool:
            raw = raw.astype(np.uint8)
        if raw.dtype.kind == "f" and not np.array_equal(raw, np.round(raw)):
            raise ValueError(
                f"Mask {path} holds fractional values (a float image); expected integer class "
                f"indices 0..{self.num_classes - 1} and {IGNORE_INDEX} = ignore in a "
                "single-channel PNG."
            )
        if raw.dtype != np.uint8:
            if raw.min() < 0 or raw.max() > 255:
                bad = np.unique(raw[(raw < 0) | (raw > 255)])[:20].tolist()
                raise ValueError(
                    f"Mask {path} has values {bad} outside 0..255; expected class indices "
                    f"0..{self.num_classes - 1} and {IGNORE_INDEX} = ignore."
                )
            raw = raw.astype(np.uint8)
        mask = raw if self._lut is None else self._lut[raw]
        counts = np.bincount(mask.ravel(), minlength=256)
        counts[: self.num_classes] = 0
        counts[IGNORE_INDEX] = 0
        if counts.any():
            bad = np.flatnonzero(counts).tolist()
            after = f" after label map ({self.label_map_name})" if self._lut is not None else ""
            raise ValueError(
                f"Mask {path} has values {bad}{after} outside the expected range "
                f"0..{self.num_classes - 1} (and {IGNORE_INDEX} = ignore). Wrong num_classes, "
                "label map, or an RGB-coloured mask saved instead of class indices?"
            )
        return mask.astype(np.uint8, copy=False)

    # (name, severity, seed) of an image corruption for the robustness test, or None.
    corruption: tuple[str, int, int] | None = None

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.load_image(index)
        if self.corruption is not None:
            from src.data.corruptions import corrupt

            name, severity, seed = self.corruption
            image = corrupt(image, name, severity, seed, index)
        mask = self.load_mask(index)
        orig_size = (int(image.shape[0]), int(image.shape[1]))
        if mask is not None and mask.shape != image.shape[:2]:
            rotated = mask.shape == image.shape[1::-1]
            raise ValueError(
                f"Mask {self.samples[index][1]} is {mask.shape[0]}×{mask.shape[1]} but image "
                f"{self.samples[index][0]} is {orig_size[0]}×{orig_size[1]} (height×width); a "
                "mask labels its image pixel for pixel, so both must have one size. "
                + ("The image looks rotated by 90° against its mask (saved by an editor that "
                   "applied an EXIF orientation?). " if rotated else "")
                + f"Re-export the image or the mask at the other's size, or "
                f"{self.leave_out_hint(index)}."
            )
        if self.transform is None:
            out: dict[str, Any] = {"image": torch.from_numpy(image).permute(2, 0, 1).float()}
            if mask is not None:
                out["mask"] = torch.from_numpy(mask).long()
        else:
            kwargs = {"image": image} if mask is None else {"image": image, "mask": mask}
            out = dict(self.transform(**kwargs))
            out["image"] = _as_image_tensor(out["image"])
            if mask is None:
                out.pop("mask", None)
            else:
                out["mask"] = torch.as_tensor(np.asarray(out["mask"])).long()
        out["name"] = self.samples[index][2]
        out["orig_size"] = orig_size
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, num_classes={self.num_classes}, "
            f"label_map={self.label_map_name}, masks={self.has_masks})"
        )


def _as_image_tensor(image: Any) -> torch.Tensor:
    # Custom transforms may return H×W×3 numpy arrays; the contract is a float 3×h×w tensor.
    if isinstance(image, torch.Tensor):
        return image.float()
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()


# --------------------------------------------------------------------------------------------
# Layout checks with helpful errors


def _layout_error(
    dataset: str, what: str, path: Path, root: Path, layout: str, hint: str
) -> FileNotFoundError:
    """A FileNotFoundError naming the missing path and showing the expected layout."""
    return FileNotFoundError(
        f"{dataset}: {what} not found: {path}\n"
        f"Expected layout (data root = {root}):\n{layout.rstrip()}\n"
        f"Hint: {hint}"
    )


def _nested_hint(root: Path, children: Sequence[str]) -> str:
    """Points at a sub-folder of ``root`` that looks like the real root (a common mistake)."""
    for child in children:
        if (root / child).is_dir():
            return f" It looks like the dataset root is {root / child}; use that as data.root."
    return ""


def _list_dir(directory: Path) -> set[str]:
    # One listing instead of a stat per sample: fast even for COCO's 118k training images.
    with os.scandir(directory) as entries:
        return {entry.name for entry in entries}


def _read_split(path: Path) -> list[str]:
    """Image ids of a split list: the first token of each non-blank line, in order.

    Split lists may hold "id" or "id extra columns". Blank lines are skipped (they shift nothing);
    an id listed twice is an error naming both lines, since it would count the image twice.

    Raises:
        TextFileError: undecodable bytes or a repeated id (names the file and line).
    """
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        name = line.split()[0]
        if name in first_line:
            raise TextFileError(
                f"{path}:{lineno}: id {name!r} on line {lineno} is already listed on line "
                f"{first_line[name]}; the image would count twice. Remove one of the lines.",
                path, lineno)
        first_line[name] = lineno
        ids.append(name)
    return ids


def _empty_split_error(dataset: str, what: str, source: Path, expected: str, root: Path,
                       layout: str, hint: str) -> EmptySplitError:
    """An EmptySplitError naming the split list or folder, what it should hold and the layout."""
    return EmptySplitError(
        f"{dataset}: {what} {source} holds no {expected}, so the split is empty.\n"
        f"Expected layout (data root = {root}):\n{layout.rstrip()}\n"
        f"Hint: {hint}"
    )


class _MMSegLayoutDataset(SegmentationDataset):
    """Shared code of the mmseg layouts: root/img_dir/<id><img_suffix>, root/ann_dir/<id>...."""

    DATASET_NAME = ""
    LAYOUT = ""
    HINT = ""
    NESTED_ROOTS: tuple[str, ...] = ()

    def _error(self, root: Path, what: str, path: Path) -> FileNotFoundError:
        return _layout_error(
            self.DATASET_NAME, what, path, root, self.LAYOUT,
            self.HINT + _nested_hint(root, self.NESTED_ROOTS),
        )

    def _empty(self, root: Path, what: str, source: Path, expected: str) -> EmptySplitError:
        return _empty_split_error(self.DATASET_NAME, what, source, expected, root, self.LAYOUT,
                                  self.HINT + _nested_hint(root, self.NESTED_ROOTS))

    def _check_dir(self, root: Path, directory: Path, what: str) -> None:
        if not root.is_dir():
            raise self._error(root, "data root", root)
        if not directory.is_dir():
            raise self._error(root, what, directory)

    def _check_split_dirs(self, root: Path, image_dir: Path, mask_dir: Path, split: str,
                          mask_what: str = "annotation folder") -> None:
        """The data root, the split's image folder and its mask folder must exist."""
        self._check_dir(root, image_dir, f"image folder for split {split!r}")
        if not mask_dir.is_dir():
            raise self._error(root, f"{mask_what} for split {split!r}", mask_dir)

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
        images = _list_dir(image_dir)
        mask_listings = [(d, _list_dir(d)) for d in mask_dirs if d.is_dir()]
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


class VOCDataset(_MMSegLayoutDataset):
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
    HINT = (
        "set data.root=/path/to/VOCdevkit/VOC2012 (or paths.data_dir so that "
        "${paths.data_dir}/VOCdevkit/VOC2012 exists). For the 'aug' split (train + SBD) run "
        "scripts/convert_sbd.py first."
    )
    NESTED_ROOTS = ("VOC2012", "VOCdevkit/VOC2012")

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        with_background: bool = False,
        transform: Transform | None = None,
    ) -> None:
        root = Path(root).expanduser()
        image_dir = root / "JPEGImages"
        self._check_dir(root, image_dir, "image folder")
        split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            raise self._error(root, f"split list for split {split!r}", split_file)
        mask_dirs = [root / "SegmentationClass"]
        if split == "aug":
            mask_dirs.insert(0, root / "SegmentationClassAug")
        if not any(d.is_dir() for d in mask_dirs):
            raise self._error(root, "mask folder", mask_dirs[0])
        samples = self._collect(
            root, _read_split(split_file), image_dir, ".jpg", mask_dirs, ".png", split_file
        )
        super().__init__(
            samples,
            num_classes=21 if with_background else 20,
            label_map=None if with_background else reduce_zero_label_map(),
            transform=transform,
            label_map_name=None if with_background else "reduce_zero_label",
            split_source=split_file,
        )
        self.root, self.split = root, split


class PascalContextDataset(_MMSegLayoutDataset):
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
    HINT = (
        "set data.root=/path/to/VOCdevkit/VOC2010 (or paths.data_dir so that "
        "${paths.data_dir}/VOCdevkit/VOC2010 exists) and run scripts/convert_pascal_context.py "
        "to make SegmentationClassContext and the split lists."
    )
    NESTED_ROOTS = ("VOC2010", "VOCdevkit/VOC2010")

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        num_classes: int = 59,
        transform: Transform | None = None,
    ) -> None:
        if num_classes not in (59, 60):
            raise ValueError(f"PASCAL Context has 59 or 60 classes, got num_classes={num_classes}.")
        root = Path(root).expanduser()
        image_dir = root / "JPEGImages"
        self._check_dir(root, image_dir, "image folder")
        mask_dir = root / "SegmentationClassContext"
        if not mask_dir.is_dir():
            raise self._error(root, "mask folder", mask_dir)
        split_file = root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
        if not split_file.is_file():
            raise self._error(root, f"split list for split {split!r}", split_file)
        samples = self._collect(
            root, _read_split(split_file), image_dir, ".jpg", [mask_dir], ".png", split_file
        )
        reduce = num_classes == 59
        super().__init__(
            samples,
            num_classes=num_classes,
            label_map=reduce_zero_label_map() if reduce else None,
            transform=transform,
            label_map_name="reduce_zero_label" if reduce else None,
            split_source=split_file,
        )
        self.root, self.split = root, split


class COCOStuffDataset(_MMSegLayoutDataset):
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
        ids = sorted(name[: -len(".jpg")] for name in _list_dir(image_dir) if name.endswith(".jpg"))
        if not ids:
            raise self._empty(root, "the image folder", image_dir, "*.jpg image")
        samples = self._collect(
            root, ids, image_dir, ".jpg", [mask_dir], "_labelTrainIds.png", image_dir
        )
        super().__init__(samples, num_classes=171, transform=transform, split_source=image_dir)
        self.root, self.split = root, split


class COCOObjectDataset(_MMSegLayoutDataset):
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
        root = Path(root).expanduser()
        image_dir, mask_dir = root / "images" / split, root / "annotations" / split
        self._check_split_dirs(root, image_dir, mask_dir, split)
        masks = _list_dir(mask_dir)
        ids = sorted(name[: -len("_instanceTrainIds.png")] for name in masks
                     if name.endswith("_instanceTrainIds.png"))
        if not ids:
            raise self._empty(root, "the annotation folder", mask_dir,
                              "*_instanceTrainIds.png mask")
        samples = self._collect(root, ids, image_dir, ".jpg", [mask_dir],
                                "_instanceTrainIds.png", mask_dir)
        super().__init__(samples, num_classes=81, transform=transform, split_source=mask_dir)
        self.root, self.split = root, split


class CityscapesDataset(_MMSegLayoutDataset):
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
        root = Path(root).expanduser()
        image_root, mask_root = root / "leftImg8bit" / split, root / "gtFine" / split
        self._check_split_dirs(root, image_root, mask_root, split, "gtFine folder")
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


class ADE20KDataset(_MMSegLayoutDataset):
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
        root = Path(root).expanduser()
        image_dir, mask_dir = root / "images" / split, root / "annotations" / split
        self._check_split_dirs(root, image_dir, mask_dir, split)
        ids = sorted(name[: -len(".jpg")] for name in _list_dir(image_dir) if name.endswith(".jpg"))
        if not ids:
            raise self._empty(root, "the image folder", image_dir, "*.jpg image")
        samples = self._collect(root, ids, image_dir, ".jpg", [mask_dir], ".png", image_dir)
        super().__init__(samples, num_classes=150, label_map=reduce_zero_label_map(),
                         transform=transform, label_map_name="reduce_zero_label",
                         split_source=image_dir)
        self.root, self.split = root, split


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
                raise _layout_error(self.DATASET_NAME, what, path, root, self.LAYOUT, self.HINT)
        class_lines = read_class_lines(classes_file)
        if not class_lines:
            raise ValueError(f"Vocabulary file {classes_file} lists no classes; expected one "
                             "class per line.")

        by_stem: dict[str, Path] = {}
        for name in sorted(_list_dir(image_dir)):
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
                raise _layout_error(
                    self.DATASET_NAME, f"split list for split {split!r}", split_source, root,
                    self.LAYOUT, self.HINT,
                )
            stems = _read_split(split_source)
        if not stems:
            if split is None:
                raise _empty_split_error(
                    self.DATASET_NAME, "the image folder", image_dir,
                    f"image file ({', '.join(IMAGE_EXTENSIONS)})", root, self.LAYOUT, self.HINT)
            raise _empty_split_error(
                self.DATASET_NAME, "the split list", split_source,
                f"image stem (one per line, the file name in {image_dir} without extension)",
                root, self.LAYOUT, self.HINT)

        masks = _list_dir(mask_dir) if mask_dir.is_dir() else None
        samples: list[Sample] = []
        for stem in stems:
            if stem not in by_stem:
                hint = self.HINT
                if Path(stem).stem in by_stem:
                    hint = f"list image stems without extension ({Path(stem).stem!r})."
                raise _layout_error(
                    self.DATASET_NAME, f"image {stem!r} listed in {split_source}",
                    image_dir / f"{stem}.jpg", root, self.LAYOUT, hint,
                )
            mask_path = None
            if masks is not None:
                if f"{stem}.png" not in masks:
                    raise _layout_error(
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


#: Registry of dataset classes by the ``data.dataset`` config key.
DATASETS: dict[str, type[SegmentationDataset]] = {
    "voc": VOCDataset,
    "context": PascalContextDataset,
    "cocostuff": COCOStuffDataset,
    "cocoobject": COCOObjectDataset,
    "cityscapes": CityscapesDataset,
    "ade20k": ADE20KDataset,
    "folder": FolderDataset,
}
