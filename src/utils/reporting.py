"""Writing evaluation results where users read them: the console, a CSV beside the run, W&B.

Metrics (``src.metrics``) only compute numbers; the LitModules hand them to these writers.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from lightning.pytorch.loggers import WandbLogger

from src.utils.io import atomic_open

log = logging.getLogger(__name__)


def iou_by_class(names: Sequence[str], iou: Tensor) -> dict[str, float]:
    """Class name → IoU in percent (NaN for a class absent from both prediction and truth).

    Args:
        names: C class names; iou: C IoUs as fractions.
    """
    return {name: float(100 * value) for name, value in zip(names, iou)}


def report_per_class(trainer, loggers, names: Sequence[str], iou: Tensor,
                     unseen: Sequence[int] | None, stage: str = "test",
                     table: str = "per_class_iou") -> None:
    """Print the per-class IoU table, write ``<table>.csv`` and log a W&B table.

    Args:
        trainer: the Lightning trainer (for the log directory and the rank).
        names: C class names; iou: C IoUs as fractions (NaN for absent classes).
        unseen: unseen class indices, to mark each row seen/unseen.
        table: the file and W&B table name; each corruption test names its own, so the clean
            test's ``per_class_iou.csv`` is never overwritten.
    """
    if not trainer.is_global_zero:
        return
    rows = list(iou_by_class(names, iou).items())
    lines = [f"{'class':<24}{'IoU':>8}"] + [
        f"{name:<24}{'nan' if math.isnan(v) else f'{v:.2f}':>8}" for name, v in rows]
    log.info("per-class IoU (%%):\n%s", "\n".join(lines))
    log_dir = trainer.log_dir or trainer.default_root_dir
    if log_dir:
        path = Path(log_dir) / f"{table}.csv"
        with atomic_open(path, "w") as fh:  # never a half-written table
            writer = csv.writer(fh)
            writer.writerow(["class", "iou", "split"])
            for index, (name, value) in enumerate(rows):
                split = "" if not unseen else ("unseen" if index in unseen else "seen")
                writer.writerow([name, f"{value:.4f}", split])
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(f"{stage}/{table}", columns=["class", "IoU"],
                             data=[[n, v] for n, v in rows])
