"""What `engine.keep_freed_memory` (called by every `deepinside` command) buys a process that
runs the NumPy path: an EfficientNet-Lite0 saliency pass and a shapes-net training step, each
timed in two fresh processes, one with the setting and one without, in the same run. (In
one long pytest process glibc's own adaptive thresholds may already have risen, which is why
each side gets a process of its own.) Run:  pytest bench
"""
import json
import subprocess
import sys

import pytest

PASSES = """
import json, sys, time
import numpy as np
from deepinside import engine, models
from deepinside.engine import functional as F
from deepinside.models.train import default_net
if sys.argv[2] == "keep":
    engine.keep_freed_memory()
engine.set_backend("numpy")
rng = np.random.default_rng(0)
if sys.argv[1] == "saliency-pass-efficientnet_lite0":
    net = models.load("efficientnet-lite0").net
    image = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    seed = np.zeros((1, 1000), np.float32)
    seed[0, 7] = 1
    def run():
        x = engine.Tensor(image, requires_grad=True)
        return float(np.abs(engine.grad(net(x), [x], grad_output=seed)[0]).sum())
else:
    net = default_net(seed=0).train()
    optimiser = engine.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-3)
    images, labels = rng.standard_normal((64, 3, 96, 96)).astype(np.float32), rng.integers(0, 10, 64)
    def run():
        loss = F.cross_entropy(net(engine.Tensor(images)), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return float(loss.data)
for _ in range(2):
    run()
times = []
for _ in range(15):
    start = time.perf_counter()
    result = run()
    times.append(time.perf_counter() - start)
print(json.dumps([float(np.median(times)), result]))
"""


def timed(work, setting):
    """(median seconds, the last pass's result: the gradient's L1 norm or the loss)."""
    done = subprocess.run([sys.executable, "-c", PASSES, work, setting], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("work", ["saliency-pass-efficientnet_lite0", "training-step-shapes-net"])
def test_keeping_freed_memory(work):
    (default, result), (kept, kept_result) = timed(work, "default"), timed(work, "keep")
    print(f"\n{work}: glibc's defaults {default * 1e3:.1f} ms, keep_freed_memory {kept * 1e3:.1f} ms, "
          f"ratio {kept / default:.2f}")
    # Where memory comes from must not change a single number.
    assert kept_result == result
