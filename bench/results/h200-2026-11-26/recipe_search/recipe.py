"""Recipe search in PyTorch for the shapes net (same architecture as models.shapes_net)."""
import sys, time, json, os
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from multiprocessing import Pool
sys.path.insert(0, os.getcwd())
from models import data

def _render(args):
    seed, i, easy = args
    if easy:
        rng = np.random.default_rng([seed, i, 7])
        bg = np.broadcast_to(rng.uniform(0, 255, 3), (112, 112, 3))
        return data.render(seed, i, background=bg)
    return data.render(seed, i)

def gen(count, seed, easy=False, procs=None):
    cache = os.environ.get("RCACHE", ".scratch") + f"/data_{seed}_{count}_{int(easy)}.npz"
    if os.path.exists(cache):
        z = np.load(cache); return z["x"], z["y"]
    with Pool(procs) as pool:
        out = pool.map(_render, [(seed, i, easy) for i in range(count)], chunksize=64)
    x = np.stack([o[0] for o in out]); y = np.array([o[1] for o in out])
    np.savez(cache, x=x, y=y); return x, y

def net(p=0.5, lrn=True, width=(16, 32, 32, 32, 32), hidden=256, small_last=False, bn=False):
    a, b, c, d, e = width
    L = lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0) if lrn else nn.Identity()
    B = (lambda n: nn.BatchNorm2d(n)) if bn else (lambda n: nn.Identity())
    m = nn.Sequential(nn.Conv2d(3, a, 7, 2), B(a), nn.ReLU(), L(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(a, b, 5, padding=2), B(b), nn.ReLU(), L(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(b, c, 3, padding=1), B(c), nn.ReLU(), nn.Conv2d(c, d, 3, padding=1), B(d), nn.ReLU(),
        nn.Conv2d(d, e, 3, padding=1), B(e), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Flatten(),
        nn.Linear(e * 25, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(p),
        nn.Linear(hidden, 10))
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            fan = mod.weight[0].numel()
            with torch.no_grad():
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (2 / fan) ** 0.5); mod.bias.zero_()
    if small_last:
        with torch.no_grad(): m[-1].weight.mul_(0.01 / m[-1].weight.std())
    return m

def jitter(rng, x, mean, std, erase=True):
    n = len(x); t, l = rng.integers(0, 17, (2, n))
    c = np.stack([x[i, t[i]:t[i]+96, l[i]:l[i]+96] for i in range(n)])
    f = rng.random(n) < 0.5; c[f] = c[f, :, ::-1]
    b = ((c.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2).copy()
    if erase:
        for i in np.flatnonzero(rng.random(n) < 0.5):
            h, w = rng.integers(12, 32, 2); tt, ll = rng.integers(0, 96 - h), rng.integers(0, 96 - w)
            b[i, :, tt:tt+h, ll:ll+w] = 0
    return b

def lsuv(m, xb):
    layers = [mod for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        for _ in range(3):
            out = {}
            h = layer.register_forward_hook(lambda mod, i, o: out.setdefault("o", o))
            with torch.no_grad(): m.eval(); m(xb)
            h.remove()
            with torch.no_grad(): layer.weight /= out["o"].std()

def run(cfg, x, y, xe, ye, xt, yt, dev):
    torch.manual_seed(0); rng = np.random.default_rng(0)
    mean = x.reshape(-1, 3).mean(0).astype(np.float32); std = x.reshape(-1, 3).std(0).astype(np.float32)
    m = net(cfg.get("p", 0.5), cfg.get("lrn", True), tuple(cfg.get("width", (16, 32, 32, 32, 32))), cfg.get("hidden", 256), cfg.get("small_last", False), cfg.get("bn", False)).to(dev)
    if cfg.get("lsuv"): lsuv(m, torch.tensor(jitter(np.random.default_rng(1), x[:256], mean, std, False)).to(dev))
    opt = (torch.optim.Adam(m.parameters(), lr=cfg["lr"]) if cfg.get("opt") == "adam" else torch.optim.SGD(m.parameters(), lr=cfg["lr"], momentum=0.9, weight_decay=cfg.get("wd", 5e-4)))
    bs = cfg.get("bs", 32); epochs = cfg["epochs"]; n = cfg.get("n", len(x))
    steps_per = n // bs; total = steps_per * epochs; step = 0
    xtb = torch.tensor(((xt[:, 8:104, 8:104].astype(np.float32) - mean) / std).transpose(0, 3, 1, 2).copy()).to(dev)
    t0 = time.time(); log = []
    for ep in range(epochs):
        easy_epochs = cfg.get("easy_epochs", 0)
        src_x, src_y = (xe, ye) if ep < easy_epochs else (x[:n], y[:n])
        order = rng.permutation(len(src_x))
        m.train(); losses = []
        for s in range(len(order) // bs):
            warm = cfg.get("warmup", 0)
            f = min(1.0, (step + 1) / warm) if warm else 1.0
            sched = cfg.get("sched", "step")
            if sched == "cos": f *= 0.5 * (1 + np.cos(np.pi * step / total))
            else: f *= 0.1 if ep >= 0.85 * epochs else 0.3 if ep >= 0.6 * epochs else 1.0
            for gr in opt.param_groups: gr["lr"] = cfg["lr"] * f
            idx = order[s*bs:(s+1)*bs]
            xb = torch.tensor(jitter(rng, src_x[idx], mean, std, cfg.get("erase", True))).to(dev)
            yb = torch.tensor(src_y[idx]).to(dev)
            loss = F.cross_entropy(m(xb), yb); opt.zero_grad(); loss.backward()
            if cfg.get("clip"): torch.nn.utils.clip_grad_norm_(m.parameters(), cfg["clip"])
            opt.step(); step += 1
            losses.append(loss.item())
        m.eval()
        with torch.no_grad():
            acc = sum((m(xtb[i:i+500]).argmax(1) == torch.tensor(yt[i:i+500]).to(dev)).sum().item() for i in range(0, len(xtb), 500)) / len(xtb)
        log.append((ep, round(float(np.mean(losses)), 4), acc, round(time.time() - t0, 1)))
        print(cfg.get("name"), *log[-1], "last100", round(float(np.mean(losses[-100:])),4), flush=True)
    return log

if __name__ == "__main__" and sys.argv[1] == "--gen":
    gen(int(sys.argv[2]), 0); gen(2000, 1); gen(10000, 5, easy=True)
elif __name__ == "__main__" and sys.argv[1] == "--one":
    torch.set_num_threads(1)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = json.loads(sys.argv[3]); ntrain = int(sys.argv[2])
    x, y = gen(ntrain, 0); xt, yt = gen(2000, 1); xe, ye = gen(10000, 5, easy=True)
    run(cfg, x, y, xe, ye, xt, yt, dev)
elif __name__ == "__main__":
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfgs = json.loads(open(sys.argv[1]).read())
    ntrain = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
    t0 = time.time()
    x, y = gen(ntrain, 0); xt, yt = gen(2000, 1)
    xe, ye = gen(10000, 5, easy=True)
    print("data", time.time() - t0, flush=True)
    results = {}
    for cfg in cfgs:
        results[cfg["name"]] = run(cfg, x, y, xe, ye, xt, yt, dev)
        if os.environ.get("OUT"): json.dump(results, open(os.environ["OUT"] + "/recipes.json", "w"))
