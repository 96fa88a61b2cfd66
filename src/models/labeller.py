"""DenseLabeller: a teacher or a trained student → per-pixel labels for any image, any size.

This is the one code path under ``src.predict``, ``src.label`` and :func:`src.predict.segment`.
Scores are computed at feature stride (whole image or sliding window, crops batched) and only
then resampled to the original image in row tiles (:func:`label_tiles`), so an 8k×8k image with
171 classes never needs its 46 GB of full-resolution logits.

Background (peers.md §2), for images where most pixels belong to no listed class:
  - ``words``: a background class 0 whose text queries are stuff words (SCLIP's 26-word line),
    max-merged like any synonyms;
  - ``threshold``: pixels whose top class probability is below it become background.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.inference import (InferenceConfig, label_tiles, pad_to_multiple, slide_scores,
                                  upsample_scores)
from src.models.postproc import memory_budget, pamr
from src.prompts.vocabulary import ClassVocabulary

# SCLIP / NACLIP ``cls_voc21.txt`` line 1: stuff words that stand for "background".
STUFF_BACKGROUND_WORDS = (
    "sky", "wall", "tree", "wood", "grass", "road", "sea", "river", "mountain", "sands", "desk",
    "bed", "building", "cloud", "lamp", "door", "window", "wardrobe", "ceiling", "shelf",
    "curtain", "stair", "floor", "hill", "rail", "fence",
)
BACKGROUND = "background"


@dataclass(frozen=True)
class BackgroundConfig:
    """How images with background are labelled.

    Attributes:
        words: None (no background class), ``"stuff"`` (SCLIP's 26 stuff words), or a list of
            prompts for a background class prepended as class 0.
        threshold: None, or a probability below which a pixel becomes background (class 0).
    """

    words: str | Sequence[str] | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < float(self.threshold) < 1.0:
            raise ValueError(f"background.threshold must be in (0, 1), got {self.threshold}")

    @property
    def enabled(self) -> bool:
        return self.words is not None or self.threshold is not None

    def queries(self) -> tuple[str, ...]:
        if self.words is None or self.words == "background":
            return (BACKGROUND,)
        if self.words == "stuff":
            return STUFF_BACKGROUND_WORDS
        words = (self.words,) if isinstance(self.words, str) else tuple(self.words)
        if not words:
            raise ValueError("background.words is empty; give words, 'stuff' or null")
        return tuple(str(w) for w in words)


def with_background(vocabulary: ClassVocabulary, background: BackgroundConfig) -> ClassVocabulary:
    """Prepend the background class (if configured and not already class 0)."""
    if not background.enabled or vocabulary.names[0] == BACKGROUND:
        return vocabulary
    return ClassVocabulary((BACKGROUND, *vocabulary.names),
                           (background.queries(), *vocabulary.queries), vocabulary.source)


class DenseLabeller(nn.Module):
    """Per-pixel labels from a frozen dense model, with bounded memory.

    Args:
        model: a ``MaskCLIPTeacher`` (vocabulary set) or a ``SegStudent``.
        vocabulary: the C classes the labels index (class 0 = background when it has one).
        output_stride: the model's feature stride s.
        inference: whole image or sliding window (crops batched, averaged at feature stride).
        background_threshold: pixels whose top probability is below it get class 0.
        max_elements: bound on Q × pixels per resampling tile.
    """

    def __init__(self, model: nn.Module, vocabulary: ClassVocabulary, output_stride: int,
                 inference: InferenceConfig | None = None,
                 background_threshold: float | None = None,
                 max_elements: int = 1 << 25) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.vocabulary = vocabulary
        self.output_stride = int(output_stride)
        self.inference = inference or InferenceConfig()
        if background_threshold is not None and vocabulary.names[0] != BACKGROUND:
            raise ValueError("background.threshold needs a background class 0; "
                             "set background.words too (e.g. background.words=stuff)")
        self.background_threshold = background_threshold
        self.max_elements = max_elements

    def train(self, mode: bool = True) -> "DenseLabeller":
        # Frozen: the wrapped model stays in eval mode whatever Lightning asks.
        return super().train(False)

    # ------------------------------------------------------------------ model-specific parts
    def _score_crops(self, crops: Tensor) -> Tensor:
        """N×3×h×w → N×Q×(h/s)×(w/s) scores."""
        if hasattr(self.model, "query_scores"):
            return self.model.query_scores(crops)[0]
        logits = self.model(crops)
        target = (crops.shape[-2] // self.output_stride, crops.shape[-1] // self.output_stride)
        if tuple(logits.shape[-2:]) != target:
            logits = F.interpolate(logits, size=target, mode="bilinear", align_corners=False)
        return logits

    def scores_to_probs(self, scores: Tensor) -> Tensor:
        """B×Q×… scores → B×C×… probabilities (the teacher's temperature and synonym merge)."""
        if hasattr(self.model, "scores_to_probs"):
            return self.model.scores_to_probs(scores)
        return torch.softmax(scores, 1)  # the student's logits were trained with plain CE

    # ------------------------------------------------------------------ labelling
    @torch.no_grad()
    def feature_scores(self, images: Tensor) -> Tensor:
        """B×3×H×W normalised → B×Q×⌈H/s⌉×⌈W/s⌉ scores over the padded input."""
        if self.inference.mode == "slide":
            return slide_scores(self._score_crops, images, self.output_stride, self.inference)
        if self.inference.align == "stretch":  # the model pads (ViT) or floors (ResNet) itself
            return self._score_crops(images)
        return self._score_crops(pad_to_multiple(images, self.output_stride))

    def _refined(self, images: Tensor, scores: Tensor) -> tuple[Tensor, int]:
        """PAMR (if the teacher is configured with it) at input resolution, as in NACLIP.

        Returns the scores and their stride: 1 after PAMR, the feature stride otherwise. PAMR
        needs the B×Q×H×W input-resolution scores; if those alone exceed the memory budget it
        is skipped with a warning (the feature-stride path below never needs them).
        """
        postproc = getattr(self.model, "postproc", None)
        if postproc is None or postproc.kind != "pamr":
            return scores, self.output_stride
        size = tuple(images.shape[-2:])
        need = 4 * scores.shape[0] * scores.shape[1] * size[0] * size[1]
        if need > memory_budget(scores.device, postproc.max_memory_mb):
            warnings.warn(f"PAMR skipped for a {size[1]}x{size[0]} input: its "
                          f"{scores.shape[1]}-class scores alone need {need / 2**20:.0f} MB",
                          stacklevel=3)
            return scores, self.output_stride
        full = upsample_scores(scores, size, self.output_stride, self.inference.align)
        return pamr(images, full, postproc), 1

    def _align(self, stride: int) -> str:
        """After PAMR the scores are at input resolution (stride 1): nothing left to stretch."""
        return "crop" if stride == 1 else self.inference.align

    @torch.no_grad()
    def label(self, image: Tensor, output_size: Sequence[int] | None = None,
              keep_probs: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """Label one image.

        Args:
            image: 3×H×W normalised image (on the model's device).
            output_size: (H0, W0) of the labels; default H×W.
            keep_probs: also return C×H0×W0 probabilities.

        Returns:
            (labels H0×W0 long, confidence H0×W0 float32, probabilities or None), on CPU.
        """
        return self.label_batch(image[None], [output_size], keep_probs)[0]

    @torch.no_grad()
    def label_batch(self, images: Tensor, output_sizes: Sequence[Sequence[int] | None],
                    keep_probs: bool = False) -> list[tuple[Tensor, Tensor, Tensor | None]]:
        """Label B same-size images in one forward pass (B×3×H×W → B results)."""
        input_size = tuple(images.shape[-2:])
        scores, stride = self._refined(images, self.feature_scores(images))
        results = []
        for image_scores, size in zip(scores, output_sizes):
            size = tuple(size) if size is not None else input_size
            labels, confidence, probs = label_tiles(
                image_scores, input_size, size, stride, self.scores_to_probs,
                self.max_elements, keep_probs, self._align(stride))
            if self.background_threshold is not None:
                labels[confidence < self.background_threshold] = 0
            results.append((labels, confidence, probs))
        return results
