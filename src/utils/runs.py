"""A run folder's ``status.json``: what an entry point did, written on every path.

Every ``src.eval`` and ``src.train`` run writes ``status.json`` into its output folder when it
starts (``running``), and again when it ends: ``completed`` with the file holding its metrics
(``results.json`` for src.eval, ``metrics.json`` for src.train), or ``failed`` with the error.
Tables that gather runs (the sweep summary, :mod:`src.utils.sweeps`) read it instead of guessing
from which files happen to exist; a run killed from outside stays ``running``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from src.utils.io import atomic_write_bytes

STATUS_FILE = "status.json"
log = logging.getLogger(__name__)


def write_status(run_dir: str | Path, state: str, **fields: Any) -> Path:
    """Write ``run_dir/status.json`` atomically: ``{"state": state, "time": ..., **fields}``."""
    path = Path(run_dir) / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}
    atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    return path


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's status record, or None when it has none (or an unreadable one)."""
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def tracked_run(task: str, metrics_file: str) -> Callable:
    """Decorate an entry point's ``fn(cfg)`` so that its run folder gets a status on every path.

    Args:
        task: the entry point's name (``eval``, ``train``).
        metrics_file: the file, relative to the run folder, the entry point writes its
            metrics to.

    The error is recorded and re-raised: a failed job still fails (Hydra's sweep reports it),
    and its row in the sweep summary says ``failed`` with the message.
    """

    def decorate(fn: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
        @functools.wraps(fn)
        def wrapper(cfg: DictConfig) -> Any:
            run_dir = Path(cfg.paths.output_dir)
            started = time.time()

            def status(state: str, **fields: Any) -> None:
                try:
                    write_status(run_dir, state, task=task, metrics_file=metrics_file, **fields)
                except OSError as err:  # the entry point itself says what is wrong with the folder
                    log.warning("could not write %s in %s: %s", STATUS_FILE, run_dir, err)

            status("running")
            try:
                result = fn(cfg)
            except BaseException as err:  # KeyboardInterrupt too: the run did not finish
                status("failed", error=f"{type(err).__name__}: {err}"[:2000],
                       seconds=round(time.time() - started, 1))
                raise
            status("completed", seconds=round(time.time() - started, 1))
            return result

        return wrapper

    return decorate
