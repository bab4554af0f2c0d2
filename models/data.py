"""A deterministic, seeded generator of images with ground truth: one object of ten shape
classes on a random crop of a real photograph, with clutter that belongs to no class.

Image i of seed s depends only on (s, i): any slice of a data set can be regenerated alone.
Each image comes with its class, its object mask (the visible part of the object) and the
tight box of that mask, (x0, y0, x1, y1) with x1, y1 one past the last column and row.
The photographs are the ones scikit-image and scikit-learn ship.
"""
import functools
import os

import numpy as np
from matplotlib.path import Path

CLASSES = ("disc", "ring", "square", "triangle", "star", "cross", "hexagon", "crescent", "heart", "arrow")
IMAGE_SIZE = 112  # the generated images; the network takes 96x96 crops of them
INPUT_SIZE = 96
# The seeds of the data sets that training, evaluation and the tests draw; training with
# --seed s draws its images from TRAIN_SEED + 1000 s.
TRAIN_SEED, HELD_OUT_SEED, EVALUATION_SEED = 0, 1, 2
SANITY_SEED = EVALUATION_SEED + 100
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "hubble_deep_field",
               "camera", "brick", "grass", "gravel", "coins")


@functools.lru_cache(maxsize=None)
def photographs():
    """The background photographs as float32 RGB arrays in [0, 255]."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    images = []
    for name in PHOTOGRAPHS:
        image = np.asarray(getattr(skimage.data, name)(), np.float32)
        images.append(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3])
    images += [np.asarray(load_sample_image(name), np.float32) for name in ("china.jpg", "flower.jpg")]
    return tuple(images)


def _regular_polygon(sides, radius=1.0, phase=0.0):
    angles = phase + 2 * np.pi * np.arange(sides) / sides
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _star(points=5, outer=1.0, inner=0.45):
    angles = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _heart(samples=64):
    t = np.linspace(0, 2 * np.pi, samples, endpoint=False)
    x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, -y - 2.5], axis=1) / 17.0


POLYGONS = {
    "square": np.array([[-0.75, -0.75], [0.75, -0.75], [0.75, 0.75], [-0.75, 0.75]]),
    "triangle": _regular_polygon(3, 1.0, -np.pi / 2),
    "star": _star(),
    "cross": np.array([[-0.28, -0.9], [0.28, -0.9], [0.28, -0.28], [0.9, -0.28], [0.9, 0.28], [0.28, 0.28],
                       [0.28, 0.9], [-0.28, 0.9], [-0.28, 0.28], [-0.9, 0.28], [-0.9, -0.28], [-0.28, -0.28]]),
    "hexagon": _regular_polygon(6),
    "heart": _heart(),
    "arrow": np.array([[-0.95, -0.2], [0.15, -0.2], [0.15, -0.55], [0.95, 0.0], [0.15, 0.55], [0.15, 0.2],
                       [-0.95, 0.2]]),
}


def shape_mask(name, u, v):
    """Inside-test of a class's shape in its own coordinates (about the unit disc)."""
    r2 = u * u + v * v
    if name == "disc":
        return r2 <= 0.9
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= 0.36)
    if name == "crescent":
        return (r2 <= 1.0) & ((u - 0.45) ** 2 + (v + 0.1) ** 2 > 0.62)
    points = np.stack([u.ravel(), v.ravel()], axis=1)
    return Path(POLYGONS[name]).contains_points(points).reshape(u.shape)


@functools.lru_cache(maxsize=None)
def _area_fraction(name):
    """The fraction of the square [-1, 1]^2 a shape covers."""
    u, v = np.meshgrid(np.linspace(-1, 1, 201), np.linspace(-1, 1, 201))
    return float(shape_mask(name, u, v).mean())


def _background(rng, size):
    photo = photographs()[rng.integers(len(photographs()))]
    side = int(rng.integers(size, min(photo.shape[:2]) + 1))
    top, left = rng.integers(0, photo.shape[0] - side + 1), rng.integers(0, photo.shape[1] - side + 1)
    crop = photo[top : top + side, left : left + side]
    index = (np.arange(size) * side / size).astype(int)  # nearest-neighbour resize
    image = crop[index][:, index]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    gray = image.mean(axis=2, keepdims=True)
    image = gray + rng.uniform(0.5, 1.3) * (image - gray)  # saturation
    image = (image - 128) * rng.uniform(0.6, 1.2) + 128 + rng.uniform(-40, 40)  # contrast, brightness
    return np.clip(image, 0, 255)


def _contrasting_colour(rng, background, distance=100.0):
    """A random colour at least `distance` (RGB, 0-255) from `background`, so that every
    object stands out from the photograph it lies on; the farthest corner of the RGB cube
    where rejection sampling keeps missing."""
    for _ in range(32):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - background) >= distance:
            return colour
    return np.where(background < 128, 255.0, 0.0)


