"""ResCLIP over NACLIP (``teacher/head=resclip``) against plain-torch references, stage by stage.

The references follow the official code's own formulation (per head, ``unfold`` + ``torch.mode``
for the label blocks, a pair-by-pair path walk with the global step, an explicit 1-D
convolution loop) on a randomised tiny-vit; the hard decisions (argmax, threshold, mode, path)
are compared exactly, the real-valued stages to float tolerance.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from src.models.frontier.resclip import (OFFICIAL_RCS_BLOCKS, ResCLIPHead, block_mode,
                                         default_rcs_blocks, label_map, path_valid,
                                         resclip_attention, resolve_rcs_blocks, sfr_bias,
                                         sfr_matrix)
from src.models.heads import gaussian_window
from src.models.teacher import MaskCLIPTeacher
from tests.test_heads import ref_out_proj, ref_qkv_per_head, ref_softmax_attention
from tests.test_teacher import randomize_, ref_layer_norm

STRIDE = 8  # tiny-vit's patch
Q = 4
THD = 0.9  # temp_thd that leaves a quarter to a half of the tiny model's pixels below it


# --------------------------------------------------------------------------- set-up
def _teacher(**options) -> MaskCLIPTeacher:
    torch.manual_seed(0)
    teacher = MaskCLIPTeacher("tiny-vit", None, head="resclip", cache_dir=None,
                              head_options=options or None)
    randomize_(teacher.clip.visual)
    return teacher


def _queries(n: int = Q, dim: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return F.normalize(torch.randn(n, dim, generator=gen), dim=-1)


def _images(b: int, height: int, width: int, seed: int = 2) -> torch.Tensor:
    """Piecewise-smooth random images (coarse blobs plus a little noise), so PAMR has edges."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(b, 3, max(2, height // 12), max(2, width // 12), generator=gen)
    smooth = F.interpolate(coarse, size=(height, width), mode="nearest")
    return smooth + 0.1 * torch.randn(b, 3, height, width, generator=gen)


