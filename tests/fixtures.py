"""Writers of tiny datasets in the real on-disk formats, for the tests.

Each writer creates JPEG images, single-channel PNG masks (palette PNGs for VOC, as the real
``SegmentationClass`` files are) and split lists in the layout the matching dataset class reads,
deterministically from ``seed``, and returns the dataset root to pass as ``data.root``.
Sizes are ``(height, width)``; every other image is transposed so that images differ in size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from src.data.transforms import IGNORE_INDEX
from src.utils.visualize import voc_palette  # re-exported for the fixtures' users

__all__ = [
    "voc_palette",
    "write_ade20k_fixture",
    "write_cityscapes_fixture",
    "write_coco_instances_fixture",
    "write_coco_object_fixture",
    "write_cocostuff_fixture",
    "write_context_fixture",
    "write_folder_fixture",
    "write_voc_fixture",
]


def _size(size: Sequence[int], index: int) -> tuple[int, int]:
    h, w = int(size[0]), int(size[1])
    return (h, w) if index % 2 == 0 else (w, h)


def _random_label_map(
    rng: np.random.Generator,
    shape: tuple[int, int],
    labels: Sequence[int],
    background: int | None,
    n_regions: int = 3,
    border: bool = False,
) -> np.ndarray:
    """An H×W uint8 map of a background plus a few rectangles of the given labels.

    With ``border`` the rectangles get a 1-pixel 255 outline, like VOC's void contours.
    """
    h, w = shape
    fill = background if background is not None else int(rng.choice(labels))
    label_map = np.full((h, w), fill, dtype=np.uint8)
    for label in rng.choice(labels, size=min(n_regions, len(labels)), replace=False):
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        y1, x1 = int(rng.integers(y0 + h // 4, h + 1)), int(rng.integers(x0 + w // 4, w + 1))
        if border:
            label_map[y0:y1, x0:x1] = IGNORE_INDEX
            label_map[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = label
        else:
            label_map[y0:y1, x0:x1] = label
    return label_map


def _noise_image(rng: np.random.Generator, shape: tuple[int, int]) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8))


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _save_palette_png(label_map: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(label_map)  # mode L; putpalette turns it into a P (palette) image
    im.putpalette(voc_palette())
    im.save(path)


def _save_gray_png(label_map: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label_map).save(path)  # uint8 2-D -> mode L


def _save_jpeg(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)


def write_voc_fixture(
    root: str | Path, n: int = 4, size: Sequence[int] = (40, 56), seed: int = 0
) -> Path:
    """Writes a tiny ``VOCdevkit/VOC2012`` (train/val/trainval/aug lists, palette masks).

    The first ``n // 2`` ids form ``train``, the rest ``val``. ``aug`` is ``train`` plus two
    SBD-only ids whose masks exist only in ``SegmentationClassAug``; the first train id has no
    ``SegmentationClassAug`` mask, so it exercises the fallback to ``SegmentationClass``. VOC masks
    have background 0, classes 1..20 and 255 outlines; SBD masks have no outlines.

    Args:
        root: Folder to write into.
        n: Number of VOC images (at least 2).
        size: ``(height, width)`` of the even-numbered images (odd ones are transposed).
        seed: Random seed.

    Returns:
        The dataset root ``root/VOCdevkit/VOC2012``.
    """
    if n < 2:
        raise ValueError("write_voc_fixture needs n >= 2 (one train and one val image).")
    rng = np.random.default_rng(seed)
    base = Path(root) / "VOCdevkit" / "VOC2012"
    ids = [f"2007_{i:06d}" for i in range(n)]
    sbd_ids = [f"2008_{100000 + i:06d}" for i in range(2)]
    train, val = ids[: n // 2], ids[n // 2 :]
    for i, name in enumerate(ids + sbd_ids):
        shape = _size(size, i)
        _save_jpeg(_noise_image(rng, shape), base / "JPEGImages" / f"{name}.jpg")
        if name in ids:
            label_map = _random_label_map(rng, shape, range(1, 21), background=0, border=True)
            _save_palette_png(label_map, base / "SegmentationClass" / f"{name}.png")
        if name in sbd_ids or name in train[1:]:
            label_map = _random_label_map(rng, shape, range(1, 21), background=0)
            _save_palette_png(label_map, base / "SegmentationClassAug" / f"{name}.png")
    lists = base / "ImageSets" / "Segmentation"
    _write_lines(lists / "train.txt", train)
    _write_lines(lists / "val.txt", val)
    _write_lines(lists / "trainval.txt", ids)
    _write_lines(lists / "aug.txt", train + sbd_ids)
    return base


def write_context_fixture(
    root: str | Path, n: int = 4, size: Sequence[int] = (40, 56), seed: int = 0
) -> Path:
    """Writes a tiny ``VOCdevkit/VOC2010`` with ``SegmentationClassContext`` (0..59) masks.

    Args:
        root: Folder to write into.
        n: Number of images (at least 2); the first ``n // 2`` are ``train``, the rest ``val``.
        size: ``(height, width)`` of the even-numbered images (odd ones are transposed).
        seed: Random seed.

    Returns:
        The dataset root ``root/VOCdevkit/VOC2010``.
    """
    if n < 2:
        raise ValueError("write_context_fixture needs n >= 2 (one train and one val image).")
    rng = np.random.default_rng(seed)
    base = Path(root) / "VOCdevkit" / "VOC2010"
    ids = [f"2008_{i:06d}" for i in range(n)]
    for i, name in enumerate(ids):
        shape = _size(size, i)
        _save_jpeg(_noise_image(rng, shape), base / "JPEGImages" / f"{name}.jpg")
        label_map = _random_label_map(rng, shape, range(1, 60), background=0, n_regions=4)
        _save_gray_png(label_map, base / "SegmentationClassContext" / f"{name}.png")
    lists = base / "ImageSets" / "SegmentationContext"
    _write_lines(lists / "train.txt", ids[: n // 2])
    _write_lines(lists / "val.txt", ids[n // 2 :])
    return base


def write_cocostuff_fixture(
    root: str | Path, n: int = 4, size: Sequence[int] = (40, 56), seed: int = 0
) -> Path:
    """Writes a tiny ``coco_stuff164k`` with ``*_labelTrainIds.png`` masks (0..170, 255).

    Args:
        root: Folder to write into.
        n: Number of images (at least 2); the first ``n // 2`` go to ``train2017``, the rest to
            ``val2017``.
        size: ``(height, width)`` of the even-numbered images (odd ones are transposed).
        seed: Random seed.

    Returns:
        The dataset root ``root/coco_stuff164k``.
    """
    if n < 2:
        raise ValueError("write_cocostuff_fixture needs n >= 2 (one train and one val image).")
    rng = np.random.default_rng(seed)
    base = Path(root) / "coco_stuff164k"
    for i in range(n):
        split = "train2017" if i < n // 2 else "val2017"
        name = f"{i + 1:012d}"
        shape = _size(size, i)
        _save_jpeg(_noise_image(rng, shape), base / "images" / split / f"{name}.jpg")
        # Stuff background, things on top, and some unlabelled (255) pixels as in COCO-Stuff.
        label_map = _random_label_map(rng, shape, range(0, 171), background=None, n_regions=4)
        label_map[: max(1, shape[0] // 10), : max(1, shape[1] // 10)] = IGNORE_INDEX
        _save_gray_png(label_map, base / "annotations" / split / f"{name}_labelTrainIds.png")
    return base


def write_coco_instances_fixture(
    root: str | Path, n: int = 2, size: Sequence[int] = (40, 56), seed: int = 0
) -> Path:
    """Writes COCO 2017 ``val2017`` images and an ``instances_val2017.json`` in the real format.

    Each image gets two rectangular instances given as polygons (a large one and a small one on
    top of it) and one square given as an uncompressed RLE, with COCO's non-contiguous category
    ids (1, 3 and 90). Returns the root that holds ``images/`` and ``annotations/``.
    """
    import json

    rng = np.random.default_rng(seed)
    base = Path(root) / "coco_stuff164k"
    categories = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"},
                  {"id": 90, "name": "toothbrush"}]
    images, annotations = [], []
    for i in range(n):
        h, w = _size(size, i)
        name = f"{i + 1:012d}"
        _save_jpeg(_noise_image(rng, (h, w)), base / "images" / "val2017" / f"{name}.jpg")
        images.append({"id": i + 1, "file_name": f"{name}.jpg", "height": h, "width": w})
        big = [2.0, 2.0, w - 2.0, 2.0, w - 2.0, h - 2.0, 2.0, h - 2.0]
        small = [4.0, 4.0, 12.0, 4.0, 12.0, 10.0, 4.0, 10.0]
        annotations.append({"id": 10 * i + 1, "image_id": i + 1, "category_id": 1,
                            "segmentation": [big], "area": (w - 4.0) * (h - 4.0),
                            "iscrowd": 0})
        annotations.append({"id": 10 * i + 2, "image_id": i + 1, "category_id": 3,
                            "segmentation": [small], "area": 48.0, "iscrowd": 0})
        square = np.zeros((h, w), dtype=np.uint8)
        square[h - 8: h - 3, w - 8: w - 3] = 1
        # Uncompressed RLE counts run down columns (Fortran order), starting with zeros.
        flat = square.flatten(order="F")
        counts, current, run = [], 0, 0
        for value in flat:
            if value != current:
                counts.append(run)
                current, run = value, 0
            run += 1
        counts.append(run)
        annotations.append({"id": 10 * i + 3, "image_id": i + 1, "category_id": 90,
                            "segmentation": {"counts": counts, "size": [h, w]}, "area": 25.0,
                            "iscrowd": 1})
    ann_file = base / "annotations" / "instances_val2017.json"
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations,
                                    "categories": categories}))
    return base


def write_coco_object_fixture(
    root: str | Path, n: int = 2, size: Sequence[int] = (40, 56), seed: int = 0
) -> Path:
    """Writes a tiny COCO-Object set: ``val2017`` images and ``*_instanceTrainIds.png`` (0..80).

    COCO-Object shares COCO-Stuff's images: val images that already exist (from
    :func:`write_cocostuff_fixture`) get masks, and only missing ones are created.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "coco_stuff164k"
    image_dir = base / "images" / "val2017"
    existing = sorted(p.stem for p in image_dir.glob("*.jpg")) if image_dir.is_dir() else []
    names = existing[:n] if existing else [f"{i + 1:012d}" for i in range(n)]
    for i, name in enumerate(names):
        shape = _size(size, i)
        image_path = image_dir / f"{name}.jpg"
        if not image_path.exists():
            _save_jpeg(_noise_image(rng, shape), image_path)
        with Image.open(image_path) as im:
            shape = (im.height, im.width)
        label_map = _random_label_map(rng, shape, range(1, 81), background=0, n_regions=3)
        _save_gray_png(label_map, base / "annotations" / "val2017" / f"{name}_instanceTrainIds.png")
    return base


