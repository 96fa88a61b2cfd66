"""DenseLabeller: a teacher or a trained student → per-pixel labels for any image, any size.

The labelling side of :mod:`src.models.pipeline` under ``src.predict``, ``src.label`` and
:func:`src.predict.segment`: scores are computed at feature stride (whole image or sliding window,
crops batched) and only then resampled to the original image in row tiles
(:func:`src.models.inference.label_tiles`), so an 8k×8k image with 171 classes never needs its
46 GB of full-resolution logits.

Background (as SCLIP, ClearCLIP and NACLIP label VOC-21, Context-60 and COCO-Object), for images
where most pixels belong to no listed class:
  - ``words``: a background class 0 whose text queries are stuff words (SCLIP's 26-word line),
    max-merged like any synonyms;
  - ``threshold``: pixels whose top class probability is below it become background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.inference import InferenceConfig
from src.models.pipeline import DenseScorer, LabellingPipeline
from src.models.postproc import PostprocConfig
from src.prompts.vocabulary import ClassVocabulary

# SCLIP / NACLIP ``configs/cls_voc21.txt`` line 1: stuff words that stand for "background".
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


class StudentScorer(nn.Module):
    """A segmentation network (N×3×h×w → N×C×h'×w' logits) as a pipeline ``DenseScorer``.

    Its logits are resized to the feature grid ``h/s × w/s`` when the network returns another
    size, and turned into probabilities with a plain softmax (the student was trained with
    plain cross-entropy: no temperature, no synonyms).
    """

    def __init__(self, network: nn.Module, output_stride: int) -> None:
        super().__init__()
        self.network = network
        self.output_stride = int(output_stride)
        self.postproc = PostprocConfig()

    def crop_scores(self, crops: Tensor) -> Tensor:
        logits = self.network(crops)
        target = (crops.shape[-2] // self.output_stride, crops.shape[-1] // self.output_stride)
        if tuple(logits.shape[-2:]) != target:
            logits = F.interpolate(logits, size=target, mode="bilinear", align_corners=False)
        return logits

    def scores_to_probs(self, scores: Tensor, inplace: bool = False) -> Tensor:
        return torch.softmax(scores, 1)


class DenseLabeller(nn.Module):
    """Per-pixel labels from a frozen dense model, with bounded memory.

    A thin owner of :class:`src.models.pipeline.LabellingPipeline`: the steps are the ones
    evaluation runs, with the tiled resampling that keeps memory bounded.

    Args:
        model: a ``DenseScorer`` (the ``MaskCLIPTeacher``, vocabulary set) or a segmentation
            network such as ``SegStudent`` (wrapped in :class:`StudentScorer`).
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
        if not isinstance(model, DenseScorer):
            model = StudentScorer(model, output_stride)
        self.model = model.eval().requires_grad_(False)
        self.vocabulary = vocabulary
        self.output_stride = int(output_stride)
        if background_threshold is not None and vocabulary.names[0] != BACKGROUND:
            raise ValueError("background.threshold needs a background class 0; "
                             "set background.words too (e.g. background.words=stuff)")
        self.background_threshold = background_threshold
        self.max_elements = max_elements
        # PAMR and the area threshold come with the model (a teacher's postproc=...).
        self.pipeline = LabellingPipeline(inference or InferenceConfig(), model.postproc)

    def train(self, mode: bool = True) -> "DenseLabeller":
        # Frozen: the wrapped model stays in eval mode whatever Lightning asks.
        return super().train(False)

    @property
    def inference(self) -> InferenceConfig:
        return self.pipeline.inference

    def scores_to_probs(self, scores: Tensor) -> Tensor:
        """B×Q×… scores → B×C×… probabilities (the teacher's temperature and synonym merge)."""
        return self.model.scores_to_probs(scores)

    @torch.no_grad()
    def feature_scores(self, images: Tensor) -> Tensor:
        """B×3×H×W normalised → B×Q×⌈H/s⌉×⌈W/s⌉ scores over the padded input."""
        return self.pipeline.scores(self.model, images)[0]

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
        return self.pipeline.label_batch(
            self.model, images, output_sizes, keep_probs=keep_probs,
            background_threshold=self.background_threshold, max_elements=self.max_elements)
