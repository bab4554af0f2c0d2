"""The fuzz suite: hundreds of hostile inputs through the real command line (tests/
hostile_driver.py runs them in subprocesses with a memory cap and a time limit per case).

Every case must end with exit status 2 and one line on stderr, without a traceback, within
the time limit, writing nothing (no output, no staging folder, no temporary file, the
files it was pointed at unchanged) and running no code from a file.
"""
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import hostile_inputs as hostile
from deepinside.models.loading import DEFAULT_PATH

MEMORY_CAP = 4 << 30
SECONDS_PER_CASE = 60
ONE_LINE_ERROR = re.compile(r"deepinside( [a-z]+)?: error: [^\n]+\n")
# Wording of Python, NumPy or pickle internals, which a message in words never needs.
INTERNALS = re.compile(r"Errno|Traceback|invalid literal|values to unpack|has no attribute|NoneType|"
                       r"object is not|index out of range|KeyError|negative dimensions|array to stack")


def snapshot(folder):
    """{relative path: content digest} of everything under `folder`."""
    found = {}
    for root, folders, files in os.walk(folder):
        for name in files + folders:
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                found[os.path.relpath(path, folder)] = "link" if os.path.islink(path) else "folder or special"
            else:
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return found


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory):
    """{surface: [(label, argv, env)]}, the files they name, run all at once."""
    folder = tmp_path_factory.mktemp("hostile")
    inputs = folder / "inputs"
    inputs.mkdir()
    marker = folder / "code-ran"
    image = str(inputs / "good.png")
    from PIL import Image
    Image.new("RGB", (120, 100), (200, 30, 30)).save(image)

    cases = {"images": [], "weights": [], "arguments": [], "outputs": []}
    for name, path in hostile.image_cases(inputs).items():
        for command in (["classify"], ["saliency", "--out", str(folder / "out")], ["localise", "--out", str(folder / "out")],
                        ["compare", "--out", str(folder / "out")], ["deconv", "--layer", "0", "--channel", "0",
                                                                    "--out", str(folder / "out")]):
            cases["images"].append((f"{command[0]} {name}", [command[0], str(path)] + command[1:], {}))
    weight_files = {}
    weight_files.update(hostile.safetensors_cases(inputs, shipped_copy(inputs)))
    weight_files.update(hostile.pth_cases(inputs, marker))
    weight_files.update(hostile.onnx_cases(inputs))
    weight_files.update(hostile.matconvnet_cases(inputs))
    for name, path in weight_files.items():
        cases["weights"].append((f"classify --model {name}", ["classify", image, "--model", str(path)], {}))
    for name, path in list(weight_files.items())[::4]:  # convert reads the same way; a quarter of them
        cases["weights"].append((f"convert {name}", ["convert", str(path), str(folder / "converted.safetensors")], {}))
    cases["arguments"] = hostile.argument_cases(image, folder)
    classes = inputs / "latin1-classes.txt"
    classes.write_bytes("caf\xe9\n".encode("latin-1") * 10)
    short = inputs / "five-classes.txt"
    short.write_text("a\nb\nc\nd\ne\n")
    for label, path in (("not UTF-8", classes), ("five names", short), ("a pipe", inputs / "fifo.png"),
                        ("a folder", inputs), ("missing", inputs / "none.txt")):
        cases["arguments"].append((f"--classes {label}", ["classify", image, "--classes", str(path)], {}))
    for label, argv, _ in hostile.output_cases(image, folder, pathlib.Path(DEFAULT_PATH)):
        cases["outputs"].append((label, argv, {}))

    before = snapshot(folder), snapshot(os.path.dirname(DEFAULT_PATH))
    processes = {}
    for surface, surface_cases in cases.items():
        processes[surface] = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__), "hostile_driver.py"), str(MEMORY_CAP),
             str(SECONDS_PER_CASE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=folder)
        processes[surface].stdin.write(json.dumps([{"argv": argv, "env": env} for _, argv, env in surface_cases]))
        processes[surface].stdin.close()
    results = {}
    for surface, process in processes.items():
        output = process.stdout.read()
        errors = process.stderr.read()
        assert process.wait() == 0, errors[-3000:]
        results[surface] = list(zip(cases[surface], json.loads(output)))
    after = snapshot(folder), snapshot(os.path.dirname(DEFAULT_PATH))
    return {"results": results, "before": before, "after": after, "marker": marker}


def shipped_copy(folder):
    """The shipped model, copied: the template of the safetensors cases."""
    copy = folder / "shipped.safetensors"
    with open(DEFAULT_PATH, "rb") as source:
        copy.write_bytes(source.read())
    return copy


def failures_of(results):
    failures = []
    for (label, argv, _), result in results:
        problems = []
        if result["escaped"]:
            problems.append(f"escaped: {result['escaped']}")
        if result["status"] != 2:
            problems.append(f"exit status {result['status']}")
        if not ONE_LINE_ERROR.fullmatch(result["stderr"]):
            problems.append(f"stderr {result['stderr'][-300:]!r}")
        elif INTERNALS.search(result["stderr"]):
            problems.append(f"a message in internals' words: {result['stderr'].strip()!r}")
        if result["seconds"] > 20:
            problems.append(f"took {result['seconds']} s")
        if problems:
            failures.append(f"{label}: {'; '.join(problems)}")
    return failures


@pytest.mark.parametrize("surface", ["images", "weights", "arguments", "outputs"])
def test_every_hostile_case_is_one_line_and_status_2(surfaces, surface):
    results = surfaces["results"][surface]
    assert len(results) >= 40
    failures = failures_of(results)
    assert not failures, f"{len(failures)} of {len(results)} cases failed:\n" + "\n".join(failures)


def test_nothing_was_written_and_no_code_ran(surfaces):
    assert not surfaces["marker"].exists()
    # no output, staging folder or temporary file; the shipped model and its folder untouched
    assert surfaces["after"] == surfaces["before"]


def test_hundreds_of_cases_across_the_surfaces(surfaces):
    counts = {surface: len(results) for surface, results in surfaces["results"].items()}
    print("hostile cases per surface:", counts)
    assert sum(counts.values()) >= 300
