"""Whole-image and sliding-window inference over a dense scoring function.

Two ways to align the feature map with the image (``InferenceConfig.align``):

* ``crop`` (default): the input is padded bottom/right to a multiple of the output stride, so
  every feature cell covers a fixed block of pixels; the scores are upsampled to the padded size
  and cropped back, which keeps them pixel-aligned.
* ``stretch`` (the official MaskCLIP code): the feature map is bilinearly resized onto the
  unpadded input. In whole-image mode the input is not padded here: a ViT pads bottom/right to a
  multiple of its patch itself (mmseg's ``PatchEmbed(padding='corner')``), so its ⌈H/s⌉ map is
  stretched over H; a ResNet is not padded at all and its pooling floors the size (520 px → 16
  cells), so its ⌊H/32⌋ map is stretched over H. Sliding windows still pad (windows are
  multiples of the stride), and the padded canvas is stretched over the unpadded input.

Where overlapping windows are averaged (``InferenceConfig.average``):

* ``feature`` (default): at *feature* resolution, so memory stays bounded by the feature map, not
  by B×Q×H×W per window. Windows are batched through the model (``crop_batch_size`` per forward).
* ``pixel`` (the peers' ``slide_inference``): each crop's scores are upsampled to the crop, added
  into a B×Q×H×W canvas over the unpadded image and divided by the per-pixel window count. Each
  crop may be padded ``corner`` (bottom/right, as above) or ``symmetric`` to a multiple of
  ``pad_multiple`` (ProxyCLIP pads every crop to a multiple of 56, half on each side, and crops
  the upsampled scores back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

ScoreFn = Callable[[Tensor], Tensor]  # N×3×h×w -> N×Q×(h/s)×(w/s)
ALIGNMENTS = ("crop", "stretch")
AVERAGES = ("feature", "pixel")
PADDINGS = ("corner", "symmetric")


@dataclass(frozen=True)
class InferenceConfig:
    """How a dense labeller covers an image.

    Attributes:
        mode: ``"whole"`` (the official MaskCLIP protocol) or ``"slide"``.
        crop_size: sliding-window (height, width) in pixels; multiples of the output stride.
        stride: sliding-window step (height, width); multiples of the output stride.
        crop_batch_size: crops per forward pass; bounds memory on large images.
        align: ``crop`` (pixel-aligned, padded and cropped back) or ``stretch`` (the official
            code: the feature map resized onto the unpadded input); see the module docstring.
        average: where overlapping windows are averaged: ``feature`` (at feature stride) or
            ``pixel`` (each crop upsampled first, as the peers do).
        pad: how each crop is padded before the model with ``average=pixel``: ``corner``
            (bottom/right to the output stride) or ``symmetric`` (half on each side).
        pad_multiple: with ``pad=symmetric``, the multiple to pad to (ProxyCLIP: 56); None
            means the model's output stride.
    """

    mode: Literal["whole", "slide"] = "whole"
    crop_size: tuple[int, int] = (448, 448)
    stride: tuple[int, int] = (224, 224)
    crop_batch_size: int = 8
    align: Literal["crop", "stretch"] = "crop"
    average: Literal["feature", "pixel"] = "feature"
    pad: Literal["corner", "symmetric"] = "corner"
    pad_multiple: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"inference.mode must be 'whole' or 'slide', got {self.mode!r}")
        if self.align not in ALIGNMENTS:
            raise ValueError(f"inference.align must be one of {list(ALIGNMENTS)} (crop: "
                             f"pixel-aligned; stretch: the official code), got {self.align!r}")
        object.__setattr__(self, "crop_size", _pair(self.crop_size, "crop_size"))
        object.__setattr__(self, "stride", _pair(self.stride, "stride"))
        if self.crop_batch_size < 1:
            raise ValueError("inference.crop_batch_size must be >= 1")
        if self.average not in AVERAGES:
            raise ValueError(f"inference.average must be one of {list(AVERAGES)} (feature: at "
                             f"feature stride; pixel: the peers' per-pixel canvas), got "
                             f"{self.average!r}")
        if self.pad not in PADDINGS:
            raise ValueError(f"inference.pad must be one of {list(PADDINGS)}, got {self.pad!r}")
        if self.pad == "symmetric" and self.average != "pixel":
            raise ValueError("inference.pad=symmetric pads each crop around its centre, so its "
                             "scores no longer sit on the image's feature grid: set "
                             "inference.average=pixel too")
        if self.pad_multiple is not None and int(self.pad_multiple) < 1:
            raise ValueError(f"inference.pad_multiple must be >= 1, got {self.pad_multiple}")


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"inference.{name} must be an int or (height, width), got {value!r}")
    return pair


def pad_to_multiple(images: Tensor, multiple: int) -> Tensor:
    """Zero-pad B×3×H×W bottom/right so that H and W are multiples of ``multiple``."""
    pad_h, pad_w = (-images.shape[-2]) % multiple, (-images.shape[-1]) % multiple
    if pad_h or pad_w:
        images = F.pad(images, (0, pad_w, 0, pad_h))
    return images


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Window offsets along one axis, as mmseg's ``slide_inference`` places them.

    The last window is shifted back so that it ends at the border.
    """
    crop = min(crop, size)
    num = max(size - crop + stride - 1, 0) // stride + 1
    return sorted({min(i * stride, size - crop) for i in range(num)})


