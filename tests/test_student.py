"""The MaskCLIP+ student: shapes, the frozen text classifier, background, init policy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.models.student import RENAMED_CONFIG_KEYS, SegStudent

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


def test_deeplabv3plus_decoder():
    student = SegStudent(EMB, backbone="resnet18d", decoder="deeplabv3plus", pretrained=None,
                         allow_random_init=True).eval()
    assert student(torch.randn(1, 3, 64, 64)).shape == (1, 5, 16, 16)  # stride-4 decoder


def test_random_init_refused_unless_allowed():
    with pytest.raises(ValueError, match="allow_random_init"):
        SegStudent(EMB, backbone="resnet18d", pretrained=None)


# --- decoder_init: mmcv ConvModule's decoder init (official code) --------------------------------

def _decoder_convs_and_bns(student):
    convs = [m for m in student.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in student.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    return convs, bns


@pytest.mark.parametrize("decoder", ["deeplabv2", "deeplabv3plus"])
def test_decoder_init_kaiming_is_mmcv_convmodule_init_of_the_decoder_only(decoder):
    torch.manual_seed(0)
    ref = tiny(decoder=decoder, decoder_init="torch", background=True)
    torch.manual_seed(0)
    student = tiny(decoder=decoder, decoder_init="kaiming", background=True)
    convs, bns = _decoder_convs_and_bns(student)
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
    assert depthwise == (5 if decoder == "deeplabv3plus" else 0)  # 3 ASPP + 2 fuse
    for bn in bns:
        assert (bn.weight == 1).all() and (bn.bias == 0).all()
    # backbone untouched (same seed → same weights as decoder_init=torch), classifier untouched
    for (k, a), (k2, b) in zip(ref.backbone.state_dict().items(),
                               student.backbone.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    torch.testing.assert_close(student.class_embeddings, EMB, rtol=0, atol=0)
    assert student.bg_embedding.shape == (1, 16)
    # torch (the default) keeps PyTorch's init, kaiming_uniform(a=√5) on fan_in: the std check
    # above fails for most of its convs (the test can tell the two inits apart)
    ref_convs, _ = _decoder_convs_and_bns(ref)
    kaiming_like = [
        abs(c.weight.std().item() / (2.0 / (c.weight.shape[0] * c.weight[0, 0].numel())) ** 0.5 - 1)
        < 0.1 for c in ref_convs]
    assert sum(kaiming_like) < len(ref_convs) / 2


def test_decoder_init_default_is_torch_and_every_config_sets_torch():
    import inspect
    from pathlib import Path

    import yaml

    assert inspect.signature(SegStudent).parameters["decoder_init"].default == "torch"
    configs = sorted((Path(__file__).parents[1] / "conf" / "student").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = yaml.safe_load(path.read_text())
        assert cfg["decoder_init"] == "torch", path
        assert cfg["decoder"] in ("deeplabv2", "deeplabv3plus"), path
        # the old spellings stay as null placeholders, so that old command lines compose
        assert {k: cfg[k] for k in RENAMED_CONFIG_KEYS} == dict.fromkeys(RENAMED_CONFIG_KEYS), path


def test_decoder_init_invalid_names_the_key():
    with pytest.raises(ValueError, match="student.decoder_init"):
        tiny(decoder_init="xavier")


# --- the rename head → decoder: old config keys and old state dicts still work ------------------

@pytest.mark.parametrize("old,new,value", [("head", "decoder", "deeplabv3plus"),
                                           ("head_init", "decoder_init", "kaiming"),
                                           ("head_dilations", "decoder_dilations", (1, 2, 3, 4))])
def test_old_config_keys_warn_name_the_new_key_and_build_the_same_student(old, new, value):
    torch.manual_seed(0)
    with pytest.warns(FutureWarning, match=rf"student\.{old} is deprecated: use student\.{new}"):
        legacy = tiny(**{old: value})
    torch.manual_seed(0)
    current = tiny(**{new: value})
    assert type(legacy.decoder) is type(current.decoder)
    for (k, a), (k2, b) in zip(legacy.state_dict().items(), current.state_dict().items(),
                               strict=True):
        assert k == k2 and torch.equal(a, b), k


def test_canonical_student_config_maps_old_keys_and_drops_null_placeholders():
    from src.models.student import canonical_student_config

    old = {"_target_": "src.models.student.SegStudent", "backbone": "resnet10t",
           "head": "deeplabv2", "head_init": "kaiming", "head_dilations": [1, 2, 3, 4]}
    assert canonical_student_config(old) == {
        "_target_": "src.models.student.SegStudent", "backbone": "resnet10t",
        "decoder": "deeplabv2", "decoder_init": "kaiming", "decoder_dilations": [1, 2, 3, 4]}
    # a command line of today: new keys set, old ones the configs' null placeholders
    today = {"decoder": "deeplabv2", "decoder_init": "torch", "head": None, "head_init": None,
             "head_dilations": None}
    assert canonical_student_config(today) == {"decoder": "deeplabv2", "decoder_init": "torch"}
    # an old command line on today's config (student.head=deeplabv3plus): the old key wins
    assert canonical_student_config({**today, "head": "deeplabv3plus"})["decoder"] == \
        "deeplabv3plus"


def test_state_dict_with_old_head_keys_loads_into_the_decoder():
    from src.models.student import rename_legacy_keys

    torch.manual_seed(0)
    saved = tiny(background=True)
    old = {("head." + k[len("decoder."):] if k.startswith("decoder.") else k): v
           for k, v in saved.state_dict().items()}
    assert any(k.startswith("head.") for k in old)
    assert not any(k.startswith("decoder.") for k in old)
    assert list(rename_legacy_keys(old)) == list(saved.state_dict())
    fresh = tiny(background=True)
    assert not fresh.load_state_dict(old).missing_keys  # strict: every key found
    for k, v in saved.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    # with a prefix, as inside a LitModule's checkpoint (student.head.* → student.decoder.*)
    prefixed = rename_legacy_keys({"student.head.x": 1, "student.backbone.y": 2, "head.z": 3},
                                  "student.")
    assert prefixed == {"student.decoder.x": 1, "student.backbone.y": 2, "head.z": 3}


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
