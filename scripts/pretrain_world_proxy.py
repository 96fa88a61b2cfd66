"""Pre-train the offline world's proxy ViT (ProxyCLIP's second vision model) by self-distillation.

    python scripts/pretrain_world_proxy.py               # the committed asset's recipe + probe
    python scripts/pretrain_world_proxy.py --probe-only  # only the k-NN probe (docs/world_proxy.md)
    make world-proxy                                      # the first, via make

ProxyCLIP reads a self-supervised ViT (DINO ViT-B/8) next to CLIP. The offline world's stand-in
is a small timm ``VisionTransformer`` with patch 4 (the world CLIP has patch 8), trained on the
world's TRAIN split (the 2000 scenes of seed 0; never val or test) with three self-distillation
terms between a student and its EMA teacher, all through one projection head (MLP → L2 →
cosine to K unit prototypes; student temperature 0.1, teacher 0.04):

- **DINO** (class token): the teacher sees two global crops, the student sees them and small
  local crops; every student view is trained towards the teacher's other global view;
- **iBOT** (masked patches): half the student's global crops have blocks of patches replaced by a
  learned mask token; there the student predicts the teacher's patch output of the same view;
- **dense cross-view** (every patch): a student patch is trained towards the teacher's patch of
  the other global crop that sees the same point of the scene (the crop geometry is known).

The teacher's outputs are centred and sharpened by Sinkhorn-Knopp (DINOv2; ``--centering
center`` gives DINO's running centre). Global crops cover 20-50% of a scene at about its native
scale (48 px); local crops 5-20% (32 px). Augmentations keep colour, which is what tells the
world's classes apart: crops and horizontal flips only by default (``--jitter`` adds brightness,
contrast and saturation jitter, no hue). Inputs are normalised with the world CLIP's statistics,
so one tensor feeds both models. Collapse is watched in the log: the teacher's per-sample
entropy (uniform targets sit at log K), the entropy of its batch mean (one prototype for all: 0)
and the spread of the backbone's class and patch tokens (``cls_std``, ``patch_std``).

Output: the EMA teacher's backbone as an fp16 safetensors state dict and a JSON whose ``timm``
entry rebuilds it (``timm.create_model(**json["timm"])``, then a strict load), with the command,
seed, loss history and input statistics. Then the k-NN probe (scripts/probe_world_proxy.py)
writes docs/world_proxy.md and .json.
"""

from __future__ import annotations

import os

# Spinning OpenMP threads stall when another process holds one of the 2 cores (measured: 10.6 s
# vs 1.6 s per step); passive waiting must be chosen before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from src.data.world import SPLIT_SEEDS, SPLIT_SIZES, generate_scene  # noqa: E402
from scripts._assets import provenance, save_fp16  # noqa: E402

DEFAULT_OUT = ROOT / "assets" / "world_proxy" / "world-proxy.safetensors"
# The world CLIP's input statistics (open_clip's OpenAI mean/std): one normalised tensor for both.
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


