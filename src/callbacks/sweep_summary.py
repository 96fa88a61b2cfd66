"""A Hydra callback (not a Lightning one): the sweep's table after every job and at the end.

Configured in ``conf/hydra/default.yaml`` (``hydra.callbacks.sweep_summary``), so every
``-m`` run of ``src.eval`` and ``src.train`` gets ``summary.csv`` / ``summary.md`` in its sweep
folder (:mod:`src.utils.sweeps`). It rebuilds the table from the run folders after each job, so
the table exists even when a failed job stops the sweep before its end (Hydra raises the first
failure once the jobs have run) and when the jobs run in other processes (joblib, submitit /
SLURM: the callback runs where the job ran; the writes are atomic, the last one sees every
finished folder), and once more when the sweep ends.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Writes ``<hydra.sweep.dir>/summary.{csv,md}`` during and after a multirun."""

    def _write(self, config: DictConfig, final: bool) -> None:
        from hydra.types import RunMode

        from src.utils.sweeps import write_summary

        hydra_cfg = config.hydra
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        try:
            written = write_summary(hydra_cfg.sweep.dir)
        except Exception as err:  # a table must never fail the job it summarises
            log.warning("sweep summary of %s not written: %s", hydra_cfg.sweep.dir, err)
            return
        if written and final:
            print(f"sweep summary: {written[1]} ({written[0].name} beside it)", flush=True)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        self._write(config, final=False)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._write(config, final=True)
