"""Training-free MaskCLIP evaluation.

    python -m src.eval experiment=context59_maskclip_kspd teacher.pretrained=/weights/ViT-B-16.pt

Composes data, teacher, prompts, refinements and inference mode from ``conf/``, runs
``Trainer.test`` with ``MaskCLIPLitModule`` and reports mIoU (and seen/unseen/hIoU with a
zero-shot split) on the ground truth at its original resolution.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.builders import build_teacher
from src.callbacks import instantiate_callbacks
from src.utils.config import (CONFIG_DIR, fidelity_items, instantiate_loggers,
                              require_writable_dir, to_plain)
from src.utils.io import atomic_write_bytes
from src.utils.runs import optimized_value, refuse_test_split_in_search, tracked_run

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation described by ``cfg``.

    Returns:
        ``{"summary": {"mIoU": ..., ...}, "per_class": {name: IoU}}`` in percent.
    """
    from src.data.splits import unseen_indices
    from src.models.maskclip_module import MaskCLIPLitModule
    from src.prompts.vocabulary import load_vocabulary

    require_writable_dir(cfg.paths.output_dir)  # before any model is built
    refuse_test_split_in_search(cfg, "eval")
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    if cfg.get("ckpt_path"):
        return evaluate_student(cfg, datamodule)
    teacher = build_teacher(cfg)
    # Used only when data.normalize=clip and no explicit mean/std is configured.
    datamodule.set_normalization(teacher.image_mean, teacher.image_std)
    vocabulary = load_vocabulary(cfg.data.vocabulary)
    unseen = (unseen_indices(cfg.zero_shot_split, list(vocabulary.names))
              if cfg.get("zero_shot_split") else None)
    mean, std = datamodule.normalization
    module = MaskCLIPLitModule(teacher, vocabulary, templates=to_plain(cfg.prompts.templates),
                               unseen=unseen, image_mean=mean, image_std=std,
                               background_threshold=cfg.get("background_threshold"))
    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg.get("callbacks"), cfg.trainer,  # conf/callbacks/eval.yaml: panels
                                      has_logger=bool(loggers))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    results = run_tests(cfg, trainer, module, datamodule, lambda m: dict(m.results))
    results["settings"] = run_settings(cfg)
    write_results(cfg.paths.output_dir, results)
    log.info("results: %s", json.dumps(results["summary"]))
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:
        pass
    return results


def evaluate_student(cfg: DictConfig, datamodule) -> dict[str, Any]:
    """Evaluate a trained MaskCLIP+ student checkpoint (``ckpt_path=...``) on ``cfg.data``."""
    from src.data.splits import unseen_indices
    from src.models.maskclip_plus_module import StudentTestModule, load_student

    student = load_student(cfg.ckpt_path)
    # The split is resolved against the checkpoint's own vocabulary; only the metric changes.
    unseen = (unseen_indices(cfg.zero_shot_split, list(student.vocabulary.names))
              if cfg.get("zero_shot_split") else None)
    # The evaluation protocol, not the checkpoint, decides how logits reach the GT's size.
    module = StudentTestModule(student, unseen=unseen, test_resize=cfg.get("test_resize"))
    if student.image_mean:  # the statistics it was trained with, whatever data.* says
        datamodule.set_normalization(student.image_mean, student.image_std, binding=True)
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False)
    results = run_tests(cfg, trainer, module, datamodule,
                        lambda m: {"summary": dict(m.test_summary),
                                   "per_class": dict(m.test_per_class),
                                   "checkpoint": str(cfg.ckpt_path)})
    write_results(cfg.paths.output_dir, results)
    log.info("results: %s", json.dumps(results["summary"]))
    return results


def write_results(out_dir: str | Path, results: dict[str, Any]) -> Path:
    """``results.json``, written atomically: a reader (or a full disk) never sees half a file."""
    path = Path(out_dir) / "results.json"
    atomic_write_bytes(path, json.dumps(results, indent=2).encode("utf-8"))
    return path


def run_settings(cfg: DictConfig) -> dict[str, Any]:
    """What produced a result, for tables that gather runs (scripts/bench8_table.py)."""
    protocol = cfg.get("protocol") or {}
    return {
        "data": cfg.data.get("name") or cfg.data.dataset,
        "model": cfg.teacher.get("model_name"), "weights": cfg.teacher.get("pretrained"),
        "head": cfg.teacher.get("head"), "refine": to_plain(cfg.refine),
        "postproc": (cfg.get("postproc") or {}).get("kind", "none"),
        "protocol": protocol.get("name", "none"),
        "split": cfg.data.get("test_split"),
        "fidelity": fidelity_items(cfg),
        "inference": OmegaConf.to_container(cfg.inference, resolve=True),
        "background_threshold": cfg.get("background_threshold"),
    }


def run_tests(cfg: DictConfig, trainer: L.Trainer, module: L.LightningModule, datamodule,
              results_of) -> dict[str, Any]:
    """The clean test, then (with ``corruptions=``) every corruption × severity (MaskCLIP §4.4).

    Each corrupted image is seeded by (seed, image index), so runs repeat exactly. Prints and
    saves (``corruptions.md``) a table of mIoU per corruption and severity beside the clean one;
    each test's per-class table is its own file (``per_class_iou_<corruption>_<severity>.csv``).
    """
    trainer.test(module, datamodule=datamodule)
    results = results_of(module)
    spec = cfg.get("corruptions")
    if not spec:
        return results
    table: dict[str, dict[int, float]] = {}
    for name in spec.names:
        for severity in spec.severities:
            datamodule.set_corruption(name, severity, spec.seed)
            module.per_class_table = f"per_class_iou_{name}_{int(severity)}"
            trainer.test(module, datamodule=datamodule)
            table.setdefault(name, {})[int(severity)] = results_of(module)["summary"]["mIoU"]
            log.info("%s severity %d: mIoU %.2f", name, severity, table[name][int(severity)])
    datamodule.set_corruption(None)
    module.per_class_table = "per_class_iou"
    clean = results["summary"]["mIoU"]
    results["corruptions"] = {"clean_mIoU": clean, "mIoU": table, "seed": spec.seed}
    markdown = corruption_table(clean, table)
    atomic_write_bytes(Path(cfg.paths.output_dir) / "corruptions.md", markdown.encode("utf-8"))
    print(markdown)
    return results


def corruption_table(clean: float, table: dict[str, dict[int, float]]) -> str:
    """Markdown: one row per corruption, one column per severity, the mean, and clean mIoU."""
    severities = sorted({s for row in table.values() for s in row})
    lines = ["| corruption | " + " | ".join(f"severity {s}" for s in severities)
             + " | mean | clean |",
             "|---|" + "---:|" * (len(severities) + 2)]
    for name, row in table.items():
        values = [row[s] for s in severities]
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values)
                     + f" | {sum(values) / len(values):.1f} | {clean:.1f} |")
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@tracked_run("eval", "results.json")
def main(cfg: DictConfig) -> float | None:
    """``python -m src.eval``; returns ``optimized_metric`` of the summary for a sweeper."""
    return optimized_value(cfg, evaluate(cfg)["summary"])


if __name__ == "__main__":
    main()
