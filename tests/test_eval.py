"""Training-free evaluation end to end: every experiment through its entry point, on fixtures."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from src.utils.config import CONFIG_DIR, PROJECT_ROOT

EXPERIMENTS = sorted(Path(CONFIG_DIR, "experiment").glob("*.yaml"))


def compose_eval(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="eval", overrides=overrides)


def compose_primary(config_name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def selected_groups(path: Path) -> set[str]:
    """The config groups an experiment file selects: its ``override /<group>`` defaults."""
    groups = set()
    for entry in OmegaConf.load(path).get("defaults") or []:
        if isinstance(entry, DictConfig):  # {"override /student": "tiny"}
            groups |= {str(key).removeprefix("override /") for key in entry
                       if str(key).startswith("override /")}
    return groups


def primary_groups(config_name: str) -> set[str]:
    """The config groups a primary config (conf/<name>.yaml) composes."""
    entries = OmegaConf.load(Path(CONFIG_DIR, f"{config_name}.yaml")).defaults
    return {str(key).removeprefix("optional ") for entry in entries
            if isinstance(entry, DictConfig) for key in entry}


def entry_point(path: Path) -> str:
    """src.train for an experiment that selects a MaskCLIP+ student (the ``student`` group, which
    only conf/train.yaml composes), src.eval for every other one."""
    return "src.train" if "student" in selected_groups(path) else "src.eval"


EVAL_EXPERIMENTS = [p for p in EXPERIMENTS if entry_point(p) == "src.eval"]


def test_only_the_training_config_has_a_student():
    """What entry_point() keys on: a student is a training-only choice."""
    assert "student" in primary_groups("train")
    assert "student" not in primary_groups("eval")


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_is_written_for_its_entry_point(experiment):
    """It composes under its own primary config; a training experiment cannot compose under
    eval.yaml (no student group there), and an evaluation experiment sets none of the keys only
    train.yaml has (it would be silently ignored by src.eval). Its usage comment, where it gives
    one, names the same entry point."""
    kind = entry_point(experiment)
    cfg = compose_primary(kind.removeprefix("src."), [f"experiment={experiment.stem}"])
    assert cfg.task_name == experiment.stem
    if kind == "src.train":
        with pytest.raises(ConfigCompositionException, match="student"):
            compose_eval([f"experiment={experiment.stem}"])
    else:
        train_only = (set(OmegaConf.load(Path(CONFIG_DIR, "train.yaml")))
                      - set(OmegaConf.load(Path(CONFIG_DIR, "eval.yaml"))))
        assert not train_only & set(OmegaConf.load(experiment)), experiment.name
    documented = re.findall(rf"python -m (src\.\w+)[^\n]*experiment={experiment.stem}\b",
                            experiment.read_text())
    assert set(documented) <= {kind}, f"{experiment.name} documents {documented}, not {kind}"


def ground_truth_classes(cfg) -> set[int]:
    """Every class index that occurs in the ground truth of the configured test split."""
    from hydra.utils import instantiate

    dataset = instantiate(cfg.data, _convert_="all").build_dataset()
    present: set[int] = set()
    for index in range(len(dataset)):
        present |= {int(v) for v in np.unique(np.asarray(dataset[index]["mask"]))}
    present.discard(255)
    return present


def read_per_class_csv(root: Path, table: str = "per_class_iou") -> list[dict[str, str]]:
    tables = list(root.rglob(f"{table}.csv"))
    assert len(tables) == 1, tables
    with open(tables[0], newline="") as fh:
        return list(csv.DictReader(fh))


def nanmean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def check_reported_iou(summary: dict, per_class: dict[str, float], names, present: set[int],
                       rows: list[dict[str, str]] | None) -> None:
    """The invariants every evaluation report must hold, recomputed here from what it wrote.

    - per-class IoUs are in [0, 100], finite for every class in the ground truth, and NaN or 0
      for a class absent from it (NaN when it is not predicted either);
    - mIoU is the mean of the per-class IoUs over the classes that have one;
    - the per-class CSV (when given) lists the same classes and values, and the seen/unseen
      means and hIoU = 2SU/(S+U) recomputed from its split column are the reported ones.
    """
    assert list(per_class) == list(names)
    iou = [float(v) for v in per_class.values()]
    for index, value in enumerate(iou):
        if index in present:
            assert math.isfinite(value) and 0.0 <= value <= 100.0, (names[index], value)
        else:
            assert math.isnan(value) or value == 0.0, (names[index], value)
    assert summary["mIoU"] == pytest.approx(nanmean(iou), rel=1e-5, abs=1e-4)
    if rows is None:
        return
    assert [row["class"] for row in rows] == list(names)
    from_csv = [float(row["iou"]) for row in rows]  # written with 4 decimals
    for got, want in zip(from_csv, iou):
        assert got == pytest.approx(want, abs=1e-4, nan_ok=True)
    assert summary["mIoU"] == pytest.approx(nanmean(from_csv), abs=1e-4)
    splits = {row["split"] for row in rows}
    if "mIoU_seen" not in summary:
        assert splits == {""}
        return
    assert splits == {"seen", "unseen"}
    seen = nanmean(v for v, r in zip(from_csv, rows) if r["split"] == "seen")
    unseen = nanmean(v for v, r in zip(from_csv, rows) if r["split"] == "unseen")
    assert summary["mIoU_seen"] == pytest.approx(seen, abs=1e-4, nan_ok=True)
    assert summary["mIoU_unseen"] == pytest.approx(unseen, abs=1e-4, nan_ok=True)
    harmonic = 2 * seen * unseen / (seen + unseen) if seen + unseen > 0 else float("nan")
    assert summary["hIoU"] == pytest.approx(harmonic, abs=1e-4, nan_ok=True)


@pytest.mark.parametrize("experiment", EVAL_EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_runs_through_its_entry_point(experiment, data_dir, tmp_path):
    from src.eval import evaluate

    corrupt = experiment.stem.endswith("_corrupt")
    # The robustness runs: two corruptions at two severities on a few images.
    extra = (["corruptions.names=[gaussian_noise,spatter]", "corruptions.severities=[1,5]"]
             if corrupt else [])
    if experiment.stem.startswith("world"):  # a few of the 200 test scenes
        extra.append(f"++data.dataset_kwargs.num_images={4 if corrupt else 16}")
    cfg = compose_eval([
        f"experiment={experiment.stem}", "teacher=tiny", f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp_path}", "logger=csv", "data.num_workers=0",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", *extra,
    ])
    results = evaluate(cfg)
    # results.json holds exactly what evaluate() returned (NaN IoUs included).
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert json.dumps(on_disk, sort_keys=True) == json.dumps(results, sort_keys=True)
    assert len(results["per_class"]) == cfg.data.num_classes
    from src.prompts.vocabulary import load_vocabulary

    names = list(load_vocabulary(cfg.data.vocabulary).names)
    # per_class_iou.csv is the clean test's, also in a corruption run (each corrupted test
    # writes its own per_class_iou_<corruption>_<severity>.csv).
    check_reported_iou(results["summary"], results["per_class"], names,
                       ground_truth_classes(cfg), read_per_class_csv(tmp_path))
    if corrupt:
        corruptions = results["corruptions"]
        assert corruptions["clean_mIoU"] == results["summary"]["mIoU"]
        table = corruptions["mIoU"]
        assert set(table) == {"gaussian_noise", "spatter"}
        assert all(set(row) == {1, 5} for row in table.values())
        for name, row in table.items():
            for severity, miou in row.items():
                rows = read_per_class_csv(tmp_path, f"per_class_iou_{name}_{severity}")
                ious = [float(r["iou"]) for r in rows if r["iou"] != "nan"]
                assert miou == pytest.approx(sum(ious) / len(ious), abs=1e-3)
        lines = (tmp_path / "corruptions.md").read_text().splitlines()
        assert len(lines) == 4  # header, rule, one row per corruption
        for line, (name, row) in zip(lines[2:], table.items()):
            cells = [c.strip() for c in line.strip("|").split("|")]
            expected = [f"{row[1]:.1f}", f"{row[5]:.1f}", f"{(row[1] + row[5]) / 2:.1f}",
                        f"{results['summary']['mIoU']:.1f}"]
            assert cells == [name, *expected]


def test_teacher_miou_equals_miou_of_src_predict_labels(data_dir, tmp_path):
    """src.eval's mIoU of the world CLIP on the folder fixture is the mIoU of the label PNGs that
    src.predict writes for the same images and classes, recomputed here from a confusion matrix.
    Both run at the native size (no resize), so the two code paths see the same pixels."""
    from src.eval import evaluate
    from src.predict import predict

    root = data_dir / "custom"
    cfg = compose_eval([
        "data=folder", "teacher=world", "prompts=world", f"paths.data_dir={data_dir}",
        f"paths.output_dir={tmp_path / 'eval'}", "logger=csv", "data.num_workers=0",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "data.test_scale=[64,48]",  # the fixture's 48x64 and 64x48 images keep their size
    ])
    results = evaluate(cfg)
    predict(compose_primary("predict", [
        "teacher=world", "prompts=world", f"images={root / 'images'}",
        f"classes={root / 'classes.txt'}", f"out={tmp_path / 'pred'}", "scale=null",
        "num_workers=0", "overlays=false", "trainer.accelerator=cpu",
        f"paths.output_dir={tmp_path / 'pred'}",
    ]))
    names = (root / "classes.txt").read_text().split()
    num = len(names)
    confmat = np.zeros((num, num), dtype=np.int64)
    masks = sorted((root / "masks").glob("*.png"))
    assert len(masks) == 3
    for mask_path in masks:
        mask = np.array(Image.open(mask_path)).astype(np.int64)
        pred = np.array(Image.open(tmp_path / "pred" / "labels" / mask_path.name)).astype(np.int64)
        assert pred.shape == mask.shape
        valid = mask != 255
        confmat += np.bincount(mask[valid] * num + pred[valid],
                               minlength=num * num).reshape(num, num)
    tp = np.diag(confmat).astype(float)
    union = confmat.sum(0) + confmat.sum(1) - tp
    iou = 100 * np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    assert list(results["per_class"]) == names
    np.testing.assert_allclose(list(results["per_class"].values()), iou, atol=1e-4)
    assert results["summary"]["mIoU"] == pytest.approx(np.nanmean(iou), abs=1e-4)
    # the world CLIP does see colours: a labelling, not a constant map
    assert (confmat.sum(0) > 0).sum() >= 2


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
    reported = json.loads(results[0].read_text())
    masks = sorted((data_dir / "custom" / "masks").glob("*.png"))
    present = set().union(*({int(v) for v in np.unique(np.array(Image.open(m)))} for m in masks))
    present.discard(255)
    names = (data_dir / "custom" / "classes.txt").read_text().split()
    check_reported_iou(reported["summary"], reported["per_class"], names, present,
                       read_per_class_csv(tmp_path))
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
