"""What a person looks at: heat maps, overlays, and files written all-or-nothing."""
import os
import shutil
import tempfile

import numpy as np
from PIL import Image


def heatmap(values, colormap="inferno"):
    """(H, W) values -> (H, W, 3) uint8 through a perceptual colormap, scaled to [0, max]."""
    from matplotlib import colormaps

    values = np.asarray(values, np.float64)
    peak = values.max() if values.size and values.max() > 0 else 1.0
    rgba = colormaps[colormap](np.clip(values / peak, 0, 1))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(image, values, opacity=0.6, colormap="inferno"):
    """The heat map blended over the image (both (H, W[, 3]))."""
    base = np.clip(np.asarray(image, np.float64), 0, 255)
    blended = (1 - opacity) * base + opacity * heatmap(values, colormap)
    return blended.round().astype(np.uint8)


class StagedOutput:
    """Collects output files in a temporary folder and moves them into `directory` only
    when the whole job succeeded, so a failure leaves no partial output."""

    def __init__(self, directory):
        self.directory = directory
        parent = os.path.dirname(os.path.abspath(directory))
        os.makedirs(parent, exist_ok=True)
        self.staging = tempfile.mkdtemp(prefix=".deepinside-", dir=parent)

    def path(self, name):
        return os.path.join(self.staging, name)

    def png(self, name, array):
        Image.fromarray(np.asarray(array, np.uint8)).save(self.path(name))

    def npy(self, name, array):
        np.save(self.path(name), np.asarray(array))

    def commit(self):
        os.makedirs(self.directory, exist_ok=True)
        for name in sorted(os.listdir(self.staging)):
            os.replace(os.path.join(self.staging, name), os.path.join(self.directory, name))
        os.rmdir(self.staging)

    def discard(self):
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.commit()
        else:
            self.discard()
        return False
