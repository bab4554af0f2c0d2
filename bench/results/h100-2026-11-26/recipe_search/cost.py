"""Engine (numpy) training-step time of shapes-net variants, for the GPU recipe search's step budgets."""
import sys, time, json, numpy as np
sys.path.insert(0, ".")
import engine
from engine import nn, functional as F
from models import train as T
from kernels.conv2d import conv2d_output_size
from kernels.maxpool import maxpool_output_size
engine.backend.set_backend("numpy")
def build(width=(16, 32, 32, 32, 32), hidden=256, lrn=True, k1=7, p=0.1, s1=2):
    a, b, c, d, e = width
    size = conv2d_output_size(96, k1, s1, 0)
    for _ in range(3): size = maxpool_output_size(size, 3, 2, 0, True)
    L = (lambda: [nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)]) if lrn else (lambda: [])
    return nn.Sequential(nn.Conv2d(3, a, k1, stride=s1), nn.ReLU(), *L(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(a, b, 5, padding=2), nn.ReLU(), *L(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(b, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, d, 3, padding=1), nn.ReLU(),
        nn.Conv2d(d, e, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Flatten(),
        nn.Linear(e * size * size, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(p),
        nn.Linear(hidden, 10))
def cost(arch, bs=64, reps=6):
    net = build(**arch)
    opt = engine.optim.SGD(net.parameters(), lr=0.001, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (bs, 112, 112, 3)).astype(np.uint8); lab = rng.integers(0, 10, bs)
    mean = np.array([120] * 3, np.float32); std = np.array([60] * 3, np.float32)
    def step():
        x = engine.Tensor(T.jittered_batch(rng, imgs, mean, std))
        loss = F.cross_entropy(net(x), lab); opt.zero_grad(); loss.backward(); opt.step()
    step(); ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))
if __name__ == "__main__":
    archs = json.loads(sys.argv[1])
    for name, arch in archs.items():
        bs = arch.pop("bs", 64)
        print(name, bs, round(cost(arch, bs), 4), flush=True)
