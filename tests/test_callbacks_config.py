"""Callbacks as config: the learning-rate monitor, rich's progress bar and model summary, and
what the trainer settings leave out."""

from __future__ import annotations

import csv

import pytest
from lightning.pytorch.callbacks import (LearningRateMonitor, ModelCheckpoint, RichModelSummary,
                                         RichProgressBar)

from src.callbacks import instantiate_callbacks
from src.models.maskclip_plus_module import poly_lr_factor
from src.utils.experiments import compose_config
from tests.test_train import FAST


def kinds(callbacks) -> set[type]:
    return {type(c) for c in callbacks}


def test_trainer_settings_leave_out_what_they_turn_off(tmp_path):
    cfg = compose_config("train", ["experiment=world_annofree", f"paths.output_dir={tmp_path}"])
    every = kinds(instantiate_callbacks(cfg.callbacks, {"enable_progress_bar": True}))
    assert {LearningRateMonitor, RichProgressBar, RichModelSummary, ModelCheckpoint} <= every
    quiet = kinds(instantiate_callbacks(cfg.callbacks, {"enable_progress_bar": False,
                                                        "enable_model_summary": False},
                                        has_logger=False))
    assert ModelCheckpoint in quiet
    assert not {LearningRateMonitor, RichProgressBar, RichModelSummary} & quiet


def test_the_lr_monitor_logs_the_poly_schedule(tmp_path):
    from src.train import train

    cfg = compose_config("train", ["experiment=world_annofree", *FAST, "max_steps=6",
                                   "val_every=6", "checkpoint_every=6", "test_after_fit=false",
                                   "trainer.log_every_n_steps=1", f"paths.output_dir={tmp_path}"])
    train(cfg)
    (metrics,) = tmp_path.rglob("metrics.csv")
    with metrics.open() as f:
        logged = {int(r["step"]): float(r["train/lr"]) for r in csv.DictReader(f)
                  if r.get("train/lr")}
    assert len(logged) >= 5
    base, floor = cfg.optim.lr, cfg.optim.min_lr
    for step, lr in logged.items():
        assert lr == pytest.approx(base * poly_lr_factor(step, 6, base, floor, cfg.optim.power),
                                   rel=1e-6), step
