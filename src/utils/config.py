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

#: Teacher heads that are the official MaskCLIP teacher: fidelity=official's teacher items
#: (exact GELU, LayerNorm eps 1e-6, ImageNet statistics, stretched features) apply to them.
MASKCLIP_HEADS = ("maskclip", "naive")


def _maskclip_teacher(head: str, official: Any, other: Any) -> Any:
    """``${maskclip_teacher:${teacher.head},a,b}``: a for the MaskCLIP heads, b for the others."""
    return official if head in MASKCLIP_HEADS else other


if not OmegaConf.has_resolver("maskclip_teacher"):
    OmegaConf.register_new_resolver("maskclip_teacher", _maskclip_teacher)

CONFIG_DIR = str(PROJECT_ROOT / "conf")

#: The keys conf/fidelity/{official,clip}.yaml and fidelity/training/* set, by item number of
#: the README's fidelity table. Evaluation records their values beside each result.
FIDELITY_ITEMS: dict[str, int] = {
    "teacher.image_act": 1, "teacher.image_ln_eps": 1, "loss.average": 2, "data.normalize": 3,
    "teacher.normalize": 3, "teacher.autocast_dtype": 4, "inference.align": 5,
    "data.cat_max_ratio": 6, "data.photometric": 7, "student.decoder_init": 8, "guided_offset": 9,
    "test_resize": 10,
}


def fidelity_items(cfg: DictConfig) -> dict[str, Any]:
    """The resolved value of every fidelity item present in ``cfg`` (dotted key → value)."""
    out = {}
    for key in FIDELITY_ITEMS:
        value = OmegaConf.select(cfg, key, default="__absent__")
        if value != "__absent__":
            out[key] = value
    return out


def require_writable_dir(path: str | Path, key: str = "paths.output_dir",
                         purpose: str = "") -> Path:
    """Create ``path`` and prove it is writable before any work starts.

    Without this, an unwritable run folder surfaces as a traceback from inside Lightning, after
    the models were built and perhaps after the evaluation ran. The probe file's name holds the
    process id, so DDP ranks starting together do not remove each other's.

    Args:
        purpose: what the entry point writes there, for the message.

    Raises:
        PermissionError: naming the folder, the config key and the fix.
    """
    out = Path(path).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"{key}={out} cannot be created or written ({err.strerror or err})"
            f"{'; ' + purpose if purpose else ''}. Choose a folder "
            f"you can write: {key}=/path/to/run (or hydra.run.dir=/path/to/run, which "
            f"{key} follows by default).") from err
    return out


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
