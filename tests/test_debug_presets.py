"""debug=fdr|limit|overfit|profiler: each preset is a real config that runs, with what it
promises (one batch; a few batches with checkpoints; a loss that falls on repeated batches; a
profile on disk)."""

from __future__ import annotations

import csv

import pytest
import torch

from src.utils.experiments import compose_config
from tests.test_train import FAST

TRAIN = ["experiment=world_annofree", *FAST]


def run_train(preset: str, tmp_path, *extra: str) -> dict:
    from src.train import train

    return train(compose_config("train", [*TRAIN, f"debug={preset}", *extra,
                                          f"paths.output_dir={tmp_path}"]))


def logged_losses(tmp_path) -> list[float]:
    (metrics,) = tmp_path.rglob("metrics.csv")
    with metrics.open() as f:
        return [float(row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]


def test_fdr_runs_one_step_and_writes_no_checkpoint(tmp_path):
    metrics = run_train("fdr", tmp_path)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert not list(tmp_path.rglob("*.ckpt"))


def test_limit_runs_a_short_real_run_with_checkpoints(tmp_path):
    metrics = run_train("limit", tmp_path, "logger=csv")
    assert "val/mIoU" in metrics
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert ckpt["global_step"] == 6
    assert (tmp_path / "checkpoints" / "step000003.ckpt").is_file()


def test_overfit_repeats_two_batches_and_the_loss_falls(tmp_path):
    from src.data.sampling import StepSampler

    # the stream: micro-steps 0, 1, 0, 1, ... (positions of a batch of 2)
    positions = iter(StepSampler(2, cycle=2))
    assert [next(positions) for _ in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    run_train("overfit", tmp_path, "logger=csv", "trainer.log_every_n_steps=1")
    losses = logged_losses(tmp_path)
    assert len(losses) >= 50
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)


def test_profiler_writes_its_report(tmp_path):
    run_train("profiler", tmp_path)
    reports = list(tmp_path.glob("*perf*.txt"))
    assert reports and "run_training_epoch" in reports[0].read_text()


@pytest.mark.parametrize("preset", ["fdr", "limit", "profiler"])
def test_eval_runs_under_each_preset(preset, tmp_path):
    from src.eval import evaluate

    cfg = compose_config("eval", ["experiment=world_maskclip", "teacher=tiny",
                                  "data.dataset_kwargs.num_images=8", "trainer.accelerator=cpu",
                                  "trainer.enable_progress_bar=false", "logger=csv",
                                  f"debug={preset}", f"paths.output_dir={tmp_path}"])
    results = evaluate(cfg)
    assert 0.0 <= results["summary"]["mIoU"] <= 100.0
