"""Images from anywhere, for prediction and label export: a file, a folder, a glob or a list.

Real photo collections hold grayscale, RGBA, palette and 16-bit files next to broken ones. Every
readable image is converted to 8-bit RGB by :func:`read_rgb` - the one image reader of the
project (prediction, label export and every dataset), so that a file gives the same pixels
whichever entry point reads it. An unreadable file raises :class:`UnreadableImageError`, which
names the file; here it is not an exception that kills a long job but a reported skip
(``ImageListDataset`` returns ``error`` instead of ``image``).
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from src.data.transforms import build_eval_transform

__all__ = [
    "PREDICT_EXTENSIONS",
    "ImageListDataset",
    "UnreadableImageError",
    "list_collate",
    "list_images",
    "describe_error",
    "read_rgb",
    "to_rgb_uint8",
]


class UnreadableImageError(OSError):
    """An image (or mask) file that cannot be decoded: truncated, corrupt, empty, not an image.

    The message names the file and what to do; callers that know more (a dataset knows the
    split list that named the file) re-raise with their own message.

    Attributes:
        path: the file (None after the error crossed a DataLoader worker, which keeps only the
            message).
        cause: the decoder's own words, e.g. ``"OSError: image file is truncated"``.
    """

    def __init__(self, message: str, path: str | Path | None = None, cause: str = "") -> None:
        # One argument only: OSError(a, b) would read (errno, strerror), and torch re-raises a
        # worker's exception as ``type(err)(message)``.
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.cause = cause


# What PIL reads that photo folders commonly hold.
PREDICT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def list_images(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """Resolve ``images=``: one file, a folder (its image files, sorted), a glob, or a list of these.

    Raises:
        FileNotFoundError: nothing matched; the message names the pattern.
        ValueError: two images would write the same output stem.
    """
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    paths: list[Path] = []
    for item in specs:
        path = Path(str(item)).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in PREDICT_EXTENSIONS)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                           if Path(p).is_file() and Path(p).suffix.lower() in PREDICT_EXTENSIONS)
        if not found:
            raise FileNotFoundError(
                f"images={item!s} matched no image file ({', '.join(PREDICT_EXTENSIONS)}). "
                "Give a file, a folder or a quoted glob such as images='photos/**/*.jpg'.")
        paths.extend(found)
    by_stem: dict[str, Path] = {}
    for path in paths:
        if path.stem in by_stem and by_stem[path.stem] != path:
            raise ValueError(f"two images share the output name {path.stem!r}: "
                             f"{by_stem[path.stem]} and {path}; rename one of them.")
        by_stem[path.stem] = path
    return list(by_stem.values())


def to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """Any PIL image → H×W×3 uint8 RGB.

    Palette, grayscale and RGBA images go through PIL's own conversion (alpha is dropped). 16-bit
    and 32-bit images are scaled by their type's range, not clipped at 255 as ``convert("RGB")``
    would, so a 16-bit scan does not come out white.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() <= 65535 else array.max()
        if image.mode == "F":
            top = max(float(array.max()), 1e-12) if array.max() > 1 else 1.0
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    # np.array, not np.asarray: PIL's buffer is read-only, and datasets hand the array to torch
    # and to in-place augmentations.
    return np.array(image.convert("RGB"))


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H×W×3 uint8 RGB (see :func:`to_rgb_uint8`).

    Any mode PIL opens is converted (16/32-bit scaled, CMYK/LA/P/1-bit through PIL, alpha
    dropped); the whole file is decoded here, so a truncated file fails now, not later.

    Raises:
        UnreadableImageError: the file is missing, truncated, corrupt or not an image; the
            message names the file and PIL's cause.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb_uint8(image)
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError...
        cause = describe_error(err)
        raise UnreadableImageError(
            f"cannot read image {path}: {cause}. Re-download the file or convert it (open it in "
            "an image viewer and save it again as PNG or JPEG).", path, cause) from err


def describe_error(err: BaseException) -> str:
    """``"OSError: image file is truncated"``: a decoder error in one line, for messages."""
    return f"{type(err).__name__}: {err}".strip().rstrip(".")


class ImageListDataset(Dataset):
    """Images to label, resized and normalised; unreadable files become reported skips.

    Args:
        paths: image files (or, with ``reader``, one source id per image, e.g. a dataset's).
        scale: ``(long_max, short_max)`` keep-ratio rescale as in evaluation (mmseg semantics), or
            None to keep the native resolution (the sliding window then covers large images).
        mean, std: per-channel normalisation in [0, 1] units (the model's own).
        names: output stems (default: the file stems).
        reader: ``index -> H×W×3 uint8`` for sources that are not plain files (default
            :func:`read_rgb` of ``paths[index]``).

    Items are dicts: ``name``, ``path``, and either ``image`` (3×h×w float32, normalised),
    ``rgb`` (the H×W×3 uint8 original, for overlays and exports) and ``orig_size`` (H, W), or
    ``error`` (why the image was skipped).
    """

    def __init__(self, paths: Sequence[str | Path], scale: Sequence[int] | None,
                 mean: Sequence[float], std: Sequence[float],
                 names: Sequence[str] | None = None,
                 reader: Callable[[int], np.ndarray] | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.names = list(names) if names is not None else [p.stem for p in self.paths]
        self.reader = reader
        self.scale = None if scale is None else tuple(int(s) for s in scale)
        self.transform = None if self.scale is None else build_eval_transform(self.scale, mean, std)
        self.mean = torch.tensor([float(m) for m in mean]).view(3, 1, 1)
        self.std = torch.tensor([float(s) for s in std]).view(3, 1, 1)

    @classmethod
    def from_dataset(cls, dataset, scale, mean, std) -> "ImageListDataset":
        """The images of a configured ``SegmentationDataset`` (any layout, the world included)."""
        paths = [path for path, _, _ in dataset.samples]
        return cls(paths, scale, mean, std, names=dataset.names, reader=dataset.load_image)

    def subset(self, keep: Sequence[int]) -> "ImageListDataset":
        """Only the images at ``keep`` (resume)."""
        reader = None if self.reader is None else _Remapped(self.reader, list(keep))
        clone = ImageListDataset.__new__(ImageListDataset)
        clone.__dict__.update(self.__dict__)
        clone.paths = [self.paths[i] for i in keep]
        clone.names = [self.names[i] for i in keep]
        clone.reader = reader
        return clone

    def prepare(self, rgb: np.ndarray) -> torch.Tensor:
        """H×W×3 uint8 → the model's 3×h×w float32 input (rescaled unless native, normalised)."""
        if self.transform is None:
            image = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float()
            return image.div_(255.0).sub_(self.mean).div_(self.std)
        return self.transform(image=rgb)["image"]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        item: dict[str, Any] = {"name": self.names[index], "path": str(path)}
        try:
            rgb = self.reader(index) if self.reader is not None else read_rgb(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is a reported skip
            item["error"] = f"{type(err).__name__}: {err}"
            return item
        item["image"] = self.prepare(rgb)
        item["rgb"] = rgb
        item["orig_size"] = tuple(rgb.shape[:2])
        return item


class _Remapped:
    """``reader`` seen through an index list (picklable, unlike a lambda, for spawned workers)."""

    def __init__(self, reader: Callable[[int], np.ndarray], keep: list[int]) -> None:
        self.reader, self.keep = reader, keep

    def __call__(self, index: int) -> np.ndarray:
        return self.reader(self.keep[index])


def list_collate(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep items as a list: images differ in size, and skips carry no tensor."""
    return batch
