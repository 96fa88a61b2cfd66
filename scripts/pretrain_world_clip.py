"""Pre-train the offline world's tiny CLIP on generated image–caption pairs (CPU, ~35 min).

    python scripts/pretrain_world_clip.py              # the committed checkpoint's recipe
    make world-clip                                     # the same, via make

It uses open_clip's own ``CLIP`` (architecture ``world-vit``, a JSON config registered by the
project) and a multi-positive ``ClipLoss`` (identical captions in a batch are all positives).
Every batch holds fresh scenes from the world's pre-training stream, whose seed is disjoint
from the train/val/test splits. Retrieval@1 on held-out pairs is reported while training.
The output is an fp16 safetensors state dict and a JSON that records the command, seed, steps
and metrics. ``MaskCLIPTeacher("world-vit", pretrained=<file>)`` loads it like any checkpoint.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import open_clip  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import src.models.clip_loading  # noqa: E402,F401  (registers the project's model configs)
from src.data.world import generate_scene  # noqa: E402
from scripts._assets import provenance, save_fp16  # noqa: E402
from src.models.clip_pretraining_loss import MultiPositiveClipLoss, caption_ids  # noqa: E402

# Scene streams: 0/1/2 are the world's train/val/test splits; CLIP never sees those images.
PRETRAIN_SEED = 10
HELDOUT_SEED = 11
DEFAULT_OUT = ROOT / "assets" / "world_clip" / "world-vit.safetensors"


def make_batch(seed: int, start: int, size: int, image_size: int, mean: torch.Tensor,
               std: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """Scenes ``start .. start+size-1`` of a stream as (B×3×H×W normalised images, captions)."""
    scenes = [generate_scene(seed, start + i, image_size) for i in range(size)]
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2)
    images = (images.float() / 255 - mean) / std
    return images, [s.caption for s in scenes]


@torch.no_grad()
def retrieval_at_1(model, tokenizer, images: torch.Tensor, captions: list[str]) -> dict:
    """Image→text and text→image retrieval@1, counting an identical caption as a hit."""
    model.eval()
    img = F.normalize(torch.cat([model.encode_image(x) for x in images.split(128)]), dim=-1)
    unique = sorted(set(captions))
    txt = F.normalize(model.encode_text(tokenizer(unique)), dim=-1)
    sims = img @ txt.T
    truth = torch.tensor([unique.index(c) for c in captions])
    i2t = (sims.argmax(dim=1) == truth).float().mean().item()
    # text→image: the best image for each caption must carry that caption
    best_image = sims.argmax(dim=0)
    t2i = (truth[best_image] == torch.arange(len(unique))).float().mean().item()
    model.train()
    return {"i2t_r1": i2t, "t2i_r1": t2i}


def lr_at(step: int, total: int, warmup: int, base_lr: float) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base_lr * (1 + math.cos(math.pi * progress))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="world-vit", help="open_clip architecture")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0, help="torch seed (weights init)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-pairs", type=int, default=512)
    parser.add_argument("--save-every", type=int, default=250,
                        help="also keep checkpoints along the way (for the steps-vs-mIoU plot)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--ckpt-dir", type=Path, default=ROOT / "logs" / "world_clip",
                        help="where intermediate checkpoints go (not committed)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = open_clip.create_model(args.model, pretrained=None)
    tokenizer = open_clip.get_tokenizer(args.model)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    model.train()
    # No weight decay on gains, biases, embeddings and the temperature (open_clip's recipe).
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    loss_fn = MultiPositiveClipLoss()
    heldout_images, heldout_captions = make_batch(HELDOUT_SEED, 0, args.eval_pairs,
                                                  args.image_size, mean, std)
    history = []
    started = time.time()
    # Scene generation (numpy) overlaps the model's step in a helper thread.
    prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def batch_future(step: int):
        return prefetch.submit(make_batch, PRETRAIN_SEED, step * args.batch_size,
                               args.batch_size, args.image_size, mean, std)

    next_batch = batch_future(0)
    bar = tqdm(range(args.steps + 1), desc="pretrain world CLIP", unit="step")
    for step in bar:
        if step % args.eval_every == 0 or step == args.steps:
            metrics = retrieval_at_1(model, tokenizer, heldout_images, heldout_captions)
            metrics.update(step=step, minutes=(time.time() - started) / 60,
                           logit_scale=float(model.logit_scale.detach().exp()))
            history.append(metrics)
            bar.write(json.dumps(metrics))
        if step % args.save_every == 0 or step == args.steps:
            save_fp16(model, args.ckpt_dir / f"step{step:05d}.safetensors")
        if step == args.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.warmup, args.lr)
        images, captions = next_batch.result()
        next_batch = batch_future(step + 1)
        image_features, text_features, logit_scale = model(images, tokenizer(captions))
        loss = loss_fn(image_features, text_features, logit_scale, caption_ids(captions))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # CLIP clamps its temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
        bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{logit_scale.item():.1f}")

    prefetch.shutdown(wait=False, cancel_futures=True)
    sha = save_fp16(model, args.out)
    record = {
        "command": "python scripts/pretrain_world_clip.py " + shlex.join(
            sys.argv[1:] if argv is None else argv),
        "model": args.model,
        "config": json.loads((ROOT / "src/models/model_configs" / f"{args.model}.json")
                             .read_text()) if (ROOT / "src/models/model_configs" /
                                               f"{args.model}.json").is_file() else None,
        "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "weight_decay": args.weight_decay, "warmup": args.warmup, "image_size": args.image_size,
        "threads": args.threads, "pretrain_scene_seed": PRETRAIN_SEED,
        "heldout_scene_seed": HELDOUT_SEED, "eval_pairs": args.eval_pairs,
        "final": history[-1], "history": history,
        **provenance(args.out, sha, started, open_clip=open_clip.__version__),
    }
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {args.out} ({record['size_bytes'] / 2**20:.1f} MiB), "
          f"retrieval@1 i2t {history[-1]['i2t_r1']:.3f} t2i {history[-1]['t2i_r1']:.3f}")
    return record


if __name__ == "__main__":
    main()
