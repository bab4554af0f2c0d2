"""A randomised sweep: every version of the convolution, depthwise, max-pool and SGEMM
kernels and of the element-wise ones with rungs (batchnorm, padding, the global pool, LRN)
against the NumPy path in float64, on shapes drawn at random (channel counts around
the tiles' edges, kernel sizes 1, 3 and 5, strides 1 and 2, every padding, maps of odd
sizes), with outputs poisoned with NaN. The ladders and tests check chosen shapes; this
looks for the ones nobody chose. On the emulator by default, on a GPU with --gpu; with
--checked, on the emulator's bounds-checked build (launch.CheckedEmulatorLauncher, about 25
times as slow: 11.5 s a draw on two cores, 0.47 s plain), where a load or store outside a
launch's arrays stops the sweep with the kernel's line.

    python -m deepinside.kernels.sweep [--trials 20] [--seed 0] [--gpu | --checked]

Prints each failing case and a count; exits 1 if any failed.
"""
import argparse
import functools
import sys

import numpy as np

from . import bind, conv2d, depthwise, gemm, maxpool
from .ladder import PoisonedDevice, flattened, host, max_relative_error
from .launch import KernelError

TOLERANCE = 1e-4  # of the largest value, float32 kernels against float64


def sweep_once(launcher, rng, report):
    """One random draw of every family; `report(case, error)` for each comparison."""
    xp = launcher.xp
    put = lambda a: xp.asarray(a.astype(np.float32))  # noqa: E731
    n = int(rng.integers(1, 3))
    c, o = int(rng.choice([1, 3, 8, 64, 70])), int(rng.choice([1, 5, 64, 65, 130]))
    k, stride = int(rng.choice([1, 3, 5])), int(rng.choice([1, 2]))
    padding, h, w = int(rng.integers(0, k)), int(rng.integers(k, 20)), int(rng.integers(k, 20))
    x, weight, bias = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    y = conv2d.conv2d_forward(x, weight, bias, stride, padding)
    g = rng.standard_normal(y.shape)
    shape = f"N{n} C{c} {h}x{w} O{o} k{k} s{stride} p{padding}"
    expected = {"forward": y, "backward_data": conv2d.conv2d_backward_data(g, weight, x.shape, stride, padding),
                "backward_weights": conv2d.conv2d_backward_weights(g, x, weight.shape, stride, padding)}
    # The implicit GEMM's every version; the Winograd modes where their Winograd applies
    # (elsewhere they run the engine's kernels, checked here already), fused ones forward and
    # backward-data only (their weight gradients are the unfused ones').
    for mode in ("engine", "implicit") + conv2d.winograd_modes(k, stride):
        ops = bind(PoisonedDevice(launcher, mode)).conv2d
        calls = {"forward": lambda v: ops.forward(put(x), put(weight), put(bias), stride, padding, version=v),
                 "backward_data": lambda v: ops.backward_data(put(g), put(weight), x.shape, stride, padding, version=v),
                 "backward_weights": lambda v: ops.backward_weights(put(g), put(x), weight.shape, stride, padding,
                                                                    version=v)}
        for direction, versions in conv2d.IMPLICIT_VERSIONS.items():
            if mode in conv2d.FUSED_WINOGRAD_TILES and direction == "backward_weights":
                continue
            for version in versions if mode in ("engine", "implicit") else (None,):
                report(f"conv2d {mode} {direction} {version or ''} {shape}",
                       max_relative_error(calls[direction](version), expected[direction]))
    device = PoisonedDevice(launcher)
    ops = bind(device).conv2d
    if conv2d.few_channels_applies(device, x.shape, weight.shape, stride, padding, "forward"):
        report(f"conv2d few-channel forward {shape}", max_relative_error(ops.forward(
            put(x), put(weight), put(bias), stride, padding, few_channels="few_channels"), expected["forward"]))
    if conv2d.few_channels_applies(device, x.shape, weight.shape, stride, padding):
        for version in conv2d.FEW_CHANNELS_BACKWARD_DATA:
            report(f"conv2d few-channel backward_data {version} {shape}", max_relative_error(ops.backward_data(
                put(g), put(weight), x.shape, stride, padding, few_channels=version), expected["backward_data"]))
    k, stride = int(rng.choice([3, 5])), int(rng.choice([1, 2]))
    padding = int(rng.integers(0, k))
    h, w = max(h + 2, k), max(w + 3, k)  # the convolution's map, grown; at least a window (its k may be 1)
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((c, 1, k, k))
    y = depthwise.depthwise_forward(x, weight, None, stride, padding)
    g = rng.standard_normal(y.shape)
    shape = f"N{n} C{c} {h}x{w} k{k} s{stride} p{padding}"
    for version in depthwise.FORWARD_LADDER:
        if depthwise.forward_applies(device, version, k, stride):
            report(f"{version} {shape}", max_relative_error(depthwise.depthwise_forward_device(
                device, put(x), put(weight), None, stride, padding, version=version), y))
    for version in depthwise.BACKWARD_DATA_LADDER:
        if depthwise.backward_data_applies(device, version, k, stride, padding):
            report(f"{version} {shape}", max_relative_error(depthwise.depthwise_backward_data_device(
                device, put(g), put(weight), x.shape, stride, padding, version=version),
                depthwise.depthwise_backward_data(g, weight, x.shape, stride, padding)))
    for version in depthwise.BACKWARD_WEIGHTS_LADDER:
        if depthwise.backward_weights_applies(version, k, stride):
            report(f"{version} {shape}", max_relative_error(depthwise.depthwise_backward_weights_device(
                device, put(g), put(x), weight.shape, stride, padding, version=version),
                depthwise.depthwise_backward_weights(g, x, weight.shape, stride, padding)))
    h, w = int(rng.integers(2, 17)), int(rng.integers(2, 17))  # odd and even: v3 where 2 x 2 windows tile them
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y, switches = maxpool.maxpool_forward(x, 2, 2)
    g = rng.standard_normal(y.shape).astype(np.float32)
    for version in maxpool.VERSIONS:
        y_version, switches_version = maxpool.maxpool_forward_device(device, put(x), 2, 2, version=version)
        same = np.array_equal(host(y_version), y) and np.array_equal(host(switches_version), switches)
        report(f"maxpool {version} forward N{n} C{c} {h}x{w}", 0.0 if same else 1.0)
        report(f"maxpool {version} backward N{n} C{c} {h}x{w}", max_relative_error(maxpool.maxpool_backward_device(
            device, put(g), switches_version, x.shape, 2, 2, version=version),
            maxpool.maxpool_backward(g.astype(np.float64), switches, x.shape, 2, 2)))
    _sweep_elementwise(device, rng, put, n, c, report)
    m, columns, depth = (int(v) for v in rng.integers(1, [300, 300, 700]))
    ops = bind(device).gemm
    for (transpose_a, transpose_b), case in gemm.CASES.items():
        a = rng.standard_normal((depth, m) if transpose_a else (m, depth))
        b = rng.standard_normal((columns, depth) if transpose_b else (depth, columns))
        expected = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
        for tiled in gemm.TILED:  # the engine on each tiled rung it can take
            engine_tiled, gemm.ENGINE_TILED = gemm.ENGINE_TILED, tiled
            try:
                report(f"sgemm engine on {tiled} {case} {m}x{columns}x{depth}",
                       max_relative_error(ops.product(put(a), put(b), transpose_a, transpose_b), expected))
            finally:
                gemm.ENGINE_TILED = engine_tiled