# --------------------------------------------------------------------------- references
def ref_omega(grid, sigma=5.0):
    h, w = grid
    n = 1 + h * w
    omega = torch.zeros(n, n)
    for i in range(h * w):
        for j in range(h * w):
            dist2 = (i // w - j // w) ** 2 + (i % w - j % w) ** 2
            omega[1 + i, 1 + j] = math.exp(-dist2 / (2 * sigma ** 2))
    return omega


def ref_rcs(tokens, blocks):
    """Mean over the blocks of each head's softmax(q kᵀ/√d): B×heads×N×N."""
    per_block = []
    for x, block in zip(tokens, blocks):
        per_head, d = ref_qkv_per_head(x, block)
        per_block.append(torch.stack([ref_softmax_attention(q, k, d) for q, k, _ in per_head],
                                     dim=1))
    return sum(per_block) / len(per_block)


def ref_last_block_scores(x, block, visual, grid, queries, sfr=None, rcs=None,
                          sfr_weights=(2.2, 0.7), rcs_weights=(2.0, 0.3), sigma=5.0):
    """ResCLIP's last block (custom_attn, 'resclip' branch, wo_resi), then cosine scores."""
    per_head, d = ref_qkv_per_head(x, block)
    omega = ref_omega(grid, sigma)
    outs = []
    for head, (_, k, v) in enumerate(per_head):
        logits = k @ k.transpose(-1, -2) / math.sqrt(d)
        if sfr is not None:
            full = F.pad(sfr, (1, 0, 1, 0))
            s16 = (full / full.amax(dim=(1, 2), keepdim=True)).to(torch.float16)
            tau, lam = sfr_weights
            logits = tau * ((1 - lam) * logits + lam * s16)  # lam * s16 is an fp16 product
        weights = torch.softmax(logits + omega, dim=-1)
        if rcs is not None:
            tau, lam = rcs_weights
            weights = tau * ((1 - lam) * weights + lam * rcs[:, head])
        outs.append(weights @ v)
    y = ref_layer_norm(ref_out_proj(outs, block), visual.ln_post)[:, 1:] @ visual.proj
    y = F.normalize(y, dim=-1)
    return (y @ queries.T).transpose(1, 2).reshape(x.shape[0], -1, *grid)


def ref_pamr(image, mask, iterations=10, dilations=(8, 16)):
    """PAMR as ResCLIP's pamr.py describes it, written out neighbour by neighbour."""
    def ring(x, d):
        height, width = x.shape[-2:]
        padded = F.pad(x, (d, d, d, d), mode="replicate")
        return [padded[..., d + dy:d + dy + height, d + dx:d + dx + width]
                for dy in (-d, 0, d) for dx in (-d, 0, d) if (dy, dx) != (0, 0)]

    samples = []
    for d in dilations:
        samples += ring(image, d) + [image]  # 3×3 incl. the centre, per dilation: 18 samples
    std = torch.stack(samples, dim=2).std(dim=2, keepdim=True)[:, :, 0]
    ring_image = [n for d in dilations for n in ring(image, d)]
    aff = torch.stack([(-(image - n).abs() / (1e-8 + 0.1 * std)).mean(1) for n in ring_image],
                      dim=1).softmax(dim=1)  # B×16×H×W
    for _ in range(iterations):
        ring_mask = [n for d in dilations for n in ring(mask, d)]
        mask = sum(aff[:, i:i + 1] * ring_mask[i] for i in range(len(ring_mask)))
    return mask


def ref_first_probs(images, scores, scale=40.0):
    up = F.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return torch.softmax(scale * ref_pamr(images, up), dim=1)


def ref_label_map(probs, thd, stride=STRIDE):
    """create_patch_matrix: argmax, threshold → 0, unfold blocks, torch.mode."""
    maps = []
    for p in probs:
        pred = p.argmax(0)
        pred[p.max(0).values < thd] = 0
        blocks = pred.unfold(0, stride, stride).unfold(1, stride, stride)
        maps.append(torch.mode(blocks.reshape(*blocks.shape[:2], -1), dim=-1).values)
    return torch.stack(maps)


def ref_path_ok(lab, w, pi, pj, t):
    """Walk i → j with the GLOBAL step t_k = k/m, k = 0..cheb(i, j) (check_path)."""
    cheb = max(abs(pi[0] - pj[0]), abs(pi[1] - pj[1]))
    for k in range(cheb + 1):
        r = int(torch.round(pi[0] * (1 - t[k]) + pj[0] * t[k]))
        c = int(torch.round(pi[1] * (1 - t[k]) + pj[1] * t[k]))
        if lab[r * w + c] != lab[pi[0] * w + pi[1]]:
            return False
    return True


def ref_sfr(labels, sigma=5.0, delete_same_entity=True):
    """generate_attention_sfr for one h×w label map, pair by pair: N×N."""
    h, w = labels.shape
    n = h * w
    lab = labels.flatten().tolist()
    pos = [(i // w, i % w) for i in range(n)]
    m = max(h, w) - 1
    t = torch.linspace(0, 1, m + 1)
    mat = torch.zeros(n, n)
    for i in range(n):
        for j in range(n):
            if lab[i] != lab[j]:
                continue
            cheb = max(abs(pos[i][0] - pos[j][0]), abs(pos[i][1] - pos[j][1]))
            ok = not delete_same_entity or ref_path_ok(lab, w, pos[i], pos[j], t)
            mat[i, j] = 1.0 if ok else math.exp(-cheb / m)
    taps = min(n, int(6 * sigma + 1))
    taps += 1 - taps % 2
    half = taps // 2
    kernel = [math.exp(-(o * o) / (2 * sigma * sigma)) for o in range(-half, half + 1)]
    kernel = [g / sum(kernel) for g in kernel]
    smooth = torch.zeros(n, n)
    for j in range(n):
        for o in range(-half, half + 1):
            if 0 <= j + o < n:
                smooth[:, j] += kernel[o + half] * mat[:, j + o]
    smooth = smooth.clamp_min(0)
    return smooth / (smooth.sum(dim=1, keepdim=True) + 1e-8)


def ref_resclip(teacher, images, queries, temp_thd, rcs_blocks, use_rcs=True, use_sfr=True):
    """The whole method from the references above (tokens from DenseCLIP.tokens_entering)."""
    features, visual = teacher.features, teacher.clip.visual
    blocks = features.blocks
    tokens, grid = features.tokens_entering(images, list(range(len(blocks))))
    x = tokens[-1]
    out = {"rcs": None, "first_scores": None, "first_probs": None, "labels": None, "sfr": None}
    rcs = None
    if use_rcs:
        rcs = ref_rcs([tokens[i] for i in rcs_blocks], [blocks[i] for i in rcs_blocks])
    sfr = None
    if use_sfr:
        first = ref_last_block_scores(x, blocks[-1], visual, grid, queries, rcs=rcs)
        probs = ref_first_probs(images, first)
        labels = ref_label_map(probs, temp_thd)
        sfr = torch.stack([ref_sfr(lab) for lab in labels])
        out.update(first_scores=first, first_probs=probs, labels=labels, sfr=sfr)
    out["rcs"] = rcs
    out["scores"] = ref_last_block_scores(x, blocks[-1], visual, grid, queries, sfr=sfr, rcs=rcs)
    return out


# --------------------------------------------------------------------------- RCS blocks
def test_default_rcs_blocks_mapping():
    assert default_rcs_blocks(12) == OFFICIAL_RCS_BLOCKS == (5, 6, 7, 8)
    assert default_rcs_blocks(24) == (5, 6, 7, 8)  # hard-coded in the official code
    assert default_rcs_blocks(4) == (1, 2)  # the offline world's CLIP
    assert default_rcs_blocks(3) == (1,)  # tiny-vit
    assert default_rcs_blocks(2) == (0,)
    for depth in range(2, 30):
        assert all(0 <= b < depth - 1 for b in default_rcs_blocks(depth))
    with pytest.raises(ValueError, match="use_rcs=false"):
        default_rcs_blocks(1)
    assert resolve_rcs_blocks([0, -2], 3) == (0, 1)
    with pytest.raises(ValueError, match="rcs_blocks"):
        resolve_rcs_blocks([2], 3)  # the last block itself


def test_head_options_validated():
    with pytest.raises(ValueError, match="rcs"):
        MaskCLIPTeacher("tiny-vit", None, head="resclip", cache_dir=None,
                        head_options={"rcs": [2.0]})
    with pytest.raises(ValueError, match="temp_thd"):
        ResCLIPHead(temp_thd=1.5)
    with pytest.raises(ValueError, match="head_options for head='resclip'"):
        MaskCLIPTeacher("tiny-vit", None, head="resclip", cache_dir=None,
                        head_options={"no_such_option": 1})


# --------------------------------------------------------------------------- label map
def test_label_map_threshold_and_block_mode_by_hand():
    """Stride 2 over 5×6 pixels: a 3×3 grid whose bottom row of blocks has one pixel row."""
    pixel = torch.tensor([[1, 1, 2, 2, 2, 1],
                          [1, 2, 2, 0, 0, 2],
                          [2, 2, 1, 1, 0, 0],
                          [2, 1, 1, 2, 0, 0],
                          [1, 2, 2, 2, 1, 0]])
    low = torch.zeros(5, 6, dtype=torch.bool)
    low[0, 5] = True  # query 1 at 0.4 < temp_thd: becomes query 0
    low[2, 1] = True  # query 2 at 0.4: becomes 0 as well
    conf = torch.where(low, torch.tensor(0.4), torch.tensor(0.9))
    probs = torch.where(F.one_hot(pixel, 3).permute(2, 0, 1).bool(), conf, (1 - conf) / 2)
    labels = label_map(probs[None], 0.5, 2, (3, 3))[0]
    # Blocks: (0,0) 1,1,1,2 → 1; (0,1) 2,2,2,0 → 2; (0,2) 2,0(low),0,2 → tie → 0;
    # (1,0) 2,0(low),2,1 → 2; (1,1) 1,1,1,2 → 1; (1,2) 0,0,0,0 → 0;
    # (2,0) 1,2 → tie → 1; (2,1) 2,2 → 2; (2,2) 1,0 → tie → 0.
    assert labels.tolist() == [[1, 2, 0], [2, 1, 0], [1, 2, 0]]


def test_block_mode_equals_torch_mode_on_full_blocks():
    gen = torch.Generator().manual_seed(3)
    pixel = torch.randint(0, 4, (2, 24, 32), generator=gen)  # many ties
    blocks = pixel.unfold(1, 8, 8).unfold(2, 8, 8)
    expected = torch.mode(blocks.reshape(2, 3, 4, -1), dim=-1).values
    assert torch.equal(block_mode(pixel, 8, (3, 4), 4), expected)


# --------------------------------------------------------------------------- SFR
GRID = torch.tensor([[0, 0, 1, 1],
                     [0, 1, 0, 0],
                     [0, 0, 0, 0]])


def test_path_check_uses_the_global_step_by_hand():
    valid = path_valid(GRID[None])[0]
    at = lambda r, c: r * 4 + c  # noqa: E731
    # m = 3, t = (0, 1/3, 2/3, 1). (0,0)→(1,2), cheb 2, probes (0,0), (0.33,0.67)→(0,1),
    # (0.67,1.33)→(1,1) = label 1: invalid. A per-pair step (0, 1/2, 1) would probe (0,0),
    # (0.5→0, 1)=(0,1), (1,2): all label 0, valid — the global step is the official quirk.
    assert not valid[at(0, 0), at(1, 2)]
    # (0,0)→(0,1), cheb 1: probes (0,0) and (0, 0.33)→(0,0) only: never j itself.
    assert valid[at(0, 0), at(0, 1)]
    # (1,2)→(0,0): (1,2), (0.67,1.33)→(1,1) = 1: invalid (the reverse pair too).
    assert not valid[at(1, 2), at(0, 0)]
    # Row 2 is all label 0: (2,0)→(2,3) is valid; (0,0)→(2,0) down column 0 too.
    assert valid[at(2, 0), at(2, 3)] and valid[at(0, 0), at(2, 0)]
    # (1,1)→(0,2), both label 1, cheb 1: probes (1,1) and (0.67,1.33)→(1,1) again; (0,2)
    # itself would only be reached at k = 3 > cheb: valid.
    assert valid[at(1, 1), at(0, 2)]


def test_sfr_matrix_matches_pairwise_reference():
    sfr = sfr_matrix(GRID[None], 5.0, True)[0]
    torch.testing.assert_close(sfr, ref_sfr(GRID), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(sfr.sum(-1), torch.ones(12))
    # Without the path test nothing is damped, so the result differs.
    plain = sfr_matrix(GRID[None], 5.0, False)[0]
    torch.testing.assert_close(plain, ref_sfr(GRID, delete_same_entity=False), atol=1e-6,
                               rtol=1e-5)
    assert not torch.allclose(plain, sfr)


def test_sfr_smoothing_is_one_dimensional_over_the_flattened_index():
    """A single-label 3×12 grid: with no path damping M is all ones, and the row-major 1-D blur
    (31 taps, zero padding) only depends on the flat index, across grid-row breaks."""
    labels = torch.zeros(1, 3, 12, dtype=torch.long)
    sfr = sfr_matrix(labels, 5.0, True)[0]
    n = 36
    kernel = torch.exp(-torch.arange(-15, 16).float() ** 2 / 50)
    kernel /= kernel.sum()
    blurred = torch.tensor([sum(kernel[o + 15] for o in range(-15, 16) if 0 <= j + o < n)
                            for j in range(n)])
    expected = (blurred / blurred.sum()).expand(n, n)
    torch.testing.assert_close(sfr, expected, atol=1e-6, rtol=1e-5)


def test_sfr_bias_is_max_normalised_fp16_with_zero_cls():
    sfr = sfr_matrix(GRID[None].repeat(2, 1, 1), 5.0, True)
    sfr[1] *= 3  # per image max
    bias = sfr_bias(sfr)
    assert bias.shape == (2, 1, 13, 13) and bias.dtype == torch.float16
    assert torch.equal(bias[:, 0, 0], torch.zeros(2, 13, dtype=torch.float16))
    assert torch.equal(bias[:, 0, :, 0], torch.zeros(2, 13, dtype=torch.float16))
    assert torch.equal(bias[0], bias[1])
    expected = (sfr[0] / sfr[0].max()).half()
    assert torch.equal(bias[0, 0, 1:, 1:], expected)


def test_attention_rows_sum_to_tau_r_and_omega_is_not_scaled():
    gen = torch.Generator().manual_seed(4)
    k = torch.randn(1, 2, 13, 8, generator=gen)
    omega = gaussian_window((3, 4))
    rcs = torch.softmax(torch.randn(1, 2, 13, 13, generator=gen), dim=-1)
    weights = resclip_attention(k, omega, rcs=rcs, rcs_weights=(2.0, 0.3))
    torch.testing.assert_close(weights.sum(-1), torch.full((1, 2, 13), 2.0))
    bias = sfr_bias(sfr_matrix(GRID[None], 5.0, True))
    with_sfr = resclip_attention(k, omega, bias, (2.2, 0.7))
    # 0.7 * bias is an fp16 product (the official quirk), promoted by the fp32 sum.
    logits = 2.2 * (0.3 * (k @ k.transpose(-1, -2)) / math.sqrt(8) + 0.7 * bias)
    torch.testing.assert_close(with_sfr, torch.softmax(logits + omega, dim=-1))


# --------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def resclip_run():
    """A randomised tiny-vit ResCLIP on a non-square 2-image batch, and its reference."""
    options = {"temp_thd": THD, "rcs_blocks": [0, 1]}
    teacher = _teacher(**options)
    images, queries = _images(2, 40, 64), _queries()
    head = teacher.features.frontier
    got = head.stages(teacher.features, images, queries, 100.0)
    ref = ref_resclip(teacher, images, queries, THD, [0, 1])
    return teacher, images, queries, got, ref


def test_run_is_a_meaningful_example(resclip_run):
    _, _, _, got, _ = resclip_run
    assert got["grid"] == (5, 8)  # non-square
    for labels in got["labels"]:
        assert len(labels.unique()) >= 2  # SFR sees several regions in each image
    assert (got["first_probs"].amax(1) < THD).any()  # the threshold acts
    assert (got["first_probs"].amax(1) >= THD).any()


def test_rcs_attention_matches_reference(resclip_run):
    _, _, _, got, ref = resclip_run
    assert got["rcs_blocks"] == (0, 1)
    torch.testing.assert_close(got["rcs"], ref["rcs"], atol=1e-6, rtol=1e-5)


def test_first_pass_matches_reference(resclip_run):
    _, _, _, got, ref = resclip_run
    torch.testing.assert_close(got["first_scores"], ref["first_scores"], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(got["first_probs"], ref["first_probs"], atol=2e-4, rtol=1e-3)


def test_label_map_and_sfr_match_reference(resclip_run):
    _, _, _, got, ref = resclip_run
    assert torch.equal(got["labels"], ref["labels"])
    torch.testing.assert_close(got["sfr"], ref["sfr"], atol=1e-6, rtol=1e-5)


def test_final_scores_match_reference(resclip_run):
    teacher, images, queries, got, ref = resclip_run
    torch.testing.assert_close(got["scores"], ref["scores"], atol=2e-5, rtol=1e-4)
    scores, is_probability = teacher.query_scores(images, queries)
    assert not is_probability and scores.dtype == torch.float32
    torch.testing.assert_close(scores, got["scores"])
    # SFR changes the scores: the second pass is not the first.
    assert (got["scores"] - got["first_scores"]).abs().max() > 1e-3


def test_batch_equals_each_image_alone(resclip_run):
    teacher, images, queries, got, _ = resclip_run
    head = teacher.features.frontier
    for i in range(2):
        alone = head.stages(teacher.features, images[i:i + 1], queries, 100.0)
        assert torch.equal(alone["labels"], got["labels"][i:i + 1])
        torch.testing.assert_close(alone["sfr"], got["sfr"][i:i + 1])
        torch.testing.assert_close(alone["scores"], got["scores"][i:i + 1], atol=1e-6,
                                   rtol=1e-5)


def test_default_blocks_and_a_size_not_multiple_of_the_patch():
    """Default options on tiny-vit (RCS block 1) at 37×61: grid 5×8, PAMR on the 37×61 image,
    partial bottom/right blocks; the reference runs on the 40×64 zero-padded image whose
    first-pass scores are cropped back, i.e. the label blocks count only the real pixels."""
    teacher = _teacher(temp_thd=THD)
    images, queries = _images(1, 37, 61, seed=5), _queries()
    got = teacher.features.frontier.stages(teacher.features, images, queries, 100.0)
    assert got["rcs_blocks"] == (1,) and got["grid"] == (5, 8)
    assert got["first_probs"].shape == (1, Q, 37, 61)
    blocks = teacher.features.blocks
    tokens, grid = teacher.features.tokens_entering(images, [1, 2])
    rcs = ref_rcs([tokens[0]], [blocks[1]])
    first = ref_last_block_scores(tokens[1], blocks[-1], teacher.clip.visual, grid, queries,
                                  rcs=rcs)
    up = F.interpolate(first, size=(40, 64), mode="bilinear", align_corners=False)[..., :37, :61]
    probs = torch.softmax(40 * ref_pamr(images, up), dim=1)
    torch.testing.assert_close(got["first_probs"], probs, atol=2e-4, rtol=1e-3)
    pixel = probs.argmax(1)[0]
    pixel[probs.amax(1)[0] < THD] = 0
    expected = torch.zeros(5, 8, dtype=torch.long)
    for r in range(5):
        for c in range(8):
            values = pixel[8 * r:8 * r + 8, 8 * c:8 * c + 8].flatten()  # fewer at the edges
            expected[r, c] = torch.mode(values).values
    assert torch.equal(got["labels"][0], expected)
    sfr = ref_sfr(expected)
    torch.testing.assert_close(got["sfr"][0], sfr, atol=1e-6, rtol=1e-5)
    final = ref_last_block_scores(tokens[1], blocks[-1], teacher.clip.visual, grid, queries,
                                  sfr=sfr[None], rcs=rcs)
    torch.testing.assert_close(got["scores"], final, atol=2e-5, rtol=1e-4)


# --------------------------------------------------------------------------- switches
def _naclip_scores(teacher, images, queries):
    naclip = MaskCLIPTeacher("tiny-vit", None, head="naclip", keep_residual=False,
                             keep_ffn=False, cache_dir=None)
    naclip.clip.load_state_dict(teacher.clip.state_dict())
    return torch.einsum("bdhw,qd->bqhw", naclip.dense_features(images), queries)


def test_both_switches_off_is_naclip():
    teacher = _teacher(use_rcs=False, use_sfr=False)
    images, queries = _images(2, 40, 56), _queries()
    scores, _ = teacher.query_scores(images, queries)
    torch.testing.assert_close(scores, _naclip_scores(teacher, images, queries), atol=1e-5,
                               rtol=1e-4)


@pytest.mark.parametrize("use_rcs, use_sfr", [(True, False), (False, True)])
def test_each_switch_alone_matches_reference_and_changes_the_output(use_rcs, use_sfr):
    options = {"temp_thd": THD, "use_rcs": use_rcs, "use_sfr": use_sfr}
    teacher = _teacher(**options)
    images, queries = _images(1, 40, 56), _queries()
    got = teacher.features.frontier.stages(teacher.features, images, queries, 100.0)
    ref = ref_resclip(teacher, images, queries, THD, [1], use_rcs, use_sfr)
    assert (got["rcs"] is None) == (not use_rcs) and (got["sfr"] is None) == (not use_sfr)
    if use_sfr:
        assert torch.equal(got["labels"], ref["labels"])
    torch.testing.assert_close(got["scores"], ref["scores"], atol=2e-5, rtol=1e-4)
    both = _teacher(temp_thd=THD)
    both.clip.load_state_dict(teacher.clip.state_dict())
    full = both.query_scores(images, queries)[0]
    naclip = _naclip_scores(teacher, images, queries)
    for other in (full, naclip):
        assert (got["scores"] - other).abs().max() > 1e-3


# --------------------------------------------------------------------------- the teacher
def test_teacher_refuses_key_smoothing_and_prompt_denoising():
    for refine in ({"key_smoothing": True, "prompt_denoising": True}, {"key_smoothing": True},
                   {"prompt_denoising": True}):
        with pytest.raises(ValueError, match="refine=none"):
            MaskCLIPTeacher("tiny-vit", None, head="resclip", cache_dir=None, refine=refine)


def test_config_builds_the_head_with_the_voc21_defaults():
    from hydra import compose, initialize_config_dir

    from src.builders import build_teacher
    from src.utils.config import PROJECT_ROOT

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="eval", overrides=["teacher=tiny", "teacher/head=resclip"])
        kspd = compose(config_name="eval",
                       overrides=["teacher=tiny", "teacher/head=resclip", "refine=kspd"])
    teacher = build_teacher(cfg)
    head = teacher.features.frontier
    assert isinstance(head, ResCLIPHead) and head.text_dependent
    assert (head.temp_thd, head.rcs_weights, head.sfr_weights) == (0.5, (2.0, 0.3), (2.2, 0.7))
    assert head.use_rcs and head.use_sfr and head.delete_same_entity
    assert head.rcs_blocks is None and head.first_pass_logit_scale == 40.0
    assert head.gaussian_std == 5.0 and teacher.features.position_resize == "peers"
    with pytest.raises(ValueError, match="refine=none"):
        build_teacher(kspd)


def test_whole_and_slide_inference_run_per_crop():
    teacher = _teacher(temp_thd=THD)
    teacher.set_vocabulary(["cat", "dog", "grass"], "single")
    images = _images(2, 32, 48, seed=6)
    probs = teacher(images)
    assert probs.shape == (2, 3, 32, 48)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 32, 48))
    head = teacher.features.frontier
    whole = head.query_scores(teacher.features, images, teacher.query_embeddings, 100.0)
    torch.testing.assert_close(teacher.feature_scores(images), whole)

    from src.models.inference import InferenceConfig

    teacher.inference = InferenceConfig(mode="slide", crop_size=(32, 32), stride=(16, 16))
    slide = teacher.feature_scores(images)
    assert slide.shape == (2, 3, 4, 6)
    # Columns 0-1 are covered by the first window only, columns 4-5 by the last: each is the
    # method run on that crop alone (first pass, PAMR, label map and SFR per crop).
    left = head.query_scores(teacher.features, images[..., :32], teacher.query_embeddings, 100.)
    right = head.query_scores(teacher.features, images[..., 16:], teacher.query_embeddings, 100.)
    torch.testing.assert_close(slide[..., :2], left[..., :2])
    torch.testing.assert_close(slide[..., 4:], right[..., 2:])
    torch.testing.assert_close(slide[..., 2:4], (left[..., 2:] + right[..., :2]) / 2)
    assert not torch.allclose(slide, whole, atol=1e-4)
    probs = teacher(images)
    assert probs.shape == (2, 3, 32, 48) and torch.isfinite(probs).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_autocast_keeps_the_head_in_fp32():
    from src.utils.precision import gpu_autocast

    teacher = _teacher(temp_thd=THD).cuda()
    images, queries = _images(2, 40, 64).cuda(), _queries().cuda()
    with gpu_autocast("cuda", "bfloat16"):
        got = teacher.features.frontier.stages(teacher.features, images, queries, 100.0)
    for name in ("rcs", "first_scores", "first_probs", "sfr", "scores"):
        assert got[name].dtype == torch.float32, name
        assert torch.isfinite(got[name]).all(), name
