"""Mixed precision for frozen inference (the teacher, the labeller) on a GPU."""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": None}


def gpu_autocast(device: torch.device | str, dtype: str = "bfloat16") -> AbstractContextManager:
    """``torch.autocast`` in ``dtype`` on CUDA; a no-op on the CPU or for ``"float32"``.

    bf16 is the default: it has fp32's range, so attention logits and the text classifier's
    scaled similarities cannot overflow as they can in fp16. On the CPU autocast does not pay
    (docs/bench.md), so inference there stays fp32.
    """
    if dtype not in AUTOCAST_DTYPES:
        raise ValueError(f"autocast dtype {dtype!r}: choose one of {sorted(AUTOCAST_DTYPES)}")
    device_type = torch.device(device).type
    target = AUTOCAST_DTYPES[dtype]
    return torch.autocast(device_type, dtype=target or torch.float32,
                          enabled=device_type == "cuda" and target is not None)
