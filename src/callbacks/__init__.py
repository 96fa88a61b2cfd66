"""Lightning callbacks: the prediction writers of src.predict / src.label (``writers``) and the
image | ground truth | prediction panels of src.train and src.eval (``panels``).

The job bookkeeping around the writers (``job.json``, resume, overwrite) is not a callback and
lives in :mod:`src.utils.jobs`.
"""

from __future__ import annotations

from typing import Any


def instantiate_callbacks(callbacks_cfg: Any, trainer_cfg: Any = None,
                          has_logger: bool = True) -> list:
    """Instantiate every node of a ``callbacks:`` config group that has a ``_target_``.

    Callbacks that the run's trainer settings turn off are left out instead of making Lightning
    refuse the run: progress bars with ``trainer.enable_progress_bar=false``, model summaries
    with ``trainer.enable_model_summary=false``, the learning-rate monitor without a logger.
    """
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelSummary, ProgressBar

    trainer_cfg = trainer_cfg or {}
    off = []
    if not trainer_cfg.get("enable_progress_bar", True):
        off.append(ProgressBar)
    if not trainer_cfg.get("enable_model_summary", True):
        off.append(ModelSummary)
    if not has_logger:
        off.append(LearningRateMonitor)
    callbacks = [instantiate(node) for node in (callbacks_cfg or {}).values()
                 if node and "_target_" in node]
    return [c for c in callbacks if not isinstance(c, tuple(off))]
