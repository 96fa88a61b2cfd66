"""MaskCLIP teacher: a frozen open_clip CLIP turned into a dense labeller (MaskCLIP §3.2).

The facade over three parts, each usable on its own:

- :class:`src.models.dense_clip.DenseCLIP` (``teacher.features``): the image tower read patch by
  patch — tokens entering any block, per-block q/k/v, and the configured head's joint-space
  features at the output stride;
- :class:`src.prompts.text_classifier.TextClassifier` (``teacher.text``): the vocabulary's
  prompt-ensembled text embeddings (disk-cached) and the query → class rule;
- :class:`src.models.pipeline.LabellingPipeline` (``teacher.pipeline``): whole/slide inference,
  PAMR, resampling, probabilities, area threshold, shared with ``DenseLabeller``.

The teacher adds the refinements between features and scores (prompt denoising and key
smoothing, MaskCLIP §3.3) and keeps the public API stable: every constructor keyword,
``forward(images, output_size)``, ``dense_features``, ``set_vocabulary``, ``query_scores``,
``scores_to_probs``, ``class_embeddings``, ``output_stride``, ``image_mean``/``image_std``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch
from torch import Tensor, nn

from src.models.clip_loading import ClipSpec, create_clip, set_image_tower_numerics
from src.models.dense_clip import (SUPPORTED_TOWERS, TEACHER_NORMALIZATIONS, Arch, DenseCLIP,
                                   check_tower, resize_positional_embedding)
from src.models.frontier import FRONTIER_HEADS, is_text_dependent
from src.models.heads import Head, check_head
from src.models.inference import InferenceConfig
from src.models.pipeline import LabellingPipeline
from src.models.postproc import PostprocConfig
from src.models.refine import RefineConfig, refine_scores
from src.prompts.templates import get_templates
from src.prompts.text_classifier import (TextClassifier, default_cache_dir, merge_synonyms,
                                         softmax_channels_)
from src.prompts.vocabulary import ClassVocabulary, load_vocabulary
from src.utils.precision import AUTOCAST_DTYPES

log = logging.getLogger(__name__)

# Re-exported: they were defined here before the teacher was split into its parts.
__all__ = ["Arch", "MaskCLIPTeacher", "SUPPORTED_TOWERS", "TEACHER_NORMALIZATIONS",
           "merge_synonyms", "renormalize", "resize_positional_embedding", "softmax_channels_"]


def _part_setting(part: str, name: str, doc: str, settable: bool = False) -> property:
    """A facade attribute that reads (and, if ``settable``, writes) one part's attribute."""
    def get(self):
        return getattr(getattr(self, part), name)

    def set_(self, value) -> None:
        if name == "head":
            check_head(value)
            if FRONTIER_HEADS.keys() & {value, self.head}:
                raise ValueError(f"head={value!r}: a frontier head holds its own parts; build "
                                 "the teacher with it (MaskCLIPTeacher(..., head=...))")
        if part == "pipeline":  # a frozen dataclass: replaced, not mutated
            self.pipeline = dataclasses.replace(self.pipeline, **{name: value})
        else:
            setattr(getattr(self, part), name, value)

    return property(get, set_ if settable else None, doc=doc)


