"""The timing machinery every case uses: the shared context, interleaved warmed-up timing, the
per-case clock, and the summaries and compared rows that the report tabulates."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

NOISY_SPREAD = 0.10  # relative median absolute deviation above which a timing is flagged
BUSY_CORES = 0.25  # average cores used by other processes above which a case is flagged


# ---------------------------------------------------------------------------- context
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


def encode_twin(teacher, size: int, device: torch.device):
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


# ---------------------------------------------------------------------------- per-case clock
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


# ---------------------------------------------------------------------------- interleaved timing
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


def per_image(session: Session, batch_of: dict[str, int]) -> Session:
    """The same session with every time divided by its variant's batch size."""
    return Session({name: [t / batch_of[name] for t in times]
                    for name, times in session.times.items()}, session.rounds, session.capped)


# ---------------------------------------------------------------------------- summaries and rows
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


# ---------------------------------------------------------------------------- running a case
CaseFn = Callable[[BenchContext, CaseClock], dict[str, Any]]


def run_case(fn: CaseFn, ctx: BenchContext, timeout: float) -> dict[str, Any]:
    """Run one case under a fresh clock and add its summary: the first row's ratio, the fewest
    rounds any row ran, whether any row hit the time cap, the seconds taken and how busy the
    rest of the machine was."""
    clock = CaseClock(timeout)
    case = fn(ctx, clock)
    rows = case["measurements"]
    case["ratio"] = rows[0]["ratio"]
    case["repeats_run"] = min(r["repeats_run"] for r in rows)
    case["capped"] = any(r["capped"] for r in rows)
    case["elapsed_s"] = clock.elapsed
    case["other_cores_busy"] = clock.other_cores_busy()
    return case
