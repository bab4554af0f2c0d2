"""Kill tests: convert, evaluate and train killed (SIGKILL) at random points leave no
partial output, and a rerun of the same command succeeds and cleans what the kill left."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from deepinside import models
from deepinside.models.loading import DEFAULT_PATH

COMMANDS = {
    "convert": (["convert", DEFAULT_PATH, "out.safetensors"], "out.safetensors"),
    "evaluate": (["evaluate", "--images", "3", "--sanity-images", "1", "--crops", "1", "--out", "evaluation"],
                 "evaluation"),
    "train": (["train", "--images", "64", "--epochs", "2", "--held-out", "64", "--out", "out.safetensors"], "out.safetensors"),
}


def run(folder, argv):
    return subprocess.run([sys.executable, "-m", "deepinside", *argv], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def kill_after(folder, argv, seconds):
    process = subprocess.Popen([sys.executable, "-m", "deepinside", *argv], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    os.kill(process.pid, signal.SIGKILL)
    return process.wait()


def litter(folder):
    return sorted(name for name in os.listdir(folder) if ".deepinside-" in name)


def assert_complete(folder, output):
    path = folder / output
    if output.endswith(".safetensors"):
        model = models.load(path)  # a whole, valid file
        assert len(model.classes) == 10
    else:
        assert sorted(os.listdir(path)) == ["sanity.png", "summary.json", "table.md"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_killed_run_leaves_no_partial_output_and_a_rerun_cleans_up(tmp_path, command):
    argv, output = COMMANDS[command]
    started = time.perf_counter()
    result = run(tmp_path, argv)
    duration = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert_complete(tmp_path, output)
    rng = random.Random(command)
    for attempt in range(3):
        folder = tmp_path / f"attempt-{attempt}"
        folder.mkdir()
        status = kill_after(folder, argv, rng.uniform(0.1, duration))
        if status == -signal.SIGKILL and (folder / output).exists():
            assert_complete(folder, output)  # killed after its last rename: whole, never partial
        elif status == -signal.SIGKILL:
            assert not (folder / output).exists()
        rerun = run(folder, argv + (["--overwrite"] if (folder / output).exists() else []))
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert_complete(folder, output)
        assert litter(folder) == [], f"left behind after a kill and a rerun: {litter(folder)}"
