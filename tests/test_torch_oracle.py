"""The engine against PyTorch with identical weights: forward outputs and input gradients
in all three backward modes, in float32, on several random architectures."""
import numpy as np
import pytest

from deepinside import engine
from deepinside import models
from deepinside.engine import nn
from helpers import relative_error
from deepinside.kernels import maxpool_output_size
from torch_reference import torch_input_gradient, torch_twin


def random_architecture(seed):
    """A random conv net (conv blocks with random kernel, stride and padding, optional LRN
    and max-pool, then two fully connected layers) and the input shape it takes."""
    r = np.random.default_rng(seed)
    engine.nn.manual_seed(seed)
    batch, size = int(r.choice([1, 3])), int(r.integers(17, 30))
    input_shape = (batch, 3, size, size)
    layers, channels = [], 3
    for _ in range(int(r.integers(2, 4))):
        kernel = int(r.choice([1, 3, 5]))
        stride = int(r.choice([1, 1, 2]))
        padding = int(r.integers(0, kernel // 2 + 1))
        out_channels = int(r.integers(2, 7))
        if (size + 2 * padding - kernel) // stride + 1 < 2:
            break
        layers += [nn.Conv2d(channels, out_channels, kernel, stride, padding), nn.ReLU()]
        channels, size = out_channels, (size + 2 * padding - kernel) // stride + 1
        if r.random() < 0.5:
            layers.append(nn.LocalResponseNorm(int(r.choice([2, 3, 5])), alpha=0.1, beta=0.75, k=1.0))
        if size >= 4 and r.random() < 0.7:
            pool, pool_stride = int(r.choice([2, 3])), int(r.choice([1, 2]))
            pool_padding = int(r.integers(0, pool // 2 + 1))
            ceil_mode = bool(r.random() < 0.5)
            layers.append(nn.MaxPool2d(pool, pool_stride, pool_padding, ceil_mode))
            size = maxpool_output_size(size, pool, pool_stride, pool_padding, ceil_mode)
    hidden = int(r.integers(5, 12))
    layers += [nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU(), nn.Dropout(0.5),
               nn.Linear(hidden, 4)]
    return nn.Sequential(*layers).eval(), input_shape


def compare_with_torch(net, x, grad_output, mode):
    twin = torch_twin(net)
    image = engine.Tensor(x, requires_grad=True)
    out = net(image)
    (ours,) = engine.grad(out, [image], grad_output=grad_output, mode=mode)
    torch_out, torch_grad = torch_input_gradient(twin, x, grad_output, mode)
    return relative_error(out.numpy(), torch_out), relative_error(ours, torch_grad)


@pytest.mark.parametrize("mode", engine.MODES)
@pytest.mark.parametrize("seed", range(8))
def test_random_architectures_match_torch(seed, mode):
    net, shape = random_architecture(seed)
    r = np.random.default_rng(100 + seed)
    x = r.standard_normal(shape).astype(np.float32)
    grad_output = r.standard_normal((shape[0], 4)).astype(np.float32)
    forward_error, gradient_error = compare_with_torch(net, x, grad_output, mode)
    assert forward_error < 1e-4
    assert gradient_error < 1e-4


def test_the_architectures_cover_batch_sizes_and_layers():
    """Guards the test above against drifting into a trivial set of networks."""
    built = [random_architecture(seed) for seed in range(8)]
    assert {shape[0] for _, shape in built} == {1, 3}
    kinds = {type(layer).__name__ for net, _ in built for layer in net}
    assert {"Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm", "Linear", "Dropout"} <= kinds
    assert any(layer.stride > 1 for net, _ in built for layer in net if isinstance(layer, nn.Conv2d))
    assert any(layer.ceil_mode for net, _ in built for layer in net if isinstance(layer, nn.MaxPool2d))


@pytest.mark.parametrize("mode", engine.MODES)
def test_small_cnn_f_matches_torch(mode):
    net = models.cnn_f(num_classes=7, width=1 / 16, input_size=67).eval()
    r = np.random.default_rng(7)
    x = (r.standard_normal((2, 3, 67, 67)) * 50).astype(np.float32)
    grad_output = r.standard_normal((2, 7)).astype(np.float32)
    forward_error, gradient_error = compare_with_torch(net, x, grad_output, mode)
    assert forward_error < 1e-4 and gradient_error < 1e-4


@pytest.mark.parametrize("mode", engine.MODES)
def test_pooling_ties_match_torch(mode):
    """Quantised inputs make many max-pool windows tie; the gradient goes to the same
    (first, row-major) element as in PyTorch."""
    engine.nn.manual_seed(3)
    net = nn.Sequential(nn.MaxPool2d(2, 2), nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 5)).eval()
    r = np.random.default_rng(11)
    x = r.integers(0, 3, size=(3, 2, 12, 12)).astype(np.float32)
    grad_output = r.standard_normal((3, 5)).astype(np.float32)
    forward_error, gradient_error = compare_with_torch(net, x, grad_output, mode)
    assert forward_error < 1e-5 and gradient_error < 1e-5


def test_modes_give_different_gradients():
    """So that the comparisons above would notice a swapped or flipped rule."""
    net, shape = random_architecture(0)
    r = np.random.default_rng(1)
    x = engine.Tensor(r.standard_normal(shape).astype(np.float32), requires_grad=True)
    grad_output = r.standard_normal((shape[0], 4)).astype(np.float32)
    grads = {mode: engine.grad(net(x), [x], grad_output=grad_output, mode=mode)[0] for mode in engine.MODES}
    assert relative_error(grads["backprop"], grads["deconvnet"]) > 1e-2
    assert relative_error(grads["backprop"], grads["guided"]) > 1e-2
    assert relative_error(grads["deconvnet"], grads["guided"]) > 1e-2
