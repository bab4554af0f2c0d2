"""Every NumPy kernel against finite differences in float64, and the fixed rules (ReLU
modes, pooling ties) against their definitions."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import deepinside.kernels as K
from helpers import distinct_values, numerical_gradient, relative_error

CONV_CASES = [  # (batch, channels, height, width, out channels, kernel, stride, padding)
    (1, 3, 7, 6, 4, 3, 1, 1),
    (3, 2, 8, 9, 3, 3, 1, 0),
    (2, 3, 9, 7, 2, 5, 2, 2),
    (1, 2, 11, 13, 3, 3, 2, 1),
    (3, 1, 12, 12, 2, 4, 4, 0),
    (2, 2, 5, 5, 3, 1, 1, 0),
    (1, 3, 10, 8, 2, 3, 3, 2),
]


@pytest.mark.parametrize("small_maps", [True, False], ids=["maps as small as they are", "every map large"])
@pytest.mark.parametrize("n, c, h, w, o, k, stride, padding", CONV_CASES)
def test_conv2d_gradients_match_finite_differences(rng, monkeypatch, n, c, h, w, o, k, stride, padding, small_maps):
    import deepinside.kernels.conv2d
    monkeypatch.setattr(deepinside.kernels.conv2d, "PATCH_SLICE_BYTES", 1)  # a slice per image
    # Maps this small take the patch matrix; counted as large, the strided ones take the
    # per-image columns and the others the wide grid, as real networks' large maps do.
    monkeypatch.setattr(deepinside.kernels.conv2d, "SMALL_MAP_POSITIONS", 512 if small_maps else 0)
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((o, c, k, k))
    bias = rng.standard_normal(o)
    context = {}  # what the forward keeps for the weight gradient, if anything
    y = K.conv2d_forward(x, weight, bias, stride, padding, context)
    patch_matrix = small_maps and (stride > 1 or c < o and k > 1)
    assert set(context) == ({"patches"} if patch_matrix else {"columns"} if stride > 1 else set())
    assert y.shape == (n, o, K.conv2d_output_size(h, k, stride, padding),
                       K.conv2d_output_size(w, k, stride, padding))
    probe = rng.standard_normal(y.shape)

    def loss_of_x(value):
        return (K.conv2d_forward(value, weight, bias, stride, padding) * probe).sum()

    def loss_of_w(value):
        return (K.conv2d_forward(x, value, bias, stride, padding) * probe).sum()

    def loss_of_b(value):
        return (K.conv2d_forward(x, weight, value, stride, padding) * probe).sum()

    assert relative_error(K.conv2d_backward_data(probe, weight, x.shape, stride, padding),
                          numerical_gradient(loss_of_x, x)) < 1e-7
    expected = numerical_gradient(loss_of_w, weight)
    for kept in (None, context):
        assert relative_error(K.conv2d_backward_weights(probe, x, weight.shape, stride, padding, kept), expected) < 1e-7
    assert relative_error(K.conv2d_backward_bias(probe), numerical_gradient(loss_of_b, bias)) < 1e-7


@pytest.mark.parametrize("grid_block", [5, 10 ** 6])  # many blocks (the last one partial), or one per image
@pytest.mark.parametrize("c, o", [(2, 5), (5, 3)])  # im2col of each block, or a product per offset
def test_conv2d_on_the_wide_grid_matches_torch_in_blocks(rng, monkeypatch, grid_block, c, o):
    import torch
    import deepinside.kernels.conv2d as conv
    monkeypatch.setattr(conv, "GRID_BLOCK", grid_block)
    monkeypatch.setattr(conv._Geometry, "uses_patch_matrix", lambda self: False)  # the path of large maps
    x, weight, bias = rng.standard_normal((2, c, 7, 9)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.conv2d(xt, torch.tensor(weight), torch.tensor(bias), padding=1)
    probe = rng.standard_normal(expected.shape)
    expected.backward(torch.tensor(probe))
    assert relative_error(K.conv2d_forward(x, weight, bias, 1, 1), expected.detach().numpy()) < 1e-12
    assert relative_error(K.conv2d_backward_data(probe, weight, x.shape, 1, 1), xt.grad.numpy()) < 1e-12


def test_conv2d_forward_matches_the_definition(rng):
    x = rng.standard_normal((2, 3, 9, 8))
    weight, bias = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    stride, padding = 2, 1
    y = K.conv2d_forward(x, weight, bias, stride, padding)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    expected = np.empty_like(y)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            window = padded[:, :, i * stride : i * stride + 3, j * stride : j * stride + 3]
            expected[:, :, i, j] = np.einsum("nchw,ochw->no", window, weight) + bias
    assert relative_error(y, expected) < 1e-12


def test_relu_backward_rules(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    g = rng.standard_normal(x.shape)
    y = K.relu_forward(x)
    assert np.array_equal(y, np.where(x > 0, x, 0))
    assert np.array_equal(K.relu_backward(g, y, "backprop"), g * (x > 0))
    assert np.array_equal(K.relu_backward(g, y, "deconvnet"), g * (g > 0))
    assert np.array_equal(K.relu_backward(g, y, "guided"), g * (x > 0) * (g > 0))
    # The three rules really differ on random data.
    rules = [K.relu_backward(g, y, mode) for mode in K.MODES]
    assert not np.array_equal(rules[0], rules[1]) and not np.array_equal(rules[0], rules[2])
    assert not np.array_equal(rules[1], rules[2])
    assert relative_error(K.relu_backward(g, y, "backprop"),
                          numerical_gradient(lambda v: (K.relu_forward(v) * g).sum(), x.copy())) < 1e-7
    # A mode is named once (kernels.Mode) and a user's string checked once, by as_mode.
    assert K.as_mode("guided") is K.Mode.GUIDED and K.MODES == ("backprop", "deconvnet", "guided")
    with pytest.raises(ValueError, match="unknown backward mode 'zeiler'"):
        K.as_mode("zeiler")


@pytest.mark.parametrize("n, c, h, w, k, stride, padding, ceil_mode", [
    (1, 2, 8, 8, 2, 2, 0, False),
    (3, 2, 9, 7, 3, 2, 0, True),
    (2, 3, 7, 8, 3, 2, 1, False),
    (1, 1, 10, 11, 3, 3, 1, True),
    (2, 2, 6, 6, 2, 1, 0, False),
])
def test_maxpool_gradient_matches_finite_differences(rng, n, c, h, w, k, stride, padding, ceil_mode):
    x = distinct_values(rng, (n, c, h, w))
    y, switches = K.maxpool_forward(x, k, stride, padding, ceil_mode)
    assert y.shape[2:] == (K.maxpool_output_size(h, k, stride, padding, ceil_mode),
                           K.maxpool_output_size(w, k, stride, padding, ceil_mode))
    probe = rng.standard_normal(y.shape)

    def loss(value):
        return (K.maxpool_forward(value, k, stride, padding, ceil_mode)[0] * probe).sum()

    assert relative_error(K.maxpool_backward(probe, switches, x.shape, k, stride),
                          numerical_gradient(loss, x, epsilon=1e-7)) < 1e-6


def test_maxpool_ties_go_to_the_first_maximum_in_row_major_order():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, :2, :2] = 5.0          # window 0: all four tie
    x[0, 0, 0:2, 3] = 7.0          # window 1: (0, 3) and (1, 3) tie; row-major first is (0, 3)
    x[0, 0, 3, 0] = x[0, 0, 2, 1] = 2.0  # window 2: (2, 1) comes before (3, 0)
    x[0, 0, 2:, 2:] = -1.0         # window 3: all tie
    y, switches = K.maxpool_forward(x, 2, 2)
    assert np.array_equal(y[0, 0], [[5, 7], [2, -1]])
    assert np.array_equal(switches[0, 0], [[0 * 4 + 0, 0 * 4 + 3], [2 * 4 + 1, 2 * 4 + 2]])
    grad = K.maxpool_backward(np.ones((1, 1, 2, 2)), switches, x.shape, 2, 2)
    assert grad.sum() == 4 and grad[0, 0, 0, 0] == grad[0, 0, 0, 3] == grad[0, 0, 2, 1] == grad[0, 0, 2, 2] == 1


def test_maxpool_overlapping_windows_add_their_gradients():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the winner of all four overlapping 3x3 stride-2 windows
    y, switches = K.maxpool_forward(x, 3, 2)
    grad = K.maxpool_backward(np.full(y.shape, 0.5), switches, x.shape, 3, 2)
    assert grad[0, 0, 2, 2] == 2.0 and grad.sum() == 2.0


def test_linear_gradients_match_finite_differences(rng):
    x, weight, bias = rng.standard_normal((3, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
    probe = rng.standard_normal((3, 4))
    assert relative_error(K.linear_forward(x, weight, bias), x @ weight.T + bias) < 1e-14
    assert relative_error(K.linear_backward_data(probe, weight),
                          numerical_gradient(lambda v: (K.linear_forward(v, weight, bias) * probe).sum(), x)) < 1e-7
    assert relative_error(K.linear_backward_weights(probe, x),
                          numerical_gradient(lambda v: (K.linear_forward(x, v, bias) * probe).sum(), weight)) < 1e-7
    assert relative_error(K.linear_backward_bias(probe),
                          numerical_gradient(lambda v: (K.linear_forward(x, weight, v) * probe).sum(), bias)) < 1e-7


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-1, 0.75, 2.0), (3, 0.5, 0.5, 1.0), (4, 1.0, 0.75, 1.0),
                                                (17, 0.3, 0.75, 1.0)])  # the last wider than the 7 channels
def test_lrn_matches_definition_and_finite_differences(rng, size, alpha, beta, k):
    x = rng.standard_normal((2, 7, 3, 4))
    y, _ = K.lrn_forward(x, size, alpha, beta, k)
    expected = np.empty_like(x)
    for c in range(7):
        window = x[:, max(0, c - size // 2) : c + (size - 1) // 2 + 1]
        expected[:, c] = x[:, c] * (k + alpha / size * (window ** 2).sum(axis=1)) ** -beta
    assert relative_error(y, expected) < 1e-12
    probe = rng.standard_normal(x.shape)
    _, scale = K.lrn_forward(x, size, alpha, beta, k)
    numeric = numerical_gradient(lambda v: (K.lrn_forward(v, size, alpha, beta, k)[0] * probe).sum(), x)
    assert relative_error(K.lrn_backward(probe, x, scale, size, alpha, beta), numeric) < 1e-7


def test_dropout_scales_kept_units_and_backward_uses_the_same_mask(rng):
    x = rng.standard_normal((50, 40)) + 3
    y, mask = K.dropout_forward(x, 0.3, np.random.default_rng(5))
    kept = mask != 0
    assert 0.6 < kept.mean() < 0.8
    assert np.allclose(y[kept], x[kept] / 0.7) and np.all(y[~kept] == 0)
    probe = rng.standard_normal(x.shape)
    numeric = numerical_gradient(lambda v: (v * mask * probe).sum(), x)
    assert relative_error(K.dropout_backward(probe, mask), numeric) < 1e-7


def test_softmax_cross_entropy_matches_definition_and_finite_differences(rng):
    logits, labels = rng.standard_normal((4, 6)) * 3, np.array([0, 5, 2, 2])
    loss, probabilities = K.softmax_cross_entropy_forward(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert abs(loss - (-np.log(p[np.arange(4), labels]).mean())) < 1e-12
    numeric = numerical_gradient(lambda v: float(K.softmax_cross_entropy_forward(v, labels)[0]), logits)
    assert relative_error(K.softmax_cross_entropy_backward(np.float64(1), probabilities, labels), numeric) < 1e-7


def test_sgd_update_follows_the_momentum_and_weight_decay_rule(rng):
    weight, grad, velocity = rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal(5)
    expected_velocity = 0.9 * velocity + grad + 0.01 * weight
    expected_weight = weight - 0.1 * expected_velocity
    K.sgd_update(weight, grad, velocity, 0.1, 0.9, 0.01)
    assert np.allclose(velocity, expected_velocity) and np.allclose(weight, expected_weight)


@pytest.mark.parametrize("shape, output_size", [((2, 3, 7, 7), (7, 7)), ((1, 2, 13, 11), (6, 6)),
                                                ((2, 2, 5, 9), (3, 2)), ((1, 1, 4, 4), (1, 1)),
                                                ((1, 2, 2, 3), (6, 6))])
def test_adaptive_avgpool_matches_torch_and_finite_differences(rng, shape, output_size):
    import torch
    x = rng.standard_normal(shape)
    y = K.adaptive_avgpool_forward(x, output_size)
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), output_size).numpy()
    assert relative_error(y, expected) < 1e-12
    probe = rng.standard_normal(y.shape)
    numeric = numerical_gradient(lambda v: (K.adaptive_avgpool_forward(v, output_size) * probe).sum(), x)
    assert relative_error(K.adaptive_avgpool_backward(probe, x.shape), numeric) < 1e-7


@pytest.mark.parametrize("n, c, h, w, o, k, stride, padding", [
    (1, 3, 225, 225, 32, 3, 2, 0),  # EfficientNet's stem, after its ZeroPad2d
    (2, 3, 100, 97, 5, 11, 4, 2),  # CNN-F's conv1 geometry on a smaller image
    (3, 4, 80, 77, 6, 4, 3, 1),
])
def test_strided_convolution_on_large_maps_matches_torch(rng, n, c, h, w, o, k, stride, padding):
    import torch
    x, weight, bias = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, torch.tensor(bias), stride=stride, padding=padding)
    context = {}
    y = K.conv2d_forward(x, weight, bias, stride, padding, context)
    assert "columns" in context and yt.shape[2] * yt.shape[3] > 512  # the per-image columns path
    assert relative_error(y, yt.detach().numpy()) < 1e-12
    probe = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(probe))
    assert relative_error(K.conv2d_backward_data(probe, weight, x.shape, stride, padding), xt.grad.numpy()) < 1e-12
    for kept in (None, context):
        assert relative_error(K.conv2d_backward_weights(probe, x, weight.shape, stride, padding, kept),
                              wt.grad.numpy()) < 1e-12


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), o=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12),
       k=st.integers(1, 5), stride=st.integers(1, 3), padding=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_conv2d_and_maxpool_match_torch_on_any_geometry(n, c, o, h, w, k, stride, padding, seed):
    import torch
    if h + 2 * padding < k or w + 2 * padding < k:
        return
    r = np.random.default_rng(seed)
    x, weight = r.standard_normal((n, c, h, w)), r.standard_normal((o, c, k, k))
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(weight), stride=stride, padding=padding)
    assert relative_error(K.conv2d_forward(x, weight, None, stride, padding), expected.numpy()) < 1e-10
    gy = r.standard_normal(expected.shape)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.conv2d(xt, torch.tensor(weight), stride=stride, padding=padding).backward(torch.tensor(gy))
    assert relative_error(K.conv2d_backward_data(gy, weight, x.shape, stride, padding), xt.grad.numpy()) < 1e-10
    if 2 * padding <= k:
        for ceil_mode in (False, True):
            pooled = torch.nn.functional.max_pool2d(torch.tensor(x), k, stride, padding, ceil_mode=ceil_mode)
            assert np.array_equal(K.maxpool_forward(x, k, stride, padding, ceil_mode)[0], pooled.numpy())
