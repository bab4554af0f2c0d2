"""The deepinside command end to end, including its error paths."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from viz.cli import main


def test_demo_writes_every_output(tmp_path, capsys):
    image = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "small.png")
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--image", str(tmp_path / "small.png")]) == 0
    names = set(os.listdir(out))
    for mode in ("backprop", "deconvnet", "guided"):
        assert {f"saliency-{mode}.png", f"overlay-{mode}.png", f"saliency-{mode}.npy"} <= names
        saliency_map = np.load(out / f"saliency-{mode}.npy")
        assert saliency_map.shape == (256, 320) and saliency_map.max() > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["maps"]) == {"backprop", "deconvnet", "guided"}


def test_user_errors_end_with_one_line_and_status_2(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = subprocess.run([sys.executable, "-m", "viz.cli", "demo", "--out", str(tmp_path / "out"),
                             "--image", str(tmp_path / "broken.png")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "broken.png: not a readable image" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert [name for name in os.listdir(tmp_path) if name.startswith(".deepinside-")] == []


def test_unknown_backend_is_a_user_error(tmp_path, capsys):
    assert main(["demo", "--backend", "tpu", "--out", str(tmp_path / "out")]) == 2
    assert "unknown backend 'tpu'" in capsys.readouterr().err
