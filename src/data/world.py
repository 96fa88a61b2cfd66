"""The offline world: procedural scenes with pixel ground truth and captions.

Every pixel has a class, as in PASCAL Context and COCO-Stuff. One to three textured "stuff"
regions (grass, water, sand, brick, sky) fill the image. Zero to three "things" of distinct shape
and colour lie on top (ball, star, heart, kite, box, ring, cloud). Each scene is a pure function
of ``(seed, index)``, so splits are reproducible with no files on disk.

Design notes (lessons of a throw-away prototype of this world):
- Objects span 3–7 patches of a patch-8 ViT. The prototype's 2–4-patch objects capped even a
  per-patch oracle at 0.70 mIoU.
- There is no "background" class, because a single background prompt was the prototype's main
  failure. Every region is a real, captioned class.
- Thing classes differ in local appearance (colour) as well as in shape, because appearance
  localizes in a small CLIP and pure shape barely does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from src.data.datasets.base import SegmentationDataset
from src.data.splits import ZERO_SHOT_UNSEEN

STUFF: tuple[str, ...] = ("grass", "water", "sand", "brick", "sky")
THINGS: tuple[str, ...] = ("ball", "star", "heart", "kite", "box", "ring", "cloud")
CLASSES: tuple[str, ...] = STUFF + THINGS
# Transductive zero-shot split, 3 of 12 classes (25%), one stuff and two things, as on COCO-Stuff.
UNSEEN: tuple[str, ...] = ZERO_SHOT_UNSEEN["world"]

THING_COLOURS: dict[str, tuple[str, tuple[int, int, int]]] = {
    "ball": ("red", (215, 35, 35)),
    "star": ("yellow", (245, 215, 30)),
    "heart": ("pink", (245, 120, 185)),
    "kite": ("orange", (245, 135, 20)),
    "box": ("purple", (125, 50, 170)),
    "ring": ("cyan", (30, 205, 210)),
    "cloud": ("white", (242, 242, 242)),
}

# Display colours for label maps (the VOC palette would paint "grass" black, like void).
STUFF_COLOURS: dict[str, tuple[int, int, int]] = {
    "grass": (60, 150, 50), "water": (35, 85, 175), "sand": (215, 190, 135),
    "brick": (150, 62, 42), "sky": (150, 200, 245),
}


def world_palette() -> np.ndarray:
    """(C+1)×3 uint8 palette in the classes' own colours; the last row (void) is black."""
    colours = [STUFF_COLOURS[c] for c in STUFF] + [THING_COLOURS[t][1] for t in THINGS]
    return np.array(colours + [(0, 0, 0)], dtype=np.uint8)


SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}
SPLIT_SIZES = {"train": 2000, "val": 200, "test": 200}

CAPTION_TEMPLATES_WITH_THINGS = (
    "a photo of {things} on {stuff}.",
    "{things} on {stuff}.",
    "a picture of {stuff} with {things}.",
    "there is {things} in front of {stuff}.",
    "an image of {things} and {stuff}.",
)
CAPTION_TEMPLATES_STUFF_ONLY = (
    "a photo of {stuff}.",
    "a picture of {stuff}.",
    "just {stuff}.",
)
NUMBER_WORDS = {2: "two", 3: "three"}


@dataclass(frozen=True)
class Thing:
    """One object: class name, centre (x, y), radius in pixels, rotation in radians."""

    name: str
    cx: float
    cy: float
    radius: float
    angle: float


@dataclass
class Scene:
    """A generated scene: image H×W×3 uint8, mask H×W uint8, caption, and its layout."""

    image: np.ndarray
    mask: np.ndarray
    caption: str
    stuff: list[str]
    things: list[Thing] = field(default_factory=list)

    @property
    def classes_present(self) -> set[str]:
        return {CLASSES[c] for c in np.unique(self.mask)}


