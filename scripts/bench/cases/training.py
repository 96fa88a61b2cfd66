"""``teacher_share``: the frozen teacher's share of a MaskCLIP+ train step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from scripts.bench.cases.common import VOC20
from scripts.bench.harness import BenchContext, CaseClock, compare, interleave


def case_teacher_share(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """One MaskCLIP+ train step with online pseudo-labels vs labels read from disk (PNG)."""
    import tempfile

    import numpy as np
    from PIL import Image

    from src.models.student import SegStudent

    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    size, batch, backbone = (64, 2, "resnet18d") if ctx.quick else (320, 2, "resnet50c")
    torch.manual_seed(4)
    student = SegStudent(teacher.class_embeddings.detach().cpu(), backbone=backbone,
                         pretrained=None, allow_random_init=True).to(ctx.device).train()
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    images = torch.randn(batch, 3, size, size, device=ctx.device)
    folder = Path(tempfile.mkdtemp(prefix="bench_labels_"))
    for i in range(batch):
        Image.fromarray(np.random.default_rng(i).integers(0, 20, (size, size), dtype=np.uint8)
                        ).save(folder / f"{i}.png")

    def teacher_labels():
        with torch.no_grad():
            return teacher(images).argmax(1)

    def disk_labels():
        return torch.stack([torch.from_numpy(np.asarray(Image.open(folder / f"{i}.png")))
                            for i in range(batch)]).long().to(ctx.device)

    def step(labeller):
        with torch.enable_grad():
            target = labeller()
            logits = F.interpolate(student(images), size=(size, size), mode="bilinear",
                                   align_corners=False)
            loss = F.cross_entropy(logits, target, ignore_index=255)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    session = interleave({"online teacher": lambda: step(teacher_labels),
                          "labels from disk": lambda: step(disk_labels),
                          "teacher alone": teacher_labels},
                         ctx if ctx.gpu else ctx.limited(3), clock)  # CPU: ~25 s a round
    setting = f"{backbone} DeepLabv2 student, {size}x{size}, batch {batch}, {ctx.model} teacher"
    rows = [compare(session, "online teacher", "labels from disk", setting),
            compare(session, "teacher alone", "online teacher", setting)]
    share = rows[1]["ratio"]
    return {
        "description": "one MaskCLIP+ train step: the frozen teacher's share, vs cached labels",
        "ratio_definition": "row 1: online / cached step; row 2: teacher alone / online step = "
                            "the teacher's share (target <= 0.35)",
        "teacher_share": share,
        "measurements": rows,
    }
