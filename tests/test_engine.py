"""The autodiff engine: whole small nets against finite differences, the graph's rules,
layers and Sequential, SGD against PyTorch, and the errors users meet."""
import numpy as np
import pytest

from deepinside import engine
from deepinside import kernels
from deepinside.engine import Tensor, nn
from helpers import numerical_gradient, relative_error


def small_net():
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=1.0), nn.ReLU(),
        nn.MaxPool2d(2, 2), nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 5), nn.ReLU(), nn.Linear(5, 3),
    ).to(np.float64).eval()


def test_whole_net_gradients_match_finite_differences_in_float64(rng):
    net = small_net()
    x = rng.standard_normal((2, 2, 8, 8))
    probe = rng.standard_normal((2, 3))

    def loss(value):
        with engine.no_grad():
            return float((net(Tensor(value)).data * probe).sum())

    image = Tensor(x.copy(), requires_grad=True)
    net(image).backward(probe)
    assert relative_error(image.grad, numerical_gradient(loss, x)) < 1e-6
    for name, parameter in net.named_parameters():
        saved = parameter.data.copy()

        def loss_of_parameter(value, parameter=parameter):
            parameter.data = value
            return loss(x)

        numeric = numerical_gradient(loss_of_parameter, saved.copy())
        parameter.data = saved
        assert relative_error(parameter.grad, numeric) < 1e-6, name


def test_cross_entropy_training_step_matches_finite_differences(rng):
    net = small_net().train()
    engine.nn.manual_seed(0)
    x, labels = rng.standard_normal((3, 2, 8, 8)), np.array([0, 2, 1])
    loss = engine.functional.cross_entropy(net(Tensor(x)), labels)
    loss.backward()
    weight = net[7].weight

    def loss_of_weight(value):
        weight.data = value
        with engine.no_grad():
            return float(engine.functional.cross_entropy(net(Tensor(x)), labels).data)

    saved = weight.data.copy()
    numeric = numerical_gradient(loss_of_weight, saved.copy())
    weight.data = saved
    assert relative_error(weight.grad, numeric) < 1e-6


def test_saliency_pass_computes_no_weight_gradients(monkeypatch, rng):
    calls = []
    for family, op in (("conv2d", "backward_weights"), ("conv2d", "backward_bias"), ("linear", "backward_weights"),
                       ("linear", "backward_bias")):
        ops = getattr(kernels.numpy_ops, family)
        monkeypatch.setattr(ops, op, lambda *a, _name=f"{family}_{op}", _f=getattr(ops, op): calls.append(_name) or _f(*a))
    net = small_net()
    x = Tensor(rng.standard_normal((1, 2, 8, 8)), requires_grad=True)
    (gradient,) = engine.grad(net(x), [x], grad_output=np.ones((1, 3)))
    assert gradient.shape == x.shape and np.abs(gradient).sum() > 0
    assert calls == [] and all(p.grad is None for p in net.parameters())
    net(x).backward(np.ones((1, 3)))  # a full backward does compute them
    assert set(calls) == {"conv2d_backward_weights", "conv2d_backward_bias",
                          "linear_backward_weights", "linear_backward_bias"}


def test_backward_from_an_intermediate_activation(rng):
    """net[:k] runs the first k layers; a backward can start there with any gradient."""
    torch = pytest.importorskip("torch")
    net = small_net()
    x = rng.standard_normal((1, 2, 8, 8))
    image = Tensor(x, requires_grad=True)
    features = net[:4](image)
    assert isinstance(net[:4], nn.Sequential) and len(net[:4]) == 4 and net[:4][0] is net[0]
    with engine.no_grad():
        assert np.allclose(net[4:](features).data, net(Tensor(x)).data)
    unit = np.zeros(features.shape)
    unit[0, 1, 2, 3] = 1.0  # one unit, as Zeiler and Fergus visualise it
    features.backward(unit, inputs=[image])
    t = torch.tensor(x, requires_grad=True)
    conv = torch.nn.functional.conv2d(t, torch.tensor(net[0].weight.data), torch.tensor(net[0].bias.data), padding=1)
    pooled = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.local_response_norm(conv, 3, 0.5, 0.75, 1.0)), 2)
    (expected,) = torch.autograd.grad(pooled[0, 1, 2, 3], t)
    assert relative_error(image.grad, expected.numpy()) < 1e-10


def test_gradients_accumulate_in_leaves_and_float64_stays_float64(rng):
    x = Tensor(rng.standard_normal((1, 2, 8, 8)), requires_grad=True)
    net = small_net()
    net(x).backward(np.ones((1, 3)))
    first = x.grad.copy()
    net(x).backward(np.ones((1, 3)))
    assert np.allclose(x.grad, 2 * first) and x.grad.dtype == np.float64


def test_default_dtype_is_float32():
    assert Tensor([[1, 2]]).dtype == np.float32
    assert nn.Conv2d(1, 1, 3).weight.dtype == np.float32


def test_no_grad_records_nothing(rng):
    net = small_net()
    x = Tensor(rng.standard_normal((1, 2, 8, 8)), requires_grad=True)
    with engine.no_grad():
        y = net(x)
    assert not y.requires_grad and engine.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward(np.ones((1, 3)))


def test_backward_twice_through_a_freed_graph_is_refused(rng):
    net = small_net()
    x = Tensor(rng.standard_normal((1, 2, 8, 8)), requires_grad=True)
    y = net(x)
    y.backward(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="graph a second time"):
        y.backward(np.ones((1, 3)))
    z = net(x)
    z.backward(np.ones((1, 3)), retain_graph=True)
    z.backward(np.ones((1, 3)))  # allowed after retain_graph


