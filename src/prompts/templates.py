"""Prompt template sets.

The 80 ImageNet templates are imported from open_clip (never copied); MaskCLIP adds five
"scene" templates (MaskCLIP §3.4, following ViLD), giving the 85 used by the official code.
"""

from __future__ import annotations

from collections.abc import Sequence

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

# open_clip stores its templates as lambdas; calling them with "{}" recovers the format string.
IMAGENET80: tuple[str, ...] = tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)

SCENE5: tuple[str, ...] = (
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)

SINGLE: tuple[str, ...] = ("a photo of a {}.",)

# The offline world's caption phrasings (src/data/world.py): prompts must come from the caption
# distribution a CLIP was trained on, and the world CLIP only ever read these.
WORLD: tuple[str, ...] = ("a photo of {}.", "a picture of {}.", "an image of {}.", "{}.")

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "single": SINGLE,
    "imagenet80": IMAGENET80,
    "imagenet85": IMAGENET80 + SCENE5,
    "world": WORLD,
}


def get_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """Resolve a template-set name or an explicit list of ``"{}"`` format strings.

    Raises:
        ValueError: for an unknown set name, or a template without exactly one ``{}``.
    """
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ValueError(
                f"unknown prompt template set {templates!r}; choose one of "
                f"{sorted(TEMPLATE_SETS)} or give a list of strings containing '{{}}'"
            )
        return TEMPLATE_SETS[templates]
    resolved = tuple(str(t) for t in templates)
    if not resolved:
        raise ValueError("prompt template list is empty")
    for template in resolved:
        if template.count("{}") != 1:
            raise ValueError(f"prompt template {template!r} must contain exactly one '{{}}'")
    return resolved
