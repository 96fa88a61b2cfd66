"""ProxyCLIP (teacher/head=proxyclip) against plain-torch references written out here.

A tiny timm ViT (patch 4, 8×8 native position grid, 2 blocks) is the proxy and the tiny-vit
CLIP (patch 8, 8×8 native grid, 3 blocks) the CLIP, both randomised. The references follow the
official description (docs: /work/shared/reference/frontier.md §3): DINO's op order with the +0.1
scale-factor position resize, the proxy attention computed image by image, the last CLIP block's
values resized to the proxy grid.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from src.models.clip_loading import WeightsUnavailableError
from src.models.frontier.proxyclip import ProxyCLIPHead, dino_position_table
from src.models.inference import InferenceConfig
from src.models.refine import key_smoothing
from src.models.teacher import MaskCLIPTeacher
from tests.test_teacher import randomize_, ref_attention, ref_layer_norm, ref_mlp

TINY = {"img_size": 32, "patch_size": 4, "depth": 2, "embed_dim": 24, "num_heads": 2}
PROXY = {"model": "vit_tiny_patch16_224", "pretrained": None, "allow_random_init": True,
         "kwargs": TINY}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # tiny-vit's own (OpenAI) statistics
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PROXY_MEAN = PROXY_STD = (0.5, 0.5, 0.5)  # vit_tiny_patch16_224's timm pretrained_cfg


def make_teacher(proxy=None, seed=0, **kwargs):
    torch.manual_seed(seed)
    teacher = MaskCLIPTeacher("tiny-vit", None, cache_dir=None, head="proxyclip",
                              position_resize="peers", proxy=dict(proxy or PROXY), **kwargs)
    randomize_(teacher.clip.visual)
    randomize_(teacher.features.frontier.proxy, 0.3)
    return teacher


@pytest.fixture(scope="module")
def teacher():
    return make_teacher()


# ---------------------------------------------------------------- plain-torch references
def ref_proxy_input(images):
    c = lambda v: torch.tensor(v).view(1, 3, 1, 1)  # noqa: E731
    return (images * c(CLIP_STD) + c(CLIP_MEAN) - c(PROXY_MEAN)) / c(PROXY_STD)


def ref_dino_pos(pos, native, rows, cols, square):
    """DINO's interpolate_pos_encoding: kept if the count matches and the input is square."""
    if rows * cols == native * native and square:
        return pos
    width = pos.shape[-1]
    grid = pos[:, 1:].reshape(1, native, native, width).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((rows + 0.1) / native, (cols + 0.1) / native),
                         mode="bicubic", align_corners=False)
    assert grid.shape[-2:] == (rows, cols)
    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, width)], 1)


