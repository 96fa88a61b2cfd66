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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from src.labelling import (  # noqa: F401  (class_list_argv, load_classes: public here too)
    build_labeller, class_list_argv, command_line, exit_on_user_error, load_classes, open_job,
    prepare_argv, record_job, run_labelling)
from src.utils.config import to_plain

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Label ``cfg.images`` into ``cfg.out``; returns the summary."""
    from src.data.images import ImageListDataset, list_images
    from src.callbacks.writers import PredictionWriter
    from src.utils.jobs import pending
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


exit_on_missing_weights = exit_on_user_error  # the former name


main = command_line(predict, "predict")


if __name__ == "__main__":
    main()
