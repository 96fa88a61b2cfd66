#!/usr/bin/env python
"""Build PASCAL VOC 2012 "aug" labels (SBD + VOC) in the mmseg layout.

Inputs::

    <sbd-root>/                      # benchmark_RELEASE/ from SBD's benchmark.tgz
        dataset/cls/<id>.mat         # MATLAB struct GTcls with field Segmentation (H x W, 0..20)
        dataset/train.txt            # 8,498 ids
        dataset/val.txt              # 2,857 ids
    <voc-root>/                      # VOCdevkit/VOC2012/
        SegmentationClass/<id>.png   # palette PNGs, indices 0..20, 255 = boundary / ignore
        ImageSets/Segmentation/{train,val}.txt

Outputs::

    <voc-root>/SegmentationClassAug/<id>.png     # palette PNG (VOC palette), 0..20, 255
    <voc-root>/ImageSets/Segmentation/aug.txt    # (VOC train | SBD train | SBD val) - VOC val

Each label in SegmentationClassAug comes from VOC's own ``SegmentationClass/<id>.png`` when it
exists (finer, with 255 boundaries) and otherwise from SBD's ``cls/<id>.mat``, as in the
SegmentationClassAug set that DeepLab popularised. mmseg's ``tools/convert_datasets/voc_aug.py``
reads the ``.mat`` files the same way (``mat['GTcls'][0]['Segmentation'][0]``).

Note: this ``aug.txt`` is the full 10,582-image train_aug list (mmseg calls that list
``trainaug.txt``; mmseg's own ``aug.txt`` excludes the VOC train ids).

Every file is written atomically (temp file + ``os.replace``); re-running skips labels that
already exist unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: make ``src`` and ``scripts`` importable
    sys.path.insert(0, str(ROOT))

from scripts._common import add_common_args, fail, pending, warn  # noqa: E402
from src.utils.io import parallel_map, read_lines, save_png_atomic, write_lines_atomic  # noqa: E402
from src.utils.visualize import voc_palette  # noqa: E402

NUM_CLASSES = 21
IGNORE_INDEX = 255
EXPECTED_AUG_LEN = 10_582  # only used for a warning

# --------------------------------------------------------------------------- VOC palette

VOC_PALETTE: list[int] = voc_palette()


def to_palette_png(mask: np.ndarray) -> Image.Image:
    img = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8))
    img.putpalette(VOC_PALETTE)  # L -> P with the VOC colours
    return img


def _check_values(mask: np.ndarray, src: str) -> None:
    values = np.unique(mask)
    bad = values[(values >= NUM_CLASSES) & (values != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f"{src}: unexpected label values {bad.tolist()} (expected 0..20, 255)")


# --------------------------------------------------------------------------- readers


def read_sbd_mat(path: str | Path) -> np.ndarray:
    """Read ``GTcls.Segmentation`` (H x W uint8) from an SBD ``cls/<id>.mat`` file."""
    from scipy.io import loadmat

    data = loadmat(str(path))
    if "GTcls" not in data:
        raise ValueError(f"{path}: no 'GTcls' struct (is this an SBD dataset/cls/*.mat file?)")
    # loadmat keeps MATLAB's 1x1 struct array: GTcls[0] is the row, ['Segmentation'][0] the field.
    seg = data["GTcls"][0]["Segmentation"][0]
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise ValueError(f"{path}: GTcls.Segmentation has shape {seg.shape}, expected H x W")
    return seg.astype(np.uint8)


def read_voc_png(path: str | Path) -> np.ndarray:
    """Read a VOC ``SegmentationClass`` PNG as class indices (palette indices are copied)."""
    with Image.open(path) as img:
        if img.mode in ("P", "L"):
            return np.array(img, dtype=np.uint8)
        if img.mode not in ("RGB", "RGBA"):
            raise ValueError(f"{path}: unsupported PNG mode {img.mode} (expected P, L or RGB)")
        rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
    # RGB-rendered label: invert the VOC palette.
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pal = np.asarray(VOC_PALETTE, dtype=np.int64).reshape(256, 3)
    pal_codes = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    valid = list(range(NUM_CLASSES)) + [IGNORE_INDEX]
    out = np.full(codes.shape, -1, dtype=np.int64)
    for idx in valid:
        out[codes == pal_codes[idx]] = idx
    if (out < 0).any():
        raise ValueError(f"{path}: RGB label contains colours outside the VOC palette")
    return out.astype(np.uint8)


def convert_one(task: tuple[str, str, str]) -> str:
    """Worker: ``(kind, src, dst)`` with kind ``"mat"`` (SBD) or ``"png"`` (VOC)."""
    kind, src, dst = task
    mask = read_sbd_mat(src) if kind == "mat" else read_voc_png(src)
    _check_values(mask, src)
    save_png_atomic(to_palette_png(mask), Path(dst))
    return dst


def compute_aug_ids(
    voc_train: Iterable[str],
    voc_val: Iterable[str],
    sbd_train: Iterable[str],
    sbd_val: Iterable[str],
) -> list[str]:
    """(VOC train | SBD train | SBD val) - VOC val, sorted."""
    return sorted((set(voc_train) | set(sbd_train) | set(sbd_val)) - set(voc_val))


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convert_sbd.py",
        description=(
            "Convert SBD (benchmark_RELEASE) .mat labels plus VOC2012 SegmentationClass PNGs to "
            "<voc-root>/SegmentationClassAug/<id>.png (VOC palette PNGs, 0..20, 255) and write "
            "<voc-root>/ImageSets/Segmentation/aug.txt = (VOC train | SBD train | SBD val) - VOC "
            "val (10,582 ids on the full data)."
        ),
        epilog=(
            "Expected inputs: <sbd-root>/dataset/{cls/*.mat,train.txt,val.txt} and "
            "<voc-root>/{SegmentationClass/*.png,ImageSets/Segmentation/{train,val}.txt}. "
            "Labels that already exist are skipped unless --overwrite is given."
        ),
    )
    p.add_argument(
        "--voc-root", type=Path, required=True, help="VOCdevkit/VOC2012 folder (outputs go here)"
    )
    p.add_argument(
        "--sbd-root",
        type=Path,
        required=True,
        help="SBD benchmark_RELEASE folder (or its dataset/ subfolder)",
    )
    add_common_args(p, "labels")
    return p


def _resolve_sbd_dataset(sbd_root: Path) -> Path:
    layout = (
        "expected layout: <sbd-root>/dataset/{cls/<id>.mat, train.txt, val.txt} "
        "(benchmark_RELEASE/ from SBD's benchmark.tgz)"
    )
    if not sbd_root.is_dir():
        fail(f"--sbd-root not found: {sbd_root}\n  {layout}")
    dataset = sbd_root / "dataset"
    if not dataset.is_dir() and (sbd_root / "cls").is_dir():
        dataset = sbd_root  # user passed benchmark_RELEASE/dataset directly
    for rel in ("cls", "train.txt", "val.txt"):
        if not (dataset / rel).exists():
            fail(f"SBD input not found: {dataset / rel}\n  {layout}")
    return dataset


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    voc_root: Path = args.voc_root
    sbd = _resolve_sbd_dataset(args.sbd_root)

    voc_layout = (
        "expected layout: <voc-root>/{SegmentationClass/<id>.png, "
        "ImageSets/Segmentation/{train,val}.txt} (VOCdevkit/VOC2012)"
    )
    if not voc_root.is_dir():
        fail(f"--voc-root not found: {voc_root}\n  {voc_layout}")
    sets_dir = voc_root / "ImageSets" / "Segmentation"
    for rel in (voc_root / "SegmentationClass", sets_dir / "train.txt", sets_dir / "val.txt"):
        if not rel.exists():
            fail(f"VOC input not found: {rel}\n  {voc_layout}")

    voc_pngs = {p.stem: p for p in (voc_root / "SegmentationClass").glob("*.png")}
    sbd_mats = {p.stem: p for p in (sbd / "cls").glob("*.mat")}
    if not sbd_mats:
        fail(f"no .mat files in {sbd / 'cls'}")

    out_dir = voc_root / "SegmentationClassAug"
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks: list[tuple[str, str, str]] = []
    for stem in sorted(set(voc_pngs) | set(sbd_mats)):
        if stem in voc_pngs:  # VOC's own annotation wins over SBD's
            tasks.append(("png", str(voc_pngs[stem]), str(out_dir / f"{stem}.png")))
        else:
            tasks.append(("mat", str(sbd_mats[stem]), str(out_dir / f"{stem}.png")))
    todo = pending(tasks, args.overwrite)
    print(
        f"{len(sbd_mats)} SBD .mat + {len(voc_pngs)} VOC .png -> {len(tasks)} labels "
        f"({len(tasks) - len(todo)} already converted)"
    )
    parallel_map(convert_one, todo, args.nproc, "SegmentationClassAug", unit="img")

    aug = compute_aug_ids(
        read_lines(sets_dir / "train.txt"),
        read_lines(sets_dir / "val.txt"),
        read_lines(sbd / "train.txt"),
        read_lines(sbd / "val.txt"),
    )
    missing = [i for i in aug if not (out_dir / f"{i}.png").is_file()]
    if missing:
        fail(
            f"{len(missing)} ids in the aug list have neither {sbd / 'cls'}/<id>.mat nor "
            f"{voc_root / 'SegmentationClass'}/<id>.png, e.g. {missing[:5]}"
        )
    aug_path = sets_dir / "aug.txt"
    changed = write_lines_atomic(aug_path, aug)
    print(f"{'wrote' if changed else 'unchanged'} {aug_path} ({len(aug)} ids)")
    if len(aug) != EXPECTED_AUG_LEN:
        warn(
            f"aug.txt has {len(aug)} ids; the full VOC2012 + SBD release gives "
            f"{EXPECTED_AUG_LEN}"
        )
    print(f"Done: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
