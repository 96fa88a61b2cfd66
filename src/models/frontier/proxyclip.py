"""ProxyCLIP (Lan et al., ECCV 2024, arXiv 2408.04883): CLIP's values, a proxy model's attention.

A training-free feature head (``teacher/head=proxyclip``), as the official code (mc-lan/ProxyCLIP
@ e7b767f, ``proxyclip_segmentor.py`` and its ``open_clip/transformer.py``) computes it, with a
proxy vision model built by timm (DINO ViT-B/8 by default: ``vit_base_patch8_224.dino``, whose
parameters are DINO's own). For B×3×H×W CLIP-normalised images:

1. **Proxy input**: the CLIP normalisation is undone and the proxy's applied,
   ``x_in = (x·clip_std + clip_mean − mean)/std`` (``mean``/``std`` from the proxy's timm
   ``pretrained_cfg``, ImageNet's if it has none). The input is zero-padded bottom/right (in the
   CLIP-normalised space, i.e. with the mean colour, as the official crop padding) to a multiple
   of the proxy's stride s, so the output grid is ⌈H/s⌉×⌈W/s⌉ as the pipeline expects; the
   pipeline's own padding (``inference.pad=symmetric inference.pad_multiple=56`` for the
   official protocol) already makes it a multiple, so this is then a no-op.
2. **Proxy features E** (timm ``VisionTransformer``, e.g. DINO): DINO's op order on timm's
   modules: ``patch_embed.proj`` (and ``patch_embed.norm``), the prefix token(s), the position
   table, ``norm_pre``, every block, the final ``norm``, prefix tokens dropped → E, C'×I×J with
   I = H/s, J = W/s (non-square correct). The table is used as it is when the token count
   matches AND the input is square, otherwise resized with DINO's bicubic (a = −0.75,
   align_corners=False) with ``scale_factor = ((I + 0.1)/gh, (J + 0.1)/gw)``, not timm's
   ``dynamic_img_size`` resampling (2.8e-2 off at 336 px). Any other timm model (a CNN, Swin...)
   gives its last-stage feature map through ``forward_intermediates(..., norm=True)``, s = its
   reduction.
3. **Proxy attention**, per image: e = E L2-normalised over channels, S = eᵀe (IJ×IJ),
   S' = (S − beta·mean(S))·gamma with the mean over all IJ×IJ entries *of that image* (the
   official code is batch-1), entries of S' < 0 → −inf, P = row softmax. beta 1.2, gamma 3.0.
4. **CLIP**: blocks 0..L-2 unchanged (``DenseCLIP.tokens_entering``), then the last block's values
   v = in_proj_v(ln_1(x)) (``DenseCLIP.block_qkv``), CLS dropped, reshaped to the CLIP grid (h, w)
   row-major, bilinearly resized (align_corners=False) to (I, J); out = out_proj(P v), with no
   CLS, residual, LayerScale or FFN, then ``ln_post``, ``@ proj`` and L2 normalisation: B×D×I×J.
   The CLIP grid is ⌊H/16⌋×⌊W/16⌋ as the official conv computes it (a 280 px crop, padded to a
   multiple of 56, gives 17×17, resized to 35×35): the input is cut to a multiple of CLIP's
   patch before ``DenseCLIP.embed``, which would otherwise pad it to 18×18.
5. **Keys** for key smoothing (``refine.key_smoothing``): the proxy's normalised patch features
   e, B×(I·J)×C': the descriptors ProxyCLIP trusts for "which patches belong together" (CLIP's
   own keys live on the coarser CLIP grid).

**Fully masked rows (the NaN hazard).** S'ᵢᵢ = (1 − beta·mean(S))·gamma, and S ≤ 1, so when
mean(S) > 1/beta (0.833: a near-uniform crop, a collapsed or random-init proxy) *every* entry of
every row is masked and the official code returns NaN. ``masked_rows`` chooses:

- ``keep_max`` (default): an entry is masked when S' < 0 *and* it is not its row's maximum.
  Whenever a row has any entry ≥ 0 its maximum is ≥ 0 and already kept, so this is exactly the
  official rule wherever the official output is finite; a fully negative row keeps only its
  maximum (the diagonal, or its exact ties), i.e. that patch attends to itself: out = out_proj(v).
  A warning is logged once per head the first time it happens.
- ``raise``: a ValueError naming the images and their mean cosine.

**Precision.** Under GPU autocast the proxy and the CLIP blocks run in the autocast dtype, but E
is cast to fp32 and S, its mean, the mask, the softmax and P·v run with autocast disabled in
fp32 (the hard decisions at S' = 0 and the softmax of up to (H/8·W/8)² entries per image are
where fp16/bf16 would bite; the official code runs all of it in fp16). Memory: S is
B×(IJ)² fp32, 12 MB per 336 px crop at stride 8.

Not reproduced from the official code: its mean over the whole batch tensor (per image here),
its square-only reshapes (I = J = H/8 for DINO and the swapped (w, h) of CLIP's value grid; the
geometrically correct (rows, cols) here, identical on square crops) and its fp16 arithmetic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.models.clip_loading import WeightsUnavailableError, hub_offline_reason, local_weights_file
from src.models.weights_files import UnreadableWeightsError, format_size, read_weights_file

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MASKED_ROWS = ("keep_max", "raise")
PROXY_KEYS = ("model", "pretrained", "allow_random_init", "kwargs", "mean", "std")
#: ``pretrained`` values that mean "the timm tag in (or default for) ``proxy.model``".
OWN_TAG = ("timm", "true", "default")
#: classifier entries a backbone file may carry and a ``num_classes=0`` proxy does not have.
CLASSIFIER_PREFIXES = ("head.", "head_dist.", "fc.", "classifier.", "last_linear.")


def _plain(value: Any) -> Any:
    """A plain Python container (Hydra hands over DictConfig / ListConfig)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    return value


