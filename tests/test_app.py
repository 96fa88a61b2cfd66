"""src.app's function layer, without a browser: the labels equal src.predict's for the command the
page shows, the model is built once, bad input gets a message, uploads stay in the page's folder,
one request runs at a time, and the server makes no network call (tests/test_app_browser.py
drives the page itself)."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.utils.config import PROJECT_ROOT
from src.utils.experiments import compose_config

# The world CLIP on the CPU, in-process (no DataLoader workers).
WORLD = ["teacher=world", "prompts=world", "scale=null", "trainer.accelerator=cpu",
         "trainer.enable_progress_bar=false", "num_workers=0"]
WORLD_CLASSES = "grass, water, sand, brick, sky, ball, star, heart, kite, box, ring, cloud"


def make_app(tmp_path: Path, overrides=(), **kwargs):
    from src.app import LabellingApp

    args = [*WORLD, *overrides]
    cfg = compose_config("app", [*args, f"temp_dir={tmp_path}"])
    return LabellingApp(cfg, args, **kwargs)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("app"))
    yield app
    app.close()


def upload(app, source: str | Path, name: str) -> Path:
    """A file as Gradio stores an upload: under the page's uploads/ folder, its own name kept."""
    folder = app.root / "uploads" / os.urandom(4).hex()
    folder.mkdir(parents=True)
    target = folder / name
    target.write_bytes(Path(source).read_bytes())
    return target


def reproduce(command: str, image: Path, out: Path) -> dict:
    """Run the page's command as `python -m src.predict` runs it, on ``image``, into ``out``."""
    from src.predict import class_list_argv, predict

    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "src.predict"]
    assert argv[3] == f"images={image.name}" and argv[-1] == "out=predictions"
    args = [f"images={image}", *argv[4:-1], f"out={out}"]
    return predict(compose_config("predict", class_list_argv(args)))


def pixels(path: Path) -> tuple[np.ndarray, str, list | None]:
    with Image.open(path) as image:
        return np.asarray(image), image.mode, image.getpalette()


# --------------------------------------------------------------------------- labels


def test_labels_equal_src_predict_for_the_shown_command_and_the_clip_is_built_once(
        app, tmp_path):
    from src.app import Request

    image = upload(app, app.examples[0], "my scene.png")
    teacher = next(iter(app.models.teachers.values()))
    requests = {
        "default": Request(classes=WORLD_CLASSES),
        "naclip_kspd_pamr_slide_bg": Request(
            classes="grass, water, sky, ball, star", head="naclip", key_smoothing=True,
            prompt_denoising=True, pamr=True, inference="slide", background_words="stuff",
            background_threshold=0.3),
        "sclip_pd": Request(classes="water, brick, ball", head="sclip", prompt_denoising=True),
        "vocabulary": Request(vocabulary="world", head="clearclip"),
    }
    for name, request in requests.items():
        result = app.label([image], request)
        assert len(result.images) == 1 and not result.skipped
        item = result.images[0]
        summary = reproduce(result.command, image, tmp_path / name)
        assert summary["num_images"] == 1
        theirs = tmp_path / name / "labels" / "my scene.png"
        mine, mode, palette = pixels(item.labels)
        ref, ref_mode, ref_palette = pixels(theirs)
        assert mode == ref_mode == "P" and palette == ref_palette, name
        assert np.array_equal(mine, ref), name
        assert item.labels.read_bytes() == theirs.read_bytes(), name  # the same file
        assert np.array_equal(pixels(item.overlay)[0],
                              pixels(tmp_path / name / "overlays" / "my scene.png")[0]), name
        assert item.areas == summary["images"]["my scene"]["areas"], name
        assert result.classes == summary["settings"]["classes"], name
        downloads = [Path(p) for p in result.downloads()]
        assert [p.name for p in downloads] == ["my_scene_labels.png", "my_scene_overlay.png"]
        assert downloads[0].read_bytes() == theirs.read_bytes()
    # Heads, refinement, PAMR, inference and vocabularies were switched on one model.
    assert app.models.builds == {"base": 1}
    assert next(iter(app.models.teachers.values())) is teacher
    assert "teacher/head=naclip" in app.request_args(requests["naclip_kspd_pamr_slide_bg"])


def test_several_images_area_table_confidence_and_unreadable_ones_skipped(app):
    from src.app import Request, area_rows

    first = upload(app, app.examples[1], "a.png")
    second = upload(app, app.examples[1], "a.png")  # the same name twice: two stems
    broken = app.root / "uploads" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(Exception, match="broken.png: cannot read this file as an image"):
        app.label([first, broken], Request(classes=WORLD_CLASSES))
    result = app.label([first, second], Request(classes=WORLD_CLASSES))
    assert [p.labels.stem for p in result.images] == ["a", "a-2"]
    assert shlex.split(result.command)[3] == "images=[a.png,a.png]"
    rows = area_rows(result.images)
    assert {r[0] for r in rows} == {"a.png"} and all(r[1] in WORLD_CLASSES for r in rows)
    assert abs(sum(r[2] for r in rows) - 200.0) < 0.1  # two images, 100% each
    with Image.open(result.images[0].confidence) as view:
        assert view.mode == "RGB" and view.size == (96, 96)


