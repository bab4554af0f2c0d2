"""The layers ImageNet networks need (depthwise convolution, zero padding, BatchNorm2d,
ReLU6, residual sums): NumPy kernels against finite differences in float64, our CUDA
kernels against NumPy on the emulator (NaN-poisoned outputs, awkward shapes), the engine
against PyTorch in all three modes, BatchNorm training against torch.nn.BatchNorm2d, and
folding BatchNorm into convolutions."""
import numpy as np
import pytest

import deepinside.kernels as K
from deepinside.kernels import depthwise
from deepinside import engine
from deepinside.engine import Tensor, nn
from deepinside.kernels.ladder import PoisonedDevice
from deepinside.kernels.launch import EmulatorLauncher, KernelError
from helpers import RecordingDevice, numerical_gradient, relative_error

# padding: p on every side, or (before, after) on both axes (TensorFlow's SAME, stride 2).
DEPTHWISE_CASES = [(1, 5, 9, 7, 3, 1, 1), (3, 7, 10, 11, 5, 2, 2), (2, 3, 8, 8, 3, 2, 0), (1, 4, 6, 9, 5, 1, 2),
                   (2, 5, 10, 10, 3, 2, (0, 1)), (1, 3, 12, 11, 5, 2, (1, 2)), (1, 4, 7, 8, 3, 1, (0, 2))]


def zero_padded(x, padding):
    before, after = depthwise.sides(padding)
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))


@pytest.fixture(scope="module")
def emulated():
    return K.bind(PoisonedDevice(EmulatorLauncher()))


@pytest.mark.parametrize("layout", ["wide grid", "channels-last"])
@pytest.mark.parametrize("n, c, h, w, k, stride, padding", DEPTHWISE_CASES + [(2, 3, 11, 10, 3, 3, 1)])
def test_depthwise_gradients_match_finite_differences(rng, monkeypatch, layout, n, c, h, w, k, stride, padding):
    # The NumPy path picks its layout by the size of the map; both are checked here.
    monkeypatch.setattr(depthwise, "WIDE_GRID_POSITIONS", 0 if layout == "wide grid" else 10 ** 9)
    x, weight, bias = rng.standard_normal((n, c, h, w)), rng.standard_normal((c, 1, k, k)), rng.standard_normal(c)
    y = K.depthwise_forward(x, weight, bias, stride, padding)
    probe = rng.standard_normal(y.shape)
    # Against the general convolution with the same filters on a block-diagonal weight.
    dense = np.zeros((c, c, k, k))
    dense[np.arange(c), np.arange(c)] = weight[:, 0]
    assert relative_error(y, K.conv2d_forward(zero_padded(x, padding), dense, bias, stride, 0)) < 1e-12
    loss = lambda function: (lambda value: (function(value) * probe).sum())  # noqa: E731
    assert relative_error(K.depthwise_backward_data(probe, weight, x.shape, stride, padding), numerical_gradient(
        loss(lambda v: K.depthwise_forward(v, weight, bias, stride, padding)), x)) < 1e-7
    assert relative_error(K.depthwise_backward_weights(probe, x, weight.shape, stride, padding), numerical_gradient(
        loss(lambda v: K.depthwise_forward(x, v, bias, stride, padding)), weight)) < 1e-7
    assert relative_error(K.depthwise_backward_bias(probe), numerical_gradient(
        loss(lambda v: K.depthwise_forward(x, weight, v, stride, padding)), bias)) < 1e-7


def test_pad_relu6_and_add_against_their_definitions(rng):
    x = rng.standard_normal((2, 3, 4, 5)) * 5
    padded = K.pad_forward(x, (0, 1, 2, 1))
    assert padded.shape == (2, 3, 7, 6) and np.array_equal(padded[:, :, 2:6, 0:5], x)
    assert np.isclose(padded.sum(), x.sum()) and np.count_nonzero(padded) == np.count_nonzero(x)
    assert np.array_equal(K.pad_backward(padded, (0, 1, 2, 1)), x)
    y = K.relu6_forward(x)
    assert np.array_equal(y, np.clip(x, 0, 6))
    g = rng.standard_normal(x.shape)
    inside = (x > 0) & (x < 6)
    assert np.array_equal(K.relu6_backward(g, y, "backprop"), g * inside)
    assert np.array_equal(K.relu6_backward(g, y, "guided"), g * inside * (g > 0))
    assert np.array_equal(K.relu6_backward(g, y, "deconvnet"), np.maximum(g, 0))
    assert relative_error(K.relu6_backward(g, y, "backprop"),
                          numerical_gradient(lambda v: (K.relu6_forward(v) * g).sum(), x.copy())) < 1e-7
    assert np.array_equal(K.add_forward(x, g), x + g)


