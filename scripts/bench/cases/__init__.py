"""The benchmark's cases and their registry.

A case is a function ``case(ctx, clock) -> dict`` (``harness.CaseFn``): it times its variants
with ``harness.interleave`` under ``clock`` and returns ``description``, ``ratio_definition``
and ``measurements`` (rows from ``harness.compare``), plus any numbers of its own. To add one,
write it in a module here and add its name and function to ``CASE_LIST``; that order is the
order of ``--cases`` by default, of ``bench.json`` and of the markdown table.

Cases (``--cases``, comma-separated; ``--list`` shows them):

* ``dense_vs_encode_image`` (``dense_vs_encode.py``): ``MaskCLIPTeacher.dense_features(x)`` vs
  ``clip.encode_image(x)`` on the same input, batch 1, at 448² and 224². ``encode_image`` at a
  size other than the model's native one uses a twin built with ``force_image_size`` that holds
  the teacher's weights (positional embedding resized). Ratio dense/encode: the value path
  drops the last block's query/key attention but keeps its MLP, so the target is about 1
  (≤ 1.02).
* ``slide_batched_vs_loop`` (``sliding.py``): ``slide_scores`` over a 500×375 image rescaled to
  short side 336 (448×336), 224 crops, stride 112, 20 classes, with ``crop_batch_size`` 8 and 4
  (all crops in few forwards) vs 1 (one crop at a time). Time per image; ratio loop/batched
  (> 1: batching is faster).
* ``label_throughput`` (``labelling.py``): the labeller under ``src.predict`` / ``src.label`` on
  448² images (labels and confidence at full resolution), a batch of 4 vs one image at a time;
  reports images per second.
* ``refine_overhead`` (``refine.py``): query scores with key smoothing + prompt denoising vs
  without (448²).
* ``teacher_share`` (``training.py``): one MaskCLIP+ train step (R50 DeepLabv2 student, 320²,
  batch 2, the teacher model) with online pseudo-labels vs labels read from PNG files; the
  teacher's share.
* ``memory_ratio_2048x1024`` (``memory.py``): peak RSS (on CUDA: peak allocated CUDA memory) of
  teacher evaluation on 2048×1024 (sliding window) vs 512² (whole image), each in its own
  subprocess (``scripts.bench.memory_worker``) holding only that model.
* ``text_classifier_speedup`` (``text_classifier.py``): our causal-prefix text classifier vs
  open_clip's ``build_zero_shot_classifier`` for 171 COCO-Stuff classes × 5 templates, with the
  max diff.
* ``resolution_scaling`` (``resolution.py``): whole vs sliding window at 224, 448 and 896,
  plotted to ``<markdown stem>_resolution.png`` beside the table.
* ``dense_throughput`` (``throughput.py``): teacher images per second at 448² by batch size
  (dense features, and labels at input size); on a GPU also the largest batch through
  ``teacher.compile_dense=true``.
* ``speedups`` (``speedups.py``): the candidate speed-ups, each against the plain way:
  ``torch.inference_mode``, channels_last for the student's train step, ``torch.compile`` of the
  teacher, persistent (and, on a GPU, pinned) DataLoader workers.
* ``frontier_heads`` (``frontier.py``): SC-CLIP's, ResCLIP's and ProxyCLIP's query scores at 224²
  against MaskCLIP's (ProxyCLIP's against MaskCLIP's plus its DINO ViT-B/8 proxy's forward;
  target ≤ 1.5), and each head's share of a MaskCLIP+ train step at 224².
"""

from __future__ import annotations

from scripts.bench.cases.dense_vs_encode import case_dense_vs_encode_image
from scripts.bench.cases.frontier import case_frontier_heads
from scripts.bench.cases.labelling import case_label_throughput
from scripts.bench.cases.memory import case_memory_ratio
from scripts.bench.cases.refine import case_refine_overhead
from scripts.bench.cases.resolution import case_resolution_scaling
from scripts.bench.cases.sliding import case_slide_batched_vs_loop
from scripts.bench.cases.speedups import case_speedups
from scripts.bench.cases.text_classifier import case_text_classifier
from scripts.bench.cases.throughput import case_dense_throughput
from scripts.bench.cases.training import case_teacher_share
from scripts.bench.harness import CaseFn

# (name, function), in run order: the names are the keys of bench.json's "cases".
CASE_LIST: tuple[tuple[str, CaseFn], ...] = (
    ("dense_vs_encode_image", case_dense_vs_encode_image),
    ("slide_batched_vs_loop", case_slide_batched_vs_loop),
    ("label_throughput", case_label_throughput),
    ("refine_overhead", case_refine_overhead),
    ("teacher_share", case_teacher_share),
    ("memory_ratio_2048x1024", case_memory_ratio),
    ("text_classifier_speedup", case_text_classifier),
    ("resolution_scaling", case_resolution_scaling),
    ("dense_throughput", case_dense_throughput),
    ("speedups", case_speedups),
    ("frontier_heads", case_frontier_heads),
)
CASES: dict[str, CaseFn] = dict(CASE_LIST)
