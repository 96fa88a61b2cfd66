"""PAMR: a conv-kernel reference (the original formulation), tiling exactness, memory guard."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.models.postproc import PostprocConfig, pamr, pamr_bytes, pamr_whole


def _kernels(center: float, with_center_row: bool):
    """3×3 kernels, one per neighbour (and the centre itself when asked)."""
    kernels = []
    for i in range(3):
        for j in range(3):
            if (i, j) == (1, 1) and not with_center_row:
                continue
            k = torch.zeros(1, 3, 3)
            k[0, 1, 1] += center
            k[0, i, j] += 1.0 if (i, j) != (1, 1) or with_center_row else 0.0
            kernels.append(k)
    return torch.stack(kernels)


def _conv_neighbours(x, kernel, dilations):
    b, c, h, w = x.shape
    flat = x.reshape(b * c, 1, h, w)
    outs = [F.conv2d(F.pad(flat, [d] * 4, mode="replicate"), kernel, dilation=d)
            for d in dilations]
    return torch.cat(outs, 1).reshape(b, c, -1, h, w)


def ref_pamr(image, scores, iterations, dilations):
    """PAMR as published: fixed 3×3 shift kernels through conv2d."""
    diff = _kernels(-1.0, False)   # neighbour − centre
    copy = _kernels(0.0, False)    # neighbour
    window = _kernels(0.0, True)   # neighbours and centre
    neigh_std = _conv_neighbours(image, window, dilations).std(2, keepdim=True)
    aff = -_conv_neighbours(image, diff, dilations).abs() / (1e-8 + 0.1 * neigh_std)
    aff = aff.mean(1, keepdim=True).softmax(2)
    for _ in range(iterations):
        scores = (_conv_neighbours(scores, copy, dilations) * aff).sum(2)
    return scores


def test_pamr_matches_the_published_formulation():
    torch.manual_seed(0)
    image, scores = torch.randn(2, 3, 37, 45), torch.randn(2, 4, 37, 45)
    torch.testing.assert_close(pamr_whole(image, scores, 3, (2, 5)),
                               ref_pamr(image, scores, 3, (2, 5)), atol=1e-5, rtol=1e-5)


def test_pamr_follows_image_edges():
    """Scores blur within a flat region but not across a strong image edge."""
    image = torch.zeros(1, 3, 32, 32)
    image[..., 16:] = 10.0
    scores = torch.zeros(1, 2, 32, 32)
    scores[:, 0, :, :16] = 1.0
    scores[:, 1, :, 16:] = 1.0
    scores[:, :, 8, 4] = torch.tensor([0.0, 1.0])  # a wrong pixel inside the left region
    out = pamr_whole(image, scores + 0.01 * torch.randn_like(scores), 10, (1, 2))
    labels = out.argmax(1)[0]
    assert (labels[:, :16] == 0).all() and (labels[:, 16:] == 1).all()


def test_tiled_pamr_equals_whole_image():
    torch.manual_seed(1)
    image, scores = torch.randn(1, 3, 150, 130), torch.randn(1, 6, 150, 130)
    config = PostprocConfig("pamr", iterations=3, dilations=(3, 6),
                            max_memory_mb=pamr_bytes(100, 100, 6, (3, 6)) / 2**20)
    torch.testing.assert_close(pamr(image, scores, config), pamr_whole(image, scores, 3, (3, 6)),
                               atol=1e-5, rtol=1e-5)


def test_pamr_skips_with_a_warning_when_nothing_fits():
    image, scores = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    config = PostprocConfig("pamr", iterations=2, dilations=(2,), max_memory_mb=0.01)
    with pytest.warns(UserWarning, match="PAMR skipped"):
        out = pamr(image, scores, config)
    assert torch.equal(out, scores)


def test_teacher_and_labeller_apply_pamr(tiny_vit):
    from src.models.labeller import DenseLabeller

    tiny_vit.set_vocabulary(["red", "green", "blue"], "single")
    image = torch.randn(1, 3, 48, 56)
    plain = tiny_vit(image)
    tiny_vit.postproc = PostprocConfig("pamr", iterations=2, dilations=(2, 4))
    refined = tiny_vit(image)
    assert not torch.allclose(plain, refined)
    labeller = DenseLabeller(tiny_vit, tiny_vit.vocabulary, tiny_vit.output_stride)
    _, _, probs = labeller.label(image[0], keep_probs=True)
    torch.testing.assert_close(probs, refined[0], atol=1e-5, rtol=1e-4)


def test_postproc_config_validation():
    with pytest.raises(ValueError, match="none or pamr"):
        PostprocConfig("crf")
