"""The backend as a value: tensors know where they live, modules move, mixing is refused,
and the default for new tensors comes from a block, the process or the environment."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from deepinside import engine, kernels
from deepinside.engine import Tensor, nn
from helpers import relative_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_net():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 4))


def test_a_tensor_knows_its_backend_and_results_inherit_it(rng):
    with engine.use_backend("emulator"):
        x = Tensor(rng.standard_normal((1, 2, 4, 4)).astype(np.float32))
        net = tiny_net()
    assert x.backend.name == "emulator" and net.backend.name == "emulator"
    assert engine.get_backend().name == "numpy"  # the block is over
    y = net(x)
    assert y.backend is x.backend and "backend=emulator" in repr(y)
    assert Tensor(y).backend is x.backend and y.detach().backend is x.backend


def test_module_to_moves_parameters_and_gives_the_same_result(rng):
    net = tiny_net()
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    seed = rng.standard_normal((2, 4)).astype(np.float32)
    results = {}
    for name in ("numpy", "emulator", "numpy"):
        assert net.to(name) is net and all(p.backend.name == name for p in net.parameters())
        image = Tensor(x, requires_grad=True, backend=name)
        out = net(image)
        (gradient,) = engine.grad(out, [image], grad_output=seed, mode="guided")
        results.setdefault(name, []).append((out.numpy(), engine.to_numpy(gradient)))
    (reference, back_again), (emulated,) = results["numpy"], results["emulator"]
    assert np.array_equal(reference[0], back_again[0]) and np.array_equal(reference[1], back_again[1])
    assert relative_error(emulated[0], reference[0]) < 1e-5 and relative_error(emulated[1], reference[1]) < 1e-5


def test_fully_connected_layers_at_a_batch_of_12_run_on_the_wide_rung(rng, monkeypatch):
    """A batch of 12 through two fully connected layers on the emulator: the forward's
    products (x W^T) on the wide rung's nt kernel, the input gradient's (g W) on its nn one
    (gemm.ENGINE_WIDE), and the scores, the input gradient and the weight gradients those of
    the NumPy path."""
    from deepinside.kernels import gemm
    from deepinside.kernels.launch import EmulatorLauncher
    monkeypatch.setattr(gemm, "ENGINE_WIDE", True)
    launched, launch = [], EmulatorLauncher.launch

    def recorded(self, kernel, *rest):
        launched.append(kernel)
        return launch(self, kernel, *rest)
    monkeypatch.setattr(EmulatorLauncher, "launch", recorded)
    net = nn.Sequential(nn.Linear(300, 70), nn.ReLU(), nn.Linear(70, 5))
    x = rng.standard_normal((12, 300)).astype(np.float32)
    seed = rng.standard_normal((12, 5)).astype(np.float32)
    results = {}
    for name in ("numpy", "emulator"):
        net.to(name)
        image = Tensor(x, requires_grad=True, backend=name)
        out = net(image)
        out.backward(seed)
        results[name] = [out.numpy(), engine.to_numpy(image.grad)] + [engine.to_numpy(p.grad) for p in
                                                                       net.parameters()]
        for p in net.parameters():
            p.grad = None
    assert all(relative_error(e, n) < 1e-5 for e, n in zip(results["emulator"], results["numpy"]))
    assert launched.count("products_wide_nt") == 2 and launched.count("products_wide_nn") == 2, launched


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("backend", ["emulator", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_engine_on_winograd_gives_the_numpy_results(rng, monkeypatch, backend, tile):
    """With conv2d.py's thresholds at 1 channel, the 3x3 stride-1 convolutions of a network
    (with biases; padded and not) run Winograd F(tile x tile, 3 x 3) wherever it saves work:
    its scores, input gradient and every weight gradient match the NumPy path's."""
    if backend == "cuda" and not kernels.launch.cuda_available():
        pytest.skip("no usable CUDA GPU (or no CuPy) on this machine")
    monkeypatch.setattr(kernels.conv2d, "ENGINE_WINOGRAD_TILE", tile)
    monkeypatch.setattr(kernels.conv2d, "ENGINE_WINOGRAD_CHANNELS", dict.fromkeys(kernels.conv2d.ENGINE_WINOGRAD_CHANNELS, 1))
    # the 3-channel layer off the few-channel kernels, which the engine takes before Winograd
    monkeypatch.setattr(kernels.conv2d, "ENGINE_FEW_CHANNELS_FORWARD", "implicit")
    monkeypatch.setattr(kernels.conv2d, "ENGINE_FEW_CHANNELS_BACKWARD_DATA", "columns")
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 6, 3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(6 * 11 * 11, 5))
    x = rng.standard_normal((2, 3, 24, 24)).astype(np.float32)
    seed = rng.standard_normal((2, 5)).astype(np.float32)
    launched, launch = [], kernels.Device.launch
    monkeypatch.setattr(kernels.Device, "launch", lambda self, kernel, *arguments: (
        launched.append(kernel), launch(self, kernel, *arguments)))
    results = {}
    for name in ("numpy", backend):
        net.to(name)
        image = Tensor(x, requires_grad=True, backend=name)
        out = net(image)
        gradients = engine.grad(out, [image] + list(net.parameters()), grad_output=seed)
        results[name] = [out.numpy()] + [engine.to_numpy(g) for g in gradients]
    for reference, result in zip(results["numpy"], results[backend]):
        assert relative_error(result, reference) < (1e-5 if tile == 2 else 3e-5)
    # two layers: forward and backward-data (a forward of grad_y) end in the output transform;
    # the weight gradient of the 3-channel layer saves no work through Winograd (its products
    # would be 64 x 3 on 128 x 128 tiles), the 64-channel one's does. At tile 4 the second
    # layer's forward (6 output channels: 72 tiles of 4 x 4, one 64 x 256 block a product, as
    # many multiply-adds as the direct sum's 968 positions on four) stays on the implicit GEMM.
    counts = {"output": 4 if tile == 2 else 3, "gradient": 1, "filter_gradient": 1}
    assert {kind: launched.count(f"winograd_{kind}_transform_{tile}x{tile}") for kind in counts} == counts
    assert launched.count("conv2d_forward_implicit") == (0 if tile == 2 else 1)
    assert not any(kernel.startswith("conv2d_backward_data") for kernel in launched)


