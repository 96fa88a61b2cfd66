"""The MaskCLIP teacher against plain-torch references written out here."""

from __future__ import annotations

import math
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from torch import nn

from src.models.clip_loading import resolve_clip
from src.models.dense_clip import check_tower
from src.models.teacher import MaskCLIPTeacher

ASSETS = Path(__file__).parent / "assets"


def randomize_(module: nn.Module, scale: float = 0.1) -> nn.Module:
    """Perturb every parameter (LayerNorm gains, zero-init biases...) so the reference checks them."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


# ---------------------------------------------------------------- plain-torch references
def ref_layer_norm(x, ln):
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def ref_attention(x, attn, heads):
    """Standard multi-head self-attention, batch-first, from the raw weights."""
    b, n, width = x.shape
    q, k, v = (x @ attn.in_proj_weight.T + attn.in_proj_bias).split(width, dim=-1)
    split = lambda t: t.reshape(b, n, heads, width // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(width // heads), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, n, width)
    return out @ attn.out_proj.weight.T + attn.out_proj.bias


def ref_mlp(x, mlp, quick_gelu):
    h = x @ mlp.c_fc.weight.T + mlp.c_fc.bias
    h = h * torch.sigmoid(1.702 * h) if quick_gelu else F.gelu(h)
    return h @ mlp.c_proj.weight.T + mlp.c_proj.bias


def ls(block, name, x):
    gamma = getattr(block, name)
    return x * gamma.gamma if hasattr(gamma, "gamma") else x


def ref_vit_dense(visual, images, keep_residual=True, keep_ffn=True, quick_gelu=False):
    """MaskCLIP's ViT dense features (official code, §1), all in plain torch."""
    ps = visual.patch_size[0]
    x = F.conv2d(images, visual.conv1.weight, stride=ps)
    b, width, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(b, 1, width), x], dim=1)
    pos = visual.positional_embedding
    g0 = visual.grid_size
    grid = pos[1:].reshape(1, g0[0], g0[1], width).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
    pos = torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(gh * gw, width)])
    x = ref_layer_norm(x + pos, visual.ln_pre)
    blocks = visual.transformer.resblocks
    heads = blocks[0].attn.num_heads
    for block in blocks[:-1]:
        x = x + ls(block, "ls_1", ref_attention(ref_layer_norm(x, block.ln_1), block.attn, heads))
        x = x + ls(block, "ls_2", ref_mlp(ref_layer_norm(x, block.ln_2), block.mlp, quick_gelu))
    last = blocks[-1]
    y = ref_layer_norm(x, last.ln_1)
    w_v = last.attn.in_proj_weight[2 * width:]
    b_v = last.attn.in_proj_bias[2 * width:]
    v = (y @ w_v.T + b_v) @ last.attn.out_proj.weight.T + last.attn.out_proj.bias
    v = ls(last, "ls_1", v)
    if keep_residual:
        v = v + x
    if keep_ffn:
        v = v + ls(last, "ls_2", ref_mlp(ref_layer_norm(v, last.ln_2), last.mlp, quick_gelu))
    v = ref_layer_norm(v, visual.ln_post)[:, 1:] @ visual.proj
    v = F.normalize(v, dim=-1)
    return v.transpose(1, 2).reshape(b, -1, gh, gw)


def ref_resnet_dense(visual, images):
    """MaskCLIP's ResNet dense features (§2): layer4 → v_proj → c_proj per pixel."""
    x = visual.stem(images)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = layer(x)
    pool = visual.attnpool
    v = torch.einsum("bchw,oc->bohw", x, pool.v_proj.weight) + pool.v_proj.bias[:, None, None]
    f = torch.einsum("bchw,oc->bohw", v, pool.c_proj.weight) + pool.c_proj.bias[:, None, None]
    return F.normalize(f, dim=1)


# ---------------------------------------------------------------- dense features
@pytest.mark.parametrize("keep", [(True, True), (False, False), (True, False)])
def test_vit_dense_features_match_reference(keep):
    teacher = MaskCLIPTeacher("tiny-vit", None, cache_dir=None, keep_residual=keep[0],
                              keep_ffn=keep[1])
    randomize_(teacher.clip.visual)
    images = torch.randn(2, 3, 40, 72)  # non-square, not the 64² the model was built for
    out = teacher.dense_features(images)
    ref = ref_vit_dense(teacher.clip.visual, images, *keep)
    assert out.shape == (2, 32, 5, 9)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_vit_layerscale_applied():
    open_clip.add_model_config(ASSETS / "tiny-vit-ls.json")
    teacher = MaskCLIPTeacher("tiny-vit-ls", None, cache_dir=None)
    last = teacher.clip.visual.transformer.resblocks[-1]
    assert hasattr(last.ls_1, "gamma")
    randomize_(teacher.clip.visual, 0.3)
    images = torch.randn(1, 3, 48, 32)
    torch.testing.assert_close(teacher.dense_features(images),
                               ref_vit_dense(teacher.clip.visual, images), atol=1e-5, rtol=1e-4)


