"""Re-makes the README's pictures from the shipped model: runs each README command on
viz/samples/photo-china-ring.png (the sanity figure comes from `deepinside evaluate`, whose
output folder is the one argument) and tiles what they write, enlarged 2x.

    python docs/images/make.py EVALUATION_OUT_DIR
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
    "dc": ["deconv", SAMPLE, "--layer", "11", "--channel", "27"],
    "cmp": ["compare", SAMPLE],
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


if __name__ == "__main__":
    make(sys.argv[1])
