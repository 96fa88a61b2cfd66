#!/usr/bin/env python
"""Speed benchmarks, reported as ratios of interleaved, warmed-up timings.

Every case times two or more variants of the same work on the same input. After ``--warmup``
untimed rounds, the variants run in turn (A B A B ...) for ``--repeats`` rounds, so slow drift
of the machine (another process on a core, thermal state) hits every variant alike; each
variant's median is reported, with the ratio of medians and the median of the per-round ratios.
A case stops repeating once it has run longer than ``--case-timeout`` seconds (at least one
timed round always runs) and says how many rounds it ran.

Cases (``--cases``, comma-separated; ``--list`` shows them):

* ``dense_vs_encode_image``: ``MaskCLIPTeacher.dense_features(x)`` vs ``clip.encode_image(x)``
  on the same input, batch 1, at 448² and 224². ``encode_image`` at a size other than the
  model's native one uses a twin built with ``force_image_size`` that holds the teacher's
  weights (positional embedding resized). Ratio dense/encode: the value path drops the last
  block's query/key attention but keeps its MLP, so the target is about 1 (≤ 1.02).
* ``slide_batched_vs_loop``: ``slide_scores`` over a 500×375 image rescaled to short side 336
  (448×336), 224 crops, stride 112, 20 classes, with ``crop_batch_size`` 8 and 4 (all crops in
  few forwards) vs 1 (one crop at a time). Time per image; ratio loop/batched (> 1: batching is
  faster).

New cases are functions ``case(ctx) -> dict`` registered in ``CASES`` with ``@register``.

* ``refine_overhead``: query scores with key smoothing + prompt denoising vs without (448²).
* ``teacher_share``: one MaskCLIP+ train step (R50 DeepLabv2 student, 320², batch 2, the
  teacher model) with online pseudo-labels vs labels read from PNG files; the teacher's share.
* ``memory_ratio_2048x1024``: peak RSS (on CUDA: peak allocated CUDA memory) of teacher
  evaluation on 2048×1024 (sliding window) vs 512² (whole image), each in its own subprocess
  holding only that model.
* ``text_classifier_speedup``: our causal-prefix text classifier vs open_clip's
  ``build_zero_shot_classifier`` for 171 COCO-Stuff classes × 5 templates, with the max diff.
* ``resolution_scaling``: whole vs sliding window at 224, 448 and 896, plotted to
  ``<markdown stem>_resolution.png`` beside the table.
* ``dense_throughput``: teacher images per second at 448² by batch size (dense features, and
  labels at input size); on a GPU also the largest batch through ``teacher.compile_dense=true``.
* ``speedups``: the candidate speed-ups, each against the plain way: ``torch.inference_mode``,
  channels_last for the student's train step, ``torch.compile`` of the teacher, persistent
  (and, on a GPU, pinned) DataLoader workers.
* ``label_throughput``: the labeller under ``src.predict`` / ``src.label`` on 448² images
  (labels and confidence at full resolution), a batch of 4 vs one image at a time; reports
  images per second.

Outputs: ``bench.json`` (``--out``) and a markdown table (``--markdown``), also printed.
``bench.json`` carries the headline keys ``dense_vs_encode_448``, ``refine_overhead``,
``slide_batched_speedup``, ``teacher_share``, ``memory_ratio_2048x1024``,
``text_classifier_speedup``, plus ``machine`` and ``commit``.
``--quick`` runs the same cases at tiny sizes on the ``tiny-vit`` test model (a smoke test).

Random-init weights (``pretrained=None``) are used: weights do not change the timings.
On CUDA (``--device cuda``, ``make bench-gpu``) the timed calls run under bf16 autocast, as
training and labelling do there (``--precision`` changes it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VOC20 = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]

NOISY_SPREAD = 0.10  # relative median absolute deviation above which a timing is flagged
BUSY_CORES = 0.25  # average cores used by other processes above which a case is flagged


# ---------------------------------------------------------------------------- timing machinery
@dataclass
class BenchContext:
    """What every case gets: settings, the device, and a shared teacher."""

    model: str
    quick: bool
    repeats: int
    warmup: int
    case_timeout: float
    device: torch.device
    plot_path: str | None = None  # the resolution_scaling figure
    precision: str = "fp32"  # "bf16": timed calls run under torch.autocast (CUDA)
    _teachers: dict = field(default_factory=dict)

    def autocast(self):
        """bf16 autocast for ``precision="bf16"`` (what training and labelling use on a GPU)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    @property
    def gpu(self) -> bool:
        return self.device.type == "cuda"

    def limited(self, repeats: int, warmup: int | None = None) -> "BenchContext":
        """This context with at most ``repeats`` timed rounds (for the slowest settings)."""
        from dataclasses import replace

        return replace(self, repeats=min(self.repeats, repeats),
                       warmup=self.warmup if warmup is None else min(self.warmup, warmup))

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def teacher(self, model: str | None = None):
        """The random-init ``MaskCLIPTeacher`` for ``model`` (default ``self.model``), built once."""
        model = model or self.model
        if model not in self._teachers:
            from src.models.teacher import MaskCLIPTeacher

            torch.manual_seed(0)
            teacher = MaskCLIPTeacher(model, None, cache_dir=None)
            self._teachers[model] = teacher.to(self.device)
        return self._teachers[model]


