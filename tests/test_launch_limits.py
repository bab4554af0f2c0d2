"""CUDA's launch limits (a grid's y and z at most 65535 blocks, a block at most 1024
threads): a launch past them fails on a GPU alone, so the launcher refuses it on both
backends; and every launch the GPU script makes at its full sizes is checked against them
here, on the CPU, with the kernels not run (a launch the emulator would run at small sizes
may still be past a limit at a batch of 64 on 224 x 224 pictures), and with arrays
that 32-bit indices still reach."""
import collections

import numpy as np
import pytest

from deepinside import engine
from deepinside.engine.backend import Backend
from deepinside.kernels import KernelError, bind, conv2d, depthwise, ladder, maxpool
from deepinside.kernels.family import CONVOLUTIONS, Device
from deepinside.kernels.launch import EmulatorLauncher


class UnrunLauncher(EmulatorLauncher):
    """The emulator's launcher with every check and no kernel run: arrays stay as np.empty
    left them, so full-size tensors cost address space, not memory or time."""

    def __init__(self):
        super().__init__()
        self.launched = collections.Counter()

    def _start(self, kernel, parameters, grid, block, arguments):
        # Most kernels index in 32 bits (conv2d.py keeps Winograd's transformed tensors and
        # the column buffer under that): no array of a full-size launch may outgrow them.
        largest = max((a.size for a in arguments if isinstance(a, np.ndarray)), default=0)
        assert largest < 2**31, f"{kernel} launched on an array of {largest} elements"
        self.launched[kernel] += 1


@pytest.fixture(scope="module")
def launcher():
    return UnrunLauncher()


@pytest.mark.parametrize("grid, block", [((1, 65536), 256), ((65536, 1, 2**16), 256), (4, (2048,)),
                                         (4, (32, 32, 2)), (2**31, 256)])
def test_a_launch_past_cudas_limits_is_refused_naming_the_kernel(launcher, grid, block):
    x = np.ones(8, np.float32)
    with pytest.raises(KernelError, match=r"relu_forward: a grid of .* past CUDA's limits"):
        launcher.launch("relu_forward", grid, block, x, x, 8)
    assert launcher.launched["relu_forward"] == 0


def test_the_largest_launch_cuda_takes_is_accepted(launcher):
    x = np.ones(8, np.float32)
    launcher.launch("relu_forward", (2**31 - 1, 65535, 65535), (1024, 1, 1), x, x, 8)
    assert launcher.launched["relu_forward"] == 1


def _empty(*shape):
    return np.empty(shape, np.float32)


VGG16 = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 256, 56), (256, 512, 28),
         (512, 512, 14)]  # one of each (in, out, size) of VGG-16
FULL_SIZE_CONVOLUTIONS = ladder.GPU_CONVOLUTIONS + [
    (n, c, size, size, o, 3, 1, 1) for n in (1, 64) for c, o, size in VGG16] + [
    (64, 3, 224, 224, 64, 11, 4, 0), (64, 64, 27, 27, 256, 5, 1, 2),  # CNN-F's first two
    (320, 64, 224, 224, 64, 3, 1, 1)]  # past Winograd's 32-bit reach (conv2d.py: _winograd_fits)


