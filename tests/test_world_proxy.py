"""The offline world's proxy ViT (ProxyCLIP's second vision model): its asset and its probe."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from src.utils.config import PROJECT_ROOT

ASSET = PROJECT_ROOT / "assets" / "world_proxy" / "world-proxy.safetensors"
sys.path.insert(0, str(PROJECT_ROOT))


def test_committed_asset_is_small_documented_and_rebuilds_strictly():
    import hashlib

    import timm
    from safetensors.torch import load_file

    assert ASSET.is_file(), "run `make world-proxy` to rebuild the world proxy"
    assert ASSET.stat().st_size < 5 * 2**20
    meta = json.loads(ASSET.with_suffix(".json").read_text())
    for key in ("timm", "command", "seed", "steps", "final", "history", "sha256",
                "image_mean", "image_std"):
        assert key in meta
    assert hashlib.sha256(ASSET.read_bytes()).hexdigest() == meta["sha256"]
    model = timm.create_model(**meta["timm"])
    state = load_file(str(ASSET))
    assert all(v.dtype == torch.float16 for v in state.values())
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    assert model.patch_embed.patch_size == (4, 4) and model.num_classes == 0


def test_patch_tokens_of_a_world_image_are_finite_and_not_constant():
    from scripts.probe_world_proxy import load_proxy, normalise, proxy_patch_tokens, world_split

    model, meta = load_proxy(ASSET)
    images, _ = world_split("val", 2)
    tokens = proxy_patch_tokens(model, normalise(images, meta["image_mean"], meta["image_std"]))
    assert tokens.shape == (2, meta["timm"]["embed_dim"], 24, 24)
    assert torch.isfinite(tokens).all()
    unit = torch.nn.functional.normalize(tokens.flatten(2), dim=1)  # B×D×N
    assert unit.std(dim=2).mean() > 0.05  # patches differ: no collapse to one vector


def test_knn_probe_on_a_hand_made_example():
    from scripts.probe_world_proxy import knn_predict, segmentation_scores

    # bank: class 0 around +x, class 1 around +y (3 each); k=3 takes a whole cluster
    bank = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.9, 0.0],
                         [0.1, 1.0], [-0.1, 1.0], [0.0, 0.9]])
    bank_labels = torch.tensor([0, 0, 0, 1, 1, 1])
    queries = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.95, 0.2], [0.2, 0.8]])
    pred = knn_predict(bank, bank_labels, queries, num_classes=2, k=3, center=False)
    assert pred.tolist() == [0, 1, 0, 1]
    # truth says the third query is class 1: accuracy 3/4; IoU 1/2 (class 0), 2/3 (class 1)
    scores = segmentation_scores(pred, torch.tensor([0, 1, 1, 1]), num_classes=2)
    assert scores["acc"] == pytest.approx(0.75)
    assert scores["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # an ignored cell (-1) does not count
    assert segmentation_scores(pred, torch.tensor([0, 1, -1, 1]), 2)["acc"] == pytest.approx(1.0)


def test_knn_probe_end_to_end_on_cells():
    from scripts.probe_world_proxy import cell_labels, knn_probe

    # 2 images of 8×8 px, cells of 4 px; the left half class 0, the right half class 1
    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[:, :, 4:] = 1
    masks[1, 0:3, 0:4] = 1  # 12 of the 16 pixels of image 1's top-left cell: majority 1
    assert cell_labels(masks, 4, 2).tolist() == [[[0, 1], [0, 1]], [[1, 1], [0, 1]]]
    # features that encode the column: k-NN gets the left cells right and image 1's top-left
    # cell (truth 1, but left-column features) wrong: 7 of 8 cells
    feats = torch.zeros(2, 2, 2, 2)
    feats[:, 0, :, 0] = 1.0
    feats[:, 1, :, 1] = 1.0
    scores = knn_probe(feats, masks, feats, masks, stride=4, num_classes=2, k=3, center=False)
    assert scores["acc"] == pytest.approx(7 / 8)


def test_pretrain_script_smoke(tmp_path):
    """Two steps of a tiny proxy: the asset and its JSON are written and rebuild strictly."""
    import timm
    from safetensors.torch import load_file

    from scripts.pretrain_world_proxy import main

    out = tmp_path / "p.safetensors"
    record = main(["--steps", "2", "--batch-size", "4", "--train-scenes", "8", "--embed-dim",
                   "32", "--depth", "1", "--heads", "2", "--prototypes", "16", "--head-hidden",
                   "32", "--head-bottleneck", "16", "--global-size", "16", "--local-size", "8",
                   "--warmup", "1", "--freeze-prototypes", "1", "--log-every", "1",
                   "--save-every", "0", "--threads", "1", "--out", str(out), "--no-probe"])
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["steps"] == 2 and saved["seed"] == 0 and "--steps 2" in saved["command"]
    assert [h["step"] for h in saved["history"]] == [0, 1]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in saved["history"])
    model = timm.create_model(**saved["timm"])
    model.load_state_dict({k: v.float() for k, v in load_file(str(out)).items()}, strict=True)
    assert record["final"]["loss"] == saved["final"]["loss"]


def test_corresponding_tokens_see_the_same_point():
    """The dense term's matching: tokens of two crops of a coordinate image agree to ½ token."""
    from scripts.pretrain_world_proxy import corresponding_tokens, random_crops

    generator = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    image = (torch.stack([xx, yy, xx * 0]) / 96).expand(8, 3, 96, 96)
    a, theta_a = random_crops(image, 48, (0.2, 0.6), generator)
    b, theta_b = random_crops(image, 48, (0.2, 0.6), generator)
    assert (theta_a[:, 0, 0] < 0).any() and (theta_a[:, 0, 0] > 0).any()  # flips both ways
    token_xy = [torch.nn.functional.avg_pool2d(v, 4).flatten(2)[:, :2] for v in (a, b)]
    index, inside = corresponding_tokens(theta_a, theta_b, 12)
    matched = token_xy[1].gather(2, index[:, None].expand(-1, 2, -1))
    error_px = (token_xy[0] - matched).abs().amax(1)[inside] * 96
    assert inside.float().mean() > 0.2
    # a crop side is at most √(0.6·4/3) ≈ 0.89 of the scene, so a token spans ≤ 7.2 px of it:
    # the nearest teacher token is at most half a token off
    assert error_px.max() < 3.6


def test_teacher_head_proxyclip_world_builds_the_committed_asset():
    """teacher/head=proxyclip_world names the asset JSON's timm model and statistics, and the
    world teacher builds with it (the proxy's weights are the asset's, loaded strictly)."""
    from safetensors.torch import load_file

    from src.builders import build_teacher
    from src.utils.experiments import compose_config

    meta = json.loads(ASSET.with_suffix(".json").read_text())
    cfg = compose_config("eval", ["experiment=world_maskclip", "teacher/head=proxyclip_world"])
    proxy = cfg.teacher.proxy
    assert cfg.teacher.head == "proxyclip"
    assert proxy.model == meta["timm"]["model_name"]
    wanted = {k: v for k, v in meta["timm"].items()
              if k not in ("model_name", "pretrained", "num_classes")}
    assert dict(proxy.kwargs) == wanted
    assert list(proxy.mean) == meta["image_mean"] and list(proxy.std) == meta["image_std"]
    teacher = build_teacher(cfg)
    net = teacher.features.frontier.proxy
    saved = load_file(str(ASSET))
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, saved[name].float(), rtol=0, atol=0)
    images = torch.randn(2, 3, 96, 96)
    assert teacher.dense_features(images).shape[-2:] == (24, 24)  # stride 4
