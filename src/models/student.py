"""MaskCLIP+ student: a DeepLab segmenter whose classifier is CLIP's frozen text embeddings.

The official student (MaskCLIP §4, official code §6) is DeepLabv2: a dilated ResNet-101-V1c
(deep stem) at output stride 8 with an ASPP of four 3×3 convs (dilations 6/12/18/24) whose outputs
are summed. DeepLabv3+ is used for zero-shot PASCAL Context. The ASPP's output width is the CLIP
text width D, and the classifier is the 1×1 map ``logits = feat · Tᵀ``. The features are not
normalised, there is no bias and no temperature. Datasets with a background class prepend a
learnable background embedding, because "background" has no good text prompt.

Backbones come from timm (``features_only=True, output_stride=8``): ``resnet101c`` / ``resnet50c``
match mmseg's ResNet-V1c deep stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

HeadName = Literal["deeplabv2", "deeplabv3plus"]


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3, dilation: int = 1,
                 groups: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=pad, dilation=dilation, groups=groups,
                  bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class ASPPv2Head(nn.Module):
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


class DeepLabV3PlusHead(nn.Module):
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
        head: ``deeplabv2`` (default) or ``deeplabv3plus``.
        pretrained: None (random init), ``"timm"`` (timm's pretrained tag, online), or a local
            state-dict file for the backbone.
        background: prepend a learnable background embedding as class 0.
        allow_random_init: random init is refused unless set, because a random DeepLab on real
            data gives meaningless numbers; the offline world's small student sets it.
        output_stride: 8 as in the official student.
        head_dilations: ASPP dilations (default: the official 6/12/18/24, or 1/12/24/36 for v3+).
        backbone_kwargs: extra timm constructor arguments, e.g. narrower ``channels``.
        channels_last: keep weights and inputs NHWC. It changes memory layout, not results
            (up to float rounding). Measured per train step: ResNet-50 DeepLabv2 1.17-1.32x on the
            CPU, ResNet-101 1.13-1.16x on an H100 in bf16 (docs/bench.md, ``speedups``), the world
            student 1.09x on the CPU. The real-data student configs turn it on.
    """

    def __init__(self, class_embeddings: Tensor, backbone: str = "resnet101c",
                 head: HeadName = "deeplabv2", pretrained: str | None = "timm",
                 background: bool = False, allow_random_init: bool = False,
                 output_stride: int = 8, head_dilations: tuple[int, ...] | None = None,
                 backbone_kwargs: dict | None = None, channels_last: bool = False) -> None:
        super().__init__()
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
            self._load_backbone(Path(pretrained))
        low_ch, high_ch = self.backbone.feature_info.channels()
        dim = class_embeddings.shape[1]
        if head == "deeplabv2":
            self.head = ASPPv2Head(high_ch, dim, head_dilations or (6, 12, 18, 24))
        elif head == "deeplabv3plus":
            self.head = DeepLabV3PlusHead(high_ch, low_ch, dim, head_dilations or (1, 12, 24, 36))
        else:
            raise ValueError(f"unknown student head {head!r}; choose deeplabv2 or deeplabv3plus")
        self.register_buffer("class_embeddings", class_embeddings.detach().clone().float())
        self.bg_embedding = nn.Parameter(torch.randn(1, dim)) if background else None
        self.channels_last = channels_last
        if channels_last:  # .to(device) later preserves the layout
            self.to(memory_format=torch.channels_last)

    def _load_backbone(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"student backbone weights {path} do not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        missing, unexpected = self.backbone.load_state_dict(state, strict=False)
        if len(missing) > len(state) // 2:
            raise ValueError(f"{path} does not look like weights for this backbone: "
                             f"{len(missing)} missing keys, e.g. {missing[:3]}")

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
        return reductions[0] if isinstance(self.head, DeepLabV3PlusHead) else reductions[-1]

    def features(self, images: Tensor) -> Tensor:
        """B×3×H×W → B×D×h×w unnormalised features (h = H/8 for DeepLabv2)."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.head(self.backbone(images))

    def forward(self, images: Tensor) -> Tensor:
        """B×3×H×W → B×C×h×w logits, ``feat · classifierᵀ`` (no norm, no bias, as in §6)."""
        feats = self.features(images)
        return torch.einsum("bdhw,cd->bchw", feats, self.classifier.to(feats.dtype))
