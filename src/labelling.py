"""What ``src.predict`` and ``src.label`` share: classes, the job identity, the labeller, the run.

Neither entry point imports the other; both import from here.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.utils.config import to_plain

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- classes=


def class_list_argv(argv: Sequence[str]) -> list[str]:
    """Rewrite ``classes=a,b,c`` (which Hydra rejects as ambiguous) to a quoted Hydra list.

    A value that already is a list (``[a,b]``), a file, or has no comma is left alone.

    Raises:
        ValueError: an empty or repeated entry (``classes=cat,,dog``), named.
    """
    from src.prompts.vocabulary import split_class_list

    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if (sep and key.lstrip("+") == "classes" and "," in value
                and not value.lstrip().startswith("[") and not Path(value).is_file()):
            items = split_class_list(value, source=arg)  # an empty entry is an error
            quoted = ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
                              for v in items)
            arg = f"{key}=[{quoted}]"
        out.append(arg)
    return out


def prepare_argv() -> None:
    """Rewrite ``sys.argv``'s ``classes=a,b,c`` for Hydra; a bad list ends the process (exit 1)
    with one message, before Hydra starts."""
    try:
        sys.argv = class_list_argv(sys.argv)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


def load_classes(classes: Any):
    """``classes=`` → ClassVocabulary: a file, a shipped name, a list, or ``"a,b,c"``.

    Raises:
        ValueError: empty list or duplicate class names (named).
    """
    from src.prompts.vocabulary import ClassVocabulary, load_vocabulary, split_class_list

    if classes is None:
        raise ValueError("classes= is required: a vocabulary file, a shipped vocabulary name "
                         "(e.g. classes=voc20), or a list (classes=cat,dog,grass)")
    if isinstance(classes, str) and "," in classes and not Path(classes).is_file():
        classes = split_class_list(classes)
    if isinstance(classes, str):
        vocabulary = load_vocabulary(classes)
    else:
        if not list(classes):
            raise ValueError("classes= is empty: give at least one class name")
        # No entry is dropped: an empty one would shift every later class index.
        vocabulary = ClassVocabulary.from_names([str(c) for c in classes], source="classes=")
    return vocabulary


# --------------------------------------------------------------------------- the job


def requested_vocabulary(cfg: DictConfig):
    """The classes the labels will index, from the config alone (no model is built): the
    teacher's with its background class; for a student, ``classes=`` or None (its own)."""
    if cfg.get("ckpt_path"):
        return None if cfg.get("classes") is None else load_classes(cfg.classes)
    from src.models.labeller import BackgroundConfig, with_background

    background = BackgroundConfig(**to_plain(cfg.get("background") or {}))
    return with_background(load_classes(cfg.classes), background)


def _child_rank() -> bool:
    """A process Lightning's DDP launcher started for rank > 0 (it re-runs the entry point)."""
    return any(os.environ.get(key, "0") != "0" for key in ("LOCAL_RANK", "NODE_RANK"))


def open_job(cfg: DictConfig, task: str) -> tuple[Path, dict[str, Any], dict[str, Any] | None]:
    """Check ``out=`` for src.predict / src.label before any model is built or image read.

    Returns:
        (out folder, this run's job identity, the stored job when this run resumes it else None).

    Raises:
        PermissionError: ``out`` is not writable.
        JobMismatchError: ``out`` holds another job's outputs (see ``check_job``).
    """
    from src.utils.jobs import check_job, check_writable, job_identity

    out = check_writable(cfg.out)
    identity = job_identity(cfg, requested_vocabulary(cfg), task)
    overwrite = bool(cfg.get("overwrite")) and not _child_rank()
    resumed = check_job(out, identity, overwrite=overwrite, logger=log)
    return out, identity, resumed


def record_job(out: Path, identity: dict[str, Any], resumed: dict[str, Any] | None) -> dict:
    """Write ``job.json`` for a fresh job (or a folder older code wrote, which has none); a
    resumed job's is kept. Returns the code-version settings for the report/manifest."""
    from src.utils.jobs import read_job, write_job

    if resumed is None or read_job(out) is None:
        write_job(out, identity)
    versions = {"code_version": identity["code_version"]}
    if resumed is not None and resumed.get("code_version") != identity["code_version"]:
        versions = {"code_version": resumed.get("code_version"),
                    "resumed_with_code_version": identity["code_version"]}
    return versions


# --------------------------------------------------------------------------- the labeller


def build_labeller(cfg: DictConfig, teacher=None):
    """Teacher (``teacher=``, ``classes=``) or student (``ckpt_path=``) → (labeller, settings).

    Args:
        cfg: a composed ``predict`` (or ``label``) config.
        teacher: an already built ``MaskCLIPTeacher`` to use instead of building ``cfg.teacher``
            (the page, src.app, keeps one per weights and sets its head and refinement per
            request); its vocabulary is set to ``cfg.classes`` here.

    Returns:
        (DenseLabeller, dict of the settings that produced the labels, (mean, std)).
    """
    from src.models.inference import InferenceConfig
    from src.models.labeller import BackgroundConfig, DenseLabeller, with_background

    # Random-init models (tests, smoke runs) must be the same model on every call.
    torch.manual_seed(int(cfg.get("seed") or 0))
    background = BackgroundConfig(**to_plain(cfg.get("background") or {}))
    inference = InferenceConfig(**to_plain(cfg.inference))
    if cfg.get("ckpt_path"):
        return _student_labeller(cfg, background, inference)
    from src.builders import build_teacher

    vocabulary = with_background(load_classes(cfg.classes), background)
    if teacher is None:
        teacher = build_teacher(cfg)
    teacher.set_vocabulary(vocabulary, to_plain(cfg.prompts.templates))
    labeller = DenseLabeller(teacher, vocabulary, teacher.output_stride, inference,
                             background.threshold)
    settings = {
        "model": "teacher", "model_name": teacher.model_name,
        "weights": teacher.spec.pretrained, "quick_gelu": teacher.spec.quick_gelu,
        "head": teacher.head, "prompts": to_plain(cfg.prompts.templates),
        "refine": to_plain(cfg.refine), "inference": to_plain(cfg.inference),
        "background": to_plain(cfg.get("background")), "scale": to_plain(cfg.get("scale")),
        "classes": list(vocabulary.names), "queries": [list(q) for q in vocabulary.queries],
    }
    return labeller, settings, (teacher.image_mean, teacher.image_std)


