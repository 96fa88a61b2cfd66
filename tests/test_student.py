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


# --- head_init: mmcv ConvModule's decoder init (official code) -----------------------------------

def _backbone_and_head(student):
    convs = [m for m in student.head.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in student.head.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    return convs, bns


@pytest.mark.parametrize("head", ["deeplabv2", "deeplabv3plus"])
def test_head_init_kaiming_is_mmcv_convmodule_init_of_the_decoder_only(head):
    torch.manual_seed(0)
    ref = tiny(head=head, head_init="torch", background=True)
    torch.manual_seed(0)
    student = tiny(head=head, head_init="kaiming", background=True)
    convs, bns = _backbone_and_head(student)
    assert convs and bns
    depthwise = 0
    for conv in convs:
        w = conv.weight
        # PyTorch's fan_out (also for depthwise/grouped convs): out_channels · kh · kw
        fan_out = w.shape[0] * w.shape[2] * w.shape[3]
        want = (2.0 / fan_out) ** 0.5
        assert abs(w.std().item() / want - 1) < 0.1, (tuple(w.shape), w.std().item(), want)
        assert abs(w.mean().item()) < 0.1 * want
        assert conv.bias is None or (conv.bias == 0).all()
        depthwise += conv.groups > 1
    assert depthwise == (5 if head == "deeplabv3plus" else 0)  # 3 ASPP + 2 fuse
    for bn in bns:
        assert (bn.weight == 1).all() and (bn.bias == 0).all()
    # backbone untouched (same seed → same weights as head_init=torch), classifier untouched
    for (k, a), (k2, b) in zip(ref.backbone.state_dict().items(),
                               student.backbone.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    torch.testing.assert_close(student.class_embeddings, EMB, rtol=0, atol=0)
    assert student.bg_embedding.shape == (1, 16)
    # torch (the default) keeps PyTorch's init, kaiming_uniform(a=√5) on fan_in: the std check
    # above fails for most of its convs (the test can tell the two inits apart)
    ref_convs, _ = _backbone_and_head(ref)
    kaiming_like = [
        abs(c.weight.std().item() / (2.0 / (c.weight.shape[0] * c.weight[0, 0].numel())) ** 0.5 - 1)
        < 0.1 for c in ref_convs]
    assert sum(kaiming_like) < len(ref_convs) / 2


def test_head_init_default_is_torch_and_every_config_sets_torch():
    import inspect
    from pathlib import Path

    import yaml

    assert inspect.signature(SegStudent).parameters["head_init"].default == "torch"
    configs = sorted((Path(__file__).parents[1] / "conf" / "student").glob("*.yaml"))
    assert configs
    for path in configs:
        assert yaml.safe_load(path.read_text())["head_init"] == "torch", path


def test_head_init_invalid_names_the_key():
    with pytest.raises(ValueError, match="student.head_init"):
        tiny(head_init="xavier")


# --- student.pretrained=<file>: timm or mmcv ResNet-V1c names (official resnet101_v1c file) -----

# The inverse of src.models.student.mmcv_resnet_to_timm, written out here on purpose.
TIMM_STEM_TO_MMCV = {"conv1.0.": "stem.0.", "conv1.1.": "stem.1.", "conv1.3.": "stem.3.",
                     "conv1.4.": "stem.4.", "conv1.6.": "stem.6.", "bn1.": "stem.7."}


def _to_mmcv_names(state):
    out = {}
    for key, value in state.items():
        for old, new in TIMM_STEM_TO_MMCV.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def _random_backbone_state(name, seed, **kwargs):
    """A timm features_only backbone's state with every tensor (BN stats too) randomised."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(name, features_only=True, pretrained=False, output_stride=8,
                              out_indices=(1, 4), **kwargs)
    state = {}
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            state[k] = torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v)
        else:
            state[k] = torch.randint_like(v, 1, 1000)
    return state


def test_pretrained_file_in_mmcv_resnet_v1c_names_loads_exactly(tmp_path):
    original = _random_backbone_state("resnet18d", seed=1)
    mmcv = _to_mmcv_names(original)
    assert "stem.7.running_var" in mmcv and "conv1.0.weight" not in mmcv
    segmentor = {f"backbone.{k}": v for k, v in mmcv.items()}
    segmentor["backbone.fc.weight"] = torch.randn(1000, 512)
    segmentor["decode_head.conv_seg.weight"] = torch.randn(21, 512, 1, 1)  # mmseg checkpoint
    path = tmp_path / "resnet18_v1c_mmcv.pth"
    torch.save({"state_dict": segmentor, "meta": {"note": "mmseg-style"}}, path)

    student = SegStudent(EMB, backbone="resnet18d", pretrained=str(path))
    loaded = student.backbone.state_dict()
    assert loaded.keys() == original.keys()
    for k, v in original.items():
        assert torch.equal(loaded[k], v), k

    # a raw mmcv state dict with a DataParallel prefix and the classifier: same result
    raw = tmp_path / "raw.pth"
    torch.save({"module." + k: v for k, v in {**mmcv, "fc.bias": torch.zeros(1000)}.items()}, raw)
    student = SegStudent(EMB, backbone="resnet18d", pretrained=str(raw), channels_last=True)
    for k, v in student.backbone.state_dict().items():
        assert torch.equal(v, original[k]), k


def test_pretrained_file_in_timm_names_still_loads(tmp_path):
    from src.models.student import detect_resnet_naming, mmcv_resnet_to_timm

    original = _random_backbone_state("resnet18d", seed=2)
    assert detect_resnet_naming(original) == "timm"
    assert detect_resnet_naming(_to_mmcv_names(original)) == "mmcv ResNet-V1c"
    assert mmcv_resnet_to_timm(_to_mmcv_names(original)).keys() == original.keys()
    path = tmp_path / "timm.pth"
    torch.save({**original, "fc.weight": torch.randn(1000, 512), "fc.bias": torch.zeros(1000)},
               path)
    student = SegStudent(EMB, backbone="resnet18d", pretrained=str(path))
    for k, v in student.backbone.state_dict().items():
        assert torch.equal(v, original[k]), k
    wrapped = tmp_path / "model.pth"
    torch.save({"model": original}, wrapped)
    student = SegStudent(EMB, backbone="resnet18d", pretrained=str(wrapped))
    for k, v in student.backbone.state_dict().items():
        assert torch.equal(v, original[k]), k


def _write(path, state):
    torch.save({"state_dict": state}, path)
    return path


@pytest.mark.parametrize("case", ["other_architecture", "wrong_shape", "extra_key", "missing_key",
                                  "empty_file", "truncated_file", "not_a_state_dict"])
def test_pretrained_file_that_does_not_fit_raises_naming_the_file(tmp_path, case):
    mmcv = _to_mmcv_names(_random_backbone_state("resnet18d", seed=3))
    path = tmp_path / f"{case}.pth"
    if case == "other_architecture":  # a narrow ResNet-10-T, in mmcv names
        _write(path, _to_mmcv_names(_random_backbone_state(
            "resnet10t", seed=3, channels=[32, 64, 128, 256])))
        match = "mmcv ResNet-V1c"
    elif case == "wrong_shape":
        mmcv["layer1.0.conv1.weight"] = torch.randn(64, 64, 1, 1)
        _write(path, mmcv)
        match = r"layer1\.0\.conv1\.weight: file \(64, 64, 1, 1\) vs model \(64, 64, 3, 3\)"
    elif case == "extra_key":  # e.g. a deeper ResNet's extra blocks: all else fits
        mmcv["layer3.9.conv1.weight"] = torch.randn(256, 256, 3, 3)
        _write(path, mmcv)
        match = r"1 unexpected.*layer3\.9\.conv1\.weight"
    elif case == "missing_key":
        del mmcv["stem.7.weight"]
        _write(path, mmcv)
        match = r"1 missing.*bn1\.weight"
    elif case == "empty_file":
        path.write_bytes(b"")
        match = "not a loadable torch file"
    elif case == "truncated_file":
        _write(path, mmcv)
        path.write_bytes(path.read_bytes()[:4096])
        match = "not a loadable torch file"
    else:  # a torch file holding no tensors
        torch.save({"epoch": 3}, path)
        match = "unknown naming"
    with pytest.raises(ValueError, match=match) as info:
        SegStudent(EMB, backbone="resnet18d", pretrained=str(path))
    assert str(path) in str(info.value)
    if "loadable" not in match:
        assert "student.pretrained=timm" in str(info.value)
