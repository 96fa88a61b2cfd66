"""Post-processing of dense scores: PAMR (pixel-adaptive mask refinement), area threshold.

PAMR (Araslanov & Roth, CVPR 2020; NACLIP arXiv 2404.09826 §4 uses it) repeatedly
replaces every pixel's class scores by an affinity-weighted average of its neighbours at a few
dilations, where the affinity comes from local colour differences of the image. It sharpens the
coarse patch-level scores along image edges.

Memory: the neighbour stack is C × K × H × W floats (K = 8 neighbours × dilations), 2.9 GB for
171 classes at 512² with two dilations. On CPU the kernel kills a process that runs out of memory
and there is nothing to catch, so :func:`pamr` estimates its need first and, above the budget,
works tile by tile. Tiles overlap by the receptive field (iterations × largest dilation), which
makes the tiled result identical to the whole-image one. If even one minimal tile does not fit,
it warns and returns the scores unchanged.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# The eight neighbours of a 3×3 window, (dy, dx) in units of the dilation.
NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


@dataclass(frozen=True)
class PostprocConfig:
    """``postproc=none|pamr``.

    Attributes:
        kind: ``"none"`` or ``"pamr"``.
        iterations: PAMR steps (NACLIP: 10).
        dilations: neighbourhood dilations in pixels (NACLIP: 8, 16).
        max_memory_mb: working-memory budget; None = a quarter of the free memory.
        area_threshold: None, or the fraction of the image's foreground-predicted pixels a
            foreground class (index ≥ 1) must exceed to keep its probabilities (SC-CLIP's
            ``area_thd`` on VOC-21, 0.1); see :func:`small_classes`.
    """

    kind: str = "none"
    iterations: int = 10
    dilations: tuple[int, ...] = (8, 16)
    max_memory_mb: float | None = None
    area_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.area_threshold is not None and not 0.0 <= float(self.area_threshold) < 1.0:
            raise ValueError(f"postproc.area_threshold must be in [0, 1) (a fraction of the "
                             f"foreground pixels), got {self.area_threshold}")
        if self.kind not in ("none", "pamr"):
            raise ValueError(f"postproc.kind must be none or pamr, got {self.kind!r}")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        if self.iterations < 1 or not self.dilations or min(self.dilations) < 1:
            raise ValueError("postproc: iterations >= 1 and positive dilations are required")


def pamr_affinity(image: Tensor, dilations: Sequence[int]) -> Tensor:
    """Neighbour weights from the image: B×1×K×H×W, softmax over the K neighbours.

    Per channel, −|x_p − x_q| is divided by 0.1 × the local standard deviation (over the
    neighbourhood and its centre, at all dilations), averaged over channels, and soft-maxed.
    """
    views = neighbour_views(image, dilations)  # K views B×3×H×W, no copies
    # The window: the K neighbours and the centre once per dilation; its (unbiased) std per
    # pixel and channel, in two passes over the views instead of a K-fold stacked tensor.
    count = len(views) + len(dilations)
    mean = (image * len(dilations) + sum(views)) / count
    squares = (image - mean).square() * len(dilations) + sum((v - mean).square() for v in views)
    scale = 1e-8 + 0.1 * (squares / (count - 1)).sqrt()
    affinity = torch.stack([-(v - image).abs().div(scale).mean(dim=1) for v in views], dim=1)
    return affinity.softmax(dim=1).unsqueeze(1)  # B×1×K×H×W


def neighbour_views(x: Tensor, dilations: Sequence[int]) -> list[Tensor]:
    """The 8 neighbours at each dilation (replicate padding), dilation-major, each dilation's in
    :data:`NEIGHBOURS` order: K = 8·len(dilations) views B×C×H×W into one padded copy per
    dilation."""
    height, width = x.shape[-2:]
    views = []
    for dilation in dilations:
        padded = F.pad(x, [dilation] * 4, mode="replicate")
        views += [padded[..., dilation + dy * dilation: dilation + dy * dilation + height,
                         dilation + dx * dilation: dilation + dx * dilation + width]
                  for dy, dx in NEIGHBOURS]
    return views


def pamr_whole(image: Tensor, scores: Tensor, iterations: int = 10,
               dilations: Sequence[int] = (8, 16)) -> Tensor:
    """PAMR on whole tensors.

    Args:
        image: B×3×H×W (the network input; normalisation does not matter, it is per channel).
        scores: B×C×H×W class scores at the image's resolution.

    Returns:
        B×C×H×W refined scores.
    """
    affinity = pamr_affinity(image.float(), dilations)
    scores = scores.float()
    for _ in range(iterations):
        scores = pamr_step(scores, affinity, dilations)
    return scores


def pamr_step(scores: Tensor, affinity: Tensor, dilations: Sequence[int]) -> Tensor:
    """One PAMR step: each pixel's scores become the affinity-weighted sum of its neighbours'.

    Args:
        scores: B×C×H×W; affinity: B×1×K×H×W from :func:`pamr_affinity` (K = 8 per dilation,
            in :func:`neighbour_views`' order).

    Returns:
        B×C×H×W. The neighbours are accumulated one at a time rather than stacked (the stack
        of K shifted copies made PAMR 4× slower on a CPU and K times larger in memory).
    """
    out = torch.zeros_like(scores)
    for k, view in enumerate(neighbour_views(scores, dilations)):
        out.addcmul_(view, affinity[:, :, k])
    return out


def pamr_bytes(height: int, width: int, classes: int, dilations: Sequence[int]) -> int:
    """Working memory of :func:`pamr_whole` for one image (float32), an upper bound: the
    affinity's K neighbour images dominate; the scores' term still counts a K-fold stack that
    :func:`pamr_step` no longer builds, which keeps the tiling decisions conservative."""
    k = 8 * len(dilations)
    per_pixel = (2 * classes * k          # the neighbour stack and its product with the weights
                 + 3 * classes             # scores in and out
                 + 3 * (2 * k + 8) + 2 * k)  # image neighbours, window, affinity
    return int(4 * height * width * per_pixel * 1.25)


def memory_budget(device: torch.device, max_memory_mb: float | None) -> int:
    """Bytes PAMR may use: the configured cap, else a quarter of what is free."""
    if max_memory_mb is not None:
        return int(max_memory_mb * 2**20)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f}
        return info["MemAvailable"] * 1024 // 4
    except (OSError, KeyError, ValueError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 8


def pamr(image: Tensor, scores: Tensor, config: PostprocConfig) -> Tensor:
    """PAMR with a memory estimate: whole image, row/column tiles with a halo, or a skip.

    Args:
        image: B×3×H×W; scores: B×C×H×W at the same resolution.

    Returns:
        B×C×H×W refined scores (the input scores if even one minimal tile would not fit).
    """
    b, c, height, width = scores.shape
    budget = memory_budget(scores.device, config.max_memory_mb)
    if b * pamr_bytes(height, width, c, config.dilations) <= budget:
        return pamr_whole(image, scores, config.iterations, config.dilations)
    halo = config.iterations * max(config.dilations)
    # The largest square core whose haloed tile fits, at least 32 px.
    core = 32
    while (core * 2 <= max(height, width)
           and b * pamr_bytes(core * 2 + 2 * halo, core * 2 + 2 * halo, c,
                              config.dilations) <= budget):
        core *= 2
    if b * pamr_bytes(core + 2 * halo, core + 2 * halo, c, config.dilations) > budget:
        warnings.warn(f"PAMR skipped: a {core}px tile with its {halo}px halo for {c} classes "
                      f"needs more than the {budget / 2**20:.0f} MB budget "
                      "(postproc.max_memory_mb)", stacklevel=2)
        return scores
    out = torch.empty_like(scores, dtype=torch.float32)
    for top in range(0, height, core):
        for left in range(0, width, core):
            y0, x0 = max(0, top - halo), max(0, left - halo)
            y1, x1 = min(height, top + core + halo), min(width, left + core + halo)
            # Cut edges get replicate padding, whose error moves at most one dilation per
            # iteration: it stays inside the halo, so the core equals the whole-image result.
            refined = pamr_whole(image[..., y0:y1, x0:x1], scores[..., y0:y1, x0:x1],
                                 config.iterations, config.dilations)
            bottom, right = min(height, top + core), min(width, left + core)
            out[..., top:bottom, left:right] = refined[..., top - y0:bottom - y0,
                                                       left - x0:right - x0]
    return out


def kept_classes(labels: Tensor, threshold: float) -> Tensor:
    """The classes whose probabilities survive SC-CLIP's area threshold: a long index tensor.

    SC-CLIP (arXiv 2411.15869, its ``predict_labels``): count each foreground class's pixels
    (index ≥ 1) in the argmax map; a class whose count is not greater than ``threshold`` × all
    foreground-predicted pixels has its probabilities zeroed, and the argmax is taken again.
    Background (class 0) is always kept; classes predicted nowhere are dropped too.

    Args:
        labels: H×W argmax labels of one image.
    """
    counts = torch.bincount(labels.flatten().long())
    keep = counts > threshold * counts[1:].sum()
    keep[0] = True
    return keep.nonzero().flatten()


def zero_except(probs: Tensor, keep: Tensor) -> Tensor:
    """Set, in place, every class of B×C×… ``probs`` but the ``keep`` indices to 0."""
    drop = torch.ones(probs.shape[1], dtype=torch.bool, device=probs.device)
    drop[keep.to(probs.device)] = False
    probs[:, drop] = 0
    return probs


def drop_small_classes(probs: Tensor, threshold: float | None) -> Tensor:
    """Zero, per image and in place, the classes below the area threshold: B×C×H×W."""
    if threshold is None:
        return probs
    for item in probs:  # per image, as the statistic is
        zero_except(item[None], kept_classes(item.argmax(0), threshold))
    return probs
