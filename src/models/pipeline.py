"""The one dense labelling pipeline: any frozen dense model → class probabilities or labels.

Evaluation (``MaskCLIPTeacher.forward``), MaskCLIP+'s online teacher targets, ``src.predict`` and
``src.label`` all run these steps, in this order:

1. **scores** — the model's query scores over the image, whole or sliding-window (crops batched),
   averaged where windows overlap at feature stride or per pixel (``InferenceConfig.average``),
   each crop padded at a corner or symmetrically (``pad``, ``pad_multiple``);
2. **PAMR** (``postproc=pamr``) on the scores at input resolution;
3. **resampling** to the output size: aligned (``crop``) or ``stretch``ed, either whole (two
   bilinear steps, input then output size, as mmseg's ``whole_inference``) for evaluation, or in
   row tiles of bounded memory (one composed lookup) for labels of any size;
4. **probabilities** — the model's ``scores_to_probs`` (teacher: softmax(T·s) and the synonym
   max-merge; student: softmax);
5. **area threshold** (``postproc.area_threshold``, SC-CLIP) — small foreground classes dropped;
6. **labels** — argmax, then the background threshold (pixels below it become class 0).

A new post-processing step goes here, once, and every consumer gets it. The model side is the
:class:`DenseScorer` protocol; the pipeline never asks what kind of model it runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from src.models.inference import (InferenceConfig, label_tiles, pixel_scores, slide_scores,
                                  upsample_scores, whole_scores)
from src.models.postproc import (PostprocConfig, drop_small_classes, kept_classes,
                                 memory_budget, pamr, zero_except)


@runtime_checkable
class DenseScorer(Protocol):
    """What the pipeline needs of a model (the teacher implements it; see ``StudentScorer``).

    Attributes:
        output_stride: input pixels per score cell.
        postproc: the post-processing the model's scores get.
    """

    output_stride: int
    postproc: PostprocConfig

    def crop_scores(self, crops: Tensor) -> Tensor:
        """N×3×h×w normalised crops → N×Q×h'×w' scores at the output stride."""

    def scores_to_probs(self, scores: Tensor, inplace: bool = False) -> Tensor:
        """B×Q×… scores → B×C×… class probabilities."""


@dataclass(frozen=True)
class LabellingPipeline:
    """Steps 1-6 above, configured once.

    Attributes:
        inference: whole/slide, window geometry, alignment, averaging and padding.
        postproc: PAMR and the area threshold.
    """

    inference: InferenceConfig = field(default_factory=InferenceConfig)
    postproc: PostprocConfig = field(default_factory=PostprocConfig)

    # ------------------------------------------------------------------ step 1
    def scores(self, model: DenseScorer, images: Tensor) -> tuple[Tensor, int]:
        """Query scores over the image and their stride.

        Args:
            images: B×3×H×W normalised images.

        Returns:
            (B×Q×⌈H/s⌉×⌈W/s⌉ scores over the padded input, s) with feature averaging, or
            (B×Q×H×W, 1) with per-pixel averaging.
        """
        config, stride = self.inference, model.output_stride
        if config.average == "pixel":
            return pixel_scores(model.crop_scores, images, stride, config), 1
        if config.mode == "slide":
            return slide_scores(model.crop_scores, images, stride, config), stride
        return whole_scores(model.crop_scores, images, stride, config.align), stride

    def align(self, stride: int) -> str:
        """Scores at input resolution (stride 1) have nothing left to stretch."""
        return "crop" if stride == 1 else self.inference.align

    # ------------------------------------------------------------------ step 2
    def input_scores(self, images: Tensor, scores: Tensor, stride: int) -> Tensor:
        """Scores upsampled to the input (B×Q×H×W), then PAMR if configured."""
        if stride != 1:
            scores = upsample_scores(scores, images.shape[-2:], stride, self.align(stride))
        if self.postproc.kind == "pamr":  # on the input-resolution scores, as NACLIP does
            scores = pamr(images, scores, self.postproc)
        return scores

    def pamr_within_budget(self, images: Tensor, scores: Tensor, stride: int
                           ) -> tuple[Tensor, int]:
        """PAMR for labelling, where the B×Q×H×W scores may not fit: skipped with a warning.

        Returns the scores and their stride: 1 after PAMR, unchanged otherwise (the tiled
        resampling never needs the input-resolution scores).
        """
        if self.postproc.kind != "pamr":
            return scores, stride
        size = tuple(images.shape[-2:])
        need = 4 * scores.shape[0] * scores.shape[1] * size[0] * size[1]
        if need > memory_budget(scores.device, self.postproc.max_memory_mb):
            warnings.warn(f"PAMR skipped for a {size[1]}x{size[0]} input: its "
                          f"{scores.shape[1]}-class scores alone need {need / 2**20:.0f} MB",
                          stacklevel=3)
            return scores, stride
        return self.input_scores(images, scores, stride), 1

    # ------------------------------------------------------------------ steps 3-5, whole
    def probabilities(self, model: DenseScorer, images: Tensor,
                      output_size: Sequence[int] | None = None) -> Tensor:
        """Class probabilities at the input (or output) resolution, as evaluation uses them.

        The input-resolution scores are resized again to ``output_size`` like mmseg's
        ``whole_inference``, and only then turned into probabilities, so the argmax matches the
        official code.

        Args:
            images: B×3×H×W normalised images.
            output_size: (H0, W0), e.g. the ground truth's size; None keeps H×W.

        Returns:
            B×C×H×W (or B×C×H0×W0) class probabilities.
        """
        scores = self.input_scores(images, *self.scores(model, images))
        if output_size is not None and tuple(output_size) != tuple(scores.shape[-2:]):
            scores = F.interpolate(scores, size=tuple(output_size), mode="bilinear",
                                   align_corners=False)
        # The upsampled scores are this function's own: softmax them where they lie, so the
        # peak is one full-resolution map, not three (scores, T·scores, probabilities).
        probs = model.scores_to_probs(scores, inplace=True)
        return drop_small_classes(probs, self.postproc.area_threshold)

    # ------------------------------------------------------------------ steps 3-6, tiled
    def label_batch(self, model: DenseScorer, images: Tensor,
                    output_sizes: Sequence[Sequence[int] | None], *, keep_probs: bool = False,
                    background_threshold: float | None = None, max_elements: int = 1 << 25
                    ) -> list[tuple[Tensor, Tensor, Tensor | None]]:
        """Labels of B same-size images at their own output sizes, memory bounded.

        Args:
            images: B×3×H×W normalised images.
            output_sizes: per image (H0, W0), or None for H×W.
            keep_probs: also return each image's C×H0×W0 probabilities.
            background_threshold: pixels whose top probability is below it become class 0.
            max_elements: bound on Q × pixels per resampling tile.

        Returns:
            Per image (labels H0×W0 long, confidence H0×W0 float32, probabilities or None), on
            the CPU.
        """
        input_size = tuple(images.shape[-2:])
        scores, stride = self.pamr_within_budget(images, *self.scores(model, images))
        results = []
        for image_scores, size in zip(scores, output_sizes):
            size = tuple(size) if size is not None else input_size
            tiles = lambda to_probs: label_tiles(  # noqa: E731
                image_scores, input_size, size, stride, to_probs, max_elements, keep_probs,
                self.align(stride))
            labels, confidence, probs = tiles(model.scores_to_probs)
            threshold = self.postproc.area_threshold
            if threshold is not None:
                keep = kept_classes(labels, threshold)
                if not torch.isin(labels.unique(), keep).all():
                    # A predicted class is dropped: a second pass with the others zeroed.
                    labels, confidence, probs = tiles(
                        lambda s: zero_except(model.scores_to_probs(s), keep))
            if background_threshold is not None:
                labels[confidence < background_threshold] = 0
            results.append((labels, confidence, probs))
        return results
