"""Export a pseudo-label dataset: free dense labels for a whole folder or a configured dataset.

    python -m src.label images=photos/ classes=my_classes.txt out=data/custom_labels
    python -m src.label data=voc20 out=data/voc20_pseudo refine=kspd threshold=0.5
    python -m src.label images=photos/ classes=a,b,c out=... trainer.devices=4   # one slice per GPU

The output is the folder layout the datamodule reads (``data=folder``): ``images/``,
``masks/`` (class indices, 255 = ignore where the model is unsure), ``classes.txt`` and
``manifest.json`` (model, weights, prompts, refinements, code version), plus ``job.json`` (what
decides the labels). Every file is written atomically and a re-run of the same job resumes,
skipping finished images; a different job into the same ``out=`` is refused before any model is
built (``overwrite=true`` deletes the old outputs and starts fresh). Train a student on the
result:

    python -m src.train experiment=world_annofree data=folder data.root=data/custom_labels \\
        setting=supervised
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from src.labelling import build_labeller, command_line, open_job, record_job, run_labelling
from src.utils.config import to_plain

log = logging.getLogger(__name__)


def source_images(cfg: DictConfig, mean, std):
    """``images=`` (file, folder, glob) or the images of ``data=<dataset>``'s test split."""
    from src.data.images import ImageListDataset, list_images

    scale = to_plain(cfg.get("scale"))
    if cfg.get("images"):
        return ImageListDataset(list_images(cfg.images), scale, mean, std)
    if cfg.get("data") is None:
        raise ValueError("give images=<file|folder|glob> or data=<dataset> to label")
    datamodule = instantiate(cfg.data, _convert_="all")
    split = cfg.get("split") or cfg.data.get("test_split")
    return ImageListDataset.from_dataset(datamodule.build_dataset(split), scale, mean, std)


def label(cfg: DictConfig, callbacks: list | None = None) -> dict[str, Any]:
    """Write the pseudo-label dataset described by ``cfg``; returns the report."""
    from src.callbacks.writers import DatasetWriter
    from src.utils.jobs import pending

    if cfg.get("data") is not None and not cfg.get("images") and not cfg.get("classes"):
        with open_dict(cfg):
            cfg.classes = cfg.data.vocabulary
    out, identity, resumed = open_job(cfg, "label")  # before any model is built
    labeller, settings, (mean, std) = build_labeller(cfg)
    images = source_images(cfg, mean, std)
    settings = {**settings, "threshold": cfg.get("threshold"),
                **record_job(out, identity, resumed),
                "source": str(cfg.get("images") or f"data={cfg.data.dataset}")}
    todo = pending(images.names, out, "label")
    log.info("%d images, %d already labelled in %s", len(images), len(images) - len(todo), out)
    writer = DatasetWriter(out, labeller.vocabulary, settings, threshold=cfg.get("threshold"))
    if todo:
        run_labelling(cfg, labeller, images.subset(todo), [writer, *(callbacks or [])], out)
    else:
        writer.write_static_files()
    report = writer.write_report()
    for skipped in report["skipped"]:
        log.warning("skipped %s: %s", skipped["image"], skipped["error"])
    return report


main = command_line(label, "label")


if __name__ == "__main__":
    main()
