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
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from src.callbacks import instantiate_callbacks
from src.utils.config import CONFIG_DIR, instantiate_loggers, require_writable_dir, to_plain
from src.utils.devices import devices_count, per_device_batch, use_sync_batchnorm
from src.utils.io import atomic_write_bytes
from src.utils.runs import optimized_value, refuse_test_split_in_search, tracked_run

log = logging.getLogger(__name__)


def checkpoint_dir(cfg: DictConfig) -> Path:
    """Where the ModelCheckpoint callback writes (``<paths.output_dir>/checkpoints`` by default)."""
    node = (cfg.get("callbacks") or {}).get("model_checkpoint") or {}
    dirpath = node.get("dirpath") if hasattr(node, "get") else None
    return Path(dirpath) if dirpath else Path(cfg.paths.output_dir) / "checkpoints"


def scan_checkpoints(directory: str | Path) -> tuple[list[tuple[int, float, Path]],
                                                     list[tuple[Path, str, bool]]]:
    """The complete training checkpoints in ``directory``, newest first, and the others.

    Complete: it loads with ``weights_only=True`` (memory-mapped: only shapes and metadata are
    read) and holds what resuming needs (``TRAINING_CHECKPOINT_KEYS`` with ``student.*``
    weights). Newest: highest ``global_step`` inside, then latest modification time.

    Returns:
        ([(global_step, mtime, path), ...] newest first,
         [(path, why it is skipped, whether it is empty or cut short), ...]).
    """
    from src.models.weights_files import UnreadableWeightsError, format_size, read_weights_file
    from src.models.maskclip_plus_module import student_checkpoint_problem

    complete, skipped = [], []
    for path in sorted(Path(directory).glob("*.ckpt")):
        try:
            weights = read_weights_file(path, mmap=True)
        except UnreadableWeightsError as err:
            skipped.append((path, f"{format_size(err.size)}, {err.reason}", err.damaged))
            continue
        except OSError as err:
            skipped.append((path, str(err), False))
            continue
        problem = student_checkpoint_problem(weights, training=True)
        if problem:
            skipped.append((path, f"it {problem}", False))
            continue
        step = weights.obj.get("global_step")
        complete.append((int(step) if isinstance(step, int) else -1, path.stat().st_mtime, path))
        del weights
    complete.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return complete, skipped


INCOMPLETE_SUFFIX = ".incomplete"


def _set_aside(path: Path) -> None:
    """Rename an incomplete checkpoint to ``<name>.incomplete``.

    Lightning's ModelCheckpoint never overwrites a file it did not write in this run: beside a
    cut-short ``last.ckpt`` it would save ``last-v1.ckpt``, and ``last.ckpt`` would stay broken.
    """
    target = path.with_name(path.name + INCOMPLETE_SUFFIX)
    try:
        path.replace(target)
    except OSError as err:
        log.warning("ckpt_path=auto: could not rename %s (%s); Lightning will save beside it "
                    "with a -v1 suffix", path, err)
    else:
        log.warning("ckpt_path=auto: renamed it to %s so that training writes a whole %s",
                    target.name, path.name)


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str | Path,
                      checkpoints: str | Path | None = None,
                      set_aside: bool = False) -> str | None:
    """``last``: this run's ``checkpoints/last.ckpt`` (must exist); ``auto``: the newest
    complete checkpoint of the run (``last.ckpt`` or a periodic ``step*.ckpt``), or None.

    ``auto`` is for jobs a scheduler may requeue (SLURM timeouts): the first attempt starts fresh
    and every later one resumes where the previous one last saved, passing over a checkpoint
    the kill cut short (each one skipped is logged with the reason). ``last`` is returned as it
    is; ``train`` then refuses it clearly if it is truncated or of another run.

    Args:
        checkpoints: the folder the checkpoints are written to (default
            ``<output_dir>/checkpoints``).
        set_aside: with ``auto``, rename each empty or cut-short checkpoint to
            ``<name>.incomplete`` (``train`` does, on rank 0), so that the resumed run saves
            under the usual names again. Whole files of another kind are left where they are.
    """
    if ckpt_path not in ("last", "auto"):
        return ckpt_path
    folder = Path(checkpoints) if checkpoints else Path(output_dir) / "checkpoints"
    last = folder / "last.ckpt"
    if ckpt_path == "last":
        if last.is_file():
            return str(last)
        raise FileNotFoundError(
            f"ckpt_path=last: {last} does not exist. Point paths.output_dir at the run to resume, "
            "pass the checkpoint file itself (ckpt_path=/path/last.ckpt), or use ckpt_path=auto "
            "to start fresh when there is nothing to resume.")
    complete, skipped = scan_checkpoints(folder) if folder.is_dir() else ([], [])
    for path, reason, damaged in skipped:
        log.warning("ckpt_path=auto: skipping %s: %s", path, reason)
        if set_aside and damaged:
            _set_aside(path)
    if complete:
        step, _, path = complete[0]
        log.info("ckpt_path=auto: resuming from %s (global step %d; %d complete checkpoint(s) "
                 "in %s)", path, step, len(complete), folder)
        return str(path)
    if skipped:
        log.warning("ckpt_path=auto: none of the %d checkpoints in %s is complete; starting "
                    "fresh", len(skipped), folder)
    else:
        log.info("ckpt_path=auto: no checkpoint in %s yet; starting fresh", folder)
    return None


