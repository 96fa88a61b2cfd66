"""Colour palettes and image | ground truth | prediction panels, drawn as arrays (pure functions).

The callbacks do the IO: :mod:`src.callbacks.panels` logs panels, :mod:`src.callbacks.writers`
writes label files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

IGNORE_COLOR = (0, 0, 0)


def voc_palette(num_entries: int = 256) -> list[int]:
    """The PASCAL VOC colour map as a flat ``[r0, g0, b0, r1, g1, b1, ...]`` list.

    Entry ``i`` spreads the bits of ``i`` over the three channels, most significant colour bit
    first (bit 0 of ``i`` → bit 7 of red, bit 1 → bit 7 of green, bit 2 → bit 7 of blue, bit 3
    → bit 6 of red, ...), which gives VOC's colours for its 21 classes and (224, 224, 192) for
    255. The flat form is what ``PIL.Image.putpalette`` takes.

    Args:
        num_entries: Number of colours; 256 for a full PNG palette. Larger counts continue the
            same scheme.

    Returns:
        ``3 * num_entries`` ints in 0..255.
    """
    palette: list[int] = []
    for index in range(num_entries):
        label, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((label >> 0) & 1) << (7 - bit)
            g |= ((label >> 1) & 1) << (7 - bit)
            b |= ((label >> 2) & 1) << (7 - bit)
            label >>= 3
        palette += [r, g, b]
    return palette


def make_palette(num_classes: int) -> np.ndarray:
    """A deterministic, well-spread (num_classes+1)×3 uint8 palette; the last row is for 255.

    The class colours are :func:`voc_palette`'s, so the first 21 match PASCAL VOC's.
    """
    palette = np.zeros((num_classes + 1, 3), dtype=np.uint8)
    palette[:num_classes] = np.asarray(voc_palette(num_classes), dtype=np.uint8).reshape(-1, 3)
    palette[num_classes] = IGNORE_COLOR
    return palette


def colorize(labels: np.ndarray | Tensor, palette: np.ndarray, ignore_index: int = 255
             ) -> np.ndarray:
    """H×W class indices (255 = ignore) → H×W×3 uint8 colours."""
    labels = labels.cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    idx = labels.astype(np.int64)
    idx = np.where(idx == ignore_index, len(palette) - 1, idx)
    return palette[np.clip(idx, 0, len(palette) - 1)]


def denormalize(image: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """3×H×W normalised tensor → H×W×3 uint8 RGB."""
    mean_t = torch.tensor(mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=image.dtype, device=image.device).view(3, 1, 1)
    rgb = (image * std_t + mean_t).clamp(0, 1) * 255
    return rgb.round().byte().permute(1, 2, 0).cpu().numpy()


def overlay_panel(image: np.ndarray, target: np.ndarray | None,
                  preds: np.ndarray | Sequence[np.ndarray], palette: np.ndarray,
                  alpha: float = 0.55) -> np.ndarray:
    """Side by side: image, ground-truth overlay (if any) and one overlay per prediction.

    Args:
        image: H×W×3 uint8 at the label resolution.
        target: H×W labels or None; preds: one or several H×W label maps.

    Returns:
        H×(k·W)×3 uint8 panel.
    """
    def blend(labels: np.ndarray) -> np.ndarray:
        colours = colorize(labels, palette).astype(np.float32)
        return (alpha * colours + (1 - alpha) * image.astype(np.float32)).astype(np.uint8)

    preds = [preds] if isinstance(preds, np.ndarray) else list(preds)
    parts = [image] + ([blend(target)] if target is not None else []) + [blend(p) for p in preds]
    return np.concatenate(parts, axis=1)


def image_at(image: Tensor, size: Sequence[int], mean: Sequence[float], std: Sequence[float]
             ) -> np.ndarray:
    """A normalised 3×h×w tensor as an H×W×3 uint8 RGB image at the label size (H, W)."""
    rgb = torch.from_numpy(denormalize(image, mean, std)).permute(2, 0, 1)[None].float()
    rgb = torch.nn.functional.interpolate(rgb, size=tuple(size), mode="bilinear",
                                          align_corners=False)
    return rgb[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def palette_image(labels: np.ndarray | Tensor, palette: np.ndarray):
    """H×W class indices (< 256) → a PIL ``P`` image whose palette colours the classes.

    The pixel values stay the class indices (readable as labels); 255 keeps the ignore colour.
    """
    from PIL import Image

    labels = labels.cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if labels.size and labels.max() > 255:
        raise ValueError("a palette PNG holds at most 256 labels; use fewer classes")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    flat = np.zeros((256, 3), dtype=np.uint8)
    count = min(len(palette) - 1, 255)
    flat[:count] = palette[:count]
    flat[255] = palette[-1]
    image.putpalette(flat.reshape(-1).tolist())
    return image


def legend_overlay(image: np.ndarray, labels: np.ndarray, palette: np.ndarray,
                   names: Sequence[str], alpha: float = 0.5, max_entries: int = 12) -> np.ndarray:
    """Colour overlay of ``labels`` on ``image`` with a legend naming the classes present.

    The legend is drawn inside the image (top-left, largest classes first), so the overlay keeps
    the input's size.

    Args:
        image: H×W×3 uint8 RGB; labels: H×W class indices (255 = ignore).

    Returns:
        H×W×3 uint8.
    """
    from PIL import Image, ImageDraw, ImageFont

    colours = colorize(labels, palette).astype(np.float32)
    blended = (alpha * colours + (1 - alpha) * image.astype(np.float32)).astype(np.uint8)
    canvas = Image.fromarray(blended)
    draw = ImageDraw.Draw(canvas)
    height, width = labels.shape
    values, counts = np.unique(labels[labels != 255], return_counts=True)
    present = [int(v) for v in values[np.argsort(-counts)]][:max_entries]
    size = max(8, min(height, width) // 24)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        font = ImageFont.load_default()
    y = 2
    for index in present:
        if y + size > height:
            break
        text = names[index] if index < len(names) else str(index)
        draw.rectangle([2, y, 2 + size, y + size], fill=tuple(int(c) for c in palette[index]),
                       outline=(255, 255, 255))
        box = draw.textbbox((size + 6, y), text, font=font)
        draw.rectangle([box[0] - 2, box[1] - 1, min(width - 1, box[2] + 2), box[3] + 1],
                       fill=(0, 0, 0))
        draw.text((size + 6, y), text, fill=(255, 255, 255), font=font)
        y += size + 4
    return np.asarray(canvas)
