"""Templates, vocabularies and the prompt-ensembled text classifier."""

from __future__ import annotations

import open_clip
import pytest
import torch

from src.prompts.templates import IMAGENET80, TEMPLATE_SETS, get_templates
from src.prompts.text_classifier import build_text_classifier, encode_text_truncated
from src.prompts.vocabulary import ClassVocabulary, available_vocabularies, load_vocabulary


def test_template_sets():
    assert len(TEMPLATE_SETS["imagenet80"]) == 80
    assert len(TEMPLATE_SETS["imagenet85"]) == 85
    assert TEMPLATE_SETS["imagenet85"][-1] == "this is one {} in the scene."
    assert TEMPLATE_SETS["single"] == ("a photo of a {}.",)
    assert IMAGENET80[0] == "a bad photo of a {}."
    with pytest.raises(ValueError, match="unknown prompt template set"):
        get_templates("imagenet81")
    with pytest.raises(ValueError, match="exactly one"):
        get_templates(["no placeholder"])


def test_vocabulary_file_format(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("# comment\npottedplant: potted plant\nsofa: sofa, couch\ncat\n\n")
    vocab = ClassVocabulary.from_file(path)
    assert vocab.names == ("pottedplant", "sofa", "cat")
    assert vocab.queries == (("potted plant",), ("sofa", "couch"), ("cat",))
    assert vocab.flat_queries == ["potted plant", "sofa", "couch", "cat"]
    assert vocab.query_to_class.tolist() == [0, 1, 1, 2]
    assert vocab.index("couch") == 1
    bad = tmp_path / "bad.txt"
    bad.write_text("cat\nsofa:\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        ClassVocabulary.from_file(bad)


def test_shipped_vocabularies_and_renamings():
    assert {"voc20", "voc21", "context59", "context60", "cocostuff"} <= set(available_vocabularies())
    voc = load_vocabulary("voc20")
    assert voc.num_classes == 20
    assert voc.queries[voc.index("aeroplane")] == ("airplane",)
    assert voc.queries[voc.index("pottedplant")] == ("potted plant",)
    coco = load_vocabulary("cocostuff")
    assert coco.num_classes == 171
    assert coco.queries[coco.index("wall-brick")] == ("brick wall",)
    with pytest.raises(FileNotFoundError, match="Shipped"):
        load_vocabulary("voc19")


def _tiny_clip():
    model = open_clip.create_model("tiny-vit", pretrained=None)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval(), open_clip.get_tokenizer("tiny-vit")


def test_classifier_equals_open_clip_builder():
    import src.models.clip_loading  # noqa: F401  (registers the tiny configs)

    model, tokenizer = _tiny_clip()
    names = ["cat", "potted plant", "tv monitor", "sky"]
    templates = TEMPLATE_SETS["imagenet85"][::9]
    ours = build_text_classifier(model, tokenizer, names, templates, batch_size=7,
                                 progress=False)
    theirs = open_clip.build_zero_shot_classifier(model, tokenizer, names, templates)
    assert ours.shape == (4, 32)
    torch.testing.assert_close(ours, theirs.T, atol=1e-5, rtol=1e-5)


def test_truncated_text_encoding_is_exact():
    import src.models.clip_loading  # noqa: F401

    model, tokenizer = _tiny_clip()
    tokens = tokenizer(["a photo of a cat.", "a tattoo of the very small potted plant."])
    with torch.no_grad():
        torch.testing.assert_close(encode_text_truncated(model, tokens), model.encode_text(tokens),
                                   atol=1e-5, rtol=1e-5)


def test_classifier_disk_cache(tmp_path, monkeypatch):
    from src.models.teacher import MaskCLIPTeacher

    source = MaskCLIPTeacher("tiny-vit", None, cache_dir=None)
    weights = tmp_path / "w.pt"
    torch.save(source.clip.state_dict(), weights)
    teacher = MaskCLIPTeacher("tiny-vit", str(weights), cache_dir=tmp_path / "cache")
    first = teacher.encode_queries(["cat", "dog"], "single")
    files = list((tmp_path / "cache").glob("*.pt"))
    assert len(files) == 1
    # A hit must not run the text tower.
    def fail(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr("src.prompts.text_classifier.build_text_classifier", fail)
    torch.testing.assert_close(teacher.encode_queries(["cat", "dog"], "single"), first)
    monkeypatch.undo()
    teacher.encode_queries(["cat", "dog"], "imagenet80")  # other templates: another entry
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    # random-init weights are never cached
    assert MaskCLIPTeacher("tiny-vit", None, cache_dir=tmp_path / "c2").spec.weights_id is None