# ============================================================================ building the proxy
def build_proxy(model: str, pretrained: str | bool | None = None, *,
                allow_random_init: bool = False, kwargs: Mapping | None = None
                ) -> tuple[nn.Module, str]:
    """Build a timm model (``num_classes=0``, eval, frozen) and load its weights.

    Args:
        model: a timm model name, with or without a pretrained tag
            (``vit_base_patch8_224.dino``).
        pretrained: a local weights file (.safetensors, or a torch state dict read with
            ``weights_only=True``: timm's or DINO's layout), a timm pretrained tag (``dino``;
            ``true``/``timm`` for the tag in ``model`` or its default), or None for random init.
        allow_random_init: permit ``pretrained=None`` (tests, smoke runs).
        kwargs: extra ``timm.create_model`` keywords (``img_size``, ``depth``...).

    Returns:
        (the model, where its weights came from).

    Raises:
        ValueError: unknown model or tag, random init without the flag, a file that does not
            read or does not fit the model.
        WeightsUnavailableError: a timm tag that is not cached and cannot be downloaded.
    """
    import timm

    kwargs = dict(_plain(kwargs) or {})
    if kwargs.get("num_classes", None) == 0:
        del kwargs["num_classes"]  # what the head sets anyway
    for key in ("pretrained", "num_classes", "pretrained_cfg_overlay", "model_name"):
        if key in kwargs:
            raise ValueError(f"teacher.proxy.kwargs.{key}: set by the head; use "
                             "teacher.proxy.pretrained for the weights")
    arch, tag = model.split(".", 1) if "." in model else (model, "")
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:8]
        raise ValueError(f"teacher.proxy.model={model!r} is not a timm model (e.g. {close}; "
                         "ProxyCLIP's default is vit_base_patch8_224.dino)")
    if isinstance(pretrained, bool):
        pretrained = "timm" if pretrained else None
    if pretrained is not None and str(pretrained).lower() in ("", "none", "null", "false"):
        pretrained = None

    if pretrained is None:
        if not allow_random_init:
            raise ValueError(
                f"teacher.proxy.pretrained is null: a random-init {model} proxy gives ProxyCLIP "
                "meaningless attention (and typically a mean cosine above 1/beta). Pass a timm "
                f"tag (teacher.proxy.pretrained=true for {model}'s own, e.g. "
                f"{_tags(arch)[:3]}) or a local weights file "
                "(teacher.proxy.pretrained=/path/to/dino_vitbase8_pretrain.pth or .safetensors), "
                "or set teacher.proxy.allow_random_init=true for a smoke test.")
        return _create(timm, model, kwargs), "random init"

    takes = (f"teacher.proxy.pretrained takes a local weights file (.safetensors/.pt/.pth/.bin "
             f"state dict of {model}), a timm tag ({_tags(arch)[:4]}), or null with "
             "teacher.proxy.allow_random_init=true.")
    local_file = local_weights_file(str(pretrained), takes)
    if local_file is not None:
        net = _create(timm, model, kwargs)
        load_proxy_file(net, local_file, model)
        return net, str(local_file)
    pretrained = str(pretrained)

    # a timm tag
    wanted = tag if pretrained.lower() in OWN_TAG else pretrained
    if tag and wanted != tag:
        raise ValueError(f"teacher.proxy.model={model!r} already names the tag {tag!r}, but "
                         f"teacher.proxy.pretrained={pretrained!r}: give the tag once")
    if wanted and f"{arch}.{wanted}" not in timm.list_pretrained(f"{arch}.*"):
        raise ValueError(f"timm has no pretrained tag {wanted!r} for {arch!r}; available: "
                         f"{_tags(arch)}. Or pass a local weights file as "
                         "teacher.proxy.pretrained.")
    name = f"{arch}.{wanted}" if wanted else arch
    found_cfg = timm.models.get_pretrained_cfg(name)
    cfg = found_cfg.to_dict() if found_cfg is not None else {}
    cached = _cached_timm_weights(cfg)
    how = f"timm tag {name}"
    if cached is None:
        reason = hub_offline_reason()
        if reason is not None:
            raise WeightsUnavailableError(
                f"proxy weights {name!r} (timm tag {cfg.get('tag') or wanted!r}) are not in the "
                f"local cache and cannot be downloaded: {reason}. Pass a local file instead: "
                f"teacher.proxy.pretrained=/path/to/weights.safetensors (or .pth: a timm or "
                f"DINO state dict of {arch}, e.g. DINO's dino_vitbase8_pretrain.pth for "
                "vit_base_patch8_224), or teacher.proxy.pretrained=null with "
                "teacher.proxy.allow_random_init=true for a smoke test.")
    try:
        overlay = {"file": cached} if cached else None
        net = timm.create_model(name, pretrained=True, num_classes=0,
                                pretrained_cfg_overlay=overlay, **kwargs)
    except TypeError as err:
        raise ValueError(f"teacher.proxy.kwargs={kwargs} for {name}: {err}") from None
    except Exception as err:  # noqa: BLE001 - re-raised with the way out
        raise RuntimeError(
            f"could not obtain the proxy weights {name!r} ({type(err).__name__}: {err}). Pass a "
            "local file with teacher.proxy.pretrained=/path/to/weights.safetensors.") from err
    return _freeze(net), how + (f" ({cached})" if cached else "")


