"""Free dense labels for any images and any classes.

    python -m src.predict images=photos/ classes=cat,dog,grass out=preds/
    python -m src.predict images='shots/*.jpg' classes=web_characters teacher.pretrained=/w/ViT-B-16.pt
    python -m src.predict images=big.tif classes=cocostuff inference=slide scale=null
    python -m src.predict images=photos/ ckpt_path=logs/train/.../last.ckpt out=preds/
    python -m src.predict images=world_scene.png classes=world teacher=world   # no download

Per image: ``labels/<stem>.png`` (palette PNG, pixel = class index), ``overlays/<stem>.png``
(colour overlay with a legend, the input's size), optionally ``confidence/<stem>.npy|png``; plus
``summary.json`` (class areas per image, skipped files, settings) and ``job.json`` (what decides
the labels). Re-running the same job resumes, skipping finished images; a different job (other
classes, model, weights, prompts, refinement...) into the same ``out=`` is refused before any
model is built, naming what differs; ``overwrite=true`` deletes the old outputs and starts
fresh. From Python, :func:`segment` labels one image through the same code path.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.utils.config import CONFIG_DIR, to_plain

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
    from src.utils.label_writers import check_job, check_writable, job_identity

    out = check_writable(cfg.out)
    identity = job_identity(cfg, requested_vocabulary(cfg), task)
    overwrite = bool(cfg.get("overwrite")) and not _child_rank()
    resumed = check_job(out, identity, overwrite=overwrite, logger=log)
    return out, identity, resumed


def record_job(out: Path, identity: dict[str, Any], resumed: dict[str, Any] | None) -> dict:
    """Write ``job.json`` for a fresh job (or a folder older code wrote, which has none); a
    resumed job's is kept. Returns the code-version settings for the report/manifest."""
    from src.utils.label_writers import read_job, write_job

    if resumed is None or read_job(out) is None:
        write_job(out, identity)
    versions = {"code_version": identity["code_version"]}
    if resumed is not None and resumed.get("code_version") != identity["code_version"]:
        versions = {"code_version": resumed.get("code_version"),
                    "resumed_with_code_version": identity["code_version"]}
    return versions


# --------------------------------------------------------------------------- the labeller


def build_labeller(cfg: DictConfig):
    """Teacher (``teacher=``, ``classes=``) or student (``ckpt_path=``) → (labeller, settings).

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
    from src.eval import build_teacher

    vocabulary = with_background(load_classes(cfg.classes), background)
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

    module = load_student(str(cfg.ckpt_path))
    student, vocabulary = module.student, module.vocabulary
    if cfg.get("classes") is not None:
        wanted = load_classes(cfg.classes)
        if wanted.names != tuple(n for n in vocabulary.names if n != "background"):
            vocabulary = _retarget_student(cfg, module, wanted)
    if background.words is not None and vocabulary.names[0] != "background":
        raise ValueError("background.words needs the teacher's text tower; a student predicts "
                         "background only if it was trained with a background class")
    labeller = DenseLabeller(student, vocabulary, student.output_stride, inference,
                             background.threshold)
    settings = {"model": "student", "checkpoint": str(cfg.ckpt_path),
                "teacher": module.teacher_spec,
                "student": module.hparams.get("student_cfg"), "inference": to_plain(cfg.inference),
                "background": to_plain(cfg.get("background")), "scale": to_plain(cfg.get("scale")),
                "classes": list(vocabulary.names)}
    mean = module.hparams.get("image_mean") or (0.48145466, 0.4578275, 0.40821073)
    std = module.hparams.get("image_std") or (0.26862954, 0.26130258, 0.27577711)
    return labeller, settings, (tuple(mean), tuple(std))


def _retarget_student(cfg: DictConfig, module, wanted):
    """New classes for a student: its classifier is text embeddings, so the teacher's text tower
    must embed them. The checkpoint names that teacher; without its weights this cannot work."""
    from src.models.teacher import MaskCLIPTeacher
    from src.prompts.vocabulary import ClassVocabulary

    spec = module.teacher_spec
    own = [n for n in module.vocabulary.names if n != "background"]
    if not spec:
        raise ValueError(f"{cfg.ckpt_path} records no teacher, so it cannot embed new classes; "
                         f"drop classes= to use its own: {own}")
    try:
        teacher = MaskCLIPTeacher(spec["model_name"], spec["pretrained"],
                                  quick_gelu=spec.get("quick_gelu"))
        teacher.set_vocabulary(wanted, module.hparams.get("templates") or "imagenet85")
    except Exception as err:
        raise ValueError(
            f"classes= differs from the checkpoint's classes {own}. New classes for a student "
            f"need its teacher's text tower ({spec['model_name']}, weights "
            f"{spec['pretrained']!r}), which could not be loaded: {err}. Drop classes= to use "
            "the checkpoint's own classes.") from err
    student = module.student
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


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Label ``cfg.images`` into ``cfg.out``; returns the summary."""
    from src.data.images import ImageListDataset, list_images
    from src.utils.label_writers import PredictionWriter, pending
    from src.utils.visualize import make_palette

    out, identity, resumed = open_job(cfg, "predict")  # before any model is built
    paths = list_images(cfg.images)
    labeller, settings, (mean, std) = build_labeller(cfg)
    settings = {**settings, **record_job(out, identity, resumed)}
    images = ImageListDataset(paths, to_plain(cfg.get("scale")), mean, std)
    todo = pending(images.names, out, "predict")
    if len(todo) < len(images):
        log.info("resuming: %d of %d images already done in %s", len(images) - len(todo),
                 len(images), out)
    writer = PredictionWriter(out, labeller.vocabulary, make_palette(len(labeller.vocabulary.names)),
                              settings, confidence=cfg.get("confidence"),
                              overlays=cfg.get("overlays", True))
    if todo:
        run_labelling(cfg, labeller, images.subset(todo), [writer], out)
    summary = writer.write_report()
    log.info("%d images labelled, %d skipped → %s", summary["num_images"],
             summary["num_skipped"], out)
    for skipped in summary["skipped"]:
        log.warning("skipped %s: %s", skipped["image"], skipped["error"])
    return summary


