#!/usr/bin/env python
"""The README's src.predict picture, made by the project itself on the offline world.

Writes a few world test scenes as PNG files, labels them with ``src.predict`` (the world CLIP,
the world's vocabulary, native size: no download), and lays out image | labelled overlay with
legend for each, enlarged 3× (nearest neighbour, so every pixel is the predicted label).

    python scripts/predict_figure.py            # → docs/world_predict.png
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "world_predict.png"))
    parser.add_argument("--indices", default="3,7,12", help="world test scene indices")
    parser.add_argument("--zoom", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np
    from PIL import Image

    from src.data.world import CLASSES, generate_scene
    from src.predict import predict
    from src.utils.experiments import compose_config
    from src.utils.visualize import legend_overlay, make_palette

    indices = [int(i) for i in args.indices.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        for index in indices:
            Image.fromarray(generate_scene(2, index).image).save(images / f"scene{index}.png")
        out = Path(tmp) / "pred"
        predict(compose_config("predict", [
            f"images={images}", "classes=world", "teacher=world", "prompts=world", "scale=null",
            f"out={out}", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
            "num_workers=0"]))
        palette = make_palette(len(CLASSES))
        rows = []
        for index in indices:
            with Image.open(images / f"scene{index}.png") as im:
                rgb = np.asarray(im.convert("RGB"))
            with Image.open(out / "labels" / f"scene{index}.png") as im:
                labels = np.asarray(im)
            big_rgb = rgb.repeat(args.zoom, 0).repeat(args.zoom, 1)
            big_labels = labels.repeat(args.zoom, 0).repeat(args.zoom, 1)
            overlay = legend_overlay(big_rgb, big_labels, palette, CLASSES)
            gap = np.full((big_rgb.shape[0], 6, 3), 255, np.uint8)
            rows.append(np.concatenate([big_rgb, gap, overlay, gap], axis=1))
        figure = np.concatenate(rows, axis=1)[:, :-6]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(figure).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
