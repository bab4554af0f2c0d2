"""Recipe search, third round: a PyTorch twin of shapes-net variants trained for the number of
steps the engine (numpy, 2 cores) affords in 30 minutes, jitter on the GPU."""
import sys, time, json, os, math
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from multiprocessing import Pool
sys.path.insert(0, os.getcwd())
from models import data

def gen(count, seed):
    cache = os.environ.get("RCACHE", "/tmp/rcache") + f"/d_{seed}_{count}.npz"
    if os.path.exists(cache):
        z = np.load(cache); return z["x"], z["y"]
    x, y, _, _ = data.generate(count, seed, workers=16)
    np.savez(cache, x=x, y=y); return x, y

def net(p, lrn, width, hidden, last_std=0.01, k1=7, s1=2):
    a, b, c, d, e = width
    size = (96 - k1) // s1 + 1
    for _ in range(3): size = math.ceil((size - 3) / 2) + 1
    L = lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0) if lrn else nn.Identity()
    m = nn.Sequential(nn.Conv2d(3, a, k1, s1), nn.ReLU(), L(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(a, b, 5, padding=2), nn.ReLU(), L(), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(b, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, d, 3, padding=1), nn.ReLU(),
        nn.Conv2d(d, e, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Flatten(),
        nn.Linear(e * size * size, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(p),
        nn.Linear(hidden, 10))
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (2 / mod.weight[0].numel()) ** 0.5); mod.bias.zero_()
    if last_std:
        with torch.no_grad(): m[-1].weight.mul_(last_std / m[-1].weight.std())
    return m

def jitter(g, x, mean, std, erase):
    """x: (n, 112, 112, 3) uint8 on the GPU -> (n, 3, 96, 96) float, as models.train.jittered_batch."""
    n, dev = len(x), x.device
    top = torch.randint(0, 17, (n,), generator=g, device=dev); left = torch.randint(0, 17, (n,), generator=g, device=dev)
    flip = torch.rand(n, generator=g, device=dev) < 0.5
    ar = torch.arange(96, device=dev)
    rows = top[:, None] + ar; cols = left[:, None] + torch.where(flip[:, None], 95 - ar, ar)
    c = x[torch.arange(n, device=dev)[:, None, None], rows[:, :, None], cols[:, None, :]]
    b = ((c.float() - mean) / std).permute(0, 3, 1, 2)
    if erase:
        h = torch.randint(12, 32, (n,), generator=g, device=dev); w = torch.randint(12, 32, (n,), generator=g, device=dev)
        t = (torch.rand(n, generator=g, device=dev) * (96 - h)).long(); l = (torch.rand(n, generator=g, device=dev) * (96 - w)).long()
        on = torch.rand(n, generator=g, device=dev) < 0.5
        m = on[:, None, None] & (ar[None, :, None] >= t[:, None, None]) & (ar[None, :, None] < (t + h)[:, None, None]) \
            & (ar[None, None, :] >= l[:, None, None]) & (ar[None, None, :] < (l + w)[:, None, None])
        b = b * (~m)[:, None].float()
    return b.contiguous()

def run(cfg, x, y, xt, yt, dev):
    torch.manual_seed(0); g = torch.Generator(device=dev).manual_seed(0)
    xf = x.reshape(-1, 3).astype(np.float32)
    mean = torch.tensor(xf.mean(0), device=dev); std = torch.tensor(xf.std(0), device=dev)
    m = net(cfg.get("p", 0.1), cfg.get("lrn", True), tuple(cfg.get("width", (16, 32, 32, 32, 32))), cfg.get("hidden", 256), cfg.get("last_std", 0.01), cfg.get("k1", 7), cfg.get("s1", 2)).to(dev)
    opt = torch.optim.SGD(m.parameters(), lr=cfg["lr"], momentum=0.9, weight_decay=cfg.get("wd", 5e-4))
    bs, total, warm = cfg.get("bs", 64), cfg["steps"], cfg.get("warmup", 300)
    X = torch.tensor(x, device=dev); Y = torch.tensor(y, device=dev)
    XT = ((torch.tensor(xt[:, 8:104, 8:104], device=dev).float() - mean) / std).permute(0, 3, 1, 2).contiguous(); YT = torch.tensor(yt, device=dev)
    t0 = time.time(); losses = []; order = torch.empty(0, dtype=torch.long, device=dev)
    every = cfg.get("log_every", 1000)
    for step in range(total):
        lr = cfg["lr"] * ((step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))))
        for gr in opt.param_groups: gr["lr"] = lr
        if len(order) < bs: order = torch.cat([order, torch.randperm(len(X), generator=g, device=dev)])
        idx, order = order[:bs], order[bs:]
        m.train()
        loss = F.cross_entropy(m(jitter(g, X[idx], mean, std, cfg.get("erase", True))), Y[idx])
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.detach())
        if (step + 1) % every == 0 or step + 1 == total:
            m.eval()
            with torch.no_grad():
                acc = sum((m(XT[i:i + 500]).argmax(1) == YT[i:i + 500]).sum().item() for i in range(0, len(XT), 500)) / len(XT)
            print(cfg["name"], step + 1, round(torch.stack(losses[-every:]).mean().item(), 4), acc, round(time.time() - t0, 1), flush=True)

if __name__ == "__main__" and sys.argv[1] == "--gen":
    gen(int(sys.argv[2]), 0); gen(2000, 1)
elif __name__ == "__main__":
    torch.set_num_threads(1); torch.backends.cudnn.benchmark = True
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = json.loads(sys.argv[3]); x, y = gen(int(sys.argv[2]), 0); xt, yt = gen(2000, 1)
    run(cfg, x, y, xt, yt, dev)