# ----------------------------------------------------------------------------- shapes
def _regular_polygon(cx, cy, radius, sides, angle, inner=None) -> list[tuple[float, float]]:
    """Vertices of a regular polygon, or of a star when ``inner`` (inner radius) is given."""
    points = []
    count = sides * (2 if inner else 1)
    for k in range(count):
        r = inner if inner and k % 2 else radius
        theta = angle + 2 * math.pi * k / count - math.pi / 2
        points.append((cx + r * math.cos(theta), cy + r * math.sin(theta)))
    return points


def _heart(cx, cy, radius, angle) -> list[tuple[float, float]]:
    pts = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        x, y = x / 17 * radius, y / 17 * radius
        c, s = math.cos(angle), math.sin(angle)
        pts.append((cx + c * x - s * y, cy + s * x + c * y))
    return pts


def polygon_area(points: Sequence[tuple[float, float]]) -> float:
    """Shoelace area of a simple polygon."""
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    return 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))


def thing_geometry(thing: Thing) -> tuple[str, object]:
    """How a thing is drawn: ('polygon', points), ('ellipse', box) or ('ring', (outer, inner))."""
    x, y, r, a = thing.cx, thing.cy, thing.radius, thing.angle
    if thing.name == "ball":
        return "ellipse", (x - r, y - r, x + r, y + r)
    if thing.name == "cloud":
        return "ellipse", (x - r, y - 0.6 * r, x + r, y + 0.6 * r)
    if thing.name == "ring":
        return "ring", ((x - r, y - r, x + r, y + r), (x - 0.5 * r, y - 0.5 * r, x + 0.5 * r,
                                                         y + 0.5 * r))
    if thing.name == "star":
        return "polygon", _regular_polygon(x, y, r, 5, a, inner=0.5 * r)
    if thing.name == "heart":
        return "polygon", _heart(x, y, r, a)
    if thing.name == "kite":
        return "polygon", [(x, y - r), (x + 0.7 * r, y), (x, y + r), (x - 0.7 * r, y)]
    if thing.name == "box":
        return "polygon", _regular_polygon(x, y, r * math.sqrt(2) * 0.8, 4, a + math.pi / 4)
    raise ValueError(f"unknown thing {thing.name!r}")


def thing_area(thing: Thing) -> float:
    """The continuous area of a thing's shape in pixels² (before occlusion)."""
    kind, geom = thing_geometry(thing)
    if kind == "polygon":
        return polygon_area(geom)
    if kind == "ellipse":
        x0, y0, x1, y1 = geom
        return math.pi * (x1 - x0) / 2 * (y1 - y0) / 2
    (o, i) = geom
    return math.pi * ((o[2] - o[0]) / 2) ** 2 - math.pi * ((i[2] - i[0]) / 2) ** 2


def draw_thing_mask(thing: Thing, size: tuple[int, int]) -> np.ndarray:
    """H×W bool mask of a thing, rasterised at pixel centres by PIL."""
    canvas = Image.new("L", (size[1], size[0]), 0)
    draw = ImageDraw.Draw(canvas)
    kind, geom = thing_geometry(thing)
    if kind == "polygon":
        draw.polygon(geom, fill=1)
    elif kind == "ellipse":
        draw.ellipse(geom, fill=1)
    else:
        outer, inner = geom
        draw.ellipse(outer, fill=1)
        draw.ellipse(inner, fill=0)
    return np.array(canvas, dtype=bool)


