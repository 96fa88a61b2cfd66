#!/usr/bin/env python
"""Convert COCO-Stuff 164k label maps to the mmseg ``*_labelTrainIds.png`` layout.

Input (the official ``stuffthingmaps_trainval2017.zip``, unzipped)::

    <stuff-root>/
        train2017/<image id>.png   # uint8, pixel = COCO category id - 1 (0..181), 255 = unlabeled
        val2017/<image id>.png

Output (what ``mmseg``'s ``COCOStuffDataset`` / this project's COCO-Stuff dataset reads)::

    <out-root>/
        annotations/train2017/<image id>_labelTrainIds.png   # 0..170 train ids, 255 = ignore
        annotations/val2017/<image id>_labelTrainIds.png
        images/{train2017,val2017}  # only with --images-root (symlinks); otherwise move/link
                                    # the COCO 2017 images there yourself

The raw -> train id table reproduces mmseg's ``tools/convert_datasets/coco_stuff164k.py``
(171 classes: 80 things followed by 91 stuff classes), except that raw values that are not a
valid COCO-Stuff class (the 11 unused ids, or anything else outside 0..181) become 255 instead
of being passed through unchanged.

Every file is written atomically (temp file + ``os.replace``); re-running skips outputs that
already exist unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make ``src`` and ``scripts`` importable
    sys.path.insert(0, str(ROOT))

from scripts._common import add_common_args, fail, pending, warn  # noqa: E402
from src.utils.io import parallel_map, save_png_atomic  # noqa: E402

SPLITS: tuple[str, ...] = ("train2017", "val2017")
OUT_SUFFIX = "_labelTrainIds.png"
IGNORE_INDEX = 255
NUM_RAW_IDS = 182  # raw pixel values 0..181 = COCO category ids 1..182 minus one
# Number of label maps in the full release (118,287 train + 5,000 val); only used for a warning.
EXPECTED_TOTAL = 123_287

# COCO defines 91 "thing" category ids (1..91) but only 80 of them were ever annotated. The 11
# ids below never occur in the COCO / COCO-Stuff annotations, so they get no train id. Values are
# the *raw* pixel values (COCO id - 1):
#   11 street sign (12), 25 hat (26), 28 shoe (29), 29 eye glasses (30), 44 plate (45),
#   65 mirror (66), 67 window (68), 68 desk (69), 70 door (71), 82 blender (83),
#   90 hair brush (91).
UNUSED_RAW_IDS: frozenset[int] = frozenset({11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90})
# The remaining 171 ids (80 things: raw 0..89, 91 stuff: raw 91..181) map, in increasing order,
# to the contiguous train ids 0..170, e.g. 0 (person) -> 0, 91 (banner) -> 80, 181 (wood) -> 170.
USED_RAW_IDS: tuple[int, ...] = tuple(i for i in range(NUM_RAW_IDS) if i not in UNUSED_RAW_IDS)
NUM_CLASSES = len(USED_RAW_IDS)
assert NUM_CLASSES == 171


def build_lut() -> np.ndarray:
    """256-entry uint8 lookup table raw value -> train id (everything invalid -> 255)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[list(USED_RAW_IDS)] = np.arange(NUM_CLASSES, dtype=np.uint8)
    return lut


RAW_TO_TRAIN_ID: np.ndarray = build_lut()

# --------------------------------------------------------------------------- conversion


def convert_array(raw: np.ndarray) -> np.ndarray:
    """Map a raw COCO-Stuff label array (values 0..181, 255) to train ids (0..170, 255)."""
    if raw.dtype != np.uint8:
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            raise ValueError(f"raw label values outside 0..255 (dtype {raw.dtype})")
        raw = raw.astype(np.uint8)
    return RAW_TO_TRAIN_ID[raw]


def convert_file(task: tuple[str, str]) -> str:
    """Worker: convert one raw PNG ``src`` to ``dst``. Returns ``dst``."""
    src, dst = task
    with Image.open(src) as img:
        if img.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(
                f"{src}: expected a single-channel label PNG (mode L/P), got mode {img.mode}"
            )
        raw = np.asarray(img)
    save_png_atomic(Image.fromarray(convert_array(raw)), Path(dst))
    return dst


