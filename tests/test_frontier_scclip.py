"""SC-CLIP (teacher/head=scclip) against a plain-torch reference written out here.

The reference follows the method description of the official code (batch of one, N×C tokens,
float64): LOF with k+1 nearest neighbours minus the point itself and the "reach distance"
max(d², own k-distance), a loop over each outlier's 3×3 neighbours for the repair, cosine
affinities, the shared mid attention, the 0.3·CLS term and the multi-level sum. Stages are compared
one by one on the same inputs (outliers, repaired tokens, affinities) so that no hard decision
(top 5 % LOF, the 0.4 threshold, the -inf mask) can differ between implementation and reference;
the final features are then compared end to end.
"""

from __future__ import annotations

import json
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from src.models.frontier import build_frontier_head
from src.models.frontier.scclip import (BlockIndices, aggregate, calibrated_attention,
                                        cosine_affinity, default_block_indices, lof_outliers,
                                        mid_attention, outlier_grid, repair_outliers,
                                        threshold_affinity)
from src.models.teacher import MaskCLIPTeacher
from src.utils.config import CONFIG_DIR
from tests.test_teacher import randomize_

THRESHOLD, RES_CLS, K, CONTAMINATION, TEMPERATURE = 0.4, 0.3, 30, 0.05, 3.0
TINY_INDICES = dict(anomaly=1, pre=1, post=0, multi_start=0, multi_end=1)  # tiny-vit: 3 blocks
OFFICIAL_INDICES = dict(anomaly=10, pre=8, post=3, multi_start=3, multi_end=10)  # 12 blocks


# --------------------------------------------------------------------------- models
def scclip_teacher(model="tiny-vit", scale=0.1, **kwargs):
    torch.manual_seed(0)
    teacher = MaskCLIPTeacher(model, None, head="scclip", cache_dir=None,
                              position_resize="peers", **kwargs)
    randomize_(teacher.clip.visual, scale)
    return teacher


@pytest.fixture(scope="module")
def vit12(tmp_path_factory):
    """A 12-block tiny ViT (width 32, 2 heads, 8 px patches): the official block indices apply."""
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 64, "layers": 12, "width": 32, "head_width": 16,
                             "patch_size": 8},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 1,
                           "layers": 1}}
    path = tmp_path_factory.mktemp("configs") / "scclip-test-vit12.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return "scclip-test-vit12"


# --------------------------------------------------------------------------- reference
def ref_layer_norm(x, ln):
    return F.layer_norm(x, ln.normalized_shape, ln.weight.double(), ln.bias.double(), ln.eps)


def ref_block_outputs(visual, image):
    """F[0..L-2] for one 3×H×W image (H, W multiples of the patch): embedding with the peers'
    +0.1 position resize, ln_pre, then each block's own forward. fp32, (1+N)×W each."""
    patch = visual.conv1.kernel_size[0]
    x = F.conv2d(image[None], visual.conv1.weight, stride=patch)[0]  # W×h×w
    h, w = x.shape[-2:]
    x = x.flatten(1).T
    pos = visual.positional_embedding
    gh, gw = visual.grid_size
    if (h, w) != (gh, gw):
        grid = pos[1:].T.reshape(1, -1, gh, gw)
        grid = F.interpolate(grid, scale_factor=((h + 0.1) / gh, (w + 0.1) / gw),
                             mode="bicubic", align_corners=False)
        assert grid.shape[-2:] == (h, w)
        pos = torch.cat([pos[:1], grid.reshape(pos.shape[1], -1).T])
    x = torch.cat([visual.class_embedding[None], x]) + pos
    x = F.layer_norm(x, visual.ln_pre.normalized_shape, visual.ln_pre.weight, visual.ln_pre.bias,
                     visual.ln_pre.eps)
    outputs = []
    batch_first = getattr(visual.transformer, "batch_first", True)
    for block in visual.transformer.resblocks[:-1]:
        x = block(x[None])[0] if batch_first else block(x[:, None])[:, 0]
        outputs.append(x)
    return outputs, (h, w)


