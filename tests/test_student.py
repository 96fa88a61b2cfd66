"""The MaskCLIP+ student: shapes, the frozen text classifier, background, init policy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.models.student import SegStudent

EMB = F.normalize(torch.randn(5, 16), dim=-1)


def tiny(**kwargs):
    return SegStudent(EMB, backbone="resnet18d", pretrained=None, allow_random_init=True,
                      **kwargs)


def test_deeplabv2_output_stride_8_and_classifier_is_text_embeddings():
    student = tiny().eval()
    images = torch.randn(2, 3, 64, 80)
    logits = student(images)
    assert logits.shape == (2, 5, 8, 10)
    feats = student.features(images)
    torch.testing.assert_close(logits, torch.einsum("bdhw,cd->bchw", feats, EMB))  # no bias
    assert not student.class_embeddings.requires_grad
    assert "class_embeddings" in student.state_dict()  # a checkpoint alone can predict


def test_background_embedding_prepended_and_learnable():
    student = tiny(background=True).eval()
    logits = student(torch.randn(1, 3, 64, 64))
    assert logits.shape[1] == 6
    assert student.bg_embedding.requires_grad
    torch.testing.assert_close(student.classifier[0], F.normalize(student.bg_embedding[0], dim=0))


def test_deeplabv3plus_head():
    student = SegStudent(EMB, backbone="resnet18d", head="deeplabv3plus", pretrained=None,
                         allow_random_init=True).eval()
    assert student(torch.randn(1, 3, 64, 64)).shape == (1, 5, 16, 16)  # stride-4 decoder


def test_random_init_refused_unless_allowed():
    with pytest.raises(ValueError, match="allow_random_init"):
        SegStudent(EMB, backbone="resnet18d", pretrained=None)
