"""The engine's host-side cost of one saliency pass (forward, then the gradient to the
input) on the device code path, without a GPU: every kernel launch goes through the
launcher's argument checks and then does nothing, and every array is allocated as cheaply as
CuPy's memory pool would, so the time is what Python spends between launches, which is what a batch-1 pass on a GPU waits for when it is not replayed
as a CUDA graph. Prints the median of the repeats and the number of launches. What the
engine does to arrays between launches runs for real on NumPy here and is counted: while
Winograd's backward-data flipped its filters with an array copy (a copy kernel on a GPU),
VGG-16's pass took 25-27 ms here with the engine's Winograd from 64 channels; the filter
transform reads them flipped since (seventeenth session), 4.0-6.7 ms (a noisy machine).
The launcher's own checks were then most of it: worked out once a kernel (eighteenth
session), 6.3-7.5 -> 3.0-5.6 ms (VGG-16) and 20.0-20.4 -> 15.3-16.8 ms (EfficientNet-Lite0).
"""
import argparse
import collections
import math
import statistics
import time

import numpy as np

from deepinside import engine, models
from deepinside.kernels.launch import EmulatorLauncher


_scratch = np.empty(0, np.uint8)


def _scratch_empty(self, shape, dtype=np.float32):
    """An array over one scratch buffer, whatever was asked before: on a GPU CuPy's memory
    pool hands back a freed block in a microsecond or two, where NumPy maps and unmaps every
    large array (most of a VGG-16 pass's host time here, none of it a GPU's); nothing is
    launched, so no array's contents matter."""
    global _scratch
    size = math.prod(shape) * np.dtype(dtype).itemsize
    if size > _scratch.size:
        _scratch = np.empty(size, np.uint8)
    return np.ndarray(shape, dtype, buffer=_scratch)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", nargs="?", default="efficientnet-lite0", choices=["efficientnet-lite0", "vgg16",
                                                                                      "cnn_f"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--by-kernel", action="store_true", help="also each kernel's launches a pass")
    arguments = parser.parse_args(argv)
    launches = []
    EmulatorLauncher._start = lambda self, kernel, *rest: launches.append(kernel)  # checked, then not run
    EmulatorLauncher.empty = _scratch_empty
    with engine.use_backend("numpy"):
        net = models.load(arguments.network).net if arguments.network.startswith("efficientnet") \
            else getattr(models, arguments.network)().eval()
    net.to("emulator")
    image = np.random.default_rng(1).standard_normal((1, 3, 224, 224), dtype=np.float32)
    seed = np.zeros((1, 1000), np.float32)
    seed[0, 7] = 1

    def one_pass():
        x = engine.Tensor(image, requires_grad=True, backend=net.backend)
        return engine.grad(net(x), [x], grad_output=seed)[0]

    with np.errstate(all="ignore"):  # the unlaunched kernels leave their outputs as allocated
        one_pass()
        launches.clear()
        times = []
        for _ in range(arguments.repeats):
            start = time.perf_counter()
            one_pass()
            times.append(time.perf_counter() - start)
    count = len(launches) // arguments.repeats
    median = statistics.median(times)
    print(f"{arguments.network}: {median * 1e3:.2f} ms on the host a pass (median of {arguments.repeats}), "
          f"{count} launches, {median / count * 1e6:.1f} us a launch")
    if arguments.by_kernel:
        for kernel, launched in collections.Counter(launches).most_common():
            print(f"  {kernel}: {launched // arguments.repeats}")


if __name__ == "__main__":
    main()
