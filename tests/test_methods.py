"""The paper's methods: class model images, localisation, DeconvNet and Sect. 4."""
import numpy as np
import pytest
import torch

from deepinside import engine
from deepinside import models
from deepinside import viz
from deepinside.engine import nn
from helpers import relative_error
from torch_reference import torch_input_gradient, torch_twin
from deepinside.viz.localise import bounding_box, graphcut, largest_component, seed_regions


def small_model(seed=0, classes=4, size=20):
    engine.nn.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.LocalResponseNorm(3, alpha=0.1), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * (size // 4) ** 2, 12), nn.ReLU(), nn.Dropout(0.5), nn.Linear(12, classes)).eval()
    return models.Model(net=net, classes=[f"c{i}" for i in range(classes)], input_size=size,
                        image_size=size + 4, mean=np.array([120.0, 110.0, 100.0], np.float32))


def random_image(seed=0, shape=(24, 28)):
    return (np.random.default_rng(seed).random(shape + (3,)) * 255).astype(np.float32)


# Class model images (Sect. 2)

def test_class_model_raises_the_score_from_the_zero_image():
    model = small_model()
    result = viz.class_model(model, [1, 3], steps=5, lr=50.0, l2=1e-4)
    assert result.trace.shape == (6, 2) and result.images.shape == (2, 20, 20, 3)
    assert np.all(np.diff(result.trace, axis=0) > 0)  # every step raises S_c
    assert result.images.min() >= 0 and result.images.max() <= 255
    x = np.zeros((1, 3, 20, 20), np.float32)
    start = model.net(engine.Tensor(x)).numpy()[0]
    assert np.allclose(result.trace[0], start[[1, 3]], atol=1e-6)  # it starts from the zero image


def test_class_model_dead_at_the_zero_image_is_reported_and_a_noise_start_moves():
    model = small_model()
    first = model.net[0]
    first.bias.data = np.full_like(first.bias.data, -1.0)  # every conv1 unit off at the zero image
    stuck = viz.class_model(model, [0, 2], steps=5, lr=50.0, l2=1e-4)
    assert viz.stuck_classes(stuck) == [0, 2] and np.all(stuck.trace == stuck.trace[0])
    moved = viz.class_model(model, [0, 2], steps=5, lr=50.0, l2=1e-4, init_std=3.0)
    assert viz.stuck_classes(moved) == [] and np.all(moved.trace[-1] > moved.trace[0])
    with pytest.raises(ValueError, match="init_std"):
        viz.class_model(model, 0, init_std=-1.0)


def test_class_model_larger_l2_gives_a_smaller_image():
    model = small_model()
    weak = viz.class_model(model, 2, steps=30, lr=20.0, l2=1e-4)
    strong = viz.class_model(model, 2, steps=30, lr=20.0, l2=1e-2)
    mean = model.mean.reshape(1, 1, 3)
    assert np.linalg.norm(strong.raw[0] - mean) < 0.8 * np.linalg.norm(weak.raw[0] - mean)


def test_class_model_batches_classes_independently():
    model = small_model()
    together = viz.class_model(model, [0, 2], steps=4, lr=30.0)
    alone = viz.class_model(model, 2, steps=4, lr=30.0)
    assert relative_error(together.raw[1], alone.raw[0]) < 1e-5


def test_class_model_posterior_objective_follows_its_gradient():
    """A small step along the computed gradient of P_c raises P_c by about lr*|grad|^2."""
    from deepinside.viz.class_model import _posterior_gradient
    model = small_model()
    model.net.to(np.float64)
    x = np.random.default_rng(0).standard_normal((1, 3, 20, 20)) * 30
    value, gradient = _posterior_gradient(model, x, np.array([1]))
    step = 1e-3 / np.abs(gradient).max()
    moved, _ = _posterior_gradient(model, x + step * gradient, np.array([1]))
    expected = step * (gradient ** 2).sum()
    assert abs((moved - value)[0] - expected) < 0.05 * expected


def test_class_model_records_its_score_pass_once_and_replays_it(monkeypatch):
    """The score objective's pass goes through engine.capture once (a CUDA graph on the
    cuda backend, a plain call elsewhere) and runs at every step, its gradient that of S_c
    (a small step along it raises S_c by about step*|grad|^2); the posterior's pass, whose
    seed needs the scores on the host first, is not recorded."""
    from deepinside.viz.class_model import _score_pass
    recorded, real = [], engine.capture

    def counting(function, *inputs, backend):
        replay = real(function, *inputs, backend=backend)
        recorded.append(0)

        def counted(*arrays):
            recorded[-1] += 1
            return replay(*arrays)
        return counted

    monkeypatch.setattr(engine, "capture", counting)
    viz.class_model(small_model(), [0, 2], steps=5, lr=30.0)
    assert recorded == [5]
    viz.class_model(small_model(), 1, steps=3, lr=30.0, objective="posterior")
    assert recorded == [5]
    model = small_model()
    model.net.to(np.float64)
    x = np.random.default_rng(0).standard_normal((1, 3, 20, 20)) * 30
    score_pass = _score_pass(model, np.array([1]), x)
    scores, gradient = (engine.to_numpy(a).copy() for a in score_pass(x))
    step = 1e-3 / np.abs(gradient).max()
    moved = engine.to_numpy(score_pass(x + step * gradient)[0])
    expected = step * (gradient ** 2).sum()
    assert abs(moved[0, 1] - scores[0, 1] - expected) < 0.05 * expected


def test_class_model_refuses_bad_arguments():
    model = small_model()
    with pytest.raises(ValueError, match="class index 4 is out of range"):
        viz.class_model(model, 4, steps=1)
    with pytest.raises(ValueError, match="unknown objective 'logit'"):
        viz.class_model(model, 0, objective="logit")


# SmoothGrad and classification

def test_smoothgrad_of_a_linear_model_is_the_plain_map():
    engine.nn.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 3)).eval()
    model = models.Model(net=net, classes=list("abc"), input_size=6, image_size=6, mean=np.zeros(3, np.float32))
    image = random_image(1, (6, 6))
    plain = viz.saliency(model, image, class_index=1)
    smooth = viz.saliency(model, image, class_index=1, smoothgrad_samples=4, smoothgrad_noise=0.3)
    assert relative_error(smooth, plain) < 1e-6 and plain.max() > 0


