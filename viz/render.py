"""What a person looks at: heat maps, overlays, and files written all-or-nothing."""
import json
import os
import shutil
import tempfile

import numpy as np
from PIL import Image

from ..engine import MODES, InputError
from ..models.weights import check_new_path, remove_stale


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
    """An output folder written all or nothing, by one rule: the folder must be new (or
    empty); an existing non-empty folder is refused unless `overwrite`, which replaces it
    whole, never merges into it. Files are collected in a staging folder beside it (created
    at once, so a bad --out fails before any work) and moved into place only when the whole
    job succeeded; staging folders that a killed run left are removed on the next run."""

    def __init__(self, directory, overwrite=False):
        self.directory = check_new_path(directory, "output folder")
        self.overwrite = overwrite
        if os.path.lexists(self.directory):
            if not os.path.isdir(self.directory) or os.path.islink(self.directory):
                raise InputError(f"{directory}: exists and is not a folder; choose a new output folder")
            if os.listdir(self.directory) and not overwrite:
                raise InputError(f"{directory}: exists and is not empty; choose a new output folder, "
                                 "or pass --overwrite to replace it")
        parent = os.path.dirname(self.directory)
        os.makedirs(parent, exist_ok=True)
        remove_stale(parent, STAGING_PREFIX)
        self.staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=parent)

    def path(self, name):
        return os.path.join(self.staging, name)

    def png(self, name, array):
        Image.fromarray(np.asarray(array, np.uint8)).save(self.path(name))

    def npy(self, name, array):
        np.save(self.path(name), np.asarray(array))

    def json(self, name, value):
        """Strict JSON (a NaN or infinity is a bug, not output)."""
        with open(self.path(name), "w") as handle:
            json.dump(value, handle, indent=2, allow_nan=False)

    def commit(self):
        """Moves the staging folder into place by renames: the old folder (with
        overwrite) goes aside first and is deleted after."""
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.staging, 0o777 & ~umask)  # mkdtemp makes it private; the output is not
        aside = None
        if os.path.isdir(self.directory):
            aside = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-old-", dir=os.path.dirname(self.directory))
            os.replace(self.directory, os.path.join(aside, "previous"))
        os.replace(self.staging, self.directory)
        if aside:
            shutil.rmtree(aside, ignore_errors=True)

    def discard(self):
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        try:
            if kind is None:
                self.commit()
        finally:
            self.discard()  # after a failure, or whatever a failed commit left
        return False


STAGING_PREFIX = ".deepinside-"


def to_uint8(image):
    return np.clip(np.asarray(image, np.float64), 0, 255).round().astype(np.uint8)


def montage(images, columns=None, gap=2, background=255):
    """Tiles (H, W, 3) images of one size into a grid, row by row."""
    images = [to_uint8(i) for i in images]
    count = len(images)
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    height, width = images[0].shape[:2]
    sheet = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3),
                    background, np.uint8)
    for k, image in enumerate(images):
        top, left = (k // columns) * (height + gap), (k % columns) * (width + gap)
        sheet[top : top + height, left : left + width] = image
    return sheet


def seed_picture(foreground, background):
    """Fig. 3, right-middle: blue where the foreground model was fitted, cyan the
    background model, red the pixels used by neither."""
    picture = np.empty(foreground.shape + (3,), np.uint8)
    picture[:] = (220, 40, 40)
    picture[background] = (60, 220, 230)
    picture[foreground] = (30, 60, 230)
    return picture


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot

    return pyplot


def _figure(columns, rows=1, width=3.0):
    figure, axes = _pyplot().subplots(rows, columns, figsize=(width * columns, width * rows), squeeze=False)
    for axis in axes.ravel():
        axis.set_axis_off()
    return figure, axes


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    _pyplot().close(figure)


def localisation_figure(path, image, results):
    """The layout of the paper's Fig. 3, one row per class: image, saliency, seeds, mask
    with the box."""
    from matplotlib.patches import Rectangle

    figure, axes = _figure(4, len(results))
    for row, result in zip(axes, results):
        row[0].imshow(to_uint8(image))
        row[0].set_title(f"{result.class_name} ({result.score:.3g})", fontsize=9)
        row[1].imshow(heatmap(result.saliency))
        row[1].set_title("saliency", fontsize=9)
        row[2].imshow(seed_picture(result.foreground_seeds, result.background_seeds))
        row[2].set_title("seeds: fg blue, bg cyan", fontsize=9)
        row[3].imshow(to_uint8(image * (0.35 + 0.65 * result.mask[..., None])))
        if result.box:
            x0, y0, x1, y1 = result.box
            row[3].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="lime", lw=2))
        row[3].set_title("mask and box", fontsize=9)
    _save(figure, path)


def comparison_figure(path, rows, cumulative):
    """Sect. 4 as a chart: per layer, |DeconvNet - autodiff| and the cosine between the
    DeconvNet step and the true gradient step."""
    labels = [f"{r['layer']} {r['type']}" for r in rows] + ["input (whole path)"]
    cosines = [r["cosine_deconv_vs_backprop"] for r in rows] + [cumulative["cosine_deconv_vs_backprop"]]
    to_backprop = [r["max_abs_diff_deconv_vs_backprop"] for r in rows] + [cumulative["max_abs_diff_deconv_vs_backprop"]]
    to_autodiff = max([r["max_abs_diff_deconv_vs_autodiff"] for r in rows] + [cumulative["max_abs_diff_deconv_vs_autodiff"]])
    figure, axes = _pyplot().subplots(1, 2, figsize=(10, 0.28 * len(labels) + 1.5), sharey=True)
    positions = np.arange(len(labels))
    colours = ["tab:red" if label.endswith("ReLU") else "tab:blue" for label in labels]
    axes[0].barh(positions, cosines, color=colours)
    axes[0].set_xlabel("cosine(DeconvNet step, backprop step)")
    axes[0].set_xlim(min(0, min(cosines)) - 0.05, 1.05)
    axes[0].set_yticks(positions, labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[1].barh(positions, to_backprop, color=colours)
    axes[1].set_xlabel("max |DeconvNet step - backprop step|")
    figure.suptitle("DeconvNet vs backprop (Sect. 4): they differ only at ReLU (red).\n"
                    f"DeconvNet vs autodiff in deconvnet mode: max difference {to_autodiff:.3g} over all layers",
                    fontsize=10)
    _save(figure, path)


def trace_figure(path, trace, names, ylabel):
    figure, axis = _pyplot().subplots(figsize=(6, 4))
    for column, name in enumerate(names):
        axis.plot(trace[:, column], label=name)
    axis.set_xlabel("step")
    axis.set_ylabel(ylabel)
    if len(names) <= 12:
        axis.legend(fontsize=8)
    _save(figure, path)


def sanity_figure(path, rows, modes=MODES):
    """Spearman correlation with the trained model's maps as layers are randomised top down."""
    figure, axis = _pyplot().subplots(figsize=(7, 4))
    for mode in modes:
        axis.plot(range(len(rows)), [row[mode] for row in rows], marker="o", label=mode)
    axis.set_xticks(range(len(rows)), [row["randomised"].split("(")[0].replace("down to ", "") for row in rows],
                    rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("Spearman rank correlation")
    axis.set_title("Cascading randomisation (Adebayo et al. 2018)")
    axis.legend()
    _save(figure, path)