def _tags(arch: str) -> list[str]:
    import timm

    return [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]


def _create(timm, name: str, kwargs: dict) -> nn.Module:
    try:
        net = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    except TypeError as err:
        raise ValueError(f"teacher.proxy.kwargs={kwargs} for {name}: {err}") from None
    return _freeze(net)


def _freeze(net: nn.Module) -> nn.Module:
    net.requires_grad_(False)
    return net.eval()


def _cached_timm_weights(cfg: dict) -> str | None:
    """The local file of a timm pretrained config in the HF or torch.hub cache, if there."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else []
        names += ["model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"]
        for filename in dict.fromkeys(names):
            found = try_to_load_from_cache(hub_id, filename)
            if isinstance(found, str):
                return found
    url = cfg.get("url")
    if url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if candidate.is_file():
            return str(candidate)
    return None


def _unwrap_state(obj: Any) -> dict[str, Tensor] | None:
    """The tensors of a state dict, training checkpoint or DINO checkpoint (``teacher``)."""
    for key in ("state_dict", "model", "teacher"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        return None
    state = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    for prefix in ("module.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state or None


def load_proxy_file(net: nn.Module, path: str | Path, name: str) -> None:
    """Load a local weights file into ``net``, or say in one sentence why it does not fit.

    Classifier entries the ``num_classes=0`` proxy lacks are dropped. A ViT's ``pos_embed`` of
    another grid is taken as it is (the parameter is replaced): DINO's forward resizes the table
    from its own native grid, whatever ``img_size`` the proxy was built with.
    """
    path = Path(path)
    key = f"teacher.proxy.pretrained={path}"
    try:
        weights = read_weights_file(path)
    except UnreadableWeightsError as err:
        raise ValueError(f"{key} ({format_size(err.size)}) cannot be read: {err.reason}. It takes "
                         f"a .safetensors or torch state dict of {name}.") from err
    if weights.format == "safetensors":
        from safetensors.torch import load_file

        obj: Any = load_file(str(path))
    else:
        obj = weights.obj
    state = _unwrap_state(obj)
    if state is None:
        raise ValueError(f"{key} ({format_size(weights.size)}) holds no state dict of tensors; "
                         f"it takes a .safetensors or torch state dict of {name}.")
    expected = net.state_dict()
    state = {k: v for k, v in state.items()
             if k in expected or not k.startswith(CLASSIFIER_PREFIXES)}
    pos = state.get("pos_embed")
    if (pos is not None and getattr(net, "pos_embed", None) is not None
            and pos.shape != net.pos_embed.shape and pos.ndim == 3
            and pos.shape[-1] == net.pos_embed.shape[-1] and _is_timm_vit(net)):
        net.pos_embed = nn.Parameter(torch.empty_like(pos, dtype=net.pos_embed.dtype),
                                     requires_grad=False)
        _native_grid(net)  # the file's table must have a grid DINO can resize from
        expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    other = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or other:
        parts = []
        if other:
            parts.append(f"{len(other)} of another shape (e.g. " + "; ".join(
                f"{k}: {a} in the file vs {b}" for k, a, b in other[:2]) + ")")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise ValueError(
            f"{key} ({format_size(weights.size)}) does not fit teacher.proxy.model={name}: "
            f"{'; '.join(parts)}. Name the timm model these weights belong to "
            "(teacher.proxy.model, and teacher.proxy.kwargs for custom sizes) or pass another "
            "file.")
    net.load_state_dict(state, strict=True)


# ============================================================================ proxy features
def _is_timm_vit(net: nn.Module) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(net, VisionTransformer)


def _native_grid(vit: nn.Module) -> tuple[int, int]:
    """The (rows, cols) grid the ViT's position table was learned on."""
    count = vit.pos_embed.shape[1] - (0 if vit.no_embed_class else vit.num_prefix_tokens)
    grid = tuple(int(g) for g in getattr(vit.patch_embed, "grid_size", None) or ())
    if len(grid) == 2 and grid[0] * grid[1] == count:
        return grid  # type: ignore[return-value]
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"the proxy's position table has {count} patch positions, neither the "
                         f"model's grid {grid} nor a square: cannot resize it as DINO does")
    return side, side