def _student_summary(classes: int, student_cfg: dict | None) -> str:
    from src.models.student import canonical_student_config

    student_cfg = canonical_student_config(student_cfg or {})
    return (f"{classes} classes with backbone {student_cfg.get('backbone', '?')} "
            f"({student_cfg.get('decoder', '?')} head)")


def check_resume_fits(path: str | Path, checkpoint: dict, module) -> None:
    """Refuse, before ``trainer.fit``, a checkpoint whose student is not the one this run builds.

    Compares the ``student.*`` weight names and shapes and the class names.

    Raises:
        ValueError: naming the file, what it holds, what this run builds and what to pass.
    """
    from src.models.clip_loading import describe_maskclip_plus_checkpoint
    from src.models.student import rename_legacy_keys

    ours = {k: tuple(v.shape) for k, v in module.state_dict().items() if k.startswith("student.")}
    # A checkpoint written before the student's decoder was called so names it student.head.*.
    theirs = {k: tuple(v.shape)
              for k, v in rename_legacy_keys(checkpoint["state_dict"], "student.").items()
              if k.startswith("student.")}
    other = [(k, theirs[k], ours[k]) for k in ours if k in theirs and theirs[k] != ours[k]]
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    names = list((checkpoint["maskclip_plus"].get("vocabulary") or {}).get("names") or [])
    problems = []
    if other:
        examples = "; ".join(f"{k}: {a} in the file vs {b} here" for k, a, b in other[:2])
        problems.append(f"{len(other)} student weight{'s' if len(other) > 1 else ''} differ"
                        f"{'' if len(other) > 1 else 's'} in shape (e.g. {examples})")
    if missing or unexpected:
        problems.append(f"{len(missing)} of this student's weights are missing from it and "
                        f"{len(unexpected)} of its are not in this student (e.g. "
                        f"{', '.join((missing + unexpected)[:2])})")
    if names and names != list(module.vocabulary.names):
        first = next((f"{a!r} vs {b!r}" for a, b in zip(names, module.vocabulary.names) if a != b),
                     f"{len(names)} vs {module.vocabulary.num_classes} classes")
        problems.append(f"its classes are not this run's (first difference: {first})")
    if problems:
        raise ValueError(
            f"ckpt_path={path} is {describe_maskclip_plus_checkpoint(checkpoint)}, but this run "
            f"builds a student of "
            f"{_student_summary(module.vocabulary.num_classes, module.hparams.get('student_cfg'))}"
            f": {'; '.join(problems)}. Pass this run's own checkpoint (ckpt_path=auto or "
            f"ckpt_path=last resume the run in paths.output_dir), the settings that run was "
            f"trained with (student=, data=, teacher=), or ckpt_path=null to start fresh.")
    saved = (checkpoint["maskclip_plus"].get("teacher") or {}).get("model_name")
    teacher = module.teacher.model_name if module.teacher is not None else None
    if saved != teacher:
        log.warning("ckpt_path=%s was trained with teacher %s; this run's teacher is %s: the "
                    "pseudo-labels change from here on", path, saved, teacher)


