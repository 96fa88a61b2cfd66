"""`make demo`: MaskCLIP on the offline world, end to end on CPU, with no download.

The job evaluates the world CLIP (committed under assets/world_clip/, rebuilt by
`make world-clip`) on the world's test split, through the same `src.eval` code path that runs on
VOC. It compares:
  - MaskCLIP (the last block's value path);
  - MaskCLIP + key smoothing + prompt denoising, at the CLIP's own temperature and at 100;
  - the naive baseline (the unchanged last block per patch).
Then it trains the MaskCLIP+ student (`src.train`) on the world, annotation-free and
transductive zero-shot, and measures two of the paper's claims on the test split:
  1. the annotation-free student beats its teacher;
  2. self-training after the guided phase improves unseen-class mIoU over keeping the teacher
     for the whole run (the same zero-shot run with guided_fraction=1.0: equal steps).
It prints a table of mIoU, seen, unseen and hIoU, and writes overlay PNGs (image | ground truth |
predictions), results.md/json and W&B offline runs under logs/demo/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

VARIANTS = {
    "maskclip": ["experiment=world_maskclip"],
    "maskclip_kspd": ["experiment=world_maskclip_kspd"],
    "maskclip_kspd_t100": ["experiment=world_maskclip_kspd", "refine.temperature=100"],
    "naive": ["experiment=world_naive"],
}
LABELS = {
    "maskclip": "MaskCLIP (value path)",
    "maskclip_kspd": "MaskCLIP + KS + PD (T = CLIP's own scale)",
    "maskclip_kspd_t100": "MaskCLIP + KS + PD (T = 100)",
    "naive": "naive per-token baseline",
}
PANEL_VARIANTS = ("maskclip", "maskclip_kspd", "naive")
STUDENT_LABELS = {
    "student_annofree": "MaskCLIP+ student, annotation-free (teacher: MaskCLIP)",
    "student_zs_teacher": "MaskCLIP+ student, zero-shot, teacher guides every step (no self-training)",
    "student_zs": "MaskCLIP+ student, zero-shot, guided phase + self-training",
}
#: The student runs: name → overrides. The zero-shot pair differs only in guided_fraction, so
#: self-training is compared with keeping the teacher for the same number of steps.
STUDENT_RUNS = {
    "student_annofree": ["experiment=world_annofree"],
    "student_zs": ["experiment=world_zs"],
    "student_zs_teacher": ["experiment=world_zs", "guided_fraction=1.0"],
}


def train_students(out: Path, teacher_results: dict,
                   overrides: list[str] | tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """Train the world students and measure the two MaskCLIP+ claims.

    ``overrides`` go to every run, e.g. ``data.dataset_kwargs.seed_offset=1`` for a fresh world.
    """
    from src.train import train
    from src.utils.experiments import compose_config

    common = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu", *overrides]
    results: dict = {}
    configs = {}
    for key, run_overrides in STUDENT_RUNS.items():
        cfg = configs[key] = compose_config("train", [*run_overrides, *common,
                                                      f"paths.output_dir={out / key}"])
        metrics = train(cfg)
        results[key] = {"summary": {k.split("/", 1)[1]: v for k, v in metrics.items()
                                    if k.startswith("test/")}}
    zs_cfg = configs["student_zs"]
    guided = round(zs_cfg.guided_fraction * zs_cfg.max_steps)
    teacher = teacher_results["maskclip"]["summary"]["mIoU"]
    student = results["student_annofree"]["summary"]["mIoU"]
    kept = results["student_zs_teacher"]["summary"]["mIoU_unseen"]
    selftrained = results["student_zs"]["summary"]["mIoU_unseen"]
    claims = [
        f"\nClaim (MaskCLIP+ 1): the annotation-free student beats its teacher: {student:.1f} vs "
        f"{teacher:.1f} mIoU ({student - teacher:+.1f}; target >= +5: "
        f"{'met' if student - teacher >= 5 else 'NOT met'}).",
        f"Claim (MaskCLIP+ 2): self-training from step {guided} of {zs_cfg.max_steps} beats keeping "
        f"the teacher for all {zs_cfg.max_steps} steps on unseen classes: {kept:.1f} -> "
        f"{selftrained:.1f} unseen mIoU ({selftrained - kept:+.1f}; "
        f"{'met' if selftrained > kept else 'NOT met'}).",
    ]
    return results, claims


def overlay_figure(out_path: Path, num_images: int = 4) -> Path:
    """Image | ground truth | MaskCLIP | + KS + PD | naive, for the first test images, with a legend."""
    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from src.data.transforms import build_eval_transform
    from src.data.world import CLASSES, WorldDataset, world_palette
    from src.builders import build_teacher
    from src.utils.experiments import compose_config
    from src.utils.visualize import colorize

    palette = world_palette()
    columns = []
    dataset = None
    for name in PANEL_VARIANTS:
        cfg = compose_config("eval", VARIANTS[name])
        teacher = build_teacher(cfg)
        teacher.set_vocabulary(cfg.data.vocabulary, cfg.prompts.templates)
        if dataset is None:
            dataset = WorldDataset(split="test", transform=build_eval_transform(
                (96, 96), teacher.image_mean, teacher.image_std))
        preds = []
        for index in range(num_images):
            sample = dataset[index]
            with torch.no_grad():
                preds.append(teacher(sample["image"][None])[0].argmax(0).numpy())
        columns.append(preds)
    scale = 3
    rows = []
    for index in range(num_images):
        scene = dataset.scene(index)
        tiles = [scene.image, colorize(scene.mask, palette)] + [
            colorize(col[index], palette) for col in columns]
        row = np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255)
                              for t in tiles], axis=1)
        rows.append(row)
    grid = np.concatenate(rows, axis=0).repeat(scale, 0).repeat(scale, 1)
    header_h, legend_h = 24, 26
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + header_h + legend_h), "white")
    canvas.paste(Image.fromarray(grid), (0, header_h))
    draw = ImageDraw.Draw(canvas)
    tile_w = (96 + 4) * scale
    for k, title in enumerate(["image", "ground truth", "MaskCLIP", "+ KS + PD", "naive"]):
        draw.text((k * tile_w + 8, 6), title, fill="black")
    y = header_h + grid.shape[0] + 6
    x = 6
    for c, name in enumerate(CLASSES):
        draw.rectangle([x, y, x + 12, y + 12], fill=tuple(int(v) for v in palette[c]))
        draw.text((x + 16, y), name, fill="black")
        x += 16 + 7 * len(name) + 14
    out_path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_path)
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "demo")
    parser.add_argument("--no-student", action="store_true", help="skip the MaskCLIP+ runs")
    parser.add_argument("overrides", nargs="*", help="extra src.eval overrides for every variant")
    args = parser.parse_args(argv)

    from src.utils.experiments import results_table, run_eval_variants

    checkpoint = ROOT / "assets" / "world_clip" / "world-vit.safetensors"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint} is missing: rebuild it with `make world-clip` (~35 min).")
    started = time.time()
    results = run_eval_variants(
        VARIANTS, args.out,
        common=["trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
                *args.overrides])
    labels = dict(LABELS)
    claims: list[str] = []
    if not args.no_student:
        student_results, claims = train_students(args.out, results)
        results.update(student_results)
        labels.update(STUDENT_LABELS)
    table = results_table(results, labels)
    figure = overlay_figure(args.out / "overlay.png")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("\nOffline world, test split (200 images), mIoU in %:\n")
    print(table)
    for claim in claims:
        print(claim)
    (args.out / "results.md").write_text(table + "\n\n" + "\n".join(claims) + "\n")
    print(f"\noverlays: {figure}\nresults: {args.out / 'results.md'}\n"
          f"W&B offline runs: {args.out}/*/wandb (sync with `wandb sync`)\n"
          f"total {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