def timm_config(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``timm.create_model`` that rebuild the proxy."""
    return {"model_name": "vit_small_patch16_224", "pretrained": False,
            "img_size": args.image_size, "patch_size": args.patch_size,
            "embed_dim": args.embed_dim, "depth": args.depth, "num_heads": args.heads,
            "mlp_ratio": 4.0, "num_classes": 0, "dynamic_img_size": True}


# ----------------------------------------------------------------------------- data
def load_train_scenes(count: int, size: int) -> Tensor:
    """The world's train split (seed 0), scenes 0..count-1: N×3×H×W uint8."""
    seed = SPLIT_SEEDS["train"]
    images = np.stack([generate_scene(seed, i, size).image for i in range(count)])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def random_crops(images: Tensor, out: int, scale: tuple[float, float],
                 generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random resized crops (area ``scale``, aspect 3/4..4/3) + h-flips, resampled to ``out``.

    Args:
        images: B×3×H×W float in [0, 1].

    Returns:
        (B×3×out×out crops, B×2×3 affine maps from a crop's [-1, 1] coordinates to the
        image's).
    """
    b = images.shape[0]
    u = torch.rand(b, 5, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    ratio = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[:, 1])
    w = (area * ratio).sqrt().clamp(max=1.0)  # fractions of the side
    h = (area / ratio).sqrt().clamp(max=1.0)
    cx = (2 * u[:, 2] - 1) * (1 - w)  # centre in [-1, 1] coordinates, crop inside the image
    cy = (2 * u[:, 3] - 1) * (1 - h)
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, [b, 3, out, out], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                         align_corners=False), theta


def colour_jitter(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Mild brightness, contrast and saturation jitter (factors in 1 ± strength); no hue."""
    b = x.shape[0]
    f = 1 + strength * (2 * torch.rand(b, 3, 1, 1, 1, generator=generator) - 1)
    x = x * f[:, 0]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * f[:, 1] + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * f[:, 2] + grey
    return x.clamp(0, 1)


def make_views(batch: Tensor, args: argparse.Namespace, generator: torch.Generator
               ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """uint8 B×3×H×W → (2 normalised global crops, their B×2×3 crop maps, local crops)."""
    x = batch.float() / 255
    mean = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 3, 1, 1)

    def view(out, scale):
        crop, theta = random_crops(x, out, scale, generator)
        return (colour_jitter(crop, args.jitter, generator) - mean) / std, theta

    globals_ = [view(args.global_size, (args.global_min_scale, args.global_max_scale))
                for _ in range(2)]
    locals_ = [view(args.local_size, (args.local_min_scale, args.global_min_scale))[0]
               for _ in range(args.local_crops)]
    return [g for g, _ in globals_], [t for _, t in globals_], locals_


def corresponding_tokens(theta_student: Tensor, theta_teacher: Tensor, grid: int
                         ) -> tuple[Tensor, Tensor]:
    """For every token of a student crop, the teacher crop's token that sees the same point.

    Args:
        theta_student, theta_teacher: B×2×3 crop → image maps (see :func:`random_crops`).
        grid: tokens per side of both crops.

    Returns:
        (B×grid² long teacher token indices, B×grid² bool: the point lies inside the teacher
        crop).
    """
    centres = (2 * torch.arange(grid, dtype=torch.float32) + 1) / grid - 1
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    points = torch.stack([xx.flatten(), yy.flatten(), torch.ones(grid * grid)])  # 3×N
    image = theta_student @ points  # B×2×N image coordinates
    scale = torch.stack([theta_teacher[:, 0, 0], theta_teacher[:, 1, 1]], 1)[..., None]
    local = (image - theta_teacher[:, :, 2:]) / scale  # the teacher crop's coordinates
    inside = (local.abs() < 1).all(1)
    cell = ((local + 1) / 2 * grid).floor().long().clamp(0, grid - 1)
    return cell[:, 1] * grid + cell[:, 0], inside


def block_masks(batch: int, grid: int, probability: float, ratio: tuple[float, float],
                generator: torch.Generator) -> Tensor:
    """B×grid×grid bool masks: for a ``probability`` share of images, rectangles of patches
    (4..grid²/4 patches, aspect 0.3..3.3) are added until a ratio drawn from ``ratio`` is met."""
    masks = torch.zeros(batch, grid, grid, dtype=torch.bool)
    for i in range(batch):
        if torch.rand(1, generator=generator).item() >= probability:
            continue
        target = int(round(grid * grid * (ratio[0] + (ratio[1] - ratio[0])
                                          * torch.rand(1, generator=generator).item())))
        for _ in range(50):
            if int(masks[i].sum()) >= target:
                break
            u = torch.rand(4, generator=generator).tolist()
            area = 4 + u[0] * (max(target - int(masks[i].sum()), 4) - 4)
            aspect = math.exp(math.log(0.3) + u[1] * (math.log(3.3) - math.log(0.3)))
            h = max(1, min(grid, int(round(math.sqrt(area * aspect)))))
            w = max(1, min(grid, int(round(math.sqrt(area / aspect)))))
            top, left = int(u[2] * (grid - h + 1)), int(u[3] * (grid - w + 1))
            masks[i, top:top + h, left:left + w] = True
    return masks


# ----------------------------------------------------------------------------- model
class ProjectionHead(nn.Module):
    """DINO's head: MLP → L2-normalised bottleneck → cosine to K unit prototypes."""

    def __init__(self, dim: int, hidden: int, bottleneck: int, prototypes: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, bottleneck))
        self.prototypes = nn.Parameter(torch.randn(prototypes, bottleneck) * 0.02)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.mlp(x), dim=-1) @ F.normalize(self.prototypes, dim=-1).T


class Network(nn.Module):
    """Backbone + head; the student also owns the mask token (not part of the saved proxy)."""

    def __init__(self, backbone: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, backbone.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def tokens(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """B×(1+N)×D final normed tokens; masked patches enter as the mask token."""
        vit = self.backbone
        x = vit.patch_embed(x)  # B×h×w×D (dynamic_img_size)
        if mask is not None:
            x = torch.where(mask[..., None], self.mask_token.to(x.dtype), x)
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))
        return vit.norm(vit.blocks(x))

    def forward(self, x: Tensor, mask: Tensor | None = None, patches: bool = True
                ) -> tuple[Tensor, Tensor | None, Tensor]:
        """(B×K class-token logits, B×N×K patch logits or None, B×(1+N)×D tokens)."""
        tokens = self.tokens(x, mask)
        logits = self.head(tokens if patches else tokens[:, :1])
        return logits[:, 0], (logits[:, 1:] if patches else None), tokens


# ----------------------------------------------------------------------------- objective
def entropy(p: Tensor) -> Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


@torch.no_grad()
def sinkhorn_knopp(logits: Tensor, temperature: float, iterations: int = 3) -> Tensor:
    """M×K teacher logits → M×K targets whose rows sum to 1 and whose prototypes share the
    batch equally (DINOv2's Sinkhorn-Knopp centring), instead of a running centre."""
    q = torch.exp((logits - logits.max()) / temperature).T  # K×M
    q /= q.sum()
    k, m = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True) * k
        q /= q.sum(dim=0, keepdim=True) * m
    return (q * m).T