def ref_dino_features(vit, x):
    """DINO ViT get_intermediate_layers(n=1) from the raw weights: B×C'×I×J."""
    p = vit.patch_embed.proj
    t = F.conv2d(x, p.weight, p.bias, stride=p.stride)
    b, width, rows, cols = t.shape
    t = torch.cat([vit.cls_token.expand(b, 1, width), t.flatten(2).transpose(1, 2)], dim=1)
    native = math.isqrt(vit.pos_embed.shape[1] - 1)
    t = t + ref_dino_pos(vit.pos_embed, native, rows, cols, x.shape[-2] == x.shape[-1])
    heads = vit.blocks[0].attn.num_heads
    for blk in vit.blocks:
        y = F.layer_norm(t, (width,), blk.norm1.weight, blk.norm1.bias, blk.norm1.eps)
        q, k, v = (y @ blk.attn.qkv.weight.T + blk.attn.qkv.bias).split(width, dim=-1)
        split = lambda z: z.reshape(b, -1, heads, width // heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        a = torch.softmax(q @ k.transpose(-1, -2) * (width // heads) ** -0.5, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, -1, width)
        t = t + o @ blk.attn.proj.weight.T + blk.attn.proj.bias
        y = F.layer_norm(t, (width,), blk.norm2.weight, blk.norm2.bias, blk.norm2.eps)
        y = F.gelu(y @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias)
        t = t + y @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias
    t = F.layer_norm(t, (width,), vit.norm.weight, vit.norm.bias, vit.norm.eps)
    return t[:, 1:].transpose(1, 2).reshape(b, width, rows, cols)


def ref_clip_last_input(visual, images):
    """Tokens entering CLIP's last block, CLIP grid floored (the official conv), peers' rule."""
    ps = visual.patch_size[0]
    h, w = images.shape[-2] // ps, images.shape[-1] // ps
    x = F.conv2d(images[..., :h * ps, :w * ps], visual.conv1.weight, stride=ps)
    b, width = x.shape[:2]
    x = torch.cat([visual.class_embedding.expand(b, 1, width), x.flatten(2).transpose(1, 2)], 1)
    pos = visual.positional_embedding[None]
    native = math.isqrt(pos.shape[1] - 1)
    x = ref_layer_norm(x + ref_dino_pos(pos, native, h, w, h == w)[0], visual.ln_pre)
    blocks = visual.transformer.resblocks
    for block in blocks[:-1]:
        x = x + ref_attention(ref_layer_norm(x, block.ln_1), block.attn, block.attn.num_heads)
        x = x + ref_mlp(ref_layer_norm(x, block.ln_2), block.mlp, quick_gelu=False)
    return x, (h, w)


def ref_attention_official(e, beta=1.2, gamma=3.0):
    """One image: e C'×N normalised → softmax over (S − beta·mean S)·gamma, < 0 → −inf."""
    s = e.T @ e
    s = (s - beta * s.mean()) * gamma
    s[s < 0] = float("-inf")
    return s.softmax(dim=-1)


def ref_proxyclip(teacher, images, beta=1.2, gamma=3.0, with_ambiguous=False):
    """ProxyCLIP's final features B×D×I×J and keys B×IJ×C', one image at a time.

    ``with_ambiguous`` also returns B×I×J: tokens whose row of S' has an entry within 1e-4 of
    the −inf threshold 0, where float32 summation order alone may flip the mask (the method's
    hard decision, frontier.md "Discontinuities"); comparisons leave those tokens out.
    """
    visual, vit = teacher.clip.visual, teacher.features.frontier.proxy
    s = vit.patch_embed.proj.stride[0]
    images = F.pad(images, (0, -images.shape[-1] % s, 0, -images.shape[-2] % s))
    feats = F.normalize(ref_dino_features(vit, ref_proxy_input(images)), dim=1)
    x, (h, w) = ref_clip_last_input(visual, images)
    last = visual.transformer.resblocks[-1]
    width = x.shape[-1]
    v = ref_layer_norm(x, last.ln_1) @ last.attn.in_proj_weight[2 * width:].T \
        + last.attn.in_proj_bias[2 * width:]
    rows, cols = feats.shape[-2:]
    outs, keys, ambiguous = [], [], []
    for i in range(images.shape[0]):
        vi = v[i, 1:].T.reshape(1, width, h, w)
        vi = F.interpolate(vi, size=(rows, cols), mode="bilinear", align_corners=False)
        vi = vi.reshape(width, rows * cols).T
        e = feats[i].reshape(-1, rows * cols)
        attn = ref_attention_official(e, beta, gamma)
        assert torch.isfinite(attn).all(), "the test input must not hit the NaN case"
        shifted = (e.T @ e - beta * (e.T @ e).mean()) * gamma
        ambiguous.append((shifted.abs() < 1e-4).any(dim=1).reshape(rows, cols))
        o = (attn @ vi) @ last.attn.out_proj.weight.T + last.attn.out_proj.bias
        o = ref_layer_norm(o, visual.ln_post) @ visual.proj
        outs.append(F.normalize(o, dim=-1).T.reshape(-1, rows, cols))
        keys.append(e.T)
    if with_ambiguous:
        return torch.stack(outs), torch.stack(keys), torch.stack(ambiguous)
    return torch.stack(outs), torch.stack(keys)


def assert_close_where_decided(out, ref, ambiguous):
    """out ≈ ref on every token the −inf mask decides unambiguously (at most 5% left out)."""
    assert ambiguous.float().mean() <= 0.05
    keep = ~ambiguous[:, None].expand_as(out)
    torch.testing.assert_close(out[keep], ref[keep], atol=2e-5, rtol=1e-4)


# ---------------------------------------------------------------- proxy features
@pytest.mark.parametrize("size", [(40, 56), (32, 32), (48, 48), (16, 64)])
def test_proxy_features_follow_dino(teacher, size):
    """(40, 56) non-square resized; (32, 32) the native 8×8 grid, table kept; (48, 48) square
    resized; (16, 64) the native token count (4×16 = 64) on a non-square input: resized."""
    head = teacher.features.frontier
    images = torch.randn(2, 3, *size)
    out = head.proxy_features(teacher.features, images)
    ref = ref_dino_features(head.proxy, ref_proxy_input(images))
    assert out.shape == (2, 24, size[0] // 4, size[1] // 4)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_dino_position_resize_is_the_plus_tenth_rule(teacher):
    vit = teacher.features.frontier.proxy
    table = dino_position_table(vit, (10, 14), square=False)
    by_scale = ref_dino_pos(vit.pos_embed, 8, 10, 14, False)
    torch.testing.assert_close(table, by_scale)
    grid = vit.pos_embed[:, 1:].reshape(1, 8, 8, -1).permute(0, 3, 1, 2)
    by_size = F.interpolate(grid, size=(10, 14), mode="bicubic", align_corners=False)
    by_size = by_size.permute(0, 2, 3, 1).reshape(1, 140, -1)
    assert (table[:, 1:] - by_size).abs().max() > 1e-3  # a different operation than "exact"
    assert dino_position_table(vit, (8, 8), square=True) is vit.pos_embed
    assert dino_position_table(vit, (4, 16), square=False).shape == (1, 65, 24)


def test_proxy_input_statistics(teacher):
    head = teacher.features.frontier
    assert head.proxy_mean == PROXY_MEAN and head.proxy_std == PROXY_STD
    images = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(head.proxy_input(teacher.features, images),
                               ref_proxy_input(images))
    # A pixel of value 0.5 in every channel: CLIP-normalised in, 0 after the proxy's (0.5, 0.5).
    pixel = (0.5 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    out = head.proxy_input(teacher.features, pixel.view(1, 3, 1, 1))
    torch.testing.assert_close(out, torch.zeros(1, 3, 1, 1), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- final features
@pytest.mark.parametrize("size", [(40, 56), (44, 60), (64, 64), (37, 50)])
def test_features_and_keys_match_reference(teacher, size):
    """(44, 60): CLIP floors to 5×7 (not a multiple of its patch 8) while the proxy gives 11×15;
    (37, 50): padded bottom/right to the proxy stride (10×13)."""
    images = torch.randn(2, 3, *size)
    feats, keys = teacher.dense_features_and_keys(images, with_keys=True)
    ref_feats, ref_keys, ambiguous = ref_proxyclip(teacher, images, with_ambiguous=True)
    rows, cols = -(-size[0] // 4), -(-size[1] // 4)
    assert feats.shape == (2, 32, rows, cols) and feats.dtype == torch.float32
    assert keys.shape == (2, rows * cols, 24)
    assert_close_where_decided(feats, ref_feats, ambiguous)
    torch.testing.assert_close(keys, ref_keys, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(2, rows, cols))


def test_batch_equals_each_image_alone(teacher):
    images = torch.randn(3, 3, 40, 56)
    images[1] = images[1] * 0.2 + 1.0  # another mean cosine
    head = teacher.features.frontier
    e = F.normalize(head.proxy_features(teacher.features, images), dim=1).flatten(2)
    means = (e.transpose(1, 2) @ e).mean(dim=(1, 2))
    assert (means.max() - means.min()) > 1e-2  # a batch-wide mean would change the output
    batch = teacher.dense_features(images)
    for i in range(3):
        torch.testing.assert_close(batch[i:i + 1], teacher.dense_features(images[i:i + 1]),
                                   atol=1e-5, rtol=1e-4)


def test_output_stride_is_the_proxy_patch(teacher):
    assert teacher.output_stride == 4
    assert teacher.features.frontier.output_stride == 4
    proxy8 = dict(PROXY, kwargs=dict(TINY, patch_size=8))
    head = ProxyCLIPHead(proxy=proxy8)
    assert head.output_stride == 8
    feats, _ = head.features_and_keys(teacher.features, torch.randn(1, 3, 40, 56), False)
    assert feats.shape == (1, 32, 5, 7)


def test_any_timm_model_as_proxy(teacher):
    """A timm CNN: its last stage (forward_intermediates) at its reduction, 32."""
    head = ProxyCLIPHead(proxy={"model": "test_resnet", "allow_random_init": True})
    assert head.output_stride == 32 and not head.proxy_is_vit
    images = torch.randn(2, 3, 64, 96)
    feats, keys = head.features_and_keys(teacher.features, images, True)
    assert feats.shape == (2, 32, 2, 3) and keys.shape == (2, 6, 96)
    assert torch.isfinite(feats).all()
    x = head.proxy_input(teacher.features, images)
    ref = head.proxy.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)[-1]
    torch.testing.assert_close(keys, F.normalize(ref, dim=1).flatten(2).transpose(1, 2))


# ---------------------------------------------------------------- the NaN guard
def test_masked_rows_guard_on_constructed_features():
    torch.manual_seed(1)
    head = ProxyCLIPHead(proxy=PROXY)
    normal = F.normalize(torch.randn(16, 10), dim=0)
    common = torch.randn(16, 1)
    collapsed = F.normalize(common + 0.05 * torch.randn(16, 10), dim=0)  # mean cosine ~0.99
    e = torch.stack([normal, collapsed])
    assert (collapsed.T @ collapsed).mean() > 1 / 1.2
    assert torch.isnan(ref_attention_official(collapsed)).all()  # what the official code gives
    attn = head.proxy_attention(e)
    torch.testing.assert_close(attn[0], ref_attention_official(normal))  # untouched
    torch.testing.assert_close(attn[1], torch.eye(10))  # each patch attends to itself
    head.masked_rows = "raise"
    with pytest.raises(ValueError, match=r"image\(s\) \[1\].*1/beta"):
        head.proxy_attention(e)
    head.proxy_attention(e[:1])  # no masked row: no error


def test_masked_rows_end_to_end(caplog):
    """A collapsed proxy (final norm weight 0): every token has the same feature, mean cos 1."""
    teacher = make_teacher()
    head = teacher.features.frontier
    with torch.no_grad():
        head.proxy.norm.weight.zero_()
        head.proxy.norm.bias.copy_(torch.randn(24))
    images = torch.randn(2, 3, 24, 32)
    with caplog.at_level(logging.WARNING):
        feats = teacher.dense_features(images)
    assert torch.isfinite(feats).all()
    assert "1/beta" in caplog.text
    strict = make_teacher(head_options={"masked_rows": "raise"})
    with torch.no_grad():
        strict.features.frontier.proxy.norm.weight.zero_()
    with pytest.raises(ValueError, match="masked_rows=keep_max"):
        strict.dense_features(images)


def test_attention_stays_fp32_under_autocast(teacher):
    """S, its mean, the mask and the softmax ignore autocast (bf16 here, on the CPU)."""
    head = teacher.features.frontier
    e = F.normalize(torch.randn(2, 24, 50), dim=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (e.transpose(1, 2) @ e).dtype == torch.bfloat16  # what autocast would do
        inside = head.proxy_attention(e)
        feats, keys = teacher.dense_features_and_keys(torch.randn(1, 3, 32, 40))
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, head.proxy_attention(e), rtol=0, atol=0)
    assert feats.dtype == keys.dtype == torch.float32 and torch.isfinite(feats).all()


def test_head_options_beta_gamma(teacher):
    images = torch.randn(1, 3, 32, 40)
    other = make_teacher(head_options={"beta": 0.5, "gamma": 7.0})
    ref, _, ambiguous = ref_proxyclip(other, images, 0.5, 7.0, with_ambiguous=True)
    assert_close_where_decided(other.dense_features(images), ref, ambiguous)
    assert (other.dense_features(images) - teacher.dense_features(images)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="masked_rows"):
        make_teacher(head_options={"masked_rows": "nan"})


# ---------------------------------------------------------------- weights
def test_random_init_refused_without_the_flag():
    with pytest.raises(ValueError, match="allow_random_init=true"):
        ProxyCLIPHead(proxy=dict(PROXY, allow_random_init=False))
    with pytest.raises(ValueError, match="allow_random_init"):
        MaskCLIPTeacher("tiny-vit", None, cache_dir=None, head="proxyclip",
                        proxy={"model": "vit_tiny_patch16_224", "pretrained": None,
                               "kwargs": TINY})
    with pytest.raises(ValueError, match="teacher.proxy"):
        ProxyCLIPHead(proxy=None)
    with pytest.raises(ValueError, match="unknown keys"):
        ProxyCLIPHead(proxy=dict(PROXY, weights="x"))
    with pytest.raises(ValueError, match="not a timm model"):
        ProxyCLIPHead(proxy=dict(PROXY, model="no_such_vit"))


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_local_checkpoint_loads(tmp_path, fmt):
    source = ProxyCLIPHead(proxy=PROXY).proxy
    randomize_(source, 0.3)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    path = tmp_path / f"proxy.{fmt}"
    if fmt == "pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    head = ProxyCLIPHead(proxy={"model": "vit_tiny_patch16_224", "pretrained": str(path),
                                "kwargs": TINY})
    assert head.proxy_source == str(path.resolve())
    for key, value in head.proxy.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    assert not any(p.requires_grad for p in head.proxy.parameters())


def test_dino_style_checkpoint_keeps_its_own_position_grid(tmp_path):
    """module.-prefixed, with a DINO projection head, learned on a 12×12 grid (img_size 48)."""
    source = ProxyCLIPHead(proxy=dict(PROXY, kwargs=dict(TINY, img_size=48))).proxy
    randomize_(source, 0.3)
    state = {f"module.{k}": v.clone() for k, v in source.state_dict().items()}
    state["module.head.mlp.0.weight"] = torch.randn(7, 24)
    torch.save({"state_dict": state}, tmp_path / "dino.pth")
    head = ProxyCLIPHead(proxy={"model": "vit_tiny_patch16_224", "kwargs": TINY,
                                "pretrained": str(tmp_path / "dino.pth")})
    assert head.proxy.pos_embed.shape == (1, 145, 24)
    x = torch.randn(1, 3, 40, 56)
    torch.testing.assert_close(head.proxy_features(_Clip(), x),
                               ref_dino_features(source, ref_proxy_input(x)),
                               atol=1e-5, rtol=1e-4)


class _Clip:
    """What proxy_features reads of DenseCLIP: the CLIP input statistics."""
    image_mean, image_std = CLIP_MEAN, CLIP_STD


def test_bad_checkpoint_files_explain_themselves(tmp_path):
    other = ProxyCLIPHead(proxy=dict(PROXY, kwargs=dict(TINY, embed_dim=12))).proxy
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not fit teacher.proxy.model=vit_tiny_patch16_224"):
        ProxyCLIPHead(proxy=dict(PROXY, pretrained=str(tmp_path / "other.pt")))
    good = tmp_path / "good.pt"
    torch.save(ProxyCLIPHead(proxy=PROXY).proxy.state_dict(), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="cannot be read"):
        ProxyCLIPHead(proxy=dict(PROXY, pretrained=str(cut)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ProxyCLIPHead(proxy=dict(PROXY, pretrained=str(tmp_path / "missing.pt")))


def test_timm_tag_offline_says_how_to_pass_a_file(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for proxy in ({"model": "test_vit", "pretrained": "r160_in1k"},
                  {"model": "test_vit.r160_in1k", "pretrained": True}):
        with pytest.raises(WeightsUnavailableError,
                           match=r"r160_in1k.*teacher\.proxy\.pretrained=/path"):
            ProxyCLIPHead(proxy=proxy)
    with pytest.raises(ValueError, match=r"no pretrained tag 'nope'.*r160_in1k"):
        ProxyCLIPHead(proxy={"model": "test_vit", "pretrained": "nope"})
    with pytest.raises(ValueError, match="give the tag once"):
        ProxyCLIPHead(proxy={"model": "test_vit.r160_in1k", "pretrained": "other"})


def test_timm_tag_loads_from_the_local_hub_cache(tmp_path, monkeypatch):
    """A tag whose file is in the Hugging Face cache loads offline, through timm's own loader
    (which drops the 1000-class head for num_classes=0)."""
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = randomize_(timm.create_model("test_vit", pretrained=False), 0.3)
    repo = tmp_path / "models--timm--test_vit.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()},
              str(repo / "snapshots" / "abc123" / "model.safetensors"))
    head = ProxyCLIPHead(proxy={"model": "test_vit.r160_in1k", "pretrained": True})
    assert "timm tag test_vit.r160_in1k" in head.proxy_source
    loaded = head.proxy.state_dict()
    assert not any(k.startswith("head.") for k in loaded)
    for key, value in loaded.items():
        torch.testing.assert_close(value, source.state_dict()[key], rtol=0, atol=0)
    assert head.output_stride == 16 and not any(p.requires_grad for p in head.proxy.parameters())


# ---------------------------------------------------------------- the teacher around it
def test_key_smoothing_uses_the_proxy_keys():
    teacher = make_teacher(refine={"key_smoothing": True})
    teacher.set_vocabulary(["cat", "dog", "grass"], "single")
    images = torch.randn(2, 3, 32, 40)
    scores, is_prob = teacher.query_scores(images)
    assert is_prob and scores.shape == (2, 3, 8, 10)
    feats, keys, ambiguous = ref_proxyclip(teacher, images, with_ambiguous=True)
    assert not ambiguous.any()  # key smoothing mixes every token: no undecided one here
    logits = torch.einsum("bdhw,qd->bqhw", feats, teacher.query_embeddings)
    expected = key_smoothing(logits, keys, teacher.refine.ks_thresh,
                             teacher.resolved_temperature(), teacher.refine.key_norm)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-4)


def test_pipeline_symmetric_padding_per_crop():
    """inference.average=pixel pad=symmetric: each crop padded around its centre (here to 28,
    3.5 CLIP patches, as 56 is for ViT-B/16), scored, upsampled and cut back."""
    teacher = make_teacher(inference={"average": "pixel", "pad": "symmetric",
                                      "pad_multiple": 28})
    teacher.set_vocabulary(["cat", "dog"], "single")
    images = torch.randn(1, 3, 50, 54)
    scores = teacher.feature_scores(images)
    padded = F.pad(images, (1, 1, 3, 3))  # 56×56: CLIP 7×7, proxy 14×14
    feats, _, ambiguous = ref_proxyclip(teacher, padded, with_ambiguous=True)
    logits = torch.einsum("bdhw,qd->bqhw", feats, teacher.query_embeddings)
    ref = F.interpolate(logits, size=(56, 56), mode="bilinear", align_corners=False)
    # bilinear upsampling reads the neighbouring cells: leave out pixels near an undecided token
    near = F.max_pool2d(ambiguous[:, None].float(), 3, stride=1, padding=1)
    near = F.interpolate(near, scale_factor=4, mode="nearest").bool().expand_as(ref)
    assert near.float().mean() < 0.2
    keep = ~near[..., 3:53, 1:55]
    torch.testing.assert_close(scores[keep], ref[..., 3:53, 1:55][keep], atol=2e-5, rtol=1e-4)

    teacher.inference = InferenceConfig(mode="slide", crop_size=(28, 28), stride=(16, 16),
                                        average="pixel", pad="symmetric", pad_multiple=28)
    probs = teacher(torch.randn(2, 3, 40, 60))
    assert probs.shape == (2, 2, 40, 60) and torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, 40, 60))


# ---------------------------------------------------------------- the config
def compose_teacher(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from src.utils.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="eval", overrides=["teacher=tiny", "teacher/head=proxyclip",
                                                      *overrides])


def test_config_builds_the_head():
    from src.builders import build_teacher

    cfg = compose_teacher([])
    assert cfg.teacher.head == "proxyclip" and cfg.teacher.position_resize == "peers"
    assert cfg.teacher.proxy.model == "vit_base_patch8_224.dino"
    assert cfg.teacher.proxy.pretrained is None and cfg.teacher.proxy.allow_random_init is False
    assert dict(cfg.teacher.head_options) == {"beta": 1.2, "gamma": 3.0,
                                              "masked_rows": "keep_max"}
    with pytest.raises(ValueError, match="allow_random_init"):
        build_teacher(cfg)  # the default names no weights: refused, not a random DINO
    cfg = compose_teacher(["teacher.proxy.model=vit_tiny_patch16_224",
                           "teacher.proxy.allow_random_init=true",
                           "+teacher.proxy.kwargs.img_size=32", "+teacher.proxy.kwargs.depth=1",
                           "+teacher.proxy.kwargs.patch_size=4",
                           "teacher.head_options.beta=1.5"])
    teacher = build_teacher(cfg)
    head = teacher.features.frontier
    assert isinstance(head, ProxyCLIPHead) and head.beta == 1.5 and head.gamma == 3.0
    assert teacher.output_stride == 4 and len(head.proxy.blocks) == 1
    assert teacher.features.position_resize == "peers"