def write_cityscapes_fixture(
    root: str | Path, n: int = 2, size: Sequence[int] = (32, 64), seed: int = 0
) -> Path:
    """Writes a tiny ``cityscapes`` (val, two cities) with ``*_gtFine_labelTrainIds.png``."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "cityscapes"
    for i in range(n):
        city = ("frankfurt", "lindau")[i % 2]
        stem = f"{city}_{i:06d}_000019"
        shape = _size(size, 0)
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(
            _mkparent(base / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png"))
        label_map = _random_label_map(rng, shape, range(19), background=None, n_regions=4)
        label_map[-2:] = IGNORE_INDEX  # the ego-vehicle border is void in Cityscapes
        _save_gray_png(label_map, base / "gtFine" / "val" / city / f"{stem}_gtFine_labelTrainIds.png")
    return base


def write_ade20k_fixture(
    root: str | Path, n: int = 2, size: Sequence[int] = (40, 56), seed: int = 0
) -> Path:
    """Writes a tiny ``ADEChallengeData2016`` (validation): raw masks 0 (other) and 1..150."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "ADEChallengeData2016"
    for i in range(n):
        name, shape = f"ADE_val_{i + 1:08d}", _size(size, i)
        _save_jpeg(_noise_image(rng, shape), base / "images" / "validation" / f"{name}.jpg")
        label_map = _random_label_map(rng, shape, range(1, 151), background=0, n_regions=3)
        _save_gray_png(label_map, base / "annotations" / "validation" / f"{name}.png")
    return base


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# Colours for class names that name (or strongly suggest) a colour, so that a CLIP demo on the
# folder fixture has something real to recognise; other classes get palette colours.
_NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "orange": (250, 140, 20),
    "purple": (130, 40, 170),
    "pink": (250, 150, 190),
    "brown": (120, 75, 30),
    "black": (15, 15, 15),
    "white": (240, 240, 240),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "sky": (120, 180, 240),
    "grass": (60, 160, 40),
    "water": (30, 90, 170),
    "sea": (20, 80, 160),
    "snow": (245, 245, 250),
    "sand": (220, 200, 150),
    "road": (90, 90, 95),
    "tree": (30, 100, 30),
    "wall": (200, 190, 170),
}


