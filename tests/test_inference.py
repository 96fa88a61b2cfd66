"""Whole-image and sliding-window inference."""

from __future__ import annotations

import pytest
import torch

from src.models.inference import InferenceConfig, slide_scores, window_starts


def test_window_starts_like_mmseg():
    assert window_starts(500, 224, 112) == [0, 112, 224, 276]
    assert window_starts(224, 224, 112) == [0]
    assert window_starts(100, 224, 112) == [0]


def test_slide_equals_whole_when_window_covers_image(tiny_vit):
    tiny_vit.set_vocabulary(["cat", "dog", "grass"], "single")
    images = torch.randn(2, 3, 40, 56)
    whole = tiny_vit(images)
    tiny_vit.inference = InferenceConfig(mode="slide", crop_size=(64, 64), stride=(32, 32))
    torch.testing.assert_close(tiny_vit(images), whole)


def test_batched_slide_equals_one_crop_at_a_time_loop(tiny_vit):
    """The batched accumulation equals the peers' loop: each crop alone, averaged at stride."""
    tiny_vit.set_vocabulary(["cat", "dog", "grass"], "single")
    images = torch.randn(1, 3, 48, 80)
    crop, stride, s = 32, 16, tiny_vit.output_stride
    fn = lambda x: tiny_vit.query_scores(x)[0]  # noqa: E731
    cfg = InferenceConfig(mode="slide", crop_size=(crop, crop), stride=(stride, stride),
                          crop_batch_size=5)
    batched = slide_scores(fn, images, s, cfg)
    total = torch.zeros(1, 3, 48 // s, 80 // s)
    count = torch.zeros(1, 1, 48 // s, 80 // s)
    for y in window_starts(48, crop, stride):
        for x in window_starts(80, crop, stride):
            out = fn(images[:, :, y:y + crop, x:x + crop])
            total[..., y // s:(y + crop) // s, x // s:(x + crop) // s] += out
            count[..., y // s:(y + crop) // s, x // s:(x + crop) // s] += 1
    torch.testing.assert_close(batched, total / count)
    # crop batch size changes nothing
    cfg1 = InferenceConfig(mode="slide", crop_size=(crop, crop), stride=(stride, stride),
                           crop_batch_size=1)
    torch.testing.assert_close(slide_scores(fn, images, s, cfg1), batched)


def test_slide_rejects_crop_not_multiple_of_stride(tiny_vit):
    cfg = InferenceConfig(mode="slide", crop_size=(30, 30), stride=(16, 16))
    with pytest.raises(ValueError, match="multiple of the teacher's output stride 8"):
        slide_scores(lambda x: x, torch.randn(1, 3, 40, 40), 8, cfg)


def test_inference_config_validates():
    with pytest.raises(ValueError, match="mode"):
        InferenceConfig(mode="tiles")
    with pytest.raises(ValueError, match="crop_batch_size"):
        InferenceConfig(crop_batch_size=0)


def test_resnet_whole_image_upsampled_to_input(tiny_rn):
    tiny_rn.set_vocabulary(["cat", "dog"], "single")
    out = tiny_rn(torch.randn(1, 3, 70, 90))
    assert out.shape == (1, 2, 70, 90)
    assert torch.isfinite(out).all()