class MaskCLIPTeacher(nn.Module):
    """A frozen open_clip CLIP as a training-free dense labeller.

    Args:
        model_name: open_clip architecture (``ViT-B-16``, ``RN50``, a registered JSON config...).
        pretrained: open_clip tag (``openai``, ``laion2b_s34b_b88k``), local checkpoint path, or
            None for random init.
        quick_gelu: activation for local files / random init; tags choose it themselves. It
            sets both towers; ``image_act`` then changes the image tower alone.
        image_act: ``gelu`` / ``quick_gelu``: the image tower's MLP activation after building,
            or None to keep what ``quick_gelu`` chose. The official MaskCLIP code ran OpenAI
            weights in an exact-GELU image tower (and QuickGELU text embeddings).
        image_ln_eps: the eps of every image-tower LayerNorm (official mmseg ViT: 1e-6), or None
            to keep the model's (1e-5).
        normalize: the input normalisation this teacher expects: ``model`` (the CLIP's own
            preprocessing mean/std), ``imagenet`` (the official MaskCLIP code) or ``clip``
            (OpenAI's). ``image_mean``/``image_std`` report it; the LitModules convert images
            normalised otherwise (see ``renormalize``).
        model_config: optional open_clip JSON config to register before building.
        keep_residual: keep the last block's residual around the value path (official: True).
        keep_ffn: keep the last block's MLP after the value path (official: True).
        head: the last block's variant (src.models.heads): ``maskclip`` (the value path, §3.2),
            ``naive`` (the unchanged block per patch, the baseline of §3.1), ``clearclip``,
            ``sclip`` or ``naclip`` (the later training-free heads); all but ``maskclip`` need
            a ViT.
        refine: key smoothing / prompt denoising switches (default: off).
        inference: whole-image or sliding-window settings, alignment, window averaging and
            padding (src.models.inference).
        postproc: ``none`` or ``pamr`` (applied to the scores at input resolution), and the
            area threshold.
        vocabulary, templates: if given, the text classifier is built right away.
        cache_dir: where text classifiers are cached; None disables the cache.
        autocast_dtype: mixed precision the LitModules run this teacher in on a GPU
            (``bfloat16``, ``float16``, or ``float32`` for none); the CPU always runs fp32.
        compile_dense: run the dense pass through ``torch.compile`` (1.36-1.47x the dense
            throughput on an H100 in bf16 after 14-20 s of compilation, 1.04-1.08x on the CPU;
            docs/bench.md). Not named ``compile``: that would hide ``nn.Module.compile``.
        head_options: keyword options of a frontier head (src.models.frontier).
        proxy: ProxyCLIP's second vision model, ``{"model": <timm name>, "pretrained": ...}``.
        position_resize: ``exact`` or ``peers`` (the later methods' position-table resize).

    The module is always in eval mode with ``requires_grad=False``; ``train()`` cannot flip it.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-16",
        pretrained: str | None = "openai",
        *,
        quick_gelu: bool | None = None,
        image_act: str | None = None,
        image_ln_eps: float | None = None,
        normalize: str = "model",
        model_config: str | None = None,
        keep_residual: bool = True,
        keep_ffn: bool = True,
        head: Head = "maskclip",
        refine: RefineConfig | dict | None = None,
        inference: InferenceConfig | dict | None = None,
        postproc: PostprocConfig | dict | None = None,
        vocabulary: ClassVocabulary | str | Sequence[str] | None = None,
        templates: str | Sequence[str] = "imagenet85",
        cache_dir: str | Path | None = "default",
        autocast_dtype: str = "bfloat16",
        compile_dense: bool = False,
        head_options: dict | None = None,
        proxy: dict | None = None,
        position_resize: str = "exact",
    ) -> None:
        super().__init__()
        if normalize not in TEACHER_NORMALIZATIONS:
            raise ValueError(f"teacher.normalize={normalize!r}: choose one of "
                             f"{list(TEACHER_NORMALIZATIONS)}")
        if autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"teacher.autocast_dtype={autocast_dtype!r}: choose one of "
                             f"{sorted(AUTOCAST_DTYPES)}")
        clip, spec = create_clip(model_name, pretrained, quick_gelu=quick_gelu,
                                 model_config=model_config)
        arch = check_tower(clip.visual)
        self.image_numerics = set_image_tower_numerics(clip.visual, image_act, image_ln_eps)
        if (image_act is not None or image_ln_eps is not None) and arch == "resnet":
            log.info("teacher.image_act / image_ln_eps do not apply to a ResNet tower (ReLU and "
                     "BatchNorm, as in the official ResNetClip); left as built")
        self.features = DenseCLIP(clip, spec, model_name, head=head, keep_residual=keep_residual,
                                  keep_ffn=keep_ffn, normalize=normalize,
                                  compile_dense=compile_dense, head_options=head_options,
                                  proxy=proxy, position_resize=position_resize)
        cache_dir = default_cache_dir() if cache_dir == "default" else cache_dir
        self.text = TextClassifier(open_clip.get_tokenizer(spec.arch), spec.weights_id, cache_dir)
        self.refine = refine if isinstance(refine, RefineConfig) else RefineConfig(**(refine or {}))
        if is_text_dependent(self.features.frontier) and (self.refine.key_smoothing
                                                         or self.refine.prompt_denoising):
            raise ValueError(f"head={head!r} already refines its scores with its own first pass; "
                             "key smoothing and prompt denoising do not apply to it: use "
                             "refine=none")
        self.pipeline = LabellingPipeline(
            inference if isinstance(inference, InferenceConfig)
            else InferenceConfig(**(inference or {})),
            postproc if isinstance(postproc, PostprocConfig)
            else PostprocConfig(**(postproc or {})))
        self.autocast_dtype = autocast_dtype  # read by the LitModules (utils.precision)
        self._register_load_state_dict_pre_hook(_older_layout)
        self.requires_grad_(False)
        super().train(False)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, templates)

    # ------------------------------------------------------------------ frozen-ness
    def train(self, mode: bool = True) -> "MaskCLIPTeacher":
        """Always stays in eval mode: a frozen teacher must not update BN stats or drop out."""
        return super().train(False)

    # ------------------------------------------------------------------ the parts' settings
    clip = _part_setting("features", "clip", "The open_clip model.")
    spec = _part_setting("features", "spec", "How the weights were resolved (ClipSpec).")
    arch = _part_setting("features", "arch", "``vit`` or ``resnet``.")
    model_name = _part_setting("features", "model_name", "The open_clip architecture name.")
    head = _part_setting("features", "head", "The last-block variant.", settable=True)
    keep_residual = _part_setting("features", "keep_residual", "Value path keeps the residual.",
                                  settable=True)
    keep_ffn = _part_setting("features", "keep_ffn", "Value path keeps the MLP.", settable=True)
    normalize = _part_setting("features", "normalize", "The input statistics' name.")
    image_mean = _part_setting("features", "image_mean", "Expected input mean ([0, 1] units).")
    image_std = _part_setting("features", "image_std", "Expected input std ([0, 1] units).")
    output_stride = _part_setting("features", "output_stride",
                                  "Input pixels per dense-feature cell (ViT patch, 32 for RN).")
    embed_dim = _part_setting("features", "embed_dim", "D, the joint image-text width.")
    logit_scale = _part_setting("features", "logit_scale", "The CLIP's own ``exp(logit_scale)``.")
    inference = _part_setting("pipeline", "inference", "Whole/slide inference settings.",
                              settable=True)
    postproc = _part_setting("pipeline", "postproc", "PAMR and area-threshold settings.",
                             settable=True)
    tokenizer = _part_setting("text", "tokenizer", "The CLIP's tokenizer.")
    cache_dir = _part_setting("text", "cache_dir", "Where text classifiers are cached.")
    vocabulary = _part_setting("text", "vocabulary", "The ClassVocabulary, once set.")

    @property
    def compile_dense(self) -> bool:
        return self.features.compile_dense

    @compile_dense.setter
    def compile_dense(self, value: bool) -> None:
        self.features.compile_dense = value
        self.features._compiled_dense = None

    query_embeddings = _part_setting("text", "query_embeddings",
                                     "Q×D unit-norm text embeddings of the vocabulary's queries.",
                                     settable=True)
    query_to_class = _part_setting("text", "query_to_class",
                                   "Q long: the class of each query (synonyms share one).",
                                   settable=True)

    @property
    def num_classes(self) -> int:
        return self.text.num_classes

    def resolved_temperature(self) -> float:
        """The softmax temperature: ``refine.temperature``, or the CLIP's own for ``model``."""
        t = self.refine.temperature
        return self.logit_scale if t == "model" else float(t)

    # ------------------------------------------------------------------ dense features
    def dense_features_and_keys(self, images: Tensor, with_keys: bool = True
                                ) -> tuple[Tensor, Tensor | None]:
        """(B×D×h×w L2-normalised features, B×(h·w)×C keys or None); see DenseCLIP."""
        return self.features.features_and_keys(images, with_keys)

    def dense_features(self, images: Tensor) -> Tensor:
        """B×3×H×W normalised images → B×D×h×w L2-normalised joint-space embeddings."""
        return self.features(images)

    # ------------------------------------------------------------------ text
    def encode_queries(self, queries: Sequence[str], templates: str | Sequence[str] = "imagenet85",
                       progress: bool = True) -> Tensor:
        """Prompt-ensembled, unit-norm embeddings (Q×D) of free-text queries, disk-cached."""
        return self.text.encode(self.clip, queries, get_templates(templates), progress)

    def set_vocabulary(self, vocabulary: ClassVocabulary | str | Sequence[str],
                       templates: str | Sequence[str] = "imagenet85") -> None:
        """Build (or load from cache) the text classifier for a vocabulary."""
        self.text.set_vocabulary(self.clip, load_vocabulary(vocabulary), get_templates(templates))

    @property
    def class_embeddings(self) -> Tensor:
        """C×D: per class, the renormalised mean of its synonyms' embeddings."""
        return self.text.class_embeddings

    def _require_vocabulary(self) -> None:
        self.text.require_vocabulary()

    # ------------------------------------------------------------------ scores
    @torch.no_grad()
    def query_scores(self, images: Tensor, query_embeddings: Tensor | None = None
                     ) -> tuple[Tensor, bool]:
        """Per-query scores at feature resolution, refined as configured.

        Args:
            images: B×3×H×W normalised images.
            query_embeddings: Q×D unit-norm text embeddings (default: the vocabulary's).

        Returns:
            (B×Q×h×w scores, is_probability): cosine logits, or probabilities when key
            smoothing ran (as the official head returns them).
        """
        if query_embeddings is None:
            self._require_vocabulary()
        head = self.features.frontier
        if is_text_dependent(head):
            embeddings = self.query_embeddings if query_embeddings is None else query_embeddings
            return head.query_scores(self.features, images, embeddings,
                                     self.resolved_temperature()), False
        feats, keys = self.dense_features_and_keys(images, with_keys=self.refine.key_smoothing)
        logits = self.text.query_logits(feats, query_embeddings)
        return refine_scores(logits, keys, self.refine, self.resolved_temperature())

    def crop_scores(self, crops: Tensor) -> Tensor:
        """N×3×h×w → N×Q×h'×w' scores (the pipeline's ``DenseScorer`` interface)."""
        return self.query_scores(crops)[0]

    @torch.no_grad()
    def forward(self, images: Tensor, output_size: tuple[int, int] | None = None) -> Tensor:
        """Class probabilities at input (or original-image) resolution.

        Scores (whole image or sliding windows) are bilinearly upsampled to the input size H×W,
        refined by PAMR if configured, then, like mmseg's ``whole_inference``, resized again to
        ``output_size`` (the original image). Only then are they turned into probabilities with
        softmax(T·logits) (key smoothing already gives probabilities) and max-merged over each
        class's synonyms, so the argmax matches the official code (src.models.pipeline).

        Args:
            images: B×3×H×W normalised images.
            output_size: (H0, W0) to resize to, e.g. the ground truth's size; None keeps H×W.

        Returns:
            B×C×H×W (or B×C×H0×W0) class probabilities; argmax is the MaskCLIP prediction.
        """
        self._require_vocabulary()
        return self.pipeline.probabilities(self, images, output_size)

    def feature_scores(self, images: Tensor) -> Tensor:
        """Query scores over the padded input, whole or sliding-window.

        Args:
            images: B×3×H×W normalised images.

        Returns:
            B×Q×⌈H/s⌉×⌈W/s⌉ scores (probabilities when key smoothing is on), s = output stride;
            B×Q×H×W with ``inference.average=pixel``.
        """
        self._require_vocabulary()
        return self.pipeline.scores(self, images)[0]

    def scores_to_probs(self, scores: Tensor, inplace: bool = False) -> Tensor:
        """B×Q×… query scores → B×C×… class probabilities: softmax(T·s), then synonym max-merge.

        Key smoothing already yields probabilities, so they are only merged. ``inplace`` reuses
        ``scores``' memory (the caller must own it).
        """
        return self.text.probabilities(scores, self.resolved_temperature(),
                                       self.refine.key_smoothing, inplace)