# ----------------------------------------------------------------------------- textures
def stuff_texture(name: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """H×W×3 float texture of a stuff class; local statistics identify the class."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = rng.standard_normal((h, w)).astype(np.float32)
    jitter = rng.uniform(0.9, 1.1)
    if name == "grass":
        blades = np.repeat(rng.standard_normal((1, w)), h, axis=0) * 0.5 + noise * 0.5
        base = np.array([60, 145, 50]) * jitter
        img = base + 35 * blades[..., None] * np.array([0.5, 1.0, 0.4])
    elif name == "water":
        phase = rng.uniform(0, 2 * math.pi)
        waves = np.sin(yy / rng.uniform(2.0, 3.0) + 0.3 * np.sin(xx / 6) + phase)
        base = np.array([35, 85, 175]) * jitter
        img = base + (25 * waves + 8 * noise)[..., None] * np.array([0.6, 0.8, 1.0])
    elif name == "sand":
        base = np.array([212, 188, 135]) * jitter
        img = base + (22 * noise)[..., None] * np.array([1.0, 0.9, 0.7])
    elif name == "brick":
        bh, bw = 8, 16
        row = (yy // bh).astype(int)
        offset = (row % 2) * (bw // 2)
        mortar = ((yy % bh) < 1.5) | (((xx + offset) % bw) < 1.5)
        base = np.array([150, 62, 42]) * jitter
        img = np.where(mortar[..., None], np.array([200, 195, 185]), base) + 10 * noise[..., None]
    elif name == "sky":
        top, bottom = np.array([110, 165, 235]), np.array([200, 225, 250])
        t = (yy / max(h - 1, 1))[..., None]
        img = (1 - t) * top + t * bottom + 3 * noise[..., None]
    else:
        raise ValueError(f"unknown stuff {name!r}")
    return img.astype(np.float32)


def thing_appearance(name: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """H×W×3 float fill of a thing: its colour with jitter, shading and noise."""
    h, w = size
    colour = np.array(THING_COLOURS[name][1], dtype=np.float32) * rng.uniform(0.88, 1.08)
    yy, _ = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 1.0 - 0.15 * (yy / max(h - 1, 1))
    noise = rng.standard_normal((h, w, 1)).astype(np.float32) * 6
    return colour * shade[..., None] + noise


# ----------------------------------------------------------------------------- layout
def _stuff_layout(rng: np.random.Generator, size: tuple[int, int]) -> tuple[list[str], np.ndarray]:
    """Choose 1–3 stuff classes and the region map (H×W indices into the chosen list)."""
    h, w = size
    count = int(rng.choice([1, 2, 2, 3]))
    names = list(rng.choice(STUFF, size=count, replace=False))
    regions = np.zeros((h, w), dtype=np.int64)
    if count == 1:
        return names, regions
    yy, xx = np.mgrid[0:h, 0:w]
    if "sky" in names:  # the sky goes on top, as a horizon
        names.remove("sky")
        names.insert(0, "sky")
    if count == 2:
        if names[0] == "sky" or rng.random() < 0.5:
            horizon = rng.uniform(0.3, 0.7) * h + rng.uniform(-0.15, 0.15) * (xx - w / 2)
            regions[yy >= horizon] = 1
        else:
            slope = rng.uniform(-1.0, 1.0)
            edge = rng.uniform(0.3, 0.7) * w + slope * (yy - h / 2)
            regions[xx >= edge] = 1
        return names, regions
    # three regions: a horizon, and the lower part split by a slanted line
    horizon = rng.uniform(0.25, 0.45) * h
    split = rng.uniform(0.3, 0.7) * w + rng.uniform(-0.8, 0.8) * (yy - h / 2)
    regions[yy >= horizon] = 1
    regions[(yy >= horizon) & (xx >= split)] = 2
    return names, regions


def _place_things(rng: np.random.Generator, size: tuple[int, int]) -> list[Thing]:
    h, w = size
    count = int(rng.choice([0, 1, 1, 2, 2, 3]))
    things: list[Thing] = []
    scale = min(h, w) / 96
    for _ in range(40):  # rejection sampling for non-overlapping discs
        if len(things) == count:
            break
        r = rng.uniform(15, 26) * scale
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        if all(math.hypot(cx - t.cx, cy - t.cy) > r + t.radius + 2 for t in things):
            name = str(rng.choice(THINGS))
            things.append(Thing(name, cx, cy, r, rng.uniform(-0.4, 0.4)))
    return things


def _join(words: Sequence[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def make_caption(stuff: Sequence[str], things: Sequence[Thing], rng: np.random.Generator) -> str:
    """A caption naming exactly the classes visible in the scene."""
    stuff_text = _join(list(stuff))
    if not things:
        return str(rng.choice(CAPTION_TEMPLATES_STUFF_ONLY)).format(stuff=stuff_text)
    counts: dict[str, int] = {}
    for thing in things:
        counts[thing.name] = counts.get(thing.name, 0) + 1
    phrases = []
    for name, n in counts.items():
        colour = THING_COLOURS[name][0] + " " if rng.random() < 0.75 else ""
        article = "an" if (colour or name)[0] in "aeiou" else "a"
        phrases.append(f"{NUMBER_WORDS[n]} {colour}{name}s" if n > 1 else
                       f"{article} {colour}{name}")
    template = str(rng.choice(CAPTION_TEMPLATES_WITH_THINGS))
    return template.format(things=_join(phrases), stuff=stuff_text)


def generate_scene(seed: int, index: int, size: int | tuple[int, int] = 96) -> Scene:
    """Scene ``index`` of the split with ``seed``: identical on every machine and every call."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    rng = np.random.default_rng([seed, index])
    stuff, regions = _stuff_layout(rng, size)
    image = np.zeros((*size, 3), dtype=np.float32)
    mask = np.zeros(size, dtype=np.uint8)
    for k, name in enumerate(stuff):
        region = regions == k
        image[region] = stuff_texture(name, size, rng)[region]
        mask[region] = CLASSES.index(name)
    things = _place_things(rng, size)
    for thing in things:
        inside = draw_thing_mask(thing, size)
        image[inside] = thing_appearance(thing.name, size, rng)[inside]
        mask[inside] = CLASSES.index(thing.name)
    # Things whose every pixel was drawn over cannot be named: keep the caption exact.
    visible = [t for t in things if (mask == CLASSES.index(t.name)).any()]
    caption = make_caption(stuff, visible, rng)
    image = np.clip(image, 0, 255).round().astype(np.uint8)
    return Scene(image, mask, caption, list(stuff), visible)


# ----------------------------------------------------------------------------- dataset
def vocabulary_lines() -> list[str]:
    """The world's vocabulary file content (``src/prompts/vocab/world.txt``)."""
    return list(CLASSES)


class WorldDataset(SegmentationDataset):
    """A split of the offline world, generated on the fly (deterministic per index).

    Args:
        root: unused (scenes are generated on the fly); kept for the datamodule's interface.
        split: ``train``, ``val`` or ``test`` (separate seeds).
        num_images: number of scenes (default: the split's standard size).
        image_size: side length in pixels.
        seed_offset: shifts every split's seed, for a fresh world.
        transform: as for :class:`SegmentationDataset`.
    """

    def __init__(self, root: str | None = None, split: str = "test", num_images: int | None = None, image_size: int = 96,
                 seed_offset: int = 0, transform=None) -> None:
        if split not in SPLIT_SEEDS:
            raise ValueError(f"world split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
        self.split = split
        self.seed = SPLIT_SEEDS[split] + 1000 * seed_offset
        self.image_size = image_size
        n = SPLIT_SIZES[split] if num_images is None else int(num_images)
        samples = [(Path(f"world/{split}/{i:05d}.png"), Path(f"world/{split}/{i:05d}_mask.png"),
                    f"world_{split}_{i:05d}") for i in range(n)]
        super().__init__(samples, num_classes=len(CLASSES), transform=transform)

    def scene(self, index: int) -> Scene:
        return generate_scene(self.seed, index, self.image_size)

    def load_image(self, index: int) -> np.ndarray:
        return self.scene(index).image

    def load_mask(self, index: int) -> np.ndarray:
        return self.scene(index).mask