def dino_position_table(vit: nn.Module, grid: tuple[int, int], square: bool) -> Tensor:
    """The position table for a (I, J) patch grid, as DINO's ``interpolate_pos_encoding``.

    Kept as it is when the token count matches and the input is square; otherwise the patch
    part is resized bicubically (a = −0.75, align_corners=False) with
    ``scale_factor = ((I + 0.1)/gh, (J + 0.1)/gw)``, which also maps the coordinates. Prefix
    rows (CLS, registers) are kept.

    Returns:
        1×(prefix + I·J)×C (prefix = 0 for ``no_embed_class`` models), in the table's dtype.
    """
    pos = vit.pos_embed
    prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
    native = _native_grid(vit)
    if native[0] * native[1] == grid[0] * grid[1] and square:
        return pos
    width = pos.shape[-1]
    table = pos[:, prefix:].float().reshape(1, native[0], native[1], width).permute(0, 3, 1, 2)
    scale = ((grid[0] + 0.1) / native[0], (grid[1] + 0.1) / native[1])
    table = F.interpolate(table, scale_factor=scale, mode="bicubic", align_corners=False)
    if tuple(table.shape[-2:]) != tuple(grid):  # DINO asserts the same
        raise RuntimeError(f"DINO position resize gave {tuple(table.shape[-2:])}, not {grid}")
    table = table.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], width).to(pos.dtype)
    return torch.cat([pos[:, :prefix], table], dim=1)


