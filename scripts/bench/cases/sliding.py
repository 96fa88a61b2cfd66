"""``slide_batched_vs_loop``: sliding-window scores with batched crops vs one crop at a time."""

from __future__ import annotations

from typing import Any

import torch

from scripts.bench.cases.common import VOC20
from scripts.bench.harness import BenchContext, CaseClock, compare, interleave


def case_slide_batched_vs_loop(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """slide_scores with crop_batch_size 8 and 4 vs 1 (the peers' loop); time per image; ratio
    loop/batched. A VOC image (500×375 → short side 336) and a Cityscapes one (2048×1024 →
    short side 560)."""
    from src.models.inference import InferenceConfig, slide_scores, window_starts

    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    s = teacher.output_stride
    if ctx.quick:
        settings = [("VOC", (48, 64), 48, 32, 16, (1, 8, 4))]
    else:  # (name, raw (H, W), short side, crop, stride, crop batch sizes)
        settings = [("VOC", (375, 500), 336, 224, 112, (1, 8, 4)),
                    ("Cityscapes", (1024, 2048), 560, 224, 112, (1, 8))]
    if ctx.gpu and not ctx.quick:  # a GPU wants every crop in one forward
        settings = [("VOC", (375, 500), 336, 224, 112, (1, 8)),
                    ("Cityscapes", (1024, 2048), 560, 224, 112, (1, 8, 36))]
    rounds = {"VOC": ctx, "Cityscapes": ctx if ctx.gpu else ctx.limited(2)}  # CPU: ~25 s a round

    def score_fn(crops):
        return teacher.query_scores(crops)[0]

    rows, max_diff = [], 0.0
    for label, raw_hw, short, crop, stride, batch_sizes in settings:
        scale = short / min(raw_hw)
        hw = (round(raw_hw[0] * scale), round(raw_hw[1] * scale))
        torch.manual_seed(2)
        image = torch.randn(1, 3, *hw, device=ctx.device)
        windows = (len(window_starts(-(-hw[0] // s) * s, crop, stride))
                   * len(window_starts(-(-hw[1] // s) * s, crop, stride)))
        names = {cbs: ("loop (crop_batch_size=1)" if cbs == 1
                       else f"batched (crop_batch_size={cbs})") for cbs in batch_sizes}
        variants = {}
        for cbs, name in names.items():
            cfg = InferenceConfig(mode="slide", crop_size=crop, stride=stride, crop_batch_size=cbs)
            variants[name] = (lambda c, x=image: (lambda: slide_scores(score_fn, x, s, c)))(cfg)
        # Same scores whichever way the crops are batched (checked once, untimed).
        with torch.no_grad():
            outs = [fn() for fn in variants.values()]
        max_diff = max([max_diff] + [float((o - outs[0]).abs().max()) for o in outs[1:]])
        del outs
        session = interleave(variants, rounds.get(label, ctx), clock)
        setting = (f"{label}: {hw[1]}x{hw[0]}, crop {crop}, stride {stride}, {windows} windows, "
                   f"{len(VOC20)} classes")
        rows += [compare(session, names[1], name, setting)
                 for cbs, name in names.items() if cbs != 1]
    return {
        "description": "sliding-window slide_scores, batched crops vs one crop at a time "
                       "(time per image)",
        "ratio_definition": "loop / batched (> 1: batching is faster; CPU target >= 0.95, "
                            "GPU >= 3)",
        "max_abs_diff_batched_vs_loop": max_diff,
        "measurements": rows,
    }