def link_images(images_root: Path, out_root: Path, splits: Sequence[str]) -> None:
    """Symlink ``<images_root>/<split>`` to ``<out_root>/images/<split>`` (skip if present)."""
    for split in splits:
        src = images_root / split
        if not src.is_dir():
            fail(
                f"image folder not found: {src}\n"
                f"  --images-root must contain the COCO 2017 image folders "
                f"{', '.join(s + '/' for s in splits)} (from train2017.zip / val2017.zip)"
            )
        dst = out_root / "images" / split
        if dst.exists() or dst.is_symlink():
            print(f"[skip] {dst} already exists")
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src.resolve(), dst, target_is_directory=True)
        print(f"[link] {dst} -> {src.resolve()}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convert_coco_stuff.py",
        description=(
            "Convert COCO-Stuff 164k label maps (stuffthingmaps_trainval2017: pixel = COCO id - 1, "
            "0..181, 255 unlabeled) to mmseg's 171-class train ids "
            "(<out-root>/annotations/<split>/<id>_labelTrainIds.png, 0..170, 255 ignore)."
        ),
        epilog=(
            "Images are not converted: move or link the COCO 2017 train2017/ and val2017/ image "
            "folders to <out-root>/images/ yourself, or pass --images-root to have them "
            "symlinked. Outputs that already exist are skipped unless --overwrite is given."
        ),
    )
    p.add_argument(
        "--stuff-root",
        type=Path,
        required=True,
        help="unzipped stuffthingmaps_trainval2017/ folder containing train2017/ and val2017/ "
        "raw label PNGs",
    )
    p.add_argument(
        "--out-root",
        type=Path,
        required=True,
        help="output coco_stuff164k/ folder (annotations/ is written here)",
    )
    p.add_argument(
        "--images-root",
        type=Path,
        default=None,
        help="optional folder holding the COCO 2017 images as train2017/ and val2017/; they are "
        "symlinked to <out-root>/images/<split>",
    )
    p.add_argument(
        "--splits",
        nargs="+",
        default=list(SPLITS),
        choices=list(SPLITS),
        help="which splits to convert (default: both)",
    )
    add_common_args(p, "files")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stuff_root: Path = args.stuff_root
    out_root: Path = args.out_root
    splits: list[str] = list(dict.fromkeys(args.splits))

    layout = (
        "expected layout: <stuff-root>/{train2017,val2017}/<image id>.png "
        "(the unzipped stuffthingmaps_trainval2017.zip)"
    )
    if not stuff_root.is_dir():
        fail(f"--stuff-root not found: {stuff_root}\n  {layout}")
    for split in splits:
        if not (stuff_root / split).is_dir():
            fail(f"raw label folder not found: {stuff_root / split}\n  {layout}")

    total = 0
    for split in splits:
        in_dir = stuff_root / split
        out_dir = out_root / "annotations" / split
        srcs = sorted(
            p
            for p in in_dir.glob("*.png")
            if not p.name.startswith(".") and not p.name.endswith(OUT_SUFFIX)
        )
        if not srcs:
            fail(f"no raw label PNGs in {in_dir}\n  {layout}")
        total += len(srcs)
        out_dir.mkdir(parents=True, exist_ok=True)
        tasks = [(str(s), str(out_dir / f"{s.stem}{OUT_SUFFIX}")) for s in srcs]
        todo = pending(tasks, args.overwrite)
        print(f"[{split}] {len(srcs)} label maps, {len(tasks) - len(todo)} already converted")
        parallel_map(convert_file, todo, args.nproc, f"coco-stuff {split}", unit="img")

    if set(splits) == set(SPLITS) and total != EXPECTED_TOTAL:
        warn(
            f"found {total} label maps, the full COCO-Stuff 164k release has {EXPECTED_TOTAL}"
        )

    if args.images_root is not None:
        link_images(args.images_root, out_root, splits)
    print(f"Done: {out_root / 'annotations'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
