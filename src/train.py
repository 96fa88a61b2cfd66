"""MaskCLIP+ training: a student on the frozen teacher's online pseudo-labels.

    python -m src.train experiment=world_annofree
    python -m src.train experiment=voc_zs trainer.devices=8

Composes data, teacher, student, prompts and refinements from ``conf/``, derives the per-device
batch from ``global_batch_size``, trains with ``MaskCLIPPlusLitModule`` and tests the last
weights (never a metric-picked checkpoint).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from src.utils.config import CONFIG_DIR, instantiate_loggers, to_plain

log = logging.getLogger(__name__)


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


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str | Path) -> str | None:
    """``last``: this run's ``checkpoints/last.ckpt`` (must exist); ``auto``: it if it exists.

    ``auto`` is for jobs a scheduler may requeue (SLURM timeouts): the first attempt starts fresh
    and every later one resumes exactly where the previous stopped.
    """
    if ckpt_path not in ("last", "auto"):
        return ckpt_path
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    if last.is_file():
        return str(last)
    if ckpt_path == "last":
        raise FileNotFoundError(
            f"ckpt_path=last: {last} does not exist. Point paths.output_dir at the run to resume, "
            "pass the checkpoint file itself (ckpt_path=/path/last.ckpt), or use ckpt_path=auto "
            "to start fresh when there is nothing to resume.")
    return None


def build_module(cfg: DictConfig):
    """Instantiate teacher, student partial and the LitModule from a composed config."""
    from src.data.splits import unseen_indices
    from src.eval import build_teacher
    from src.models.maskclip_plus_module import MaskCLIPPlusLitModule
    from src.prompts.vocabulary import load_vocabulary

    vocabulary = load_vocabulary(cfg.data.vocabulary)
    split = (unseen_indices(cfg.zero_shot_split, list(vocabulary.names))
             if cfg.get("zero_shot_split") else None)
    if cfg.setting == "zeroshot" and not split:
        raise ValueError("setting=zeroshot needs zero_shot_split (e.g. data.zero_shot_split=voc20)")
    unseen = split if cfg.setting == "zeroshot" else None
    background_index = 0 if vocabulary.names[0] == "background" else None
    # Even the supervised setting needs the teacher's text tower for the student's classifier.
    teacher = build_teacher(cfg)
    return MaskCLIPPlusLitModule(
        teacher=teacher, student=instantiate(cfg.student), vocabulary=vocabulary,
        templates=to_plain(cfg.prompts.templates), setting=cfg.setting, unseen=unseen,
        background_index=background_index, max_steps=cfg.max_steps,
        guided_steps=guided_steps(cfg.guided_fraction, cfg.max_steps, cfg.get("guided_offset", 0)),
        self_training=to_plain(cfg.self_training), num_overlays=cfg.num_overlays,
        report_unseen=split, student_cfg=to_plain(cfg.student),
        loss_average=(cfg.get("loss") or {}).get("average", "valid_pixels"),
        test_resize=cfg.get("test_resize", "direct"), **to_plain(cfg.optim))


def guided_steps(fraction: float, max_steps: int, offset: int = 0) -> int:
    """How many optimizer steps the teacher guides in zero-shot round 0.

    The official zero-shot configs set ``start_clip_guided=(1, T/10 - 1)`` on mmseg's 1-based
    iteration counter, so the teacher labels T/10 - 1 iterations (1,999 of VOC's 20k), not
    T/10: ``fidelity=official`` sets ``guided_offset=-1``.
    """
    return max(0, round(fraction * max_steps) + int(offset))


def suppressed_classes(setting: str, num_classes: int, unseen) -> list[int] | None:
    """The classes the official ``LoadAnnotations(suppress_labels=...)`` turns into -1.

    The crop rule ``cat_max_ratio`` sees them as one category: every class annotation-free,
    the unseen classes in zero-shot, none when training on ground truth.
    """
    if setting == "annofree":
        return list(range(num_classes))
    if setting == "zeroshot":
        return list(unseen)
    return None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and test) the configured MaskCLIP+ run; returns the logged metrics."""
    L.seed_everything(cfg.seed, workers=True)
    devices = devices_count(cfg.trainer.get("devices", 1))
    batch, accumulate = per_device_batch(cfg.global_batch_size, devices,
                                         cfg.trainer.get("num_nodes", 1),
                                         cfg.get("max_device_batch"))
    with open_dict(cfg):
        cfg.data.batch_size = batch
    datamodule = instantiate(cfg.data, seed=cfg.seed, _convert_="all")
    module = build_module(cfg)
    if module.teacher is not None:
        datamodule.set_normalization(module.teacher.image_mean, module.teacher.image_std)
    mean, std = datamodule.normalization
    module.hparams.update(image_mean=list(mean), image_std=list(std))
    datamodule.set_suppressed_classes(suppressed_classes(
        cfg.setting, module.vocabulary.num_classes, module.unseen or []))
    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values()
                 if node and "_target_" in node]
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                                     accumulate_grad_batches=accumulate,
                                     sync_batchnorm=use_sync_batchnorm(cfg.trainer, devices))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test_after_fit"):
        trainer.test(module, datamodule=datamodule)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("metrics: %s", json.dumps({k: round(v, 3) for k, v in metrics.items()}))
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
