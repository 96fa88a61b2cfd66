#!/usr/bin/env python
"""Reference outputs of the teacher, the labelling path and MaskCLIP+ training, for refactors.

A redesign that claims to preserve behaviour (issue 14) is checked against these numbers,
written by the code before the change: seeded random-init ViT-B/16 and RN50 teachers on small
inputs (``dense_features``, ``query_scores`` plain and KS+PD, ``forward`` pixel-aligned,
stretched and sliding-window, labels), the world teacher's labels on test scenes, and the
first training losses of ``experiment=world_annofree``. ``tests/test_reference_outputs.py``
recomputes them and compares (max abs diff ≤ 1e-6; labels and the world teacher's labels
exactly).

    python scripts/reference_outputs.py       # → tests/assets/reference_outputs.pt (~1 min)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402

DEFAULT_OUT = ROOT / "tests" / "assets" / "reference_outputs.pt"
CLASSES = ["cat", "dog", "grass"]
TRAIN_STEPS = 6


def teacher_outputs(model_name: str) -> dict[str, torch.Tensor]:
    """A seeded random-init CLIP as the MaskCLIP teacher on two 80×112 images (not multiples
    of 16 or 32, so padding and alignment are exercised)."""
    from src.models.inference import InferenceConfig
    from src.models.refine import RefineConfig
    from src.models.teacher import MaskCLIPTeacher

    torch.manual_seed(0)
    teacher = MaskCLIPTeacher(model_name, None, cache_dir=None, vocabulary=CLASSES,
                              templates="single")
    images = torch.randn(2, 3, 80, 112, generator=torch.Generator().manual_seed(1))
    out = {"dense_features": teacher.dense_features(images),
           "query_scores": teacher.query_scores(images)[0],
           "forward": teacher(images, output_size=(60, 84))}
    out["labels"] = out["forward"].argmax(1)
    teacher.inference = InferenceConfig(align="stretch")
    out["forward_stretch"] = teacher(images, output_size=(60, 84))
    if teacher.arch == "vit":  # windows must be multiples of the stride: 32 for the ResNet
        teacher.inference = InferenceConfig(mode="slide", crop_size=(64, 64), stride=(32, 32))
        out["forward_slide"] = teacher(images, output_size=(60, 84))
    teacher.inference = InferenceConfig()
    teacher.refine = RefineConfig(key_smoothing=True, prompt_denoising=True)
    out["query_scores_kspd"] = teacher.query_scores(images)[0]
    out["forward_kspd"] = teacher(images, output_size=(60, 84))
    return {f"{model_name}/{k}": v.detach().clone() for k, v in out.items()}


def world_teacher_labels(num_images: int = 16) -> dict[str, torch.Tensor]:
    """The committed world CLIP's MaskCLIP labels on the first test scenes (uint8, N×96×96)."""
    from src.data.datamodule import SegDataModule
    from src.builders import build_teacher
    from src.utils.config import to_plain
    from src.utils.experiments import compose_config

    cfg = compose_config("eval", ["experiment=world_maskclip", "paths.output_dir=/tmp/ref"])
    teacher = build_teacher(cfg)
    teacher.set_vocabulary("world", to_plain(cfg.prompts.templates))
    data = SegDataModule(dataset="world", root="unused", vocabulary="world",
                         dataset_kwargs={"image_size": 96, "num_images": num_images},
                         test_scale=(96, 96))
    data.set_normalization(teacher.image_mean, teacher.image_std)
    data.setup("test")
    images = torch.stack([data.test_set[i]["image"] for i in range(num_images)])
    return {"world/labels": teacher(images).argmax(1).to(torch.uint8)}


def world_training_losses(steps: int = TRAIN_STEPS) -> dict[str, torch.Tensor]:
    """``train/loss`` of the first optimizer steps of ``experiment=world_annofree``, on the
    96² crops the reference was written with (the recipe's crop became 64² in issue 16; the
    reference checks the training code, not the recipe)."""
    import csv

    from src.train import train
    from src.utils.experiments import compose_config

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config("train", [
            "experiment=world_annofree", "data.crop_size=[96,96]", f"max_steps={steps}",
            f"val_every={steps}",
            f"checkpoint_every={steps}", "test_after_fit=false", "logger=csv",
            "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=1", "+trainer.limit_val_batches=0", "num_overlays=0",
            f"paths.output_dir={tmp}"])
        train(cfg)
        rows = list(csv.DictReader(next(Path(tmp).rglob("metrics.csv")).open()))
        losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    return {"world_annofree/losses": torch.tensor(losses, dtype=torch.float64)}


def compute(with_training: bool = True) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name in ("ViT-B-16", "RN50"):
        out.update(teacher_outputs(name))
    out.update(world_teacher_labels())
    if with_training:
        out.update(world_training_losses())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    outputs = compute()
    torch.save({"commit": commit, "torch": str(torch.__version__), "outputs": outputs}, args.out)
    print(f"wrote {len(outputs)} reference tensors to {args.out} (code at {commit})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
