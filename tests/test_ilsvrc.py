"""deepinside evaluate --ilsvrc on a tiny generated ILSVRC-format folder, with an
interruption and a resume."""
import json

import numpy as np
import pytest
from PIL import Image

from deepinside import engine
from deepinside import models
from deepinside.viz import ilsvrc
from deepinside.engine import nn
from deepinside.cli import main

SYNSETS = ["n01440764", "n01443537", "n01484850", "n01491361"]


def write_folder(directory, count=12):
    r = np.random.default_rng(0)
    (directory / "images").mkdir(parents=True)
    (directory / "xml").mkdir()
    for i in range(count):
        height, width = int(r.integers(30, 40)), int(r.integers(30, 44))
        image = (r.random((height, width, 3)) * 80).astype(np.uint8)
        x0, y0 = int(r.integers(1, width // 2)), int(r.integers(1, height // 2))
        x1, y1 = int(r.integers(x0 + 8, width + 1)), int(r.integers(y0 + 8, height + 1))
        image[y0 - 1 : y1, x0 - 1 : x1] = r.integers(150, 255, 3)
        name = f"ILSVRC2012_val_{i + 1:08d}"
        Image.fromarray(image).save(directory / "images" / f"{name}.JPEG", quality=95)
        wnid = SYNSETS[i % 4]
        (directory / "xml" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}</filename><size><width>{width}</width><height>{height}</height></size>"
            f"<object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
            f"<ymax>{y1}</ymax></bndbox></object></annotation>")


@pytest.fixture
def setup(tmp_path):
    engine.nn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 5 * 5, 4))
    models.save(tmp_path / "net.safetensors", net, classes=["tench", "goldfish", "shark", "ray"], input_size=20,
                image_size=24, mean=[100, 100, 100], synsets=SYNSETS)
    write_folder(tmp_path / "val")
    return tmp_path


def evaluate(setup, out):
    return main(["evaluate", "--ilsvrc", str(setup / "val"), "--model", str(setup / "net.safetensors"),
                 "--top-k", "3", "--out", str(out)])


def iou(a, b):
    width, height = max(0, min(a[2], b[2]) - max(a[0], b[0])), max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return width * height / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height)


def test_records_follow_the_challenge_rules(setup):
    assert evaluate(setup, setup / "out") == 0
    records = [json.loads(line) for line in (setup / "out" / "results.jsonl").read_text().splitlines()]
    truth = {path.split("/")[-1]: boxes for path, boxes in ilsvrc.read_folder(str(setup / "val"))}
    assert len(records) == 12
    for record in records:
        boxes = truth[record["image"]]
        assert len(record["predictions"]) == 3
        right = []
        for p in record["predictions"]:
            overlaps = [iou(p["box"], box) for wnid, box in boxes if wnid == p["synset"]]
            assert abs(p["iou"] - max(overlaps, default=0.0)) < 1e-3
            right.append(bool(overlaps) and max(overlaps) >= 0.5)
        assert record["top5_loc"] == any(right) and record["top1_loc"] == right[0]
        assert record["top1_cls"] == (record["predictions"][0]["synset"] in record["truth"])
    summary = json.loads((setup / "out" / "summary.json").read_text())
    assert summary["images"] == 12
    assert summary["top5_loc_error"] == pytest.approx(np.mean([not r["top5_loc"] for r in records]))
    assert summary["top5_cls_error"] <= summary["top1_cls_error"]
    assert "top-5 localisation error" in (setup / "out" / "table.md").read_text()


def test_interruption_and_resume_give_the_same_totals(setup, monkeypatch):
    assert evaluate(setup, setup / "whole") == 0
    whole = json.loads((setup / "whole" / "summary.json").read_text())

    original, calls = ilsvrc.evaluate_image, []

    def interrupted(*arguments, **options):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*arguments, **options)

    monkeypatch.setattr(ilsvrc, "evaluate_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(setup, setup / "resumed")
    results = setup / "resumed" / "results.jsonl"
    assert len(results.read_text().splitlines()) == 5
    with open(results, "a") as handle:
        handle.write('{"image": "ILSVRC2012_val_000000')  # a line cut by the interruption
    monkeypatch.setattr(ilsvrc, "evaluate_image", original)
    assert evaluate(setup, setup / "resumed") == 0
    images = [json.loads(line)["image"] for line in results.read_text().splitlines()]
    assert len(images) == len(set(images)) == 12
    resumed = json.loads((setup / "resumed" / "summary.json").read_text())
    for key in ("images", "top1_cls_error", "top5_cls_error", "top1_loc_error", "top5_loc_error"):
        assert resumed[key] == whole[key]


def test_evaluate_refuses_a_model_without_synsets_and_bad_folders(setup, capsys):
    net = models.load(setup / "net.safetensors").net
    models.save(setup / "plain.safetensors", net, input_size=20, image_size=24)
    assert main(["evaluate", "--ilsvrc", str(setup / "val"), "--model", str(setup / "plain.safetensors"),
                 "--out", str(setup / "out")]) == 2
    assert "--synsets FILE" in capsys.readouterr().err and not (setup / "out").exists()
    (setup / "ids.txt").write_text("\n".join(SYNSETS))
    assert main(["evaluate", "--ilsvrc", str(setup / "val"), "--model", str(setup / "plain.safetensors"),
                 "--synsets", str(setup / "ids.txt"), "--top-k", "1", "--crops", "1", "--out", str(setup / "out")]) == 0
    assert main(["evaluate", "--ilsvrc", str(setup / "nowhere"), "--model", str(setup / "net.safetensors"),
                 "--out", str(setup / "out2")]) == 2
    assert "no such folder" in capsys.readouterr().err
