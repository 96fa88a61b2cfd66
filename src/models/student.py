"""MaskCLIP+ student: a DeepLab segmenter whose classifier is CLIP's frozen text embeddings.

The official student (MaskCLIP §4; official configs/_base_/models/maskclip_plus_r50.py) is
DeepLabv2: a dilated ResNet-101-V1c (deep stem) at output stride 8 with an ASPP of four 3×3
convs (dilations 6/12/18/24) whose outputs are summed. DeepLabv3+ is used for zero-shot PASCAL Context. The ASPP's output width is the CLIP
text width D, and the classifier is the 1×1 map ``logits = feat · Tᵀ``. The features are not
normalised, there is no bias and no temperature. Datasets with a background class prepend a
learnable background embedding, because "background" has no good text prompt.

Backbones come from timm (``features_only=True, output_stride=8``): ``resnet101c`` / ``resnet50c``
match mmseg's ResNet-V1c deep stem. The official config initialises the backbone from
``pretrained='open-mmlab://resnet101_v1c'`` (resnet101_v1c-e67eebb6.pth, mmcv's ResNetV1c key
names); ``student.pretrained=<that file>`` works, see :func:`mmcv_resnet_to_timm`. The official
decoder is built of mmcv ``ConvModule``s, which initialise themselves Kaiming-normal (fan_out);
``student.decoder_init=kaiming`` reproduces that, see :func:`init_like_mmcv_convmodule`.

Names: the part between backbone and classifier is the *decoder* (``SegStudent.decoder``, config
keys ``student.decoder``, ``decoder_init``, ``decoder_dilations``); "head" is the teacher's
last-block variant (``teacher.head``). The student's older spellings (``head``, ``head_init``,
``head_dilations``, state-dict keys ``head.*``) are still read, see :data:`RENAMED_CONFIG_KEYS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

DecoderName = Literal["deeplabv2", "deeplabv3plus"]
DecoderInit = Literal["torch", "kaiming"]
DECODER_INITS = ("torch", "kaiming")
ResNetNaming = Literal["timm", "mmcv ResNet-V1c", "unknown"]

#: The student's config keys before the decoder was called so (old → new). Old keys are still
#: accepted, with a deprecation warning from ``SegStudent`` that names the new key.
RENAMED_CONFIG_KEYS = {"head": "decoder", "head_init": "decoder_init",
                       "head_dilations": "decoder_dilations"}
#: The student's state-dict key prefixes before the rename (old → new); loading maps them.
RENAMED_STATE_PREFIXES = {"head.": "decoder."}

V = TypeVar("V")


def canonical_student_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A student config (``student_cfg``) with the current key names.

    An old key that is set replaces its new key (it was given on purpose: an old command line
    such as ``student.head=deeplabv3plus`` or an old checkpoint's config); an old key that is
    null (the placeholders the student configs keep for old command lines) is dropped.
    """
    out = dict(cfg)
    for old, new in RENAMED_CONFIG_KEYS.items():
        if old in out:
            value = out.pop(old)
            if value is not None:
                out[new] = value
    return out


def rename_legacy_keys(state: Mapping[str, V], prefix: str = "") -> dict[str, V]:
    """``state`` with the student's old key names (``{prefix}head.*``) renamed to the current
    ones (``{prefix}decoder.*``); other keys are kept as they are, in order."""
    out = {}
    for key, value in state.items():
        for old, new in RENAMED_STATE_PREFIXES.items():
            if key.startswith(prefix + old):
                key = prefix + new + key[len(prefix + old):]
                break
        out[key] = value
    return out


def _rename_legacy_keys_hook(module, state_dict, prefix, *args) -> None:
    """``load_state_dict`` pre-hook: a checkpoint written before the rename loads."""
    renamed = rename_legacy_keys(state_dict, prefix)
    if list(renamed) != list(state_dict):
        state_dict.clear()
        state_dict.update(renamed)


