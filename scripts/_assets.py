"""Helpers shared by the scripts that pre-train the offline world's committed models
(``pretrain_world_clip.py``, ``pretrain_world_proxy.py``): the fp16 asset and its provenance."""

from __future__ import annotations

import hashlib
import platform
import time
from pathlib import Path
from typing import Any

import torch


def save_fp16(module: torch.nn.Module, path: Path) -> str:
    """Write an fp16 safetensors state dict atomically; return its sha256."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def provenance(path: Path, sha: str, started: float, **versions: str) -> dict[str, Any]:
    """What the asset's JSON records besides the recipe: time, hash, size, versions, machine."""
    return {
        "wall_minutes": (time.time() - started) / 60,
        "sha256": sha, "size_bytes": path.stat().st_size,
        "versions": {"torch": torch.__version__, **versions,
                     "python": platform.python_version()},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
    }
