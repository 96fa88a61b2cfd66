"""The offline world: determinism, masks that match the drawing, exact captions."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from src.data.world import (
    CLASSES,
    STUFF,
    THING_COLOURS,
    THINGS,
    UNSEEN,
    Thing,
    WorldDataset,
    draw_thing_mask,
    generate_scene,
    thing_area,
)
from src.prompts.vocabulary import load_vocabulary

SCENES = [generate_scene(2, i) for i in range(120)]


def test_deterministic_per_seed_and_index():
    a, b = generate_scene(5, 17), generate_scene(5, 17)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert a.caption == b.caption
    c = generate_scene(6, 17)
    assert not np.array_equal(a.image, c.image)


def test_splits_have_separate_seeds():
    train, test = WorldDataset(split="train", num_images=3), WorldDataset(split="test",
                                                                          num_images=3)
    assert not np.array_equal(train.load_image(0), test.load_image(0))
    with pytest.raises(ValueError, match="world split"):
        WorldDataset(split="holdout")


def test_every_pixel_has_a_class_and_vocabulary_matches():
    assert len(CLASSES) >= 12
    vocab = load_vocabulary("world")
    assert list(vocab.names) == list(CLASSES)
    for scene in SCENES[:30]:
        assert scene.mask.max() < len(CLASSES)  # no 255, no background class
    assert len(UNSEEN) / len(CLASSES) == 0.25


@pytest.mark.parametrize("name", THINGS)
def test_rasterised_area_matches_geometry(name):
    thing = Thing(name, 48.3, 50.7, 20.0, 0.3)
    pixels = draw_thing_mask(thing, (96, 96)).sum()
    area = thing_area(thing)
    perimeter_allowance = 2 * math.pi * thing.radius * 0.6  # pixel-centre sampling on the edge
    assert abs(pixels - area) <= perimeter_allowance, (pixels, area)


def test_scene_masks_match_their_drawing():
    checked = 0
    for scene in SCENES:
        names = [t.name for t in scene.things]
        for thing in scene.things:
            others = [t for t in scene.things if t is not thing]
            inside = all(1.3 * thing.radius <= c <= 96 - 1.3 * thing.radius
                         for c in (thing.cx, thing.cy))
            isolated = all(math.hypot(thing.cx - o.cx, thing.cy - o.cy)
                           > 1.3 * (thing.radius + o.radius) for o in others)
            if names.count(thing.name) != 1 or not (inside and isolated):
                continue
            count = (scene.mask == CLASSES.index(thing.name)).sum()
            drawn = draw_thing_mask(thing, scene.mask.shape)
            assert count == drawn.sum()  # the class's pixels are exactly the drawn shape
            assert abs(count - thing_area(thing)) <= 2 * math.pi * thing.radius * 0.6
            colour = scene.image[drawn].mean(0)
            assert np.abs(colour - np.array(THING_COLOURS[thing.name][1])).max() < 45
            checked += 1
    assert checked >= 20


def test_stuff_regions_cover_the_rest():
    for scene in SCENES[:40]:
        stuff_pixels = np.isin(scene.mask, [CLASSES.index(s) for s in STUFF])
        thing_pixels = np.zeros_like(stuff_pixels)
        for thing in scene.things:
            thing_pixels |= draw_thing_mask(thing, scene.mask.shape)
        assert np.array_equal(stuff_pixels, ~thing_pixels)
        assert {CLASSES[c] for c in np.unique(scene.mask[stuff_pixels])} <= set(scene.stuff)


def test_captions_mention_exactly_the_classes_present():
    templates_seen = set()
    for scene in SCENES:
        mentioned = {c for c in CLASSES if re.search(rf"\b{c}s?\b", scene.caption)}
        assert mentioned == scene.classes_present, scene.caption
        templates_seen.add(re.sub(r"\b(" + "|".join(CLASSES) + r")s?\b", "X", scene.caption)[:12])
    assert len(templates_seen) >= 4  # several caption templates vary the wording


def test_world_dataset_through_the_datamodule():
    from src.data.datamodule import SegDataModule

    dm = SegDataModule(dataset="world", root="unused", vocabulary="world", num_classes=12,
                       dataset_kwargs={"num_images": 4}, test_split="test",
                       test_scale=(96, 96), num_workers=0, batch_size=2)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"][0].shape == (3, 96, 96)
    expected = torch.from_numpy(generate_scene(2, 0).mask).long()
    assert torch.equal(batch["mask"][0], expected)


def test_world_is_registered_without_importing_it():
    # The registry lists the world itself; building it must not rely on some module having
    # imported src.data.world first. A fresh interpreter, since this one has imported it.
    code = (
        "import sys\n"
        "from src.data.datasets import DATASETS\n"
        "assert 'world' in DATASETS and 'src.data.world' not in sys.modules\n"
        "cls = DATASETS.resolve('world')\n"
        "assert (cls.__module__, cls.__name__) == ('src.data.world', 'WorldDataset')\n"
        "assert len(cls(split='test', num_images=2)) == 2\n"
    )
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_fresh_world_from_the_composed_config_shifts_every_split():
    # `data.dataset_kwargs.seed_offset=k` is how scripts/world_fresh.py and users get a fresh
    # world: every split's scenes are new draws (seed + 1000 k), and offset 0 is the standard one.
    from hydra.utils import instantiate

    from src.data.world import SPLIT_SEEDS
    from src.utils.experiments import compose_config

    for offset in (0, 3):
        cfg = compose_config("train", ["experiment=world_annofree",
                                       f"data.dataset_kwargs.seed_offset={offset}",
                                       "data.dataset_kwargs.num_images=2"])
        dm = instantiate(cfg.data)
        for split in ("train", "val", "test"):
            dataset = dm.build_dataset(split)
            expected = generate_scene(SPLIT_SEEDS[split] + 1000 * offset, 1)
            assert np.array_equal(dataset.load_mask(1), expected.mask), (split, offset)
    fresh, standard = WorldDataset(split="test", seed_offset=3), WorldDataset(split="test")
    assert not np.array_equal(fresh.load_image(0), standard.load_image(0))