@torch.no_grad()
def init_like_mmcv_convmodule(module: nn.Module) -> nn.Module:
    """Initialise every conv and norm layer in ``module`` as mmcv 1.x ``ConvModule`` does.

    The official decoders (mmseg 0.20.2 ASPP / DeepLabv3+ heads) are built of ``ConvModule``s
    (conv-BN-ReLU), whose ``__init__`` calls ``init_weights``: the conv weight is Kaiming-normal
    with ``mode='fan_out', nonlinearity='relu', a=0`` (std = sqrt(2 / fan_out), where PyTorch's
    fan_out is ``out_channels · kh · kw`` also for grouped/depthwise convs), the conv bias 0 when
    present, and the norm weight 1, bias 0. PyTorch's own default (``decoder_init=torch``) is
    Kaiming-uniform with a=sqrt(5) on fan_in, i.e. std = 1/sqrt(3 · fan_in), and BN weight 1,
    bias 0: for a ResNet-101 ASPP branch (2048→512, 3×3: fan_in 2048·9, fan_out 512·9) mmcv's
    std 0.021 is about 5x PyTorch's 0.0043.

    Apply it to the decoder only: the backbone is ImageNet-initialised and the classifier is
    CLIP's text embeddings. Returns ``module`` (initialised in place).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


# mmcv ResNetV1c's deep stem is ``stem = Sequential(conv 3→32 s2, BN, ReLU, conv 32→32, BN, ReLU,
# conv 32→64, BN, ReLU)``; timm's ``resnet*c/d`` splits the same layers into ``conv1 =
# Sequential(conv, BN, ReLU, conv, BN, ReLU, conv)`` and ``bn1`` (the stem's last BN).
_MMCV_STEM_TO_TIMM = {"stem.0.": "conv1.0.", "stem.1.": "conv1.1.", "stem.3.": "conv1.3.",
                      "stem.4.": "conv1.4.", "stem.6.": "conv1.6.", "stem.7.": "bn1."}


def detect_resnet_naming(state: dict[str, Tensor]) -> ResNetNaming:
    """Which key naming a ResNet state dict uses (after wrappers/prefixes are removed).

    ``mmcv ResNet-V1c``: the deep stem is ``stem.{0,1,3,4,6,7}.*`` (mmcv/mmseg ``ResNetV1c`` /
    ``ResNetV1d``). ``timm``: ``conv1.*`` (``conv1.{0,1,3,4,6}`` + ``bn1`` for a deep stem;
    a plain stem's ``conv1.weight`` is also torchvision's and mmcv ResNet(V1b)'s name).
    """
    if "stem.0.weight" in state and "stem.6.weight" in state:
        return "mmcv ResNet-V1c"
    if "conv1.0.weight" in state or "conv1.weight" in state:
        return "timm"
    return "unknown"


def mmcv_resnet_to_timm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename an mmcv ``ResNetV1c`` state dict to timm ``resnet*c`` names; drop ``fc.*``.

    The official student loads ``pretrained='open-mmlab://resnet101_v1c'``
    (resnet101_v1c-e67eebb6.pth) into mmcv's ResNetV1c, and our backbone is timm's
    ``resnet101c``. Only the deep stem differs: ``stem.0`` (conv 3→32, 3×3, stride 2), ``stem.1``
    (BN), ``stem.3`` (conv 32→32), ``stem.4`` (BN), ``stem.6`` (conv 32→64) → ``conv1.{0,1,3,4,6}``
    and ``stem.7`` (BN 64) → ``bn1``. ``layerN.M.{conv,bn}{1,2,3}`` and ``layerN.M.downsample.*``
    (including BN ``num_batches_tracked``) are the same in both; ``fc.*`` is the ImageNet
    classifier, which the ``features_only`` backbone has not. Tensors are not copied.
    """
    out = {}
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        for old, new in _MMCV_STEM_TO_TIMM.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def _unwrap_checkpoint(obj: object) -> dict[str, Tensor]:
    """The tensors of a raw state dict, ``{'state_dict': ...}`` or ``{'model': ...}``, without a
    ``module.`` prefix (DataParallel) and, for an mmseg segmentor checkpoint, only the
    ``backbone.*`` keys with the prefix removed (``decode_head.*`` etc. are dropped)."""
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict):
        return {}
    state = {(k[len("module."):] if k.startswith("module.") else k): v
             for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return state


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3, dilation: int = 1,
                 groups: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=pad, dilation=dilation, groups=groups,
                  bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ASPPv2Decoder(nn.Module):
    """DeepLabv2 ASPP: parallel dilated 3×3 convs (6/12/18/24), each conv-BN-ReLU, summed.

    Args:
        in_channels: backbone output channels (2048 for ResNet-50/101).
        channels: output width D (the CLIP text width).
    """

    def __init__(self, in_channels: int, channels: int,
                 dilations: tuple[int, ...] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(conv_bn_relu(in_channels, channels, 3, d) for d in dilations)

    def forward(self, features: list[Tensor]) -> Tensor:
        """features[-1]: B×C×h×w → B×D×h×w."""
        x = features[-1]
        return torch.stack([branch(x) for branch in self.branches]).sum(0)


class DepthwiseSeparableConv(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__(conv_bn_relu(in_ch, in_ch, 3, dilation, groups=in_ch),
                         conv_bn_relu(in_ch, out_ch, 1))


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabv3+: depthwise-separable ASPP (1/12/24/36 + image pooling) and a c1 skip (48 ch).

    Args:
        in_channels: backbone output channels; low_level_channels: stage-1 channels.
        channels: output width D.
    """

    def __init__(self, in_channels: int, low_level_channels: int, channels: int,
                 dilations: tuple[int, ...] = (1, 12, 24, 36)) -> None:
        super().__init__()
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                        conv_bn_relu(in_channels, channels, 1))
        self.aspp = nn.ModuleList(
            conv_bn_relu(in_channels, channels, 1) if d == 1 else
            DepthwiseSeparableConv(in_channels, channels, d) for d in dilations)
        self.bottleneck = conv_bn_relu((len(dilations) + 1) * channels, channels, 3)
        self.c1 = conv_bn_relu(low_level_channels, 48, 1)
        self.fuse = nn.Sequential(DepthwiseSeparableConv(channels + 48, channels),
                                  DepthwiseSeparableConv(channels, channels))

    def forward(self, features: list[Tensor]) -> Tensor:
        """features[0]: stage-1 map (stride 4), features[-1]: B×C×h×w → B×D×(stride-4 size)."""
        low, x = features[0], features[-1]
        pooled = F.interpolate(self.image_pool(x), size=x.shape[-2:], mode="bilinear",
                               align_corners=False)
        x = self.bottleneck(torch.cat([pooled] + [branch(x) for branch in self.aspp], dim=1))
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([x, self.c1(low)], dim=1))


class SegStudent(nn.Module):
    """DeepLab student with a frozen text-embedding classifier.

    Args:
        class_embeddings: C×D unit-norm text embeddings (frozen, saved with the student so a
            checkpoint alone can predict).
        backbone: timm ResNet name (``resnet101c``, ``resnet50c``, ``resnet18d``...).
        decoder: ``deeplabv2`` (default) or ``deeplabv3plus``.
        pretrained: None (random init), ``"timm"`` (timm's pretrained tag, online), or a local
            state-dict file for the backbone, in timm names or in mmcv ResNet-V1c names (the
            official ``open-mmlab://resnet101_v1c`` file, resnet101_v1c-e67eebb6.pth); see
            :meth:`_load_backbone`.
        background: prepend a learnable background embedding as class 0.
        allow_random_init: random init is refused unless set, because a random DeepLab on real
            data gives meaningless numbers; the offline world's small student sets it.
        output_stride: 8 as in the official student.
        decoder_dilations: ASPP dilations (default: the official 6/12/18/24, or 1/12/24/36 for
            v3+).
        backbone_kwargs: extra timm constructor arguments, e.g. narrower ``channels``.
        channels_last: keep weights and inputs NHWC. It changes memory layout, not results
            (up to float rounding). Measured per train step: ResNet-50 DeepLabv2 1.17-1.32x on the
            CPU, ResNet-101 1.13-1.16x on an H100 in bf16 (docs/bench.md, ``speedups``), the world
            student 1.09x on the CPU. The real-data student configs turn it on.
        decoder_init: initialisation of the decoder's convs and BNs. ``torch`` (default):
            PyTorch's defaults. ``kaiming``: mmcv ``ConvModule``'s rule, as in the official code
            (:func:`init_like_mmcv_convmodule`). The backbone and the classifier are untouched.
        head, head_dilations, head_init: deprecated spellings of ``decoder``,
            ``decoder_dilations`` and ``decoder_init``; when set they win, with a warning.

    State dicts written before the rename (``head.*`` keys) load into ``decoder.*``.
    """

    def __init__(self, class_embeddings: Tensor, backbone: str = "resnet101c",
                 decoder: DecoderName = "deeplabv2", pretrained: str | None = "timm",
                 background: bool = False, allow_random_init: bool = False,
                 output_stride: int = 8, decoder_dilations: Sequence[int] | None = None,
                 backbone_kwargs: dict | None = None, channels_last: bool = False,
                 decoder_init: DecoderInit = "torch", *, head: DecoderName | None = None,
                 head_dilations: Sequence[int] | None = None,
                 head_init: DecoderInit | None = None) -> None:
        super().__init__()
        deprecated = {"head": head, "head_dilations": head_dilations, "head_init": head_init}
        for old, value in deprecated.items():
            if value is not None:
                new = RENAMED_CONFIG_KEYS[old]
                warnings.warn(f"student.{old} is deprecated: use student.{new} (the student's "
                              f"decoder; 'head' is the teacher's last-block variant). Using "
                              f"student.{new}={value!r}.", FutureWarning, stacklevel=2)
        decoder = head if head is not None else decoder
        decoder_init = head_init if head_init is not None else decoder_init
        if head_dilations is not None:
            decoder_dilations = head_dilations
        if decoder_init not in DECODER_INITS:
            raise ValueError(f"student.decoder_init={decoder_init!r} is not one of "
                             f"{DECODER_INITS}: 'torch' (PyTorch's default init) or 'kaiming' "
                             "(mmcv ConvModule's, as in the official code)")
        if pretrained is None and not allow_random_init:
            raise ValueError(
                "student.pretrained is null: a randomly initialised DeepLab gives meaningless "
                "numbers on real data. Give student.pretrained=timm (online) or a local backbone "
                "file, or set student.allow_random_init=true on purpose.")
        self.backbone = timm.create_model(backbone, features_only=True,
                                          pretrained=pretrained == "timm",
                                          output_stride=output_stride, out_indices=(1, 4),
                                          **dict(backbone_kwargs or {}))
        if pretrained not in (None, "timm"):
            self._load_backbone(Path(pretrained), backbone)
        low_ch, high_ch = self.backbone.feature_info.channels()
        dim = class_embeddings.shape[1]
        dilations = tuple(decoder_dilations) if decoder_dilations else None
        if decoder == "deeplabv2":
            self.decoder = ASPPv2Decoder(high_ch, dim, dilations or (6, 12, 18, 24))
        elif decoder == "deeplabv3plus":
            self.decoder = DeepLabV3PlusDecoder(high_ch, low_ch, dim,
                                                dilations or (1, 12, 24, 36))
        else:
            raise ValueError(f"unknown student.decoder={decoder!r}; choose deeplabv2 or "
                             "deeplabv3plus")
        if decoder_init == "kaiming":  # the decoder only: not the backbone, not the classifier
            init_like_mmcv_convmodule(self.decoder)
        self.register_buffer("class_embeddings", class_embeddings.detach().clone().float())
        self.bg_embedding = nn.Parameter(torch.randn(1, dim)) if background else None
        self.channels_last = channels_last
        if channels_last:  # .to(device) later preserves the layout
            self.to(memory_format=torch.channels_last)
        self.register_load_state_dict_pre_hook(_rename_legacy_keys_hook)

    def _load_backbone(self, path: Path, name: str) -> None:
        """Load a local backbone state dict, strictly: every key with the right shape.

        Accepts timm names or mmcv ResNet-V1c names (mapped by :func:`mmcv_resnet_to_timm`), a
        raw state dict or one wrapped in ``{'state_dict': ...}`` / ``{'model': ...}``, with an
        optional ``module.`` or ``backbone.`` prefix (an mmseg segmentor checkpoint: only its
        backbone is used). ``fc.*`` is dropped. A missing BN ``num_batches_tracked`` (a step
        counter absent from checkpoints older than PyTorch 0.4.1; it does not affect outputs
        with a fixed BN momentum) keeps the model's value; any other missing, unexpected or
        mis-shaped key raises ValueError, because a silently half-loaded backbone trains as a
        partly random one.
        """
        from src.models.weights_files import UnreadableWeightsError, read_weights_file

        if not path.is_file():
            raise FileNotFoundError(f"student backbone weights {path} do not exist")
        try:
            obj = read_weights_file(path).obj
        except UnreadableWeightsError as err:  # empty, truncated, not torch, pickled objects
            raise ValueError(
                f"student.pretrained={path} is not a loadable torch file ({err.reason}). Pass "
                "a state dict saved with torch.save(model.state_dict(), ...), e.g. the official "
                "resnet101_v1c-e67eebb6.pth, or student.pretrained=timm.") from err
        if obj is None:  # a safetensors file: read its tensors
            from safetensors.torch import load_file

            obj = load_file(str(path))
        state = _unwrap_checkpoint(obj)
        naming = detect_resnet_naming(state)
        if naming == "mmcv ResNet-V1c":
            state = mmcv_resnet_to_timm(state)
        else:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        expected = self.backbone.state_dict()
        missing = [k for k in expected
                   if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in expected]
        mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                      for k, v in expected.items() if k in state and state[k].shape != v.shape]
        if missing or unexpected or mismatched:
            raise ValueError(
                f"student.pretrained={path} does not fit backbone {name!r}: the file's keys look "
                f"like {naming} naming ({len(state)} tensors after removing wrappers/prefixes/fc); "
                f"{len(missing)} missing, e.g. {missing[:3]}; {len(unexpected)} unexpected, e.g. "
                f"{unexpected[:3]}; {len(mismatched)} shape mismatches, e.g. {mismatched[:3]}. "
                f"Pass a state dict of the same architecture as {name!r}, in timm names "
                f"(timm.create_model({name!r}).state_dict()) or mmcv ResNet-V1c names (the "
                "official open-mmlab://resnet101_v1c file, resnet101_v1c-e67eebb6.pth, fits "
                "resnet101c), or student.pretrained=timm for timm's weights (online).")
        self.backbone.load_state_dict({**expected, **state}, strict=True)

    @property
    def classifier(self) -> Tensor:
        """(C[+1])×D: text embeddings, with the normalised background embedding first if any."""
        if self.bg_embedding is None:
            return self.class_embeddings
        return torch.cat([F.normalize(self.bg_embedding, dim=-1), self.class_embeddings])

    @property
    def output_stride(self) -> int:
        """Stride of the logits: the backbone's (8) for DeepLabv2, the c1 skip's (4) for v3+."""
        reductions = self.backbone.feature_info.reduction()
        return reductions[0] if isinstance(self.decoder, DeepLabV3PlusDecoder) else reductions[-1]

    def features(self, images: Tensor) -> Tensor:
        """B×3×H×W → B×D×h×w unnormalised features (h = H/8 for DeepLabv2)."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.decoder(self.backbone(images))

    def forward(self, images: Tensor) -> Tensor:
        """B×3×H×W → B×C×h×w logits, ``feat · classifierᵀ`` (no norm, no bias, as ``MaskClipPlusHead``)."""
        feats = self.features(images)
        return torch.einsum("bdhw,cd->bchw", feats, self.classifier.to(feats.dtype))


def logits_at_size(student: nn.Module, image: Tensor, output_size: Sequence[int],
                   test_resize: str = "direct") -> Tensor:
    """1×3×h×w normalised image → 1×C×H×W student logits at the original size H×W.

    ``two_step`` resizes to the network input h×w first, then to H×W (mmseg's ``encode_decode``
    + ``whole_inference``); ``direct`` resizes once.
    """
    logits = student(image)
    if test_resize == "two_step":
        logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear",
                               align_corners=False)
    return F.interpolate(logits, size=tuple(output_size), mode="bilinear", align_corners=False)


class TrainedStudent(nn.Module):
    """A trained MaskCLIP+ student on its own, as ``load_student`` reads it from a checkpoint:
    the network, the classes it predicts and the input statistics it was trained with. No
    teacher and no training module; ``forward`` gives the student's logits.

    Args:
        model: the ``SegStudent`` (put in eval mode).
        vocabulary: its classes, in logit order (with ``background`` first if it has one).
        image_mean, image_std: the input normalisation of its training data (``data.normalize``
            as resolved then); None when the checkpoint does not record it.
        config: the student's config as the checkpoint stores it (``student_cfg``).
        teacher_spec: the teacher it was trained with (what new classes need); None for a
            supervised run.
        templates: the prompt templates of that teacher's text classifier.
        unseen: the zero-shot unseen class indices it was trained with, or None.
        test_resize: how its run brought logits to the ground truth's size
            (:func:`logits_at_size`).
        source: where it was read from, for messages.
    """

    def __init__(self, model: SegStudent, vocabulary, image_mean: Sequence[float] | None = None,
                 image_std: Sequence[float] | None = None, *,
                 config: Mapping[str, Any] | None = None, teacher_spec: dict | None = None,
                 templates: str | Sequence[str] | None = None,
                 unseen: Sequence[int] | None = None, test_resize: str = "direct",
                 source: str | None = None) -> None:
        super().__init__()
        self.model = model.eval()
        self.vocabulary = vocabulary
        self.image_mean = tuple(image_mean) if image_mean is not None else None
        self.image_std = tuple(image_std) if image_std is not None else None
        self.config = dict(config or {})
        self.teacher_spec = teacher_spec
        self.templates = templates
        self.unseen = list(unseen) if unseen is not None else None
        self.test_resize = test_resize
        self.source = source

    @property
    def num_classes(self) -> int:
        return self.vocabulary.num_classes

    @property
    def output_stride(self) -> int:
        return self.model.output_stride

    def forward(self, images: Tensor) -> Tensor:
        """B×3×H×W images normalised with ``image_mean``/``image_std`` → B×C×h×w logits."""
        return self.model(images)

    def logits_at(self, image: Tensor, output_size: Sequence[int],
                  test_resize: str | None = None) -> Tensor:
        """1×C×H×W logits at ``output_size`` (``test_resize`` by default its run's)."""
        return logits_at_size(self.model, image, output_size, test_resize or self.test_resize)

    def extra_repr(self) -> str:
        return (f"{self.num_classes} classes, normalisation mean={self.image_mean} "
                f"std={self.image_std}, from {self.source}")