def test_classify_returns_the_top_classes_in_order():
    model = small_model()
    rows = viz.classify(model, random_image(), top_k=3)
    crop = random_image()[..., :].copy()
    assert [name for _, name, _ in rows] == [model.classes[i] for i, _, _ in rows]
    scores = [s for _, _, s in rows]
    assert scores == sorted(scores, reverse=True) and len(rows) == 3
    image = viz.working_image(model, crop)
    top, left = (image.shape[0] - 20) // 2, (image.shape[1] - 20) // 2
    batch = (image[top : top + 20, left : left + 20] - model.mean).transpose(2, 0, 1)[None]
    expected = torch_twin(model.net)(torch.tensor(batch, dtype=torch.float64)).detach().numpy()[0]
    assert rows[0][0] == int(expected.argmax()) and abs(rows[0][2] - expected.max()) < 1e-4


# Localisation (Sect. 3.2)

def object_on_clutter(seed=0, size=96):
    """A red disc on coloured clutter, and a saliency map that covers only its upper-left part."""
    r = np.random.default_rng(seed)
    clutter = r.random((size // 8, size // 8, 3)) * np.array([90, 200, 120])
    image = np.kron(clutter, np.ones((8, 8, 1))) + r.normal(0, 6, (size, size, 3))
    rows, cols = np.mgrid[:size, :size]
    disc = (rows - 50) ** 2 + (cols - 46) ** 2 < 26 ** 2
    image[disc] = np.array([215, 35, 45]) + r.normal(0, 8, (disc.sum(), 3))
    part = (rows - 38) ** 2 + (cols - 34) ** 2 < 10 ** 2
    saliency = 0.1 * r.random((size, size)) + part * (1 + 0.2 * r.random((size, size)))
    return np.clip(image, 0, 255), saliency, disc


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def box_iou(a, b):
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_graphcut_recovers_the_object_where_thresholding_does_not():
    image, saliency, disc = object_on_clutter()
    result = viz.localise_from_saliency(image, saliency)
    assert iou(result.mask, disc) >= 0.8
    assert box_iou(result.box, bounding_box(disc)) >= 0.8
    thresholded = largest_component(saliency > np.quantile(saliency, 0.95))
    assert iou(thresholded, disc) < 0.5 and box_iou(bounding_box(thresholded), bounding_box(disc)) < 0.5
    # The seeds follow the quantiles of the map.
    assert abs(result.foreground_seeds.mean() - 0.05) < 0.01 and abs(result.background_seeds.mean() - 0.30) < 0.01


def test_graphcut_weighs_its_pairwise_term_by_gamma():
    rng = np.random.default_rng(5)
    image = rng.uniform(0, 255, (20, 24, 3))
    foreground_cost, background_cost = rng.standard_normal((2, 20, 24))
    # Without the pairwise term each pixel takes its cheaper label; with a huge one the
    # labelling is smooth: one label everywhere.
    assert np.array_equal(graphcut(image, foreground_cost, background_cost, gamma=0.0),
                          foreground_cost < background_cost)
    smooth = graphcut(image, foreground_cost, background_cost, gamma=1e6)
    assert smooth.all() or not smooth.any()


def test_localisation_helpers():
    mask = np.zeros((6, 7), bool)
    mask[1:3, 2:5] = True
    mask[5, 6] = True  # a smaller second component
    assert np.array_equal(largest_component(mask), np.pad(np.ones((2, 3), bool), ((1, 3), (2, 2))))
    assert bounding_box(largest_component(mask)) == (2, 1, 5, 3)
    assert bounding_box(np.zeros((3, 3), bool)) is None
    foreground, background = seed_regions(np.arange(100.0).reshape(10, 10), 0.9, 0.2)
    assert foreground.sum() == 10 and background.sum() == 20 and not (foreground & background).any()


def test_localise_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="saliency map is 4x4 but the image is 5x5"):
        viz.localise_from_saliency(np.zeros((5, 5, 3)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="quantiles must satisfy"):
        viz.localise_from_saliency(np.zeros((5, 5, 3)), np.ones((5, 5)), 0.3, 0.9)


def test_localise_runs_for_each_of_the_top_classes():
    model = small_model()
    results = viz.localise(model, random_image(3), top_k=2, crops=10)
    top = viz.classify(model, random_image(3), top_k=2, crops=10)
    assert [r.class_index for r in results] == [c for c, _, _ in top]
    for r in results:
        assert r.mask.shape == r.saliency.shape == (24, 28) and r.box is not None


# DeconvNet (Sect. 4)

def test_deconv_reconstruction_matches_torch_deconvnet_hooks():
    model = small_model()
    image = random_image(4)
    layer, channel = 6, 5  # the second max-pool's output
    reconstruction, crop = viz.deconv_reconstruction(model, image, layer, channel)
    x = (crop - model.mean).transpose(2, 0, 1)[None].astype(np.float64)
    twin = torch_twin(model.net)
    activation = twin[: layer + 1](torch.tensor(x)).detach().numpy()
    signal = np.zeros_like(activation)
    signal[:, channel] = activation[:, channel]
    _, expected = torch_input_gradient(twin[: layer + 1], x, signal, "deconvnet")
    assert reconstruction.shape == (20, 20, 3) and np.abs(expected).max() > 0
    assert relative_error(reconstruction, expected[0].transpose(1, 2, 0)) < 1e-4


def test_deconv_reconstruction_of_one_unit_stays_in_its_receptive_field():
    model = small_model()
    reconstruction, _ = viz.deconv_reconstruction(model, random_image(5), 3, 2, unit=(2, 2))
    support = np.abs(reconstruction).max(axis=2) > 0
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    # Unit (2, 2) of the second 3x3 convolution sees pooled rows 1-3, i.e. rows 2-7 of the
    # first convolution's output, i.e. input rows 1-8 (and the same columns).
    assert support.any() and rows.min() >= 1 and rows.max() <= 8 and cols.min() >= 1 and cols.max() <= 8
    assert not support[:, 9:].any() and not support[9:].any()


def test_deconv_reconstruction_refuses_bad_indices():
    model = small_model()
    with pytest.raises(ValueError, match="layer 12 is out of range: the network has 12 layers"):
        viz.deconv_reconstruction(model, random_image(), 12, 0)
    with pytest.raises(ValueError, match="channel 6 is out of range: layer 0 has 6 channels"):
        viz.deconv_reconstruction(model, random_image(), 0, 6)
    with pytest.raises(ValueError, match="unit \\(20, 0\\) is outside"):
        viz.deconv_reconstruction(model, random_image(), 0, 1, unit=(20, 0))


def test_equivalence_experiment_shows_what_section_4_states():
    model = small_model()
    rows, cumulative = viz.compare_deconvnet(model, random_image(6))
    assert [r["layer"] for r in rows] == list(range(len(model.net) - 1, -1, -1))
    for row in rows:
        scale = max(row["signal_norm"], 1e-12)
        assert row["max_abs_diff_deconv_vs_autodiff"] <= 1e-6 * scale, row
        if row["type"] == "ReLU":
            assert row["max_abs_diff_deconv_vs_backprop"] > 1e-3 * scale and row["cosine_deconv_vs_backprop"] < 0.999, row
        else:
            assert row["max_abs_diff_deconv_vs_backprop"] <= 1e-6 * scale and row["cosine_deconv_vs_backprop"] > 0.999999, row
    assert cumulative["max_abs_diff_deconv_vs_autodiff"] <= 1e-6 * cumulative["gradient_norm"]
    assert cumulative["cosine_deconv_vs_backprop"] < 0.99