def test_vit_pads_bottom_right_to_patch_multiple(tiny_vit):
    images = torch.randn(1, 3, 37, 50)
    padded = F.pad(images, (0, 6, 0, 3))  # to 40×56
    torch.testing.assert_close(tiny_vit.dense_features(images), tiny_vit.dense_features(padded))
    assert tiny_vit.dense_features(images).shape[-2:] == (5, 7)


def test_resnet_dense_features_match_reference(tiny_rn):
    randomize_(tiny_rn.clip.visual.attnpool)
    images = torch.randn(2, 3, 96, 160)
    out = tiny_rn.dense_features(images)
    assert out.shape == (2, 32, 3, 5)
    torch.testing.assert_close(out, ref_resnet_dense(tiny_rn.clip.visual, images),
                               atol=1e-5, rtol=1e-4)


def test_resnet_keys_are_k_proj_of_layer4(tiny_rn):
    images = torch.randn(1, 3, 64, 96)
    _, keys = tiny_rn.dense_features_and_keys(images)
    visual = tiny_rn.clip.visual
    x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))
    expected = visual.attnpool.k_proj(x.flatten(2).transpose(1, 2))
    torch.testing.assert_close(keys, expected)


def test_vit_keys_are_last_block_keys_after_out_proj(tiny_vit):
    """The official quirk (§1): key smoothing uses out_proj(k) of the last block."""
    visual = tiny_vit.clip.visual
    images = torch.randn(1, 3, 32, 40)
    (tokens,), _ = tiny_vit.features.tokens_entering(images, [-1])
    last = visual.transformer.resblocks[-1]
    width = tokens.shape[-1]
    y = ref_layer_norm(tokens, last.ln_1)
    k = y @ last.attn.in_proj_weight[width:2 * width].T + last.attn.in_proj_bias[width:2 * width]
    expected = (k @ last.attn.out_proj.weight.T + last.attn.out_proj.bias)[:, 1:]
    torch.testing.assert_close(tiny_vit.dense_features_and_keys(images)[1], expected)


def test_value_path_is_local(tiny_vit):
    """Changing one token's input to the last block changes only that token's output."""
    randomize_(tiny_vit.clip.visual)
    x = torch.randn(1, 1 + 20, 48)
    base = tiny_vit.features.value_path(x)
    perturbed_x = x.clone()
    perturbed_x[:, 7] += torch.randn(48)
    out = tiny_vit.features.value_path(perturbed_x)
    changed = (out - base).abs().amax(dim=-1)[0] > 1e-6
    assert changed.nonzero().flatten().tolist() == [7]


def test_naive_head_is_clip_per_token_output_and_differs_from_value_path():
    """head=naive is open_clip's own per-token output (last block intact, ln_post, proj)."""
    naive_teacher = MaskCLIPTeacher("tiny-vit", None, cache_dir=None, head="naive")
    randomize_(naive_teacher.clip.visual)
    visual = naive_teacher.clip.visual
    images = torch.randn(1, 3, 64, 64)
    visual.output_tokens = True
    _, tokens = visual(images)
    visual.output_tokens = False
    naive = F.normalize(tokens @ visual.proj, dim=-1).transpose(1, 2).reshape(1, -1, 8, 8)
    torch.testing.assert_close(naive_teacher.dense_features(images), naive, atol=1e-5, rtol=1e-4)
    naive_teacher.head = "maskclip"
    assert not torch.allclose(naive_teacher.dense_features(images), naive, atol=1e-3)


def test_head_validation(tiny_rn):
    with pytest.raises(ValueError, match="unknown teacher head"):
        MaskCLIPTeacher("tiny-vit", None, cache_dir=None, head="sclip-ish")
    with pytest.raises(ValueError, match="needs a ViT"):
        MaskCLIPTeacher("tiny-rn", None, cache_dir=None, head="naive")


