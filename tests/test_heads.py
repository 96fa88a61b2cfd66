"""Training-free heads (MaskCLIP, ClearCLIP, SCLIP, NACLIP) against plain-torch references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from src.models.heads import HEADS, gaussian_window
from src.models.teacher import MaskCLIPTeacher
from tests.test_teacher import randomize_, ref_layer_norm, ref_mlp


# --------------------------------------------------------------------------- references
def ref_qkv_per_head(x, block):
    """[(q_h, k_h, v_h)] for each head h, each B×N×d, from the raw in_proj weights."""
    width = x.shape[-1]
    heads = block.attn.num_heads
    d = width // heads
    y = ref_layer_norm(x, block.ln_1)
    w, bias = block.attn.in_proj_weight, block.attn.in_proj_bias
    out = []
    for h in range(heads):
        rows = lambda part: slice(part * width + h * d, part * width + (h + 1) * d)  # noqa: E731
        out.append(tuple(y @ w[rows(p)].T + bias[rows(p)] for p in range(3)))
    return out, d


def ref_softmax_attention(a, b, d, bias=None):
    logits = a @ b.transpose(-1, -2) / math.sqrt(d)
    if bias is not None:
        logits = logits + bias
    return torch.softmax(logits, dim=-1)


def ref_out_proj(per_head_outputs, block):
    out = torch.cat(per_head_outputs, dim=-1)
    return out @ block.attn.out_proj.weight.T + block.attn.out_proj.bias


def ref_head(name, x, block, grid, quick_gelu=False, sigma=5.0):
    """Each peer's last block, written out head by head."""
    per_head, d = ref_qkv_per_head(x, block)
    if name == "clearclip":
        outs = [ref_softmax_attention(q, q, d) @ v for q, _, v in per_head]
        return ref_out_proj(outs, block)
    if name == "sclip":
        outs = [(ref_softmax_attention(q, q, d) + ref_softmax_attention(k, k, d)) @ v
                for q, k, v in per_head]
        y = x + ref_out_proj(outs, block)
        return y + ref_mlp(ref_layer_norm(y, block.ln_2), block.mlp, quick_gelu)
    if name == "naclip":
        h, w = grid
        n = 1 + h * w
        omega = torch.zeros(n, n)
        for i in range(h * w):
            for j in range(h * w):
                dist2 = (i // w - j // w) ** 2 + (i % w - j % w) ** 2
                omega[1 + i, 1 + j] = math.exp(-dist2 / (2 * sigma**2))
        outs = [ref_softmax_attention(k, k, d, omega) @ v for _, k, v in per_head]
        return ref_out_proj(outs, block)
    raise KeyError(name)


def _teacher(head):
    torch.manual_seed(0)
    teacher = MaskCLIPTeacher("tiny-vit", None, head=head, cache_dir=None)
    randomize_(teacher.clip.visual)
    return teacher


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("head", ["clearclip", "sclip", "naclip"])
def test_head_dense_features_match_reference(head):
    teacher = _teacher(head)
    images = torch.randn(2, 3, 48, 40)
    (tokens,), grid = teacher.features.tokens_entering(images, [-1])
    visual = teacher.clip.visual
    expected = ref_layer_norm(ref_head(head, tokens, teacher.features.blocks[-1], grid),
                              visual.ln_post)[:, 1:] @ visual.proj
    expected = F.normalize(expected.transpose(1, 2).reshape(2, -1, *grid), dim=1)
    torch.testing.assert_close(teacher.dense_features(images), expected, atol=2e-5, rtol=1e-4)


def test_heads_differ_from_each_other():
    images = torch.randn(1, 3, 48, 48)
    feats = {}
    for head in HEADS:
        feats[head] = _teacher(head).dense_features(images)
    names = list(feats)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not torch.allclose(feats[a], feats[b], atol=1e-4), (a, b)


def test_naclip_window_properties():
    omega = gaussian_window((3, 4), sigma=5.0)
    assert omega.shape == (13, 13)
    assert torch.equal(omega[0], torch.zeros(13)) and torch.equal(omega[:, 0], torch.zeros(13))
    patches = omega[1:, 1:]
    torch.testing.assert_close(patches.diagonal(), torch.ones(12))  # peaks at 1, unnormalised
    torch.testing.assert_close(patches, patches.T)
    # Patches (0,0) and (2,3): squared distance 4 + 9 = 13 patch units.
    torch.testing.assert_close(patches[0, 11], torch.tensor(math.exp(-13 / 50)))


def test_sclip_attention_rows_sum_to_two():
    from src.models.heads import attention_weights, block_qkv

    teacher = _teacher("sclip")
    x = torch.randn(1, 17, 48)
    q, k, _ = block_qkv(teacher.features.blocks[-1], x)
    rows = (attention_weights(q, q) + attention_weights(k, k)).sum(-1)
    torch.testing.assert_close(rows, torch.full_like(rows, 2.0))


def test_unknown_head_and_resnet_heads_fail_clearly():
    with pytest.raises(ValueError, match="teacher/head="):
        MaskCLIPTeacher("tiny-vit", None, head="nope", cache_dir=None)
    with pytest.raises(ValueError, match="needs a ViT"):
        MaskCLIPTeacher("tiny-rn", None, head="naclip", cache_dir=None)


@pytest.mark.parametrize("head", HEADS)
def test_refinements_work_on_top_of_every_head(head):
    from src.models.refine import RefineConfig

    teacher = _teacher(head)
    teacher.refine = RefineConfig(key_smoothing=True, prompt_denoising=True)
    teacher.set_vocabulary(["red", "green", "blue"], "single")
    probs = teacher(torch.randn(1, 3, 48, 48))
    assert probs.shape == (1, 3, 48, 48) and torch.isfinite(probs).all()