def _system_busy_seconds() -> float | None:
    """CPU-seconds all processes have been busy since boot (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CaseClock:
    """Wall time since a case started, against its cap; also how busy the rest of the machine
    was meanwhile (other processes compete with torch's threads and make timings noisy)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.start = time.perf_counter()
        self._busy0 = _system_busy_seconds()
        self._self0 = time.process_time()

    def other_cores_busy(self) -> float | None:
        """Average number of cores that other processes kept busy since the case started."""
        busy = _system_busy_seconds()
        if busy is None or self._busy0 is None or self.elapsed <= 0:
            return None
        others = (busy - self._busy0) - (time.process_time() - self._self0)
        return max(others, 0.0) / self.elapsed

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def expired(self) -> bool:
        return self.elapsed > self.timeout


@dataclass
class Session:
    """Interleaved timings of several variants: ``times[name]`` holds one value per round."""

    times: dict[str, list[float]]
    rounds: int
    capped: bool


def _timed_call(fn: Callable[[], Any], ctx: BenchContext) -> float:
    ctx.sync()
    start = time.perf_counter()
    with torch.no_grad(), ctx.autocast():
        fn()
    ctx.sync()
    return time.perf_counter() - start


def interleave(variants: dict[str, Callable[[], Any]], ctx: BenchContext,
               clock: CaseClock) -> Session:
    """Warm up, then time the variants in turn (A B A B ...) until ``repeats`` or the cap."""
    names = list(variants)
    for _ in range(ctx.warmup):
        for name in names:
            _timed_call(variants[name], ctx)
        if clock.expired():
            break
    times: dict[str, list[float]] = {name: [] for name in names}
    capped = False
    for round_ in range(ctx.repeats):
        if round_ > 0 and clock.expired():  # the first timed round always runs
            capped = True
            break
        for name in names:
            times[name].append(_timed_call(variants[name], ctx))
    return Session(times, len(times[names[0]]), capped)


def summarize(values: list[float]) -> dict[str, Any]:
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values)
    return {
        "median_s": med,
        "min_s": min(values),
        "mean_s": statistics.fmean(values),
        "mad_rel": mad / med if med > 0 else 0.0,
        "n": len(values),
        "runs_s": values,
    }


def compare(session: Session, a: str, b: str, setting: str) -> dict[str, Any]:
    """One reported row: variant ``a`` against ``b`` (ratio a/b) from an interleaved session."""
    ta, tb = session.times[a], session.times[b]
    sa, sb = summarize(ta), summarize(tb)
    return {
        "setting": setting,
        "a": a,
        "b": b,
        "times": {a: sa, b: sb},
        "ratio": sa["median_s"] / sb["median_s"],
        "paired_ratio": statistics.median(x / y for x, y in zip(ta, tb)),
        "repeats_run": session.rounds,
        "capped": session.capped,
        "noisy": max(sa["mad_rel"], sb["mad_rel"]) > NOISY_SPREAD,
    }


# ---------------------------------------------------------------------------- cases
CaseFn = Callable[[BenchContext, CaseClock], dict[str, Any]]
CASES: dict[str, CaseFn] = {}


def register(name: str) -> Callable[[CaseFn], CaseFn]:
    def deco(fn: CaseFn) -> CaseFn:
        CASES[name] = fn
        return fn

    return deco


def _encode_twin(teacher, size: int, device: torch.device):
    """The teacher's CLIP, or a ``force_image_size=size`` twin holding the teacher's weights."""
    from src.models.clip_loading import create_clip
    from src.models.teacher import resize_positional_embedding

    visual = teacher.clip.visual
    if tuple(visual.image_size) == (size, size):
        return teacher.clip
    twin, _ = create_clip(teacher.spec.arch, None, quick_gelu=teacher.spec.quick_gelu,
                          force_image_size=size)
    state = {k: v.detach().cpu() for k, v in teacher.clip.state_dict().items()}
    key = "visual.positional_embedding"
    state[key] = resize_positional_embedding(state[key], tuple(visual.grid_size),
                                             tuple(twin.visual.grid_size))
    twin.load_state_dict(state)
    twin.requires_grad_(False)
    return twin.eval().to(device)