def _texture(rng, rows, cols, background):
    """Solid, striped or graded fill; each of its colours contrasts with `background`."""
    first, second = _contrasting_colour(rng, background), _contrasting_colour(rng, background)
    kind = rng.integers(3)
    if kind == 0:
        return np.broadcast_to(first, rows.shape + (3,))
    angle = rng.uniform(0, np.pi)
    along = (rows * np.cos(angle) + cols * np.sin(angle))
    if kind == 1:  # stripes
        weight = (np.sin(along * 2 * np.pi / rng.uniform(6, 16)) > 0)[..., None]
    else:  # gradient
        weight = ((along - along.min()) / max(np.ptp(along), 1e-6))[..., None]
    return first * (1 - weight) + second * weight


def _clutter(rng, image, size):
    """Line segments and small blobs: things that belong to no class."""
    rows, cols = np.mgrid[:size, :size].astype(np.float32)
    for _ in range(rng.integers(1, 4)):
        colour = rng.uniform(0, 255, 3)
        if rng.random() < 0.5:
            (r0, c0), (r1, c1) = rng.uniform(0, size, (2, 2))
            length = max(np.hypot(r1 - r0, c1 - c0), 1e-6)
            t = np.clip(((rows - r0) * (r1 - r0) + (cols - c0) * (c1 - c0)) / length ** 2, 0, 1)
            distance = np.hypot(rows - (r0 + t * (r1 - r0)), cols - (c0 + t * (c1 - c0)))
            stroke = distance <= rng.uniform(0.7, 2.0)
        else:
            r0, c0 = rng.uniform(0, size, 2)
            a, b = rng.uniform(1.5, 0.07 * size, 2)
            stroke = ((rows - r0) / a) ** 2 + ((cols - c0) / b) ** 2 <= 1
        image[stroke] = colour
    return image


def render(seed, index, size=IMAGE_SIZE, background=None):
    """(image uint8 (size, size, 3), label, mask (size, size) bool, box) of image `index`;
    `background` (size x size x 3) replaces the random photograph crop and its clutter."""
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(CLASSES)))
    if background is None:
        image = _clutter(rng, _background(rng, size), size)
    else:
        image = np.array(background, np.float64)
    rows, cols = np.mgrid[:size, :size].astype(np.float64)
    while True:
        scale = rng.uniform(0.2, 0.6) * size / 2  # the object's radius: 20-60% of the side across
        centre = rng.uniform(0.12, 0.88, 2) * size
        angle = rng.uniform(0, 2 * np.pi)
        # Evaluate the shape only on the square around it that the image holds.
        top, bottom = (int(np.clip(centre[0] + d * scale * 1.05, 0, size)) for d in (-1, 1))
        left, right = (int(np.clip(centre[1] + d * scale * 1.05, 0, size)) for d in (-1, 1))
        dr, dc = (rows[top:bottom + 1, left:right + 1] - centre[0]) / scale, (cols[top:bottom + 1, left:right + 1] - centre[1]) / scale
        u, v = dc * np.cos(angle) + dr * np.sin(angle), -dc * np.sin(angle) + dr * np.cos(angle)
        mask = np.zeros((size, size), bool)
        mask[top:bottom + 1, left:right + 1] = shape_mask(CLASSES[label], u, v)
        if mask.sum() >= 0.7 * _area_fraction(CLASSES[label]) * (2 * scale) ** 2:  # at most 30% cut off
            break
    texture = _texture(rng, rows, cols, image[mask].mean(axis=0))
    image[mask] = texture[mask]
    image += rng.normal(0, 3, image.shape)
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)
    return np.clip(image, 0, 255).round().astype(np.uint8), label, mask, box


def _generate_serially(count, seed, start):
    images, labels, masks, boxes = zip(*(render(seed, i) for i in range(start, start + count)))
    return np.stack(images), np.array(labels), np.stack(masks), np.array(boxes)


def generate(count, seed, start=0, workers=None):
    """Images start .. start + count - 1 of `seed`: arrays (images, labels, masks, boxes).
    Large sets are rendered in chunks on every core (`workers`, default all); the result
    does not depend on how many, since image i depends only on (seed, i)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or count < 1000:
        return _generate_serially(count, seed, start)
    from concurrent.futures import ProcessPoolExecutor

    chunk = -(-count // (4 * workers))
    starts = range(start, start + count, chunk)
    sizes = [min(chunk, start + count - s) for s in starts]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_generate_serially, sizes, [seed] * len(sizes), starts))
    return tuple(np.concatenate(arrays) for arrays in zip(*parts))