def vit_patch_features(vit: nn.Module, x: Tensor) -> Tensor:
    """DINO's ``get_intermediate_layers(n=1)`` on a timm ViT: B×3×H×W → B×C'×I×J (I = H/p).

    Patch embedding, prefix tokens, position table (:func:`dino_position_table`), every block,
    the final norm, prefix tokens dropped; timm's ``norm_pre`` / ``patch_embed.norm`` (Identity
    for DINO) in their places.
    """
    embed = vit.patch_embed
    tokens = embed.proj(x.to(embed.proj.weight.dtype))  # B×C'×I×J (the conv floors, as DINO)
    b, width, rows, cols = tokens.shape
    tokens = embed.norm(tokens.flatten(2).transpose(1, 2))
    prefix = []
    if vit.cls_token is not None:
        prefix.append(vit.cls_token.expand(b, -1, -1))
    if getattr(vit, "reg_token", None) is not None:
        prefix.append(vit.reg_token.expand(b, -1, -1))
    if vit.pos_embed is None:
        tokens = torch.cat(prefix + [tokens], dim=1)
    else:
        pos = dino_position_table(vit, (rows, cols), square=x.shape[-2] == x.shape[-1])
        if vit.no_embed_class:
            tokens = torch.cat(prefix + [tokens + pos.to(tokens.dtype)], dim=1)
        else:
            tokens = torch.cat(prefix + [tokens], dim=1) + pos.to(tokens.dtype)
    tokens = vit.norm_pre(vit.pos_drop(tokens))
    for block in vit.blocks:
        tokens = block(tokens)
    tokens = vit.norm(tokens)[:, vit.num_prefix_tokens:]
    return tokens.transpose(1, 2).reshape(b, width, rows, cols)


def proxy_stride(net: nn.Module) -> int:
    """Input pixels per proxy feature cell: the ViT patch, or the last stage's reduction."""
    if _is_timm_vit(net):
        ph, pw = (int(p) for p in net.patch_embed.patch_size)
        if ph != pw:
            raise ValueError(f"a proxy ViT with non-square patches ({ph}×{pw}) has no single "
                             "output stride")
        return ph
    info = getattr(net, "feature_info", None)
    if info:
        last = info[-1] if isinstance(info, (list, tuple)) else info.get_dicts()[-1]
        return int(last["reduction"])
    raise ValueError(f"cannot tell the output stride of the proxy {type(net).__name__}: it is "
                     "neither a timm VisionTransformer nor a model with feature_info")