# --------------------------------------------------------------------------- bad input


def test_class_lists_are_checked_with_a_message(app):
    from src.app import AppError, Request, classes_arg, parse_classes

    with pytest.raises(AppError, match="Classes: the list is empty"):
        parse_classes("  ")
    with pytest.raises(AppError, match="Classes: the list is empty"):
        app.label([app.examples[0]], Request(classes=""))
    with pytest.raises(AppError, match=r"more than once|repeat"):
        parse_classes("cat, dog, cat")
    with pytest.raises(AppError, match="empty"):
        parse_classes("cat,, dog")
    with pytest.raises(AppError, match=r"contains \$"):
        parse_classes("cat, ${oc.env:HOME}")  # no Hydra interpolation through the class box
    with pytest.raises(AppError, match="at most 3"):
        parse_classes("a, b, c, d", limit=3)
    with pytest.raises(AppError, match="not shipped"):
        classes_arg(Request(vocabulary="/etc/passwd"))
    assert parse_classes(" cat ,dog,red car ") == ["cat", "dog", "red car"]
    assert classes_arg(Request(classes="cat")) == "classes=[cat]"
    assert classes_arg(Request(classes="red car, dog")) == "classes=red car,dog"


def test_settings_the_server_did_not_offer_are_refused(app):
    from src.app import AppError, Request

    with pytest.raises(AppError, match="Model: choose the teacher or one of the checkpoints"):
        app.request_args(Request(classes="a, b", model="/etc/passwd"))
    with pytest.raises(AppError, match="Head 'nope'"):
        app.request_args(Request(classes="a, b", head="nope"))
    with pytest.raises(AppError, match="whole or slide"):
        app.request_args(Request(classes="a, b", inference="tiles"))
    with pytest.raises(AppError, match="Background threshold"):
        app.request_args(Request(classes="a, b", background_threshold=1.5))


def test_uploads_outside_the_page_folder_are_refused(app, tmp_path):
    from src.app import AppError, Request

    outside = tmp_path / "outside.png"
    Image.open(app.examples[0]).save(outside)
    link = app.root / "uploads" / "link.png"
    link.symlink_to(outside)
    for path in (outside, link, app.root / "uploads" / ".." / ".." / "outside.png",
                 Path("/etc/passwd")):
        with pytest.raises(AppError, match="not a file uploaded to this page"):
            app.check_uploads([path])
    # A name the file system allows but a path should not have: written as a plain stem.
    odd = upload(app, app.examples[0], "..weird name;$(x).png")
    result = app.label([odd], Request(classes=WORLD_CLASSES))
    assert result.images[0].labels.parent == result.folder / "labels"
    assert result.images[0].labels.name == "weird_name_x.png"
    assert result.folder.is_relative_to(app.root)


def test_size_limits(app):
    from src.app import AppError, Limits, check_image

    roots = [app.root]
    scene = upload(app, app.examples[0], "scene.png")
    with pytest.raises(AppError, match=r"scene.png is 0.0 MB; this page takes files up to "
                                       r"1e-05 MB \(max_upload_mb\)"):
        check_image(scene, roots, [], Limits(max_upload_mb=1e-5))
    with pytest.raises(AppError, match=r"96×96 pixels.*up to 64 px a side \(max_image_side\)"):
        check_image(scene, roots, [], Limits(max_image_side=64))
    wide = app.root / "uploads" / "wide.png"
    Image.new("RGB", (5000, 2)).save(wide)
    with pytest.raises(AppError, match=r"wide.png is 5000×2 pixels"):
        app.check_uploads([wide])  # the default 4096 (conf/app.yaml)
    with pytest.raises(AppError, match=r"up to 8 at a time \(max_images\)"):
        app.check_uploads([scene] * 9)
    with pytest.raises(AppError, match="add an image"):
        app.check_uploads([])
    assert check_image(scene, roots, [], Limits())[1] == (96, 96)


def test_frontier_heads_are_built_beside_the_clip_and_messages_name_the_fix(app):
    from src.app import AppError, Request

    image = upload(app, app.examples[2], "scene.png")
    with pytest.raises(AppError, match="already refines its scores"):
        app.label([image], Request(classes=WORLD_CLASSES, head="resclip", key_smoothing=True))
    with pytest.raises(AppError, match="proxy"):  # no DINO weights here: said, not a traceback
        app.label([image], Request(classes=WORLD_CLASSES, head="proxyclip"))
    result = app.label([image], Request(classes=WORLD_CLASSES, head="scclip"))
    assert "teacher/head=scclip" in result.command
    app.label([image], Request(classes=WORLD_CLASSES, head="maskclip"))
    assert app.models.builds["base"] == 1  # the CLIP of the last-block heads was kept


def test_compare_two_settings(app):
    from src.app import Request

    image = upload(app, app.examples[3], "scene.png")
    a, b, differ = app.compare(image, Request(classes=WORLD_CLASSES),
                               Request(classes=WORLD_CLASSES, head="naclip", pamr=True))
    assert "teacher/head" not in a.command and "teacher/head=naclip postproc=pamr" in b.command
    assert 0.0 <= differ <= 1.0
    assert a.images[0].overlay.is_file() and b.images[0].overlay.is_file()


