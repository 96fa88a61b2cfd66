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

* ``label_throughput``: the labeller under ``src.predict`` / ``src.label`` on 448² images
  (labels and confidence at full resolution), a batch of 4 vs one image at a time; reports
  images per second.

Outputs: ``bench.json`` (``--out``) and a markdown table (``--markdown``), also printed.
``--quick`` runs the same cases at tiny sizes on the ``tiny-vit`` test model (a smoke test).

Random-init weights (``pretrained=None``) are used: weights do not change the timings.
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
    _teachers: dict = field(default_factory=dict)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def teacher(self):
        """The random-init ``MaskCLIPTeacher`` for ``self.model`` (built once per run)."""
        if self.model not in self._teachers:
            from src.models.teacher import MaskCLIPTeacher

            torch.manual_seed(0)
            teacher = MaskCLIPTeacher(self.model, None, cache_dir=None)
            self._teachers[self.model] = teacher.to(self.device)
        return self._teachers[self.model]


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
    with torch.no_grad():
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
    rows = []
    for size in sizes:
        clip = _encode_twin(teacher, size, ctx.device)
        torch.manual_seed(1)
        x = torch.randn(1, 3, size, size, device=ctx.device)
        session = interleave({
            "dense_features": lambda: teacher.dense_features(x),
            "encode_image": lambda: clip.encode_image(x),
        }, ctx, clock)
        rows.append(compare(session, "dense_features", "encode_image", f"{size}x{size}, batch 1"))
        del clip
    return {
        "description": "MaskCLIPTeacher.dense_features vs clip.encode_image on the same input",
        "ratio_definition": "dense_features / encode_image (lower is better; target <= 1.02)",
        "measurements": rows,
    }


@register("slide_batched_vs_loop")
def case_slide_batched_vs_loop(ctx: BenchContext, clock: CaseClock) -> dict[str, Any]:
    """slide_scores with crop_batch_size 8 and 4 vs 1; time per image; ratio loop/batched."""
    from src.models.inference import InferenceConfig, slide_scores, window_starts

    teacher = ctx.teacher()
    teacher.set_vocabulary(VOC20, "single")
    s = teacher.output_stride
    if ctx.quick:
        raw_hw, short, crop, stride = (48, 64), 48, 32, 16
    else:
        raw_hw, short, crop, stride = (375, 500), 336, 224, 112  # a typical VOC image (H, W)
    scale = short / min(raw_hw)
    hw = (round(raw_hw[0] * scale), round(raw_hw[1] * scale))
    torch.manual_seed(2)
    raw = torch.randn(1, 3, *raw_hw, device=ctx.device)
    image = F.interpolate(raw, size=hw, mode="bilinear", align_corners=False)
    windows = (len(window_starts(-(-hw[0] // s) * s, crop, stride))
               * len(window_starts(-(-hw[1] // s) * s, crop, stride)))

    def score_fn(crops):
        return teacher.query_scores(crops)[0]

    configs = {
        "loop (crop_batch_size=1)": 1,
        "batched (crop_batch_size=8)": 8,
        "batched (crop_batch_size=4)": 4,
    }
    variants = {}
    for name, cbs in configs.items():
        cfg = InferenceConfig(mode="slide", crop_size=crop, stride=stride, crop_batch_size=cbs)
        variants[name] = (lambda c: (lambda: slide_scores(score_fn, image, s, c)))(cfg)

    # Same scores whichever way the crops are batched (checked once, untimed).
    with torch.no_grad():
        outs = [fn() for fn in variants.values()]
    max_diff = max(float((o - outs[0]).abs().max()) for o in outs[1:])
    del outs

    session = interleave(variants, ctx, clock)
    loop = "loop (crop_batch_size=1)"
    setting = (f"{hw[1]}x{hw[0]} image, crop {crop}, stride {stride}, {windows} windows, "
               f"{len(VOC20)} classes")
    rows = [compare(session, loop, name, setting) for name in configs if name != loop]
    return {
        "description": "sliding-window slide_scores, batched crops vs one crop at a time "
                       "(time per image)",
        "ratio_definition": "loop / batched (> 1: batching is faster)",
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
    labeller = DenseLabeller(teacher, teacher.vocabulary, teacher.output_stride).place(ctx.device)
    size, batch = (64, 4) if ctx.quick else (448, 4)
    torch.manual_seed(3)
    images = torch.randn(batch, 3, size, size, device=ctx.device)
    sizes = [(size, size)] * batch
    variants = {
        "one at a time": lambda: [labeller.label_batch(images[i:i + 1], sizes[:1])
                                  for i in range(batch)],
        f"batch of {batch}": lambda: labeller.label_batch(images, sizes),
    }
    session = interleave(variants, ctx, clock)
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


# ---------------------------------------------------------------------------- reporting
def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"Model `{meta['model']}` (random init), device `{meta['device']}`, "
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

    ctx = BenchContext(model=args.model, quick=args.quick, repeats=args.repeats,
                       warmup=args.warmup, case_timeout=args.case_timeout, device=device)
    results: dict[str, Any] = {
        "meta": {
            "model": args.model,
            "pretrained": None,
            "quick": args.quick,
            "device": str(device),
            "device_name": device_name,
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