# ============================================================================ the head
class ProxyCLIPHead(nn.Module):
    """``teacher.head=proxyclip``: a feature head (see the module docstring).

    Args:
        proxy: ``{"model": <timm name>, "pretrained": <tag | file | null>,
            "allow_random_init": false, "kwargs": {<timm.create_model keywords>},
            "mean": null, "std": null}`` (``mean``/``std`` override the proxy's input
            statistics, by default its timm ``pretrained_cfg``'s or ImageNet's).
        beta, gamma: S' = (S − beta·mean(S))·gamma (official 1.2, 3.0).
        masked_rows: ``keep_max`` or ``raise`` for rows the −inf mask empties (module docstring).
    """

    text_dependent = False

    def __init__(self, proxy: Mapping | None = None, beta: float = 1.2, gamma: float = 3.0,
                 masked_rows: str = "keep_max") -> None:
        super().__init__()
        proxy = dict(_plain(proxy) or {})
        if not proxy.get("model"):
            raise ValueError("head=proxyclip needs teacher.proxy={model: <timm name>, pretrained: "
                             "<tag|file>} (teacher/head=proxyclip sets vit_base_patch8_224.dino)")
        unknown = sorted(set(proxy) - set(PROXY_KEYS))
        if unknown:
            raise ValueError(f"teacher.proxy has unknown keys {unknown}; it takes "
                             f"{list(PROXY_KEYS)}")
        if masked_rows not in MASKED_ROWS:
            raise ValueError(f"teacher.head_options.masked_rows={masked_rows!r}: choose one of "
                             f"{list(MASKED_ROWS)}")
        if not float(beta) > 0 or not float(gamma) > 0:
            raise ValueError(f"teacher.head_options beta={beta}, gamma={gamma}: both must be > 0")
        self.beta, self.gamma, self.masked_rows = float(beta), float(gamma), masked_rows
        self.proxy_name = str(proxy["model"])
        self.proxy, self.proxy_source = build_proxy(
            self.proxy_name, proxy.get("pretrained"),
            allow_random_init=bool(proxy.get("allow_random_init", False)),
            kwargs=proxy.get("kwargs"))
        cfg = dict(getattr(self.proxy, "pretrained_cfg", {}) or {})
        mean = proxy.get("mean") or cfg.get("mean") or IMAGENET_MEAN
        std = proxy.get("std") or cfg.get("std") or IMAGENET_STD
        self.proxy_mean = tuple(float(m) for m in _plain(mean))
        self.proxy_std = tuple(float(s) for s in _plain(std))
        if len(self.proxy_mean) != 3 or len(self.proxy_std) != 3 or min(self.proxy_std) <= 0:
            raise ValueError(f"teacher.proxy mean {self.proxy_mean} / std {self.proxy_std}: three "
                             "values each, std > 0")
        self.proxy_is_vit = _is_timm_vit(self.proxy)
        self.output_stride = proxy_stride(self.proxy)
        self._warned_masked = False
        log.info("ProxyCLIP proxy %s (%s), stride %d, mean %s std %s", self.proxy_name,
                 self.proxy_source, self.output_stride, self.proxy_mean, self.proxy_std)

    def extra_repr(self) -> str:
        return (f"proxy={self.proxy_name!r} ({self.proxy_source}), stride={self.output_stride}, "
                f"beta={self.beta}, gamma={self.gamma}, masked_rows={self.masked_rows!r}")

    # ------------------------------------------------------------------ the proxy
    def proxy_input(self, clip: nn.Module, images: Tensor) -> Tensor:
        """CLIP-normalised images → the proxy's normalisation (fp32)."""
        def column(values) -> Tensor:
            return torch.tensor(values, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)

        clip_mean, clip_std = column(clip.image_mean), column(clip.image_std)
        mean, std = column(self.proxy_mean), column(self.proxy_std)
        return (images.float() * clip_std + clip_mean - mean) / std

    def proxy_features(self, clip: nn.Module, images: Tensor) -> Tensor:
        """E: B×C'×I×J proxy patch features (fp32, not normalised) of padded images."""
        x = self.proxy_input(clip, images)
        if self.proxy_is_vit:
            feats = vit_patch_features(self.proxy, x)
        elif hasattr(self.proxy, "forward_intermediates"):
            feats = self.proxy.forward_intermediates(
                x.to(next(self.proxy.parameters()).dtype), indices=1, norm=True,
                output_fmt="NCHW", intermediates_only=True)[-1]
        else:
            feats = self.proxy.forward_features(x.to(next(self.proxy.parameters()).dtype))
        s = self.output_stride
        want = (images.shape[-2] // s, images.shape[-1] // s)
        if feats.ndim != 4 or tuple(feats.shape[-2:]) != want:
            raise ValueError(f"the proxy {self.proxy_name} gave features of shape "
                             f"{tuple(feats.shape)} for a {tuple(images.shape[-2:])} input; "
                             f"expected B×C×{want[0]}×{want[1]} at stride {s}")
        return feats.float()

    # ------------------------------------------------------------------ attention
    def proxy_attention(self, e: Tensor) -> Tensor:
        """P: B×N×N row-stochastic, from B×C'×N L2-normalised features, in fp32.

        S = eᵀe; S' = (S − beta·mean(S))·gamma, the mean per image; S' < 0 → −inf (except
        each row's maximum with ``keep_max``); row softmax.
        """
        with torch.autocast(device_type=e.device.type, enabled=False):
            e = e.float()
            sim = e.transpose(1, 2) @ e
            mean = sim.mean(dim=(1, 2), keepdim=True)
            sim = (sim - self.beta * mean) * self.gamma
            row_max = sim.amax(dim=-1, keepdim=True)
            masked = sim < 0
            if self.masked_rows == "raise" or not self._warned_masked:
                empty = (row_max < 0).flatten(1).any(dim=1)
                if bool(empty.any()):
                    images = empty.nonzero().flatten().tolist()
                    means = [round(float(mean.flatten()[i]), 4) for i in images]
                    what = (f"ProxyCLIP: every proxy-attention entry is masked in image(s) "
                            f"{images} of the batch: their mean proxy cosine {means} exceeds "
                            f"1/beta = {1 / self.beta:.4f} (the official code returns NaN; a "
                            f"near-uniform crop, or a random-init/collapsed proxy)")
                    if self.masked_rows == "raise":
                        raise ValueError(what + ". Use a pretrained proxy, a larger beta, or "
                                         "teacher.head_options.masked_rows=keep_max.")
                    log.warning("%s; masked_rows=keep_max: each such patch attends to its row "
                                "maximum (itself). Logged once.", what)
                    self._warned_masked = True
            if self.masked_rows == "keep_max":
                masked = masked & (sim < row_max)
            return sim.masked_fill(masked, float("-inf")).softmax(dim=-1)

    # ------------------------------------------------------------------ the head
    def features_and_keys(self, clip: nn.Module, images: Tensor, with_keys: bool
                          ) -> tuple[Tensor, Tensor | None]:
        """(B×D×I×J L2-normalised fp32 features, B×(I·J)×C' proxy keys or None).

        Args:
            clip: the :class:`~src.models.dense_clip.DenseCLIP`.
            images: B×3×H×W CLIP-normalised; I = ⌈H/s⌉, J = ⌈W/s⌉ for the proxy stride s.
        """
        s = self.output_stride
        pad_h, pad_w = (-images.shape[-2]) % s, (-images.shape[-1]) % s
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h))
        b = images.shape[0]
        e = F.normalize(self.proxy_features(clip, images), dim=1)  # B×C'×I×J, fp32
        rows, cols = e.shape[-2:]
        e = e.flatten(2)  # B×C'×N

        ph, pw = (int(p) for p in clip.clip.visual.patch_size)
        h, w = images.shape[-2] // ph, images.shape[-1] // pw
        if h == 0 or w == 0:
            raise ValueError(f"ProxyCLIP: a {tuple(images.shape[-2:])} input is smaller than "
                             f"CLIP's {ph}×{pw} patch")
        (tokens,), grid = clip.tokens_entering(images[..., :h * ph, :w * pw], [-1])
        assert tuple(grid) == (h, w), (grid, (h, w))
        _, _, v = clip.block_qkv(clip.num_blocks - 1, tokens)  # B×heads×(1+hw)×head_dim
        width = v.shape[1] * v.shape[3]
        v = v[:, :, 1:].permute(0, 1, 3, 2).reshape(b, width, h, w)  # heads' channels in order
        v = F.interpolate(v, size=(rows, cols), mode="bilinear", align_corners=False)
        v = v.flatten(2).transpose(1, 2)  # B×N×W

        attn = self.proxy_attention(e)
        with torch.autocast(device_type=v.device.type, enabled=False):
            mixed = attn @ v.float()  # B×N×W
        block, visual = clip.blocks[-1], clip.clip.visual
        out = block.attn.out_proj(mixed.to(v.dtype))
        out = visual.ln_post(out) @ visual.proj  # B×N×D
        feats = out.float().transpose(1, 2).reshape(b, -1, rows, cols)
        keys = e.transpose(1, 2) if with_keys else None
        return F.normalize(feats, dim=1), keys


__all__ = ["ProxyCLIPHead", "build_proxy", "dino_position_table", "load_proxy_file",
           "vit_patch_features"]