def ref_lof(p, k, contamination):
    """LOF as the official code computes it, on N×C tokens of one image."""
    d2 = (p[:, None, :] - p[None, :, :]).norm(dim=-1) ** 2
    dist, nbr = d2.topk(k + 1, dim=1, largest=False)
    dist, nbr = dist[:, 1:], nbr[:, 1:]  # the first is the point itself
    kdist = dist[:, -1:]
    reach = torch.maximum(dist, kdist.expand_as(dist))
    lrd = k / reach.mean(dim=1)
    lof = (lrd[nbr] / lrd[:, None]).mean(dim=1)
    return lof > torch.quantile(lof, 1 - contamination), lof


def ref_positions(outliers, grid, official=False):
    h, w = grid
    div = h if official else w
    return [(int(t) // div, int(t) % div) for t in outliers.nonzero().flatten()]


def ref_repair(p, positions, grid):
    """Each outlier → the mean of its in-grid, non-outlier 8-neighbours (if any)."""
    h, w = grid
    fmap = p.reshape(h, w, -1)
    out = fmap.clone()
    bad = set(positions)
    for r, c in bad:
        neighbours = [fmap[rr, cc] for rr in range(r - 1, r + 2) for cc in range(c - 1, c + 2)
                      if (rr, cc) != (r, c) and 0 <= rr < h and 0 <= cc < w
                      and (rr, cc) not in bad]
        if neighbours:
            out[r, c] = torch.stack(neighbours).mean(dim=0)
    return out.reshape(h * w, -1)


def ref_cos(p):
    unit = p / p.norm(dim=1, keepdim=True)
    return unit @ unit.T


def ref_aggregate(z, a):
    return (a / (a.sum(dim=1, keepdim=True) + 1e-6)) @ z


def ref_attention(block, x, mid):
    """The last block's attention with the shared mid attention; no residual, no FFN."""
    n, width = x.shape
    heads = block.attn.num_heads
    d = width // heads
    y = ref_layer_norm(x, block.ln_1)
    _, k, v = (y @ block.attn.in_proj_weight.double().T
               + block.attn.in_proj_bias.double()).split(width, dim=1)
    k = k.reshape(n, heads, d).transpose(0, 1)
    v = v.reshape(n, heads, d).transpose(0, 1)
    m = (mid - mid.mean()) * TEMPERATURE
    m[m < 0] = float("-inf")
    weights = (m.softmax(dim=-1)[None] + (k @ k.transpose(1, 2) * d ** -0.5).softmax(-1)) / 2
    out = (weights @ v).transpose(0, 1).reshape(n, width)
    return out @ block.attn.out_proj.weight.double().T + block.attn.out_proj.bias.double()


def ref_scclip(visual, image, indices, official=False):
    """SC-CLIP on one image: a dict of every stage, float64."""
    outputs, grid = ref_block_outputs(visual, image)
    f = [o.double() for o in outputs]
    anomaly = f[indices["anomaly"]]
    n = anomaly.shape[0] - 1
    outliers, lof = ref_lof(anomaly[1:], min(K, n - 1), CONTAMINATION)
    positions = ref_positions(outliers, grid, official)
    if any(r >= grid[0] or c >= grid[1] for r, c in positions):  # the official IndexError
        return dict(grid=grid, outliers=outliers, positions=positions, off_grid=True)
    repaired = ref_repair(anomaly[1:], positions, grid)
    mid = ref_cos(ref_repair(f[indices["pre"]][1:], positions, grid))
    pre = torch.where(mid < THRESHOLD, 0.0, mid)
    post = ref_cos(f[indices["post"]][1:])
    post = torch.where(post < THRESHOLD, 0.0, post)
    block = visual.transformer.resblocks[-1]
    x = ref_aggregate(repaired, pre)
    x = ref_attention(block, x, mid) + RES_CLS * anomaly[0]
    x = ref_aggregate(x, post)
    multi = sum(f[i] for i in range(indices["multi_start"], indices["multi_end"]))
    r = ref_attention(block, multi[1:], mid) + RES_CLS * multi[0]
    x = x + ref_aggregate(r, post)
    feats = ref_layer_norm(x, visual.ln_post) @ visual.proj.double()
    feats = F.normalize(feats.T.reshape(-1, *grid), dim=0)
    return dict(outputs=outputs, grid=grid, outliers=outliers, lof=lof, positions=positions,
                off_grid=False, repaired=repaired, mid=mid, pre=pre, post=post, features=feats)


def impl_outputs(teacher, images, indices):
    wanted = sorted({indices["anomaly"], indices["pre"], indices["post"],
                     *range(indices["multi_start"], indices["multi_end"])})
    entering, grid = teacher.features.tokens_entering(images, [i + 1 for i in wanted])
    return dict(zip(wanted, entering)), grid


# --------------------------------------------------------------------------- hand-computed
def test_default_block_indices_by_depth():
    assert default_block_indices(12) == BlockIndices(**OFFICIAL_INDICES)
    assert default_block_indices(3) == BlockIndices(**TINY_INDICES)
    assert default_block_indices(4) == BlockIndices(2, 2, 1, 1, 2)  # the world CLIP
    assert default_block_indices(24) == BlockIndices(22, 16, 6, 6, 20)  # ViT-L/14
    for depth in range(3, 40):
        idx = default_block_indices(depth)
        assert 0 <= idx.post < idx.pre <= depth - 2 == idx.anomaly
        assert 0 <= idx.multi_start < idx.multi_end <= depth - 2
    with pytest.raises(ValueError, match="at least 3 blocks"):
        default_block_indices(2)


def test_lof_hand_computed_own_k_distance_and_strict_quantile():
    # Points 0, 1, 2, 3, 10 on a line, k = 2. Squared distances give the 2-NN sets
    # {1,2}, {0,2}, {1,3}, {2,1}, {3,2} and k-distances 4, 1, 1, 4, 64, so
    # LOF_i = mean_j kdist_i / kdist_j = 4, 0.625, 0.625, 4, 40.
    line = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0])
    tokens = torch.stack([line, torch.zeros(5)], dim=1)
    perm = torch.tensor([4, 2, 0, 3, 1])
    batch = torch.stack([tokens, 3.0 * tokens[perm]])  # scaled and permuted: same LOF, permuted
    expected = torch.tensor([4.0, 0.625, 0.625, 4.0, 40.0])
    outliers, scores = lof_outliers(batch, n_neighbors=2, contamination=0.05)
    torch.testing.assert_close(scores, torch.stack([expected, expected[perm]]))
    # 0.95 quantile of [.625, .625, 4, 4, 40] = 4 + 0.8·36 = 32.8: only the point at 10.
    assert outliers.tolist() == [[False] * 4 + [True], [True] + [False] * 4]
    # 0.7 quantile = 4 exactly: LOF 4 is not > 4 (strict), so still only the point at 10.
    assert lof_outliers(batch, 2, 0.3)[0].sum(1).tolist() == [1, 1]
    # 0.3 quantile = 0.625 + 0.2·3.375 = 1.3: the points at 0, 3 and 10.
    assert lof_outliers(batch, 2, 0.7)[0][0].tolist() == [True, False, False, True, True]
    # k is capped at N - 1 = 4: every other point is a neighbour, kdist_i = max_j d²_ij.
    kdist = torch.tensor([100.0, 81.0, 64.0, 49.0, 100.0])
    capped = torch.stack([(kdist[i] / kdist[torch.arange(5) != i]).mean() for i in range(5)])
    torch.testing.assert_close(lof_outliers(tokens[None], 30, 0.05)[1][0], capped)