def whole_scores(score_fn: ScoreFn, images: Tensor, output_stride: int,
                 align: str = "crop") -> Tensor:
    """Feature-resolution scores of the whole image: B×Q×(Hp/s)×(Wp/s).

    ``crop`` pads the input to a multiple of ``output_stride`` first; ``stretch`` hands the
    unpadded input to the model, which pads (ViT) or floors (ResNet) as the official code did.
    """
    if align == "stretch":
        return score_fn(images)
    return score_fn(pad_to_multiple(images, output_stride))


def slide_scores(score_fn: ScoreFn, images: Tensor, output_stride: int,
                 config: InferenceConfig) -> Tensor:
    """Sliding-window scores averaged at feature resolution: B×Q×(Hp/s)×(Wp/s).

    Crops of all images in the batch are run ``crop_batch_size`` at a time.
    """
    s = output_stride
    for name, pair in (("crop_size", config.crop_size), ("stride", config.stride)):
        if pair[0] % s or pair[1] % s:
            raise ValueError(
                f"inference.{name}={pair} must be a multiple of the teacher's output stride {s}"
            )
    images = pad_to_multiple(images, s)
    b, _, height, width = images.shape
    crop_h, crop_w = min(config.crop_size[0], height), min(config.crop_size[1], width)
    windows = [(y, x) for y in window_starts(height, crop_h, config.stride[0])
               for x in window_starts(width, crop_w, config.stride[1])]
    canvas: Tensor | None = None
    count = images.new_zeros(1, 1, height // s, width // s)
    for y, x in windows:
        count[..., y // s:(y + crop_h) // s, x // s:(x + crop_w) // s] += 1
    # All crops of all images, image-major, in chunks that bound peak memory.
    jobs = [(i, y, x) for i in range(b) for (y, x) in windows]
    for start in range(0, len(jobs), config.crop_batch_size):
        chunk = jobs[start:start + config.crop_batch_size]
        crops = torch.stack([images[i, :, y:y + crop_h, x:x + crop_w] for i, y, x in chunk])
        scores = score_fn(crops)
        if canvas is None:
            canvas = scores.new_zeros(b, scores.shape[1], height // s, width // s)
        for (i, y, x), crop_scores in zip(chunk, scores):
            canvas[i, :, y // s:(y + crop_h) // s, x // s:(x + crop_w) // s] += crop_scores
    return canvas / count.to(canvas.dtype)


def upsample_scores(scores: Tensor, size: tuple[int, int], output_stride: int,
                    align: str = "crop") -> Tensor:
    """Bilinearly upsample feature-resolution scores to the input size.

    ``crop``: to the padded size h·s × w·s, then cropped to H×W (pixel-aligned). ``stretch``:
    straight to H×W, as mmseg's ``EncoderDecoder.encode_decode`` resizes the head output to the
    input image (official MaskCLIP).

    Args:
        scores: B×Q×h×w at stride ``output_stride``.
        size: (H, W) of the unpadded input.

    Returns:
        B×Q×H×W.
    """
    if align == "stretch":
        return F.interpolate(scores, size=tuple(size), mode="bilinear", align_corners=False)
    padded = (scores.shape[-2] * output_stride, scores.shape[-1] * output_stride)
    up = F.interpolate(scores, size=padded, mode="bilinear", align_corners=False)
    return up[..., : size[0], : size[1]]


def pad_symmetric(images: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Zero-pad B×3×H×W to multiples of ``multiple``, half on each side (the rest right/bottom).

    Returns:
        (padded images, (top, left) offset of the original inside them).
    """
    pad_h, pad_w = (-images.shape[-2]) % multiple, (-images.shape[-1]) % multiple
    top, left = pad_h // 2, pad_w // 2
    if pad_h or pad_w:
        images = F.pad(images, (left, pad_w - left, top, pad_h - top))
    return images, (top, left)


def crop_pixel_scores(score_fn: ScoreFn, crops: Tensor, output_stride: int,
                      config: InferenceConfig) -> Tensor:
    """Scores of each crop upsampled onto the crop's own pixels: N×Q×h×w.

    ``symmetric``: pad around the centre to ``pad_multiple``, score, upsample to the padded size
    and cut the crop back out. ``corner``: as whole-image inference with ``config.align``.
    """
    size = tuple(crops.shape[-2:])
    if config.pad == "symmetric":
        padded, (top, left) = pad_symmetric(crops, int(config.pad_multiple or output_stride))
        scores = F.interpolate(score_fn(padded), size=tuple(padded.shape[-2:]),
                               mode="bilinear", align_corners=False)
        return scores[..., top:top + size[0], left:left + size[1]]
    return upsample_scores(whole_scores(score_fn, crops, output_stride, config.align), size,
                           output_stride, config.align)


def pixel_scores(score_fn: ScoreFn, images: Tensor, output_stride: int,
                 config: InferenceConfig) -> Tensor:
    """Window scores averaged per pixel over the unpadded image: B×Q×H×W (stride 1).

    Whole-image mode is one window. Windows follow mmseg's ``slide_inference`` placement over
    the unpadded image (a window never exceeds it), as the peers' code does.
    """
    b, _, height, width = images.shape
    if config.mode == "slide":
        crop_h, crop_w = min(config.crop_size[0], height), min(config.crop_size[1], width)
        windows = [(y, x) for y in window_starts(height, crop_h, config.stride[0])
                   for x in window_starts(width, crop_w, config.stride[1])]
    else:
        crop_h, crop_w, windows = height, width, [(0, 0)]
    count = images.new_zeros(1, 1, height, width)
    for y, x in windows:
        count[..., y:y + crop_h, x:x + crop_w] += 1
    canvas: Tensor | None = None
    jobs = [(i, y, x) for i in range(b) for (y, x) in windows]
    for start in range(0, len(jobs), config.crop_batch_size):
        chunk = jobs[start:start + config.crop_batch_size]
        crops = torch.stack([images[i, :, y:y + crop_h, x:x + crop_w] for i, y, x in chunk])
        scores = crop_pixel_scores(score_fn, crops, output_stride, config)
        if canvas is None:
            canvas = scores.new_zeros(b, scores.shape[1], height, width)
        for (i, y, x), crop_scores in zip(chunk, scores):
            canvas[i, :, y:y + crop_h, x:x + crop_w] += crop_scores
    return canvas / count.to(canvas.dtype)


ProbFn = Callable[[Tensor], Tensor]  # B×Q×h×w scores -> B×C×h×w class probabilities


def resample_grid(rows: tuple[int, int], out_width: int, feature_size: tuple[int, int],
                  input_size: tuple[int, int], output_size: tuple[int, int],
                  output_stride: int, device: torch.device | None = None,
                  align: str = "crop") -> Tensor:
    """``grid_sample`` grid for output rows ``rows[0]:rows[1]``: 1×R×W0×2.

    Output pixel y of the (H0, W0) output sits at input coordinate (y + ½)·H/H0 − ½, and input
    pixel u at feature coordinate (u + ½)/s − ½ (``crop``) or (u + ½)·h/H − ½ (``stretch``),
    align_corners=False at both steps. Composed, one bilinear lookup on the feature map places
    every output pixel, for any tile.
    """
    (h_feat, w_feat), (height, width), (out_h, out_w) = feature_size, input_size, output_size
    ys = torch.arange(rows[0], rows[1], device=device, dtype=torch.float64)
    xs = torch.arange(out_w, device=device, dtype=torch.float64)
    if align == "stretch":
        fy = (ys + 0.5) * h_feat / out_h - 0.5
        fx = (xs + 0.5) * w_feat / out_w - 0.5
    else:
        fy = (ys + 0.5) * height / (out_h * output_stride) - 0.5
        fx = (xs + 0.5) * width / (out_w * output_stride) - 0.5
    # grid_sample's align_corners=False normalisation: pixel i ↦ (2i + 1)/size − 1.
    gy = (2 * fy + 1) / h_feat - 1
    gx = (2 * fx + 1) / w_feat - 1
    grid_y, grid_x = torch.meshgrid(gy, gx, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)[None].float()  # grid_sample wants (x, y)


def label_tiles(scores: Tensor, input_size: tuple[int, int], output_size: tuple[int, int],
                output_stride: int, to_probs: ProbFn, max_elements: int = 1 << 25,
                keep_probs: bool = False, align: str = "crop"
                ) -> tuple[Tensor, Tensor, Tensor | None]:
    """Labels and confidence at output resolution, computed in row tiles of bounded size.

    Full-resolution scores would need Q×H0×W0 floats (46 GB for 171 classes on an 8k×8k image);
    here the feature-stride scores are resampled, turned into probabilities and arg-maxed one
    tile at a time, so memory is bounded by ``max_elements`` (Q × tile pixels) whatever the size.
    The result does not depend on the tile size.

    Args:
        scores: Q×h×w scores at stride ``output_stride`` over the bottom/right-padded input.
        input_size: (H, W) of the unpadded network input.
        output_size: (H0, W0) of the labels (the original image).
        to_probs: B×Q×… scores → B×C×… probabilities.
        keep_probs: also return the C×H0×W0 probabilities (only for images that fit).
        align: how the feature map covers the input (``crop`` or ``stretch``, see above).

    Returns:
        (labels H0×W0 long, confidence H0×W0 float32 = top class probability, probs or None).
    """
    out_h, out_w = output_size
    rows_per_tile = max(1, max_elements // max(1, scores.shape[0] * out_w))
    labels = torch.empty(out_h, out_w, dtype=torch.long)
    confidence = torch.empty(out_h, out_w, dtype=torch.float32)
    probs_out: Tensor | None = None
    source = scores[None].float()
    for top in range(0, out_h, rows_per_tile):
        bottom = min(out_h, top + rows_per_tile)
        grid = resample_grid((top, bottom), out_w, tuple(scores.shape[-2:]), input_size,
                             output_size, output_stride, scores.device, align)
        tile = F.grid_sample(source, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)
        probs = to_probs(tile)[0]
        conf, idx = probs.max(0)
        labels[top:bottom] = idx.cpu()
        confidence[top:bottom] = conf.float().cpu()
        if keep_probs:
            if probs_out is None:
                probs_out = torch.empty(probs.shape[0], out_h, out_w, dtype=torch.float32)
            probs_out[:, top:bottom] = probs.float().cpu()
    return labels, confidence, probs_out
