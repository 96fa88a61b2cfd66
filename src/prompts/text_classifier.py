"""Prompt-ensembled text classifiers (MaskCLIP §3.4), with an exact fast path and a disk cache.

For each query (class name or synonym): embed every template, L2-normalise each embedding,
average over templates, L2-normalise again. This is what open_clip's
``build_zero_shot_classifier`` and the official ``prompt_engineering.py`` compute.

Fast path: CLIP's text tower attends causally and pools at the EOT token, so positions after
the longest prompt in a batch never influence the result. Running only the first L positions
(``positional_embedding[:L]``, ``attn_mask[:L, :L]``) is exact and skips most of the 77-token
context on CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from src.utils.io import atomic_torch_save

log = logging.getLogger(__name__)

# Bump when the embedding computation changes, so stale caches are not reused.
CLASSIFIER_CACHE_VERSION = 1


def _truncatable(model: nn.Module) -> bool:
    """True when ``encode_text`` can run on a prefix of the context exactly."""
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
    if not all(hasattr(model, n) for n in needed) or model.attn_mask is None:
        return False
    return getattr(model, "text_pool_type", "argmax") in ("argmax", "eos", "first")


def encode_text_truncated(model: nn.Module, tokens: Tensor) -> Tensor:
    """open_clip's ``CLIP.encode_text`` on the used token prefix only.

    Args:
        model: an open_clip ``CLIP`` (causal text tower).
        tokens: N×77 token ids from the model's tokenizer.

    Returns:
        N×D unnormalised text embeddings, equal to ``model.encode_text(tokens)``.
    """
    from open_clip.transformer import text_global_pool

    pool_type = getattr(model, "text_pool_type", "argmax")
    eos_id = getattr(model, "text_eos_id", None)
    if pool_type == "argmax":
        last = int(tokens.argmax(dim=-1).max())
    elif pool_type == "eos":
        last = int((tokens == eos_id).int().argmax(dim=-1).max())
    else:
        last = 0
    length = last + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, pool_type, eos_token_id=eos_id)
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    return x


@torch.no_grad()
def build_text_classifier(
    model: nn.Module,
    tokenizer: Callable[[list[str]], Tensor],
    queries: Sequence[str],
    templates: Sequence[str],
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    truncate: bool = True,
    progress: bool = True,
) -> Tensor:
    """Embed every query with every template and ensemble them.

    Args:
        model: an open_clip model with ``encode_text``.
        tokenizer: the model's tokenizer (``open_clip.get_tokenizer(name)``).
        queries: Q prompt names.
        templates: T format strings with one ``{}``.
        batch_size: prompts per text-tower forward.
        truncate: use the exact causal-prefix fast path when the model allows it.

    Returns:
        Q×D float32 tensor of unit-norm query embeddings.
    """
    device = device or next(model.parameters()).device
    prompts = [template.format(q) for q in queries for template in templates]
    use_fast = truncate and _truncatable(model)
    chunks = []
    bar = tqdm(
        range(0, len(prompts), batch_size),
        desc=f"text classifier ({len(queries)} queries x {len(templates)} templates)",
        disable=not progress or len(prompts) <= batch_size,
        leave=False,
    )
    for start in bar:
        tokens = tokenizer(prompts[start : start + batch_size]).to(device)
        emb = encode_text_truncated(model, tokens) if use_fast else model.encode_text(tokens)
        chunks.append(F.normalize(emb.float(), dim=-1))
    per_prompt = torch.cat(chunks).reshape(len(queries), len(templates), -1)
    return F.normalize(per_prompt.mean(dim=1), dim=-1)


def class_embeddings(query_emb: Tensor, query_to_class: Tensor, num_classes: int) -> Tensor:
    """One embedding per class: the renormalised mean of its synonyms' embeddings.

    Args:
        query_emb: Q×D unit-norm query embeddings.
        query_to_class: Q long tensor of class indices.

    Returns:
        C×D unit-norm class embeddings (what the MaskCLIP+ student's classifier uses).
    """
    summed = torch.zeros(num_classes, query_emb.shape[1], dtype=query_emb.dtype,
                         device=query_emb.device)
    summed.index_add_(0, query_to_class.to(query_emb.device), query_emb)
    return F.normalize(summed, dim=-1)


def classifier_cache_key(weights_id: str, queries: Sequence[str], templates: Sequence[str]) -> str:
    """A stable hash of everything the classifier depends on."""
    payload = json.dumps(
        {"v": CLASSIFIER_CACHE_VERSION, "weights": weights_id, "queries": list(queries),
         "templates": list(templates)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    root = os.environ.get("MASKCLIP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "maskclip_lightning"
    )
    return Path(root) / "text_classifiers"


def load_or_build_classifier(
    build: Callable[[], Tensor],
    weights_id: str | None,
    queries: Sequence[str],
    templates: Sequence[str],
    cache_dir: str | Path | None,
) -> Tensor:
    """Return a cached Q×D classifier, building and atomically saving it on a miss.

    ``weights_id=None`` (random-init weights) disables the cache: such weights change on
    every construction, so a cached classifier would silently be wrong.
    """
    if weights_id is None or cache_dir is None:
        return build()
    path = Path(cache_dir) / f"{classifier_cache_key(weights_id, queries, templates)}.pt"
    if path.is_file():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached["queries"] == list(queries) and cached["templates"] == list(templates):
                return cached["embeddings"]
        except Exception as err:  # a corrupt cache entry is rebuilt, never fatal
            log.warning("ignoring unreadable classifier cache %s (%s)", path, err)
    emb = build()
    atomic_torch_save({"embeddings": emb.cpu(), "queries": list(queries),
                       "templates": list(templates), "weights": weights_id}, path)
    log.info("cached text classifier at %s", path)
    return emb


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
    """Max over each class's queries (SCLIP's rule for synonyms, its ``postprocess_result``).

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


