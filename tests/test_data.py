"""The generated data set: deterministic, with consistent ground truth."""
import numpy as np

from deepinside.models.data import CLASSES, IMAGE_SIZE, generate, render, shape_mask


def test_generator_is_deterministic_and_slices_agree():
    images, labels, masks, boxes = generate(6, seed=11)
    again = generate(6, seed=11)
    assert all(np.array_equal(a, b) for a, b in zip((images, labels, masks, boxes), again))
    tail = generate(3, seed=11, start=3)
    assert np.array_equal(tail[0], images[3:]) and np.array_equal(tail[1], labels[3:])
    assert not np.array_equal(generate(6, seed=12)[0], images)


def test_ground_truth_is_consistent():
    images, labels, masks, boxes = generate(40, seed=5)
    assert images.shape == (40, IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.uint8
    assert set(labels) <= set(range(len(CLASSES))) and len(set(labels)) >= 8
    for mask, (x0, y0, x1, y1) in zip(masks, boxes):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert (x0, y0, x1, y1) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)  # tight
        assert not mask[:y0].any() and not mask[y1:].any() and not mask[:, :x0].any() and not mask[:, x1:].any()
        side = max(x1 - x0, y1 - y0)
        assert 0.1 * IMAGE_SIZE <= side <= 0.65 * IMAGE_SIZE


def test_objects_are_drawn_where_their_mask_says():
    image, label, mask, _ = render(seed=7, index=3)
    inside, outside = image[mask].astype(float), image[~mask].astype(float)
    assert mask.sum() > 100
    # Solid, striped or graded fills vary less inside the object than the photograph outside.
    assert inside.std(axis=0).mean() < outside.std(axis=0).mean() + 40


def test_every_class_has_a_distinct_shape():
    u, v = np.meshgrid(np.linspace(-1, 1, 101), np.linspace(-1, 1, 101))
    shapes = {name: shape_mask(name, u, v) for name in CLASSES}
    for a in CLASSES:
        assert 0.15 < shapes[a].mean() < 0.9, a
        for b in CLASSES:
            if a < b:
                assert (shapes[a] != shapes[b]).mean() > 0.05, (a, b)


def test_parallel_generation_equals_serial():
    serial = generate(1003, seed=4, start=7, workers=1)
    parallel = generate(1003, seed=4, start=7, workers=3)
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel))