def test_operands_on_different_backends_are_refused(rng):
    net = tiny_net()
    x = Tensor(rng.standard_normal((1, 2, 4, 4)).astype(np.float32), backend="emulator")
    with pytest.raises(ValueError, match=r"conv2d: operands live on different backends \(emulator, numpy, numpy\)"):
        net(x)
    assert x.to("numpy").backend.name == "numpy" and x.to("emulator") is x
    assert net(x.to("numpy")).backend.name == "numpy"


def test_an_optimiser_steps_on_the_parameters_backend(rng):
    with engine.use_backend("emulator"):
        engine.nn.manual_seed(3)
        net = tiny_net()
    twin = tiny_net().to("numpy")
    twin.load_state_dict({k: engine.to_numpy(v) for k, v in net.state_dict().items()})
    x, labels = rng.standard_normal((3, 2, 4, 4)).astype(np.float32), [0, 3, 1]
    for model in (net, twin):
        optimiser = engine.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        engine.functional.cross_entropy(model(Tensor(x, backend=model.backend)), labels).backward()
        optimiser.step()
    for (name, p), q in zip(net.named_parameters(), twin.parameters()):
        assert p.backend.name == "emulator" and relative_error(p.numpy(), q.numpy()) < 1e-5, name


def test_the_environment_chooses_the_default_backend(tmp_path):
    code = ("from deepinside import engine\n"
            "print(engine.get_backend().name, engine.Tensor([1.0]).backend.name)\n")
    environment = dict(os.environ, DEEPINSIDE_BACKEND="emulator", DEEPINSIDE_CACHE=os.environ.get(
        "DEEPINSIDE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "deepinside")))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["emulator", "emulator"]


def test_only_the_engine_reads_backend_state():
    """Above the engine, code asks a tensor or a module where it lives; only the command
    line sets the process default, from --backend."""
    state = re.compile(r"engine\.backend|get_backend\(|\.current\(\)|from \.+engine\.backend import|default\(\)")
    offenders = []
    for folder in ("models", "viz"):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            if name.endswith(".py"):
                text = open(os.path.join(ROOT, folder, name)).read()
                offenders += [f"{folder}/{name}: {m.group(0)}" for m in state.finditer(text)]
    assert offenders == []


def test_every_family_declares_both_paths_and_its_sources():
    for family in kernels.FAMILIES:
        assert set(family.numpy) == set(family.device), family.name
        assert all(os.path.isfile(os.path.join(ROOT, "kernels", source)) for source in family.sources), family.name
    with pytest.raises(TypeError, match="op family broken: the NumPy path has \\['forward'\\] but the device path \\[\\]"):
        kernels.OpFamily("broken", (), numpy={"forward": np.negative}, device={})


@pytest.mark.parametrize("backend", ["numpy", "emulator"])
def test_every_layer_has_a_deconvnet_step_equal_to_its_deconvnet_backward(rng, backend):
    """Each layer's Zeiler step, dispatched through its op family, against the autodiff
    backward in deconvnet mode (Sect. 4 of the paper), on random data."""
    cases = [(nn.Conv2d(2, 3, 3, padding=1), (1, 2, 5, 5)), (nn.ReLU(), (2, 3, 4, 4)), (nn.MaxPool2d(3, 2), (1, 2, 7, 7)),
             (nn.LocalResponseNorm(3, alpha=0.5), (1, 4, 3, 3)), (nn.AdaptiveAvgPool2d(2), (1, 2, 5, 3)),
             (nn.Flatten(), (2, 3, 2, 2)), (nn.Dropout(0.5), (2, 6)), (nn.Linear(6, 4), (2, 6)),
             (nn.ReLU6(), (2, 3, 4, 4)), (nn.ZeroPad2d((0, 1, 2, 0)), (1, 2, 3, 4)),
             (nn.Conv2d(3, 3, 3, 2, 1, groups=3), (2, 3, 7, 6)), (nn.BatchNorm2d(3), (2, 3, 4, 5)),
             (nn.Residual(nn.Conv2d(3, 3, 3, 1, 1, groups=3), nn.ReLU(), nn.Conv2d(3, 3, 1)), (1, 3, 5, 5)),
             (nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU6(), nn.MaxPool2d(2)), (1, 2, 7, 7))]
    for layer, shape in cases:
        layer.to(backend).eval()
        x = Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True, backend=backend)
        out, switches = layer.forward_with_state(x)
        signal = rng.standard_normal(out.shape).astype(np.float32)
        step = engine.to_numpy(layer.zeiler_step(signal, x, switches))
        (autodiff,) = engine.grad(layer(x), [x], grad_output=signal, mode="deconvnet")
        assert step.shape == shape and relative_error(step, engine.to_numpy(autodiff)) < 1e-5, layer