# --------------------------------------------------------------------------- start-up


def test_no_weights_here_starts_on_the_world_clip_and_says_so(tmp_path):
    from src.app import LabellingApp

    missing = [f"teacher.pretrained={tmp_path}/ViT-B-16.pt", "teacher.quick_gelu=true",
               "refine=ks", "trainer.accelerator=cpu", "num_workers=0"]
    cfg = compose_config("app", [*missing, f"temp_dir={tmp_path}"])
    app = LabellingApp(cfg, missing)
    try:
        assert app.model_name == "world-vit"
        assert "No CLIP weights on this machine" in app.notice and "ViT-B-16.pt" in app.notice
        assert app.base == ["refine=ks", "trainer.accelerator=cpu", "num_workers=0",
                            "teacher=world", "prompts=world", "scale=null"]
        assert app.defaults.key_smoothing and app.defaults.classes.startswith("grass, water")
        assert len(app.examples) == 4 and all(Path(p).is_relative_to(app.root)
                                              for p in app.examples)
    finally:
        app.close()
    assert not app.root.exists()
    cfg = compose_config("app", [*missing, "world_fallback=false", f"temp_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="ViT-B-16.pt"):
        LabellingApp(cfg, missing)


def test_the_page_queues_one_request_at_a_time_and_makes_no_network_call(app, monkeypatch):
    """Launched in-process on a free port: it answers on 127.0.0.1, uses the system's fonts, and
    no socket connects anywhere but this machine (Gradio's analytics, share links, fonts)."""
    from src.app import build_ui, launch

    attempts = []
    connect = socket.socket.connect

    def record(sock, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in (
                "127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError("network disabled in this test")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    demo = build_ui(app)
    model_events = [fn for fn in demo.fns.values() if fn.concurrency_id == "model"]
    assert len(model_events) == 2 and all(fn.concurrency_limit == 1 for fn in model_events)
    assert demo._queue.max_size == app.limits.queue_size
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    url = launch(app, demo, host="127.0.0.1", port=free_port())
    try:
        assert url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        css = urllib.request.urlopen(url + "theme.css", timeout=30).read().decode()
        assert "MaskCLIP" in page
        assert "fonts.googleapis" not in page + css and "ui-sans-serif" in css
        assert demo.max_file_size == int(app.limits.max_upload_mb * 2**20)
        assert not demo.share
    finally:
        demo.close()
    assert attempts == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_python_m_src_app_prints_its_address_and_serves(tmp_path):
    """`python -m src.app`: the address is printed, the page answers there (no weights: the world
    CLIP); stopped, it leaves no files behind."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "src.app", f"port={port}", f"temp_dir={tmp_path}",
         f"hydra.run.dir={tmp_path / 'run'}", f"teacher.pretrained={tmp_path}/missing.pt",
         "trainer.accelerator=cpu"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, lines = time.monotonic() + 240, []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("MaskCLIP page: "):
                break
        address = f"http://127.0.0.1:{port}/"
        assert lines and lines[-1].startswith(f"MaskCLIP page: {address}"), "".join(lines)
        page = urllib.request.urlopen(address, timeout=30).read().decode()
        assert "MaskCLIP" in page
        assert "running the world CLIP" in "".join(lines)  # the fallback is logged too
        assert len(list(tmp_path.glob("maskclip-app-*"))) == 1
    finally:
        proc.terminate()  # SIGTERM stops it as Ctrl+C does
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stdout.read()[-2000:]
    assert list(tmp_path.glob("maskclip-app-*")) == []  # uploads and results removed


def test_a_student_checkpoint_the_server_offers_labels_as_src_predict(tmp_path):
    """A MaskCLIP+ student from `checkpoints=`: its own classes, or new ones through its teacher's
    text tower, with the labels src.predict writes for the shown command."""
    from src.app import Request
    from src.train import train
    from tests.test_student_loading import TINY_RUN
    from tests.test_train import compose_train

    run = tmp_path / "run"
    train(compose_train([*TINY_RUN, f"paths.output_dir={run}"]))
    ckpt = (run / "checkpoints" / "last.ckpt").resolve()
    app = make_app(tmp_path / "page", [f"checkpoints=[{ckpt}]"])
    try:
        assert [value for _, value in app.model_choices()] == ["teacher", str(ckpt)]
        image = upload(app, app.examples[0], "scene.png")
        for name, request in {"own": Request(model=str(ckpt)),
                              "new": Request(classes="grass, water", model=str(ckpt))}.items():
            result = app.label([image], request)
            assert f"ckpt_path={ckpt}" in result.command and "A student" in result.notes[0]
            summary = reproduce(result.command, image, tmp_path / name)
            assert summary["settings"]["model"] == "student"
            assert result.classes == summary["settings"]["classes"]
            assert result.images[0].labels.read_bytes() == (
                tmp_path / name / "labels" / "scene.png").read_bytes(), name
        assert result.classes == ["grass", "water"]
    finally:
        app.close()