def test_repair_hand_computed():
    values = torch.arange(12.0).reshape(1, 12, 1)  # 3×4 grid: row r holds 4r .. 4r+3
    outliers = torch.zeros(1, 3, 4, dtype=torch.bool)
    outliers[0, 0, 0] = outliers[0, 1, 1] = True
    repaired = repair_outliers(values, outliers).reshape(3, 4)
    expected = torch.arange(12.0).reshape(3, 4)
    expected[0, 0] = (1 + 4) / 2  # (1,1) is an outlier, the rest is off the grid
    expected[1, 1] = (1 + 2 + 4 + 6 + 8 + 9 + 10) / 7  # (0,0) is an outlier
    torch.testing.assert_close(repaired, expected)
    # Every neighbour an outlier: the value is kept. Per image: image 1 repairs nothing here.
    tokens = torch.randn(2, 4, 3)
    all_bad = torch.stack([torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, 2, dtype=torch.bool)])
    torch.testing.assert_close(repair_outliers(tokens, all_bad), tokens)


def test_outlier_grid_row_major_and_official_mapping():
    outliers = torch.zeros(1, 6, dtype=torch.bool)  # a 2×3 grid
    outliers[0, 3] = True
    row_major = outlier_grid(outliers, (2, 3))
    official = outlier_grid(outliers, (2, 3), official_indexing=True)
    assert row_major[0].nonzero().tolist() == [[1, 0]]  # 3 // 3, 3 % 3
    assert official[0].nonzero().tolist() == [[1, 1]]  # 3 // 2, 3 % 2
    outliers[0, 3], outliers[0, 4] = False, True  # 4 // 2 = 2: off a 2-row grid
    with pytest.raises(ValueError, match="IndexError"):
        outlier_grid(outliers, (2, 3), official_indexing=True)
    square = torch.rand(2, 16) > 0.7
    assert torch.equal(outlier_grid(square, (4, 4), True), outlier_grid(square, (4, 4), False))


