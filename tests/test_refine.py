"""Key smoothing and prompt denoising on small tensors worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from src.models.refine import RefineConfig, key_smoothing, prompt_denoising, refine_scores


def test_prompt_denoising_removes_classes_never_confident():
    # 1 image, 3 classes, 1×2 positions. With T=1, position 0 favours class 0 strongly,
    # position 1 favours class 1 strongly; class 2 is never above 0.5 anywhere.
    logits = torch.tensor([[[[5.0, 0.0]], [[0.0, 5.0]], [[1.0, 1.0]]]])
    out = prompt_denoising(logits, thresh=0.5, temperature=1.0)
    # softmax at pos 0: e^5/(e^5+1+e) ≈ 0.976 → class 0 kept; class 1 likewise at pos 1
    assert torch.equal(out[:, :2], logits[:, :2])
    assert torch.equal(out[:, 2], torch.full((1, 1, 2), -100.0))


def test_prompt_denoising_is_per_image():
    a = torch.tensor([[[5.0]], [[0.0]]])
    b = torch.tensor([[[0.0]], [[5.0]]])
    out = prompt_denoising(torch.stack([a, b]), thresh=0.5, temperature=1.0)
    assert out[0, 1].item() == -100.0 and out[0, 0].item() == 5.0
    assert out[1, 0].item() == -100.0 and out[1, 1].item() == 5.0


def test_key_smoothing_by_hand_spatial_norm():
    # 2 positions (h=1, w=2), 2 classes, temperature 1 (ln-odds chosen for easy softmax).
    logits = torch.tensor([[[[math.log(3.0), 0.0]], [[0.0, 0.0]]]])  # P0=(.75,.25), P1=(.5,.5)
    keys = torch.tensor([[[3.0, 0.0], [4.0, 1.0]]])  # B×hw×C
    # Official normalisation is over the token axis (dim=1): column 0 → (3,4)/5, column 1 → (0,1)
    kn = torch.tensor([[0.6, 0.0], [0.8, 1.0]])
    affinity = kn @ kn.T  # [[0.36, 0.48], [0.48, 1.64]]
    probs = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    expected = affinity @ probs  # both positions have max prob < 1.0 → both smoothed
    out = key_smoothing(logits, keys, thresh=1.0, temperature=1.0)
    torch.testing.assert_close(out[0, :, 0, :].T, expected)
    torch.testing.assert_close(expected[0], torch.tensor([0.36 * 0.75 + 0.48 * 0.5,
                                                          0.36 * 0.25 + 0.48 * 0.5]))


def test_key_smoothing_token_norm_is_cosine_and_threshold_keeps_confident():
    logits = torch.tensor([[[[math.log(3.0), 0.0]], [[0.0, 0.0]]]])
    keys = torch.tensor([[[3.0, 0.0], [4.0, 3.0]]])
    # per-token cosine: k0=(1,0), k1=(0.8,0.6) → affinity [[1, .8], [.8, 1]]
    affinity = torch.tensor([[1.0, 0.8], [0.8, 1.0]])
    probs = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    smoothed = affinity @ probs
    out = key_smoothing(logits, keys, thresh=0.6, temperature=1.0, key_norm="token")
    # position 0 (max .75 >= .6) keeps P; position 1 (max .5 < .6) takes the smoothed value
    torch.testing.assert_close(out[0, :, 0, 0], probs[0])
    torch.testing.assert_close(out[0, :, 0, 1], smoothed[1])


def test_refine_order_pd_then_ks():
    logits = torch.randn(1, 4, 3, 3)
    keys = torch.randn(1, 9, 5)
    cfg = RefineConfig(key_smoothing=True, prompt_denoising=True, pd_thresh=0.5)
    out, is_prob = refine_scores(logits, keys, cfg, temperature=100.0)
    expected = key_smoothing(prompt_denoising(logits, 0.5, 100.0), keys, 1.0, 100.0)
    assert is_prob
    torch.testing.assert_close(out, expected)
    plain, is_prob = refine_scores(logits, None, RefineConfig(), 100.0)
    assert not is_prob and torch.equal(plain, logits)


def test_refine_config_validates():
    with pytest.raises(ValueError, match="key_norm"):
        RefineConfig(key_norm="rows")
    with pytest.raises(ValueError, match="temperature"):
        RefineConfig(temperature="hot")
