"""What wraps every entry point: ``status.json``, the config tree, loggers finished.

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


#: The config groups printed first in the tree, in this order; the other keys follow.
TREE_ORDER = ("data", "teacher", "student", "prompts", "refine", "postproc", "inference",
              "trainer", "logger", "callbacks", "paths")


def print_config_tree(cfg: DictConfig, save_dir: str | Path | None = None,
                      resolve: bool = True) -> str:
    """Print the composed config as a rich tree (groups first) and save it as
    ``save_dir/config_tree.log``; returns the plain text.

    Values that cannot be resolved (a missing environment variable, ``???``) are shown
    unresolved rather than stopping the run here; the entry point reports them itself.
    """
    import io

    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    keys = [k for k in TREE_ORDER if k in cfg] + [k for k in cfg if k not in TREE_ORDER]
    for key in keys:
        branch = tree.add(str(key), guide_style="dim")
        node = cfg[key] if not OmegaConf.is_missing(cfg, key) else "???"
        try:
            text = (OmegaConf.to_yaml(node, resolve=resolve) if OmegaConf.is_config(node)
                    else str(node))
        except Exception:  # an interpolation that only resolves later (or never)
            text = OmegaConf.to_yaml(node, resolve=False) if OmegaConf.is_config(node) \
                else str(node)
        branch.add(Syntax(text, "yaml", theme="ansi_dark", word_wrap=True))
    Console().print(tree)
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(tree)
    plain = buffer.getvalue()
    if save_dir is not None:
        try:
            path = Path(save_dir) / "config_tree.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, plain.encode("utf-8"))
        except OSError as err:  # the entry point itself says what is wrong with the folder
            log.warning("could not save the config tree in %s: %s", save_dir, err)
    return plain


def finish_loggers(failed: bool) -> None:
    """Close a W&B run if one is open (exit code 1 after a failure), so that an offline run is
    complete on disk and the next job in the same process starts a new one."""
    import sys

    wandb = sys.modules.get("wandb")  # only if the run imported it
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)


def tracked_run(task: str, metrics_file: str) -> Callable:
    """Decorate an entry point's ``fn(cfg)`` so that its run folder gets a status on every path.

    Args:
        task: the entry point's name (``eval``, ``train``).
        metrics_file: the file, relative to the run folder, the entry point writes its
            metrics to.

    The wrapper also prints the composed config as a tree at the start and saves it as
    ``config_tree.log`` (``print_config=false`` turns both off), and finishes the loggers (W&B)
    on every path. The error is recorded and re-raised: a failed job still fails (Hydra's sweep
    reports it), and its row in the sweep summary says ``failed`` with the message.
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
            failed = True
            try:
                tree = print_config_tree if cfg.get("print_config", True) else None
                if tree is not None:
                    tree(cfg, run_dir)
                result = fn(cfg)
                failed = False
            except BaseException as err:  # KeyboardInterrupt too: the run did not finish
                status("failed", error=f"{type(err).__name__}: {err}"[:2000],
                       seconds=round(time.time() - started, 1))
                raise
            finally:
                finish_loggers(failed)
            status("completed", seconds=round(time.time() - started, 1))
            return result

        return wrapper

    return decorate


def optimized_value(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """The value an entry point returns to a Hydra sweeper (Optuna): ``metrics[optimized_metric]``,
    or None when no search is configured.

    Raises:
        KeyError: naming the metric and the ones there are.
    """
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric={name!r} is not among this run's metrics "
                       f"({sorted(metrics)}); choose one of them")
    return float(metrics[name])


def refuse_test_split_in_search(cfg: DictConfig, task: str) -> None:
    """A search (``optimized_metric`` set) must not see the test split.

    Raises:
        ValueError: src.eval evaluating ``data.test_split=test``, or src.train with
            ``test_after_fit=true`` or a metric that is not a validation one.
    """
    name = cfg.get("optimized_metric")
    if not name:
        return
    if task == "eval" and cfg.data.get("test_split") == "test":
        raise ValueError(f"optimized_metric={name} makes this a search, which must not read the "
                         "test split: set data.test_split=val (hparams_search configs do)")
    if task == "train" and (cfg.get("test_after_fit") or not str(name).startswith("val/")):
        raise ValueError(f"optimized_metric={name} makes this a search, which must not read the "
                         "test split: set test_after_fit=false and optimize a val/ metric")
