"""A saliency pass (forward, then backward to the input only; batch 1, 224x224) of CNN-F and
VGG-16 with random weights and of EfficientNet-Lite0 with its ImageNet weights: this engine
against PyTorch on the CPU in the same run.

PyTorch at its best computes only the input gradient (torch.autograd.grad, as captum's
Saliency does); so does our engine.grad. Each pair is timed twice: one after the other
(five rounds each, pytest-benchmark's own figures) and interleaved (blocks of passes,
ours and PyTorch's alternating; the median of the blocks' ratios), which a load that drifts
on a shared machine moves much less. Run:  pytest bench
"""
import time

import numpy as np
import pytest
import torch

from deepinside import engine
from torch_reference import torch_twin

NETS = ("cnn_f", "vgg16", "efficientnet_lite0")


def ours(net, image, seed):
    x = engine.Tensor(image, requires_grad=True)
    return engine.grad(net(x), [x], grad_output=seed)[0]


def theirs(twin, image, seed):
    x = torch.from_numpy(image).requires_grad_()
    return torch.autograd.grad(twin(x), x, torch.from_numpy(seed))[0]


@pytest.fixture(scope="module")
def inputs(flower_224):
    """name -> (image, seed) of a pass: for EfficientNet-Lite0, trained on ImageNet, the
    shipped photograph as its preprocessing makes it (PyTorch's pass took 24.6 ms on it and
    32.0 ms on noise in a trial, ours the same on both); noise for the nets with random
    weights."""
    from deepinside import models
    from deepinside.viz.images import to_input

    seed = np.zeros((1, 1000), np.float32)
    seed[0, 7] = 1
    noise = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    photograph = to_input(models.load("efficientnet-lite0"), [flower_224]).astype(np.float32)
    return lambda name: (photograph if name == "efficientnet_lite0" else noise, seed)


@pytest.mark.parametrize("name", NETS)
def test_saliency_pass_ours(benchmark, network_pairs, record_median, name, inputs):
    net, _ = network_pairs[name]
    image, seed = inputs(name)
    benchmark.group = f"saliency-pass-{name}"
    gradient = benchmark.pedantic(ours, args=(net, image, seed), rounds=5, warmup_rounds=1)
    assert_near_float64(net, image, seed, gradient)
    record_median(benchmark, f"saliency-pass-{name}", "ours")


def assert_near_float64(net, image, seed, *gradients):
    # Float32 rounding flips near-tied max-pool switches and ReLU6 masks differently in two
    # computations (tests/ compare them exactly on small nets); the float64 twin is the
    # referee. One flipped unit changes the gradient over its receptive field: on the
    # EfficientNet-Lite0 photograph PyTorch's own float32 pass, and ours layer by layer, are
    # 0.0037 off in L2 norm and 0.021 in the largest element (relative to the reference's).
    reference = theirs(torch_twin(net, torch.float64), image.astype(np.float64), seed.astype(np.float64)).numpy()
    for gradient in gradients:
        assert np.linalg.norm(gradient - reference) <= 1e-2 * np.linalg.norm(reference)
        assert np.abs(gradient - reference).max() <= 5e-2 * np.abs(reference).max()


@pytest.mark.parametrize("name", NETS)
def test_saliency_pass_torch(benchmark, network_pairs, record_median, name, inputs):
    _, twin = network_pairs[name]
    image, seed = inputs(name)
    benchmark.group = f"saliency-pass-{name}"
    benchmark.pedantic(theirs, args=(twin, image, seed), rounds=5, warmup_rounds=1)
    record_median(benchmark, f"saliency-pass-{name}", "torch")


BLOCKS, BLOCK = 8, 4  # blocks per side, passes per block (the first one of each is a warm-up)


def interleaved(benchmark, first, second):
    """Seconds per pass of two zero-argument functions timed in alternating blocks: a block's
    median after its first pass, which pays for the other side's freed memory and cold
    caches. Returns two arrays, one value per block."""
    times, order = {first: [], second: []}, [first, second]

    def blocks():
        for run in order:
            block = []
            for _ in range(BLOCK):
                start = time.perf_counter()
                run()
                block.append(time.perf_counter() - start)
            times[run].append(np.median(block[1:]))
        order.reverse()  # neither side always runs first

    benchmark.pedantic(blocks, rounds=BLOCKS)
    return np.array(times[first]), np.array(times[second])


@pytest.mark.parametrize("name", NETS)
def test_saliency_pass_interleaved(benchmark, network_pairs, record_ratio, name, inputs):
    net, twin = network_pairs[name]
    image, seed = inputs(name)
    benchmark.group = f"saliency-pass-{name}-interleaved"
    mine, peer = interleaved(benchmark, lambda: ours(net, image, seed), lambda: theirs(twin, image, seed))
    record_ratio(benchmark, f"saliency-pass-{name}", mine, peer)


def test_saliency_pass_fused_against_layer_by_layer(benchmark, network_pairs, record_ratio, inputs):
    """What running convolutions with their padding and BatchNorm as one op buys
    (Sequential.forward; nn.layer_by_layer turns it off), on EfficientNet-Lite0."""
    net, _ = network_pairs["efficientnet_lite0"]
    image, seed = inputs("efficientnet_lite0")

    def layer_by_layer():
        with engine.nn.layer_by_layer():
            return ours(net, image, seed)

    assert_near_float64(net, image, seed, ours(net, image, seed), layer_by_layer())
    benchmark.group = "fusion-efficientnet_lite0"
    fused, unfused = interleaved(benchmark, lambda: ours(net, image, seed), layer_by_layer)
    record_ratio(benchmark, "fusion-efficientnet_lite0", fused, unfused, labels=("fused", "layer by layer"))