def test_mid_attention_and_aggregate_hand_computed():
    mid = torch.tensor([[[1.0, 0.2], [0.2, 1.0]]])  # mean 0.6 → (±0.4)·3: off-diagonal masked
    torch.testing.assert_close(mid_attention(mid), torch.eye(2)[None])
    mid = torch.tensor([[[1.0, 0.8], [0.8, 0.2]]])  # mean 0.7 → [[0.9, 0.3], [0.3, -1.5]]
    row0 = torch.tensor([0.9, 0.3]).softmax(0)
    torch.testing.assert_close(mid_attention(mid)[0], torch.stack([row0, torch.tensor([1.0, 0])]))
    a = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    z = torch.tensor([[[2.0], [4.0]]])
    torch.testing.assert_close(aggregate(z, a), torch.tensor([[[4.0 / 1.500001], [0.0]]]))
    aff = torch.tensor([[[1.0, 0.39999], [0.4, -0.5]]])
    assert torch.equal(threshold_affinity(aff), torch.tensor([[[1.0, 0.0], [0.4, 0.0]]]))


# --------------------------------------------------------------------------- stage by stage
@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_stages_match_reference_tiny_vit(size):
    teacher = scclip_teacher()
    images = torch.randn(2, 3, *size)
    outputs, grid = impl_outputs(teacher, images, TINY_INDICES)
    block = teacher.features.blocks[-1]
    for i, image in enumerate(images):
        ref = ref_scclip(teacher.clip.visual, image, TINY_INDICES)
        assert ref["grid"] == grid
        for j, out in enumerate(ref["outputs"]):  # F[j]: the blocks run unchanged
            torch.testing.assert_close(outputs[j][i], out, atol=1e-5, rtol=1e-5)
        # Each stage from the same inputs, the reference's float64 against the fp32 head.
        anomaly = outputs[TINY_INDICES["anomaly"]][i:i + 1]
        outliers, lof = lof_outliers(anomaly[:, 1:])
        ref_outliers, ref_lof_scores = ref_lof(anomaly[0, 1:].double(), K, CONTAMINATION)
        torch.testing.assert_close(lof[0].double(), ref_lof_scores, rtol=1e-5, atol=1e-6)
        assert torch.equal(outliers[0], ref_outliers) and outliers.any()
        on_grid = outlier_grid(outliers, grid)
        positions = ref_positions(ref_outliers, grid)
        assert sorted(map(tuple, on_grid[0].nonzero().tolist())) == sorted(positions)
        repaired = repair_outliers(anomaly[:, 1:], on_grid)
        ref_repaired = ref_repair(anomaly[0, 1:].double(), positions, grid)
        torch.testing.assert_close(repaired[0].double(), ref_repaired, atol=1e-6, rtol=1e-6)
        mid = cosine_affinity(repair_outliers(outputs[TINY_INDICES["pre"]][i:i + 1, 1:], on_grid))
        torch.testing.assert_close(mid[0].double(), ref["mid"], atol=1e-6, rtol=0)
        post = threshold_affinity(cosine_affinity(outputs[TINY_INDICES["post"]][i:i + 1, 1:]))
        raw = ref_cos(outputs[TINY_INDICES["post"]][i, 1:].double())
        clear = (raw - THRESHOLD).abs() > 1e-6
        assert clear.float().mean() > 0.99  # entries within 1e-6 of 0.4 may flip, no others
        torch.testing.assert_close(post[0].double()[clear],
                                   torch.where(raw < THRESHOLD, 0.0, raw)[clear], atol=1e-6, rtol=0)
        attn = calibrated_attention(block, repaired, mid_attention(mid))
        torch.testing.assert_close(attn[0].double(), ref_attention(block, repaired[0].double(),
                                                                   mid[0].double()),
                                   atol=1e-5, rtol=1e-5)
        # End to end, each from its own tokens.
        torch.testing.assert_close(teacher.dense_features(images)[i].double(), ref["features"],
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(64, 64), (80, 80), (64, 96)])
def test_official_indices_on_a_12_block_vit(vit12, size):
    teacher = scclip_teacher(vit12, scale=0.05)
    head = teacher.features.frontier
    assert head.block_indices(12) == BlockIndices(**OFFICIAL_INDICES)
    images = torch.randn(2, 3, *size)
    feats = teacher.dense_features(images)
    outputs, grid = impl_outputs(teacher, images, OFFICIAL_INDICES)
    for i, image in enumerate(images):
        ref = ref_scclip(teacher.clip.visual, image, OFFICIAL_INDICES)
        assert grid[0] * grid[1] > K + 1  # the official k = 30 applies uncapped
        anomaly = outputs[10][i:i + 1, 1:]
        outliers, lof = lof_outliers(anomaly)
        torch.testing.assert_close(lof[0].double(), ref["lof"], rtol=1e-4, atol=1e-5)
        assert torch.equal(outliers[0], ref["outliers"])
        n = grid[0] * grid[1]  # LOF > the linear 0.95 quantile: the top n-1-floor(0.95(n-1))
        assert outliers.sum() == n - 1 - math.floor(0.95 * (n - 1))
        repaired = repair_outliers(anomaly, outlier_grid(outliers, grid))
        torch.testing.assert_close(repaired[0].double(), ref["repaired"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(feats[i].double(), ref["features"], atol=1e-5, rtol=1e-4)


def test_explicit_block_indices_are_used(vit12):
    options = {"pre_adjust_idx": 6, "post_adjust_idx": 2, "multi_start_idx": 4,
               "multi_end_idx": 11}
    teacher = scclip_teacher(vit12, scale=0.05, head_options=options)
    indices = dict(anomaly=10, pre=6, post=2, multi_start=4, multi_end=11)
    assert teacher.features.frontier.block_indices(12) == BlockIndices(**indices)
    image = torch.randn(1, 3, 64, 64)
    ref = ref_scclip(teacher.clip.visual, image[0], indices)
    torch.testing.assert_close(teacher.dense_features(image)[0].double(), ref["features"],
                               atol=1e-5, rtol=1e-4)
    default = scclip_teacher(vit12, scale=0.05)
    assert not torch.allclose(default.dense_features(image), teacher.dense_features(image),
                              atol=1e-3)


def test_bad_options_fail_clearly():
    with pytest.raises(ValueError, match="head_options"):
        build_frontier_head("scclip", {"no_such_option": 1})
    with pytest.raises(ValueError, match="pre_adjust_idx"):
        build_frontier_head("scclip", {"pre_adjust_idx": -1})
    teacher = MaskCLIPTeacher("tiny-vit", None, head="scclip", cache_dir=None,
                              head_options={"pre_adjust_idx": 2})
    with pytest.raises(ValueError, match="3-block tower"):
        teacher.dense_features(torch.randn(1, 3, 32, 32))


# --------------------------------------------------------------------------- batching, grids
def test_batch_equals_each_image_alone():
    teacher = scclip_teacher()
    images = torch.randn(2, 3, 48, 80)
    images[1] = 2.0 * images[1] + 0.5  # another statistic per image
    feats, keys = teacher.dense_features_and_keys(images)
    for i in range(2):
        alone, alone_keys = teacher.dense_features_and_keys(images[i:i + 1])
        torch.testing.assert_close(feats[i:i + 1], alone, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(keys[i:i + 1], alone_keys, atol=1e-5, rtol=1e-5)


def test_non_square_grid_features_and_keys():
    teacher = scclip_teacher()
    images = torch.randn(1, 3, 40, 72)  # 5×9 patches: 45 tokens, LOF k = 30 < 45
    feats, keys = teacher.dense_features_and_keys(images)
    assert feats.shape == (1, 32, 5, 9) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(1, 5, 9))
    ref = ref_scclip(teacher.clip.visual, images[0], TINY_INDICES)
    torch.testing.assert_close(feats[0].double(), ref["features"], atol=1e-5, rtol=1e-5)
    # Keys: the last block's key projection then out_proj, of the repaired F[L-2] patch tokens.
    block = teacher.features.blocks[-1]
    width = ref["repaired"].shape[1]
    k = (ref_layer_norm(ref["repaired"], block.ln_1)
         @ block.attn.in_proj_weight.double()[width:2 * width].T
         + block.attn.in_proj_bias.double()[width:2 * width])
    k = k @ block.attn.out_proj.weight.double().T + block.attn.out_proj.bias.double()
    assert keys.shape == (1, 45, width)
    torch.testing.assert_close(keys[0].double(), k, atol=1e-5, rtol=1e-5)


def test_official_indexing_same_on_square_differs_or_raises_on_non_square():
    official = scclip_teacher(head_options={"official_indexing": True})
    row_major = scclip_teacher()
    square = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(official.dense_features(square), row_major.dense_features(square))
    checked = {"differs": 0, "raises": 0}
    for _ in range(8):
        image = torch.randn(1, 3, 72, 64)  # 9×8 patches
        ref = ref_scclip(official.clip.visual, image[0], TINY_INDICES, official=True)
        if ref["off_grid"]:
            with pytest.raises(ValueError, match="official_indexing"):
                official.dense_features(image)
            checked["raises"] += 1
            continue
        feats = official.dense_features(image)
        torch.testing.assert_close(feats[0].double(), ref["features"], atol=1e-5, rtol=1e-5)
        if ref["positions"] != ref_positions(ref["outliers"], ref["grid"]):
            assert not torch.allclose(feats, row_major.dense_features(image), atol=1e-4)
            checked["differs"] += 1
    assert checked["differs"] > 0 and checked["raises"] > 0, checked


# --------------------------------------------------------------------------- precision
def test_statistics_stay_fp32_under_autocast():
    teacher = scclip_teacher()
    tokens = torch.randn(2, 64, 48)
    block = teacher.features.blocks[-1]
    grid = torch.rand(2, 8, 8) > 0.9
    plain = (lof_outliers(tokens), repair_outliers(tokens, grid), cosine_affinity(tokens),
             aggregate(tokens, cosine_affinity(tokens)),
             calibrated_attention(block, tokens, mid_attention(cosine_affinity(tokens))))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (F.linear(tokens, block.attn.out_proj.weight)).dtype == torch.bfloat16
        cast = (lof_outliers(tokens), repair_outliers(tokens, grid), cosine_affinity(tokens),
                aggregate(tokens, cosine_affinity(tokens)),
                calibrated_attention(block, tokens, mid_attention(cosine_affinity(tokens))))
        feats = teacher.dense_features(torch.randn(1, 3, 64, 64))
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
    for a, b in zip(plain, cast):
        a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
        for x, y in zip(a, b):
            assert y.dtype == x.dtype and torch.equal(x, y)


# --------------------------------------------------------------------------- the teacher
def test_key_smoothing_and_prompt_denoising_run():
    images = torch.randn(2, 3, 48, 56)
    plain = scclip_teacher()
    plain.set_vocabulary(["red", "green", "blue"], "single")
    for refine in ({"key_smoothing": True}, {"key_smoothing": True, "prompt_denoising": True}):
        teacher = scclip_teacher(refine=refine)
        teacher.set_vocabulary(["red", "green", "blue"], "single")
        probs = teacher(images)
        assert probs.shape == (2, 3, 48, 56) and torch.isfinite(probs).all()
        assert not torch.allclose(probs, plain(images), atol=1e-3)  # the keys were used


def test_whole_and_slide_inference():
    whole = scclip_teacher()
    whole.set_vocabulary(["red", "green", "blue", "sky"], "single")
    images = torch.randn(1, 3, 48, 80)
    feats = whole.dense_features(images)
    scores = whole.feature_scores(images)
    torch.testing.assert_close(scores, torch.einsum("bdhw,qd->bqhw", feats,
                                                    whole.query_embeddings))
    probs = whole(images, output_size=(50, 81))
    assert probs.shape == (1, 4, 50, 81) and torch.isfinite(probs).all()

    slide = scclip_teacher(inference={"mode": "slide", "crop_size": 32, "stride": 16})
    slide.set_vocabulary(["red", "green", "blue", "sky"], "single")
    torch.testing.assert_close(slide.query_embeddings, whole.query_embeddings)
    scores = slide.feature_scores(images)
    # By hand: windows at y ∈ {0, 16}, x ∈ {0, 16, 32, 48}, each crop run alone (its own LOF,
    # quantile, affinities and mean(mid)), averaged at feature stride 8.
    canvas, count = torch.zeros(1, 4, 6, 10), torch.zeros(1, 1, 6, 10)
    for y in (0, 16):
        for x in (0, 16, 32, 48):
            crop = images[:, :, y:y + 32, x:x + 32]
            canvas[..., y // 8:y // 8 + 4, x // 8:x // 8 + 4] += torch.einsum(
                "bdhw,qd->bqhw", whole.dense_features(crop), whole.query_embeddings)
            count[..., y // 8:y // 8 + 4, x // 8:x // 8 + 4] += 1
    torch.testing.assert_close(scores, canvas / count, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(scores, whole.feature_scores(images), atol=1e-3)
    probs = slide(images)
    assert probs.shape == (1, 4, 48, 80) and torch.isfinite(probs).all()
    pixel = scclip_teacher(inference={"mode": "slide", "crop_size": 32, "stride": 16,
                                      "average": "pixel"})
    pixel.set_vocabulary(["red", "green", "blue", "sky"], "single")
    assert torch.isfinite(pixel(images)).all()


def test_config_composes():
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=["teacher=tiny", "teacher/head=scclip"])
    assert cfg.teacher.head == "scclip" and cfg.teacher.position_resize == "peers"
    assert cfg.teacher.head_options is None
