"""Speed benchmarks, reported as ratios of interleaved, warmed-up timings.

Every case times two or more variants of the same work on the same input. After ``--warmup``
untimed rounds, the variants run in turn (A B A B ...) for ``--repeats`` rounds, so slow drift
of the machine (another process on a core, thermal state) hits every variant alike; each
variant's median is reported, with the ratio of medians and the median of the per-round ratios.
A case stops repeating once it has run longer than ``--case-timeout`` seconds (at least one
timed round always runs) and says how many rounds it ran.

Run it from the repository root: ``python -m scripts.bench [--quick] [--cases a,b] ...``
(``make bench``, ``make bench-gpu``); ``--list`` shows the cases, ``--help`` every flag.

Layout, one concern per module:

* ``cli.py``: the flags, the run over the chosen cases, the outputs written (``__main__.py``
  calls its ``main``).
* ``harness.py``: the context every case gets (settings, device, a shared teacher), warm-up and
  interleaved timing, the per-case clock, summaries and compared rows.
* ``cases/``: the cases, one module per case or closely related group; ``cases/__init__.py``
  holds the registry (``CASE_LIST``, in run order) and describes each case.
* ``memory_worker.py``: the process that ``memory_ratio_2048x1024`` starts for each shape
  (``python -m scripts.bench.memory_worker``), so that it holds only that model.
* ``report.py``: the headline keys of ``bench.json`` and the markdown table.

Outputs: ``bench.json`` (``--out``) and a markdown table (``--markdown``), also printed.
``bench.json`` carries the headline keys ``dense_vs_encode_448``, ``refine_overhead``,
``slide_batched_speedup``, ``teacher_share``, ``memory_ratio_2048x1024``,
``text_classifier_speedup``, plus ``machine`` and ``commit``.
``--quick`` runs the same cases at tiny sizes on the ``tiny-vit`` test model (a smoke test).

Random-init weights (``pretrained=None``) are used: weights do not change the timings.
On CUDA (``--device cuda``, ``make bench-gpu``) the timed calls run under bf16 autocast, as
training and labelling do there (``--precision`` changes it).

This package module imports nothing heavy: the memory worker imports it too, and must hold
only its model.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[2]  # the repository root