@pytest.mark.parametrize("shape", FULL_SIZE_CONVOLUTIONS, ids=str)
def test_every_convolution_rung_launches_within_limits_at_full_size(launcher, shape):
    n, c, h, w, o, k, stride, padding = shape
    x, weight = _empty(n, c, h, w), _empty(o, c, k, k)
    grad_y = _empty(n, o, conv2d.conv2d_output_size(h, k, stride, padding),
                    conv2d.conv2d_output_size(w, k, stride, padding))
    calls = {"forward": lambda ops, **version: ops.forward(x, weight, None, stride, padding, **version),
             "backward_data": lambda ops, **version: ops.backward_data(grad_y, weight, x.shape, stride, padding,
                                                                       **version),
             "backward_weights": lambda ops, **version: ops.backward_weights(grad_y, x, weight.shape, stride, padding,
                                                                             **version)}
    before = sum(launcher.launched.values())
    for convolution in CONVOLUTIONS:
        if convolution == "direct" and n > 16:
            continue  # the GPU script runs the one-thread-an-output rung on the ladder's shapes only
        for engine_winograd in (True, False):
            ops = bind(Device(launcher, convolution, engine_winograd)).conv2d
            for call in calls.values():
                call(ops)
    ops = bind(Device(launcher)).conv2d
    for direction, versions in conv2d.IMPLICIT_VERSIONS.items():
        for version in versions:
            calls[direction](ops, version=version)
    for version in conv2d.FEW_CHANNELS_BACKWARD_DATA:
        calls["backward_data"](ops, few_channels=version)
    for version in conv2d.FEW_CHANNELS_FORWARD:
        calls["forward"](ops, few_channels=version)
    assert sum(launcher.launched.values()) > before


def test_every_gemm_rung_and_the_memory_bound_ladders_launch_within_limits_at_full_size(launcher):
    device = Device(launcher)
    for m, n, k in [(4096, 4096, 4096)] + ladder.GPU_GEMMS:
        for transpose_a, transpose_b in ladder.ALL_CASES:
            a = _empty(k, m) if transpose_a else _empty(m, k)
            b = _empty(n, k) if transpose_b else _empty(k, n)
            for rung in ladder.GEMM_LADDER:
                if rung.handles(m, transpose_a, transpose_b):
                    rung.launch(device, a, b, _empty(m, n), transpose_a, transpose_b)
    x = _empty(16, 64, 224, 224)
    for version in maxpool.VERSIONS:
        y, switches = maxpool.maxpool_forward_device(device, x, 2, 2, version=version)
        maxpool.maxpool_backward_device(device, y, switches, x.shape, 2, 2, version=version)
    for n, c, h, w, k, stride, padding in ladder.GPU_DEPTHWISE:
        x, weight = _empty(n, c, h, w), _empty(c, 1, k, k)
        grad_y = _empty(n, c, conv2d.conv2d_output_size(h, k, stride, padding),
                        conv2d.conv2d_output_size(w, k, stride, padding))
        for version in depthwise.FORWARD_LADDER:
            if depthwise.forward_applies(device, version, k, stride):
                depthwise.depthwise_forward_device(device, x, weight, None, stride, padding, version=version)
        for version in depthwise.BACKWARD_DATA_LADDER:
            if depthwise.backward_data_applies(device, version, k, stride, padding):
                depthwise.depthwise_backward_data_device(device, grad_y, weight, x.shape, stride, padding,
                                                         version=version)
        for version in depthwise.BACKWARD_WEIGHTS_LADDER:
            depthwise.depthwise_backward_weights_device(device, grad_y, x, weight.shape, stride, padding,
                                                        version=version)
    assert {"sgemm_naive", "sgemm_skinny_nn", "maxpool_forward_2x2", "depthwise_forward_rows"} <= set(launcher.launched)


@pytest.mark.parametrize("network", ["vgg16", "cnn_f"])
@pytest.mark.parametrize("convolution", ["engine", "winograd4"])
def test_a_saliency_pass_at_batch_64_launches_within_limits(launcher, network, convolution):
    from deepinside import models

    with engine.use_backend("numpy"):
        net = getattr(models, network)().eval()
    net.to(Backend("emulator", np, bind(Device(launcher, convolution))))
    x = engine.Tensor(_empty(64, 3, 224, 224), requires_grad=True, backend=net.backend)
    seed = np.zeros((64, 1000), np.float32)
    seed[:, 7] = 1
    before = sum(launcher.launched.values())
    with np.errstate(all="ignore"):  # the unrun kernels leave their outputs as allocated
        grad_x = engine.grad(net(x), [x], grad_output=seed)[0]
    assert grad_x.shape == x.shape and sum(launcher.launched.values()) - before > 20