@pytest.mark.parametrize("batch_statistics", [True, False])
def test_batchnorm_gradients_match_finite_differences(rng, batch_statistics):
    x = rng.standard_normal((3, 4, 5, 2)) * 2 + 1
    gamma, beta, eps = rng.standard_normal(4), rng.standard_normal(4), 1e-3
    fixed_mean, fixed_var = rng.standard_normal(4), rng.random(4) + 0.5

    def forward(x, gamma, beta):
        mean, var = K.batchnorm_statistics(x) if batch_statistics else (fixed_mean, fixed_var)
        return K.batchnorm_forward(x, mean, var, gamma, beta, eps)

    y = forward(x, gamma, beta)
    if batch_statistics:  # normalised per channel
        assert np.allclose(((y - beta.reshape(1, -1, 1, 1)) / gamma.reshape(1, -1, 1, 1)).mean(axis=(0, 2, 3)), 0)
    probe = rng.standard_normal(y.shape)
    mean, var = K.batchnorm_statistics(x) if batch_statistics else (fixed_mean, fixed_var)
    grad_x, grad_gamma, grad_beta = K.batchnorm_backward(probe, x, mean, var, gamma, eps, batch_statistics)
    assert relative_error(grad_x, numerical_gradient(lambda v: (forward(v, gamma, beta) * probe).sum(), x)) < 1e-6
    assert relative_error(grad_gamma, numerical_gradient(lambda v: (forward(x, v, beta) * probe).sum(), gamma)) < 1e-6
    assert relative_error(grad_beta, numerical_gradient(lambda v: (forward(x, gamma, v) * probe).sum(), beta)) < 1e-6


# our CUDA kernels on the emulator ----------------------------------------------------------

# the last: a plane of a whole 16 x 16 tile, where the engine's backward-data is the tiled one
@pytest.mark.parametrize("n, c, h, w, k, stride, padding", DEPTHWISE_CASES + [(1, 3, 18, 17, 3, 1, 1)])
def test_depthwise_kernels_match_numpy(emulated, rng, n, c, h, w, k, stride, padding):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight, bias = rng.standard_normal((c, 1, k, k)).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    y = K.depthwise_forward(x, weight, bias, stride, padding)
    g = rng.standard_normal(y.shape).astype(np.float32)
    ops = emulated.depthwise
    assert relative_error(ops.forward(x, weight, bias, stride, padding), y) < 1e-5
    assert relative_error(ops.forward(x, weight, None, stride, padding),
                          K.depthwise_forward(x, weight, None, stride, padding)) < 1e-5
    assert relative_error(ops.backward_data(g, weight, x.shape, stride, padding),
                          K.depthwise_backward_data(g, weight, x.shape, stride, padding)) < 1e-5
    assert relative_error(ops.backward_weights(g, x, weight.shape, stride, padding),
                          K.depthwise_backward_weights(g, x, weight.shape, stride, padding)) < 1e-5
    assert relative_error(ops.backward_bias(g), K.depthwise_backward_bias(g)) < 1e-5
    device = PoisonedDevice(EmulatorLauncher())
    for rung in ("tiled", "rows", "planes"):  # the forward's v2, v3 and v4
        if depthwise.forward_applies(device, f"depthwise_forward_{rung}", k, stride):
            assert relative_error(depthwise.depthwise_forward_device(device, x, weight, bias, stride, padding,
                                                                     version=f"depthwise_forward_{rung}"), y) < 1e-5
    for version in depthwise.BACKWARD_DATA_LADDER:  # every backward-data version where it applies
        if depthwise.backward_data_applies(device, version, k, stride, padding):
            assert relative_error(depthwise.depthwise_backward_data_device(
                device, g, weight, x.shape, stride, padding, version=version),
                K.depthwise_backward_data(g, weight, x.shape, stride, padding)) < 1e-5, version