def build_module(cfg: DictConfig):
    """Instantiate teacher, student partial and the LitModule from a composed config."""
    from src.data.splits import unseen_indices
    from src.builders import build_teacher
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
    # a bad teacher.pretrained file raises its own message; the head may ask for its own
    # windows over the training crop (teacher.pseudo_label_inference)
    teacher = build_teacher(cfg, pseudo_labels=True)
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


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and test) the configured MaskCLIP+ run; returns the logged metrics.

    Before anything is built: the run folder must be writable and a checkpoint to resume from
    must be a complete MaskCLIP+ training checkpoint; before ``fit``, its student must be the one
    this run builds. A run that diverges (non-finite loss or teacher scores) stops with a
    ``FloatingPointError`` and writes no checkpoint after it.

    Raises:
        PermissionError: ``paths.output_dir`` cannot be created or written.
        FileNotFoundError: ``ckpt_path`` (or ``last``) does not exist.
        ValueError: ``ckpt_path`` is truncated, not a training checkpoint, or of another student.
        FloatingPointError: training diverged.
    """
    from src.models.maskclip_plus_module import read_student_checkpoint

    out = require_writable_dir(cfg.paths.output_dir, purpose="src.train writes its "
                               "checkpoints, logs and metrics.json there")
    refuse_test_split_in_search(cfg, "train")
    L.seed_everything(cfg.seed, workers=True)
    devices = devices_count(cfg.trainer.get("devices", 1))
    batch, accumulate = per_device_batch(cfg.global_batch_size, devices,
                                         cfg.trainer.get("num_nodes", 1),
                                         cfg.get("max_device_batch"))
    with open_dict(cfg):
        cfg.data.batch_size = batch
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), out, checkpoint_dir(cfg),
                                  set_aside=getattr(rank_zero_only, "rank", 0) == 0)
    resume = None
    if ckpt_path is not None:  # fail before the models are built when the file is no good
        resume = read_student_checkpoint(
            ckpt_path, training=True, mmap=True,
            fix=(f"pass a complete checkpoint this run wrote (ckpt_path=auto picks the newest "
                 f"complete one in {checkpoint_dir(cfg)}), or ckpt_path=null to start fresh"))
    datamodule = instantiate(cfg.data, seed=cfg.seed, _convert_="all")
    module = build_module(cfg)
    if module.teacher is not None:
        datamodule.set_normalization(module.teacher.image_mean, module.teacher.image_std)
    mean, std = datamodule.normalization
    module.hparams.update(image_mean=list(mean), image_std=list(std))
    datamodule.set_suppressed_classes(module.suppressed_classes)
    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg.get("callbacks"), cfg.trainer,  # checkpoints, validation panels
                                      has_logger=bool(loggers))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                                     accumulate_grad_batches=accumulate,
                                     sync_batchnorm=use_sync_batchnorm(cfg.trainer, devices))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if resume is not None:
        check_resume_fits(ckpt_path, resume, module)
        log.info("resuming from %s (global step %s)", ckpt_path, resume.get("global_step"))
        del resume
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test_after_fit"):
        trainer.test(module, datamodule=datamodule)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode("utf-8"))
    log.info("metrics: %s", json.dumps({k: round(v, 3) for k, v in metrics.items()}))
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@tracked_run("train", "metrics.json")
def main(cfg: DictConfig) -> float | None:
    """``python -m src.train``; returns ``optimized_metric`` for a sweeper."""
    return optimized_value(cfg, train(cfg))


if __name__ == "__main__":
    main()