# ---------------------------------------------------------------- frozen
def test_teacher_is_frozen(tiny_vit):
    assert not any(p.requires_grad for p in tiny_vit.parameters())
    tiny_vit.train()
    assert not tiny_vit.training
    assert all(not m.training for m in tiny_vit.modules())
    wrapper = nn.ModuleDict({"teacher": tiny_vit})
    wrapper.train()
    assert not tiny_vit.training


def test_teacher_builds_no_graph(tiny_vit):
    images = torch.randn(1, 3, 32, 32, requires_grad=True)
    assert not tiny_vit.dense_features(images).requires_grad


# ---------------------------------------------------------------- towers
def test_unsupported_towers_get_clear_error():
    open_clip.add_model_config(ASSETS / "tiny-vit-avgpool.json")
    with pytest.raises(ValueError, match="average-pool.*Supported: open_clip VisionTransformer"):
        MaskCLIPTeacher("tiny-vit-avgpool", None, cache_dir=None)
    with pytest.raises(ValueError, match="ModifiedResNet"):
        check_tower(nn.Identity())


# ---------------------------------------------------------------- weights and activation
def test_openai_tag_picks_quickgelu_architecture():
    spec = resolve_clip("ViT-B-16", "openai")
    assert spec.arch == "ViT-B-16-quickgelu" and spec.quick_gelu
    assert resolve_clip("RN50", "openai").arch == "RN50-quickgelu"
    laion = resolve_clip("ViT-B-16", "laion2b_s34b_b88k")
    assert laion.arch == "ViT-B-16" and not laion.quick_gelu


def test_unknown_tag_and_missing_file_errors(tmp_path):
    with pytest.raises(ValueError, match="available"):
        resolve_clip("ViT-B-16", "no_such_tag")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_clip("ViT-B-16", str(tmp_path / "missing.pt"))


def test_offline_tag_fails_fast_with_hint():
    with pytest.raises(RuntimeError, match="teacher.pretrained=/path"):
        MaskCLIPTeacher("RN50", "openai", cache_dir=None)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_checkpoint_roundtrip(tmp_path, suffix):
    source = MaskCLIPTeacher("tiny-vit", None, cache_dir=None)
    randomize_(source.clip)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pt":
        torch.save(source.clip.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.clip.state_dict().items()}, str(path))
    loaded = MaskCLIPTeacher("tiny-vit", str(path), cache_dir=None)
    images = torch.randn(1, 3, 48, 40)
    torch.testing.assert_close(loaded.dense_features(images), source.dense_features(images),
                               rtol=0, atol=0)
    assert loaded.spec.weights_id and str(path.resolve()) in loaded.spec.weights_id


