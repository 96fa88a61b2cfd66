"""What several cases share: the VOC class names and eager-vs-compiled timing of the teacher."""

from __future__ import annotations

import time

import torch

from scripts.bench.harness import BenchContext, CaseClock, Session, interleave

VOC20 = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]


def eager_vs_compiled(teacher, x: torch.Tensor, ctx: BenchContext, clock: CaseClock
                      ) -> tuple[Session, float]:
    """The teacher's dense pass, eager vs ``compile_dense=True`` (variants ``eager`` and
    ``torch.compile``), and the seconds the first compiled call (compilation) took. The
    compiled graph is dropped afterwards."""
    def dense(compiled: bool):
        teacher.compile_dense = compiled
        return teacher.dense_features(x)

    try:
        start = time.perf_counter()
        with torch.no_grad(), ctx.autocast():
            dense(True)
        ctx.sync()
        compile_seconds = time.perf_counter() - start
        session = interleave({"eager": lambda: dense(False),
                              "torch.compile": lambda: dense(True)}, ctx, clock)
    finally:
        teacher.compile_dense, teacher._compiled_dense = False, None
        torch._dynamo.reset()
    return session, compile_seconds
