"""The one labelling pipeline (src.models.pipeline) and the teacher's parts.

Each new option is checked against a plain-torch reference written here; the two consumers
(``MaskCLIPTeacher.forward`` for evaluation, ``DenseLabeller`` for labels) must agree.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from src.models.inference import InferenceConfig
from src.models.labeller import DenseLabeller, StudentScorer
from src.models.pipeline import DenseScorer, LabellingPipeline
from src.models.postproc import PostprocConfig, drop_small_classes, kept_classes
from src.prompts.vocabulary import ClassVocabulary
from tests.test_teacher import randomize_

VOCAB = ClassVocabulary.from_names(["sky", "tree", "road", "car"])


class LinearScorer(nn.Module):
    """A local dense model: per-cell 1×1 projection of s×s average-pooled pixels (stride s)."""

    def __init__(self, classes: int = 4, stride: int = 8) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, classes, 1)
        self.output_stride = stride
        self.postproc = PostprocConfig()

    def crop_scores(self, crops):
        pooled = F.avg_pool2d(crops, self.output_stride, ceil_mode=True)
        return self.proj(pooled)

    def scores_to_probs(self, scores, inplace=False):
        return torch.softmax(scores, 1)


@pytest.fixture
def scorer():
    torch.manual_seed(3)
    return LinearScorer().eval()


def reference_pixel_average(model, image, crop, stride, pad_multiple=None):
    """The peers' slide inference, written plainly: windows over the unpadded image, each crop's
    scores upsampled to the crop (symmetric padding cut back), summed and divided by the count."""
    _, _, height, width = image.shape
    canvas = torch.zeros(1, 4, height, width)
    count = torch.zeros(1, 1, height, width)
    ys = max(height - crop + stride - 1, 0) // stride + 1
    xs = max(width - crop + stride - 1, 0) // stride + 1
    for i in range(ys):
        for j in range(xs):
            y1, x1 = i * stride, j * stride
            y2, x2 = min(y1 + crop, height), min(x1 + crop, width)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            window = image[..., y1:y2, x1:x2]
            h, w = window.shape[-2:]
            if pad_multiple:
                ph, pw = -h % pad_multiple, -w % pad_multiple
                top, left = ph // 2, pw // 2
                padded = F.pad(window, (left, pw - left, top, ph - top))
                up = F.interpolate(model.crop_scores(padded), size=padded.shape[-2:],
                                   mode="bilinear", align_corners=False)
                up = up[..., top:top + h, left:left + w]
            else:
                ph, pw = -h % model.output_stride, -w % model.output_stride
                padded = F.pad(window, (0, pw, 0, ph))
                up = F.interpolate(model.crop_scores(padded), size=padded.shape[-2:],
                                   mode="bilinear", align_corners=False)[..., :h, :w]
            canvas[..., y1:y2, x1:x2] += up
            count[..., y1:y2, x1:x2] += 1
    return canvas / count


@pytest.mark.parametrize("pad_multiple", [None, 24])
def test_pixel_averaging_matches_the_peers_slide_inference(scorer, pad_multiple):
    image = torch.randn(1, 3, 52, 70)
    config = InferenceConfig(mode="slide", crop_size=32, stride=16, average="pixel",
                             pad="symmetric" if pad_multiple else "corner",
                             pad_multiple=pad_multiple)
    scores, stride = LabellingPipeline(config).scores(scorer, image)
    assert stride == 1 and scores.shape == (1, 4, 52, 70)
    expected = reference_pixel_average(scorer, image, 32, 16, pad_multiple)
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=1e-5)


def test_pixel_whole_equals_feature_whole_upsampled(scorer):
    """One window: averaging per pixel or at feature stride gives the same probabilities."""
    image = torch.randn(2, 3, 44, 60)
    feature = LabellingPipeline(InferenceConfig()).probabilities(scorer, image)
    pixel = LabellingPipeline(InferenceConfig(average="pixel")).probabilities(scorer, image)
    torch.testing.assert_close(pixel, feature, atol=1e-6, rtol=1e-5)


def test_symmetric_padding_needs_pixel_averaging():
    with pytest.raises(ValueError, match="inference.average=pixel"):
        InferenceConfig(pad="symmetric")
    with pytest.raises(ValueError, match="inference.average"):
        InferenceConfig(average="mean")


def test_area_threshold_by_hand():
    labels = torch.tensor([[0, 1, 1, 1], [1, 1, 2, 3], [1, 1, 1, 1]])
    # Foreground: 9 pixels of class 1, 1 of class 2, 1 of class 3 → 11; 10% is 1.1.
    assert kept_classes(labels, 0.1).tolist() == [0, 1]
    assert kept_classes(labels, 0.05).tolist() == [0, 1, 2, 3]
    probs = torch.tensor([0.1, 0.5, 0.3, 0.1]).view(1, 4, 1, 1).repeat(1, 1, 3, 4)
    probs[0, :, 1, 2] = torch.tensor([0.1, 0.2, 0.6, 0.1])  # class 2 wins here only
    out = drop_small_classes(probs.clone(), 0.2)
    assert out[0, 2].abs().sum() == 0 and out[0, 3].abs().sum() == 0
    assert out[0, :, 1, 2].argmax() == 1  # the dropped class's pixel goes to the runner-up


@pytest.mark.parametrize("inference", [
    InferenceConfig(),
    InferenceConfig(mode="slide", crop_size=32, stride=16),
    InferenceConfig(mode="slide", crop_size=32, stride=16, average="pixel"),
    InferenceConfig(mode="slide", crop_size=32, stride=16, average="pixel", pad="symmetric",
                    pad_multiple=24),
])
@pytest.mark.parametrize("area_threshold", [None, 0.3])
def test_evaluation_and_labelling_agree(tiny_vit, inference, area_threshold):
    """forward (evaluation) and DenseLabeller (tiled labels) are the same pipeline: at the input
    size their argmax and top probability agree."""
    randomize_(tiny_vit.clip.visual, 0.5)
    tiny_vit.set_vocabulary(VOCAB, "single")
    tiny_vit.inference = inference
    tiny_vit.postproc = PostprocConfig(area_threshold=area_threshold)
    images = torch.randn(2, 3, 56, 72)
    probs = tiny_vit(images)
    labeller = DenseLabeller(tiny_vit, VOCAB, tiny_vit.output_stride, inference,
                             max_elements=4 * 72 * 5)  # several tiles per image
    for image_probs, (labels, confidence, _) in zip(
            probs, labeller.label_batch(images, [None, None])):
        top, expected = image_probs.max(0)
        assert torch.equal(labels, expected)
        torch.testing.assert_close(confidence, top, atol=1e-5, rtol=1e-5)


def test_area_threshold_changes_labels_only_when_a_predicted_class_is_small(tiny_vit):
    randomize_(tiny_vit.clip.visual, 0.5)
    tiny_vit.set_vocabulary(VOCAB, "single")
    images = torch.randn(1, 3, 64, 64)
    plain = tiny_vit(images).argmax(1)
    tiny_vit.postproc = PostprocConfig(area_threshold=0.99)  # drops every foreground class
    filtered = tiny_vit(images).argmax(1)
    assert (filtered == 0).all() and (plain != 0).any()


def test_the_teacher_is_a_dense_scorer_and_a_student_gets_wrapped(tiny_vit):
    assert isinstance(tiny_vit, DenseScorer)
    network = nn.Conv2d(3, 4, 8, stride=8)
    labeller = DenseLabeller(network, VOCAB, 8)
    assert isinstance(labeller.model, StudentScorer)
    image = torch.randn(3, 40, 48)
    labels, confidence, probs = labeller.label(image, keep_probs=True)
    expected = torch.softmax(F.interpolate(network(image[None]), size=(40, 48), mode="bilinear",
                                           align_corners=False), 1)[0]
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(labels, expected.argmax(0))


# ---------------------------------------------------------------- the feature module


def test_tokens_entering_any_block_and_their_qkv(tiny_vit):
    """DenseCLIP exposes the tokens entering every block and each block's q/k/v, equal to
    running open_clip's blocks one by one and splitting in_proj by hand."""
    features = tiny_vit.features
    randomize_(features.clip.visual)
    images = torch.randn(2, 3, 40, 56)
    x, grid = features.embed(images)
    assert grid == (5, 7) and x.shape[1] == 1 + 35
    expected = [x]
    for block in features.blocks:
        expected.append(block(expected[-1]))
    wanted = list(range(features.num_blocks + 1))
    found, _ = features.tokens_entering(images, wanted[::-1])  # any order, one pass
    for got, want in zip(found, expected[::-1]):
        torch.testing.assert_close(got, want)
    block = features.blocks[1]
    q, k, v = features.block_qkv(1, expected[1])
    width = expected[1].shape[-1]
    qkv = F.linear(block.ln_1(expected[1]), block.attn.in_proj_weight, block.attn.in_proj_bias)
    heads = block.attn.num_heads
    for got, part in zip((q, k, v), qkv.split(width, dim=-1)):
        torch.testing.assert_close(got, part.view(2, 36, heads, -1).transpose(1, 2))
    with pytest.raises(ValueError, match="out of range"):
        features.tokens_entering(images, [features.num_blocks + 1])


def test_teacher_parts_are_frozen_and_the_facade_reads_them(tiny_vit):
    assert not any(p.requires_grad for p in tiny_vit.parameters())
    tiny_vit.train()
    assert not tiny_vit.training and not tiny_vit.features.training
    assert tiny_vit.clip is tiny_vit.features.clip
    assert tiny_vit.output_stride == tiny_vit.features.output_stride == 8
    tiny_vit.set_vocabulary(VOCAB, "single")
    assert tiny_vit.query_embeddings is tiny_vit.text.query_embeddings
    assert tiny_vit.class_embeddings.shape == (4, tiny_vit.embed_dim)
    with pytest.raises(ValueError, match="unknown teacher head"):
        tiny_vit.head = "nope"