def test_quick_gelu_switch_matches_the_weights(tmp_path):
    """Weights trained with QuickGELU reproduce only when the teacher builds QuickGELU."""
    source = MaskCLIPTeacher("tiny-vit", None, quick_gelu=True, cache_dir=None)
    assert isinstance(source.clip.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    randomize_(source.clip, 0.5)
    path = tmp_path / "qg.pt"
    torch.save(source.clip.state_dict(), path)
    images = torch.randn(1, 3, 40, 40)
    ref = ref_vit_dense(source.clip.visual, images, quick_gelu=True)
    right = MaskCLIPTeacher("tiny-vit", str(path), quick_gelu=True, cache_dir=None)
    wrong = MaskCLIPTeacher("tiny-vit", str(path), quick_gelu=False, cache_dir=None)
    assert isinstance(right.clip.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert isinstance(wrong.clip.visual.transformer.resblocks[0].mlp.gelu, nn.GELU)
    torch.testing.assert_close(right.dense_features(images), ref, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(wrong.dense_features(images), ref, atol=1e-4)


# ---------------------------------------------------------------- logits
def test_forward_is_softmax_of_upsampled_cosines(tiny_vit):
    tiny_vit.set_vocabulary(["cat", "dog", "grass"], "single")
    images = torch.randn(2, 3, 40, 48)
    probs = tiny_vit(images)
    feats = tiny_vit.dense_features(images)
    cos = torch.einsum("bdhw,cd->bchw", feats, tiny_vit.query_embeddings)
    up = F.interpolate(cos, size=(40, 48), mode="bilinear", align_corners=False)
    torch.testing.assert_close(probs, torch.softmax(100 * up, dim=1), atol=1e-5, rtol=1e-4)
    assert probs.shape == (2, 3, 40, 48)


def test_synonyms_max_merged_after_softmax(tiny_vit):
    tiny_vit.set_vocabulary(["cat", "sofa: sofa, couch, settee"], "single")
    images = torch.randn(1, 3, 32, 32)
    probs = tiny_vit(images)
    feats = tiny_vit.dense_features(images)
    cos = torch.einsum("bdhw,qd->bqhw", feats, tiny_vit.query_embeddings)
    q = torch.softmax(100 * F.interpolate(cos, size=(32, 32), mode="bilinear"), dim=1)
    expected = torch.stack([q[:, 0], q[:, 1:].amax(dim=1)], dim=1)
    torch.testing.assert_close(probs, expected)
    # one embedding per class for the student: the renormalised synonym mean
    emb = tiny_vit.class_embeddings
    torch.testing.assert_close(emb[1], F.normalize(tiny_vit.query_embeddings[1:].mean(0), dim=0))


def test_model_temperature(tiny_vit):
    from src.models.refine import RefineConfig

    tiny_vit.refine = RefineConfig(temperature="model")
    with torch.no_grad():
        tiny_vit.clip.logit_scale.fill_(math.log(7.0))
    assert tiny_vit.resolved_temperature() == pytest.approx(7.0, rel=1e-5)


def test_compiled_dense_pass_matches_eager_and_still_pickles(tiny_vit):
    """teacher.compile_dense=true runs the same dense pass through torch.compile; the compiled function
    is rebuilt after a copy (DDP spawn pickles the module)."""
    import copy

    x = torch.randn(2, 3, 64, 48)
    eager_feats, eager_keys = tiny_vit.dense_features_and_keys(x)
    tiny_vit.compile_dense = True
    try:
        feats, keys = tiny_vit.dense_features_and_keys(x)
        assert tiny_vit.features._compiled_dense is not None
        twin = copy.deepcopy(tiny_vit)
        assert twin.features._compiled_dense is None
        twin_feats = twin.dense_features(x)
    finally:
        tiny_vit.compile_dense, tiny_vit.features._compiled_dense = False, None
        torch._dynamo.reset()
    torch.testing.assert_close(feats, eager_feats, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(keys, eager_keys, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(twin_feats, eager_feats, atol=1e-5, rtol=1e-4)


def test_resized_positions_are_cached_until_the_weights_change(tiny_vit):
    """The resized positional embedding is reused across calls, and an in-place weight change
    (load_state_dict copies in place) is seen at once."""
    x = torch.randn(1, 3, 64, 96)  # not the native grid: the embedding is resized
    first = tiny_vit.dense_features(x)
    assert len(tiny_vit.features._position_cache) == 1
    torch.testing.assert_close(tiny_vit.dense_features(x), first)
    assert len(tiny_vit.features._position_cache) == 1  # reused, not recomputed

    # A state dict in the layout written before the teacher was split (``clip.*``, not
    # ``features.clip.*``) still loads.
    state = {k.removeprefix("features."): v.clone() for k, v in tiny_vit.state_dict().items()}
    state["clip.visual.positional_embedding"].mul_(3.0)
    tiny_vit.load_state_dict(state)
    torch.testing.assert_close(tiny_vit.clip.visual.positional_embedding,
                               state["clip.visual.positional_embedding"])
    changed = tiny_vit.dense_features(x)
    tiny_vit.features._position_cache.clear()
    torch.testing.assert_close(changed, tiny_vit.dense_features(x))  # same as a fresh resize
    assert not torch.allclose(changed, first)


def test_in_place_softmax_matches_torch_and_only_when_asked(tiny_vit):
    from src.models.teacher import softmax_channels_

    scores = torch.randn(2, 5, 7, 3) * 40  # large logits
    reference = torch.softmax(scores, 1)
    for chunk in (1, 5 * 3, 5 * 3 * 2, 10**6):  # one row, a few rows, the whole image
        torch.testing.assert_close(softmax_channels_(scores.clone(), chunk), reference)
    tiny_vit.set_vocabulary([f"class {i}" for i in range(5)], "single")
    kept = scores.clone()
    probs = tiny_vit.scores_to_probs(kept)
    torch.testing.assert_close(kept, scores)  # the default leaves the caller's tensor alone
    owned = scores.clone()
    in_place = tiny_vit.scores_to_probs(owned, inplace=True)
    torch.testing.assert_close(in_place, probs)
    assert in_place.data_ptr() == owned.data_ptr()  # no second full-size map
