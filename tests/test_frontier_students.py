"""Students from the frontier heads: ``src.train experiment=<real data> teacher/head=...``.

SC-CLIP's and ResCLIP's statistics live per 224-px window in their own protocol, so inside
MaskCLIP+ their head configs label a training crop with 224/112 windows
(``teacher.pseudo_label_inference``); evaluation keeps ``inference`` as the config names it, and
``teacher.pseudo_label_inference=null`` labels the whole crop.
"""

from __future__ import annotations

import pytest
import torch

from src.builders import teacher_inference
from src.utils.experiments import compose_config
from tests.test_frontier_proxyclip import PROXY
from tests.test_train import COMMON

HEADS = ("scclip", "resclip", "proxyclip")
WINDOWED = {"scclip": True, "resclip": True, "proxyclip": False}


def _proxy_overrides(head: str) -> list[str]:
    if head != "proxyclip":
        return []
    kwargs = ",".join(f"{k}:{v}" for k, v in PROXY["kwargs"].items())
    return [f"teacher.proxy.model={PROXY['model']}", "teacher.proxy.allow_random_init=true",
            f"teacher.proxy.kwargs={{{kwargs}}}"]


@pytest.mark.parametrize("head", HEADS)
def test_context_annofree_composes_with_each_frontier_head(head, data_dir):
    cfg = compose_config("train", ["experiment=context_annofree", f"teacher/head={head}",
                                   f"paths.data_dir={data_dir}"])
    assert cfg.teacher.head == head and cfg.teacher.model_name == "ViT-B-16"
    assert cfg.teacher.position_resize == "peers"
    evaluation, labelling = teacher_inference(cfg), teacher_inference(cfg, pseudo_labels=True)
    assert evaluation == dict(cfg.inference)  # evaluation: the inference the config names
    if WINDOWED[head]:
        assert (labelling["mode"], labelling["crop_size"], labelling["stride"]) == (
            "slide", [224, 224], [112, 112])
        # everything else is the run's inference
        assert {k: v for k, v in labelling.items() if k not in ("mode", "crop_size", "stride")} \
            == {k: v for k, v in evaluation.items() if k not in ("mode", "crop_size", "stride")}
    else:
        assert labelling == evaluation
    off = compose_config("train", ["experiment=context_annofree", f"teacher/head={head}",
                                   f"paths.data_dir={data_dir}",
                                   "teacher.pseudo_label_inference=null"])
    assert teacher_inference(off, pseudo_labels=True) == dict(off.inference)


def test_pseudo_label_inference_rejects_unknown_keys(data_dir):
    cfg = compose_config("train", ["experiment=context_annofree", "teacher/head=scclip",
                                   f"paths.data_dir={data_dir}",
                                   "+teacher.pseudo_label_inference.window=224"])
    with pytest.raises(ValueError, match="pseudo_label_inference: unknown keys"):
        teacher_inference(cfg, pseudo_labels=True)


@pytest.mark.parametrize("head", HEADS)
def test_a_student_trains_on_context_fixtures_from_each_frontier_head(head, data_dir, tmp_path):
    """Two steps of the Context recipe on fixtures in the real layout, a tiny CLIP teacher with
    the head, and the teacher's labelling settings as the head asks for them."""
    from src.train import build_module, train

    overrides = ["experiment=context_annofree", "teacher=tiny", f"teacher/head={head}",
                 *_proxy_overrides(head), *COMMON, f"paths.data_dir={data_dir}",
                 "data.crop_size=[32,32]", "data.train_scale=[64,32]", "data.test_scale=[64,32]",
                 "max_steps=2", "val_every=2", "checkpoint_every=2", "test_after_fit=false",
                 f"paths.output_dir={tmp_path}"]
    cfg = compose_config("train", overrides)
    module = build_module(cfg)
    inference = module.teacher.inference
    assert inference.mode == ("slide" if WINDOWED[head] else "whole")
    if WINDOWED[head]:
        assert inference.crop_size == (224, 224) and inference.stride == (112, 112)
    assert module.teacher.head == head
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert not any(k.startswith("teacher") for k in ckpt["state_dict"])
    assert ckpt["maskclip_plus"]["teacher"]["head"] == head