class TextClassifier(nn.Module):
    """A vocabulary's prompt-ensembled text embeddings and the query → class rule.

    Holds no CLIP: the text tower is passed to :meth:`encode` / :meth:`set_vocabulary`, so the
    teacher's one open_clip model is not registered twice. The buffers are non-persistent: they
    are rebuilt from the vocabulary, never bloat a checkpoint, and move with the module.

    Args:
        tokenizer: the CLIP's tokenizer.
        weights_id: the weights' identity for the disk cache (None: random init, no cache).
        cache_dir: where classifiers are cached; None disables the cache.
    """

    def __init__(self, tokenizer: Callable[[list[str]], Tensor], weights_id: str | None,
                 cache_dir: str | Path | None) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.weights_id = weights_id
        self.cache_dir = cache_dir
        self.vocabulary = None  # a ClassVocabulary once set
        self.register_buffer("query_embeddings", torch.empty(0), persistent=False)
        self.register_buffer("query_to_class", torch.empty(0, dtype=torch.long), persistent=False)

    @torch.no_grad()
    def encode(self, clip: nn.Module, queries: Sequence[str], templates: Sequence[str],
               progress: bool = True) -> Tensor:
        """Q×D unit-norm embeddings of free-text queries, from the disk cache when present."""
        device = clip.logit_scale.device
        return load_or_build_classifier(
            lambda: build_text_classifier(clip, self.tokenizer, list(queries), list(templates),
                                          device=device, progress=progress),
            self.weights_id, list(queries), list(templates), self.cache_dir,
        ).to(device)

    def set_vocabulary(self, clip: nn.Module, vocabulary, templates: Sequence[str]) -> None:
        """Embed a ClassVocabulary's queries (synonyms included) and remember their classes."""
        self.vocabulary = vocabulary
        self.query_embeddings = self.encode(clip, vocabulary.flat_queries, templates)
        self.query_to_class = vocabulary.query_to_class.to(self.query_embeddings.device)

    def require_vocabulary(self) -> None:
        if self.vocabulary is None:
            raise RuntimeError("call teacher.set_vocabulary(...) before asking for logits")

    @property
    def num_classes(self) -> int:
        self.require_vocabulary()
        return self.vocabulary.num_classes

    @property
    def class_embeddings(self) -> Tensor:
        """C×D: per class, the renormalised mean of its synonyms' embeddings."""
        return class_embeddings(self.query_embeddings, self.query_to_class, self.num_classes)

    def query_logits(self, features: Tensor, query_embeddings: Tensor | None = None) -> Tensor:
        """Cosine logits of B×D×h×w unit-norm features against Q queries: B×Q×h×w."""
        if query_embeddings is None:
            self.require_vocabulary()
            query_embeddings = self.query_embeddings
        return torch.einsum("bdhw,qd->bqhw", features, query_embeddings.to(features.dtype))

    def probabilities(self, scores: Tensor, temperature: float, is_probability: bool = False,
                      inplace: bool = False) -> Tensor:
        """B×Q×… query scores → B×C×… class probabilities: softmax(T·s), then synonym max-merge.

        ``is_probability`` scores (key smoothing's output) are only merged. ``inplace`` reuses
        ``scores``' memory (the caller must own it): at input resolution this is evaluation's
        largest tensor, 19 × 2048 × 1024 floats = 159 MB for Cityscapes.
        """
        if is_probability:
            probs = scores
        elif inplace and scores.dim() == 4:
            probs = softmax_channels_(scores.mul_(temperature))
        else:
            probs = torch.softmax(temperature * scores, 1)
        return merge_synonyms(probs, self.query_to_class, self.num_classes)
