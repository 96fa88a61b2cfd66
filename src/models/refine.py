"""MaskCLIP's training-free refinements: prompt denoising and key smoothing (MaskCLIP §3.3).

Pure functions on tensors; they know nothing of CLIP or Lightning. The defaults reproduce the
official code (see docs in ``RefineConfig``), which differs from the paper in two places noted
below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

KeyNorm = Literal["spatial", "token"]


@dataclass(frozen=True)
class RefineConfig:
    """Switches for the refinements applied to the teacher's query scores.

    Attributes:
        key_smoothing: turn key smoothing on.
        prompt_denoising: turn prompt denoising on (runs before key smoothing, as in the code).
        ks_thresh: positions whose max class probability is ``>= ks_thresh`` keep their
            prediction; the official configs use 1.0, i.e. (almost) every position is smoothed.
        pd_thresh: a query whose probability stays below this everywhere in the image is removed.
        temperature: softmax temperature; CLIP's 100 by default. ``"model"`` means the CLIP's own
            ``logit_scale.exp()`` and is resolved by the teacher.
        key_norm: ``"spatial"`` normalises keys over the token axis (the official code's
            ``F.normalize(k)`` on an N×HW×C tensor); ``"token"`` is the paper's per-token cosine.
    """

    key_smoothing: bool = False
    prompt_denoising: bool = False
    ks_thresh: float = 1.0
    pd_thresh: float = 0.5
    temperature: float | str = 100.0
    key_norm: KeyNorm = "spatial"

    def __post_init__(self) -> None:
        if self.key_norm not in ("spatial", "token"):
            raise ValueError(f"refine.key_norm must be 'spatial' or 'token', got {self.key_norm!r}")
        if isinstance(self.temperature, str) and self.temperature != "model":
            raise ValueError(
                f"refine.temperature must be a number or 'model', got {self.temperature!r}"
            )


def prompt_denoising(logits: Tensor, thresh: float, temperature: float) -> Tensor:
    """Remove queries that are not confidently present anywhere in the image (MaskCLIP §3.3).

    A query c is kept when ``max_i softmax(T·logits)[c, i] >= thresh``; the logits of removed
    queries are set to -100 (the official value, below any cosine).

    Args:
        logits: B×Q×h×w cosine logits.
        thresh: confidence threshold (paper: 0.5).
        temperature: softmax temperature T.

    Returns:
        B×Q×h×w logits with removed queries set to -100.
    """
    probs = torch.softmax(temperature * logits, dim=1)
    image_conf = probs.flatten(2).amax(dim=2)  # B×Q
    removed = (image_conf < thresh)[:, :, None, None]
    return logits.masked_fill(removed, -100.0)


def key_smoothing(
    logits: Tensor, keys: Tensor, thresh: float, temperature: float, key_norm: KeyNorm = "spatial"
) -> Tensor:
    """Smooth predictions with key affinities (MaskCLIP §3.3), one iteration.

    ``P = softmax(T·logits)``; ``P' = (k̂ k̂ᵀ) P`` with raw dot products (no softmax, no
    row-normalisation, negatives kept, as in the official code); positions whose
    ``max_c P < thresh`` take ``P'``, the others keep ``P``.

    Args:
        logits: B×Q×h×w cosine logits.
        keys: B×(h·w)×C key descriptors, row-major over (h, w).
        thresh: positions with max probability below it are smoothed (official: 1.0).
        temperature: softmax temperature T.
        key_norm: ``"spatial"`` (official code: normalise each channel over the h·w tokens) or
            ``"token"`` (paper: unit-norm per token, i.e. cosine affinities).

    Returns:
        B×Q×h×w class probabilities (smoothed where selected).
    """
    b, q, h, w = logits.shape
    if keys.shape[:2] != (b, h * w):
        raise ValueError(f"keys must be B×(h·w)×C = {b}×{h * w}×C, got {tuple(keys.shape)}")
    probs = torch.softmax(temperature * logits, dim=1).flatten(2).transpose(1, 2)  # B×hw×Q
    keys = F.normalize(keys.float(), dim=1 if key_norm == "spatial" else 2)
    affinity = keys @ keys.transpose(1, 2)  # B×hw×hw
    smoothed = affinity @ probs
    select = probs.amax(dim=2, keepdim=True) < thresh
    out = torch.where(select, smoothed, probs)
    return out.transpose(1, 2).reshape(b, q, h, w)


def refine_scores(
    logits: Tensor, keys: Tensor | None, config: RefineConfig, temperature: float
) -> tuple[Tensor, bool]:
    """Apply the configured refinements in the official order (PD, then KS).

    Args:
        logits: B×Q×h×w cosine logits.
        keys: B×(h·w)×C keys, needed only for key smoothing.
        temperature: the resolved numeric temperature.

    Returns:
        (scores B×Q×h×w, is_probability). Without key smoothing the scores stay logits, as in
        the official code, so that bilinear upsampling acts on the same quantity.
    """
    if config.prompt_denoising:
        logits = prompt_denoising(logits, config.pd_thresh, temperature)
    if config.key_smoothing:
        if keys is None:
            raise ValueError("key smoothing needs the last attention layer's keys")
        return key_smoothing(logits, keys, config.ks_thresh, temperature, config.key_norm), True
    return logits, False
