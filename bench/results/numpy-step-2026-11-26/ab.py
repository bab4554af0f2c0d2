"""A/B of the numpy kernels in one process: one training step of the LRN shapes net at batch 64
(random images), alternating the kernels before (commit 378fd9b) and after the speed-ups.

    mkdir -p /tmp/old && for f in kernels/conv2d kernels/maxpool kernels/relu kernels/lrn models/architectures; do
        git show 378fd9b:$f.py > /tmp/old/$(basename $f).py; done
    python bench/results/numpy-step-2026-11-26/ab.py
"""
import sys, time, numpy as np
sys.path.insert(0, ".")
import kernels, kernels.conv2d as C, kernels.maxpool as M
import engine
from engine import functional as F
from models import train as T
engine.backend.set_backend("numpy")
import importlib.util
def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m
oldC, oldM = load("/tmp/old/conv2d.py", "oc"), load("/tmp/old/maxpool.py", "om")
ops = kernels.numpy_ops
names = ["conv2d_forward", "conv2d_backward_weights", "conv2d_backward_data"]
new = {n: getattr(ops, n) for n in names + ["maxpool_forward"]}
old = {n: getattr(oldC, n) for n in names}; old["maxpool_forward"] = oldM.maxpool_forward
oldR, oldL = load("/tmp/old/relu.py", "orl"), load("/tmp/old/lrn.py", "olrn")
new.update(relu_backward=ops.relu_backward, lrn_backward=ops.lrn_backward)
old.update(relu_backward=oldR.relu_backward, lrn_backward=oldL.lrn_backward)
T.shapes_net = load("/tmp/old/architectures.py", "oa").shapes_net  # the net with LRN, as timed then
net = T.default_net(0, 0.1)
opt = engine.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
rng = np.random.default_rng(0)
imgs = rng.integers(0, 255, (64, 112, 112, 3)).astype(np.uint8); lab = rng.integers(0, 10, 64)
mean = np.array([120, 120, 120], np.float32); std = np.array([60, 60, 60], np.float32)
def step():
    x = engine.Tensor(T.jittered_batch(rng, imgs, mean, std))
    loss = F.cross_entropy(net(x), lab); opt.zero_grad(); loss.backward(); opt.step()
res = {"old": [], "new": []}
for r in range(6):
    for k, impl in (("old", old), ("new", new)):
        for n, f in impl.items(): setattr(ops, n, f)
        step(); t0 = time.perf_counter()
        for _ in range(5): step()
        res[k].append((time.perf_counter() - t0) / 5)
print({k: round(float(np.median(v)), 4) for k, v in res.items()})