@pytest.mark.parametrize("k, stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_the_row_forward_reads_its_windows_on_every_path(rng, k, stride):
    """depthwise_forward_rows at every padding before from 0 to K - 1: compile-time paddings
    (0-2, at most K - S) read a thread's own columns as float4s where they lie whole and
    aligned on the map (widths 16 and 24), the others and unaligned widths (13) every column
    alone; each against NumPy."""
    device = PoisonedDevice(EmulatorLauncher())
    for padding in range(k):
        for w in (16, 13, 24):
            x = rng.standard_normal((1, 3, 9, w)).astype(np.float32)
            weight, bias = rng.standard_normal((3, 1, k, k)).astype(np.float32), rng.standard_normal(3)
            result = depthwise.depthwise_forward_device(device, x, weight, bias.astype(np.float32), stride, padding,
                                                        version="depthwise_forward_rows")
            assert relative_error(result, K.depthwise_forward(x, weight, bias, stride, padding)) < 1e-5, (padding, w)


@pytest.mark.parametrize("k, stride, padding", [(3, 1, 1), (5, 1, 2), (3, 2, (0, 1)), (5, 2, (1, 2))])
def test_the_plane_forward_stages_whole_planes_across_its_blocks(rng, k, stride, padding):
    """depthwise_forward_planes on EfficientNet-Lite0's small planes (7 x 7 and 14 x 14, the
    stride-2 ones SAME-padded as TensorFlow pads them), 3 x 37 planes: a block's 256 output
    rows start and end inside planes, whose filters and biases are their channels'; against
    NumPy, with and without a bias, and the row kernel (v3) where a block's planes do not fit
    its shared memory (40 x 40)."""
    recording = RecordingDevice(EmulatorLauncher())
    for size, kernel in ((7 * stride, "depthwise_forward_planes"), (40, "depthwise_forward_rows")):
        x = rng.standard_normal((3, 37, size, size)).astype(np.float32)
        weight, bias = rng.standard_normal((37, 1, k, k)).astype(np.float32), rng.standard_normal(37).astype(np.float32)
        for b in (bias, None):
            result = depthwise.depthwise_forward_device(recording, x, weight, b, stride, padding,
                                                        version="depthwise_forward_planes")
            assert recording.kernels() == [kernel]
            assert relative_error(result, K.depthwise_forward(x, weight, b, stride, padding)) < 1e-5, (size, b)


def test_the_engine_takes_the_depthwise_rungs_its_constants_name_where_they_apply(rng, monkeypatch):
    """depthwise.py's ENGINE_FORWARD and ENGINE_BACKWARD_WEIGHTS, the switches a GPU run
    will set: set to the row forward and the per-channel weight gradient, the engine runs
    them on a 3x3 kernel and v1 on a 7x7 one, which they have no kernel for."""
    monkeypatch.setattr(depthwise, "ENGINE_FORWARD", "depthwise_forward_rows")
    monkeypatch.setattr(depthwise, "ENGINE_BACKWARD_WEIGHTS", "depthwise_backward_weights_channel")
    recording = RecordingDevice(EmulatorLauncher())
    ops = K.bind(recording).depthwise
    for k, forward, weights in ((3, "depthwise_forward_rows", "depthwise_backward_weights_channel_k3"),
                                (7, "depthwise_forward", "depthwise_backward_weights")):
        x, weight = rng.standard_normal((2, 3, 12, 11)), rng.standard_normal((3, 1, k, k))
        y = ops.forward(x.astype(np.float32), weight.astype(np.float32), None, 1, k // 2)
        assert recording.kernels() == [forward]
        assert relative_error(y, K.depthwise_forward(x, weight, None, 1, k // 2)) < 1e-5
        g = rng.standard_normal(y.shape)
        grad_w = ops.backward_weights(g.astype(np.float32), x.astype(np.float32), weight.shape, 1, k // 2)
        assert recording.kernels()[0] == weights
        assert relative_error(grad_w, K.depthwise_backward_weights(g, x, weight.shape, 1, k // 2)) < 1e-5


def test_the_engine_takes_the_backward_data_its_constants_name(rng, monkeypatch):
    """depthwise.py's ENGINE_STRIDED_BACKWARD_DATA and ENGINE_UNIT_STRIDE_BACKWARD_DATA, the
    switches a GPU run will set: the engine's stride-2 backward-data runs the parity or the
    quad kernel when it is named (on a 5x5 or 3x3 kernel, which they have), v1 when it is
    not, and v1 on a 7x7 kernel either way; at stride 1 the row rung when named, the tiled
    one (as measured) on a plane of a whole 16 x 16 tile and v1 on a smaller one."""
    recording = RecordingDevice(EmulatorLauncher())
    for choice, k, expected in (("depthwise_backward_data_parity", 5, "depthwise_backward_data_parity"),
                                ("depthwise_backward_data_quads", 3, "depthwise_backward_data_quads"),
                                ("depthwise_backward_data", 5, "depthwise_backward_data"),
                                ("depthwise_backward_data_quads", 7, "depthwise_backward_data")):
        monkeypatch.setattr(depthwise, "ENGINE_STRIDED_BACKWARD_DATA", choice)
        x = rng.standard_normal((1, 3, 11, 10))
        weight = rng.standard_normal((3, 1, k, k))
        g = rng.standard_normal(K.depthwise_forward(x, weight, None, 2, k // 2).shape)
        result = depthwise.depthwise_backward_data_device(recording, g.astype(np.float32), weight.astype(np.float32),
                                                          x.shape, 2, k // 2)
        assert recording.kernels() == [expected]
        assert relative_error(result, K.depthwise_backward_data(g, weight, x.shape, 2, k // 2)) < 1e-5
    for choice, size, expected in (("depthwise_backward_data_rows", 11, "depthwise_forward_rows"),
                                   ("depthwise_backward_data_tiled", 17, "depthwise_forward_tiled"),
                                   ("depthwise_backward_data_tiled", 11, "depthwise_backward_data")):
        monkeypatch.setattr(depthwise, "ENGINE_UNIT_STRIDE_BACKWARD_DATA", choice)
        x, weight = rng.standard_normal((1, 3, size, size)), rng.standard_normal((3, 1, 3, 3))
        g = rng.standard_normal(x.shape)
        result = depthwise.depthwise_backward_data_device(recording, g.astype(np.float32), weight.astype(np.float32),
                                                          x.shape, 1, 1)
        assert recording.kernels() == [expected]
        assert relative_error(result, K.depthwise_backward_data(g, weight, x.shape, 1, 1)) < 1e-5


@pytest.mark.parametrize("version", depthwise.STRIDE_TWO)
@pytest.mark.parametrize("n, c, h, w, k, padding", [(2, 3, 12, 10, 5, (1, 2)), (1, 2, 13, 9, 5, 2),
                                                    (1, 4, 11, 14, 3, (0, 1)), (2, 1, 7, 8, 3, 1), (1, 2, 6, 5, 5, 4)])
def test_depthwise_stride_two_backward_data(rng, version, n, c, h, w, k, padding):
    """depthwise.cu's stride-2 backward-data v2 (parity) and v3 (quads) against NumPy:
    EfficientNet's SAME paddings ((1, 2) for 5x5, (0, 1) for 3x3), odd and even padding
    before the input, odd and even map sides, and padding past the taps' reach."""
    device = PoisonedDevice(EmulatorLauncher())
    x_shape = (n, c, h, w)
    weight = rng.standard_normal((c, 1, k, k))
    g = rng.standard_normal(K.depthwise_forward(np.zeros(x_shape), weight, None, 2, padding).shape)
    result = depthwise.depthwise_backward_data_device(device, g.astype(np.float32), weight.astype(np.float32),
                                                      x_shape, 2, padding, version=version)
    assert relative_error(result, K.depthwise_backward_data(g, weight, x_shape, 2, padding)) < 1e-5


@pytest.mark.parametrize("version", depthwise.PER_CHANNEL)
@pytest.mark.parametrize("n, c, h, w, k, stride, padding", [(2, 2, 24, 23, 3, 1, 1), (1, 3, 45, 45, 5, 2, 2),
                                                           (1, 2, 7, 9, 3, 2, 0), (1, 2, 64, 61, 3, 1, 1),
                                                           (2, 2, 9, 10, 5, 1, 2)])
def test_depthwise_weight_gradient_a_block_per_channel(rng, version, n, c, h, w, k, stride, padding):
    """depthwise.cu's backward-weights v2 (a shared-memory tree a weight), v3 (warp
    shuffles) and v4 (groups of 4 positions of a row): the positions, or v4's groups, split
    into slices whose planes are added in order (v2 and v3: 4, 2, none, 15 and none; v4: 1,
    1, 1, 4 and 1); rows of 23, 23, 4, 61 and 10 results, most ending inside a group."""
    device = PoisonedDevice(EmulatorLauncher())
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y_shape = K.depthwise_forward(x, np.ones((c, 1, k, k), np.float32), None, stride, padding).shape
    g = rng.standard_normal(y_shape).astype(np.float32)
    grad_w = depthwise.depthwise_backward_weights_device(device, g, x, (c, 1, k, k), stride, padding, version=version)
    expected = K.depthwise_backward_weights(g.astype(np.float64), x.astype(np.float64), (c, 1, k, k), stride, padding)
    assert relative_error(grad_w, expected) < 1e-5
    with pytest.raises(KernelError, match="takes kernels of"):
        depthwise.depthwise_backward_weights_device(device, g, x, (c, 1, 7, 7), stride, padding, version=version)


def test_pad_relu6_and_add_kernels_match_numpy(emulated, rng):
    x = (rng.standard_normal((3, 5, 7, 6)) * 5).astype(np.float32)
    padding = (1, 0, 2, 3)
    padded = emulated.pad.forward(x, padding)
    assert np.array_equal(padded, K.pad_forward(x, padding))
    assert np.array_equal(emulated.pad.backward(padded, padding), x)
    y = emulated.relu6.forward(x)
    assert np.array_equal(y, K.relu6_forward(x))
    g = rng.standard_normal(x.shape).astype(np.float32)
    for mode in K.MODES:
        assert np.array_equal(emulated.relu6.backward(g, y, mode), K.relu6_backward(g, y, mode)), mode
    assert np.array_equal(emulated.add.forward(x, g), x + g)


@pytest.mark.parametrize("batch_statistics", [True, False])
def test_batchnorm_kernels_match_numpy(emulated, rng, batch_statistics):
    x = (rng.standard_normal((3, 5, 7, 9)) * 3 + 2).astype(np.float32)
    gamma, beta = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    mean, var = K.batchnorm_statistics(x)
    device_mean, device_var = emulated.batchnorm.statistics(x)
    assert relative_error(device_mean, mean) < 1e-5 and relative_error(device_var, var) < 1e-5
    if not batch_statistics:
        mean, var = (rng.standard_normal(5).astype(np.float32), (rng.random(5) + 0.5).astype(np.float32))
    y = K.batchnorm_forward(x, mean, var, gamma, beta, 1e-3)
    assert relative_error(emulated.batchnorm.forward(x, mean, var, gamma, beta, 1e-3), y) < 1e-5
    g = rng.standard_normal(x.shape).astype(np.float32)
    expected = K.batchnorm_backward(g, x, mean, var, gamma, 1e-3, batch_statistics)
    actual = emulated.batchnorm.backward(g, x, mean, var, gamma, 1e-3, batch_statistics)
    for a, e in zip(actual, expected):
        assert relative_error(a, e) < 1e-4


@pytest.mark.parametrize("w_shape, bias", [((5, 3, 3, 3), True), ((7, 1, 5, 5), False)])
def test_batchnorm_fold_kernel_matches_numpy_and_the_layers(emulated, rng, w_shape, bias):
    weight = rng.standard_normal(w_shape).astype(np.float32)
    conv_bias = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    mean, gamma, beta = (rng.standard_normal(w_shape[0]).astype(np.float32) for _ in range(3))
    var = (rng.random(w_shape[0]) + 0.5).astype(np.float32)
    folded = K.batchnorm_fold(weight, conv_bias, mean, var, gamma, beta, 1e-3)
    for device, reference in zip(emulated.batchnorm.fold(weight, conv_bias, mean, var, gamma, beta, 1e-3), folded):
        assert reference.dtype == np.float32 and relative_error(device, reference) < 1e-6
    # The folded convolution is the convolution, then the normalisation (float64 here).
    x = rng.standard_normal((2, w_shape[0] if w_shape[1] == 1 else w_shape[1], 9, 8))
    groups = w_shape[0] if w_shape[1] == 1 else 1
    wide = [a.astype(np.float64) for a in (weight, mean, var, gamma, beta)]
    w64, b64 = K.batchnorm_fold(wide[0], None if conv_bias is None else conv_bias.astype(np.float64), *wide[1:], 1e-3)
    ops = K.numpy_ops.depthwise if groups > 1 else K.numpy_ops.conv2d
    expected = K.batchnorm_forward(ops.forward(x, wide[0], None if conv_bias is None else conv_bias.astype(np.float64)),
                                   *wide[1:], 1e-3)
    assert relative_error(ops.forward(x, w64, b64), expected) < 1e-12


# the engine against PyTorch -----------------------------------------------------------------

def mobile_block_net(seed=0):
    """A small net of the EfficientNet-Lite pattern: SAME-padded stride-2 stem, BatchNorm,
    ReLU6, an MBConv block with a residual sum, a strided MBConv block, head, classifier."""
    engine.nn.manual_seed(seed)

    def mbconv(c_in, c_out, expand, kernel, stride):
        hidden = c_in * expand
        same = (kernel - 1) // 2
        layers = [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden, eps=1e-3), nn.ReLU6()]
        if stride == 1:
            layers.append(nn.Conv2d(hidden, hidden, kernel, 1, same, bias=False, groups=hidden))
        else:  # TensorFlow's SAME for a 3x3 stride-2 window: the extra row and column at the bottom and right
            layers += [nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(hidden, hidden, kernel, stride, 0, bias=False, groups=hidden)]
        layers += [nn.BatchNorm2d(hidden, eps=1e-3), nn.ReLU6(), nn.Conv2d(hidden, c_out, 1, bias=False),
                   nn.BatchNorm2d(c_out, eps=1e-3)]
        return nn.Residual(*layers) if stride == 1 and c_in == c_out else nn.Sequential(*layers)

    net = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 6, 3, 2, bias=False), nn.BatchNorm2d(6, eps=1e-3),
                        nn.ReLU6(), mbconv(6, 6, 3, 3, 1), mbconv(6, 8, 2, 3, 2), nn.Conv2d(8, 12, 1, bias=False),
                        nn.BatchNorm2d(12, eps=1e-3), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(12, 5))
    rng = np.random.default_rng(seed)
    for name, tensor in net.named_state():  # BatchNorm statistics and affine maps that are not the identity
        if "running_var" in name:
            tensor.data = (rng.random(tensor.shape) + 0.5).astype(np.float32)
        elif "running_mean" in name or (name.endswith("bias") and tensor.ndim == 1):
            tensor.data = (rng.standard_normal(tensor.shape) * 0.3).astype(np.float32)
    return net.eval()


@pytest.mark.parametrize("mode", K.MODES)
def test_mobile_blocks_match_torch_in_every_mode(rng, mode):
    torch = pytest.importorskip("torch")
    from torch_reference import torch_input_gradient, torch_twin

    net = mobile_block_net().to(np.float64)
    x = rng.standard_normal((2, 3, 17, 16)) * 3
    seed = rng.standard_normal((2, 5))
    image = Tensor(x, requires_grad=True)
    out = net(image)
    (gradient,) = engine.grad(out, [image], grad_output=seed, mode=mode)
    expected_out, expected_gradient = torch_input_gradient(torch_twin(net, torch.float64), x, seed, mode)
    assert relative_error(out.data, expected_out) < 1e-10
    assert relative_error(gradient, expected_gradient) < 1e-10


def test_the_three_modes_differ_on_relu6(rng):
    net = mobile_block_net().to(np.float64)
    x = Tensor(rng.standard_normal((1, 3, 17, 16)) * 3, requires_grad=True)
    seed = rng.standard_normal((1, 5))
    grads = [engine.grad(net(x), [x], grad_output=seed, mode=mode)[0] for mode in K.MODES]
    assert relative_error(grads[0], grads[1]) > 1e-2 and relative_error(grads[0], grads[2]) > 1e-2


def test_batchnorm_training_matches_torch_with_running_statistics(rng):
    torch = pytest.importorskip("torch")
    ours = nn.BatchNorm2d(4, eps=1e-3, momentum=0.2).to(np.float64)
    theirs = torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.2).double()
    for step in range(3):
        x = rng.standard_normal((3, 4, 5, 6)) * (step + 1) + step
        probe = rng.standard_normal(x.shape)
        image = Tensor(x, requires_grad=True)
        out = ours(image)
        out.backward(probe)
        xt = torch.tensor(x, requires_grad=True)
        out_t = theirs(xt)
        out_t.backward(torch.from_numpy(probe))
        assert relative_error(out.data, out_t.detach().numpy()) < 1e-10
        assert relative_error(image.grad, xt.grad.numpy()) < 1e-10
        assert relative_error(ours.weight.grad, theirs.weight.grad.numpy()) < 1e-10
        assert relative_error(ours.bias.grad, theirs.bias.grad.numpy()) < 1e-10
        ours.weight.grad = ours.bias.grad = None
        theirs.zero_grad()
    assert relative_error(ours.running_mean.data, theirs.running_mean.numpy()) < 1e-12
    assert relative_error(ours.running_var.data, theirs.running_var.numpy()) < 1e-12


@pytest.mark.parametrize("mode", K.MODES)
def test_folding_batchnorm_keeps_outputs_and_input_gradients(rng, mode):
    net = mobile_block_net().to(np.float64)
    folded = nn.fold_batchnorm(net)
    assert not any(isinstance(layer, nn.BatchNorm2d) for layer in folded)
    assert not any(isinstance(layer, nn.BatchNorm2d) for block in folded if isinstance(block, nn.Sequential)
                   for layer in block)
    x = rng.standard_normal((2, 3, 17, 16))
    seed = rng.standard_normal((2, 5))
    results = []
    for model in (net, folded):
        image = Tensor(x, requires_grad=True)
        out = model(image)
        results.append((out.data, engine.grad(out, [image], grad_output=seed, mode=mode)[0]))
    assert relative_error(results[1][0], results[0][0]) < 1e-12 and relative_error(results[1][1], results[0][1]) < 1e-12


@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, groups, bias, pad_sides",
                         [(3, 5, 3, 2, 1, 1, True, None), (6, 6, 5, 1, 2, 6, False, None),
                          (4, 6, 1, 1, 0, 2, True, None), (6, 6, 5, 2, 0, 6, True, (1, 2))])
def test_a_convolution_with_its_padding_and_evaluation_batchnorm_as_one_op_keeps_every_gradient(
        rng, c_in, c_out, kernel, stride, padding, groups, bias, pad_sides):
    pad = None if pad_sides is None else nn.ZeroPad2d(pad_sides * 2)
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias, groups=groups).to(np.float64)
    norm = nn.BatchNorm2d(c_out, eps=1e-3).to(np.float64).eval()
    norm.weight.data, norm.bias.data = rng.standard_normal(c_out), rng.standard_normal(c_out)
    norm.running_mean.data, norm.running_var.data = rng.standard_normal(c_out), rng.random(c_out) + 0.5
    x = Tensor(rng.standard_normal((2, c_in, 11, 10)), requires_grad=True)
    probe = rng.standard_normal(conv.output_shape(x.shape if pad is None else pad.output_shape(x.shape)))
    wrt = [x] + conv.parameters() + norm.parameters()
    folded = conv.forward_fused(x, pad, norm)
    assert folded._op == "conv2d_batchnorm" and folded._parents[0] is x
    layer_by_layer = norm(conv(x if pad is None else pad(x)))
    assert relative_error(folded.data, layer_by_layer.data) < 1e-12
    for mine, theirs in zip(engine.grad(folded, wrt, grad_output=probe), engine.grad(layer_by_layer, wrt, grad_output=probe)):
        assert relative_error(mine, theirs) < 1e-12


def test_a_sequential_folds_batchnorm_only_in_evaluation_and_where_it_pays(rng):
    large_map = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
    small_map = nn.Sequential(nn.Conv2d(64, 64, 1), nn.BatchNorm2d(64)).eval()  # 4096 weights, 256 outputs
    x = Tensor(rng.standard_normal((1, 3, 8, 8)).astype(np.float32), requires_grad=True)
    assert large_map.eval()(x)._op == "conv2d_batchnorm"
    assert large_map.train()(x)._op == "batch_norm"
    with nn.layer_by_layer():
        assert large_map.eval()(x)._op == "batch_norm"
    assert small_map(Tensor(rng.standard_normal((1, 64, 2, 2)).astype(np.float32)))._op == "batch_norm"
    same = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 3, 3, 2, groups=3))  # TensorFlow's SAME
    assert same(x)._op == "conv2d" and same(x)._parents[0] is x  # no padded copy of x
    other_axes = nn.Sequential(nn.ZeroPad2d((0, 1, 1, 0)), nn.Conv2d(3, 3, 3, 2, groups=3))
    assert other_axes(x)._parents[0]._op == "pad"


def test_the_whole_block_net_on_our_kernels_matches_numpy(rng):
    net = mobile_block_net()
    x = (rng.standard_normal((2, 3, 17, 16)) * 3).astype(np.float32)
    seed = rng.standard_normal((2, 5)).astype(np.float32)
    results = {}
    for backend in ("numpy", "emulator"):
        net.to(backend)
        image = Tensor(x, requires_grad=True, backend=backend)
        out = net(image)
        results[backend] = [(out.numpy(), engine.to_numpy(engine.grad(out, [image], grad_output=seed, mode=mode,
                                                                         retain_graph=True)[0])) for mode in K.MODES]
    net.to("numpy")
    for (out, gradient), (out_ref, gradient_ref) in zip(results["emulator"], results["numpy"]):
        assert relative_error(out, out_ref) < 1e-5 and relative_error(gradient, gradient_ref) < 1e-4


def test_weight_files_keep_blocks_and_batchnorm_buffers(tmp_path, rng):
    from deepinside import models
    net = mobile_block_net()
    models.save(tmp_path / "m.safetensors", net, classes=list("abcde"), input_size=17, image_size=20)
    loaded = models.load(tmp_path / "m.safetensors").net
    assert loaded.spec() == net.spec()
    x = Tensor(rng.standard_normal((1, 3, 17, 17)).astype(np.float32))
    assert np.array_equal(loaded(x).data, net(x).data)


def grouped_net():
    engine.nn.manual_seed(4)
    return nn.Sequential(nn.Conv2d(4, 6, 3, 1, 1, groups=2), nn.ReLU(), nn.Conv2d(6, 9, 3, 2, 1, groups=3),
                         nn.ReLU6(), nn.Conv2d(9, 9, 3, 1, 1, groups=9), nn.Flatten(), nn.Linear(9 * 4 * 4, 3)).eval()


@pytest.mark.parametrize("mode", K.MODES)
def test_grouped_convolutions_match_torch(rng, mode):
    torch = pytest.importorskip("torch")
    from torch_reference import torch_input_gradient, torch_twin

    net = grouped_net().to(np.float64)
    x, seed = rng.standard_normal((2, 4, 8, 8)), rng.standard_normal((2, 3))
    image = Tensor(x, requires_grad=True)
    out = net(image)
    (gradient,) = engine.grad(out, [image], grad_output=seed, mode=mode, retain_graph=True)
    expected_out, expected_gradient = torch_input_gradient(torch_twin(net, torch.float64), x, seed, mode)
    assert relative_error(out.data, expected_out) < 1e-10 and relative_error(gradient, expected_gradient) < 1e-10
    out.backward(seed)  # weight gradients of every group, against finite differences
    weight = net[2].weight
    saved = weight.data.copy()

    def loss(value):
        weight.data = value
        return float((net(Tensor(x)).data * seed).sum())
    numeric = numerical_gradient(loss, saved.copy())
    weight.data = saved
    assert relative_error(weight.grad, numeric) < 1e-6


def test_grouped_convolutions_on_our_kernels_and_their_deconvnet_steps(rng):
    net = grouped_net()
    x = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    seed = rng.standard_normal((2, 3)).astype(np.float32)
    results = {}
    for backend in ("numpy", "emulator"):
        net.to(backend)
        image = Tensor(x, requires_grad=True, backend=backend)
        out = net(image)
        results[backend] = out.numpy(), engine.to_numpy(engine.grad(out, [image], grad_output=seed)[0])
        layer_input = Tensor(x, backend=backend)
        signal = rng.standard_normal(net[0](layer_input).shape).astype(np.float32)
        probe_input = Tensor(x, requires_grad=True, backend=backend)
        (autodiff,) = engine.grad(net[0](probe_input), [probe_input], grad_output=signal, mode="deconvnet")
        assert relative_error(engine.to_numpy(net[0].zeiler_step(signal, layer_input)), engine.to_numpy(autodiff)) < 1e-5
    net.to("numpy")
    assert relative_error(results["emulator"][0], results["numpy"][0]) < 1e-5
    assert relative_error(results["emulator"][1], results["numpy"][1]) < 1e-5
