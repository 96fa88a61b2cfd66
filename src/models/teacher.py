"""MaskCLIP teacher: a frozen open_clip CLIP turned into a dense labeller (MaskCLIP §3.2).

ViT: blocks 1..L-1 run unchanged; in the last block the query/key attention is dropped and
each token keeps only its own value path (ln_1 → value projection → out_proj), so the dense
output stays local to its patch. As in the official code, that block's residual and MLP are
kept (``keep_residual``/``keep_ffn`` switch them off for ClearCLIP's clean variant); ln_post and
the joint-space projection follow and the CLS token is dropped.

ResNet: layer4 features go through ``attnpool.v_proj`` and ``attnpool.c_proj`` applied as 1×1
maps, without the attention pool's positional embedding.

Only open_clip's stable parameter names are read: ``conv1``, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks[i].{ln_1, attn.in_proj_*,
attn.out_proj, ls_1, ln_2, mlp, ls_2}``, ``ln_post``, ``proj`` and ``attnpool.{k,v,c}_proj``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import logging

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import Tensor, nn

from src.data.transforms import NORMALIZATION
from src.models.clip_loading import ClipSpec, create_clip, set_image_tower_numerics
from src.models.heads import HEAD_FUNCTIONS, Head, check_head, maskclip_tokens
from src.models.postproc import PostprocConfig, pamr
from src.models.inference import InferenceConfig, slide_scores, upsample_scores, whole_scores
from src.models.refine import RefineConfig, refine_scores
from src.prompts.templates import get_templates
from src.prompts.text_classifier import (
    build_text_classifier,
    class_embeddings,
    default_cache_dir,
    load_or_build_classifier,
)
from src.prompts.vocabulary import ClassVocabulary, load_vocabulary
from src.utils.precision import AUTOCAST_DTYPES

log = logging.getLogger(__name__)

SUPPORTED_TOWERS = (
    "open_clip VisionTransformer with class-token pooling (ViT-B/32, ViT-B/16, ViT-L/14, any "
    "width/depth, LayerScale allowed), or ModifiedResNet (RN50, RN101, RN50x4, RN50x16, RN50x64)"
)

Arch = Literal["vit", "resnet"]
TEACHER_NORMALIZATIONS = ("model", "imagenet", "clip")
# Dense heads: how the last ViT block turns tokens into per-patch embeddings.
#   maskclip: the value path (MaskCLIP §3.2, official code).
#   naive:    the unchanged last block per token (the baseline MaskCLIP improves on, §3.1).


def _check_tower(visual: nn.Module) -> Arch:
    """Return the tower kind, or raise a ValueError that lists what is supported."""
    if isinstance(visual, ModifiedResNet):
        return "resnet"
    if isinstance(visual, VisionTransformer):
        problems = []
        if visual.attn_pool is not None:
            problems.append("an attentional pooler")
        if visual.pool_type != "tok":
            problems.append(f"pool_type={visual.pool_type!r} (average-pool variant)")
        if visual.final_ln_after_pool:
            problems.append("final_ln_after_pool")
        last = visual.transformer.resblocks[-1]
        if not isinstance(last, ResidualAttentionBlock) or not isinstance(
            last.attn, nn.MultiheadAttention
        ):
            problems.append(f"custom attention blocks ({type(last).__name__})")
        if not problems:
            return "vit"
        detail = ", ".join(problems)
    else:
        detail = type(visual).__name__
    raise ValueError(
        f"MaskCLIPTeacher cannot take the dense value path of this image tower ({detail}). "
        f"Supported: {SUPPORTED_TOWERS}."
    )


def resize_positional_embedding(pos_embed: Tensor, src_grid: tuple[int, int],
                                dst_grid: tuple[int, int]) -> Tensor:
    """Resize a ViT positional embedding to another patch grid, keeping the CLS position.

    Bicubic with ``align_corners=False``, as the official mmseg backbone does on every forward.

    Args:
        pos_embed: (1+gh·gw)×W learned embedding.

    Returns:
        (1+h·w)×W embedding for the ``dst_grid`` (h, w).
    """
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    cls_pos, grid_pos = pos_embed[:1], pos_embed[1:]
    width = grid_pos.shape[-1]
    grid_pos = grid_pos.reshape(1, src_grid[0], src_grid[1], width).permute(0, 3, 1, 2)
    grid_pos = F.interpolate(grid_pos.float(), size=dst_grid, mode="bicubic", align_corners=False)
    grid_pos = grid_pos.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(-1, width)
    return torch.cat([cls_pos, grid_pos], dim=0)


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
        head: ``maskclip`` (value path) or ``naive`` (the unchanged last block per patch, the
            baseline of MaskCLIP §3.1; ViT only).
        refine: key smoothing / prompt denoising switches (default: off).
        inference: whole-image or sliding-window settings.
        postproc: ``none`` or ``pamr`` (applied to the scores at input resolution).
        vocabulary, templates: if given, the text classifier is built right away.
        cache_dir: where text classifiers are cached; None disables the cache.
        autocast_dtype: mixed precision the LitModules run this teacher in on a GPU
            (``bfloat16``, ``float16``, or ``float32`` for none); the CPU always runs fp32.
        compile_dense: run the dense pass through ``torch.compile`` (1.36-1.47x the dense
            throughput on an H100 in bf16 after 14-20 s of compilation, 1.04-1.08x on the CPU;
            docs/bench.md). Not named ``compile``: that would hide ``nn.Module.compile``.

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
    ) -> None:
        super().__init__()
        clip, spec = create_clip(model_name, pretrained, quick_gelu=quick_gelu,
                                 model_config=model_config)
        self.arch: Arch = _check_tower(clip.visual)
        self.image_numerics = set_image_tower_numerics(clip.visual, image_act, image_ln_eps)
        if (image_act is not None or image_ln_eps is not None) and self.arch == "resnet":
            log.info("teacher.image_act / image_ln_eps do not apply to a ResNet tower (ReLU and "
                     "BatchNorm, as in the official ResNetClip); left as built")
        self.clip = clip
        self.spec: ClipSpec = spec
        self.model_name = model_name
        self.keep_residual = keep_residual
        self.keep_ffn = keep_ffn
        check_head(head)
        if head != "maskclip" and self.arch != "vit":
            raise ValueError(f"head={head!r} needs a ViT image tower; ResNets support 'maskclip'")
        self.head = head
        self.refine = refine if isinstance(refine, RefineConfig) else RefineConfig(**(refine or {}))
        self.inference = (inference if isinstance(inference, InferenceConfig)
                          else InferenceConfig(**(inference or {})))
        self.postproc = (postproc if isinstance(postproc, PostprocConfig)
                         else PostprocConfig(**(postproc or {})))
        self.cache_dir = default_cache_dir() if cache_dir == "default" else cache_dir
        if autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"teacher.autocast_dtype={autocast_dtype!r}: choose one of "
                             f"{sorted(AUTOCAST_DTYPES)}")
        self.autocast_dtype = autocast_dtype  # read by the LitModules (utils.precision)
        self.compile_dense = compile_dense
        self._compiled_dense = None  # built on first use, dropped when pickled (DDP spawn)
        self._position_cache: dict[tuple, Tensor] = {}  # resized positional embeddings
        self.tokenizer = open_clip.get_tokenizer(spec.arch)
        if normalize not in TEACHER_NORMALIZATIONS:
            raise ValueError(f"teacher.normalize={normalize!r}: choose one of "
                             f"{list(TEACHER_NORMALIZATIONS)}")
        self.normalize = normalize
        if normalize == "model":
            pp = getattr(clip.visual, "preprocess_cfg", {}) or {}
            mean = pp.get("mean", open_clip.OPENAI_DATASET_MEAN)
            std = pp.get("std", open_clip.OPENAI_DATASET_STD)
        else:
            mean, std = NORMALIZATION[normalize]
        self.image_mean = tuple(float(m) for m in mean)
        self.image_std = tuple(float(s) for s in std)
        self.vocabulary: ClassVocabulary | None = None
        # Text classifier buffers are non-persistent: they are rebuilt from the vocabulary, so
        # they never bloat a checkpoint and Lightning moves them with the module.
        self.register_buffer("query_embeddings", torch.empty(0), persistent=False)
        self.register_buffer("query_to_class", torch.empty(0, dtype=torch.long), persistent=False)
        self.requires_grad_(False)
        super().train(False)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, templates)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_compiled_dense"] = None  # a compiled function does not pickle; rebuilt lazily
        state["_position_cache"] = {}
        return state

    # ------------------------------------------------------------------ frozen-ness
    def train(self, mode: bool = True) -> "MaskCLIPTeacher":
        """Always stays in eval mode: a frozen teacher must not update BN stats or drop out."""
        return super().train(False)

    @property
    def output_stride(self) -> int:
        """Input pixels per dense-feature cell (ViT patch size, 32 for ModifiedResNet)."""
        if self.arch == "vit":
            return int(self.clip.visual.patch_size[0])
        return 32

    @property
    def embed_dim(self) -> int:
        """D, the joint image-text embedding width."""
        if self.arch == "vit":
            return int(self.clip.visual.proj.shape[1])
        return int(self.clip.visual.attnpool.c_proj.out_features)

    @property
    def logit_scale(self) -> float:
        """The CLIP's own learned temperature, ``exp(logit_scale)``."""
        return float(self.clip.logit_scale.exp())

    def resolved_temperature(self) -> float:
        t = self.refine.temperature
        return self.logit_scale if t == "model" else float(t)

    # ------------------------------------------------------------------ dense features
    def _vit_tokens_before_last_block(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Patch-embed (bottom/right zero padding), add resized positions, run blocks 1..L-1.

        Returns:
            (B×(1+h·w)×W tokens entering the last block, (h, w) patch grid).
        """
        visual = self.clip.visual
        ph, pw = visual.patch_size
        height, width = images.shape[-2:]
        pad_h, pad_w = (-height) % ph, (-width) % pw
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        x = visual.conv1(images.to(visual.conv1.weight.dtype))  # B×W×h×w
        grid = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + self._positional_embedding(grid).to(x.dtype)
        x = visual.patch_dropout(x)
        x = visual.ln_pre(x)
        transformer = visual.transformer
        batch_first = getattr(transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in transformer.resblocks[:-1]:
            x = block(x)
        if not batch_first:
            x = x.transpose(0, 1)
        return x, grid

    def _positional_embedding(self, grid: tuple[int, int]) -> Tensor:
        """The (1+h·w)×W positional embedding for ``grid``, resized once and cached.

        Bicubic resizing of a 768-channel 14×14 grid takes ~3 ms on an H100, a tenth of a
        batch-32 dense pass at 448² (docs/profile_gpu_448_b32_before_pos_cache.txt), so it is
        not redone per call. The key holds the parameter's version counter and storage, so
        loading new weights (an in-place copy) or moving the model invalidates it.
        """
        visual = self.clip.visual
        pos = visual.positional_embedding
        if torch.compiler.is_compiling():  # inductor fuses it; a dict lookup would break graphs
            return resize_positional_embedding(pos, visual.grid_size, grid)
        key = (tuple(grid), pos.device, pos.dtype, pos.data_ptr(), pos._version)
        cached = self._position_cache.get(key)
        if cached is None:
            if len(self._position_cache) >= 16:  # many input sizes (whole-image mode): bounded
                self._position_cache.clear()
            with torch.no_grad():
                cached = resize_positional_embedding(pos, visual.grid_size, grid)
            self._position_cache[key] = cached
        return cached

    def _last_block(self) -> nn.Module:
        return self.clip.visual.transformer.resblocks[-1]

    def _vit_last_block_keys(self, x: Tensor) -> Tensor:
        """Keys of the last block after out_proj (B×N×W), for key smoothing.

        The official code applies out_proj to q, k and v alike, and key smoothing uses those keys.
        """
        block = self._last_block()
        attn, width = block.attn, x.shape[-1]
        k = F.linear(block.ln_1(x), attn.in_proj_weight[width:2 * width],
                     attn.in_proj_bias[width:2 * width])
        return attn.out_proj(k)

    def _vit_head_tokens(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        """The configured head's last block (src.models.heads), then ln_post: B×N×W.

        Args:
            x: B×N×W tokens entering the last block (N = 1 + h·w).
            grid: (h, w) patch grid.
        """
        block = self._last_block()
        head = HEAD_FUNCTIONS[self.head]
        if self.head == "naive" and not getattr(self.clip.visual.transformer, "batch_first", True):
            out = block(x.transpose(0, 1)).transpose(0, 1)
        else:
            out = head(block, x, grid, keep_residual=self.keep_residual, keep_ffn=self.keep_ffn)
        return self.clip.visual.ln_post(out)

    def _vit_value_path(self, x: Tensor) -> Tensor:
        """The MaskCLIP value path (kept for the locality test and readers): B×N×W."""
        return self.clip.visual.ln_post(maskclip_tokens(
            self._last_block(), x, keep_residual=self.keep_residual, keep_ffn=self.keep_ffn))

    def _resnet_dense(self, images: Tensor, with_keys: bool) -> tuple[Tensor, Tensor | None]:
        """layer4 → v_proj → c_proj as 1×1 maps; keys from k_proj (MaskCLIP §3.2).

        Returns:
            (B×D×h×w unnormalised features, B×(h·w)×C keys or None).
        """
        visual = self.clip.visual
        x = images.to(visual.conv1.weight.dtype)
        x = visual.stem(x)
        x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
        pool = visual.attnpool
        value = F.conv2d(x, pool.v_proj.weight[:, :, None, None], pool.v_proj.bias)
        feats = F.conv2d(value, pool.c_proj.weight[:, :, None, None], pool.c_proj.bias)
        keys = None
        if with_keys:
            keys = F.linear(x.flatten(2).transpose(1, 2), pool.k_proj.weight, pool.k_proj.bias)
        return feats, keys

    @torch.no_grad()
    def dense_features_and_keys(self, images: Tensor, with_keys: bool = True
                                ) -> tuple[Tensor, Tensor | None]:
        """Dense joint-space features and last-layer keys.

        Args:
            images: B×3×H×W, normalised with the model's mean/std.
            with_keys: compute the keys (only key smoothing needs them); None otherwise.

        Returns:
            (B×D×h×w L2-normalised features, B×(h·w)×C keys) with h = ⌈H/s⌉ for ViT (the input
            is zero-padded bottom/right to a multiple of the patch size s).
        """
        if self.compile_dense:
            if self._compiled_dense is None:
                self._compiled_dense = torch.compile(self._dense_features_and_keys)
            return self._compiled_dense(images, with_keys)
        return self._dense_features_and_keys(images, with_keys)

    def _dense_features_and_keys(self, images: Tensor, with_keys: bool
                                 ) -> tuple[Tensor, Tensor | None]:
        if self.arch == "resnet":
            feats, keys = self._resnet_dense(images, with_keys)
        else:
            tokens, (h, w) = self._vit_tokens_before_last_block(images)
            feats = self._vit_head_tokens(tokens, (h, w))[:, 1:] @ self.clip.visual.proj  # no CLS
            feats = feats.transpose(1, 2).reshape(images.shape[0], -1, h, w)
            keys = self._vit_last_block_keys(tokens)[:, 1:] if with_keys else None
        return F.normalize(feats.float(), dim=1), None if keys is None else keys.float()

    def dense_features(self, images: Tensor) -> Tensor:
        """B×3×H×W normalised images → B×D×h×w L2-normalised joint-space embeddings."""
        return self.dense_features_and_keys(images, with_keys=False)[0]

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def encode_queries(self, queries: Sequence[str], templates: str | Sequence[str] = "imagenet85",
                       progress: bool = True) -> Tensor:
        """Prompt-ensembled, unit-norm embeddings (Q×D) of free-text queries, disk-cached."""
        templates = get_templates(templates)
        device = self.clip.logit_scale.device
        return load_or_build_classifier(
            lambda: build_text_classifier(self.clip, self.tokenizer, list(queries), templates,
                                          device=device, progress=progress),
            self.spec.weights_id, list(queries), templates, self.cache_dir,
        ).to(device)

    def set_vocabulary(self, vocabulary: ClassVocabulary | str | Sequence[str],
                       templates: str | Sequence[str] = "imagenet85") -> None:
        """Build (or load from cache) the text classifier for a vocabulary."""
        vocab = load_vocabulary(vocabulary)
        self.vocabulary = vocab
        self.query_embeddings = self.encode_queries(vocab.flat_queries, templates)
        self.query_to_class = vocab.query_to_class.to(self.query_embeddings.device)

    @property
    def class_embeddings(self) -> Tensor:
        """C×D: per class, the renormalised mean of its synonyms' embeddings."""
        self._require_vocabulary()
        return class_embeddings(self.query_embeddings, self.query_to_class,
                                self.vocabulary.num_classes)

    def _require_vocabulary(self) -> None:
        if self.vocabulary is None:
            raise RuntimeError("call teacher.set_vocabulary(...) before asking for logits")

    # ------------------------------------------------------------------ logits
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
            query_embeddings = self.query_embeddings
        feats, keys = self.dense_features_and_keys(images, with_keys=self.refine.key_smoothing)
        logits = torch.einsum("bdhw,qd->bqhw", feats, query_embeddings.to(feats.dtype))
        return refine_scores(logits, keys, self.refine, self.resolved_temperature())

    @torch.no_grad()
    def forward(self, images: Tensor, output_size: tuple[int, int] | None = None) -> Tensor:
        """Class probabilities at input (or original-image) resolution.

        Feature-resolution query scores are averaged over sliding windows (if configured) and
        bilinearly upsampled to the input size H×W, then, like mmseg's ``whole_inference``,
        resized again to ``output_size`` (the original image). Only then are they turned into
        probabilities with softmax(T·logits) (key smoothing already gives probabilities) and
        max-merged over each class's synonyms, so the argmax matches the official code.

        Args:
            images: B×3×H×W normalised images.
            output_size: (H0, W0) to resize to, e.g. the ground truth's size; None keeps H×W.

        Returns:
            B×C×H×W (or B×C×H0×W0) class probabilities; argmax is the MaskCLIP prediction.
        """
        self._require_vocabulary()
        scores = upsample_scores(self.feature_scores(images), images.shape[-2:], self.output_stride,
                                 self.inference.align)
        if self.postproc.kind == "pamr":  # on the input-resolution scores, as NACLIP does
            scores = pamr(images, scores, self.postproc)
        if output_size is not None and tuple(output_size) != tuple(scores.shape[-2:]):
            scores = F.interpolate(scores, size=tuple(output_size), mode="bilinear",
                                   align_corners=False)
        # The upsampled scores are this function's own: softmax them where they lie, so the
        # peak is one full-resolution map, not three (scores, T·scores, probabilities).
        return self.scores_to_probs(scores, inplace=True)

    def feature_scores(self, images: Tensor) -> Tensor:
        """Query scores at feature resolution over the padded input, whole or sliding-window.

        Args:
            images: B×3×H×W normalised images.

        Returns:
            B×Q×⌈H/s⌉×⌈W/s⌉ scores (probabilities when key smoothing is on), s = output stride.
        """
        self._require_vocabulary()
        score_fn = lambda crops: self.query_scores(crops)[0]  # noqa: E731
        if self.inference.mode == "slide":
            return slide_scores(score_fn, images, self.output_stride, self.inference)
        return whole_scores(score_fn, images, self.output_stride, self.inference.align)

    def scores_to_probs(self, scores: Tensor, inplace: bool = False) -> Tensor:
        """B×Q×… query scores → B×C×… class probabilities: softmax(T·s), then synonym max-merge.

        Key smoothing already yields probabilities, so they are only merged. ``inplace`` reuses
        ``scores``' memory (the caller must own it): at input resolution this is evaluation's
        largest tensor, 19 × 2048 × 1024 floats = 159 MB for Cityscapes.
        """
        if self.refine.key_smoothing:
            probs = scores
        elif inplace and scores.dim() == 4:
            probs = softmax_channels_(scores.mul_(self.resolved_temperature()))
        else:
            probs = torch.softmax(self.resolved_temperature() * scores, 1)
        return merge_synonyms(probs, self.query_to_class, self.vocabulary.num_classes)


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


def softmax_channels_(x: Tensor, chunk_elements: int = 2**22) -> Tensor:
    """Softmax over dim 1 of a B×C×H×W tensor, written back into ``x``; returns ``x``.

    torch's fused softmax runs on row chunks of one image at a time and each result is copied
    back, so the extra memory is one chunk (16 MB in fp32), not a second copy of ``x``. A
    hand-written in-place softmax (max, subtract, exp, sum, divide) costs the same memory but
    was 9% slower for batch-256 labels on an H100.
    """
    rows = max(1, chunk_elements // (x.shape[1] * x.shape[-1]))
    for item in x:  # C×H×W
        for part in item.split(rows, dim=-2):
            part.copy_(torch.softmax(part, 0))
    return x


def merge_synonyms(probs: Tensor, query_to_class: Tensor, num_classes: int) -> Tensor:
    """Max over each class's queries (SCLIP's rule for synonyms).

    Args:
        probs: B×Q×H×W query probabilities.
        query_to_class: Q long tensor.

    Returns:
        B×C×H×W; identical to ``probs`` when every class has exactly one query.
    """
    if probs.shape[1] == num_classes:
        return probs
    index = query_to_class.to(probs.device).view(1, -1, 1, 1).expand_as(probs)
    out = probs.new_full((probs.shape[0], num_classes, *probs.shape[2:]), float("-inf"))
    return out.scatter_reduce(1, index, probs, reduce="amax", include_self=True)
