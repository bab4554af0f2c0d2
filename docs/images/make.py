"""Re-makes the README's pictures: the shipped model's by each README command on
viz/samples/photo-china-ring.png (the sanity figure comes from `deepinside evaluate`, whose
output folder is the argument), tiled and enlarged 2x; with --imagenet, EfficientNet-Lite0's
on scikit-image's photograph of a cat.

    python docs/images/make.py EVALUATION_OUT_DIR
    python docs/images/make.py --imagenet
"""
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image

from deepinside.cli import main
from deepinside.viz.render import montage

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "viz", "samples", "photo-china-ring.png")
COMMANDS = {
    "sal": ["saliency", SAMPLE, "--crops", "10"],
    "sal-guided": ["saliency", SAMPLE, "--crops", "10", "--mode", "guided"],
    "cm": ["classmodel", "--class", *map(str, range(10)), "--steps", "200", "--lr", "1", "--l2", "1e-2",
           "--jitter", "4", "--blur-every", "4", "--init-std", "0.5"],
    "loc": ["localise", SAMPLE, "--top-k", "2"],
    "dc": ["deconv", SAMPLE, "--layer", "11", "--channel", "8"],
    "cmp": ["compare", SAMPLE],
}


CAT = os.path.join(os.path.dirname(__import__("skimage.data", fromlist=["data"]).__file__), "chelsea.png")
IMAGENET_COMMANDS = {
    "sal": ["saliency", CAT, "--model", "efficientnet-lite0", "--crops", "10"],
    "sal-guided": ["saliency", CAT, "--model", "efficientnet-lite0", "--crops", "10", "--mode", "guided"],
    "cm": ["classmodel", "--model", "efficientnet-lite0", "--class", "285", "967", "657", "--steps", "100",
           "--jitter", "4", "--blur-every", "4"],
    "dc": ["deconv", CAT, "--model", "efficientnet-lite0", "--layer", "18", "--channel", "37"],
}


def enlarged(path, factor=2):
    image = Image.open(path).convert("RGB")
    return np.asarray(image.resize((image.width * factor, image.height * factor), Image.NEAREST))


def save(array, name):
    Image.fromarray(array).save(os.path.join(HERE, name), optimize=True)


def make(evaluation_dir):
    work = tempfile.mkdtemp()
    try:
        for out, command in COMMANDS.items():
            if main([*command, "--out", os.path.join(work, out)]) not in (0, None):
                raise SystemExit(f"deepinside {' '.join(command)} failed")
        stem = os.path.splitext(os.path.basename(SAMPLE))[0]
        save(montage([enlarged(SAMPLE), enlarged(os.path.join(work, "sal", f"{stem}-overlay.png")),
                      enlarged(os.path.join(work, "sal-guided", f"{stem}-overlay.png"))], columns=3, gap=6),
             "saliency.png")
        save(np.asarray(Image.open(os.path.join(work, "cm", "classmodels.png")).convert("RGB")), "classmodel.png")
        save(montage([enlarged(os.path.join(work, "dc", "crop.png")), enlarged(os.path.join(work, "dc", "reconstruction.png"))],
                     columns=2, gap=6), "deconv.png")
        shutil.copy(os.path.join(work, "loc", f"{stem}-localisation.png"), os.path.join(HERE, "localise.png"))
        shutil.copy(os.path.join(work, "cmp", "compare.png"), os.path.join(HERE, "compare.png"))
        shutil.copy(os.path.join(evaluation_dir, "sanity.png"), os.path.join(HERE, "sanity.png"))
    finally:
        shutil.rmtree(work)


def make_imagenet():
    work = tempfile.mkdtemp()
    try:
        for out, command in IMAGENET_COMMANDS.items():
            if main([*command, "--out", os.path.join(work, out)]) not in (0, None):
                raise SystemExit(f"deepinside {' '.join(command)} failed")
        save(montage([enlarged(os.path.join(work, "sal", "chelsea-overlay.png"), 1),
                      enlarged(os.path.join(work, "sal-guided", "chelsea-overlay.png"), 1)], columns=2, gap=6),
             "imagenet-saliency.png")
        save(np.asarray(Image.open(os.path.join(work, "cm", "classmodels.png")).convert("RGB")), "imagenet-classmodel.png")
        save(montage([enlarged(os.path.join(work, "dc", "crop.png"), 1), enlarged(os.path.join(work, "dc", "reconstruction.png"), 1)],
                     columns=2, gap=6), "imagenet-deconv.png")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    make_imagenet() if sys.argv[1:] == ["--imagenet"] else make(sys.argv[1])
