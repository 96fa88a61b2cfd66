"""Training-free evaluation end to end: every experiment through its entry point, on fixtures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from src.utils.config import CONFIG_DIR, PROJECT_ROOT

EXPERIMENTS = sorted(Path(CONFIG_DIR, "experiment").glob("*.yaml"))


def compose_eval(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="eval", overrides=overrides)


def entry_point(path: Path) -> str:
    """The entry point an experiment file names in its first comment."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and "@package" not in line:
            match = re.search(r"python -m (src\.\w+)", line)
            assert match, f"{path.name}: first comment must name its entry point"
            return match.group(1)
    raise AssertionError(f"{path.name} has no comment")


EVAL_EXPERIMENTS = [p for p in EXPERIMENTS if entry_point(p) == "src.eval"]


def test_every_experiment_names_a_known_entry_point():
    assert {entry_point(p) for p in EXPERIMENTS} <= {"src.eval", "src.train"}


@pytest.mark.parametrize("experiment", EVAL_EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_runs_through_its_entry_point(experiment, data_dir, tmp_path):
    from src.eval import evaluate

    corrupt = experiment.stem.endswith("_corrupt")
    # The robustness runs: two corruptions at two severities on a few images.
    extra = (["corruptions.names=[gaussian_noise,spatter]", "corruptions.severities=[1,5]"]
             + (["+data.dataset_kwargs.num_images=4"] if experiment.stem.startswith("world")
                else [])) if corrupt else []
    cfg = compose_eval([
        f"experiment={experiment.stem}", "teacher=tiny", f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp_path}", "logger=csv", "data.num_workers=0",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", *extra,
    ])
    results = evaluate(cfg)
    assert 0.0 <= results["summary"]["mIoU"] <= 100.0
    assert (tmp_path / "results.json").is_file()
    assert len(results["per_class"]) == cfg.data.num_classes
    if corrupt:
        table = results["corruptions"]["mIoU"]
        assert set(table) == {"gaussian_noise", "spatter"}
        assert all(set(row) == {1, 5} for row in table.values())
        assert (tmp_path / "corruptions.md").read_text().count("\n") == 4


def test_eval_equals_direct_computation_with_zero_shot_split(data_dir, tmp_path):
    """The Lightning loop (loader, resize, upsampling to the original mask) equals doing it by hand."""
    from src.data.datasets import VOCDataset
    from src.data.transforms import build_eval_transform
    from src.builders import build_teacher
    from src.eval import evaluate
    from src.metrics.segmentation import SegmentationIoU

    cfg = compose_eval([
        "data=voc20", "teacher=tiny", "refine=kspd", "prompts=single",
        f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}", "logger=csv",
        "data.num_workers=0", "trainer.accelerator=cpu", "zero_shot_split=voc20",
        "data.test_scale=[64,32]",
    ])
    results = evaluate(cfg)
    assert set(results["summary"]) == {"mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"}

    torch.manual_seed(cfg.seed)
    teacher = build_teacher(cfg)  # same seed → same random weights as inside evaluate()
    teacher.set_vocabulary("voc20", "single")
    dataset = VOCDataset(f"{data_dir}/VOCdevkit/VOC2012", "val",
                         transform=build_eval_transform((64, 32), teacher.image_mean,
                                                        teacher.image_std))
    metric = SegmentationIoU(20, unseen=range(15, 20))
    for sample in dataset:
        assert min(sample["image"].shape[-2:]) == 32  # short side rescaled; the mask is not
        probs = teacher(sample["image"][None], output_size=sample["mask"].shape)
        metric.update(probs[0].argmax(0), sample["mask"])
    expected = {k: 100 * v for k, v in metric.summary().items()}
    for key, value in expected.items():
        assert results["summary"][key] == pytest.approx(value, nan_ok=True)
    tables = list(tmp_path.rglob("per_class_iou.csv"))
    assert len(tables) == 1
    rows = tables[0].read_text().splitlines()
    assert rows[0] == "class,iou,split" and len(rows) == 21
    assert rows[16].endswith(",unseen") and rows[15].endswith(",seen")


def test_python_m_src_eval_end_to_end(data_dir, tmp_path):
    """The command a user types, in a fresh process, on the custom-folder layout."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    cmd = [sys.executable, "-m", "src.eval", "data=folder", "teacher=tiny", "logger=csv",
           f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}", "data.num_workers=0",
           "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "inference=slide",
           "inference.crop_size=[32,32]", "inference.stride=[16,16]"]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list(tmp_path.rglob("results.json"))
    assert len(results) == 1
    summary = json.loads(results[0].read_text())["summary"]
    assert 0.0 <= summary["mIoU"] <= 100.0
    overlays = list(tmp_path.rglob("overlays/*.png"))
    assert len(overlays) == 3  # image | GT | prediction panels, one per test image


def test_wandb_logger_is_offline(data_dir, tmp_path, monkeypatch):
    """The default logger writes a local W&B run and makes no network call."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    from src.eval import evaluate

    cfg = compose_eval([
        "data=folder", "teacher=tiny", f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp_path}", "data.num_workers=0", "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
    ])
    assert "wandb" in cfg.logger and cfg.logger.wandb.offline
    evaluate(cfg)
    assert list(tmp_path.rglob("offline-run-*")), "expected a local offline W&B run directory"
