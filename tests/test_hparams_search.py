"""hparams_search=: Optuna searches that return a validation metric and never read the test split."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from src.utils.config import PROJECT_ROOT
from src.utils.experiments import compose_config
from src.utils.runs import optimized_value
from tests.test_train import FAST

ENV = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")


def test_eval_search_runs_three_trials_on_the_validation_split(tmp_path):
    cmd = [sys.executable, "-m", "src.eval", "experiment=world_maskclip",
           "hparams_search=world_maskclip", "hydra.sweeper.n_trials=3",
           "data.dataset_kwargs.num_images=8", "logger=csv", "trainer.enable_progress_bar=false",
           "print_config=false", f"paths.log_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (best,) = tmp_path.rglob("optimization_results.yaml")
    trials = sorted(best.parent.glob("*/results.json"))
    assert len(trials) == 3
    results = [json.loads(p.read_text()) for p in trials]
    assert all(r["settings"]["split"] == "val" for r in results)  # never the test split
    assert all(r["settings"]["refine"]["key_smoothing"] for r in results)
    # the sweeper got each trial's validation mIoU: its best is the best of the three
    found = OmegaConf.load(best)
    assert found.best_value == pytest.approx(max(r["summary"]["mIoU"] for r in results))
    chosen = [r for r in results if r["summary"]["mIoU"] == pytest.approx(found.best_value)][0]
    assert chosen["settings"]["refine"]["ks_thresh"] == pytest.approx(
        found.best_params["refine.ks_thresh"])
    assert (best.parent / "summary.csv").is_file()  # the sweep table too


def test_a_search_refuses_the_test_split(tmp_path):
    from src.eval import evaluate
    from src.train import train

    cfg = compose_config("eval", ["experiment=world_maskclip", "optimized_metric=mIoU",
                                  f"paths.output_dir={tmp_path}"])
    assert cfg.data.test_split == "test"
    with pytest.raises(ValueError, match="must not read the test split"):
        evaluate(cfg)
    for search in (["test_after_fit=true", "optimized_metric=val/mIoU"],
                   ["test_after_fit=false", "optimized_metric=test/mIoU"]):
        cfg = compose_config("train", ["experiment=world_annofree", *FAST, *search,
                                       f"paths.output_dir={tmp_path}"])
        with pytest.raises(ValueError, match="must not read the test split"):
            train(cfg)


def test_search_presets_compose_with_their_entry_points():
    cfg = compose_config("eval", ["experiment=world_maskclip", "hparams_search=world_maskclip"])
    assert (cfg.optimized_metric, cfg.data.test_split) == ("mIoU", "val")
    cfg = compose_config("train", ["experiment=world_zs", "hparams_search=world_student"])
    assert cfg.optimized_metric == "val/mIoU" and cfg.test_after_fit is False


def test_optimized_value():
    assert optimized_value(OmegaConf.create({"optimized_metric": None}), {"mIoU": 1.0}) is None
    cfg = OmegaConf.create({"optimized_metric": "val/mIoU"})
    assert optimized_value(cfg, {"val/mIoU": 31.5, "train/loss": 1.0}) == 31.5
    with pytest.raises(KeyError, match="val/mIoU.*train/loss"):
        optimized_value(cfg, {"train/loss": 1.0})


@pytest.mark.slow
def test_student_search_runs_two_trials(tmp_path):
    cmd = [sys.executable, "-m", "src.train", "experiment=world_zs", "hparams_search=world_student",
           "hydra.sweeper.n_trials=2", *FAST, "max_steps=4", "val_every=4", "checkpoint_every=4",
           "print_config=false", f"paths.log_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=ENV, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (best,) = tmp_path.rglob("optimization_results.yaml")
    metrics = [json.loads(p.read_text()) for p in best.parent.glob("*/metrics.json")]
    assert len(metrics) == 2 and not any("test/mIoU" in m for m in metrics)
    assert OmegaConf.load(best).best_value == pytest.approx(max(m["val/mIoU"] for m in metrics))
