"""``frontier_heads``: the dense cost of SC-CLIP, ResCLIP and ProxyCLIP against MaskCLIP's, and
each head's share of a MaskCLIP+ train step."""

from __future__ import annotations

import statistics
from typing import Any

import torch
import torch.nn.functional as F

from scripts.bench.cases.common import VOC20
from scripts.bench.harness import BenchContext, CaseClock, compare, interleave

# ProxyCLIP's proxy in the paper's default: DINO ViT-B/8 (random init here: cost, not quality).
PROXY = {"model": "vit_base_patch8_224.dino", "pretrained": None, "allow_random_init": True}


def frontier_teacher(ctx: BenchContext, head: str):
    """A ``head`` teacher holding the base teacher's CLIP weights (random init, built once)."""
    from src.models.teacher import MaskCLIPTeacher

    key = f"{ctx.model}:{head}"
    if key not in ctx._teachers:
        base = ctx.teacher()
        torch.manual_seed(0)
        teacher = MaskCLIPTeacher(ctx.model, None, cache_dir=None, head=head,
                                  proxy=PROXY if head == "proxyclip" else None)
        teacher.clip.load_state_dict(base.clip.state_dict())
        ctx._teachers[key] = teacher.to(ctx.device)
    return ctx._teachers[key]


def case_frontier_heads(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """Query scores of each frontier head vs MaskCLIP's (ProxyCLIP: vs MaskCLIP plus the
    proxy's own forward) at 224², and each head's share of a MaskCLIP+ step (R50 student)."""
    from src.models.student import SegStudent

    size, batch = (64, 1) if ctx.quick else (224, 1)
    base = ctx.teacher()
    base.set_vocabulary(VOC20, "single")
    heads = {name: frontier_teacher(ctx, name) for name in ("scclip", "resclip", "proxyclip")}
    for teacher in heads.values():
        teacher.set_vocabulary(VOC20, "single")
    proxy_head, clip = heads["proxyclip"].features.frontier, heads["proxyclip"].features
    x = torch.randn(batch, 3, size, size, device=ctx.device)

    def proxy_and_maskclip():
        base.query_scores(x)
        proxy_head.proxy_features(clip, x)  # the proxy's own forward on the same pixels

    variants = {"MaskCLIP": lambda: base.query_scores(x),
                "MaskCLIP + proxy forward": proxy_and_maskclip}
    variants.update({name: (lambda t=teacher: t.query_scores(x)) for name, teacher in heads.items()})

    # The student's train step alone (labels given), to turn each teacher time into a share.
    step_size, step_batch, backbone = (64, 2, "resnet18d") if ctx.quick else (224, 2, "resnet50c")
    torch.manual_seed(4)
    student = SegStudent(base.class_embeddings.detach().cpu(), backbone=backbone,
                         pretrained=None, allow_random_init=True).to(ctx.device).train()
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    crops = torch.randn(step_batch, 3, step_size, step_size, device=ctx.device)
    target = torch.randint(0, len(VOC20), (step_batch, step_size, step_size), device=ctx.device)

    def student_step():
        with torch.enable_grad():
            logits = F.interpolate(student(crops), size=(step_size, step_size), mode="bilinear",
                                   align_corners=False)
            loss = F.cross_entropy(logits, target, ignore_index=255)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def labels(teacher):
        with torch.no_grad():
            return teacher(crops).argmax(1)

    variants["student step"] = student_step
    for name, teacher in {"MaskCLIP": base, **heads}.items():
        variants[f"{name} labels for a step"] = lambda t=teacher: labels(t)
    session = interleave(variants, ctx if ctx.gpu else ctx.limited(3), clock)
    setting = f"{size}x{size}, batch {batch}, {len(VOC20)} classes, {ctx.model}"
    rows = [compare(session, name, "MaskCLIP", setting) for name in ("scclip", "resclip")]
    rows.append(compare(session, "proxyclip", "MaskCLIP + proxy forward",
                        f"{setting}, proxy {PROXY['model']}"))
    step_setting = f"{backbone} DeepLabv2 student, {step_size}x{step_size}, batch {step_batch}"
    shares = {}
    for name in ("MaskCLIP", "scclip", "resclip", "proxyclip"):
        teacher_s = statistics.median(session.times[f"{name} labels for a step"])
        shares[name] = teacher_s / (teacher_s + statistics.median(session.times["student step"]))
    return {
        "description": "dense cost of the frontier heads relative to MaskCLIP's, and each head's "
                       "share of a MaskCLIP+ train step (teacher labels / (teacher + student step))",
        "ratio_definition": "head / MaskCLIP query scores (ProxyCLIP: / MaskCLIP + the proxy's "
                            "forward); target <= 1.5",
        "teacher_share": {name: round(share, 3) for name, share in shares.items()},
        "teacher_share_setting": step_setting,
        "measurements": rows,
    }
