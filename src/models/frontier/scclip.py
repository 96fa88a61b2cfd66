"""SC-CLIP (arXiv 2411.15869): self-calibrated CLIP features, as the official code computes them.

A text-independent feature head (src.models.frontier): B×3×H×W images → B×D×h×w L2-normalised
joint-space features, plus the last block's keys for the teacher's key smoothing. Written from the
method description of the official code (SuleBai/SC-CLIP @ 0417ba9, ``clip/model.py``); every
constant and quirk below cites the line it comes from. ``F[i]`` is the output of block ``i``
(0-based): the raw residual stream, CLS first, no LayerNorm. For a 12-block ViT-B/16:

1. Embed (conv1, CLS, position table with the peers' +0.1 resize, ``ln_pre``) and run blocks
   0..10 unchanged, keeping F[3..10] (``model.py:254-271``).
2. **Anomaly tokens**: LOF on F[10]'s patch tokens with k = 30 neighbours, squared Euclidean
   distances and each point's *own* k-distance as the "reach distance", so
   LOF_i = mean_j kdist_i / kdist_j over i's 30 nearest j; outliers are LOF > the 0.95 quantile
   (linear interpolation, strict >) (``model.py:208-227, 274``). :func:`lof_outliers`.
3. **Repair**: each outlier becomes the mean of its in-grid, non-outlier 3×3 neighbours (zero
   padding adds nothing to the sum or the count; no valid neighbour: unchanged)
   (``model.py:348-373``), on F[10] and on F[8] with the same outlier set. CLS is dropped from
   here on; c = F[10][CLS] is kept. :func:`outlier_grid`, :func:`repair_outliers`.
4. **Affinities** (``model.py:280-297``): cosine similarities of raw residual tokens,
   A8 = cos(repaired F[8]), A3 = cos(F[3]); mid = A8 unthresholded, pre = A8 and post = A3 with
   entries < 0.4 set to 0; ``aggregate(z, A) = (A / (rowsum A + 1e-6)) @ z`` (``model.py:343-346``).
   :func:`cosine_affinity`, :func:`threshold_affinity`, :func:`aggregate`.
5. x = aggregate(repaired F[10], pre); the last block without residual or FFN:
   attn = (softmax(M) + softmax(k·kᵀ·s)) / 2 per head with M = (mid − mean(mid))·3, M < 0 → −inf,
   M shared by the heads (``model.py:318-341``); x = out_proj(attn·v) + 0.3·c
   (``model.py:290-291``); x = aggregate(x, post) (``model.py:293-297``).
   :func:`mid_attention`, :func:`calibrated_attention`.
6. **Multi-level fusion** (``model.py:299-306``): R = F[3] + … + F[9] (a SUM, all tokens, no
   repair); r = aggregate(out_proj(attn(ln_1(R patches))) + 0.3·R[CLS], post); x = x + r.
7. ``ln_post(x) @ proj``, reshaped to (h, w), L2-normalised (``model.py:309-310``).

**Block indices for other depths.** The anomaly block is structural in the official code (the
block before the last, ``model.py:269, 272``): F[L−2] for an L-block tower. The four tunable
indices (``pre_adjust_idx`` 8, ``post_adjust_idx`` 3, ``multi_start_idx`` 3, ``multi_end_idx``
10, ``model.py:247-251``) default to ``round_half_up(i·L/12)``, then clamped so that
``0 <= post < pre <= L−2`` and ``0 <= start < end <= L−2`` (:func:`default_block_indices`):
L = 12 gives exactly 8, 3, [3, 10); the 4-block world CLIP 2, 1, [1, 2); the 3-block tiny-vit
1, 0, [0, 1); ViT-L's 24 blocks 16, 6, [6, 20). They are head options (``None``: derived from
the depth); explicit ones must satisfy ``0 <= post, pre <= L−2`` and ``0 <= start < end <= L−1``.
The tower needs at least 3 blocks.

**LOF k on small grids.** The official k = 30 needs more than 30 patches (196 at 224 px). Here
k = min(``lof_neighbors``, N−1) for N patches: with N ≤ 31 every other token is a neighbour.
With N = 1 no token is an outlier.

**Departures from the official code, all invisible on its benchmarks (batch 1, square 224 crops):**

- Batched: LOF, its quantile, mean(mid) and everything else per image (the official code squeezes
  the batch of one; ``torch.mean(mid_simi)`` would mix images).
- Non-square grids: outlier t sits at row-major (t // w, t % w). The official code uses
  (t // rows, t % rows) (``model.py:275``), which is the same on square grids, mis-locates
  outliers otherwise and raises an IndexError when a position falls off the grid;
  ``official_indexing=True`` reproduces that mapping (and raises a ValueError where the official
  code would raise its IndexError).
- Squared distances come from the Gram expansion on per-image centred tokens (N×N memory, not the
  official N×N×C difference tensor); each point's own entry is excluded instead of being dropped
  as the first top-k column, the same set unless two tokens coincide exactly.
- The neighbour mean is a sum of 8 shifted slices instead of a depthwise convolution (same
  result up to summation order; no cuDNN TF32).
- An image with no outlier (all LOF equal) is left unrepaired; the official code raises on the
  empty index list.
- The attention output goes through ``ls_1`` (identity for every OpenAI/OpenCLIP ViT-B without
  LayerScale), so a LayerScale tower keeps its branch scale.

**Precision.** The blocks before the head run under the caller's autocast (the teacher's GPU
bf16/fp16). Everything SC-CLIP adds runs in fp32 with autocast switched off: the LOF (distances,
top-k, ratios) and its quantile, the repair, the cosine affinities, the 0.4 thresholds and the
aggregations, mean(mid) and both softmaxes (their logits included), the last block's projections,
``ln_post`` and ``proj``. The hard decisions (the LOF top 5 %, the 0.4 threshold, the −inf mask)
are thus taken on fp32 numbers; the official code takes them in fp16, so a few may differ.

**Keys for key smoothing** (``refine=ks``): ``DenseCLIP.last_block_keys`` of the *repaired*
F[L−2] patch tokens (what enters the last block, before the pre-affinity aggregation), CLS
dropped. The repaired tokens keep the anomaly tokens out of the smoothing similarity; the
aggregated ones would smooth twice. Like MaskCLIP's keys they follow the caller's autocast.
The official code has no key smoothing.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.heads import block_qkv

#: The official hyper-parameters (configs/base_config.py; clip/model.py:247-252, 274, 329).
OFFICIAL_DEPTH = 12
OFFICIAL_INDICES = {"pre": 8, "post": 3, "multi_start": 3, "multi_end": 10}
AFFINITY_THRESHOLD = 0.4
RES_CLS = 0.3
LOF_NEIGHBORS = 30
CONTAMINATION = 0.05
MID_TEMPERATURE = 3.0
AGGREGATE_EPS = 1e-6


def _fp32(device: torch.device) -> AbstractContextManager:
    """Autocast off on ``device``: what runs inside stays in the dtype it is given (fp32 here)."""
    return torch.autocast(device_type=device.type, enabled=False)


# --------------------------------------------------------------------------- block indices


@dataclass(frozen=True)
class BlockIndices:
    """0-based block indices whose outputs F[i] SC-CLIP reads.

    Attributes:
        anomaly: LOF and repair run on F[anomaly] (always L−2: the block before the last).
        pre: the pre/mid affinity comes from repaired F[pre] (official 8).
        post: the post affinity comes from F[post] (official 3).
        multi_start, multi_end: the multi-level sum is F[multi_start] + … + F[multi_end − 1]
            (official [3, 10)).
    """

    anomaly: int
    pre: int
    post: int
    multi_start: int
    multi_end: int

    @property
    def read(self) -> list[int]:
        """Every F index the head needs, ascending."""
        return sorted({self.anomaly, self.pre, self.post,
                       *range(self.multi_start, self.multi_end)})


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def default_block_indices(depth: int) -> BlockIndices:
    """The official indices scaled to an L-block tower (see the module docstring).

    ``round_half_up(i·L/12)``, then ``pre <= L−2``, ``post <= pre−1``, ``end <= L−2``,
    ``start <= end−1``. L = 12 gives exactly the official 8, 3, [3, 10).
    """
    if depth < 3:
        raise ValueError(f"head=scclip needs a ViT with at least 3 blocks, this one has {depth}")
    scaled = {name: _round_half_up(i * depth / OFFICIAL_DEPTH)
              for name, i in OFFICIAL_INDICES.items()}
    pre = min(scaled["pre"], depth - 2)
    post = min(scaled["post"], pre - 1)
    end = min(scaled["multi_end"], depth - 2)
    start = min(scaled["multi_start"], end - 1)
    return BlockIndices(depth - 2, pre, post, start, end)


# --------------------------------------------------------------------------- anomaly tokens


def lof_outliers(tokens: Tensor, n_neighbors: int = LOF_NEIGHBORS,
                 contamination: float = CONTAMINATION) -> tuple[Tensor, Tensor]:
    """Local-outlier-factor anomaly tokens, per image
    (SC-CLIP official code, clip/model.py:208-227).

    Squared Euclidean distances (``model.py:209``); the k nearest other tokens
    (``model.py:211-212``, top-(k+1) minus the point itself); the "reach distance"
    ``max(d2_ij, kdist_i)`` uses the point's *own* k-distance (``model.py:214-215``), so
    LRD_i = k / kdist_i and LOF_i = mean_j LRD_j / LRD_i (``model.py:217-220``); outliers are
    LOF > the ``1 − contamination`` quantile, linear interpolation, strict >
    (``model.py:222-224``).

    Args:
        tokens: B×N×C patch tokens (no CLS).
        n_neighbors: k, capped at N−1 for small grids.
        contamination: the expected outlier fraction.

    Returns:
        (B×N bool outliers, B×N fp32 LOF scores). Computed in fp32, autocast off.
    """
    b, n, _ = tokens.shape
    k = min(int(n_neighbors), n - 1)
    if k < 1:  # a single token: no neighbourhood, no outlier
        return (torch.zeros(b, n, dtype=torch.bool, device=tokens.device),
                torch.ones(b, n, dtype=torch.float32, device=tokens.device))
    with _fp32(tokens.device):
        x = tokens.float()
        x = x - x.mean(dim=1, keepdim=True)  # translation-invariant distances, less cancellation
        sq = x.square().sum(-1)
        d2 = (sq[:, :, None] + sq[:, None, :] - 2 * (x @ x.transpose(1, 2))).clamp_min_(0)
        d2.diagonal(dim1=1, dim2=2).fill_(float("inf"))  # the point itself is not a neighbour
        knn_d2, knn_idx = d2.topk(k, dim=-1, largest=False)  # ascending
        kdist = knn_d2[..., -1:]
        reach = torch.maximum(knn_d2, kdist)  # == kdist: the point's own k-distance
        lrd = k / torch.nan_to_num(reach.mean(dim=-1), nan=1e-6)  # B×N
        ratios = lrd.gather(1, knn_idx.flatten(1)).view(b, n, k) / lrd[..., None]
        scores = ratios.mean(dim=-1)
        threshold = torch.quantile(scores, 1.0 - contamination, dim=-1, keepdim=True)
        return scores > threshold, scores


def outlier_grid(outliers: Tensor, grid: tuple[int, int], official_indexing: bool = False
                 ) -> Tensor:
    """Outlier flags on the patch grid (SC-CLIP official code, clip/model.py:275).

    Args:
        outliers: B×N bool, tokens row-major (N = h·w).
        grid: (h, w).
        official_indexing: place token t at (t // h, t % h) as the official code does (right on
            square grids only); False: row-major (t // w, t % w).

    Returns:
        B×h×w bool.

    Raises:
        ValueError: with ``official_indexing``, an outlier mapped off the grid (where the official
            code raises an IndexError).
    """
    b = outliers.shape[0]
    h, w = grid
    if not official_indexing or h == w:
        return outliers.reshape(b, h, w)
    image, t = outliers.nonzero(as_tuple=True)
    rows, cols = t // h, t % h
    if bool((rows >= h).any()) or bool((cols >= w).any()):
        raise ValueError(f"head_options.official_indexing=True on a {h}x{w} patch grid maps an "
                         "outlier off the grid (the official SC-CLIP code raises an IndexError "
                         "here, clip/model.py:275, 357); use official_indexing=False")
    mask = torch.zeros(b, h, w, dtype=torch.bool, device=outliers.device)
    mask[image, rows, cols] = True
    return mask


def repair_outliers(tokens: Tensor, outliers: Tensor) -> Tensor:
    """Replace each outlier by the mean of its valid 3×3 neighbours
    (SC-CLIP official code, clip/model.py:348-373).

    A neighbour is valid when it is inside the grid and not an outlier itself (zero padding adds
    nothing to the sum or the count); an outlier without a valid neighbour keeps its value.

    Args:
        tokens: B×N×C patch tokens, row-major (no CLS).
        outliers: B×h×w bool (h·w = N).

    Returns:
        B×N×C fp32 tokens (autocast off).
    """
    b, n, c = tokens.shape
    h, w = outliers.shape[-2:]
    with _fp32(tokens.device):
        fmap = tokens.float().reshape(b, h, w, c)
        keep = (~outliers).float()[..., None]  # B×h×w×1
        masked = F.pad(fmap * keep, (0, 0, 1, 1, 1, 1))  # B×(h+2)×(w+2)×C
        valid = F.pad(keep, (0, 0, 1, 1, 1, 1))
        total = torch.zeros_like(fmap)
        count = torch.zeros_like(keep)
        for dy in range(3):
            for dx in range(3):
                if dy == 1 and dx == 1:  # the centre is not its own neighbour (model.py:354)
                    continue
                total = total + masked[:, dy:dy + h, dx:dx + w]
                count = count + valid[:, dy:dy + h, dx:dx + w]
        update = outliers[..., None] & (count > 0)
        repaired = torch.where(update, total / count.clamp_min(1), fmap)
        return repaired.reshape(b, n, c)


# --------------------------------------------------------------------------- affinities


def cosine_affinity(tokens: Tensor) -> Tensor:
    """Cosine similarity of raw residual tokens
    (SC-CLIP official code, clip/model.py:280-286, 293-295).

    ``x / ‖x‖`` without an epsilon, as the official code.

    Args:
        tokens: B×N×C.

    Returns:
        B×N×N fp32 (autocast off).
    """
    with _fp32(tokens.device):
        x = tokens.float()
        x = x / x.norm(dim=-1, keepdim=True)
        return x @ x.transpose(1, 2)


def threshold_affinity(affinity: Tensor, threshold: float = AFFINITY_THRESHOLD) -> Tensor:
    """Entries below ``threshold`` set to 0 (SC-CLIP official code, clip/model.py:287, 296).

    Args:
        affinity: B×N×N.

    Returns:
        B×N×N, a new tensor.
    """
    return affinity.masked_fill(affinity < threshold, 0.0)


def aggregate(tokens: Tensor, affinity: Tensor) -> Tensor:
    """``(A / (rowsum A + 1e-6)) @ z`` (SC-CLIP official code, clip/model.py:343-346).

    Args:
        tokens: B×N×C.
        affinity: B×N×N.

    Returns:
        B×N×C fp32 (autocast off).
    """
    with _fp32(tokens.device):
        a = affinity.float()
        return (a / (a.sum(dim=-1, keepdim=True) + AGGREGATE_EPS)) @ tokens.float()


# --------------------------------------------------------------------------- the last block


def mid_attention(mid: Tensor, temperature: float = MID_TEMPERATURE) -> Tensor:
    """softmax((mid − mean(mid))·T) with negative entries masked to −inf
    (SC-CLIP official code, clip/model.py:329-332).

    The mean runs over all N×N entries of each image (diagonal included); the official code takes
    it over its batch of one. Entries exactly 0 after centring are kept. Shared by all heads.

    Args:
        mid: B×N×N unthresholded affinity.
        temperature: 3.0 in the official code.

    Returns:
        B×N×N fp32 row-stochastic weights (autocast off).
    """
    with _fp32(mid.device):
        m = mid.float()
        m = (m - m.mean(dim=(-2, -1), keepdim=True)) * temperature
        m = m.masked_fill(m < 0.0, float("-inf"))
        return m.softmax(dim=-1)


def calibrated_attention(block: nn.Module, x: Tensor, mid_weights: Tensor) -> Tensor:
    """The last block's attention branch with the shared mid attention, no residual, no FFN
    (SC-CLIP official code, clip/model.py:318-341).

    q, k, v from ``ln_1(x)`` and ``in_proj``; per head
    attn = (mid_weights + softmax((k·kᵀ)·head_dim^-0.5)) / 2; out_proj(attn·v) (then ``ls_1``,
    the identity without LayerScale).

    Args:
        block: the last residual block.
        x: B×N×W patch tokens (no CLS).
        mid_weights: B×N×N from :func:`mid_attention`.

    Returns:
        B×N×W fp32 (autocast off).
    """
    with _fp32(x.device):
        _, k, v = block_qkv(block, x.float())  # B×heads×N×head_dim
        scale = k.shape[-1] ** -0.5
        weights = ((k @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
        weights = (mid_weights[:, None] + weights) / 2
        out = weights @ v
        b, heads, n, d = out.shape
        out = out.transpose(1, 2).reshape(b, n, heads * d)
        return block.ls_1(block.attn.out_proj(out))


# --------------------------------------------------------------------------- the head


class SCCLIPHead(nn.Module):
    """SC-CLIP as a feature head (``teacher.head=scclip``); see the module docstring.

    Args:
        official_indexing: locate outliers as the official code does, (t // rows, t % rows),
            instead of row-major; the same on square grids.
        pre_adjust_idx, post_adjust_idx, multi_start_idx, multi_end_idx: 0-based block indices
            (official 8, 3, 3, 10); None derives them from the depth
            (:func:`default_block_indices`).
        affinity_threshold: the official ``beta`` 0.4.
        res_cls: the CLS term's weight, 0.3.
        lof_neighbors: LOF k, 30 (capped at N−1).
        contamination: the LOF outlier fraction, 0.05.
        mid_temperature: 3.0.
    """

    def __init__(self, official_indexing: bool = False, pre_adjust_idx: int | None = None,
                 post_adjust_idx: int | None = None, multi_start_idx: int | None = None,
                 multi_end_idx: int | None = None,
                 affinity_threshold: float = AFFINITY_THRESHOLD, res_cls: float = RES_CLS,
                 lof_neighbors: int = LOF_NEIGHBORS, contamination: float = CONTAMINATION,
                 mid_temperature: float = MID_TEMPERATURE) -> None:
        super().__init__()
        for name, value in (("pre_adjust_idx", pre_adjust_idx),
                            ("post_adjust_idx", post_adjust_idx),
                            ("multi_start_idx", multi_start_idx),
                            ("multi_end_idx", multi_end_idx)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ValueError(f"head_options.{name}={value!r}: a block index >= 0 or null")
        if int(lof_neighbors) < 1:
            raise ValueError(f"head_options.lof_neighbors={lof_neighbors!r}: at least 1")
        if not 0.0 < float(contamination) < 1.0:
            raise ValueError(f"head_options.contamination={contamination!r}: in (0, 1)")
        self.official_indexing = bool(official_indexing)
        self.options = {"pre": pre_adjust_idx, "post": post_adjust_idx,
                        "multi_start": multi_start_idx, "multi_end": multi_end_idx}
        self.affinity_threshold = float(affinity_threshold)
        self.res_cls = float(res_cls)
        self.lof_neighbors = int(lof_neighbors)
        self.contamination = float(contamination)
        self.mid_temperature = float(mid_temperature)

    def extra_repr(self) -> str:
        return (f"official_indexing={self.official_indexing}, options={self.options}, "
                f"threshold={self.affinity_threshold}, res_cls={self.res_cls}, "
                f"k={self.lof_neighbors}, contamination={self.contamination}, "
                f"mid_temperature={self.mid_temperature}")

    def block_indices(self, depth: int) -> BlockIndices:
        """The indices for an L-block tower: the options, the depth-derived defaults elsewhere."""
        chosen = asdict(default_block_indices(depth))
        chosen.update({name: value for name, value in self.options.items() if value is not None})
        idx = BlockIndices(**chosen)
        if not (idx.pre <= depth - 2 and idx.post <= depth - 2
                and 0 <= idx.multi_start < idx.multi_end <= depth - 1):
            raise ValueError(
                f"head=scclip block indices pre={idx.pre}, post={idx.post}, "
                f"multi=[{idx.multi_start}, {idx.multi_end}) do not fit a {depth}-block tower: "
                f"pre and post <= {depth - 2}, 0 <= multi_start < multi_end <= {depth - 1}")
        return idx

    def features_and_keys(self, clip: nn.Module, images: Tensor, with_keys: bool
                          ) -> tuple[Tensor, Tensor | None]:
        """SC-CLIP's dense features (and last-block keys) for a batch.

        Args:
            clip: the :class:`src.models.dense_clip.DenseCLIP` (a ViT).
            images: B×3×H×W normalised images.
            with_keys: also return the keys for key smoothing.

        Returns:
            (B×D×h×w L2-normalised fp32 features, B×(h·w)×W keys of the repaired F[L−2] patch
            tokens, or None).
        """
        idx = self.block_indices(clip.num_blocks)
        # F[i] is the output of block i = the tokens entering block i + 1 (model.py:269-271).
        wanted = idx.read
        entering, (h, w) = clip.tokens_entering(images, [i + 1 for i in wanted])
        outputs = dict(zip(wanted, entering))
        block = clip.blocks[-1]
        visual = clip.clip.visual

        with _fp32(images.device):
            anomaly = outputs[idx.anomaly].float()
            cls = anomaly[:, :1]  # c = F[L-2][CLS] (model.py:273)
            outliers, _ = lof_outliers(anomaly[:, 1:], self.lof_neighbors, self.contamination)
            on_grid = outlier_grid(outliers, (h, w), self.official_indexing)
            repaired = repair_outliers(anomaly[:, 1:], on_grid)  # model.py:276-278

            pre_tokens = repair_outliers(outputs[idx.pre][:, 1:], on_grid)  # model.py:280-283
            mid = cosine_affinity(pre_tokens)  # model.py:284-286
            pre = threshold_affinity(mid, self.affinity_threshold)  # model.py:287
            post = threshold_affinity(cosine_affinity(outputs[idx.post][:, 1:]),
                                      self.affinity_threshold)  # model.py:293-296
            weights = mid_attention(mid, self.mid_temperature)

            x = aggregate(repaired, pre)  # model.py:288
            x = calibrated_attention(block, x, weights) + self.res_cls * cls  # model.py:290-291
            x = aggregate(x, post)  # model.py:297

            multi = torch.zeros_like(anomaly)  # model.py:299-301: a SUM, all tokens, no repair
            for i in range(idx.multi_start, idx.multi_end):
                multi = multi + outputs[i].float()
            r = calibrated_attention(block, multi[:, 1:], weights) + self.res_cls * multi[:, :1]
            x = x + aggregate(r, post)  # model.py:302-306

            feats = visual.ln_post(x) @ visual.proj  # model.py:309-310
            feats = feats.transpose(1, 2).reshape(images.shape[0], -1, h, w)
            feats = F.normalize(feats.float(), dim=1)
        keys = clip.last_block_keys(repaired).float() if with_keys else None
        return feats, keys


__all__ = ["BlockIndices", "SCCLIPHead", "aggregate", "calibrated_attention", "cosine_affinity",
           "default_block_indices", "lof_outliers", "mid_attention", "outlier_grid",
           "repair_outliers", "threshold_affinity"]
