"""Dense CLIP features: a frozen open_clip image tower read patch by patch (MaskCLIP §3.2).

:class:`DenseCLIP` is the teacher's vision part. It exposes what every training-free head needs,
not only MaskCLIP's value path:

- :meth:`DenseCLIP.embed`: patch embedding, resized positions and ``ln_pre`` (the tokens entering
  block 0);
- :meth:`DenseCLIP.run_blocks` / :meth:`DenseCLIP.tokens_entering`: the tokens entering *any*
  block, or a list of them (heads that read several layers);
- :meth:`DenseCLIP.block_qkv`: the per-head q, k, v of any block, recomputed from ``ln_1`` and
  ``attn.in_proj_*`` (no hooks);
- :meth:`DenseCLIP.features_and_keys`: the configured head's joint-space features at the output
  stride, and the last block's keys for key smoothing.

ViT: blocks 1..L-1 run unchanged; in the last block the configured head (src.models.heads) turns
tokens into per-patch embeddings. MaskCLIP's value path drops the query/key attention and keeps
each token's own value (ln_1 → value projection → out_proj); as in the official code that
block's residual and MLP are kept (``keep_residual``/``keep_ffn`` switch them off for ClearCLIP's
clean variant). ``ln_post`` and the joint-space projection follow and the CLS token is dropped.

ResNet: layer4 features go through ``attnpool.v_proj`` and ``attnpool.c_proj`` applied as 1×1
maps, without the attention pool's positional embedding (MaskCLIP §3.2).

Only open_clip's stable parameter names are read: ``conv1``, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks[i].{ln_1, attn.in_proj_*,
attn.out_proj, ls_1, ln_2, mlp, ls_2}``, ``ln_post``, ``proj`` and ``attnpool.{k,v,c}_proj``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import Tensor, nn

from src.data.transforms import NORMALIZATION
from src.models.clip_loading import ClipSpec
from src.models.frontier import FRONTIER_HEADS, build_frontier_head, is_text_dependent
from src.models.heads import HEAD_FUNCTIONS, Head, block_qkv, check_head, maskclip_tokens

log = logging.getLogger(__name__)

SUPPORTED_TOWERS = (
    "open_clip VisionTransformer with class-token pooling (ViT-B/32, ViT-B/16, ViT-L/14, any "
    "width/depth, LayerScale allowed), or ModifiedResNet (RN50, RN101, RN50x4, RN50x16, RN50x64)"
)

Arch = Literal["vit", "resnet"]
TEACHER_NORMALIZATIONS = ("model", "imagenet", "clip")


def check_tower(visual: nn.Module) -> Arch:
    """Return the tower kind, or raise a ValueError that lists what is supported."""
    if isinstance(visual, ModifiedResNet):
        return "resnet"
    if isinstance(visual, VisionTransformer):
        problems = []
        if visual.attn_pool is not None:
            problems.append("an attentional pooler")
        if visual.pool_type != "tok":
            problems.append(f"pool_type={visual.pool_type!r} (average-pool variant)")
        if visual.final_ln_after_pool:
            problems.append("final_ln_after_pool")
        last = visual.transformer.resblocks[-1]
        if not isinstance(last, ResidualAttentionBlock) or not isinstance(
            last.attn, nn.MultiheadAttention
        ):
            problems.append(f"custom attention blocks ({type(last).__name__})")
        if not problems:
            return "vit"
        detail = ", ".join(problems)
    else:
        detail = type(visual).__name__
    raise ValueError(
        f"MaskCLIPTeacher cannot take the dense value path of this image tower ({detail}). "
        f"Supported: {SUPPORTED_TOWERS}."
    )


POSITION_RESIZES = ("exact", "peers")


def resize_positional_embedding(pos_embed: Tensor, src_grid: tuple[int, int],
                                dst_grid: tuple[int, int], rule: str = "exact") -> Tensor:
    """Resize a ViT positional embedding to another patch grid, keeping the CLS position.

    Bicubic with ``align_corners=False``. ``exact`` resizes to (h, w), as the official mmseg
    backbone does on every forward. ``peers`` is the rule of the later methods' code (SCLIP,
    SC-CLIP, ResCLIP, ProxyCLIP: ``scale_factor = ((h + 0.1)/gh, (w + 0.1)/gw)``, and that scale
    factor, not the size, maps the coordinates); the two agree on the native grid and differ by
    up to ~1e-3 in the final features at 336 px.

    Args:
        pos_embed: (1+gh·gw)×W learned embedding.

    Returns:
        (1+h·w)×W embedding for the ``dst_grid`` (h, w).
    """
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    if rule not in POSITION_RESIZES:
        raise ValueError(f"teacher.position_resize={rule!r}: choose one of "
                         f"{list(POSITION_RESIZES)}")
    cls_pos, grid_pos = pos_embed[:1], pos_embed[1:]
    width = grid_pos.shape[-1]
    grid_pos = grid_pos.reshape(1, src_grid[0], src_grid[1], width).permute(0, 3, 1, 2)
    if rule == "peers":
        scale = ((dst_grid[0] + 0.1) / src_grid[0], (dst_grid[1] + 0.1) / src_grid[1])
        grid_pos = F.interpolate(grid_pos.float(), scale_factor=scale, mode="bicubic",
                                 align_corners=False)
    else:
        grid_pos = F.interpolate(grid_pos.float(), size=dst_grid, mode="bicubic",
                                 align_corners=False)
    grid_pos = grid_pos.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(-1, width)
    return torch.cat([cls_pos, grid_pos], dim=0)


def input_statistics(visual: nn.Module, normalize: str
                     ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the tower expects: its own preprocessing (``model``) or a named preset."""
    if normalize not in TEACHER_NORMALIZATIONS:
        raise ValueError(f"teacher.normalize={normalize!r}: choose one of "
                         f"{list(TEACHER_NORMALIZATIONS)}")
    if normalize == "model":
        pp = getattr(visual, "preprocess_cfg", {}) or {}
        mean = pp.get("mean", open_clip.OPENAI_DATASET_MEAN)
        std = pp.get("std", open_clip.OPENAI_DATASET_STD)
    else:
        mean, std = NORMALIZATION[normalize]
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


