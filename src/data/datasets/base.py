"""The dataset base class: a list of (image, mask) files, label mapping and mask validation.

Label convention: mask pixels are class indices ``0..C-1`` in the vocabulary's order and 255 means
ignore. Raw mask values go through an optional label map first (e.g. ``reduce_zero_label``:
background 0 → 255, class k → k-1) and are then validated.

Every sample is returned as a dict::

    image:     float32 tensor 3×h×w (rescaled and normalised by the transform)
    mask:      int64 tensor H×W at the ORIGINAL resolution (eval transform) or h×w (train crop);
               absent when the sample has no mask
    name:      str, the sample id (file stem)
    orig_size: (H, W) of the original image

Images go through the project's one reader (:func:`src.data.images.read_rgb`: any PIL mode,
16-bit scaled, never clipped to white); an unreadable image or mask raises
:class:`~src.data.images.UnreadableImageError` naming the file and the split list to remove it
from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from src.data.datasets.errors import EmptySplitError
from src.data.images import UnreadableImageError, describe_error, read_rgb
from src.data.transforms import IGNORE_INDEX

__all__ = ["Sample", "SegmentationDataset", "Transform", "reduce_zero_label_map"]

#: ``(image_path, mask_path or None, name)``.
Sample = tuple[Path, Path | None, str]

#: ``transform(image=H×W×3 uint8, mask=H×W uint8 | absent) -> dict(image=..., mask=...)``.
Transform = Callable[..., Mapping[str, Any]]


def reduce_zero_label_map() -> dict[int, int]:
    """mmseg ``reduce_zero_label``: 0 (background) → 255, k → k-1 for 1..254, 255 stays 255."""
    return {0: IGNORE_INDEX, **{k: k - 1 for k in range(1, 255)}}


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
