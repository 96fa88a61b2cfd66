"""How many devices a run uses, the per-device batch and SyncBN: arithmetic, no Lightning."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf


def devices_count(devices: Any) -> int:
    """How many devices a ``trainer.devices`` value means (``auto`` → what exists)."""
    if isinstance(devices, int):
        return max(devices, 1) if devices != -1 else _available_devices()
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    if isinstance(devices, str) and devices.isdigit():
        return int(devices)
    return _available_devices()


def _available_devices() -> int:
    import torch

    return torch.cuda.device_count() or 1


def per_device_batch(global_batch: int, devices: int, num_nodes: int = 1,
                     max_device_batch: int | None = None) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) giving the configured global batch.

    With ``max_device_batch`` (what fits in one device's memory), the per-device share is split
    into equal micro-batches accumulated before each optimizer step.

    Raises:
        ValueError: when the global batch cannot be split evenly.
    """
    world = devices * num_nodes
    if global_batch % world:
        raise ValueError(f"global_batch_size={global_batch} does not split over {world} "
                         "devices; choose a multiple of the device count")
    share = global_batch // world
    if not max_device_batch or share <= max_device_batch:
        return share, 1
    accumulate = math.ceil(share / max_device_batch)
    while share % accumulate:
        accumulate += 1
    return share // accumulate, accumulate


def use_sync_batchnorm(trainer_cfg: DictConfig, devices: int) -> bool:
    """SyncBN as in the official multi-GPU student, unless ``trainer.sync_batchnorm`` says otherwise.

    ``null`` (the default) means: on for more than one GPU, off otherwise. SyncBN needs a
    process group of GPUs, so it stays off on CPU (``ddp_spawn`` tests) whatever the count.
    """
    value = trainer_cfg.get("sync_batchnorm")
    if value is not None:
        return bool(value)
    import torch

    world = devices * int(trainer_cfg.get("num_nodes") or 1)
    on_gpu = torch.cuda.is_available() and trainer_cfg.get("accelerator") in ("auto", "gpu", "cuda")
    return world > 1 and on_gpu
