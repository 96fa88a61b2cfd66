"""``speedups``: the candidate speed-ups, each against the plain way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from scripts.bench.cases.common import VOC20, eager_vs_compiled
from scripts.bench.harness import BenchContext, CaseClock, compare, interleave


def _loader_epochs(folder: Path, workers: int, persistent: bool, pin: bool, epochs: int) -> None:
    """Read every PNG in ``folder`` ``epochs`` times through a DataLoader (448², batch 8)."""
    from torch.utils.data import DataLoader

    from src.data.images import ImageListDataset, list_collate

    dataset = ImageListDataset(sorted(folder.glob("*.png")), (448, 448),
                               (0.481, 0.458, 0.408), (0.269, 0.261, 0.276))
    loader = DataLoader(dataset, batch_size=8, num_workers=workers, collate_fn=list_collate,
                        persistent_workers=persistent, pin_memory=pin)
    for _ in range(epochs):
        for _batch in loader:
            pass


def case_speedups(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """The candidate speed-ups, each against the plain way (ratio plain / candidate, > 1: it
    pays): torch.inference_mode vs no_grad for the teacher; channels_last for a student train
    step; torch.compile of the teacher's dense pass (compile time reported apart); persistent
    DataLoader workers (+ pinned memory on a GPU)."""
    import tempfile

    import numpy as np
    from PIL import Image

    from src.models.student import SegStudent

    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    rows, notes = [], {}
    size, batch = (64, 1) if ctx.quick else ((448, 32) if ctx.gpu else (224, 1))
    x = torch.randn(batch, 3, size, size, device=ctx.device)

    def under_inference_mode():
        with torch.inference_mode():
            return teacher.query_scores(x)

    session = interleave({"no_grad": lambda: teacher.query_scores(x),
                          "inference_mode": under_inference_mode}, ctx, clock)
    rows.append(compare(session, "no_grad", "inference_mode",
                        f"teacher query scores, {size}x{size}, batch {batch}"))

    # channels_last: a DeepLabv2 student train step (the convolutional half of MaskCLIP+).
    s_size, s_batch, backbone = ((64, 2, "resnet18d") if ctx.quick else
                                 ((512, 8, "resnet101c") if ctx.gpu else (320, 2, "resnet50c")))
    torch.manual_seed(4)
    students, optimizers = {}, {}
    for fmt in ("contiguous", "channels_last"):
        torch.manual_seed(4)
        student = SegStudent(teacher.class_embeddings.detach().cpu(), backbone=backbone,
                             pretrained=None, allow_random_init=True,
                             channels_last=fmt == "channels_last").to(ctx.device).train()
        students[fmt] = student
        optimizers[fmt] = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    images = torch.randn(s_batch, 3, s_size, s_size, device=ctx.device)
    target = torch.randint(0, len(VOC20), (s_batch, s_size, s_size), device=ctx.device)

    def step(fmt):
        with torch.enable_grad():
            logits = F.interpolate(students[fmt](images), size=(s_size, s_size),
                                   mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, target)
            optimizers[fmt].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[fmt].step()

    session = interleave({"contiguous": lambda: step("contiguous"),
                          "channels_last": lambda: step("channels_last")},
                         ctx if ctx.gpu else ctx.limited(2), clock)
    rows.append(compare(session, "contiguous", "channels_last",
                        f"{backbone} DeepLabv2 train step, {s_size}x{s_size}, batch {s_batch}"))
    del students, optimizers

    # torch.compile of the dense pass; the first call (compilation) is timed apart.
    try:
        session, notes["compile_seconds"] = eager_vs_compiled(teacher, x, ctx, clock)
        rows.append(compare(session, "eager", "torch.compile",
                            f"teacher dense features, {size}x{size}, batch {batch}"))
    except Exception as err:  # no compiler toolchain, unsupported op ...: say so, go on
        notes["compile_error"] = f"{type(err).__name__}: {str(err)[:300]}"

    if ctx.gpu and ctx.precision == "bf16":
        # autocast caches weight casts only for parameters that require grad, so a frozen
        # teacher's fp32 weights are re-cast to bf16 on every call. Stored as bf16 up front
        # (matmul/conv weights and biases only: exactly what autocast would cast) they are not.
        import copy

        stored = copy.deepcopy(teacher)
        for module in stored.clip.visual.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.to(torch.bfloat16)
            if isinstance(module, torch.nn.MultiheadAttention):
                module.in_proj_weight.data = module.in_proj_weight.data.bfloat16()
                module.in_proj_bias.data = module.in_proj_bias.data.bfloat16()
        if getattr(stored.clip.visual, "proj", None) is not None:
            stored.clip.visual.proj.data = stored.clip.visual.proj.data.bfloat16()
        with torch.no_grad(), ctx.autocast():
            notes["bf16_weights_max_abs_diff"] = float(
                (stored.dense_features(x) - teacher.dense_features(x)).abs().max())
        session = interleave({"fp32 weights (autocast casts)": lambda: teacher.dense_features(x),
                              "bf16 weights stored": lambda: stored.dense_features(x)},
                             ctx, clock)
        rows.append(compare(session, "fp32 weights (autocast casts)", "bf16 weights stored",
                            f"teacher dense features, {size}x{size}, batch {batch}"))
        del stored

    # DataLoader workers: persistent (and pinned on a GPU) vs re-spawned every epoch.
    folder = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    rng = np.random.default_rng(6)
    for i in range(16 if ctx.quick else 32):
        Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    workers = 2
    pin = ctx.gpu
    session = interleave({
        "workers re-spawned each epoch": lambda: _loader_epochs(folder, workers, False, False, 3),
        "persistent workers" + (" + pinned" if pin else ""):
            lambda: _loader_epochs(folder, workers, True, pin, 3),
    }, ctx.limited(3), clock)
    names = list(session.times)
    rows.append(compare(session, names[0], names[1],
                        f"3 epochs of {len(list(folder.glob('*.png')))} PNGs (500x375 -> 448), "
                        f"batch 8, {workers} workers"))
    return {
        "description": "candidate speed-ups, each against the plain way",
        "ratio_definition": "plain / with the speed-up (> 1: it pays)",
        **notes,
        "measurements": rows,
    }