def test_backward_argument_errors(rng):
    net = small_net()
    x = Tensor(rng.standard_normal((1, 2, 8, 8)), requires_grad=True)
    y = net(x)
    with pytest.raises(ValueError, match="unknown backward mode 'zeiler'.*backprop, deconvnet, guided"):
        y.backward(np.ones((1, 3)), mode="zeiler")
    with pytest.raises(ValueError, match=r"needs `grad`"):
        y.backward()
    with pytest.raises(ValueError, match=r"has shape \(1, 4\), expected \(1, 3\)"):
        y.backward(np.ones((1, 4)))


@pytest.mark.parametrize("layer, shape, message", [
    (nn.Conv2d(3, 4, 3), (2, 3, 8), r"expects a 4-D \(N, C, H, W\) input, got shape \(2, 3, 8\)"),
    (nn.Conv2d(3, 4, 3), (1, 1, 8, 8), "expects 3 input channels, got 1"),
    (nn.Conv2d(3, 4, 5), (1, 3, 4, 4), "smaller than the 5x5 window"),
    (nn.MaxPool2d(2), (4, 4), "expects a 4-D"),
    (nn.Linear(6, 2), (2, 5), r"expects a 2-D \(N, 6\) input, got shape \(2, 5\)"),
    (nn.LocalResponseNorm(3), (2, 3), "expects a 4-D"),
])
def test_layers_refuse_wrong_shapes(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(Tensor(np.ones(shape, np.float32)))


def test_layers_refuse_a_dtype_mismatch():
    with pytest.raises(TypeError, match="input is float64 but the parameters are float32"):
        nn.Linear(2, 2)(Tensor(np.ones((1, 2))))


def test_dropout_is_the_identity_in_eval_mode_and_random_in_train_mode(rng):
    x = Tensor(rng.standard_normal((4, 100)).astype(np.float32))
    layer = nn.Dropout(0.5)
    net = nn.Sequential(layer)
    assert net.eval()(x) is x and not layer.training
    y = net.train()(x).data
    assert layer.training and 0.3 < (y == 0).mean() < 0.7
    assert np.allclose(y[y != 0], 2 * x.data[y != 0])


def test_state_dict_uses_torch_keys_and_round_trips():
    torch = pytest.importorskip("torch")
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2))
    state = net.state_dict()
    assert list(state) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert list(twin.state_dict()) == list(state)
    assert all(tuple(twin.state_dict()[k].shape) == v.shape for k, v in state.items())
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2))
    other.load_state_dict({k: v.copy() for k, v in state.items()})
    assert all(np.array_equal(other.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(KeyError, match=r"missing \['4.bias'\]"):
        other.load_state_dict({k: v for k, v in state.items() if k != "4.bias"})
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(4, 3, 2, 2\)"):
        other.load_state_dict({**state, "0.weight": np.zeros((4, 3, 2, 2), np.float32)})


def test_spec_rebuilds_the_same_architecture():
    net = small_net()
    rebuilt = nn.build(net.spec())
    assert rebuilt.spec() == net.spec()
    with pytest.raises(ValueError, match="unknown layer type 'Softmax' at position 1"):
        nn.build([{"type": "ReLU"}, {"type": "Softmax"}])


def test_sgd_with_momentum_and_weight_decay_matches_torch(rng):
    torch = pytest.importorskip("torch")
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    for (name, p) in net.named_parameters():
        twin.state_dict()[name].copy_(torch.from_numpy(p.data))
    ours = engine.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    theirs = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for step in range(4):
        x = rng.standard_normal((5, 4)).astype(np.float32)
        labels = rng.integers(0, 2, 5)
        ours.zero_grad()
        engine.functional.cross_entropy(net(Tensor(x)), labels).backward()
        ours.step()
        theirs.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(labels)).backward()
        theirs.step()
    for name, p in net.named_parameters():
        assert relative_error(p.data, twin.state_dict()[name].numpy()) < 1e-5, name


def test_backend_selection():
    from deepinside.kernels.launch import cuda_available
    assert engine.get_backend().name == "numpy"
    engine.set_backend("auto")
    assert engine.get_backend().name == ("cuda" if cuda_available() else "numpy")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        engine.set_backend("tpu")


def test_cuda_backend_without_a_gpu_says_what_is_missing():
    from deepinside.kernels.launch import cuda_available
    if cuda_available():
        pytest.skip("a GPU is usable here")
    with pytest.raises(ValueError, match="(needs CuPy|no usable GPU|found no GPU).*numpy or emulator backend"):
        engine.set_backend("cuda")


def test_largest_activation_looks_inside_blocks(rng):
    """The most numbers any layer outputs, nested blocks included: here the residual
    block's expanded 24-channel map, which no top-level layer outputs."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Residual(nn.Conv2d(4, 24, 1), nn.ReLU6(), nn.Conv2d(24, 4, 1)),
                        nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    x = engine.Tensor(rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    sizes = []
    for layer in net.layers:
        if isinstance(layer, nn.Sequential):
            inner = x
            for sublayer in layer.layers:
                inner = sublayer(inner)
                sizes.append(inner.data.size)
        x = layer(x)
        sizes.append(x.data.size)
    assert net.largest_activation((2, 3, 16, 16)) == max(sizes) == 2 * 24 * 8 * 8
