"""``text_classifier_speedup``: our text classifier against open_clip's builder."""

from __future__ import annotations

from typing import Any

import torch

from scripts.bench.harness import BenchContext, CaseClock, compare, interleave


def case_text_classifier(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """Our text classifier (causal prefix) vs open_clip's build_zero_shot_classifier,
    171 COCO-Stuff classes × 5 templates."""
    from open_clip import build_zero_shot_classifier

    from src.prompts.templates import get_templates
    from src.prompts.text_classifier import build_text_classifier
    from src.prompts.vocabulary import load_vocabulary

    teacher = ctx.teacher()
    names = [q[0] for q in load_vocabulary("cocostuff").queries]
    templates = get_templates("imagenet80")[:5]
    if ctx.quick:
        names = names[:10]

    def ours():
        return build_text_classifier(teacher.clip, teacher.tokenizer, names, templates,
                                     device=ctx.device, progress=False)

    def theirs():
        with torch.no_grad():
            return build_zero_shot_classifier(teacher.clip, teacher.tokenizer, names,
                                              [lambda c, t=t: t.format(c) for t in templates],
                                              num_classes_per_batch=10, device=ctx.device,
                                              use_tqdm=False)

    a, b = ours(), theirs()
    max_diff = float((a.float() - b.float().T.reshape(a.shape)).abs().max()
                     if a.shape != b.shape else (a.float() - b.float()).abs().max())
    # The correctness check above was the warm-up; open_clip's builder takes ~50 s on the CPU.
    session = interleave({"open_clip build_zero_shot_classifier": theirs,
                          "ours (causal prefix)": ours},
                         ctx.limited(2 if ctx.gpu else 1, warmup=0), clock)
    row = compare(session, "open_clip build_zero_shot_classifier", "ours (causal prefix)",
                  f"{len(names)} classes x {len(templates)} templates, {ctx.model}")
    return {
        "description": "prompt-ensembled text classifier construction",
        "ratio_definition": "open_clip / ours (> 1: ours is faster; target >= 5, max diff "
                            "<= 1e-5)",
        "max_abs_diff": max_diff,
        "measurements": [row],
    }
