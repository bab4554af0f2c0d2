"""The deepinside command end to end on a small weight file, including its error paths."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepinside import engine
from deepinside import models
from deepinside.engine import nn
from deepinside.cli import main

CLASSES = ["disc", "ring", "square", "star"]


@pytest.fixture
def files(tmp_path):
    engine.nn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 5 * 5, 10), nn.ReLU(),
                        nn.Dropout(0.5), nn.Linear(10, 4))
    models.save(tmp_path / "small.safetensors", net, classes=CLASSES, input_size=20, image_size=24,
                mean=[120, 110, 100])
    for name, seed in (("one", 0), ("two", 1)):
        image = (np.random.default_rng(seed).random((30, 36, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(tmp_path / f"{name}.png")
    return tmp_path


def run(files, *arguments):
    return main([arguments[0], "--model", str(files / "small.safetensors"), *arguments[1:]])


def test_classify(files, capsys):
    assert run(files, "classify", str(files / "one.png"), "--top-k", "3", "--out", str(files / "out")) == 0
    summary = json.loads((files / "out" / "summary.json").read_text())
    rows = summary[str(files / "one.png")]
    assert len(rows) == 3 and {r["class_name"] for r in rows} <= set(CLASSES)
    assert rows[0]["class_name"] in capsys.readouterr().out


def test_saliency_on_two_images(files):
    assert run(files, "saliency", str(files / "one.png"), str(files / "two.png"), "--crops", "10",
               "--mode", "guided", "--out", str(files / "out")) == 0
    for stem in ("one", "two"):
        saliency_map = np.load(files / "out" / f"{stem}-saliency.npy")
        assert saliency_map.shape == (24, 29) and saliency_map.max() > 0
        assert Image.open(files / "out" / f"{stem}-overlay.png").size == (29, 24)
    summary = json.loads((files / "out" / "summary.json").read_text())
    assert summary[str(files / "two.png")]["mode"] == "guided"


def test_classmodel(files):
    assert run(files, "classmodel", "--class", "1", "3", "--steps", "3", "--out", str(files / "out")) == 0
    names = set(os.listdir(files / "out"))
    assert {"classmodel-1.png", "classmodel-3.npy", "classmodels.png", "trace.png", "summary.json"} <= names
    assert np.load(files / "out" / "trace.npy").shape == (4, 2)


def test_localise(files):
    assert run(files, "localise", str(files / "one.png"), "--top-k", "2", "--out", str(files / "out")) == 0
    summary = json.loads((files / "out" / "summary.json").read_text())[str(files / "one.png")]
    assert len(summary) == 2 and all(len(r["box"]) == 4 for r in summary)
    assert np.load(files / "out" / "one-masks.npy").shape == (2, 24, 29)
    assert os.path.getsize(files / "out" / "one-localisation.png") > 0


def test_deconv_and_compare(files, capsys):
    assert run(files, "deconv", str(files / "one.png"), "--layer", "4", "--channel", "2", "--unit", "3", "3",
               "--out", str(files / "deconv")) == 0
    assert np.load(files / "deconv" / "reconstruction.npy").shape == (20, 20, 3)
    assert run(files, "compare", str(files / "one.png"), "--out", str(files / "compare")) == 0
    assert "ReLU" in capsys.readouterr().out
    summary = json.loads((files / "compare" / "summary.json").read_text())
    assert len(summary["layers"]) == 11 and os.path.exists(files / "compare" / "compare.png")


@pytest.mark.parametrize("arguments, message", [
    (["saliency", "{dir}/one.png", "--class", "4"], "class index 4 is out of range: the model has 4 classes"),
    (["saliency", "{dir}/missing.png"], "missing.png: no such image file"),
    (["deconv", "{dir}/one.png", "--layer", "20", "--channel", "0"], "layer 20 is out of range"),
    (["compare", "{dir}/one.png", "--class", "-1"], "argument --class: -1 is out of range: expected a whole number at least 0"),
    (["classmodel", "--class", "9"], "class index 9 is out of range"),
])
def test_user_errors_write_nothing(files, capsys, arguments, message):
    arguments = [a.replace("{dir}", str(files)) for a in arguments]
    assert run(files, *arguments, "--out", str(files / "out")) == 2
    assert message in capsys.readouterr().err
    assert not (files / "out").exists()
    assert [name for name in os.listdir(files) if name.startswith(".deepinside-")] == []


def test_a_second_image_failing_leaves_no_partial_output(files, capsys):
    assert run(files, "saliency", str(files / "one.png"), str(files / "missing.png"), "--out", str(files / "out")) == 2
    assert not (files / "out").exists()


def test_bad_model_file_is_one_line_and_status_2(files):
    (files / "broken.safetensors").write_bytes(b"\x00" * 20)
    result = subprocess.run([sys.executable, "-m", "deepinside", "saliency", str(files / "one.png"), "--model",
                             str(files / "broken.safetensors"), "--out", str(files / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "broken.safetensors" in result.stderr


def test_every_command_explains_its_options():
    for command in ("classify", "saliency", "classmodel", "localise", "deconv", "compare", "demo", "convert"):
        result = subprocess.run([sys.executable, "-m", "deepinside", command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "--backend" in result.stdout
        assert "--out" in result.stdout or command == "convert"


def test_unknown_backend_is_a_user_error(tmp_path, capsys):
    assert main(["demo", "--backend", "tpu", "--out", str(tmp_path / "out")]) == 2
    assert "unknown backend 'tpu'" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_while_a_user_error_is_one_line(files, monkeypatch, capsys):
    """Only InputError (and an OSError about a path) is a user error: a ValueError or
    OSError from a bug propagates instead of being reported as bad input."""
    def buggy_load(*arguments, **options):
        raise ValueError("an internal bug")
    monkeypatch.setattr(models, "load", buggy_load)
    with pytest.raises(ValueError, match="an internal bug"):
        run(files, "classify", str(files / "one.png"))

    def failing_load(*arguments, **options):
        raise OSError("a pipe broke")  # no file name: not about a path the user gave
    monkeypatch.setattr(models, "load", failing_load)
    with pytest.raises(OSError, match="a pipe broke"):
        run(files, "classify", str(files / "one.png"))

    monkeypatch.undo()
    assert run(files, "saliency", str(files / "one.png"), "--class", "9", "--out", str(files / "out")) == 2
    assert "class index 9 is out of range: the model has 4 classes" in capsys.readouterr().err