def _sweep_elementwise(device, rng, put, n, c, report):
    """Every rung of batchnorm's maps and reductions, the padding, the global pool and LRN,
    on a map of a random size (a plane of 1 to 400 values) and a random padding and window."""
    from . import avgpool, batchnorm, lrn, pad

    h, w = int(rng.integers(1, 21)), int(rng.integers(1, 21))
    x, g = rng.standard_normal((n, c, h, w)) * 3 + 1, rng.standard_normal((n, c, h, w))
    mean, gamma, beta = (rng.standard_normal(c) for _ in range(3))
    var = rng.random(c) + 0.5
    padding = tuple(int(v) for v in rng.integers(0, 3, 4))
    size = int(rng.integers(1, 10))  # 9: past v2's ring, v1's kernels
    shape = f"N{n} C{c} {h}x{w}"
    padded = pad.pad_forward(x, padding)
    grad_padded = rng.standard_normal(padded.shape)
    normalised, scale = lrn.lrn_forward(np.abs(x), size, 1e-2, 0.75, 2.0)
    pooled_gradient = g[:, :, :1, :1]
    flat = functools.partial(flattened, xp=device.xp)
    # name: (module, the call on a rung, the float64 reference, worked out once)
    checks = {
        "batchnorm forward": (batchnorm, lambda version: batchnorm.batchnorm_forward_device(
            device, put(x), put(mean), put(var), put(gamma), put(beta), 1e-3, version=version),
            batchnorm.batchnorm_forward(x, mean, var, gamma, beta, 1e-3)),
        "batchnorm backward": (batchnorm, lambda version: flat(batchnorm.batchnorm_backward_device(
            device, put(g), put(x), put(mean), put(var), put(gamma), 1e-3, True, version=version)),
            np.concatenate([a.ravel() for a in batchnorm.batchnorm_backward(g, x, mean, var, gamma, 1e-3, True)])),
        "batchnorm statistics": (batchnorm, lambda version: flat(batchnorm.batchnorm_statistics_device(
            device, put(x), version=version)), np.concatenate(batchnorm.batchnorm_statistics(x))),
        f"pad {padding} forward": (pad, lambda version: pad.pad_forward_device(device, put(x), padding,
                                                                               version=version), padded),
        f"pad {padding} backward": (pad, lambda version: pad.pad_backward_device(device, put(grad_padded), padding,
                                                                                 version=version),
                                    pad.pad_backward(grad_padded, padding)),
        "global average pool": (avgpool, lambda version: flat((
            avgpool.adaptive_avgpool_forward_device(device, put(x), (1, 1), version=version),
            avgpool.adaptive_avgpool_backward_device(device, put(pooled_gradient), x.shape, version=version))),
            np.concatenate([avgpool.adaptive_avgpool_forward(x, (1, 1)).ravel(),
                            avgpool.adaptive_avgpool_backward(pooled_gradient, x.shape).ravel()])),
        f"LRN size {size}": (lrn, lambda version: flat(
            lrn.lrn_forward_device(device, put(np.abs(x)), size, 1e-2, 0.75, 2.0, version=version)
            + (lrn.lrn_backward_device(device, put(g), put(np.abs(x)), put(scale), size, 1e-2, 0.75,
                                       version=version),)),
            np.concatenate([normalised.ravel(), scale.ravel(),
                            lrn.lrn_backward(g, np.abs(x), scale, size, 1e-2, 0.75).ravel()]))}
    for version in ("v1", "v2", "v3"):
        for name, (module, call, expected) in checks.items():
            if version in module.VERSIONS:  # (pad's and the pool's: two rungs)
                report(f"{name} {version} {shape}", max_relative_error(call(version), expected))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deepinside.kernels.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gpu", action="store_true", help="on a GPU (CuPy) instead of the emulator")
    where.add_argument("--checked", action="store_true", help="on the emulator, every global access bounds-checked")
    arguments = parser.parse_args(argv)
    from .launch import CheckedEmulatorLauncher, CudaLauncher, EmulatorLauncher
    launcher = (CudaLauncher() if arguments.gpu else CheckedEmulatorLauncher() if arguments.checked
                else EmulatorLauncher())
    rng, failures, checked = np.random.default_rng(arguments.seed), [], [0]

    def report(case, error):
        checked[0] += 1
        if not error < TOLERANCE:
            failures.append(case)
            print(f"FAILED {case}: max error {error:.1e} of the largest value", flush=True)
    for _ in range(arguments.trials):
        sweep_once(launcher, rng, report)
    print(f"{launcher.name}: {checked[0]} comparisons over {arguments.trials} random draws, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KernelError as error:  # no GPU or no CuPy for a GPU run: one line, not a traceback
        sys.exit(f"python -m deepinside.kernels.sweep: {error}")