def lr_at(step: int, total: int, warmup: int, base: float, final: float = 0.0) -> float:
    """Linear warm-up, then cosine decay from ``base`` to ``final``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * progress))


def train(args: argparse.Namespace, argv: list[str] | None) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.time()
    scenes = load_train_scenes(args.train_scenes, args.image_size)

    def build() -> Network:
        backbone = timm.create_model(**timm_config(args))
        return Network(backbone, ProjectionHead(args.embed_dim, args.head_hidden,
                                                args.head_bottleneck, args.prototypes))

    student = build()
    teacher = build()
    teacher.load_state_dict(student.state_dict())
    teacher.requires_grad_(False)
    decay, no_decay = [], []
    for name, p in student.named_parameters():
        (no_decay if p.ndim < 2 or "pos_embed" in name or "token" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    center_cls = torch.zeros(1, args.prototypes)
    center_patch = torch.zeros(1, args.prototypes)
    grid = args.global_size // args.patch_size
    history = []
    order = torch.randperm(args.train_scenes, generator=generator)
    cursor = 0
    print(f"proxy: {json.dumps(timm_config(args))}, "
          f"{sum(p.numel() for p in student.backbone.parameters()) / 1e6:.2f} M backbone params, "
          f"{args.train_scenes} train scenes", flush=True)
    for step in range(args.steps):
        if cursor + args.batch_size > len(order):
            order, cursor = torch.randperm(args.train_scenes, generator=generator), 0
        batch = scenes[order[cursor:cursor + args.batch_size]]
        cursor += args.batch_size
        lr = lr_at(step, args.steps, args.warmup, args.lr, args.lr * 0.01)
        for group in optimizer.param_groups:
            group["lr"] = lr
        momentum = 1 - (1 - args.ema) * (math.cos(math.pi * step / args.steps) + 1) / 2

        globals_, thetas, locals_ = make_views(batch, args, generator)
        masks = [block_masks(len(batch), grid, args.mask_probability,
                             (args.mask_min, args.mask_max), generator) for _ in globals_]
        with torch.no_grad():
            t_out = [teacher(g) for g in globals_]
            if args.centering == "sinkhorn":
                cls = sinkhorn_knopp(torch.cat([c for c, _, _ in t_out]), args.teacher_temp)
                t_cls = list(cls.chunk(len(t_out)))
                shape = t_out[0][1].shape
                patch = sinkhorn_knopp(torch.cat([p.flatten(0, 1) for _, p, _ in t_out]),
                                       args.teacher_temp)
                t_patch = [p.view(shape) for p in patch.chunk(len(t_out))]
            else:
                t_cls = [F.softmax((c - center_cls) / args.teacher_temp, dim=-1)
                         for c, _, _ in t_out]
                t_patch = [F.softmax((p - center_patch) / args.teacher_temp, dim=-1)
                           for _, p, _ in t_out]
        s_global = [student(g, m) for g, m in zip(globals_, masks)]
        s_local = [student(x, patches=False)[0] for x in locals_]
        s_cls = [c for c, _, _ in s_global] + s_local

        def cross_entropy(t: Tensor, s: Tensor) -> Tensor:  # per row of teacher probs t
            return (-t * F.log_softmax(s / args.student_temp, dim=-1)).sum(-1)

        # DINO: every student view against the teacher's other global view(s)
        loss_cls, pairs = 0.0, 0
        for ti, t in enumerate(t_cls):
            for si, s in enumerate(s_cls):
                if si != ti:
                    loss_cls, pairs = loss_cls + cross_entropy(t, s).mean(), pairs + 1
        loss_cls = loss_cls / pairs
        # iBOT: masked patches of each global view against the teacher's same view (unmasked),
        # averaged over each image's masked patches, then over the images that have a mask
        loss_patch, images_with_mask = torch.zeros(()), 0
        for (_, s_p, _), t_p, m in zip(s_global, t_patch, masks):
            m = m.flatten(1).float()
            counts = m.sum(1)
            per_image = (cross_entropy(t_p, s_p) * m).sum(1) / counts.clamp(min=1)
            loss_patch = loss_patch + per_image[counts > 0].sum()
            images_with_mask += int((counts > 0).sum())
        loss_patch = loss_patch / max(images_with_mask, 1)
        # dense cross-view term: a student token against the other view's teacher token that
        # sees the same point of the scene (where the two crops overlap)
        loss_dense = torch.zeros(())
        if args.dense_weight > 0:
            total, count = torch.zeros(()), 0
            for si, ti in ((0, 1), (1, 0)):
                index, inside = corresponding_tokens(thetas[si], thetas[ti], grid)
                target = t_patch[ti].gather(1, index[..., None].expand(-1, -1,
                                                                        args.prototypes))
                ce = cross_entropy(target, s_global[si][1])
                total, count = total + (ce * inside).sum(), count + int(inside.sum())
            loss_dense = total / max(count, 1)
        loss = (args.cls_weight * loss_cls + args.patch_weight * loss_patch
                + args.dense_weight * loss_dense)

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step < args.freeze_prototypes:  # DINO freezes the last layer at first
            student.head.prototypes.grad = None
        grad_norm = float(nn.utils.clip_grad_norm_(student.parameters(), args.clip_grad))
        optimizer.step()
        with torch.no_grad():
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)
            batch_cls = torch.cat([c for c, _, _ in t_out]).mean(0, keepdim=True)
            center_cls.mul_(args.center_momentum).add_(batch_cls, alpha=1 - args.center_momentum)
            batch_patch = torch.cat([p.flatten(0, 1) for _, p, _ in t_out]).mean(0, keepdim=True)
            center_patch.mul_(args.center_momentum).add_(batch_patch,
                                                         alpha=1 - args.center_momentum)

        if step % args.log_every == 0 or step == args.steps - 1:
            with torch.no_grad():
                probs = torch.cat(t_cls)
                pprobs = torch.cat([p.flatten(0, 1) for p in t_patch])
                tokens = t_out[0][2]
                patch_tokens = F.normalize(tokens[:, 1:], dim=-1)
                record = {
                    "step": step, "minutes": (time.time() - started) / 60,
                    "loss": float(loss), "loss_cls": float(loss_cls),
                    "loss_patch": float(loss_patch), "loss_dense": float(loss_dense),
                    "lr": lr, "ema": momentum,
                    "grad_norm": grad_norm,
                    # sharpness (low) and prototype use (high): both are needed against collapse
                    "teacher_entropy": float(entropy(probs).mean()),
                    "teacher_mean_entropy": float(entropy(probs.mean(0))),
                    "teacher_patch_entropy": float(entropy(pprobs).mean()),
                    "teacher_patch_mean_entropy": float(entropy(pprobs.mean(0))),
                    "max_entropy": math.log(args.prototypes),
                    # spread of the backbone's tokens: across images (cls), and within an image
                    "cls_std": float(F.normalize(tokens[:, 0], dim=-1).std(0).mean()),
                    "patch_std": float(patch_tokens.std(1).mean()),
                }
            history.append(record)
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                              for k, v in record.items()}), flush=True)
        if args.save_every and step and step % args.save_every == 0:
            save_fp16(teacher.backbone, args.ckpt_dir / f"step{step:05d}.safetensors")

    # The teacher (EMA) backbone is the proxy, as in DINO.
    sha = save_fp16(teacher.backbone, args.out)
    record = {
        "timm": timm_config(args),
        "image_mean": list(IMAGE_MEAN), "image_std": list(IMAGE_STD),
        "patch_size": args.patch_size, "image_size": args.image_size,
        "features": "forward_features(x)[:, num_prefix_tokens:] (final normed patch tokens)",
        "command": "python scripts/pretrain_world_proxy.py " + shlex.join(
            sys.argv[1:] if argv is None else argv),
        "seed": args.seed, "steps": args.steps,
        "data": f"world train split (seed {SPLIT_SEEDS['train']}), scenes "
                f"0..{args.train_scenes - 1}",
        "recipe": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("out", "ckpt_dir", "probe_only", "no_probe")},
        "final": history[-1], "history": history,
        **provenance(args.out, sha, started, timm=timm.__version__),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {args.out} ({record['size_bytes'] / 2**20:.2f} MiB) after "
          f"{record['wall_minutes']:.1f} min, final loss {history[-1]['loss']:.3f}", flush=True)
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    a = parser.add_argument
    a("--steps", type=int, default=900)
    a("--batch-size", type=int, default=32)
    a("--lr", type=float, default=1e-3)
    a("--weight-decay", type=float, default=0.04)
    a("--warmup", type=int, default=50)
    a("--clip-grad", type=float, default=3.0)
    a("--image-size", type=int, default=96, help="the world's scene size (the pos-embed grid)")
    a("--patch-size", type=int, default=4)
    a("--embed-dim", type=int, default=128)
    a("--depth", type=int, default=4)
    a("--heads", type=int, default=4)
    a("--head-hidden", type=int, default=256)
    a("--head-bottleneck", type=int, default=128)
    a("--prototypes", type=int, default=256)
    a("--global-size", type=int, default=48, help="global crops are resampled to this side")
    a("--global-min-scale", type=float, default=0.2, help="crop area share")
    a("--global-max-scale", type=float, default=0.5)
    a("--local-size", type=int, default=32)
    a("--local-min-scale", type=float, default=0.05)
    a("--local-crops", type=int, default=2)
    a("--jitter", type=float, default=0.0,
      help="brightness/contrast/saturation jitter (0: colour is what tells the classes apart)")
    a("--mask-probability", type=float, default=0.5)
    a("--mask-min", type=float, default=0.1)
    a("--mask-max", type=float, default=0.5)
    a("--cls-weight", type=float, default=1.0, help="DINO class-token term")
    a("--patch-weight", type=float, default=1.0, help="iBOT masked-patch term")
    a("--dense-weight", type=float, default=1.0, help="cross-view dense term")
    a("--teacher-temp", type=float, default=0.04)
    a("--student-temp", type=float, default=0.1)
    a("--centering", choices=("center", "sinkhorn"), default="sinkhorn",
      help="teacher centring: DINO's running centre, or Sinkhorn-Knopp (DINOv2)")
    a("--center-momentum", type=float, default=0.9)
    a("--ema", type=float, default=0.99, help="teacher momentum at step 0 (cosine to 1)")
    a("--freeze-prototypes", type=int, default=20)
    a("--train-scenes", type=int, default=SPLIT_SIZES["train"])
    a("--seed", type=int, default=0)
    a("--threads", type=int, default=2)
    a("--log-every", type=int, default=10)
    a("--save-every", type=int, default=150,
      help="also keep teacher checkpoints in --ckpt-dir (0: none)")
    a("--out", type=Path, default=DEFAULT_OUT)
    a("--ckpt-dir", type=Path, default=ROOT / "logs" / "world_proxy")
    a("--probe-only", action="store_true", help="skip training; probe the asset at --out")
    a("--no-probe", action="store_true", help="train only; do not write docs/world_proxy.md")
    args = parser.parse_args(argv)
    if args.train_scenes > SPLIT_SIZES["train"]:
        parser.error(f"--train-scenes: the train split has {SPLIT_SIZES['train']} scenes")
    from scripts.probe_world_proxy import run_probe

    if args.probe_only:
        return run_probe(args.out, threads=args.threads)
    record = train(args, argv)
    if not args.no_probe:
        record["probe"] = run_probe(args.out, threads=args.threads)
    return record


if __name__ == "__main__":
    main()
