"""``dense_vs_encode_image``: the teacher's dense pass against CLIP's own image encoder."""

from __future__ import annotations

from typing import Any

import torch

from scripts.bench.harness import BenchContext, CaseClock, compare, encode_twin, interleave


def case_dense_vs_encode_image(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """dense_features(x) vs encode_image(x), batch 1, same input; ratio dense/encode."""
    teacher = ctx.teacher()
    sizes = (128, 64) if ctx.quick else (448, 224)
    # On a GPU batch 1 is bound by kernel launches, not arithmetic; batch 32 shows the work.
    batches = (1, 32) if ctx.gpu else (1,)
    rows = []
    for size in sizes:
        clip = encode_twin(teacher, size, ctx.device)
        for batch in batches:
            torch.manual_seed(1)
            x = torch.randn(batch, 3, size, size, device=ctx.device)
            session = interleave({
                "dense_features": lambda: teacher.dense_features(x),
                "encode_image": lambda: clip.encode_image(x),
            }, ctx, clock)
            rows.append(compare(session, "dense_features", "encode_image",
                                f"{size}x{size}, batch {batch}"))
        del clip
    if not ctx.quick:  # RN50 at 448²: v_proj → c_proj as 1×1 maps vs the attention pool
        from src.models.clip_loading import create_clip

        rn = ctx.teacher("RN50")
        clip, _ = create_clip("RN50", None, force_image_size=448)  # timing only: random weights
        clip = clip.to(ctx.device)
        x = torch.randn(1, 3, 448, 448, device=ctx.device)
        session = interleave({"dense_features": lambda: rn.dense_features(x),
                              "encode_image": lambda: clip.encode_image(x)}, ctx, clock)
        rows.append(compare(session, "dense_features", "encode_image", "RN50 448x448, batch 1"))
        del clip
    return {
        "description": "MaskCLIPTeacher.dense_features vs clip.encode_image on the same input",
        "ratio_definition": "dense_features / encode_image (lower is better; target <= 1.02)",
        "measurements": rows,
    }
