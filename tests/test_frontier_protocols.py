"""protocol=scclip|resclip|proxyclip: the frontier heads' own 8-benchmark settings.

The expected values below are written from the notes on the official code (SC-CLIP
SuleBai/SC-CLIP @ 0417ba9, ResCLIP yvhangyang/ResCLIP @ 0e085f7, ProxyCLIP mc-lan/ProxyCLIP @
e7b767f: their configs/cfg_<dataset>.py); they are the spec the presets are checked against.
Everything here composes configs only: no model is built.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.models.inference import InferenceConfig
from src.models.postproc import PostprocConfig
from src.models.refine import RefineConfig
from src.utils.config import CONFIG_DIR
from src.utils.experiments import compose_config

EIGHT = ("voc21", "context60", "cocoobject", "voc20", "context59", "cocostuff", "cityscapes",
         "ade20k")
WITH_BACKGROUND = ("voc21", "context60", "cocoobject")
PRESETS = ("scclip", "resclip", "proxyclip")

# --------------------------------------------------------------------------- the notes' tables
# Short side of the test resize: 336, Cityscapes 560 (SC-CLIP, ResCLIP); ProxyCLIP 448 on ADE20K
# and Cityscapes.
SHORT_SIDE = {
    "scclip": {**dict.fromkeys(EIGHT, 336), "cityscapes": 560},
    "resclip": {**dict.fromkeys(EIGHT, 336), "cityscapes": 560},
    "proxyclip": {**dict.fromkeys(EIGHT, 336), "cityscapes": 448, "ade20k": 448},
}
# (mode, crop, stride): 224/112 for SC-CLIP and ResCLIP (ResCLIP VOC-21/VOC-20 on the whole
# image), 336/112 for ProxyCLIP (Cityscapes 224/112).
WINDOWS = {
    "scclip": dict.fromkeys(EIGHT, ("slide", 224, 112)),
    "resclip": {**dict.fromkeys(EIGHT, ("slide", 224, 112)), "voc21": ("whole", 224, 112),
                "voc20": ("whole", 224, 112)},
    "proxyclip": {**dict.fromkeys(EIGHT, ("slide", 336, 112)),
                  "cityscapes": ("slide", 224, 112)},
}
LOGIT_SCALE = {
    "scclip": {**dict.fromkeys(EIGHT, 40), "voc21": 50, "cocoobject": 55},
    "resclip": dict.fromkeys(EIGHT, 40),
    "proxyclip": dict.fromkeys(EIGHT, 40),
}
# prob_thd on the sets with a background class; 0 (no threshold) on the others.
PROB_THD = {
    "scclip": {"voc21": 0.15, "context60": 0.15, "cocoobject": 0.35},
    "resclip": {"voc21": 0.1, "context60": 0.1, "cocoobject": 0.1},
    "proxyclip": {"voc21": 0.2, "context60": 0.15, "cocoobject": 0.25},
}
# ResCLIP's per-dataset in-model settings: temp_thd, rcs (tau, lam), sfr (tau, lam).
RESCLIP = {
    "voc21": (0.50, (2.0, 0.3), (2.2, 0.7)),
    "voc20": (0.10, (2.0, 0.6), (2.1, 0.6)),
    "context60": (0.30, (2.0, 0.3), (1.8, 0.7)),
    "context59": (0.25, (2.0, 0.4), (1.8, 0.7)),
    "cocoobject": (0.11, (2.0, 0.4), (1.8, 0.7)),
    "cocostuff": (0.11, (2.0, 0.4), (1.8, 0.7)),
    "cityscapes": (0.10, (2.0, 0.2), (2.1, 0.6)),
    "ade20k": (0.25, (2.0, 0.3), (2.1, 0.7)),
}


def _head_config_exists(head: str) -> bool:
    return (Path(CONFIG_DIR) / "teacher" / "head" / f"{head}.yaml").exists()


def _resolved(protocol: str, name: str, *extra: str, head: bool = False) -> dict:
    overrides = ["experiment=bench8", f"data={name}", f"protocol={protocol}", "teacher=tiny",
                 *([f"teacher/head={protocol}"] if head else []), *extra]
    cfg = compose_config("eval", overrides)
    out = {k: OmegaConf.to_container(cfg[k], resolve=True)
           for k in ("data", "inference", "refine", "postproc", "prompts", "teacher", "protocol")}
    out["background_threshold"] = cfg.background_threshold
    return out


@pytest.fixture(scope="module")
def presets() -> dict[tuple[str, str], dict]:
    """Every (preset, dataset) composed once, without a head (the preset never sets one)."""
    return {(p, name): _resolved(p, name) for p in PRESETS for name in EIGHT}


@pytest.mark.parametrize("protocol", PRESETS)
def test_presets_resolve_to_the_notes_for_all_eight(presets, protocol):
    from src.prompts.vocabulary import load_vocabulary

    for name in EIGHT:
        r = presets[(protocol, name)]
        assert r["protocol"]["name"] == protocol
        assert r["data"]["test_scale"] == [2048, SHORT_SIDE[protocol][name]], name
        mode, crop, stride = WINDOWS[protocol][name]
        assert (r["inference"]["mode"], r["inference"]["crop_size"],
                r["inference"]["stride"]) == (mode, crop, stride), name
        assert r["inference"]["average"] == "pixel"
        assert r["refine"]["temperature"] == LOGIT_SCALE[protocol][name], name
        assert r["background_threshold"] == PROB_THD[protocol].get(name), name
        assert r["prompts"]["templates"] == "imagenet80"
        assert r["teacher"]["position_resize"] == "peers"
        assert r["teacher"]["autocast_dtype"] == "float16"
        assert r["teacher"]["head"] == "maskclip"  # the preset leaves the head to teacher/head=
        vocabulary = load_vocabulary(r["data"]["vocabulary"])
        assert vocabulary.num_classes == r["data"]["num_classes"], name
        if name in WITH_BACKGROUND:
            assert vocabulary.names[0] == "background"
        # The resolved groups build the pipeline's own configs (their validation included).
        InferenceConfig(**r["inference"])
        PostprocConfig(**r["postproc"])
        RefineConfig(**r["refine"])


def test_sc_clip_drops_small_classes_on_voc21_only(presets):
    for name in EIGHT:
        expected = 0.1 if name == "voc21" else None
        assert presets[("scclip", name)]["postproc"]["area_threshold"] == expected, name
        for other in ("resclip", "proxyclip"):
            assert presets[(other, name)]["postproc"]["area_threshold"] is None


def test_only_proxyclip_pads_crops_symmetrically_to_56(presets):
    for name in EIGHT:
        proxy = presets[("proxyclip", name)]["inference"]
        assert (proxy["pad"], proxy["pad_multiple"]) == ("symmetric", 56)
        crop = proxy["crop_size"]
        assert crop % 56 == 0  # 336 and 224: only an image smaller than the crop is padded
        for other in ("scclip", "resclip"):
            inference = presets[(other, name)]["inference"]
            assert (inference["pad"], inference["pad_multiple"]) == ("corner", None)


def test_resclip_head_options_follow_its_per_dataset_table(presets):
    for name, (temp_thd, rcs, sfr) in RESCLIP.items():
        r = presets[("resclip", name)]
        assert r["teacher"]["head_options"] == {"temp_thd": temp_thd, "rcs": list(rcs),
                                                "sfr": list(sfr)}, name
        assert r["refine"]["key_smoothing"] is False and r["refine"]["prompt_denoising"] is False
    for other in ("scclip", "proxyclip"):
        assert presets[(other, "voc21")]["teacher"]["head_options"] is None


def test_a_command_line_override_beats_the_preset():
    """The new inference keys exist in conf/inference/*.yaml: no '+' is needed."""
    r = _resolved("proxyclip", "ade20k", "inference.pad_multiple=112",
                  "postproc.area_threshold=0.2", "teacher.position_resize=exact")
    assert r["inference"]["pad_multiple"] == 112 and r["postproc"]["area_threshold"] == 0.2
    assert r["teacher"]["position_resize"] == "exact"
    r = _resolved("resclip", "voc20", "teacher.head_options.temp_thd=0.4")
    assert r["teacher"]["head_options"]["temp_thd"] == 0.4
    assert r["teacher"]["head_options"]["rcs"] == [2.0, 0.6]  # the rest of the table stays
    r = _resolved("scclip", "voc21", "inference.average=feature", "postproc=pamr")
    assert r["inference"]["average"] == "feature"
    assert r["postproc"]["kind"] == "pamr" and r["postproc"]["area_threshold"] == 0.1


def test_inference_groups_carry_the_pipeline_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(InferenceConfig)}
    for group in ("whole", "slide"):
        cfg = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR) / "inference"
                                                     / f"{group}.yaml"))
        for key in ("average", "pad", "pad_multiple"):
            assert cfg[key] == defaults[key], (group, key)
    plain = _resolved("naclip", "voc21")["inference"]
    assert (plain["average"], plain["pad"], plain["pad_multiple"]) == ("feature", "corner", None)


@pytest.mark.parametrize("protocol", PRESETS)
def test_presets_compose_with_their_head(presets, protocol):
    """`protocol=<p> teacher/head=<p>`: the head is chosen, and the preset's values survive it."""
    if not _head_config_exists(protocol):
        pytest.skip(f"conf/teacher/head/{protocol}.yaml is not there yet")
    for name in EIGHT:
        r = _resolved(protocol, name, head=True)
        assert r["teacher"]["head"] == protocol
        alone = presets[(protocol, name)]
        for group in ("data", "inference", "refine", "postproc", "protocol"):
            assert r[group] == alone[group], (name, group)
        assert r["background_threshold"] == alone["background_threshold"]
        assert r["teacher"]["position_resize"] == "peers"
        assert r["teacher"]["autocast_dtype"] == "float16"
        if protocol == "resclip":
            temp_thd, rcs, sfr = RESCLIP[name]
            options = r["teacher"]["head_options"]
            assert (options["temp_thd"], options["rcs"], options["sfr"]) == (temp_thd, list(rcs),
                                                                              list(sfr))


@pytest.mark.parametrize("protocol,name", [("scclip", "voc21"), ("resclip", "voc20"),
                                           ("proxyclip", "context60")])
def test_a_tiny_teacher_builds_and_labels_under_each_preset(protocol, name):
    """One random-init build per preset (tiny CLIP; ProxyCLIP with a one-block random proxy):
    the composed settings reach the teacher and an off-grid image gets finite probabilities."""
    import torch

    from src.builders import build_teacher
    from src.prompts.vocabulary import load_vocabulary

    if not _head_config_exists(protocol):
        pytest.skip(f"conf/teacher/head/{protocol}.yaml is not there yet")
    proxy = (["teacher.proxy.allow_random_init=true",
              "++teacher.proxy.kwargs={img_size: 64, depth: 1, embed_dim: 32, num_heads: 2}"]
             if protocol == "proxyclip" else [])
    cfg = compose_config("eval", [
        "experiment=bench8", f"data={name}", f"protocol={protocol}", f"teacher/head={protocol}",
        "teacher=tiny", "prompts=single", "inference.crop_size=64", "inference.stride=32",
        *proxy])
    teacher = build_teacher(cfg)
    teacher.set_vocabulary(load_vocabulary(cfg.data.vocabulary), "single")
    inference, postproc = teacher.pipeline.inference, teacher.pipeline.postproc
    assert inference.mode == WINDOWS[protocol][name][0] and inference.average == "pixel"
    assert teacher.resolved_temperature() == LOGIT_SCALE[protocol][name]
    if protocol == "scclip":
        assert postproc.area_threshold == 0.1
    if protocol == "resclip":
        assert teacher.features.frontier.temp_thd == RESCLIP[name][0]
    if protocol == "proxyclip":
        assert (inference.pad, inference.pad_multiple) == ("symmetric", 56)
    with torch.no_grad():
        probs = teacher(torch.randn(1, 3, 72, 100))
    assert probs.shape == (1, cfg.data.num_classes, 72, 100)
    assert torch.isfinite(probs).all()
