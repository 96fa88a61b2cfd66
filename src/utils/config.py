"""Hydra/OmegaConf helpers shared by the entry points."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _project_root() -> str:
    """The checkout root (where pyproject.toml is), or the working directory when installed."""
    return str(PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd())


if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", _project_root)

CONFIG_DIR = str(PROJECT_ROOT / "conf")


def to_plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (dicts and lists)."""
    if isinstance(node, DictConfig) or OmegaConf.is_list(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def instantiate_loggers(logger_cfg: DictConfig | None) -> list:
    """Instantiate every logger node that has a ``_target_`` (W&B, CSV, TensorBoard)."""
    from hydra.utils import instantiate

    if not logger_cfg:
        return []
    loggers = []
    for name, node in logger_cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            if "wandb" in node._target_.lower():
                # Offline unless the user asked for online: never a surprise network call.
                os.environ.setdefault("WANDB_MODE", "offline" if node.get("offline", True)
                                      else "online")
            log.info("instantiating logger <%s>", node._target_)
            loggers.append(instantiate(node))
    return loggers
