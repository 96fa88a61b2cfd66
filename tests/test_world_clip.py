"""The world CLIP: its pre-training script, and the committed checkpoint's quality."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from src.utils.config import PROJECT_ROOT

CHECKPOINT = PROJECT_ROOT / "assets" / "world_clip" / "world-vit.safetensors"
sys.path.insert(0, str(PROJECT_ROOT))


def test_pretrain_script_smoke(tmp_path):
    from scripts.pretrain_world_clip import main
    from src.models.teacher import MaskCLIPTeacher

    out = tmp_path / "w.safetensors"
    record = main(["--model", "tiny-vit", "--image-size", "64", "--steps", "2",
                   "--batch-size", "8", "--eval-every", "1", "--eval-pairs", "16",
                   "--save-every", "1", "--out", str(out), "--ckpt-dir", str(tmp_path / "ck"),
                   "--threads", "1", "--warmup", "1"])
    assert out.is_file() and len(list((tmp_path / "ck").glob("step*.safetensors"))) == 3
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["steps"] == 2 and saved["seed"] == 0 and "--steps 2" in saved["command"]
    assert [h["step"] for h in saved["history"]] == [0, 1, 2]
    assert 0 <= record["final"]["i2t_r1"] <= 1
    teacher = MaskCLIPTeacher("tiny-vit", str(out), cache_dir=None)  # loads like any checkpoint
    assert teacher.dense_features(torch.randn(1, 3, 64, 64)).shape == (1, 32, 8, 8)


def test_committed_checkpoint_is_small_and_documented():
    assert CHECKPOINT.is_file(), "run `make world-clip` to rebuild the world CLIP"
    assert CHECKPOINT.stat().st_size <= 20 * 2**20
    meta = json.loads(CHECKPOINT.with_suffix(".json").read_text())
    for key in ("command", "seed", "steps", "final", "history", "sha256"):
        assert key in meta
    import hashlib

    assert hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest() == meta["sha256"]


def _world_miou(head: str) -> float:
    from src.data.transforms import build_eval_transform
    from src.data.world import CLASSES, WorldDataset
    from src.metrics.segmentation import SegmentationIoU
    from src.models.teacher import MaskCLIPTeacher

    teacher = MaskCLIPTeacher("world-vit", str(CHECKPOINT), head=head, cache_dir=None,
                              vocabulary="world", templates="world")
    dataset = WorldDataset(split="test", transform=build_eval_transform(
        (96, 96), teacher.image_mean, teacher.image_std))
    metric = SegmentationIoU(len(CLASSES))
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    masks = torch.stack([dataset[i]["mask"] for i in range(len(dataset))])
    for chunk_images, chunk_masks in zip(images.split(50), masks.split(50)):
        metric.update(teacher(chunk_images).argmax(1), chunk_masks)
    return 100 * metric.summary()["mIoU"]


def test_value_path_beats_naive_on_committed_checkpoint():
    """Claim 1 with a margin, on the test split (docs/world_claims.md has the exact numbers)."""
    if not CHECKPOINT.is_file():
        pytest.fail("the world CLIP checkpoint is missing; run `make world-clip`")
    maskclip, naive = _world_miou("maskclip"), _world_miou("naive")
    assert maskclip >= MIN_RATIO * naive and maskclip - naive >= MIN_GAP, (maskclip, naive)


# Margins below the measured 35.8 vs 17.3 (2.07x, +18.5; docs/world_claims.md).
MIN_RATIO = 1.6
MIN_GAP = 12.0


def test_annotation_free_student_beats_its_teacher(tmp_path):
    """MaskCLIP+ claim 1 on the world, with a margin: 400 steps of the world_annofree recipe
    (half its schedule; 400 steps of 64² crops cost about what 200 of 96² scenes did).

    Teacher 35.8; the student at 200 steps of 64² crops: 37.6 (too early); at 400: 39.1
    (one thread).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from src.train import train
    from src.utils.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "experiment=world_annofree", "max_steps=400", "val_every=400",
            "checkpoint_every=400", "logger=csv", "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false", f"paths.output_dir={tmp_path}"])
    student = train(cfg)["test/mIoU"]
    teacher = _world_miou("maskclip")
    assert student >= teacher + 2.0, (student, teacher)