def _student_labeller(cfg: DictConfig, background, inference):
    from src.models.labeller import DenseLabeller
    from src.models.maskclip_plus_module import load_student

    student = load_student(str(cfg.ckpt_path))
    vocabulary = student.vocabulary
    if cfg.get("classes") is not None:
        wanted = load_classes(cfg.classes)
        if wanted.names != tuple(n for n in vocabulary.names if n != "background"):
            vocabulary = _retarget_student(cfg, student, wanted)
    if background.words is not None and vocabulary.names[0] != "background":
        raise ValueError("background.words needs the teacher's text tower; a student predicts "
                         "background only if it was trained with a background class")
    labeller = DenseLabeller(student.model, vocabulary, student.output_stride, inference,
                             background.threshold)
    settings = {"model": "student", "checkpoint": str(cfg.ckpt_path),
                "teacher": student.teacher_spec,
                "student": student.config, "inference": to_plain(cfg.inference),
                "background": to_plain(cfg.get("background")), "scale": to_plain(cfg.get("scale")),
                "classes": list(vocabulary.names)}
    mean = student.image_mean or (0.48145466, 0.4578275, 0.40821073)
    std = student.image_std or (0.26862954, 0.26130258, 0.27577711)
    return labeller, settings, (tuple(mean), tuple(std))


def _retarget_student(cfg: DictConfig, trained, wanted):
    """New classes for a student: its classifier is text embeddings, so the teacher's text tower
    must embed them. The checkpoint names that teacher; without its weights this cannot work."""
    from src.models.teacher import MaskCLIPTeacher
    from src.prompts.vocabulary import ClassVocabulary

    spec = trained.teacher_spec
    own = [n for n in trained.vocabulary.names if n != "background"]
    if not spec:
        raise ValueError(f"{cfg.ckpt_path} records no teacher, so it cannot embed new classes; "
                         f"drop classes= to use its own: {own}")
    try:
        teacher = MaskCLIPTeacher(spec["model_name"], spec["pretrained"],
                                  quick_gelu=spec.get("quick_gelu"))
        teacher.set_vocabulary(wanted, trained.templates or "imagenet85")
    except Exception as err:
        raise ValueError(
            f"classes= differs from the checkpoint's classes {own}. New classes for a student "
            f"need its teacher's text tower ({spec['model_name']}, weights "
            f"{spec['pretrained']!r}), which could not be loaded: {err}. Drop classes= to use "
            "the checkpoint's own classes.") from err
    student = trained.model
    student.class_embeddings = teacher.class_embeddings.detach().to(
        student.class_embeddings.dtype)
    if student.bg_embedding is not None:
        return ClassVocabulary(("background", *wanted.names),
                               (("background",), *wanted.queries), wanted.source)
    return wanted


# --------------------------------------------------------------------------- running


def run_labelling(cfg: DictConfig, labeller, images, callbacks: list, out: Path) -> None:
    """Lightning ``predict`` over ``images`` with the writer ``callbacks`` (src.predict and
    src.label); with ``trainer.devices=N`` each device labels its own slice."""
    import time

    from torch.utils.data import DataLoader

    from src.data.images import list_collate
    from src.models.label_module import DenseLabelModule

    loader = DataLoader(images, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                        collate_fn=list_collate)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks,
                                     default_root_dir=str(out))
    start = time.perf_counter()
    trainer.predict(DenseLabelModule(labeller), loader, return_predictions=False)
    seconds = time.perf_counter() - start
    if trainer.is_global_zero:
        log.info("labelled %d images in %.1f s (%.2f img/s)", len(images), seconds,
                 len(images) / max(seconds, 1e-9))


def exit_on_user_error(job, cfg: DictConfig) -> None:
    """Run ``job(cfg)``; missing weights or an ``out=`` holding another job end the process
    (exit status 1) with one message on stderr, not a traceback."""
    from src.models.clip_loading import WeightsUnavailableError
    from src.utils.jobs import JobMismatchError

    try:
        job(cfg)
    except (WeightsUnavailableError, JobMismatchError) as err:
        raise SystemExit(f"error: {err}") from None


def command_line(job, config_name: str):
    """The ``main()`` of a labelling entry point: ``classes=a,b,c`` rewritten, then Hydra runs
    ``job`` on the composed ``conf/<config_name>.yaml`` with :func:`exit_on_user_error`."""
    import hydra

    from src.utils.config import CONFIG_DIR

    @hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)
    def run(cfg: DictConfig) -> None:
        exit_on_user_error(job, cfg)

    def main() -> None:
        prepare_argv()  # before Hydra parses `classes=a,b,c`
        run()

    return main