def _older_layout(state_dict: dict, prefix: str, *args) -> None:
    """Read state dicts saved before the split: ``clip.*`` is now ``features.clip.*``."""
    for key in [k for k in state_dict if k.startswith(prefix + "clip.")]:
        state_dict[prefix + "features." + key[len(prefix):]] = state_dict.pop(key)


def renormalize(images: Tensor, source: tuple[Sequence[float], Sequence[float]],
                target: tuple[Sequence[float], Sequence[float]]) -> Tensor:
    """Images normalised with ``source`` (mean, std) → normalised with ``target``.

    A MaskCLIP+ run feeds one batch to two models that may expect different statistics: the
    official student and MaskCLIP teacher take ImageNet's, the later heads CLIP's. Values are in
    [0, 1] units per channel. Returns ``images`` itself when the two are equal.

    Args:
        images: B×3×H×W (or 3×H×W).
    """
    (src_mean, src_std), (dst_mean, dst_std) = source, target
    if tuple(map(float, src_mean)) == tuple(map(float, dst_mean)) and \
            tuple(map(float, src_std)) == tuple(map(float, dst_std)):
        return images
    shape = (-1, 1, 1)
    as_tensor = lambda v: torch.tensor([float(x) for x in v], dtype=images.dtype,  # noqa: E731
                                       device=images.device).view(shape)
    pixels = images * as_tensor(src_std) + as_tensor(src_mean)
    return (pixels - as_tensor(dst_mean)) / as_tensor(dst_std)
