"""Frontier heads: training-free methods that read more of CLIP than its last block.

SC-CLIP (arXiv 2411.15869) reads intermediate blocks, ResCLIP (arXiv 2411.15851) reads the
attention of blocks 6-9 and needs the text classifier and the image, ProxyCLIP (arXiv 2408.04883)
reads a second vision model. Each is one module here, built by :func:`build_frontier_head` from
``teacher.head`` and ``teacher.head_options`` (and ``teacher.proxy`` for ProxyCLIP), and held by
:class:`src.models.dense_clip.DenseCLIP`. Two kinds:

- a **feature head** (text-independent: ``scclip``, ``proxyclip``) implements
  ``features_and_keys(clip, images, with_keys) -> (B×D×h×w features, B×(h·w)×C keys or None)``;
  the teacher's refinements (key smoothing, prompt denoising) then apply as for MaskCLIP. It may
  set ``output_stride`` (ProxyCLIP: the proxy's patch size);
- a **query head** (``text_dependent = True``: ``resclip``) implements
  ``query_scores(clip, images, query_embeddings, temperature) -> B×Q×h×w`` cosine scores; the
  teacher's refinements are refused for it.

``clip`` is the :class:`DenseCLIP`, which gives the heads what they read: ``embed``,
``tokens_entering`` (any blocks, one pass), ``block_qkv`` and the blocks themselves, never a fork
of open_clip.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

#: head name → "module:class", imported on first use.
FRONTIER_HEADS: dict[str, str] = {
    "scclip": "src.models.frontier.scclip:SCCLIPHead",
    "resclip": "src.models.frontier.resclip:ResCLIPHead",
    "proxyclip": "src.models.frontier.proxyclip:ProxyCLIPHead",
}


def frontier_head_class(name: str) -> type[nn.Module]:
    """The class of a frontier head, imported on first use."""
    module_name, _, class_name = FRONTIER_HEADS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_frontier_head(name: str, options: dict[str, Any] | None = None,
                        proxy: dict[str, Any] | None = None) -> nn.Module:
    """Build ``teacher.head=name`` with its ``head_options`` (and ``proxy`` settings)."""
    options = dict(options or {})
    if proxy is not None:
        options["proxy"] = proxy
    try:
        return frontier_head_class(name)(**options)
    except TypeError as err:
        raise ValueError(f"teacher.head_options for head={name!r}: {err}") from None


def is_text_dependent(head: nn.Module | None) -> bool:
    """A query head (its scores depend on the vocabulary), not a feature head."""
    return bool(getattr(head, "text_dependent", False))


__all__ = ["FRONTIER_HEADS", "build_frontier_head", "frontier_head_class", "is_text_dependent"]