@pytest.mark.parametrize("backend", ["numpy", "emulator", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_a_captured_saliency_pass_replays_on_new_inputs(rng, backend):
    # Off a GPU the replay is the function run again: this checks the plumbing; with the
    # gpu mark it checks a CUDA graph (kernels re-run on the recorded arrays, which later
    # allocations must not take over).
    if backend == "cuda" and not kernels.launch.cuda_available():
        pytest.skip("no usable CUDA GPU (or no CuPy) on this machine")
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU6(), nn.ZeroPad2d((0, 1, 0, 1)),
                        nn.Conv2d(4, 4, 3, 2, groups=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    net.eval().to(backend)
    xp = net.backend.xp

    def saliency(image, seed):
        x = Tensor(image, requires_grad=True, backend=backend)
        return engine.grad(net(x), [x], grad_output=seed)[0]

    images = [xp.asarray(rng.standard_normal((2, 3, 12, 12)).astype(np.float32) * 3) for _ in range(2)]
    seed = xp.asarray(rng.standard_normal((2, 3)).astype(np.float32))
    replay = engine.capture(saliency, images[0], seed, backend=backend)
    for image in (images[1], images[0]):
        expected = engine.to_numpy(saliency(image, seed))
        clutter = [xp.full(size, 7.0, np.float32) for size in (64, 4096, 1 << 16)]  # fresh arrays between replays
        assert relative_error(engine.to_numpy(replay(image, seed)), expected) < 1e-5
        del clutter
    with pytest.raises(ValueError, match="shape"):
        replay(images[0][:1], seed)


@pytest.mark.parametrize("backend", ["emulator", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_a_class_model_gives_the_numpy_results_on_every_backend(backend):
    """viz.class_model's score objective replays its pass (engine.capture: with the gpu
    mark a CUDA graph, recorded on the zero image and replayed on every step's image):
    every step's scores and the optimised images match the NumPy path's."""
    if backend == "cuda" and not kernels.launch.cuda_available():
        pytest.skip("no usable CUDA GPU (or no CuPy) on this machine")
    from deepinside import models, viz
    nn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1),
                        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 5 * 5, 4)).eval()
    model = models.Model(net=net, classes=list("abcd"), input_size=20, image_size=24,
                         mean=np.array([120.0, 110.0, 100.0], np.float32))
    results = {}
    for name in ("numpy", backend):
        net.to(name)
        results[name] = viz.class_model(model, [0, 2], steps=4, lr=30.0, init_std=1.0)
    net.to("numpy")
    assert relative_error(results[backend].trace, results["numpy"].trace) < 1e-4
    assert relative_error(results[backend].raw, results["numpy"].raw) < 1e-4
    assert np.ptp(results["numpy"].trace[:, 0]) > 0  # the ascent moved
