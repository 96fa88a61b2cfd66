"""``label_throughput``: the labeller behind ``src.predict`` / ``src.label``, batched vs not."""

from __future__ import annotations

from typing import Any

import torch

from scripts.bench.cases.common import VOC20
from scripts.bench.harness import BenchContext, CaseClock, compare, interleave, summarize


def case_label_throughput(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """DenseLabeller (src.predict / src.label) on 448² images, 20 classes: a batch of 4 in one
    forward vs the same 4 one at a time; labels at full resolution; images per second."""
    from src.models.labeller import DenseLabeller

    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    labeller = DenseLabeller(teacher, teacher.vocabulary, teacher.output_stride).to(ctx.device)
    size, batch = (64, 4) if ctx.quick else (448, 4)
    torch.manual_seed(3)
    images = torch.randn(batch, 3, size, size, device=ctx.device)
    sizes = [(size, size)] * batch
    variants = {
        "one at a time": lambda: [labeller.label_batch(images[i:i + 1], sizes[:1])
                                  for i in range(batch)],
        f"batch of {batch}": lambda: labeller.label_batch(images, sizes),
    }
    session = interleave(variants, ctx if ctx.gpu else ctx.limited(3), clock)
    row = compare(session, "one at a time", f"batch of {batch}",
                  f"{batch} images {size}x{size}, {len(VOC20)} classes, whole image")
    per_second = {name: batch / summarize(times)["median_s"]
                  for name, times in session.times.items()}
    return {
        "description": "labels (argmax + confidence at full resolution) per second",
        "ratio_definition": "one at a time / batched (> 1: batching is faster)",
        "images_per_second": per_second,
        "measurements": [row],
    }
