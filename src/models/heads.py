"""Training-free dense heads: what each method does to a CLIP ViT's last block.

Every head is one small function ``(block, x, grid) -> tokens`` over open_clip's stable parameter
names (``ln_1``, ``attn.in_proj_weight``/``in_proj_bias``, ``attn.out_proj``, ``ls_1``,
``ln_2``, ``mlp``, ``ls_2``); nothing is forked. ``x`` is B×N×W (batch first, N = 1 + h·w, CLS
first) entering the last block; the result is B×N×W tokens, before ``ln_post`` and ``proj``.

Following the peers' own code (SCLIP, ClearCLIP and NACLIP each patch ``clip/model.py``), the
attention logits use the plain head_dim^-0.5 scale per head, and CLS stays an ordinary key.

- ``maskclip`` (MaskCLIP §3.2, official code): the value path, v → out_proj, keeping the
  residual and the FFN (switchable).
- ``naive``: the unchanged last block on every token (the baseline MaskCLIP improves on).
- ``clearclip`` (ClearCLIP): softmax(q·qᵀ) over v → out_proj; residual and FFN dropped.
- ``sclip`` (SCLIP): correlative self-attention softmax(q·qᵀ) + softmax(k·kᵀ) over v (rows sum
  to 2, not renormalised) → out_proj; residual and FFN kept, as in SCLIP's own code.
- ``naclip`` (NACLIP): softmax(k·kᵀ·scale + Ω) over v → out_proj; residual and FFN dropped.
  Ω is a Gaussian on the patch grid (σ = 5 patches), peaking at 1, shared by all heads, and 0 in
  the CLS row and column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Head = Literal["maskclip", "naive", "clearclip", "sclip", "naclip",
               "scclip", "resclip", "proxyclip"]  # the last three: src.models.frontier
HEADS: tuple[str, ...] = ("maskclip", "naive", "clearclip", "sclip", "naclip")
NACLIP_SIGMA = 5.0


# --------------------------------------------------------------------------- building blocks


def block_qkv(block: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v of any ``block`` for the tokens x (B×N×W) entering it, each B×heads×N×head_dim."""
    attn = block.attn
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    b, n, _ = qkv.shape
    qkv = qkv.view(b, n, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def attention_weights(a: Tensor, b: Tensor, bias: Tensor | None = None) -> Tensor:
    """softmax(a·bᵀ·head_dim^-0.5 [+ bias]) per head: B×heads×N×N."""
    logits = (a * a.shape[-1] ** -0.5) @ b.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1)


def project_heads(block: nn.Module, weights: Tensor, v: Tensor) -> Tensor:
    """Attention ``weights`` over v, heads merged, then out_proj and LayerScale: B×N×W."""
    out = weights @ v  # B×heads×N×head_dim
    b, heads, n, d = out.shape
    out = out.transpose(1, 2).reshape(b, n, heads * d)
    return block.ls_1(block.attn.out_proj(out))


def feed_forward(block: nn.Module, x: Tensor) -> Tensor:
    """x + FFN(x), the second half of a block."""
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def gaussian_window(grid: tuple[int, int], sigma: float = NACLIP_SIGMA,
                    device: torch.device | None = None) -> Tensor:
    """NACLIP's Ω: (1+h·w)×(1+h·w), exp(−‖p−q‖²/(2σ²)) in patch units; CLS row and column 0."""
    h, w = grid
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                            indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], dim=1).float()
    window = torch.exp(-torch.cdist(pos, pos).square() / (2 * sigma * sigma))
    return F.pad(window, (1, 0, 1, 0))


# --------------------------------------------------------------------------- heads


def maskclip_tokens(block: nn.Module, x: Tensor, grid: tuple[int, int] | None = None, *,
                    keep_residual: bool = True, keep_ffn: bool = True) -> Tensor:
    """The value path: v → out_proj (+ residual) (+ FFN). Only v's slice is computed."""
    attn, width = block.attn, x.shape[-1]
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * width:], attn.in_proj_bias[2 * width:])
    out = block.ls_1(attn.out_proj(v))
    if keep_residual:
        out = out + x
    if keep_ffn:
        out = feed_forward(block, out)
    return out


def naive_tokens(block: nn.Module, x: Tensor, grid: tuple[int, int] | None = None,
                 **_: bool) -> Tensor:
    """The unchanged last block (open_clip's own forward)."""
    return block(x)


def clearclip_tokens(block: nn.Module, x: Tensor, grid: tuple[int, int] | None = None,
                     **_: bool) -> Tensor:
    """softmax(q·qᵀ)·v → out_proj; no residual, no FFN (ClearCLIP)."""
    q, _, v = block_qkv(block, x)
    return project_heads(block, attention_weights(q, q), v)


def sclip_tokens(block: nn.Module, x: Tensor, grid: tuple[int, int] | None = None,
                 **_: bool) -> Tensor:
    """(softmax(q·qᵀ) + softmax(k·kᵀ))·v → out_proj, + residual, + FFN (SCLIP's code)."""
    q, k, v = block_qkv(block, x)
    out = x + project_heads(block, attention_weights(q, q) + attention_weights(k, k), v)
    return feed_forward(block, out)


def naclip_tokens(block: nn.Module, x: Tensor, grid: tuple[int, int] | None = None, *,
                  sigma: float = NACLIP_SIGMA, **_: bool) -> Tensor:
    """softmax(k·kᵀ·scale + Ω)·v → out_proj; no residual, no FFN (NACLIP)."""
    if grid is None or grid[0] * grid[1] + 1 != x.shape[1]:
        raise ValueError("naclip needs the patch grid (h, w) with N = 1 + h·w tokens")
    _, k, v = block_qkv(block, x)
    omega = gaussian_window(grid, sigma, x.device).to(k.dtype)
    return project_heads(block, attention_weights(k, k, omega), v)


HEAD_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "maskclip": maskclip_tokens,
    "naive": naive_tokens,
    "clearclip": clearclip_tokens,
    "sclip": sclip_tokens,
    "naclip": naclip_tokens,
}


def check_head(head: str) -> None:
    """A last-block head of this module or a frontier head (src.models.frontier)."""
    from src.models.frontier import FRONTIER_HEADS

    if head not in HEAD_FUNCTIONS and head not in FRONTIER_HEADS:
        raise ValueError(f"unknown teacher head {head!r}; choose one of "
                         f"{list(HEADS) + list(FRONTIER_HEADS)} (teacher/head=<name>)")


__all__ = ["HEADS", "HEAD_FUNCTIONS", "Head", "attention_weights", "check_head",
           "clearclip_tokens", "feed_forward", "gaussian_window", "block_qkv",
           "maskclip_tokens", "naclip_tokens", "naive_tokens", "project_heads", "sclip_tokens"]