@register("dense_vs_encode_image")
def case_dense_vs_encode_image(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """dense_features(x) vs encode_image(x), batch 1, same input; ratio dense/encode."""
    teacher = ctx.teacher()
    sizes = (128, 64) if ctx.quick else (448, 224)
    # On a GPU batch 1 is bound by kernel launches, not arithmetic; batch 32 shows the work.
    batches = (1, 32) if ctx.gpu else (1,)
    rows = []
    for size in sizes:
        clip = _encode_twin(teacher, size, ctx.device)
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


@register("slide_batched_vs_loop")
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


@register("label_throughput")
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


@register("refine_overhead")
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


@register("teacher_share")
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


_MEMORY_SCRIPT = """
import os, resource, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads({threads})
from src.models.teacher import MaskCLIPTeacher
from src.utils.precision import gpu_autocast
device = torch.device({device!r})
teacher = MaskCLIPTeacher({model!r}, None, cache_dir=None,
                          inference=dict(mode={mode!r}, crop_size=224, stride=112,
                                         crop_batch_size=8))
teacher.set_vocabulary([f"class {{i}}" for i in range(19)], "single")
teacher.to(device)
def hwm_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
image = torch.randn(1, 3, {h}, {w}, device=device)
if device.type == "cuda":  # allocated CUDA memory: the model plus evaluation
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    reset = True
else:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:  # reset the high-water mark: loading torch and the model must not hide the peak
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
start = time.perf_counter()
with torch.no_grad(), gpu_autocast(device, {autocast!r}):
    labels = teacher(image).argmax(1)
if device.type == "cuda":
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20
else:
    peak = hwm_mb() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT", base, peak, time.perf_counter() - start)
"""


@register("memory_ratio_2048x1024")
def case_memory_ratio(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """Peak RSS (CUDA: allocated CUDA memory) of teacher evaluation: 2048×1024 (sliding window)
    vs 512² (whole), each in its own process (a process's peak RSS never goes down, and the
    process holds only this model)."""
    import subprocess

    shapes = {"2048x1024 slide": (1024, 2048, "slide"), "512x512 whole": (512, 512, "whole")}
    if ctx.quick:
        shapes = {"256x128 slide": (128, 256, "slide"), "64x64 whole": (64, 64, "whole")}
    model = "tiny-vit" if ctx.quick else ctx.model
    peaks = {}
    for name, (h, w, mode) in shapes.items():
        code = _MEMORY_SCRIPT.format(root=str(ROOT), threads=torch.get_num_threads(), model=model,
                                     mode=mode, h=h, w=w, device=str(ctx.device),
                                     autocast="bfloat16" if ctx.precision == "bf16" else "float32")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=max(60, int(ctx.case_timeout)))
        if proc.returncode != 0:
            raise RuntimeError(f"memory case {name} failed: {proc.stderr[-2000:]}")
        base, peak, seconds = (float(v) for v in proc.stdout.split("RESULT")[1].split())
        peaks[name] = {"model_loaded_mb": base, "peak_mb": peak, "seconds": seconds}
    (big, small) = list(peaks)
    ratio = peaks[big]["peak_mb"] / peaks[small]["peak_mb"]
    row = {"setting": f"{model}, 19 classes, crop 224 stride 112, {ctx.precision}",
           "a": big, "b": small,
           "times": {big: summarize([peaks[big]["peak_mb"] / 1e3]),
                     small: summarize([peaks[small]["peak_mb"] / 1e3])},
           "ratio": ratio, "paired_ratio": ratio, "repeats_run": 1, "capped": False,
           "noisy": False}
    return {
        "description": "peak resident memory while evaluating (labels at full size); the peak "
                       "is reset after loading, so it is the model plus evaluation",
        "ratio_definition": ("peak CUDA memory" if ctx.gpu else "peak RSS")
        + " 2048x1024 slide / 512x512 whole (target <= 1.5; the A/B columns hold MB, not ms)",
        "peaks_mb": peaks,
        "measurements": [row],
    }


@register("text_classifier_speedup")
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


@register("resolution_scaling")
def case_resolution_scaling(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """Whole-image vs sliding-window (224/112) teacher scores at 224, 448 and 896; a PNG plot."""
    from src.models.inference import InferenceConfig, slide_scores, whole_scores

    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    s = teacher.output_stride
    sizes = (32, 64, 128) if ctx.quick else (224, 448, 896)
    crop, stride = (32, 16) if ctx.quick else (224, 112)
    cfg = InferenceConfig(mode="slide", crop_size=crop, stride=stride, crop_batch_size=8)

    def fn(crops):
        return teacher.query_scores(crops)[0]

    rows, curve = [], {"whole": [], "slide": []}
    for size in sizes:
        x = torch.randn(1, 3, size, size, device=ctx.device)
        # CPU: one timed round at the largest size (~15 s per variant and round)
        rounds = 1 if size == sizes[-1] and not ctx.gpu and not ctx.quick else 2
        session = interleave({"whole": lambda: whole_scores(fn, x, s),
                              "slide": lambda: slide_scores(fn, x, s, cfg)},
                             ctx.limited(rounds, warmup=1), clock)
        row = compare(session, "slide", "whole", f"{size}x{size}")
        rows.append(row)
        for name in curve:
            curve[name].append(row["times"][name]["median_s"])
    plot = Path(ctx.plot_path) if ctx.plot_path else None
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for name, values in curve.items():
            ax.plot(sizes, values, marker="o", label=name)
        ax.set_xlabel("input side (px)")
        ax.set_ylabel("seconds per image")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{ctx.model}: whole vs slide {crop}/{stride}")
        ax.legend()
        fig.tight_layout()
        plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot, dpi=120)
        plt.close(fig)
    return {
        "description": "cost growth with resolution, whole image vs sliding window",
        "ratio_definition": "slide / whole at each size",
        "seconds": {"sizes": list(sizes), **curve},
        "plot": None if plot is None else str(plot),
        "measurements": rows,
    }


def _per_image(session: Session, batch_of: dict[str, int]) -> Session:
    """The same session with every time divided by its variant's batch size."""
    return Session({name: [t / batch_of[name] for t in times]
                    for name, times in session.times.items()}, session.rounds, session.capped)


def _eager_vs_compiled(teacher, x: torch.Tensor, ctx: BenchContext, clock: CaseClock
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


@register("dense_throughput")
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
        session = _per_image(interleave(variants, ctx if ctx.gpu else ctx.limited(2), clock),
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
        session, _ = _eager_vs_compiled(
            teacher, torch.randn(b, 3, size, size, device=ctx.device), ctx, clock)
        session = _per_image(Session({eager: session.times["eager"],
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


@register("speedups")
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
        session, notes["compile_seconds"] = _eager_vs_compiled(teacher, x, ctx, clock)
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


# ---------------------------------------------------------------------------- output contract
def _commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def contract_keys(results: dict[str, Any]) -> dict[str, Any]:
    """The comparable headline numbers (one per case) plus ``machine`` and ``commit``."""
    cases = results["cases"]

    def row(case: str, match: str | None = None) -> float | None:
        rows = cases.get(case, {}).get("measurements", [])
        for r in rows:
            if match is None or match in r["setting"] or match in r["b"]:
                return r["ratio"]
        return None

    return {
        "dense_vs_encode_448": row("dense_vs_encode_image", "448x448, batch 1"),
        "refine_overhead": row("refine_overhead"),
        "slide_batched_speedup": row("slide_batched_vs_loop", "VOC"),
        "teacher_share": cases.get("teacher_share", {}).get("teacher_share"),
        "memory_ratio_2048x1024": row("memory_ratio_2048x1024"),
        "text_classifier_speedup": row("text_classifier_speedup"),
        "dense_images_per_second_448": cases.get("dense_throughput", {}).get(
            "best_dense_images_per_second"),
        "labels_images_per_second_448": cases.get("dense_throughput", {}).get(
            "best_labels_images_per_second"),
        "precision": results["meta"].get("precision"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "device": results["meta"].get("device_name")},
        "commit": _commit(),
    }


# ---------------------------------------------------------------------------- reporting
def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Model `{meta['model']}` (random init), device `{meta['device']}` "
        f"({meta.get('device_name')}, {meta.get('precision', 'fp32')}), "
        f"torch {meta['torch']} with {meta['torch_threads']} threads; "
        f"{meta['warmup']} warm-up + up to {meta['repeats']} interleaved rounds, medians.",
        "",
        "| case | setting | A | B | A median (ms) | B median (ms) | ratio A/B | paired ratio "
        "| rounds |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, case in results["cases"].items():
        busy = case.get("other_cores_busy")
        for row in case["measurements"]:
            ta, tb = row["times"][row["a"]], row["times"][row["b"]]
            rounds = str(row["repeats_run"])
            if row["capped"]:
                rounds += " (time cap)"
            if row["noisy"]:
                rounds += " (noisy)"
            if busy is not None and busy > BUSY_CORES:
                rounds += " (busy machine)"
            lines.append(
                f"| {name} | {row['setting']} | {row['a']} | {row['b']} | "
                f"{_ms(ta['median_s'])} | {_ms(tb['median_s'])} | {row['ratio']:.3f} | "
                f"{row['paired_ratio']:.3f} | {rounds} |"
            )
    lines.append("")
    for name, case in results["cases"].items():
        lines.append(f"- `{name}`: ratio = {case['ratio_definition']}.")
    lines.append(f"- noisy: a variant's median absolute deviation exceeds "
                 f"{NOISY_SPREAD:.0%} of its median.")
    busy = {n: c.get("other_cores_busy") for n, c in results["cases"].items()}
    if any(v is not None for v in busy.values()):
        lines.append("- other processes kept busy, on average, "
                     + "; ".join(f"{v:.2f} of {meta['cpu_count']} cores during `{n}`"
                                 for n, v in busy.items() if v is not None)
                     + f" (busy machine: > {BUSY_CORES}).")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated cases (default: all: {','.join(CASES)})")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per case (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    parser.add_argument("--case-timeout", type=float, default=300.0,
                        help="stop repeating a case after this many seconds (300)")
    parser.add_argument("--model", default=None,
                        help="open_clip architecture, random init (default ViT-B-16; "
                             "tiny-vit with --quick)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's choice; 1 with --quick)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="bf16 runs timed calls under torch.autocast; auto: bf16 on CUDA "
                             "(as training and labelling do there), fp32 on the CPU")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes on the tiny-vit test model: a smoke test")
    parser.add_argument("--out", default="bench.json", help="JSON results (bench.json)")
    parser.add_argument("--markdown", default="bench.md", help="markdown table (bench.md)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {list(CASES)}")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.model is None:
        args.model = "tiny-vit" if args.quick else "ViT-B-16"
    if args.threads is None and args.quick:
        # A tiny model gains nothing from threads, and a second thread that has to wait for a
        # core another process holds can make each op 100x slower.
        args.threads = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, fn in CASES.items():
            print(f"{name}: {(fn.__doc__ or '').strip()}")
        return 0
    threads_before = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:  # leave the caller's (e.g. a test session's) thread count as it was
        torch.set_num_threads(threads_before)


def _run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads "
          f"(interop {torch.get_num_interop_threads()}), device {device} ({device_name}), "
          f"model {args.model}, os.cpu_count()={os.cpu_count()}", flush=True)

    precision = args.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    ctx = BenchContext(model=args.model, quick=args.quick, repeats=args.repeats,
                       warmup=args.warmup, case_timeout=args.case_timeout, device=device,
                       plot_path=str(Path(args.markdown).with_name(
                           f"{Path(args.markdown).stem}_resolution.png")),
                       precision=precision)
    results: dict[str, Any] = {
        "meta": {
            "model": args.model,
            "pretrained": None,
            "quick": args.quick,
            "device": str(device),
            "device_name": device_name,
            "precision": precision,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "repeats": args.repeats,
            "warmup": args.warmup,
            "case_timeout_s": args.case_timeout,
            "order": "interleaved (A B A B ...), medians",
            "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "cases": {},
    }
    for name in args.cases:
        print(f"[{name}] running ...", flush=True)
        clock = CaseClock(args.case_timeout)
        case = CASES[name](ctx, clock)
        rows = case["measurements"]
        case["ratio"] = rows[0]["ratio"]
        case["repeats_run"] = min(r["repeats_run"] for r in rows)
        case["capped"] = any(r["capped"] for r in rows)
        case["elapsed_s"] = clock.elapsed
        case["other_cores_busy"] = clock.other_cores_busy()
        results["cases"][name] = case
        for r in rows:
            print(f"[{name}] {r['setting']}: {r['a']} / {r['b']} = {r['ratio']:.3f} "
                  f"(paired {r['paired_ratio']:.3f}, {r['repeats_run']} rounds"
                  f"{', time cap' if r['capped'] else ''})", flush=True)
    if hasattr(os, "getloadavg"):
        results["meta"]["loadavg_end"] = list(os.getloadavg())
    results.update(contract_keys(results))

    table = markdown_table(results)
    for path, text in ((args.out, json.dumps(results, indent=2) + "\n"), (args.markdown, table)):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print()
    print(table, end="")
    print(f"\nwrote {args.out} and {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