class DenseCLIP(nn.Module):
    """A frozen open_clip image tower that returns per-patch joint-space embeddings.

    Args:
        clip: the open_clip model (its ``visual`` tower is read; the text tower is not).
        spec: how the weights were resolved (the text classifier's cache key).
        model_name: the open_clip architecture name (reported in errors).
        head: the last-block variant (src.models.heads): ``maskclip``, ``naive``, ``clearclip``,
            ``sclip`` or ``naclip``; ResNets support ``maskclip`` only.
        keep_residual, keep_ffn: the value path keeps the last block's residual / MLP
            (official: both True).
        normalize: input statistics the tower expects (``model``, ``imagenet``, ``clip``).
        compile_dense: run :meth:`features_and_keys` through ``torch.compile``.
        head_options: keyword options of a frontier head (src.models.frontier), e.g. ResCLIP's
            ``{"temp_thd": 0.5, "rcs": [2.0, 0.3], "sfr": [2.2, 0.7]}``.
        proxy: ProxyCLIP's second vision model (``{"model": <timm name>, "pretrained": ...}``).
        position_resize: ``exact`` (resize the position table to the grid) or ``peers`` (the
            later methods' +0.1 scale-factor rule); see :func:`resize_positional_embedding`.

    Always in eval mode with ``requires_grad=False``.
    """

    def __init__(self, clip: nn.Module, spec: ClipSpec, model_name: str, *,
                 head: Head = "maskclip", keep_residual: bool = True, keep_ffn: bool = True,
                 normalize: str = "model", compile_dense: bool = False,
                 head_options: dict | None = None, proxy: dict | None = None,
                 position_resize: str = "exact") -> None:
        super().__init__()
        self.arch: Arch = check_tower(clip.visual)
        check_head(head)
        if head != "maskclip" and self.arch != "vit":
            raise ValueError(f"head={head!r} needs a ViT image tower; ResNets support 'maskclip'")
        if position_resize not in POSITION_RESIZES:
            raise ValueError(f"teacher.position_resize={position_resize!r}: choose one of "
                             f"{list(POSITION_RESIZES)}")
        self.position_resize = position_resize
        if head in FRONTIER_HEADS:
            self.frontier: nn.Module | None = build_frontier_head(head, head_options, proxy)
        else:
            if head_options or proxy:
                raise ValueError(f"teacher.head_options / teacher.proxy are options of the "
                                 f"frontier heads {list(FRONTIER_HEADS)}, not of head={head!r}")
            self.frontier = None
        self.clip, self.spec, self.model_name = clip, spec, model_name
        # The head and its switches stay settable (teacher.head = ...): read on every forward.
        self.head, self.keep_residual, self.keep_ffn = head, keep_residual, keep_ffn
        self.normalize = normalize
        self.image_mean, self.image_std = input_statistics(clip.visual, normalize)
        self.compile_dense = compile_dense
        self._compiled_dense = None  # built on first use, dropped when pickled (DDP spawn)
        self._position_cache: dict[tuple, Tensor] = {}  # resized positional embeddings
        self.requires_grad_(False)
        super().train(False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_compiled_dense"] = None  # a compiled function does not pickle; rebuilt lazily
        state["_position_cache"] = {}
        return state

    def train(self, mode: bool = True) -> "DenseCLIP":
        """Always stays in eval mode: a frozen tower must not update BN stats or drop out."""
        return super().train(False)

    # ------------------------------------------------------------------ geometry
    @property
    def output_stride(self) -> int:
        """Input pixels per dense-feature cell (ViT patch size, 32 for ModifiedResNet; a
        frontier head may set its own, e.g. ProxyCLIP's proxy patch)."""
        if getattr(self.frontier, "output_stride", None):
            return int(self.frontier.output_stride)
        if self.arch == "vit":
            return int(self.clip.visual.patch_size[0])
        return 32

    @property
    def embed_dim(self) -> int:
        """D, the joint image-text embedding width."""
        if self.arch == "vit":
            return int(self.clip.visual.proj.shape[1])
        return int(self.clip.visual.attnpool.c_proj.out_features)

    @property
    def logit_scale(self) -> float:
        """The CLIP's own learned temperature, ``exp(logit_scale)``."""
        return float(self.clip.logit_scale.exp())

    @property
    def blocks(self) -> nn.ModuleList:
        """The ViT's residual blocks (``transformer.resblocks``)."""
        self._require_vit("blocks")
        return self.clip.visual.transformer.resblocks

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def _require_vit(self, what: str) -> None:
        if self.arch != "vit":
            raise ValueError(f"{what} needs a ViT image tower; {self.model_name} is a ResNet")

    # ------------------------------------------------------------------ ViT tokens
    def embed(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Patch-embed (bottom/right zero padding), add resized positions, ``ln_pre``.

        Args:
            images: B×3×H×W normalised images.

        Returns:
            (B×(1+h·w)×W tokens entering block 0, (h, w) patch grid with h = ⌈H/s⌉).
        """
        self._require_vit("embed")
        visual = self.clip.visual
        ph, pw = visual.patch_size
        height, width = images.shape[-2:]
        pad_h, pad_w = (-height) % ph, (-width) % pw
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        x = visual.conv1(images.to(visual.conv1.weight.dtype))  # B×W×h×w
        grid = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        x = x + self.positional_embedding(grid).to(x.dtype)
        x = visual.patch_dropout(x)
        return visual.ln_pre(x), grid

    def run_blocks(self, x: Tensor, start: int, stop: int) -> Tensor:
        """Run blocks ``start..stop-1`` unchanged on B×N×W tokens (batch first in and out)."""
        batch_first = getattr(self.clip.visual.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in self.blocks[start:stop]:
            x = block(x)
        return x if batch_first else x.transpose(0, 1)

    def tokens_entering(self, images: Tensor, blocks: Sequence[int]
                        ) -> tuple[list[Tensor], tuple[int, int]]:
        """The tokens entering each of ``blocks`` (indices; negative counts from the end).

        One pass: every block runs once, however many are read. ``num_blocks`` is allowed and
        means the output of the last block (before ``ln_post``).

        Returns:
            ([B×(1+h·w)×W per requested block, in the order asked], (h, w)).
        """
        wanted = [b % self.num_blocks if b < 0 else b for b in blocks]
        if any(not 0 <= b <= self.num_blocks for b in wanted):
            raise ValueError(f"block indices {list(blocks)} out of range for a "
                             f"{self.num_blocks}-block tower")
        x, grid = self.embed(images)
        found: dict[int, Tensor] = {}
        position = 0
        for target in sorted(set(wanted)):
            x = self.run_blocks(x, position, target)
            position = target
            found[target] = x
        return [found[b] for b in wanted], grid

    def block_qkv(self, index: int, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v of block ``index`` for the tokens entering it: each B×heads×N×head_dim."""
        return block_qkv(self.blocks[index], x)

    def positional_embedding(self, grid: tuple[int, int]) -> Tensor:
        """The (1+h·w)×W positional embedding for ``grid``, resized once and cached.

        Bicubic resizing of a 768-channel 14×14 grid takes ~3 ms on an H100, a tenth of a
        batch-32 dense pass at 448² (docs/profile_gpu_448_b32_before_pos_cache.txt), so it is
        not redone per call. The key holds the parameter's version counter and storage, so
        loading new weights (an in-place copy) or moving the model invalidates it.
        """
        visual = self.clip.visual
        pos = visual.positional_embedding
        rule = self.position_resize
        if torch.compiler.is_compiling():  # inductor fuses it; a dict lookup would break graphs
            return resize_positional_embedding(pos, visual.grid_size, grid, rule)
        key = (tuple(grid), rule, pos.device, pos.dtype, pos.data_ptr(), pos._version)
        cached = self._position_cache.get(key)
        if cached is None:
            if len(self._position_cache) >= 16:  # many input sizes (whole-image mode): bounded
                self._position_cache.clear()
            with torch.no_grad():
                cached = resize_positional_embedding(pos, visual.grid_size, grid, rule)
            self._position_cache[key] = cached
        return cached

    # ------------------------------------------------------------------ the last block
    def last_block_keys(self, x: Tensor) -> Tensor:
        """Keys of the last block after out_proj (B×N×W), for key smoothing.

        The official code applies out_proj to q, k and v alike, and key smoothing uses those keys.
        """
        block = self.blocks[-1]
        attn, width = block.attn, x.shape[-1]
        k = F.linear(block.ln_1(x), attn.in_proj_weight[width:2 * width],
                     attn.in_proj_bias[width:2 * width])
        return attn.out_proj(k)

    def head_tokens(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        """The configured head's last block (src.models.heads), then ln_post: B×N×W.

        Args:
            x: B×N×W tokens entering the last block (N = 1 + h·w).
            grid: (h, w) patch grid.
        """
        block = self.blocks[-1]
        if self.head == "naive" and not getattr(self.clip.visual.transformer, "batch_first", True):
            out = block(x.transpose(0, 1)).transpose(0, 1)
        else:
            out = HEAD_FUNCTIONS[self.head](block, x, grid, keep_residual=self.keep_residual,
                                            keep_ffn=self.keep_ffn)
        return self.clip.visual.ln_post(out)

    def value_path(self, x: Tensor) -> Tensor:
        """The MaskCLIP value path then ``ln_post``, whatever the head: B×N×W."""
        return self.clip.visual.ln_post(maskclip_tokens(
            self.blocks[-1], x, keep_residual=self.keep_residual, keep_ffn=self.keep_ffn))

    # ------------------------------------------------------------------ ResNet
    def resnet_dense(self, images: Tensor, with_keys: bool) -> tuple[Tensor, Tensor | None]:
        """layer4 → v_proj → c_proj as 1×1 maps; keys from k_proj (MaskCLIP §3.2).

        Returns:
            (B×D×h×w unnormalised features, B×(h·w)×C keys or None).
        """
        visual = self.clip.visual
        x = images.to(visual.conv1.weight.dtype)
        x = visual.stem(x)
        x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
        pool = visual.attnpool
        value = F.conv2d(x, pool.v_proj.weight[:, :, None, None], pool.v_proj.bias)
        feats = F.conv2d(value, pool.c_proj.weight[:, :, None, None], pool.c_proj.bias)
        keys = None
        if with_keys:
            keys = F.linear(x.flatten(2).transpose(1, 2), pool.k_proj.weight, pool.k_proj.bias)
        return feats, keys

    # ------------------------------------------------------------------ dense features
    @torch.no_grad()
    def features_and_keys(self, images: Tensor, with_keys: bool = True
                          ) -> tuple[Tensor, Tensor | None]:
        """Dense joint-space features and last-layer keys.

        Args:
            images: B×3×H×W, normalised with ``image_mean``/``image_std``.
            with_keys: compute the keys (only key smoothing needs them); None otherwise.

        Returns:
            (B×D×h×w L2-normalised features, B×(h·w)×C keys) with h = ⌈H/s⌉ for ViT (the input
            is zero-padded bottom/right to a multiple of the patch size s).
        """
        if self.compile_dense:
            if self._compiled_dense is None:
                self._compiled_dense = torch.compile(self._features_and_keys)
            return self._compiled_dense(images, with_keys)
        return self._features_and_keys(images, with_keys)

    def _features_and_keys(self, images: Tensor, with_keys: bool
                           ) -> tuple[Tensor, Tensor | None]:
        if self.frontier is not None:
            if is_text_dependent(self.frontier):
                raise ValueError(f"head={self.head!r} scores text queries, it has no "
                                 "text-independent features: call teacher.query_scores(images) "
                                 "after teacher.set_vocabulary(...)")
            feats, keys = self.frontier.features_and_keys(self, images, with_keys)
        elif self.arch == "resnet":
            feats, keys = self.resnet_dense(images, with_keys)
        else:
            (tokens,), (h, w) = self.tokens_entering(images, [-1])
            feats = self.head_tokens(tokens, (h, w))[:, 1:] @ self.clip.visual.proj  # no CLS
            feats = feats.transpose(1, 2).reshape(images.shape[0], -1, h, w)
            keys = self.last_block_keys(tokens)[:, 1:] if with_keys else None
        return F.normalize(feats.float(), dim=1), None if keys is None else keys.float()

    def forward(self, images: Tensor) -> Tensor:
        """B×3×H×W normalised images → B×D×h×w L2-normalised joint-space embeddings."""
        return self.features_and_keys(images, with_keys=False)[0]
