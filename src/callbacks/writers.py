"""Lightning prediction writers for src.predict and src.label: atomic, resumable, multi-rank.

Every file is written through :mod:`src.utils.io`'s atomic writers (temp file, then rename), so a
killed run never leaves a partial file, and a re-run skips what is finished
(:func:`src.utils.jobs.pending`). Each rank writes only its own images; rank 0 gathers the
per-image records into one report at the end, after a barrier.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from src.prompts.vocabulary import ClassVocabulary
from src.utils.io import atomic_open, atomic_write_bytes, save_png_atomic, write_lines_atomic
from src.utils.jobs import COPYABLE, RECORDS
from src.utils.visualize import legend_overlay, palette_image


def _write_if_changed(path: Path, text: str) -> None:
    """Atomically write ``text`` unless the file already holds it (a resume rewrites nothing)."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write_bytes(path, data)


def vocabulary_lines(vocabulary: ClassVocabulary) -> list[str]:
    """``classes.txt`` lines that load back as the same vocabulary (names, prompts, synonyms)."""
    return [f"{name}: {', '.join(queries)}"
            for name, queries in zip(vocabulary.names, vocabulary.queries)]


def class_areas(labels: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Fraction of the image each present class covers (ignore excluded), largest first."""
    values, counts = np.unique(labels, return_counts=True)
    total = labels.size
    areas = {names[int(v)]: round(int(c) / total, 6) for v, c in zip(values, counts) if v != 255}
    return dict(sorted(areas.items(), key=lambda kv: -kv[1]))


class _RecordWriter(BasePredictionWriter):
    """Per-image JSON records under ``out/.records``, merged into one report by rank 0."""

    report_name = "summary.json"

    def __init__(self, out: str | Path, settings: dict[str, Any]) -> None:
        super().__init__(write_interval="batch")
        self.out = Path(out)
        self.settings = settings

    def _record(self, name: str, record: dict[str, Any]) -> None:
        atomic_write_bytes(self.out / RECORDS / f"{name}.json",
                           json.dumps(record, indent=1).encode("utf-8"))

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch,
                           batch_idx, dataloader_idx=0) -> None:
        for item in prediction:
            if "error" in item:
                self._record(item["name"], {"image": item["path"], "error": item["error"]})
            else:
                self._record(item["name"], self.write_item(item))

    def write_item(self, item: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def on_predict_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            self.write_report()

    def write_report(self) -> dict[str, Any]:
        images, skipped = {}, []
        for path in sorted((self.out / RECORDS).glob("*.json")):
            record = json.loads(path.read_text(encoding="utf-8"))
            if "error" in record:
                skipped.append(record)
            else:
                images[path.stem] = record
        report = {"settings": self.settings, "num_images": len(images),
                  "num_skipped": len(skipped), "skipped": skipped, "images": images}
        _write_if_changed(self.out / self.report_name, json.dumps(report, indent=2))
        return report


class PredictionWriter(_RecordWriter):
    """src.predict outputs per image: palette label PNG, legend overlay, optional confidence.

    Layout: ``labels/<stem>.png`` (pixel = class index, palette = class colours),
    ``overlays/<stem>.png`` (input size), ``confidence/<stem>.npy|png`` (float16, or 16-bit
    PNG of p·65535), and ``summary.json`` with per-image class areas and the settings.
    """

    def __init__(self, out: str | Path, vocabulary: ClassVocabulary, palette: np.ndarray,
                 settings: dict[str, Any], confidence: str | None = None,
                 overlays: bool = True) -> None:
        super().__init__(out, settings)
        if confidence not in (None, "npy", "png"):
            raise ValueError(f"confidence must be null, npy or png, got {confidence!r}")
        self.vocabulary, self.palette = vocabulary, palette
        self.confidence, self.overlays = confidence, overlays

    def write_item(self, item: dict[str, Any]) -> dict[str, Any]:
        name, labels = item["name"], item["labels"].numpy()
        save_png_atomic(palette_image(labels, self.palette), self.out / "labels" / f"{name}.png")
        if self.overlays:
            overlay = legend_overlay(item["rgb"], labels, self.palette,
                                     self.vocabulary.names)
            save_png_atomic(Image.fromarray(overlay), self.out / "overlays" / f"{name}.png")
        if self.confidence == "npy":
            with atomic_open(self.out / "confidence" / f"{name}.npy") as f:
                np.save(f, item["confidence"].numpy().astype(np.float16))
        elif self.confidence == "png":
            scaled = np.round(item["confidence"].numpy() * 65535).astype(np.uint16)
            save_png_atomic(Image.fromarray(scaled), self.out / "confidence" / f"{name}.png")
        return {"image": item["path"], "size": list(labels.shape),
                "areas": class_areas(labels, self.vocabulary.names)}


class DatasetWriter(_RecordWriter):
    """src.label: a folder dataset (``images/``, ``masks/``, ``classes.txt``, ``manifest.json``).

    The mask is written before the image, so an image in ``images/`` always has its mask and a
    killed run leaves a folder the datamodule can already read. With ``threshold``, pixels whose
    top probability is below it are written as 255 (ignored in training).
    """

    report_name = "report.json"

    def __init__(self, out: str | Path, vocabulary: ClassVocabulary, settings: dict[str, Any],
                 threshold: float | None = None) -> None:
        super().__init__(out, settings)
        if len(vocabulary.names) > 255:
            raise ValueError(f"{len(vocabulary.names)} classes do not fit 8-bit masks "
                             "(255 is the ignore value)")
        self.vocabulary, self.threshold = vocabulary, threshold

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.is_global_zero:
            self.write_static_files()

    def write_static_files(self) -> None:
        """``classes.txt`` and ``manifest.json`` (rank 0)."""
        write_lines_atomic(self.out / "classes.txt", vocabulary_lines(self.vocabulary))
        _write_if_changed(self.out / "manifest.json", json.dumps(self.settings, indent=2))

    def write_item(self, item: dict[str, Any]) -> dict[str, Any]:
        name, labels = item["name"], item["labels"].numpy().astype(np.uint8)
        if self.threshold is not None:
            labels[item["confidence"].numpy() < self.threshold] = 255
        save_png_atomic(Image.fromarray(labels, mode="L"), self.out / "masks" / f"{name}.png")
        source = Path(item["path"])
        if source.is_file() and source.suffix.lower() in COPYABLE and _is_plain_rgb(source):
            with atomic_open(self.out / "images" / f"{name}{source.suffix.lower()}") as f, \
                    open(source, "rb") as src:
                shutil.copyfileobj(src, f)
        else:  # grayscale, 16-bit, RGBA, palette or another format: store what was labelled
            save_png_atomic(Image.fromarray(item["rgb"]), self.out / "images" / f"{name}.png")
        return {"image": item["path"], "ignored": float(np.mean(labels == 255))}


def _is_plain_rgb(path: Path) -> bool:
    with Image.open(path) as image:
        return image.mode == "RGB"
