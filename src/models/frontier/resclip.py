"""ResCLIP over NACLIP (CVPR 2025, arXiv 2411.15851), as its official code computes it.

ResCLIP (official code: yvhangyang/ResCLIP @ 0e085f7, README default ``wo_resi resclip 5``)
changes NACLIP's last block twice and needs the text queries and the image, so it is a *query
head* (``text_dependent = True``): :meth:`ResCLIPHead.query_scores` returns per-query cosine
scores, B×Q×h×w.

1. **RCS** (residual cross-correlation self-attention): the mean of the ordinary attention
   probabilities softmax(q·kᵀ·s) of blocks 5..8 (0-based, for a 12-block tower), per head, CLS
   included (:func:`rcs_attention`).
2. **Last block** (NACLIP, no residual, no FFN; :func:`resclip_attention`):
   P = softmax(τ_s·((1-λ_s)·k·kᵀ·s + λ_s·S) + Ω), then P = τ_r·((1-λ_r)·P + λ_r·A_rcs); rows sum
   to τ_r, with no renormalisation. Ω is NACLIP's Gaussian window (σ = 5 patches, peak 1), added
   after the SFR mixing and never multiplied by τ_s.
3. **First pass** (S absent): cosine scores with the queries → bilinear to the input → PAMR
   (10 iterations, dilations 8 and 16, driven by the image) → softmax(40·scores) over queries
   (:func:`first_pass_probabilities`).
4. **Label map** (:func:`label_map`): argmax over *queries* (synonyms are different labels);
   pixels whose max probability is below ``temp_thd`` get query 0; each patch-sized pixel block
   takes its most frequent label (ties: the smallest).
5. **SFR** (semantic feedback refinement, :func:`sfr_matrix`): M[i, j] = [label_i = label_j];
   same-label pairs whose straight path leaves the label (probed with the *global* step 1/m,
   :func:`path_valid`) are damped by exp(-cheb(i, j)/m); every row is smoothed by a 1-D Gaussian
   over the *flattened row-major* index (31 taps, σ 5, zero padding, :func:`smooth_rows`), ReLU'd
   and row-normalised; :func:`sfr_bias` embeds it with a zero CLS row/column, divides it by its
   max and casts it to **fp16**, so λ_s·S is an fp16 product (the official quirk, kept).
6. **Second pass**: step 2 with S and A_rcs; cosine scores with the queries.

Everything is computed per image (the official code is batch-1 only), so a batch equals its
images scored alone; non-square grids are handled row-major throughout (as the official code).

Geometry: :meth:`DenseCLIP.embed` pads the input bottom/right to a multiple of the patch size
(h = ⌈H/s⌉). The first pass therefore upsamples its grid scores to the padded size and crops
them back to H×W (pixel-aligned), PAMR runs on the H×W image, and a partial bottom/right block
takes the mode over the pixels it has. When H and W are multiples of s (every official crop,
and every input the pipeline gives with ``inference.align=crop``) this is exactly the official
computation, which instead floors the grid (conv1 ignores the trailing pixels) and stretches it
over H×W.

Precision: the blocks before the last run as the caller runs them (GPU autocast included;
the official code runs everything in fp16). From the tokens they produce on, the head switches
autocast off and works in fp32: the q/k of the RCS blocks and their attention probabilities,
the last block's q/k/v, attention and value path, ``ln_post``/``proj``, cosine scores, PAMR,
the softmax, threshold and argmax, the block mode and the SFR matrix. The hard decisions
(argmax, ``temp_thd``, mode, path test) are thus taken on fp32 values. The one fp16 step is the
official one: S/max(S) cast to fp16 and multiplied by λ_s in fp16.

Citations "ResCLIP official code, <file>:<lines>" refer to the commit above.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.heads import attention_weights, gaussian_window, project_heads
from src.models.postproc import PostprocConfig, pamr

#: RCS blocks of the official code (0-based; layers 6-9), hard-coded whatever the depth.
OFFICIAL_RCS_BLOCKS: tuple[int, ...] = (5, 6, 7, 8)
#: The first pass's PAMR (ResCLIP official code, clip/model.py:279:
#: ``PAMR(10, dilations=(8, 16))``).
PAMR_ITERATIONS = 10
PAMR_DILATIONS: tuple[int, ...] = (8, 16)
#: Added to each SFR row sum before the division (clip/model.py:233-234).
SFR_EPS = 1e-8


# --------------------------------------------------------------------------- RCS
def default_rcs_blocks(num_blocks: int) -> tuple[int, ...]:
    """The blocks whose attention RCS averages, for a tower of ``num_blocks`` blocks.

    Towers with at least 10 blocks use the official 5, 6, 7, 8 (ResCLIP official code,
    clip/model.py:326-329 hard-codes them, for ViT-L too). A shallower tower (the offline world's
    4 blocks, tiny-vit's 3) gets the same relative depth, blocks ⌊5L/12⌋ .. ⌊9L/12⌋-1 (at least
    one): 4 blocks → (1, 2), 3 → (1,), 2 → (0,). All lie before the last block.

    Raises:
        ValueError: a one-block tower has no block before the last.
    """
    if num_blocks >= 10:
        return OFFICIAL_RCS_BLOCKS
    if num_blocks < 2:
        raise ValueError("ResCLIP's RCS reads blocks before the last one; this tower has "
                         f"{num_blocks} block(s): set teacher.head_options.use_rcs=false")
    start = 5 * num_blocks // 12
    stop = max(start + 1, 9 * num_blocks // 12)
    return tuple(range(start, stop))


def resolve_rcs_blocks(blocks: Sequence[int] | None, num_blocks: int) -> tuple[int, ...]:
    """``rcs_blocks`` (None: :func:`default_rcs_blocks`) checked against the tower: 0-based
    indices of blocks before the last one, negatives counting from the end."""
    if blocks is None:
        return default_rcs_blocks(num_blocks)
    resolved = tuple(int(b) % num_blocks if int(b) < 0 else int(b) for b in blocks)
    if not resolved or any(not 0 <= b < num_blocks - 1 for b in resolved):
        raise ValueError(f"teacher.head_options.rcs_blocks={list(blocks)}: 0-based indices of "
                         f"blocks before the last one, i.e. in [0, {num_blocks - 2}] for this "
                         f"{num_blocks}-block tower")
    return resolved


def rcs_attention(clip: nn.Module, tokens: Sequence[Tensor], blocks: Sequence[int]) -> Tensor:
    """A_rcs: the mean over ``blocks`` of softmax(q·kᵀ·head_dim^-0.5), per head, in fp32.

    ResCLIP official code, clip/model.py:317-323 (attention of every block, recomputed there by
    ``custom_attn`` from ``ln_1(x)`` and ``in_proj``) and :326-329 (the mean of 5..8).

    Args:
        clip: the DenseCLIP (``block_qkv``).
        tokens: per block of ``blocks``, the B×N×W tokens entering it (N = 1 + h·w).

    Returns:
        B×heads×N×N; every row sums to 1.
    """
    total = None
    for index, x in zip(blocks, tokens):
        q, k, _ = clip.block_qkv(index, x.float())
        weights = attention_weights(q.float(), k.float())
        total = weights if total is None else total + weights
    return total / len(blocks)


# --------------------------------------------------------------------------- last block
def resclip_attention(k: Tensor, omega: Tensor, sfr: Tensor | None = None,
                      sfr_weights: tuple[float, float] = (2.2, 0.7), rcs: Tensor | None = None,
                      rcs_weights: tuple[float, float] = (2.0, 0.3)) -> Tensor:
    """The last block's attention (ResCLIP official code, clip/model.py:473-494, ``resclip``).

    L = k·kᵀ·s; with S: L = τ_s·((1-λ_s)·L + λ_s·S), λ_s·S computed in S's dtype (fp16 from
    :func:`sfr_bias`); P = softmax(L + Ω); with A_rcs: P = τ_r·((1-λ_r)·P + λ_r·A_rcs).

    Args:
        k: B×heads×N×d keys (fp32).
        omega: N×N Gaussian window (zero CLS row and column), added after the SFR mixing.
        sfr: B×1×N×N SFR bias (:func:`sfr_bias`), or None (first pass / SFR off).
        rcs: B×heads×N×N RCS attention (:func:`rcs_attention`), or None (RCS off).

    Returns:
        B×heads×N×N attention; rows sum to τ_r with RCS (no renormalisation), to 1 without.
    """
    logits = (k @ k.transpose(-2, -1)) * k.shape[-1] ** -0.5
    if sfr is not None:
        tau_s, lam_s = sfr_weights
        # fp16 × Python float stays fp16 (clip/model.py:477-478 casts S, :484 multiplies).
        logits = tau_s * ((1 - lam_s) * logits + (lam_s * sfr).to(logits.dtype))
    weights = (logits + omega).softmax(dim=-1)
    if rcs is not None:
        tau_r, lam_r = rcs_weights
        weights = tau_r * ((1 - lam_r) * weights + lam_r * rcs)
    return weights


def joint_features(clip: nn.Module, weights: Tensor, v: Tensor, grid: tuple[int, int]) -> Tensor:
    """``out_proj(P·v)`` (no residual, no FFN), ``ln_post``, ``@ proj``, CLS dropped, L2-normed.

    ResCLIP official code, clip/model.py:356-367 (``wo_resi``, ``return_all``) and
    resclip_segmentor.py:77-80.

    Args:
        weights: B×heads×N×N attention; v: B×heads×N×d values.

    Returns:
        B×D×h×w unit-norm patch features.
    """
    visual = clip.clip.visual
    out = visual.ln_post(project_heads(clip.blocks[-1], weights, v))[:, 1:] @ visual.proj
    out = F.normalize(out.float(), dim=-1)
    return out.transpose(1, 2).reshape(out.shape[0], -1, *grid)


def cosine_scores(features: Tensor, queries: Tensor) -> Tensor:
    """B×D×h×w unit features · Q×D unit queries → B×Q×h×w cosine scores."""
    return torch.einsum("bdhw,qd->bqhw", features, queries.to(features.dtype))


# --------------------------------------------------------------------------- first pass
def first_pass_probabilities(images: Tensor, scores: Tensor, stride: int,
                             logit_scale: float) -> Tensor:
    """The first pass's query probabilities at input resolution (``create_logit_temp``).

    ResCLIP official code, clip/model.py:259-287: bilinear upsampling (align_corners=False) to
    the input, PAMR with 10 iterations and dilations (8, 16) driven by the image, then
    softmax(logit_scale·scores) over queries. The grid covers the input padded to a multiple of
    ``stride`` (see the module docstring), so it is upsampled to that size and cropped back.

    PAMR is :func:`src.models.postproc.pamr` (the same computation as ResCLIP's ``pamr.py``:
    unbiased std over the 18 samples of both dilations, softmax over the 16 ring neighbours,
    replicate padding), under its memory budget (tiled, identical result).

    Args:
        images: B×3×H×W normalised images.
        scores: B×Q×h×w first-pass cosine scores.

    Returns:
        B×Q×H×W probabilities (fp32).
    """
    height, width = images.shape[-2:]
    padded = (scores.shape[-2] * stride, scores.shape[-1] * stride)
    up = F.interpolate(scores.float(), size=padded, mode="bilinear", align_corners=False)
    up = up[..., :height, :width].contiguous()
    config = PostprocConfig(kind="pamr", iterations=PAMR_ITERATIONS, dilations=PAMR_DILATIONS)
    refined = pamr(images.float(), up, config)
    return (refined * logit_scale).softmax(dim=1)


def pixel_labels(probs: Tensor, temp_thd: float) -> Tensor:
    """Per-pixel query labels: argmax over queries, query 0 where the max is below ``temp_thd``.

    ResCLIP official code, clip/model.py:109-113 (ties: the first query).

    Args:
        probs: B×Q×H×W probabilities.

    Returns:
        B×H×W long.
    """
    labels = probs.argmax(dim=1)
    return labels.masked_fill(probs.amax(dim=1) < temp_thd, 0)


def block_mode(labels: Tensor, stride: int, grid: tuple[int, int], num_labels: int) -> Tensor:
    """The most frequent label of each ``stride``×``stride`` pixel block (ties: the smallest).

    ResCLIP official code, clip/model.py:120-124 (``unfold`` then ``torch.mode``). A partial
    bottom/right block (H or W not a multiple of ``stride``) counts the pixels it has.

    Args:
        labels: B×H×W long in [0, num_labels); grid: (h, w) = (⌈H/stride⌉, ⌈W/stride⌉).

    Returns:
        B×h×w long.
    """
    b, height, width = labels.shape
    h, w = grid
    rows = torch.arange(height, device=labels.device) // stride
    cols = torch.arange(width, device=labels.device) // stride
    cell = rows[:, None] * w + cols[None, :]  # H×W block index, row-major
    index = (labels * (h * w) + cell).flatten(1)
    counts = torch.zeros(b, num_labels * h * w, dtype=torch.long, device=labels.device)
    counts.scatter_add_(1, index, torch.ones_like(index))
    # argmax returns the first maximum: the smallest label among ties, as torch.mode.
    return counts.view(b, num_labels, h * w).argmax(dim=1).view(b, h, w)


def label_map(probs: Tensor, temp_thd: float, stride: int, grid: tuple[int, int]) -> Tensor:
    """The patch label map (``create_patch_matrix``): :func:`pixel_labels`, :func:`block_mode`.

    Args:
        probs: B×Q×H×W first-pass probabilities.

    Returns:
        B×h×w long query indices.
    """
    return block_mode(pixel_labels(probs, temp_thd), stride, grid, probs.shape[1])


# --------------------------------------------------------------------------- SFR
def grid_positions(grid: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """(row, col) of each patch, row-major: N×2 long."""
    h, w = grid
    index = torch.arange(h * w, device=device)
    return torch.stack([index // w, index % w], dim=1)


def chebyshev(grid: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """N×N Chebyshev distances between patches (in patches)."""
    pos = grid_positions(grid, device)
    return (pos[:, None, :] - pos[None, :, :]).abs().amax(dim=-1)


def path_valid(labels: Tensor) -> Tensor:
    """Whether every probed patch on the path i → j has label_i (``check_path``).

    ResCLIP official code, clip/model.py:130-148: with m = the largest Chebyshev distance on the
    grid (max(h, w) - 1) and t_k = linspace(0, 1, m + 1) in fp32, step k = 0..cheb(i, j) probes
    round_half_even(pos_i·(1 - t_k) + pos_j·t_k). The step is the GLOBAL 1/m, so a short pair
    only probes the part of the segment near i. Computed one step at a time (N×N per step, not
    N×N×(m+1)), and per axis: the probed row only depends on (row_i, row_j, k), the column on
    (col_i, col_j, k), each with the official fp32 arithmetic.

    Args:
        labels: B×h×w long.

    Returns:
        B×N×N bool.
    """
    b, h, w = labels.shape
    device = labels.device
    rows = torch.arange(h, device=device, dtype=torch.float32)
    cols = torch.arange(w, device=device, dtype=torch.float32)
    steps = chebyshev((h, w), device).view(h, w, h, w)
    m = max(h, w) - 1
    t = torch.linspace(0, 1, m + 1, device=device)  # fp32, as the official code
    own = labels[:, :, :, None, None]
    valid = torch.ones(b, h, w, h, w, dtype=torch.bool, device=device)
    for k in range(m + 1):
        probe_row = (rows[:, None] * (1 - t[k]) + rows[None, :] * t[k]).round().long()  # h×h
        probe_col = (cols[:, None] * (1 - t[k]) + cols[None, :] * t[k]).round().long()  # w×w
        probed = labels[:, probe_row[:, None, :, None], probe_col[None, :, None, :]]
        valid &= (probed == own) | (k > steps)
    return valid.view(b, h * w, h * w)


def smooth_rows(matrix: Tensor, sigma: float) -> Tensor:
    """Each row convolved in 1-D over its flattened row-major index with a normalised Gaussian.

    ResCLIP official code, clip/model.py:217-230: K = min(N, int(6σ + 1)) taps, forced odd, zero
    padding K//2. Not a 2-D blur: it mixes patches across grid-row breaks.

    Args:
        matrix: B×N×N.

    Returns:
        B×N×N.
    """
    b, n, _ = matrix.shape
    taps = min(n, int(6 * sigma + 1))
    taps = taps if taps % 2 == 1 else taps + 1
    offsets = torch.arange(taps, device=matrix.device) - taps // 2
    kernel = torch.exp(-(offsets ** 2) / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).to(matrix.dtype)
    out = F.conv1d(matrix.reshape(b * n, 1, n), kernel.view(1, 1, -1), padding=taps // 2)
    return out.view(b, n, n)


def sfr_matrix(labels: Tensor, sigma: float = 5.0, delete_same_entity: bool = True) -> Tensor:
    """The SFR matrix over the patches (``generate_attention_sfr``), CLS not included.

    ResCLIP official code, clip/model.py:152-240: M = [label_i = label_j] (diagonal 1); with
    ``delete_same_entity``, pairs whose path is not valid (:func:`path_valid`) are multiplied by
    exp(-cheb(i, j)/m); then :func:`smooth_rows`, ReLU, and each row divided by (its sum + 1e-8).

    Args:
        labels: B×h×w long label map.

    Returns:
        B×N×N fp32, N = h·w.
    """
    b, h, w = labels.shape
    flat = labels.flatten(1)
    matrix = (flat[:, :, None] == flat[:, None, :]).float()
    m = max(h, w) - 1
    if delete_same_entity and m > 0:
        steps = chebyshev((h, w), labels.device)
        decay = torch.exp(-steps / m)
        matrix = torch.where(path_valid(labels), matrix, matrix * decay)
    matrix = F.relu(smooth_rows(matrix, sigma))
    return matrix / (matrix.sum(dim=-1, keepdim=True) + SFR_EPS)


def sfr_bias(sfr: Tensor) -> Tensor:
    """S as the last block uses it: zero CLS row and column, divided by its max, in fp16.

    ResCLIP official code, clip/model.py:176-178 and :237 (the zero CLS row and column) and
    :477-478 (``attn_sfr / torch.max(attn_sfr)`` then ``.to(torch.float16)``); the max is per
    image here.

    Args:
        sfr: B×N×N from :func:`sfr_matrix`.

    Returns:
        B×1×(N+1)×(N+1) fp16, broadcast over the heads.
    """
    full = F.pad(sfr, (1, 0, 1, 0))
    full = full / full.flatten(1).amax(dim=1).view(-1, 1, 1)
    return full.to(torch.float16).unsqueeze(1)


# --------------------------------------------------------------------------- the head
class ResCLIPHead(nn.Module):
    """``teacher.head=resclip``: ResCLIP over NACLIP as a query head.

    Args:
        temp_thd: first-pass threshold; pixels whose max query probability is below it get
            query 0 in the label map (voc21 0.5).
        rcs: (τ_r, λ_r), the RCS scale and mixing weight (voc21 (2.0, 0.3)).
        sfr: (τ_s, λ_s), the SFR scale and mixing weight (voc21 (2.2, 0.7)).
        use_rcs, use_sfr: switch RCS / SFR off (the official config cannot: its switches are
            1-tuples, always truthy). Both off gives NACLIP's last block.
        rcs_blocks: 0-based blocks RCS averages; None → :func:`default_rcs_blocks`.
        first_pass_logit_scale: the first pass's softmax scale (official 40); None uses the
            teacher's temperature.
        gaussian_std: σ of NACLIP's window Ω and of the SFR row smoothing (official 5).
        delete_same_entity: the SFR path test (on in every official config).

    Defaults are the voc21 row of the official configs (configs/cfg_voc21.py).
    """

    text_dependent = True

    def __init__(self, temp_thd: float = 0.5, rcs: Sequence[float] = (2.0, 0.3),
                 sfr: Sequence[float] = (2.2, 0.7), use_rcs: bool = True, use_sfr: bool = True,
                 rcs_blocks: Sequence[int] | None = None,
                 first_pass_logit_scale: float | None = 40.0, gaussian_std: float = 5.0,
                 delete_same_entity: bool = True) -> None:
        super().__init__()
        self.rcs_weights = _pair(rcs, "rcs")
        self.sfr_weights = _pair(sfr, "sfr")
        if not 0.0 <= float(temp_thd) <= 1.0:
            raise ValueError(f"teacher.head_options.temp_thd={temp_thd}: a probability in [0, 1]")
        if float(gaussian_std) <= 0:
            raise ValueError(f"teacher.head_options.gaussian_std={gaussian_std}: must be > 0")
        if first_pass_logit_scale is not None and float(first_pass_logit_scale) <= 0:
            raise ValueError("teacher.head_options.first_pass_logit_scale must be > 0 or null")
        self.temp_thd = float(temp_thd)
        self.use_rcs, self.use_sfr = bool(use_rcs), bool(use_sfr)
        self.rcs_blocks = None if rcs_blocks is None else tuple(int(b) for b in rcs_blocks)
        self.first_pass_logit_scale = (None if first_pass_logit_scale is None
                                       else float(first_pass_logit_scale))
        self.gaussian_std = float(gaussian_std)
        self.delete_same_entity = bool(delete_same_entity)

    def extra_repr(self) -> str:
        return (f"temp_thd={self.temp_thd}, rcs={self.rcs_weights}, sfr={self.sfr_weights}, "
                f"use_rcs={self.use_rcs}, use_sfr={self.use_sfr}, rcs_blocks={self.rcs_blocks}")

    @torch.no_grad()
    def query_scores(self, clip: nn.Module, images: Tensor, query_embeddings: Tensor,
                     temperature: float) -> Tensor:
        """ResCLIP's second-pass cosine scores.

        Args:
            clip: the DenseCLIP (a ViT tower).
            images: B×3×H×W normalised images (also PAMR's guide).
            query_embeddings: Q×D unit-norm text embeddings.
            temperature: the teacher's softmax temperature, used by the first pass only when
                ``first_pass_logit_scale`` is None.

        Returns:
            B×Q×h×w fp32 cosine scores, (h, w) = (⌈H/s⌉, ⌈W/s⌉).
        """
        return self.stages(clip, images, query_embeddings, temperature)["scores"]

    @torch.no_grad()
    def stages(self, clip: nn.Module, images: Tensor, query_embeddings: Tensor,
               temperature: float) -> dict[str, Any]:
        """Every intermediate of :meth:`query_scores` (for inspection and tests).

        Returns:
            A dict: ``grid`` (h, w); ``rcs_blocks``; ``rcs`` B×heads×N×N (N = 1 + h·w);
            ``first_scores`` B×Q×h×w; ``first_probs`` B×Q×H×W; ``labels`` B×h×w;
            ``sfr`` B×(h·w)×(h·w) (patches only, before :func:`sfr_bias`); ``scores``
            B×Q×h×w. The entries of a switched-off mechanism are None.
        """
        last = clip.num_blocks - 1
        blocks = resolve_rcs_blocks(self.rcs_blocks, clip.num_blocks) if self.use_rcs else ()
        tokens, grid = clip.tokens_entering(images, [*blocks, last])
        out: dict[str, Any] = {"grid": grid, "rcs_blocks": blocks, "rcs": None,
                               "first_scores": None, "first_probs": None, "labels": None,
                               "sfr": None}
        # From here on fp32, whatever autocast the caller runs (see the module docstring).
        with torch.autocast(images.device.type, enabled=False):
            x = tokens[-1].float()
            queries = query_embeddings.float()
            rcs = rcs_attention(clip, tokens[:-1], blocks) if self.use_rcs else None
            _, k, v = clip.block_qkv(last, x)
            k, v = k.float(), v.float()
            omega = gaussian_window(grid, self.gaussian_std, x.device)
            sfr = None
            if self.use_sfr:
                weights = resclip_attention(k, omega, rcs=rcs, rcs_weights=self.rcs_weights)
                first = cosine_scores(joint_features(clip, weights, v, grid), queries)
                scale = (self.first_pass_logit_scale if self.first_pass_logit_scale is not None
                         else float(temperature))
                probs = first_pass_probabilities(images, first, clip.output_stride, scale)
                labels = label_map(probs, self.temp_thd, clip.output_stride, grid)
                matrix = sfr_matrix(labels, self.gaussian_std, self.delete_same_entity)
                sfr = sfr_bias(matrix)
                out.update(first_scores=first, first_probs=probs, labels=labels, sfr=matrix)
            weights = resclip_attention(k, omega, sfr, self.sfr_weights, rcs, self.rcs_weights)
            out["scores"] = cosine_scores(joint_features(clip, weights, v, grid), queries)
            out["rcs"] = rcs
        return out


def _pair(value: Sequence[float], name: str) -> tuple[float, float]:
    """(τ, λ) from a two-number option."""
    try:
        tau, lam = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"teacher.head_options.{name}={value!r}: two numbers [tau, lambda]"
                         ) from None
    return tau, lam


__all__ = ["OFFICIAL_RCS_BLOCKS", "ResCLIPHead", "block_mode", "chebyshev", "cosine_scores",
           "default_rcs_blocks", "first_pass_probabilities", "joint_features", "label_map",
           "path_valid", "pixel_labels", "rcs_attention", "resclip_attention",
           "resolve_rcs_blocks", "sfr_bias", "sfr_matrix", "smooth_rows"]