_SEGMENT_CACHE: dict[tuple, Any] = {}


def segment(image: Any, classes: Any, teacher: str = "vit_b16", *,
            overrides: Sequence[str] = (), device: str | torch.device | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Label one image; the Python face of ``src.predict`` (same configs, same code path).

    Args:
        image: a file path, a PIL image or an H×W×3 uint8 RGB array (any PIL mode is converted).
        classes: a list of names, ``"a,b,c"``, a vocabulary file or a shipped name.
        teacher: a ``conf/teacher`` option (``vit_b16``, ``world``, ``tiny``...).
        overrides: more ``src.predict`` overrides, e.g. ``["refine=kspd", "inference=slide",
            "teacher.pretrained=/w/ViT-B-16.pt", "ckpt_path=/runs/last.ckpt"]``.
        device: where to run (default: CUDA if available).

    Returns:
        (labels H×W int64, probabilities C×H×W float32), at the image's own size.
    """
    from PIL import Image

    from src.data.images import ImageListDataset, read_rgb, to_rgb_uint8
    from src.utils.experiments import compose_config

    if isinstance(classes, (list, tuple)):
        classes_arg = "[" + ",".join("'" + str(c).replace("'", "\\'") + "'" for c in classes) + "]"
    else:
        classes_arg = str(classes)
    args = class_list_argv([f"classes={classes_arg}"])
    key = (teacher, tuple(args), tuple(overrides))
    if key not in _SEGMENT_CACHE:
        cfg = compose_config("predict", [f"teacher={teacher}", *args, "images=segment-api", "out=.",
                                         *overrides])
        _SEGMENT_CACHE.clear()  # one model at a time: models are large
        _SEGMENT_CACHE[key] = (cfg, *build_labeller(cfg))
    cfg, labeller, _, (mean, std) = _SEGMENT_CACHE[key]
    if isinstance(image, (str, Path)):
        rgb = read_rgb(image)
    elif isinstance(image, Image.Image):
        rgb = to_rgb_uint8(image)
    else:
        rgb = np.asarray(image)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        rgb = np.ascontiguousarray(rgb[..., :3]).astype(np.uint8)
    tensor = ImageListDataset([], to_plain(cfg.get("scale")), mean, std).prepare(rgb)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    labeller.to(device)  # the teacher's text classifier is a buffer: it moves too
    labels, _, probs = labeller.label(tensor.to(device), rgb.shape[:2], keep_probs=True)
    return labels.numpy(), probs.numpy()


def exit_on_user_error(job, cfg: DictConfig) -> None:
    """Run ``job(cfg)``; missing weights or an ``out=`` holding another job end the process
    (exit status 1) with one message on stderr, not a traceback."""
    from src.models.clip_loading import WeightsUnavailableError
    from src.utils.label_writers import JobMismatchError

    try:
        job(cfg)
    except (WeightsUnavailableError, JobMismatchError) as err:
        raise SystemExit(f"error: {err}") from None


exit_on_missing_weights = exit_on_user_error  # the former name


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_user_error(predict, cfg)


def main() -> None:
    try:
        sys.argv = class_list_argv(sys.argv)  # before Hydra parses `classes=a,b,c`
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    _hydra_main()


if __name__ == "__main__":
    main()
