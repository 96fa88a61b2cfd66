"""``refine_overhead``: what key smoothing + prompt denoising add to the query scores."""

from __future__ import annotations

from typing import Any

import torch

from scripts.bench.cases.common import VOC20
from scripts.bench.harness import BenchContext, CaseClock, compare, interleave


def case_refine_overhead(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """Query scores with key smoothing + prompt denoising vs without, 448², 20 classes."""
    from src.models.refine import RefineConfig

    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    size = 64 if ctx.quick else 448
    x = torch.randn(1, 3, size, size, device=ctx.device)
    plain, kspd = RefineConfig(), RefineConfig(key_smoothing=True, prompt_denoising=True)

    def run(refine):
        teacher.refine = refine
        return teacher.query_scores(x)

    session = interleave({"dense + KS + PD": lambda: run(kspd),
                          "dense": lambda: run(plain)}, ctx, clock)
    teacher.refine = plain
    return {
        "description": "key smoothing + prompt denoising on top of the dense pass",
        "ratio_definition": "with KS+PD / without (target <= 1.15)",
        "measurements": [compare(session, "dense + KS + PD", "dense",
                                 f"{size}x{size}, {len(VOC20)} classes")],
    }
