#!/usr/bin/env python
"""Convert PASCAL-Context annotations to the mmseg 60-class (background + 59) layout.

Output (what mmseg's ``PascalContextDataset`` / this project's PASCAL-Context dataset reads)::

    <voc-root>/SegmentationClassContext/<id>.png      # uint8: 0 = background, 1..59 = classes
    <voc-root>/ImageSets/SegmentationContext/train.txt  # 4,998 ids
    <voc-root>/ImageSets/SegmentationContext/val.txt    # 5,105 ids

Two raw formats are supported (``--format``):

``detail``  The PASCAL-in-Detail ``trainval_merged.json`` used by mmseg's
            ``tools/convert_datasets/pascal_context.py``. Relevant keys: ``images`` (``image_id``
            e.g. 2008000002, ``file_name`` "2008_000002.jpg", ``height``, ``width``, ``phase``
            "train"/"val"/"test") and ``annos_segmentation`` (``image_id``, ``category_id``,
            ``segmentation`` = COCO RLE ``{"size": [h, w], "counts": ...}``). As in the Detail
            API's ``getMask(img)``, the annotations of an image are painted in file order (later
            ones win), then category ids are mapped to 0..59. RLE (compressed string or
            uncompressed list counts) is decoded here in numpy; neither ``detail`` nor
            ``pycocotools`` is needed. The train/val split comes from ``phase``.

``mat``     The official PASCAL-Context release ``trainval.tar.gz``: ``trainval/<id>.mat`` with
            a ``LabelMap`` (H x W, ids of the 459-class list, 0 = unlabeled). The ids are the same
            as Detail's ``category_id``; if a ``labels.txt`` ("<id>: <name>") is found
            (``--labels``, or next to / one level above the .mat folder) the 59 classes are
            located by name instead. Every other id becomes 0 (background). The train/val split
            comes from ``<voc-root>/ImageSets/Main/{train,val}.txt`` (VOC2010), restricted to ids
            with a .mat.

Every file is written atomically (temp file + ``os.replace``); re-running skips labels that
already exist unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make ``src`` and ``scripts`` importable
    sys.path.insert(0, str(ROOT))

from scripts._common import add_common_args, fail, pending, warn  # noqa: E402
from src.utils.io import parallel_map, read_lines, save_png_atomic, write_lines_atomic  # noqa: E402

# The 59 PASCAL-Context classes with their id in the 459-class list / Detail ``category_id``.
# Sorted by id (the names are alphabetical in the 459 list too), so the train id of a class is its
# position + 1; 0 is background. This is exactly mmseg's ``_mapping`` table (0 + these ids,
# sorted, mapped to 0..59).
CONTEXT59: tuple[tuple[str, int], ...] = (
    ("aeroplane", 2), ("bag", 9), ("bed", 18), ("bedclothes", 19), ("bench", 22),
    ("bicycle", 23), ("bird", 25), ("boat", 31), ("book", 33), ("bottle", 34),
    ("building", 44), ("bus", 45), ("cabinet", 46), ("car", 59), ("cat", 65),
    ("ceiling", 68), ("chair", 72), ("cloth", 80), ("computer", 85), ("cow", 98),
    ("cup", 104), ("curtain", 105), ("dog", 113), ("door", 115), ("fence", 144),
    ("floor", 158), ("flower", 159), ("food", 162), ("grass", 187), ("ground", 189),
    ("horse", 207), ("keyboard", 220), ("light", 232), ("motorbike", 258), ("mountain", 259),
    ("mouse", 260), ("person", 284), ("plate", 295), ("platform", 296), ("pottedplant", 308),
    ("road", 324), ("rock", 326), ("sheep", 347), ("shelves", 349), ("sidewalk", 354),
    ("sign", 355), ("sky", 360), ("snow", 366), ("sofa", 368), ("table", 397),
    ("track", 415), ("train", 416), ("tree", 420), ("truck", 424), ("tvmonitor", 427),
    ("wall", 440), ("water", 445), ("window", 454), ("wood", 458),
)  # fmt: skip
CONTEXT59_NAMES: tuple[str, ...] = tuple(n for n, _ in CONTEXT59)
CONTEXT59_IDS: tuple[int, ...] = tuple(i for _, i in CONTEXT59)
assert len(CONTEXT59) == 59 and list(CONTEXT59_IDS) == sorted(CONTEXT59_IDS)

LUT_SIZE = 1 << 16  # raw ids are < 65536 (LabelMap is uint16)
EXPECTED_SPLIT_LEN = {"train": 4998, "val": 5105}  # only used for a warning

# --------------------------------------------------------------------------- small helpers


def read_ids(path: Path) -> list[str]:
    """The first field of each non-empty line (VOC ``ImageSets/Main`` lists may have two)."""
    return [line.split()[0] for line in read_lines(path)]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# --------------------------------------------------------------------------- id mapping


def build_lut(class_ids: Sequence[int] = CONTEXT59_IDS) -> np.ndarray:
    """uint8 lookup table raw id -> 0..59 (``class_ids[k]`` -> k + 1, everything else -> 0)."""
    lut = np.zeros(LUT_SIZE, dtype=np.uint8)
    for k, raw in enumerate(class_ids):
        lut[raw] = k + 1
    return lut


def parse_labels_txt(path: Path) -> dict[str, int]:
    """Parse a PASCAL-Context ``labels.txt`` ("<id>: <name>" per line) to {normalized name: id}."""
    out: dict[str, int] = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            idx, sep, name = line.partition(":")
            if not sep or not idx.strip().isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<id>: <name>', got {line!r}")
            out.setdefault(_norm(name), int(idx))
    return out


def class_ids_from_labels(labels: dict[str, int], source: Path) -> list[int]:
    """Locate the 59 classes in a parsed labels.txt; unknown names fall back to the built-in id."""
    ids: list[int] = []
    missing, moved = [], []
    for name, default in CONTEXT59:
        found = labels.get(_norm(name))
        if found is None:
            missing.append(name)
            ids.append(default)
        else:
            if found != default:
                moved.append(f"{name}: {found} (built-in {default})")
            ids.append(found)
    if missing:
        warn(f"{source}: no entry for {missing}; using the built-in ids for them")
    if moved:
        warn(f"{source}: ids differ from the built-in table, using labels.txt: {moved}")
    if len(set(ids)) != len(ids):
        fail(f"{source}: two of the 59 classes resolve to the same id: {ids}")
    return ids


# --------------------------------------------------------------------------- COCO RLE


def rle_string_to_counts(s: str | bytes) -> list[int]:
    """Decode a compressed COCO RLE string to run lengths.

    Each run length is stored as little-endian groups of 5 bits, one printable character
    (value + 48) per group; bit 0x20 means "another group follows", and bit 0x10 of the last
    group is the sign. From the 4th run on, the value stored is the difference to the run two
    places earlier.
    """
    data = s.encode() if isinstance(s, str) else bytes(s)
    counts: list[int] = []
    p, n = 0, len(data)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("truncated compressed RLE string")
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Decode one COCO RLE dict (compressed or uncompressed counts) to an H x W bool mask."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = rle_string_to_counts(counts)
    runs = np.asarray(counts, dtype=np.int64)
    if (runs < 0).any() or runs.sum() != h * w:
        raise ValueError(f"RLE run lengths sum to {runs.sum()}, expected {h}*{w}={h * w}")
    values = np.arange(len(runs)) % 2 == 1  # runs alternate 0, 1, 0, ... starting with zeros
    flat = np.repeat(values, runs)
    return flat.reshape((h, w), order="F")  # COCO RLE is column-major


def decode_segmentation(seg: Any, h: int, w: int) -> np.ndarray:
    """Decode a Detail ``segmentation`` field (RLE dict or list of RLE dicts) to a bool mask."""
    if isinstance(seg, dict):
        m = decode_rle(seg)
    elif isinstance(seg, list) and seg and all(isinstance(s, dict) for s in seg):
        m = np.zeros((h, w), dtype=bool)
        for s in seg:
            m |= decode_rle(s)
    else:
        raise ValueError(
            "unsupported segmentation encoding (expected a COCO RLE dict {'size', 'counts'}; "
            "polygons are not used by trainval_merged.json)"
        )
    if m.shape != (h, w):
        raise ValueError(f"RLE size {m.shape} does not match image size {(h, w)}")
    return m


# --------------------------------------------------------------------------- workers

_LUT: np.ndarray = build_lut()


def _init_worker(class_ids: Sequence[int]) -> None:
    global _LUT
    _LUT = build_lut(class_ids)


def convert_detail_image(task: tuple[str, int, int, list[tuple[int, Any]], str]) -> set[int]:
    """Worker (detail): paint the annotations of one image, map ids, save. Returns unmapped ids."""
    stem, h, w, anns, dst = task
    mask = np.zeros((h, w), dtype=np.int64)
    for cat_id, seg in anns:
        try:
            m = decode_segmentation(seg, h, w)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"image {stem}: {e}") from e
        mask[m] = cat_id
    if mask.size and (mask.min() < 0 or mask.max() >= LUT_SIZE):
        raise ValueError(f"image {stem}: category ids outside 0..{LUT_SIZE - 1}")
    out = _LUT[mask]
    raw_ids = set(np.unique(mask).tolist())
    unmapped = {i for i in raw_ids if i != 0 and _LUT[i] == 0}
    save_png_atomic(Image.fromarray(out), Path(dst))
    return unmapped


def read_label_map(path: str | Path) -> np.ndarray:
    from scipy.io import loadmat

    data = loadmat(str(path))
    if "LabelMap" not in data:
        raise ValueError(
            f"{path}: no 'LabelMap' variable (is this a PASCAL-Context trainval/*.mat?)"
        )
    lm = np.asarray(data["LabelMap"])
    if lm.ndim != 2:
        raise ValueError(f"{path}: LabelMap has shape {lm.shape}, expected H x W")
    if lm.size and (lm.min() < 0 or lm.max() >= LUT_SIZE):
        raise ValueError(f"{path}: LabelMap values outside 0..{LUT_SIZE - 1}")
    return lm.astype(np.int64)


def convert_mat_image(task: tuple[str, str]) -> set[int]:
    """Worker (mat): map one ``LabelMap`` to 0..59 and save."""
    src, dst = task
    save_png_atomic(Image.fromarray(_LUT[read_label_map(src)]), Path(dst))
    return set()


# --------------------------------------------------------------------------- formats


def _regularize_id(image_id: Any) -> str:
    s = str(image_id)
    return s if "_" in s else f"{s[:4]}_{s[4:]}"


def _check_detail_categories(data: dict[str, Any], source: Path) -> None:
    cats = data.get("categories")
    if not isinstance(cats, list):
        return
    names = {
        c.get("category_id", c.get("id")): str(c.get("name", ""))
        for c in cats
        if isinstance(c, dict)
    }
    bad = [
        f"{cid}: {names[cid]!r} (expected {name!r})"
        for name, cid in CONTEXT59
        if cid in names and _norm(names[cid]) != _norm(name)
    ]
    if bad:
        warn(f"{source}: category names differ from the built-in 59-class table: {bad}")


def prepare_detail(
    json_path: Path, out_dir: Path
) -> tuple[dict[str, list[str]], list[tuple[str, int, int, list[tuple[int, Any]], str]]]:
    layout = (
        "expected a PASCAL-in-Detail annotation JSON (trainval_merged.json) with 'images' and "
        "'annos_segmentation'"
    )
    try:
        with open(json_path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        fail(f"cannot parse {json_path}: {e}\n  {layout}")
    if not isinstance(data, dict) or not {"images", "annos_segmentation"} <= data.keys():
        fail(f"{json_path}: missing 'images' / 'annos_segmentation'\n  {layout}")
    _check_detail_categories(data, json_path)

    anns_by_img: dict[Any, list[tuple[int, Any]]] = defaultdict(list)
    for ann in data["annos_segmentation"]:
        anns_by_img[ann["image_id"]].append((int(ann["category_id"]), ann["segmentation"]))

    splits: dict[str, list[str]] = {"train": [], "val": []}
    tasks = []
    for img in data["images"]:
        phase = img.get("phase")
        if phase not in splits:
            continue  # "test" images have no labels
        fname = img.get("file_name")
        stem = Path(fname).stem if fname else _regularize_id(img["image_id"])
        splits[phase].append(stem)
        tasks.append(
            (
                stem,
                int(img["height"]),
                int(img["width"]),
                anns_by_img.get(img["image_id"], []),
                str(out_dir / f"{stem}.png"),
            )
        )
    if not tasks:
        fail(f"{json_path}: no images with phase 'train' or 'val'\n  {layout}")
    return splits, tasks


def _find_mat_dir(ann: Path) -> Path:
    layout = (
        "expected the unpacked PASCAL-Context trainval.tar.gz: <annotation>/<id>.mat "
        "(or <annotation>/trainval/<id>.mat), each with a LabelMap variable"
    )
    if not ann.is_dir():
        fail(f"--annotation folder not found: {ann}\n  {layout}")
    for cand in (ann, ann / "trainval", ann / "trainval" / "trainval"):
        if cand.is_dir() and any(cand.glob("*.mat")):
            return cand
    fail(f"no .mat files in {ann} or {ann / 'trainval'}\n  {layout}")


def _find_labels_txt(explicit: Path | None, mat_dir: Path) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            fail(f"--labels file not found: {explicit} (expected '<id>: <name>' lines)")
        return explicit
    for cand in (mat_dir / "labels.txt", mat_dir.parent / "labels.txt"):
        if cand.is_file():
            return cand
    return None


def prepare_mat(
    voc_root: Path, ann: Path, labels: Path | None, out_dir: Path
) -> tuple[dict[str, list[str]], list[tuple[str, str]], list[int]]:
    mat_dir = _find_mat_dir(ann)
    labels_path = _find_labels_txt(labels, mat_dir)
    if labels_path is not None:
        try:
            parsed = parse_labels_txt(labels_path)
        except ValueError as e:
            fail(str(e))
        class_ids = class_ids_from_labels(parsed, labels_path)
        print(f"class ids located by name in {labels_path}")
    else:
        class_ids = list(CONTEXT59_IDS)
        print("no labels.txt found; using the built-in 459-class ids of the 59 classes")

    main_dir = voc_root / "ImageSets" / "Main"
    mats = {p.stem: p for p in mat_dir.glob("*.mat")}
    splits: dict[str, list[str]] = {}
    for split in ("train", "val"):
        path = main_dir / f"{split}.txt"
        if not path.is_file():
            fail(
                f"split list not found: {path}\n  the mat format takes the train/val split from "
                f"<voc-root>/ImageSets/Main/{{train,val}}.txt of VOC2010 (VOCtrainval_03-May-2010)"
            )
        ids = read_ids(path)
        have = sorted(i for i in set(ids) if i in mats)
        if len(have) < len(set(ids)):
            warn(f"{len(set(ids)) - len(have)} ids of {path} have no .mat in {mat_dir}")
        splits[split] = have
    wanted = sorted(set(splits["train"]) | set(splits["val"]))
    tasks = [(str(mats[s]), str(out_dir / f"{s}.png")) for s in wanted]
    if not tasks:
        fail(f"none of the ids in {main_dir}/{{train,val}}.txt has a .mat in {mat_dir}")
    return splits, tasks, class_ids


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convert_pascal_context.py",
        description=(
            "Convert PASCAL-Context labels to <voc-root>/SegmentationClassContext/<id>.png "
            "(0 = background, 1..59 = the 59 classes) and "
            "<voc-root>/ImageSets/SegmentationContext/{train,val}.txt."
        ),
        epilog=(
            "Formats: 'detail' = trainval_merged.json (PASCAL in Detail, as used by mmseg; RLE "
            "masks decoded without pycocotools; split from each image's 'phase'); 'mat' = the "
            "official trainval.tar.gz (trainval/<id>.mat with LabelMap, optional labels.txt; "
            "split from <voc-root>/ImageSets/Main/{train,val}.txt). 'auto' picks 'detail' for a "
            "file and 'mat' for a folder. Labels that already exist are skipped unless "
            "--overwrite is given."
        ),
    )
    p.add_argument(
        "--voc-root", type=Path, required=True, help="VOCdevkit/VOC2010 folder (outputs go here)"
    )
    p.add_argument(
        "--annotation",
        type=Path,
        required=True,
        help="trainval_merged.json (detail) or the folder with trainval/<id>.mat (mat)",
    )
    p.add_argument(
        "--format",
        choices=("auto", "detail", "mat"),
        default="auto",
        help="raw annotation format; auto = detail for a file, mat for a folder "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="(mat) labels.txt with '<id>: <name>' lines; default: look next to the .mat folder",
    )
    add_common_args(p, "labels")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    voc_root: Path = args.voc_root
    ann: Path = args.annotation
    if not voc_root.is_dir():
        fail(f"--voc-root not found: {voc_root}\n  expected the VOCdevkit/VOC2010 folder")
    if not ann.exists():
        fail(
            f"--annotation not found: {ann}\n  expected trainval_merged.json (--format detail) "
            f"or the unpacked trainval.tar.gz folder with <id>.mat files (--format mat)"
        )
    fmt = args.format
    if fmt == "auto":
        fmt = "mat" if ann.is_dir() else "detail"
    if fmt == "detail" and ann.is_dir():
        if not (ann / "trainval_merged.json").is_file():
            fail(f"--format detail: {ann} is a folder without trainval_merged.json")
        ann = ann / "trainval_merged.json"

    out_dir = voc_root / "SegmentationClassContext"
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "detail":
        splits, tasks = prepare_detail(ann, out_dir)
        class_ids: list[int] = list(CONTEXT59_IDS)
        fn = convert_detail_image
    else:
        splits, tasks, class_ids = prepare_mat(voc_root, ann, args.labels, out_dir)
        fn = convert_mat_image

    todo = pending(tasks, args.overwrite)
    print(f"[{fmt}] {len(tasks)} labels, {len(tasks) - len(todo)} already converted")
    results = parallel_map(
        fn,
        todo,
        args.nproc,
        "SegmentationClassContext",
        unit="img",
        initializer=_init_worker,
        initargs=(list(class_ids),),
        max_chunksize=32,
    )
    unmapped: set[int] = set().union(*results)
    if unmapped:
        warn(
            f"category ids outside the 59 classes were mapped to background: {sorted(unmapped)}"
        )

    sets_dir = voc_root / "ImageSets" / "SegmentationContext"
    for split, ids in splits.items():
        path = sets_dir / f"{split}.txt"
        ids = sorted(set(ids))
        changed = write_lines_atomic(path, ids)
        print(f"{'wrote' if changed else 'unchanged'} {path} ({len(ids)} ids)")
        if len(ids) != EXPECTED_SPLIT_LEN[split]:
            warn(
                f"{split}.txt has {len(ids)} ids; the full PASCAL-Context release has "
                f"{EXPECTED_SPLIT_LEN[split]}"
            )
    print(f"Done: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
