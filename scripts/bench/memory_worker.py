"""One measurement of ``memory_ratio_2048x1024``, in a process of its own.

``python -m scripts.bench.memory_worker --model M --mode slide|whole --height H --width W
[--device cpu|cuda] [--autocast float32|bfloat16] [--threads N]`` (from the repository root)
builds only the random-init teacher, evaluates one image (labels at full size) and prints
``RESULT <model loaded MB> <peak MB> <seconds>``. The peak is the process's peak RSS, reset after
loading (Linux ``/proc/self/clear_refs``); on CUDA it is the peak allocated CUDA memory. A
process of its own, because a process's peak RSS never goes down.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402


def hwm_mb() -> float:
    """This process's peak resident memory (``VmHWM``) in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="open_clip architecture (random init)")
    parser.add_argument("--mode", required=True, choices=("slide", "whole"))
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--autocast", default="float32", choices=("float32", "bfloat16"),
                        help="the dtype for src.utils.precision.gpu_autocast")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from src.models.teacher import MaskCLIPTeacher
    from src.utils.precision import gpu_autocast

    device = torch.device(args.device)
    teacher = MaskCLIPTeacher(args.model, None, cache_dir=None,
                              inference=dict(mode=args.mode, crop_size=224, stride=112,
                                             crop_batch_size=8))
    teacher.set_vocabulary([f"class {i}" for i in range(19)], "single")
    teacher.to(device)
    image = torch.randn(1, 3, args.height, args.width, device=device)
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
    with torch.no_grad(), gpu_autocast(device, args.autocast):
        teacher(image).argmax(1)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = hwm_mb() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT", base, peak, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
