#!/usr/bin/env python
"""Convert COCO instance annotations to COCO-Object masks (the 8-benchmark protocol).

Input: the COCO 2017 annotations (``annotations/instances_val2017.json``) and, for the image
sizes, nothing else: every size comes from the JSON.

Output (what this project's ``data=cocoobject`` reads)::

    <out-root>/annotations/val2017/<image id>_instanceTrainIds.png
        0 = background, 1..80 = the 80 COCO thing categories in category-id order

Instances are painted largest first, so a small object lying on a large one stays visible;
crowd regions are painted like any instance (as SCLIP's converter does). Decoding polygons and
RLE uses pycocotools (``pip install pycocotools``, in the ``dev`` and ``coco`` extras).

Every file is written atomically; re-running skips masks that exist unless ``--overwrite``.

    python scripts/convert_coco_object.py --annotations instances_val2017.json \\
        --out-root data/coco_stuff164k --split val2017
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts._common import add_common_args, fail, pending  # noqa: E402
from src.utils.io import parallel_map, save_png_atomic  # noqa: E402

OUT_SUFFIX = "_instanceTrainIds.png"


def category_train_ids(categories: list[dict]) -> dict[int, int]:
    """COCO category id → train id 1..N in increasing category-id order (0 = background)."""
    ids = sorted(int(c["id"]) for c in categories)
    return {cid: index + 1 for index, cid in enumerate(ids)}


def instance_mask(annotations: list[dict], height: int, width: int,
                  train_ids: dict[int, int]) -> np.ndarray:
    """One image's H×W uint8 object mask from its instance annotations."""
    from pycocotools import mask as mask_utils

    label = np.zeros((height, width), dtype=np.uint8)
    for ann in sorted(annotations, key=lambda a: -float(a.get("area", 0.0))):
        seg = ann["segmentation"]
        if isinstance(seg, list):  # polygons
            if not seg:
                continue
            rles = mask_utils.frPyObjects(seg, height, width)
            rle = mask_utils.merge(rles)
        elif isinstance(seg.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            rle = seg
        label[mask_utils.decode(rle).astype(bool)] = train_ids[int(ann["category_id"])]
    return label


def _convert(task: tuple[list[dict], int, int, dict[int, int], str]) -> str:
    annotations, height, width, train_ids, dst = task
    save_png_atomic(Image.fromarray(instance_mask(annotations, height, width, train_ids)),
                    Path(dst))
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=Path, required=True,
                        help="COCO instances JSON, e.g. annotations/instances_val2017.json")
    parser.add_argument("--out-root", type=Path, required=True,
                        help="dataset root (e.g. data/coco_stuff164k)")
    parser.add_argument("--split", default="val2017")
    add_common_args(parser, outputs="masks")
    args = parser.parse_args(argv)
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        fail("pycocotools is needed to decode COCO masks: pip install pycocotools "
             "(or pip install -e '.[coco]')")
    if not args.annotations.is_file():
        fail(f"{args.annotations} does not exist: give the COCO instances JSON "
             "(annotations_trainval2017.zip → annotations/instances_val2017.json)")
    try:
        data = json.loads(args.annotations.read_text())
        images, categories = data["images"], data["categories"]
        annotations = data["annotations"]
    except (ValueError, KeyError) as err:
        fail(f"{args.annotations} is not a COCO instances file ({err})")
    train_ids = category_train_ids(categories)
    if len(train_ids) > 254:
        fail(f"{len(train_ids)} categories do not fit uint8 masks")
    by_image: dict[int, list[dict]] = {}
    for ann in annotations:
        by_image.setdefault(int(ann["image_id"]), []).append(ann)
    out_dir = args.out_root / "annotations" / args.split
    tasks = [(by_image.get(int(img["id"]), []), int(img["height"]), int(img["width"]), train_ids,
              str(out_dir / f"{Path(img['file_name']).stem}{OUT_SUFFIX}")) for img in images]
    todo = pending(tasks, args.overwrite)
    print(f"{len(tasks)} images, {len(tasks) - len(todo)} already converted → {out_dir}")
    parallel_map(_convert, todo, nproc=args.nproc, desc="COCO-Object masks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