def _class_colour(class_line: str, index: int) -> np.ndarray:
    dataset_name, _, prompt = class_line.partition(":")
    for word in (prompt.split(",")[0].strip() or dataset_name.strip()).lower().split():
        if word in _NAMED_COLOURS:
            return np.array(_NAMED_COLOURS[word], dtype=np.float32)
    palette = voc_palette()
    # Skip palette entry 0 (black), which would make the first class invisible.
    return np.array(palette[3 * (index + 1) : 3 * (index + 2)], dtype=np.float32)


def write_folder_fixture(
    root: str | Path,
    class_names: Sequence[str] = ("red", "green", "blue"),
    n: int = 4,
    size: Sequence[int] = (40, 56),
    seed: int = 0,
    with_masks: bool = True,
    with_ignore: bool = True,
) -> Path:
    """Writes a folder dataset whose image content is correlated with the mask.

    Every class region is filled with the class's colour plus Gaussian noise (colour words such as
    "red" or "sky" get a matching colour), so a model - or CLIP with a colour vocabulary - can
    actually segment it. Also writes ``classes.txt`` (the given lines verbatim) and
    ``splits/train.txt`` / ``splits/val.txt`` (first ``n // 2`` stems / the rest).

    Args:
        root: The folder to write (it becomes the dataset root).
        class_names: Vocabulary lines (``"name"`` or ``"name: prompt"``).
        n: Number of images.
        size: ``(height, width)`` of the even-numbered images (odd ones are transposed).
        seed: Random seed.
        with_masks: Write ``masks/``; without it the dataset is image-only.
        with_ignore: Mark a thin band of pixels as 255 (ignore) in each mask.

    Returns:
        ``root`` as a Path.
    """
    if not class_names:
        raise ValueError("write_folder_fixture needs at least one class name.")
    rng = np.random.default_rng(seed)
    base = Path(root)
    _write_lines(base / "classes.txt", list(class_names))
    colours = np.stack([_class_colour(line, i) for i, line in enumerate(class_names)])
    stems = [f"img_{i:03d}" for i in range(n)]
    for i, stem in enumerate(stems):
        shape = _size(size, i)
        labels = _random_label_map(
            rng, shape, range(len(class_names)), background=None, n_regions=2
        )
        pixels = colours[labels] + rng.normal(0.0, 12.0, size=(*shape, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        _save_jpeg(image, base / "images" / f"{stem}.jpg")
        if with_masks:
            mask = labels.copy()
            if with_ignore:
                mask[-1, :] = IGNORE_INDEX
            _save_palette_png(mask, base / "masks" / f"{stem}.png")
    _write_lines(base / "splits" / "train.txt", stems[: n // 2])
    _write_lines(base / "splits" / "val.txt", stems[n // 2 :])
    return base
