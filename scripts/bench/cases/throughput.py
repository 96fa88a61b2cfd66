"""``dense_throughput``: teacher images per second by batch size."""

from __future__ import annotations

from typing import Any

import torch

from scripts.bench.cases.common import VOC20, eager_vs_compiled
from scripts.bench.harness import (BenchContext, CaseClock, Session, compare, interleave,
                                   per_image, summarize)


def case_dense_throughput(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """Teacher images per second at 448² by batch size: dense features, and labels (20 classes,
    scores upsampled to the input and argmaxed). CPU: batch 1 and 4; GPU: up to 256."""
    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    size = 64 if ctx.quick else 448
    batches = (1, 64, 256) if ctx.gpu else (1, 4)
    if ctx.quick:
        batches = (1, 4)
    rows, per_second = [], {}
    for what, fn in (("dense_features", teacher.dense_features),
                     ("labels", lambda x: teacher(x).argmax(1))):
        torch.manual_seed(5)
        inputs = {b: torch.randn(b, 3, size, size, device=ctx.device) for b in batches}
        variants = {f"{what}, batch {b}": (lambda x=x: fn(x)) for b, x in inputs.items()}
        batch_of = {f"{what}, batch {b}": b for b in batches}
        session = per_image(interleave(variants, ctx if ctx.gpu else ctx.limited(2), clock),
                            batch_of)
        one = f"{what}, batch 1"
        for name in variants:
            per_second[name] = 1.0 / summarize(session.times[name])["median_s"]
            if name != one:
                rows.append(compare(session, one, name,
                                    f"{size}x{size}, {ctx.model}, {ctx.precision}, per image"))
        del inputs
    if ctx.gpu and not ctx.quick:  # the largest batch again through teacher.compile_dense
        b = batches[-1]
        eager, compiled = f"dense_features, batch {b}", f"dense_features, batch {b}, compiled"
        session, _ = eager_vs_compiled(
            teacher, torch.randn(b, 3, size, size, device=ctx.device), ctx, clock)
        session = per_image(Session({eager: session.times["eager"],
                                     compiled: session.times["torch.compile"]},
                                    session.rounds, session.capped), {eager: b, compiled: b})
        per_second[compiled] = 1.0 / summarize(session.times[compiled])["median_s"]
        rows.append(compare(session, eager, compiled,
                            f"{size}x{size}, {ctx.model}, {ctx.precision}, per image"))
    dense = {n: v for n, v in per_second.items() if n.startswith("dense_features")}
    labels = {n: v for n, v in per_second.items() if n.startswith("labels")}
    return {
        "description": "teacher throughput (images per second; times are per image)",
        "ratio_definition": "per-image time at batch 1 / at batch N (> 1: batching pays)",
        "images_per_second": per_second,
        "best_dense_images_per_second": max(dense.values()),
        "best_labels_images_per_second": max(labels.values()),
        "measurements": rows,
    }
